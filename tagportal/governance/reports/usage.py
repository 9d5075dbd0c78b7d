"""Usage report: how much each tag is used, by kind of use, by client and by week.

One row per tag of the scope that is not a draft, most used first (then by code and
id). Uses are the daily counters of :class:`~tagportal.usage.models.TagUsage`,
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

import pandas as pd
from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import CharField, Max, QuerySet, Sum
from django.db.models.functions import Cast

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Region, Tag
from tagportal.usage.choices import UsageKind
from tagportal.usage.models import TagUsage

from . import ReportScope, tag_brief

WINDOWS = (7, 30, 90)
#: Counters read per round trip.
FETCH_CHUNK = 100_000
#: Ids per ``IN (...)`` list.
IN_CHUNK = 500
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


def _oldest(scope: ReportScope) -> dt.date:
    """The first day any usage figure of the period looks at."""
    end = scope.end
    return min(scope.start, end - _days(max(WINDOWS) - 1), end - _days(2 * TREND_DAYS - 1))


def usage_frame(
    tags: QuerySet, scope: ReportScope, first: dt.date, with_client: bool = False
) -> pd.DataFrame:
    """The daily counters of ``tags`` from ``first`` to the end of the period, as a
    DataFrame of ``tag_id``, ``kind``, ``count`` (and ``client``) and ``age``: days
    before the end of the period (0 on its last day). One query, read as plain rows
    (no model, dict or date object per counter) and summed with pandas."""
    columns = ["tag_id", "day_text", "kind", "count", *(["client"] if with_client else [])]
    query = (
        TagUsage.objects.filter(tag__in=tag_ids(tags), day__gte=first, day__lte=scope.end)
        .order_by()
        .annotate(day_text=Cast("day", output_field=CharField()))  # "YYYY-MM-DD", no date object per row
        .values_list(*columns)
    )
    sql, params = query.query.sql_with_params()
    parts = []
    with connections[query.db].cursor() as cursor:
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(FETCH_CHUNK):
            parts.append(pd.DataFrame.from_records(chunk, columns=columns))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    days = pd.to_datetime(frame.pop("day_text"), format="%Y-%m-%d")
    frame["age"] = (pd.Timestamp(scope.end) - days).dt.days.astype("int64")
    for name in ("tag_id", "count", *(["client"] if with_client else [])):
        frame[name] = frame[name].astype("int64")
    return frame


def _sums(frame: pd.DataFrame, by) -> dict:
    return {key: int(n) for key, n in frame.groupby(by, sort=False)["count"].sum().items() if n}


def usage_by_tag(tags: QuerySet, scope: ReportScope, frame: pd.DataFrame | None = None) -> dict[int, TagUse]:
    """Per tag with any use up to the end of the period: its uses per window and kind,
    within the period, in the trend windows, and its last day of use. Two queries
    (``frame``, from :func:`usage_frame` since ``_oldest(scope)``, saves one)."""
    if frame is None:
        frame = usage_frame(tags, scope, _oldest(scope))
    age = frame["age"]
    found: dict[int, TagUse] = defaultdict(TagUse)
    for w in WINDOWS:
        for (tag_id, kind), n in _sums(frame[age < w], ["tag_id", "kind"]).items():
            found[int(tag_id)].windows[w][kind] = n
    spans = {
        "period": age < scope.days,
        "recent": age < TREND_DAYS,
        "previous": (age >= TREND_DAYS) & (age < 2 * TREND_DAYS),
    }
    for name, mask in spans.items():
        for tag_id, n in _sums(frame[mask], "tag_id").items():
            setattr(found[int(tag_id)], name, n)
    last = (
        TagUsage.objects.filter(tag__in=tag_ids(tags), day__lte=scope.end)
        .order_by()
        .values("tag_id")
        .annotate(last=Max("day"))
    )
    for row in last:
        found[row["tag_id"]].last_used = row["last"]
    return dict(found)


def period_uses(tag_pks, scope: ReportScope) -> dict[int, int]:
    """``{tag id: uses within the period}`` of the tags ``tag_pks``."""
    pks, found = sorted(set(tag_pks)), {}
    for lo in range(0, len(pks), IN_CHUNK):
        rows = (
            TagUsage.objects.filter(
                tag_id__in=pks[lo : lo + IN_CHUNK], day__gte=scope.start, day__lte=scope.end
            )
            .order_by()
            .values("tag_id")
            .annotate(n=Sum("count"))
        )
        found.update({row["tag_id"]: int(row["n"] or 0) for row in rows})
    return found


def weekly_uses(
    tags: QuerySet, scope: ReportScope, frame: pd.DataFrame | None = None
) -> dict[tuple[int, dt.date], int]:
    """``{(tag id, Monday): uses}`` within the period (one query, or none given a
    ``frame`` of :func:`usage_frame` reaching back to the start of the period)."""
    if frame is None:
        frame = usage_frame(tags, scope, scope.start)
    first = monday(scope.start)
    frame = frame[frame["age"] < scope.days]
    week = ((scope.end - first).days - frame["age"]) // 7
    sums = frame.assign(week=week).groupby(["tag_id", "week"], sort=False)["count"].sum()
    return {
        (int(tag_id), first + _days(7 * int(n_week))): int(n) for (tag_id, n_week), n in sums.items() if n
    }


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
    frame = usage_frame(tags_qs, scope, _oldest(scope), with_client=True)
    uses = usage_by_tag(tags_qs, scope, frame)
    weeks = period_weeks(scope.start, scope.end)
    weekly = weekly_uses(tags_qs, scope, frame)
    by_client: dict[int, dict[int, int]] = defaultdict(dict)
    for (tag_id, client), n in _sums(frame[frame["age"] < scope.days], ["tag_id", "client"]).items():
        by_client[int(tag_id)][int(client)] = n

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
