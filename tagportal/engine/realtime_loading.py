"""One person's rows, as the engine reads them, for a realtime re-evaluation (see
:mod:`.realtime`): their profile attributes, and their events and orders within the
widest window the realtime tags need (a tag without a window, or a ``days_since``,
reads all of the person's rows of that source), with only the columns the tags read;
a source no realtime tag reads is not queried."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from tagportal.catalog.models import Brand
from tagportal.profiles.models import Event, Order

from .realtime_specs import SOURCES, Lookback, RealtimeSpecs

#: The columns of the engine's input frames, as the profiles app loads them.
COLUMNS = {
    "events": ("type", "channel", "store", "value"),
    "orders": ("amount", "quantity", "channel", "store", "category", "sku", "discount"),
}
NUMBER_COLUMNS = {"value", "amount", "quantity", "discount"}
PROPERTY_PREFIX = "properties."


def _floats(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")


def person_frames(brand: Brand, customer, realtime: RealtimeSpecs, as_of: dt.datetime) -> tuple:
    """``(profiles, events, orders)`` of one person, as :func:`.evaluate.evaluate_tags`
    reads them (the columns of the profiles app's ``load_frames``), with only the rows
    the realtime tags' windows reach and only the columns they read; a source no tag
    reads is None."""
    oneid = int(customer.oneid)
    profiles = pd.DataFrame([{"oneid": oneid, **(customer.attributes or {})}])
    frames = [profiles]
    for source in SOURCES:
        lookback = realtime.lookback.get(source)
        fields = realtime.fields.get(source, set())
        frames.append(
            None if lookback is None else source_frame(brand, customer, source, lookback, fields, as_of)
        )
    return tuple(frames)


def source_frame(
    brand: Brand, customer, source: str, lookback: Lookback, fields: set[str], as_of: dt.datetime
) -> pd.DataFrame:
    """The person's rows of one source (``events`` or ``orders``) since ``lookback``
    reaches back from ``as_of``: ``oneid``, ``time`` and the ``fields`` read (columns and
    ``properties.<key>``)."""
    names = [name for name in COLUMNS[source] if name in fields]
    keys = sorted(f[len(PROPERTY_PREFIX) :] for f in fields if f.startswith(PROPERTY_PREFIX))
    model = Event if source == "events" else Order
    rows = model.objects.filter(brand=brand, customer_id=customer.pk).order_by()
    since = lookback.since(as_of)
    if since is not None:
        rows = rows.filter(time__gte=since)
    found = list(rows.values_list("time", *names, *(["properties"] if keys else [])))
    return _rows_frame(int(customer.oneid), found, names, keys)


def _rows_frame(oneid: int, found: list[tuple], names: list[str], keys: list[str]) -> pd.DataFrame:
    """The frame of one person's rows ``(time, *names[, properties])``, with a
    ``properties.<key>`` column per key."""
    columns: dict[str, object] = {
        "oneid": np.full(len(found), oneid, dtype="int64"),
        "time": pd.DatetimeIndex([row[0] for row in found], dtype="datetime64[us, UTC]"),
    }
    for i, name in enumerate(names, start=1):
        values = [row[i] for row in found]
        columns[name] = _floats(values) if name in NUMBER_COLUMNS else values
    if keys:
        properties = [row[-1] if isinstance(row[-1], dict) else {} for row in found]
        for key in keys:
            columns[PROPERTY_PREFIX + key] = [item.get(key) for item in properties]
    return pd.DataFrame(columns)
