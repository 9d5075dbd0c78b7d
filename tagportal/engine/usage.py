"""How often tag values are read: one counter per tag, Beijing day, kind of read and client.

Every tag value handed out by the profile tag API (``/api/engine/profiles/...``) adds
to :class:`TagUsage`: a request that returns 3 tags of one person adds 1 to each of
those 3 tags' counters; a batch request for 800 people adds, per tag, the number of
people it returned that tag for. A tag the person has no value for is not counted.

Recording is one statement per request, whatever the number of tags
(:func:`record_reads`): an ``INSERT ... ON CONFLICT (tag, day, kind, client) DO
UPDATE SET count = count + excluded.count`` upsert (PostgreSQL and SQLite), so
concurrent requests add up exactly and no row is read first. On other databases it
falls back to one ``UPDATE ... count = count + n`` (an ``F()`` expression) per tag,
creating the rows that do not exist yet.

``client`` is the id of the user or service account that read the values; it is a
plain number, not a foreign key, so usage statistics survive a deleted account.

The model lives in this module (the engine app's ``models.py`` belongs to the
batch engine); it is registered with the app when this module is imported, which
the engine's API, :mod:`.realtime` and the engine's migration ``0003`` do.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from django.db import DatabaseError, IntegrityError, connections, models, router, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tagportal.core.querysets import RestrictedQuerySet

from .models import TAG_SCOPE
from .services import BEIJING

log = logging.getLogger(__name__)

#: Rows per upsert statement (5 parameters each, well below SQLite's limit).
UPSERT_CHUNK = 500


class UsageKind(models.TextChoices):
    API_READ = "api_read", _("API read")


class TagUsage(models.Model):
    """How many values of a tag one client read on one Beijing day, by kind of read."""

    tag = models.ForeignKey(
        "catalog.Tag", on_delete=models.CASCADE, related_name="usage_counts", verbose_name=_("tag")
    )
    day = models.DateField(_("day"), help_text=_("Beijing date."))
    kind = models.CharField(_("kind"), max_length=20, choices=UsageKind.choices)
    client = models.PositiveBigIntegerField(
        _("client"), help_text=_("The id of the user or service account that read the values.")
    )
    count = models.PositiveBigIntegerField(_("values read"), default=0)

    objects = RestrictedQuerySet.as_manager()
    scope = TAG_SCOPE

    class Meta:
        app_label = "engine"
        ordering = ["-day", "tag_id", "kind", "client"]
        verbose_name = _("tag usage")
        verbose_name_plural = _("tag usage")
        constraints = [
            models.UniqueConstraint(fields=["tag", "day", "kind", "client"], name="tag_usage_unique"),
            models.CheckConstraint(condition=Q(kind__in=UsageKind.values), name="tag_usage_kind_valid"),
        ]
        indexes = [models.Index(fields=["day", "kind"], name="tag_usage_day_kind")]

    def __str__(self):
        return f"{self.tag_id} {self.day} {self.kind} {self.client}: {self.count}"


def beijing_today(now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(BEIJING).date()


def record_reads(
    counts: Mapping[int, int],
    client: int,
    kind: str = UsageKind.API_READ,
    day: dt.date | None = None,
) -> int:
    """Add ``counts`` (``{tag id: values read}``) to the tags' counters of ``client``
    for ``day`` (today in Beijing): one statement for all tags. Answers how many
    counters were touched."""
    day = day or beijing_today()
    rows = [(int(tag_id), int(n)) for tag_id, n in sorted(counts.items()) if n > 0]
    if not rows:
        return 0
    alias = router.db_for_write(TagUsage)
    connection = connections[alias]
    if connection.vendor in ("postgresql", "sqlite"):
        _upsert(connection, rows, day, str(kind), int(client))
    else:  # pragma: no cover - the project runs on PostgreSQL and SQLite
        _update_or_create(alias, rows, day, str(kind), int(client))
    return len(rows)


def _upsert(connection, rows, day: dt.date, kind: str, client: int) -> None:
    quote = connection.ops.quote_name
    table = quote(TagUsage._meta.db_table)
    columns = ", ".join(quote(c) for c in ("tag_id", "day", "kind", "client", "count"))
    keys = ", ".join(quote(c) for c in ("tag_id", "day", "kind", "client"))
    count = quote("count")
    day_value = connection.ops.adapt_datefield_value(day)
    for start in range(0, len(rows), UPSERT_CHUNK):
        chunk = rows[start : start + UPSERT_CHUNK]
        values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chunk))
        params = [p for tag_id, n in chunk for p in (tag_id, day_value, kind, client, n)]
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES {values} "
            f"ON CONFLICT ({keys}) DO UPDATE SET {count} = {table}.{count} + excluded.{count}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _update_or_create(alias, rows, day, kind, client) -> None:  # pragma: no cover
    manager = TagUsage.objects.db_manager(alias)
    for tag_id, n in rows:
        with transaction.atomic(using=alias):
            found = manager.filter(tag_id=tag_id, day=day, kind=kind, client=client).update(
                count=F("count") + n
            )
            if not found:
                try:
                    with transaction.atomic(using=alias):
                        manager.create(tag_id=tag_id, day=day, kind=kind, client=client, count=n)
                except IntegrityError:  # created meanwhile
                    manager.filter(tag_id=tag_id, day=day, kind=kind, client=client).update(
                        count=F("count") + n
                    )


def record_reads_safely(counts: Mapping[int, int], client: int, kind: str = UsageKind.API_READ) -> None:
    """:func:`record_reads` for a read request: a failure to count is logged, never
    turned into a failed read (a savepoint keeps a surrounding transaction usable)."""
    try:
        with transaction.atomic():
            record_reads(counts, client, kind)
    except DatabaseError:
        log.exception("could not record the usage of %s tags", len(counts))
