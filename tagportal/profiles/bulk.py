"""Bulk loads and reads on PostgreSQL with ``COPY``.

:func:`copy_generated` writes the generator's people, events and orders (see
:func:`tagportal.profiles.generator.generate`) into a brand with ``COPY … FROM STDIN``:
no identities, no history, no OneID resolution (each generated OneID is one person),
for loading tens of millions of rows into a benchmark or a test database.

:func:`copy_frames` is the engine's read of a brand (or of a OneID range) through
``COPY (SELECT …) TO STDOUT``: the same frames as the ORM read of
:func:`tagportal.profiles.loaders.load_frames`, without a Python object per row and
field (CSV parsed by pandas in C; the JSON columns decoded once per row).

:func:`write_events` writes the events other apps record on people (a journey's entries
and exits): one ``INSERT … SELECT FROM unnest(arrays)`` per chunk on PostgreSQL,
``bulk_create`` elsewhere; the same rows either way.
"""

from __future__ import annotations

import io
import json
import math
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from .models import Customer, Event, Order

#: Rows per ``COPY`` write (bounded memory for the CSV text of one chunk).
CHUNK = 200_000


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _json_value(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _json_texts(frame: pd.DataFrame, prefix: str = "") -> list[str]:
    """One JSON object text per row of the columns (named ``prefix<key>``) that are set."""
    columns = [c for c in frame.columns if c.startswith(prefix)] if prefix else list(frame.columns)
    out: list[dict] = [{} for _i in range(len(frame))]
    for column in columns:
        key = column[len(prefix) :]
        values = frame[column]
        present = values.notna().to_numpy(dtype=bool)
        cells = values.to_numpy(dtype=object)
        for pos in np.flatnonzero(present):
            value = _json_value(cells[pos])
            if isinstance(value, float) and not math.isfinite(value):
                continue
            out[pos][key] = value
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    return [dumps(d) for d in out]


def _copy_csv(cursor, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    texts = ", ".join(
        connection.ops.quote_name(c) for c in columns if not pd.api.types.is_numeric_dtype(frame[c])
    )
    force = f", FORCE_NOT_NULL ({texts})" if texts else ""  # an empty text is '', not NULL
    # Django's errors (IntegrityError, …) from the driver's, as through the ORM
    with (
        connection.wrap_database_errors,
        cursor.copy(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv{force})") as copy,
    ):
        for lo in range(0, len(frame), CHUNK):
            buffer = io.StringIO()
            frame.iloc[lo : lo + CHUNK].to_csv(buffer, header=False, index=False, na_rep="")
            copy.write(buffer.getvalue())


def _stamp(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True).dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def copy_generated(brand, frames: dict, *, prefix: str = "bulk") -> dict[str, int]:
    """Write generated ``customers``, ``events`` and ``orders`` into ``brand`` with COPY
    (PostgreSQL only). Client ids are ``<prefix>-e<n>`` / ``<prefix>-o<n>``: give each
    chunk of a large load its own prefix. Answers the rows written."""
    if connection.vendor != "postgresql":
        raise RuntimeError("COPY needs PostgreSQL")
    now = timezone.now().strftime("%Y-%m-%d %H:%M:%S.%f+00")
    customers = frames["customers"]
    oneids = customers["oneid"].to_numpy(dtype="int64")
    people = pd.DataFrame(
        {
            "brand_id": brand.pk,
            "oneid": oneids,
            "attributes": _json_texts(customers.drop(columns=["oneid"])),
            "created": now,
            "last_updated": now,
        }
    )
    counts = {"customers": len(people), "events": 0, "orders": 0}
    with transaction.atomic(), connection.cursor() as django_cursor:
        cursor = django_cursor.cursor
        _copy_csv(cursor, _table(Customer), list(people.columns), people)
        # the new people's ids, by OneID
        lo, hi = (int(oneids.min()), int(oneids.max()) + 1) if len(oneids) else (0, 0)
        ids = _copy_out(
            cursor,
            f"SELECT oneid, id FROM {_table(Customer)} WHERE brand_id = {int(brand.pk)} "
            f"AND oneid >= {lo} AND oneid < {hi}",
            {"oneid": "int64", "id": "int64"},
        ).set_index("oneid")["id"]
        for kind, model in (("events", Event), ("orders", Order)):
            frame = frames[kind]
            if not len(frame):
                continue
            rows = pd.DataFrame(
                {
                    "brand_id": brand.pk,
                    "customer_id": ids.reindex(frame["oneid"].to_numpy()).to_numpy(),
                    "client_id": [f"{prefix}-{kind[0]}{i}" for i in range(len(frame))],
                    "time": _stamp(frame["time"]).to_numpy(),
                    "channel": frame["channel"].astype(object).fillna("").to_numpy(),
                    "store": frame["store"].astype(object).fillna("").to_numpy(),
                    "properties": _json_texts(frame, "properties."),
                    "created": now,
                }
            )
            if kind == "events":
                rows["type"] = frame["type"].astype(object).to_numpy()
                rows["value"] = frame["value"].to_numpy() if "value" in frame else np.nan
            else:
                rows["amount"] = frame["amount"].round(2).map("{:.2f}".format).to_numpy()
                rows["quantity"] = frame["quantity"].to_numpy(dtype="int64")
                rows["category"] = frame["category"].astype(object).fillna("").to_numpy()
                rows["sku"] = frame["sku"].astype(object).fillna("").to_numpy()
                rows["discount"] = frame["discount"].fillna(0).round(2).map("{:.2f}".format).to_numpy()
                rows["items"] = "[]"
            _copy_csv(cursor, _table(model), list(rows.columns), rows)
            counts[kind] = len(rows)
    return counts


# reading ------------------------------------------------------------------------------
def _copy_out(cursor, select: str, dtypes: dict[str, str], params=None) -> pd.DataFrame:
    """The rows of ``select`` as a frame: ``COPY (…) TO STDOUT`` in CSV, parsed by pandas.
    ``dtypes``: column → ``int64`` / ``float64`` / ``str`` / ``json`` / ``time`` (``time``
    read as epoch microseconds)."""
    buffer = io.BytesIO()
    started = time.perf_counter()
    with (
        connection.wrap_database_errors,
        cursor.copy(f"COPY ({select}) TO STDOUT WITH (FORMAT csv)", params) as copy,
    ):
        for block in copy:
            buffer.write(block)
    if connection.queries_logged:  # as a query through the ORM would be (the SELECT read)
        sql = connection.ops.compose_sql(select, params) if params else select
        connection.queries_log.append({"sql": sql, "time": f"{time.perf_counter() - started:.3f}"})
    if not buffer.getbuffer().nbytes:
        return pd.DataFrame([], columns=list(dtypes))  # as the ORM read gives no rows
    buffer.seek(0)
    read_as = {
        n: {"float64": "float64", "int64": "int64", "time": "int64", "str": "str"}.get(t, object)
        for n, t in dtypes.items()
    }
    frame = pd.read_csv(
        buffer,
        header=None,
        names=list(dtypes),
        dtype=read_as,
        keep_default_na=False,
        na_values={n: [""] for n, t in dtypes.items() if t == "float64"},
        engine="c",
    )
    for name, kind in dtypes.items():
        if kind == "json":  # one decode of all the texts as an array (NULL: "")
            texts = [text or "null" for text in frame[name].tolist()]
            frame[name] = json.loads("[" + ",".join(texts) + "]") if texts else []
        elif kind == "time":
            frame[name] = pd.to_datetime(frame[name].to_numpy(dtype="int64"), unit="us", utc=True)
    return frame


_KINDS = {
    "time": "time", "type": "str", "channel": "str", "store": "str", "category": "str", "sku": "str",
    "value": "float64", "amount": "float64", "discount": "float64", "quantity": "int64",
    "properties": "json",
}  # fmt: skip


def _column(model, field: str, alias: str) -> str:
    column = f"{alias}.{connection.ops.quote_name(model._meta.get_field(field).column)}"
    if _KINDS.get(field) == "time":
        # epoch microseconds, exact (EXTRACT answers numeric)
        return f"(EXTRACT(EPOCH FROM {column}) * 1000000)::bigint"
    return column


def read_rows(
    brand_id: int,
    *,
    since=None,
    oneid_range: tuple[int, int] | None = None,
    event_fields: tuple[str, ...],
    order_fields: tuple[str, ...],
):
    """``(profile rows, event rows, order rows)`` of a brand's people not merged into
    someone else (only OneIDs in ``[lo, hi)`` with ``oneid_range``; only events and orders
    from ``since`` on): ``(oneid, attributes)`` pairs in OneID order, and frames of
    ``oneid`` + the fields in (OneID, time, id) order, as the ORM read gives them."""
    people = _table(Customer)
    where = ['c."brand_id" = %(brand)s', 'c."merged_into_id" IS NULL']
    params: dict = {"brand": int(brand_id)}
    if oneid_range is not None:
        where += ['c."oneid" >= %(lo)s', 'c."oneid" < %(hi)s']
        params |= {"lo": int(oneid_range[0]), "hi": int(oneid_range[1])}
    who = " AND ".join(where)
    with connection.cursor() as django_cursor:
        cursor = django_cursor.cursor
        profiles = _copy_out(
            cursor,
            f'SELECT c."oneid", c."attributes" FROM {people} c WHERE {who} ORDER BY c."oneid"',
            {"oneid": "int64", "attributes": "json"},
            params,
        )
        out = []
        for model, fields in ((Event, event_fields), (Order, order_fields)):
            columns = ", ".join(_column(model, f, "a") for f in fields)
            when = ' AND a."time" >= %(since)s' if since is not None else ""
            select = (
                f'SELECT c."oneid", {columns} FROM {_table(model)} a JOIN {people} c '
                f'ON c."id" = a."customer_id" WHERE a."brand_id" = %(brand)s AND {who}{when} '
                'ORDER BY c."oneid", a."time", a."id"'
            )
            out.append(
                _copy_out(
                    cursor,
                    select,
                    {"oneid": "int64", **{f: _KINDS[f] for f in fields}},
                    params | ({"since": since} if since is not None else {}),
                )
            )
    pairs = list(zip(profiles["oneid"].tolist(), profiles["attributes"].tolist(), strict=True))
    return pairs, out[0], out[1]


@contextmanager
def deferred_indexes(*models):
    """Drop the indexes, unique and foreign-key constraints of ``models``' tables (not
    the primary keys nor the checks) and make them again at the end: a large ``COPY``
    into bare tables, then one sorted build per index and one check per foreign key,
    instead of every row updating every index and firing every key's trigger."""
    tables = [model._meta.db_table for model in models]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('u', 'f')",
            [tables],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
            [tables],
        )
        indexes = cursor.fetchall()
        quote = connection.ops.quote_name
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending key checks when altering
        for table, name, _definition in constraints:
            cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
        for name, _definition in indexes:
            cursor.execute(f"DROP INDEX {quote(name)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for _name, definition in indexes:
                cursor.execute(definition)
            for table, name, definition in sorted(constraints, key=lambda c: "FOREIGN" in c[2]):
                cursor.execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")


#: Events per ``INSERT`` of :func:`write_events`.
EVENT_CHUNK = 20_000


def write_events(brand_id: int, rows: list[tuple], channel: str) -> None:
    """Write events ``(oneid, type, client_id, time, properties)`` of ``channel`` on the
    brand's people. People without a profile (or merged into another) are skipped; a
    ``client_id`` written before adds nothing (``ON CONFLICT DO NOTHING``)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        customers = dict(
            Customer.objects.filter(
                brand_id=brand_id, oneid__in={r[0] for r in rows}, merged_into__isnull=True
            ).values_list("oneid", "pk")
        )
        events = [
            Event(
                brand_id=brand_id,
                customer_id=customers[oneid],
                client_id=key,
                type=kind,
                time=at,
                channel=channel,
                properties=properties,
            )
            for oneid, kind, key, at, properties in rows
            if oneid in customers
        ]
        Event.objects.bulk_create(events, batch_size=1000, ignore_conflicts=True)
        return
    from django.core.serializers.json import DjangoJSONEncoder

    sql = (
        f"INSERT INTO {_table(Event)} "
        "(brand_id, customer_id, client_id, type, time, channel, store, properties, created) "
        "SELECT %s, c.id, r.key, r.type, r.time, %s, '', r.properties, %s "
        "FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[], %s::timestamptz[], %s::jsonb[]) "
        "AS r(oneid, type, key, time, properties) "
        f"JOIN {_table(Customer)} c ON c.brand_id = %s AND c.oneid = r.oneid "
        "AND c.merged_into_id IS NULL ON CONFLICT DO NOTHING"
    )
    created = timezone.now()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), EVENT_CHUNK):
            oneids, kinds, keys, ats, properties = zip(*rows[start : start + EVENT_CHUNK], strict=True)
            cursor.execute(
                sql,
                [
                    brand_id,
                    channel,
                    created,
                    list(oneids),
                    list(kinds),
                    list(keys),
                    list(ats),
                    [json.dumps(p, ensure_ascii=False, cls=DjangoJSONEncoder) for p in properties],
                    brand_id,
                ],
            )
