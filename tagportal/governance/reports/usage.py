"""Usage report: how much each tag is used, by kind of use, by client and by week.

One row per tag of the scope that is not a draft, most used first (then by code and
id). Uses are the daily counters of :class:`~tagportal.engine.usage.TagUsage`,
summed in the database with a few ``GROUP BY`` queries (never one query per tag):

- ``uses``: per window of 7, 30 and 90 days ending on the last day of the period
  (included), the uses of every kind and their ``total``;
- ``total``: the uses within the period; ``by_client``: the same per client;
- ``weekly``: the uses per Beijing week (Monday to Sunday) of ``meta.weeks``, the
  weeks the period touches (the first and last may be partial);
- ``last_used``: the last day with any use up to the end of the period, even before
  its start (``null`` if never).

The trend compares the 30 days ending on the last day of the period (*recent*) with
the 30 days before them (*previous*):

- ``unused``: no use in either;
- ``falling``: *previous* ≥ 5 and *recent* < 50 % of *previous*;
- ``rising``: *recent* ≥ 5 and *recent* > 150 % of *previous*;
- ``flat``: anything else.

``trend_change`` is *recent* / *previous* − 1 (rounded to 4 places), ``null`` when
*previous* is 0.

The helpers below (regions, briefs, usage sums) serve the other reports too.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db.models import BigIntegerField, Case, F, Max, QuerySet, Sum, Value, When
from django.db.models.functions import TruncWeek

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Region, Tag
from tagportal.engine.usage import TagUsage, UsageKind

from . import ReportScope, tag_brief

WINDOWS = (7, 30, 90)
#: Days compared by the trend: the last ``TREND_DAYS`` against the ``TREND_DAYS`` before.
TREND_DAYS = 30
#: Uses needed, in the compared window, before a change counts as a trend.
TREND_MIN_USES = 5
#: Falling: recent below this share of previous; rising: above ``RISING_ABOVE``.
FALLING_BELOW = 0.5
RISING_ABOVE = 1.5

#: The tag fields :func:`~tagportal.governance.reports.tag_brief` reads.
BRIEF_FIELDS = (
    "code",
    "name",
    "name_en",
    "status",
    "published_version",
    "business_line",
    "brand",
    "category",
    "owner",
)


# ---------------------------------------------------------------------------
# Helpers shared by the reports


def monday(day: dt.date) -> dt.date:
    """The Monday of ``day``'s (ISO, Beijing) week."""
    return day - dt.timedelta(days=day.weekday())


def period_weeks(start: dt.date, end: dt.date) -> list[dt.date]:
    """The Mondays of the weeks that ``start`` .. ``end`` touches, ascending."""
    weeks, week = [], monday(start)
    while week <= end:
        weeks.append(week)
        week += dt.timedelta(days=7)
    return weeks


def start_of(scope: ReportScope) -> dt.datetime:
    """The beginning of the period: midnight starting ``scope.start`` in Beijing."""
    return scope.as_of - dt.timedelta(days=scope.days)


def tag_ids(tags: QuerySet) -> QuerySet:
    """``tags`` as a subquery of primary keys (for ``tag__in=``)."""
    return tags.order_by().values("pk")


def tag_regions(tags: QuerySet) -> dict[int, list[int]]:
    """``{tag id: [region ids, ascending]}`` of ``tags`` in one query (tags without a
    region are left out)."""
    regions: dict[int, list[int]] = defaultdict(list)
    rows = (
        Tag.regions.through.objects.filter(tag_id__in=tag_ids(tags))
        .order_by("tag_id", "region_id")
        .values_list("tag_id", "region_id")
    )
    for tag_id, region_id in rows:
        regions[tag_id].append(region_id)
    return regions


def brief_tags(tags: QuerySet, *extra: str) -> list[Tag]:
    """The tags with only what a brief (and ``extra`` fields) needs, by id."""
    return list(tags.only(*BRIEF_FIELDS, *extra).order_by("pk"))


def brief(tag: Tag, regions: dict[int, list[int]]) -> dict:
    return tag_brief(tag, regions.get(tag.pk, []))


def period_json(scope: ReportScope) -> list[str]:
    return [scope.start.isoformat(), scope.end.isoformat()]


def _sum_when(**lookups) -> Sum:
    return Sum(Case(When(then=F("count"), **lookups), default=Value(0), output_field=BigIntegerField()))


def _days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


@dataclass
class TagUse:
    """The uses of one tag around a period."""

    windows: dict[int, dict[str, int]] = field(
        default_factory=lambda: {w: dict.fromkeys(UsageKind.values, 0) for w in WINDOWS}
    )
    period: int = 0
    recent: int = 0
    previous: int = 0
    last_used: dt.date | None = None

    @property
    def uses_90(self) -> int:
        return sum(self.windows[90].values())


