"""Recording and folding every use of a tag, counted per tag, Beijing day, kind of use and client.

Kinds (:class:`UsageKind`): a value handed out by the profile tag API, a read of the
tag itself through the tag API, use in an audience or a journey, an export, a view of
the tag's page in the portal.

Recording is cheap on the request path and never blocks on a hot counter:
:func:`record` appends one row per tag to :class:`UsageBuffer` in one ``INSERT`` (no
read, no row lock, so concurrent requests never wait for each other). The buffer is
folded into the daily counters of :class:`TagUsage` by :func:`aggregate` (the Celery
task ``aggregate_usage``, scheduled daily and run before every report): in one
transaction it sums the buffered rows up to the newest one it saw, adds the sums with
one ``INSERT ... ON CONFLICT (tag, day, kind, client) DO UPDATE SET count = count +
excluded.count`` upsert per 500 counters (PostgreSQL and SQLite), and deletes exactly
the rows it folded, so rows written meanwhile wait for the next run and nothing is
counted twice. Daily counters older than ``TAGPORTAL_USAGE_RETENTION_DAYS`` (at least
400) are pruned by the same task.

``client`` is the id of the user or service account that used the tag; it is a plain
number, not a foreign key, so usage statistics survive a deleted account.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.db.models import F, Max
from django.utils import timezone

from tagportal.core.days import beijing_date, beijing_today

from .choices import UsageKind
from .models import TagUsage, UsageBuffer

log = logging.getLogger(__name__)

#: Rows per upsert statement (5 parameters each, well below SQLite's limit).
UPSERT_CHUNK = 500
#: Buffered rows read per round trip while aggregating.
AGGREGATE_CHUNK = 5000
#: Daily counters are kept at least this long, whatever the setting says.
MIN_RETENTION_DAYS = 400


def _positive(counts: Mapping[int, int] | Iterable[int]) -> list[tuple[int, int]]:
    if not isinstance(counts, Mapping):
        counts = {tag_id: 1 for tag_id in counts}
    return [(int(tag_id), int(n)) for tag_id, n in sorted(counts.items()) if n > 0]


def record(
    counts: Mapping[int, int] | Iterable[int],
    client: int,
    kind: str = UsageKind.API_READ,
    at: dt.datetime | None = None,
) -> int:
    """Buffer uses of tags: ``counts`` is ``{tag id: uses}`` or tag ids (one use each).
    One ``INSERT`` whatever the number of tags; answers the number of tags recorded."""
    if kind not in UsageKind.values:
        raise ValueError(f"unknown usage kind {kind!r}")
    rows = _positive(counts)
    if not rows:
        return 0
    at = at or timezone.now()
    UsageBuffer.objects.bulk_create(
        [UsageBuffer(tag_id=tag_id, kind=str(kind), client=int(client), count=n, at=at) for tag_id, n in rows]
    )
    return len(rows)


def record_safely(
    counts: Mapping[int, int] | Iterable[int], client: int, kind: str = UsageKind.API_READ
) -> None:
    """:func:`record` on a request path: a failure to count is logged, never turned
    into a failed request (a savepoint keeps a surrounding transaction usable)."""
    if not isinstance(counts, Mapping):
        counts = list(counts)
    try:
        with transaction.atomic():
            record(counts, client, kind)
    except DatabaseError:
        log.exception("could not record the usage of %s tags", len(counts))


def add_counts(
    counts: Mapping[int, int], client: int, kind: str = UsageKind.API_READ, day: dt.date | None = None
) -> int:
    """Add ``counts`` (``{tag id: uses}``) straight to the daily counters of ``client``
    for ``day`` (today in Beijing), bypassing the buffer: for imports of usage from
    elsewhere and for demo data. Answers how many counters were touched."""
    day = day or beijing_today()
    rows = [(tag_id, day, str(kind), int(client), n) for tag_id, n in _positive(counts)]
    add_rows(rows)
    return len(rows)


def add_rows(rows: list[tuple[int, dt.date, str, int, int]]) -> None:
    """Upsert ``(tag id, day, kind, client, count)`` rows into the daily counters."""
    if not rows:
        return
    alias = router.db_for_write(TagUsage)
    connection = connections[alias]
    if connection.vendor in ("postgresql", "sqlite"):
        _upsert(connection, rows)
    else:  # pragma: no cover - the project runs on PostgreSQL and SQLite
        _update_or_create(alias, rows)


def _upsert(connection, rows) -> None:
    quote = connection.ops.quote_name
    table = quote(TagUsage._meta.db_table)
    columns = ", ".join(quote(c) for c in ("tag_id", "day", "kind", "client", "count"))
    keys = ", ".join(quote(c) for c in ("tag_id", "day", "kind", "client"))
    count = quote("count")
    for start in range(0, len(rows), UPSERT_CHUNK):
        chunk = rows[start : start + UPSERT_CHUNK]
        values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
        params = [
            p
            for tag_id, day, kind, client, n in chunk
            for p in (tag_id, connection.ops.adapt_datefield_value(day), kind, client, n)
        ]
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES {values} "
            f"ON CONFLICT ({keys}) DO UPDATE SET {count} = {table}.{count} + excluded.{count}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _update_or_create(alias, rows) -> None:  # pragma: no cover
    manager = TagUsage.objects.db_manager(alias)
    for tag_id, day, kind, client, n in rows:
        key = {"tag_id": tag_id, "day": day, "kind": kind, "client": client}
        with transaction.atomic(using=alias):
            if not manager.filter(**key).update(count=F("count") + n):
                try:
                    with transaction.atomic(using=alias):
                        manager.create(**key, count=n)
                except IntegrityError:  # created meanwhile
                    manager.filter(**key).update(count=F("count") + n)


def retention_days() -> int:
    return max(MIN_RETENTION_DAYS, int(getattr(settings, "TAGPORTAL_USAGE_RETENTION_DAYS", 730)))


#: Key of the PostgreSQL advisory lock that lets one aggregation run at a time.
AGGREGATE_LOCK = 0x7461_6775  # "tagu"


def _serialise_aggregations() -> None:
    """Two aggregations at once would both read the rows before either deletes them and
    count them twice: on PostgreSQL they take turns (a transaction-level advisory lock);
    SQLite lets one writer in at a time anyway."""
    connection = connections[router.db_for_write(UsageBuffer)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AGGREGATE_LOCK])


def aggregate(now: dt.datetime | None = None) -> dict[str, int]:
    """Fold the buffer into the daily counters and prune counters past retention.

    Safe to run at any time, concurrently with recording and with another aggregation:
    it folds the rows up to the newest id it saw once it had the lock, and deletes
    exactly those."""
    with transaction.atomic():
        _serialise_aggregations()
        newest = UsageBuffer.objects.aggregate(newest=Max("pk"))["newest"]
        sums: dict[tuple[int, dt.date, str, int], int] = defaultdict(int)
        folded = 0
        if newest is not None:
            rows = UsageBuffer.objects.filter(pk__lte=newest).values_list(
                "tag_id", "kind", "client", "count", "at"
            )
            for tag_id, kind, client, count, at in rows.iterator(chunk_size=AGGREGATE_CHUNK):
                sums[(tag_id, beijing_date(at), kind, client)] += count
                folded += 1
        existing = (
            set(TagUsage.tag.field.related_model.objects.values_list("pk", flat=True)) if sums else set()
        )
        add_rows([(*key, n) for key, n in sorted(sums.items()) if key[0] in existing])
        if newest is not None:
            UsageBuffer.objects.filter(pk__lte=newest).delete()
    cutoff = beijing_today(now) - dt.timedelta(days=retention_days())
    pruned, _detail = TagUsage.objects.filter(day__lt=cutoff).delete()
    return {"folded": folded, "counters": len(sums), "pruned": pruned}
