"""Reading profiles, events and orders for the engine: plain DataFrames out, one
brand, or one OneID range of a brand, at a time. The engine calls :func:`load_frames`
and splits a brand into ranges with :func:`oneid_bounds`.

A range is half-open, ``[lo, hi)``, and goes into the SQL of each read: the people
by the ``(brand, oneid)`` unique index, their events and orders by the
``(brand, customer, time)`` indexes, so a partition reads only its own rows."""

from __future__ import annotations

import json

import pandas as pd
from django.db import connection
from django.db.models import Max, Min

from tagportal.catalog.models import Brand

from . import bulk
from .models import Customer, Event, Order

#: The engine's columns of events and orders (``customer__oneid`` becomes ``oneid``).
_EVENT_VALUES = ("customer__oneid", "time", "type", "channel", "store", "value", "properties")
_ORDER_VALUES = (
    "customer__oneid", "time", "amount", "quantity", "channel", "store", "category", "sku", "discount",
    "properties",
)  # fmt: skip
#: The same columns as the COPY read names them (``oneid`` first, then the fields).
_EVENT_FIELDS = ("time", "type", "channel", "store", "value", "properties")
_ORDER_FIELDS = _ORDER_VALUES[1:]


def flatten_properties(frame: pd.DataFrame, column: str = "properties") -> pd.DataFrame:
    """Turn a column of dicts (a JSON ``properties`` field) into ``properties.<key>`` columns."""
    if column not in frame.columns:
        return frame
    records = [v if isinstance(v, dict) else {} for v in frame[column].tolist()]
    # what pd.json_normalize(records, max_level=0) gives (the same columns in the same
    # order, the values as they are), without its copy of every dict
    flat = pd.DataFrame(records)
    flat.columns = [f"{column}.{key}" for key in flat.columns]
    flat.index = frame.index
    return pd.concat([frame.drop(columns=[column]), flat], axis=1)


def oneid_bounds(brand: Brand) -> tuple[int | None, int | None]:
    """The smallest and largest OneID of a brand (``(None, None)`` without people):
    what the engine splits into ranges. Merged people count too, the bounds only have
    to cover everybody (and so both ends are read from the index)."""
    found = Customer.objects.filter(brand=brand).aggregate(low=Min("oneid"), high=Max("oneid"))
    return found["low"], found["high"]


def first_people_range(brand: Brand, limit: int) -> tuple[tuple[int, int] | None, int]:
    """The OneID range ``[lo, hi)`` of the brand's first ``limit`` people (not merged
    into someone else), by OneID, and how many people the brand has (counted up to
    ``limit + 1``: more than ``limit`` means the range is a sample). ``None`` without people."""
    people = Customer.objects.filter(brand=brand, merged_into__isnull=True).order_by("oneid")
    ids = list(people.values_list("oneid", flat=True)[: limit + 1])
    if not ids:
        return None, 0
    if len(ids) > limit:
        return (ids[0], ids[limit]), len(ids)
    return (ids[0], ids[-1] + 1), len(ids)


def load_frames(
    brand: Brand, *, since=None, oneid_range: tuple[int, int] | None = None, orm: bool = False
) -> dict[str, pd.DataFrame]:
    """The engine's input frames of a brand (see :mod:`tagportal.engine.evaluate`):
    ``profiles`` (``oneid`` + attributes), ``events`` and ``orders`` (``oneid``, the
    fields, ``properties.<key>``), for the people not merged into someone else.

    ``since``: only events and orders from that moment on. ``oneid_range``: only the
    people whose OneID is in ``[lo, hi)``, and their events and orders.

    On PostgreSQL the rows come through ``COPY (SELECT …) TO STDOUT``
    (:func:`.bulk.read_rows`); ``orm=True`` reads them through the ORM as elsewhere (the
    same frames, slower)."""
    people = Customer.objects.filter(brand=brand, merged_into__isnull=True)
    # Events and orders are read through their person (``customer__…``): the same brand
    # on both sides lets the database walk the people's (brand, oneid) index.
    activity = {"brand": brand, "customer__brand": brand, "customer__merged_into__isnull": True}
    if oneid_range is not None:
        lo, hi = oneid_range
        people = people.filter(oneid__gte=lo, oneid__lt=hi)
        activity |= {"customer__oneid__gte": lo, "customer__oneid__lt": hi}
    if since is not None:
        activity["time__gte"] = since
    if connection.vendor == "postgresql" and not orm:
        # COPY (SELECT …) TO STDOUT: the same rows, parsed in C (see .bulk)
        profile_rows, event_rows, order_rows = bulk.read_rows(
            brand.pk, since=since, oneid_range=oneid_range, event_fields=_EVENT_FIELDS,
            order_fields=_ORDER_FIELDS,
        )  # fmt: skip
    else:
        # Rows in the models' order within one brand (OneID, then time, then id), without
        # the joins to brand and business line that the default ordering would add.
        profile_rows = list(people.order_by("oneid").values_list("oneid", "attributes"))
        event_rows = _rows(Event.objects.filter(**activity), _EVENT_VALUES)
        order_rows = _rows(Order.objects.filter(**activity), _ORDER_VALUES)
    profiles = pd.DataFrame([{"oneid": o, **(a or {})} for o, a in profile_rows])
    if profiles.empty:
        profiles = pd.DataFrame({"oneid": pd.Series(dtype="int64")})
    event_frame = _frame(event_rows)
    order_frame = _frame(order_rows)
    for name in ("amount", "discount"):
        order_frame[name] = order_frame[name].astype("float64")
    return {
        "profiles": profiles,
        "events": flatten_properties(event_frame),
        "orders": flatten_properties(order_frame),
    }


def _rows(rows, fields: tuple[str, ...]) -> pd.DataFrame:
    rows = rows.order_by("customer__oneid", "time", "pk").values_list(*fields)
    frame = pd.DataFrame(list(rows), columns=list(fields))
    return frame.rename(columns={"customer__oneid": "oneid"})


def _frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def row_counts(brand: Brand) -> dict[str, int]:
    """How many people, events and orders a brand holds: what sizes a computation.

    On PostgreSQL the events and orders are the planner's estimate for the brand (read
    from the statistics in a millisecond, where an exact count of a hundred million rows
    takes seconds); elsewhere, and for people, an exact count."""
    counts = {"people": Customer.objects.filter(brand=brand, merged_into__isnull=True).count()}
    for name, model in (("events", Event), ("orders", Order)):
        rows = model.objects.filter(brand=brand)
        estimate = _planner_rows(rows) if connection.vendor == "postgresql" else None
        counts[name] = estimate if estimate is not None else rows.count()
    return counts


def _planner_rows(queryset) -> int | None:
    """The planner's row estimate of ``queryset`` on PostgreSQL (None if it gives none)."""
    sql, params = queryset.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    try:
        return int(plan[0]["Plan"]["Plan Rows"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