def usage_by_tag(tags: QuerySet, scope: ReportScope) -> dict[int, TagUse]:
    """Per tag with any use up to the end of the period: its uses per window and kind,
    within the period, in the trend windows, and its last day of use. Two queries."""
    end = scope.end
    oldest = min(scope.start, end - _days(max(WINDOWS) - 1), end - _days(2 * TREND_DAYS - 1))
    counters = TagUsage.objects.filter(tag__in=tag_ids(tags)).order_by()
    rows = (
        counters.filter(day__gte=oldest, day__lte=end)
        .values("tag_id", "kind")
        .annotate(
            **{f"w{w}": _sum_when(day__gte=end - _days(w - 1)) for w in WINDOWS},
            period=_sum_when(day__gte=scope.start),
            recent=_sum_when(day__gte=end - _days(TREND_DAYS - 1)),
            previous=_sum_when(day__gte=end - _days(2 * TREND_DAYS - 1), day__lte=end - _days(TREND_DAYS)),
        )
    )
    found: dict[int, TagUse] = defaultdict(TagUse)
    for row in rows:
        use = found[row["tag_id"]]
        for w in WINDOWS:
            use.windows[w][row["kind"]] = int(row[f"w{w}"] or 0)
        use.period += int(row["period"] or 0)
        use.recent += int(row["recent"] or 0)
        use.previous += int(row["previous"] or 0)
    last = counters.filter(day__lte=end, count__gt=0).values("tag_id").annotate(last=Max("day"))
    for row in last:
        found[row["tag_id"]].last_used = row["last"]
    return dict(found)


def period_uses(tags: QuerySet, scope: ReportScope) -> dict[int, int]:
    """``{tag id: uses within the period}`` in one query."""
    rows = (
        TagUsage.objects.filter(tag__in=tag_ids(tags), day__gte=scope.start, day__lte=scope.end)
        .order_by()
        .values("tag_id")
        .annotate(n=Sum("count"))
    )
    return {row["tag_id"]: int(row["n"] or 0) for row in rows}


def weekly_uses(tags: QuerySet, scope: ReportScope) -> dict[tuple[int, dt.date], int]:
    """``{(tag id, Monday): uses}`` within the period, in one query."""
    rows = (
        TagUsage.objects.filter(tag__in=tag_ids(tags), day__gte=scope.start, day__lte=scope.end)
        .order_by()
        .annotate(week=TruncWeek("day"))
        .values("tag_id", "week")
        .annotate(n=Sum("count"))
    )
    out: dict[tuple[int, dt.date], int] = defaultdict(int)
    for row in rows:
        week = row["week"]
        if isinstance(week, dt.datetime):  # some backends answer a timestamp
            week = week.date()
        out[(row["tag_id"], monday(week))] += int(row["n"] or 0)
    return dict(out)


def trend(recent: int, previous: int) -> str:
    """``rising``, ``falling``, ``flat`` or ``unused`` (see the module docstring)."""
    if not recent and not previous:
        return "unused"
    if previous >= TREND_MIN_USES and recent < FALLING_BELOW * previous:
        return "falling"
    if recent >= TREND_MIN_USES and recent > RISING_ABOVE * previous:
        return "rising"
    return "flat"


def trend_change(recent: int, previous: int) -> float | None:
    return round(recent / previous - 1, 4) if previous else None


def client_names(client_ids) -> dict[str, str]:
    """``{"<id>": display name or user name}`` of the clients, ``"#<id>"`` for a deleted one."""
    ids = sorted(set(client_ids))
    users = {
        pk: display_name or username
        for pk, display_name, username in get_user_model()
        .objects.filter(pk__in=ids)
        .values_list("pk", "display_name", "username")
    }
    return {str(pk): users.get(pk, f"#{pk}") for pk in ids}


def region_names(region_ids) -> dict[str, str]:
    ids = sorted({pk for pk in region_ids if pk is not None})
    return {
        str(pk): name
        for pk, name in Region.objects.filter(pk__in=ids).order_by("pk").values_list("pk", "name")
    }


# ---------------------------------------------------------------------------
# The report


def build(scope: ReportScope) -> dict:
    tags_qs = scope.tags().exclude(status=TagStatus.DRAFT)
    tags = brief_tags(tags_qs)
    regions = tag_regions(tags_qs)
    uses = usage_by_tag(tags_qs, scope)
    weeks = period_weeks(scope.start, scope.end)
    weekly = weekly_uses(tags_qs, scope)
    by_client: dict[int, dict[int, int]] = defaultdict(dict)
    client_rows = (
        TagUsage.objects.filter(tag__in=tag_ids(tags_qs), day__gte=scope.start, day__lte=scope.end)
        .order_by()
        .values("tag_id", "client")
        .annotate(n=Sum("count"))
    )
    for row in client_rows:
        if row["n"]:
            by_client[row["tag_id"]][row["client"]] = int(row["n"])

    rows = []
    for tag in tags:
        use = uses.get(tag.pk) or TagUse()
        windows = {str(w): {**use.windows[w], "total": sum(use.windows[w].values())} for w in WINDOWS}
        clients = by_client.get(tag.pk, {})
        rows.append(
            {
                **brief(tag, regions),
                "uses": windows,
                "total": use.period,
                "by_client": {str(client): clients[client] for client in sorted(clients)},
                "weekly": [weekly.get((tag.pk, week), 0) for week in weeks],
                "trend": trend(use.recent, use.previous),
                "trend_change": trend_change(use.recent, use.previous),
                "last_used": use.last_used.isoformat() if use.last_used else None,
            }
        )
    rows.sort(key=lambda row: (-row["total"], row["code"], row["tag"]))
    return {
        "meta": {
            "windows": list(WINDOWS),
            "kinds": list(UsageKind.values),
            "weeks": [week.isoformat() for week in weeks],
            "clients": client_names(c for clients in by_client.values() for c in clients),
            "period": period_json(scope),
        },
        "rows": rows,
    }
