"""Reading profiles, events and orders for the engine: plain DataFrames out, one
brand (and later one OneID range) at a time. The engine calls :func:`load_frames`."""

from __future__ import annotations

import pandas as pd

from tagportal.catalog.models import Brand

from .models import Customer, Event, Order


def flatten_properties(frame: pd.DataFrame, column: str = "properties") -> pd.DataFrame:
    """Turn a column of dicts (a JSON ``properties`` field) into ``properties.<key>`` columns."""
    if column not in frame.columns:
        return frame
    records = frame[column].map(lambda v: v if isinstance(v, dict) else {})
    flat = pd.json_normalize(records.tolist(), max_level=0)
    flat.columns = [f"{column}.{key}" for key in flat.columns]
    flat.index = frame.index
    return pd.concat([frame.drop(columns=[column]), flat], axis=1)


def load_frames(brand: Brand, *, since=None) -> dict[str, pd.DataFrame]:
    """The engine's input frames of a brand (see :mod:`tagportal.engine.evaluate`):
    ``profiles`` (``oneid`` + attributes), ``events`` and ``orders`` (``oneid``, the
    fields, ``properties.<key>``), for the people not merged into someone else."""
    people = Customer.objects.filter(brand=brand, merged_into__isnull=True)
    profile_rows = list(people.values_list("oneid", "attributes"))
    profiles = pd.DataFrame([{"oneid": o, **(a or {})} for o, a in profile_rows])
    if profiles.empty:
        profiles = pd.DataFrame({"oneid": pd.Series(dtype="int64")})
    events = Event.objects.filter(brand=brand, customer__merged_into__isnull=True)
    orders = Order.objects.filter(brand=brand, customer__merged_into__isnull=True)
    if since is not None:
        events, orders = events.filter(time__gte=since), orders.filter(time__gte=since)
    event_fields = ["customer__oneid", "time", "type", "channel", "store", "value", "properties"]
    order_fields = [
        "customer__oneid", "time", "amount", "quantity", "channel", "store", "category", "sku", "discount",
        "properties",
    ]  # fmt: skip
    event_frame = pd.DataFrame(list(events.values_list(*event_fields)), columns=event_fields)
    order_frame = pd.DataFrame(list(orders.values_list(*order_fields)), columns=order_fields)
    event_frame = event_frame.rename(columns={"customer__oneid": "oneid"})
    order_frame = order_frame.rename(columns={"customer__oneid": "oneid"})
    for frame in (event_frame, order_frame):
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
    for name in ("amount", "discount"):
        order_frame[name] = order_frame[name].astype("float64")
    return {
        "profiles": profiles,
        "events": flatten_properties(event_frame),
        "orders": flatten_properties(order_frame),
    }
