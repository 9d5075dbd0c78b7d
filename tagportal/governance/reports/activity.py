"""Activity report: what happened to the dictionary, week by week.

Per Beijing ISO week (named by its Monday) of the period, per business line, brand and
region, the number of tags:

- ``created``: tags created that week (``Tag.created``);
- ``changed``: edits to tags that week (their history records of type "~": any save,
  publishing and status changes included);
- ``approved``: tag changes approved that week (the items of change requests approved
  or applied whose decision, ``decided_at``, fell in the week);
- ``used``: uses of tags that week (the daily usage counters);
- ``retired``: tags that became retired that week (a history record with status
  "retired" whose previous record had another status).

A tag counts under each of its regions (within the report's region when it has one);
a tag without a region under region ``null``. Rows only exist for non-zero counts,
sorted by week, business line, brand and region (``null`` first). ``meta.totals``
counts each tag once, whatever its number of regions, and ``meta.brand_totals`` the
same per brand (a viewer who may see some brands only is shown the sum of theirs).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db.models import Count
from django.db.models.functions import TruncDate

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Brand, BusinessLine, Region, Tag
from tagportal.core.days import BEIJING

from ..choices import RequestState
from ..models import ChangeItem
from . import ReportScope
from .usage import (
    monday,
    period_json,
    period_weeks,
    region_names,
    start_of,
    tag_ids,
    tag_regions,
    weekly_uses,
)

MEASURES = ("created", "changed", "approved", "used", "retired")


def _week_of(moment: dt.datetime | dt.date) -> dt.date:
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(BEIJING).date()
    return monday(moment)


def _counts(scope: ReportScope, tags_qs) -> dict[str, dict[tuple[int, dt.date], int]]:
    """``{measure: {(tag id, Monday): n}}``."""
    start, end = start_of(scope), scope.as_of
    ids = tag_ids(tags_qs)
    counts: dict[str, dict[tuple[int, dt.date], int]] = {m: defaultdict(int) for m in MEASURES}

    for pk, created in (
        tags_qs.filter(created__gte=start, created__lt=end).order_by().values_list("pk", "created")
    ):
        counts["created"][(pk, _week_of(created))] += 1

    history = Tag.history.filter(id__in=ids).order_by()
    changed = (
        history.filter(history_type="~", history_date__gte=start, history_date__lt=end)
        .annotate(day=TruncDate("history_date", tzinfo=BEIJING))
        .values("id", "day")
        .annotate(n=Count("history_id"))
    )
    for row in changed:
        counts["changed"][(row["id"], _week_of(row["day"]))] += row["n"]

    items = ChangeItem.objects.filter(
        tag__in=ids,
        change_request__state__in=[RequestState.APPROVED, RequestState.APPLIED],
        change_request__decided_at__gte=start,
        change_request__decided_at__lt=end,
    ).values_list("tag_id", "change_request__decided_at")
    for pk, decided_at in items:
        counts["approved"][(pk, _week_of(decided_at))] += 1

    for key, n in weekly_uses(tags_qs, scope).items():
        counts["used"][key] += n

    retiring = set(
        history.filter(status=TagStatus.RETIRED, history_date__gte=start, history_date__lt=end).values_list(
            "id", flat=True
        )
    )
    if retiring:
        previous: dict[int, str] = {}
        records = (
            Tag.history.filter(id__in=sorted(retiring), history_date__lt=end)
            .order_by("id", "history_date", "history_id")
            .values_list("id", "history_date", "status")
        )
        for pk, at, status in records:
            before = previous.get(pk)
            if (
                status == TagStatus.RETIRED
                and before is not None
                and before != TagStatus.RETIRED
                and at >= start
            ):
                counts["retired"][(pk, _week_of(at))] += 1
            previous[pk] = status
    return counts


def build(scope: ReportScope) -> dict:
    tags_qs = scope.tags()
    counts = _counts(scope, tags_qs)
    owners = {
        pk: (line, brand)
        for pk, line, brand in tags_qs.order_by().values_list("pk", "business_line_id", "brand_id")
    }
    regions = tag_regions(tags_qs)
    allowed = set(Region.descendant_ids(scope.region.pk)) if scope.region is not None else None

    cells: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MEASURES, 0))
    totals = dict.fromkeys(MEASURES, 0)
    brand_totals: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(MEASURES, 0))
    week_brand_totals: dict[int, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(MEASURES, 0))
    )
    for measure, found in counts.items():
        for (pk, week), n in found.items():
            if not n or pk not in owners:
                continue
            line, brand = owners[pk]
            tag_regions_ = [r for r in regions.get(pk, []) if allowed is None or r in allowed] or [None]
            for region in tag_regions_:
                cells[(week, line, brand, region)][measure] += n
            totals[measure] += n
            brand_totals[brand][measure] += n
            week_brand_totals[brand][week.isoformat()][measure] += n

    rows = [
        {
            "week": week.isoformat(),
            "business_line": line,
            "brand": brand,
            "region": region,
            **values,
        }
        for (week, line, brand, region), values in sorted(
            cells.items(), key=lambda item: (*item[0][:3], -1 if item[0][3] is None else item[0][3])
        )
        if any(values.values())
    ]
    lines = sorted({row["business_line"] for row in rows})
    brands = sorted({row["brand"] for row in rows})
    return {
        "meta": {
            "weeks": [week.isoformat() for week in period_weeks(scope.start, scope.end)],
            "business_lines": {
                str(pk): name
                for pk, name in BusinessLine.objects.filter(pk__in=lines)
                .order_by("pk")
                .values_list("pk", "name")
            },
            "brands": {
                str(pk): name
                for pk, name in Brand.objects.filter(pk__in=brands).order_by("pk").values_list("pk", "name")
            },
            "regions": region_names(row["region"] for row in rows),
            "period": period_json(scope),
            "totals": totals,
            # Per brand, each tag once: the totals of the brands a viewer may see.
            "brand_totals": {str(brand): brand_totals[brand] for brand in sorted(brand_totals)},
            # Per brand and week, each tag once: what a chart over whole brands draws.
            "week_brand_totals": {
                str(brand): {week: dict(values) for week, values in sorted(week_brand_totals[brand].items())}
                for brand in sorted(week_brand_totals)
            },
        },
        "rows": rows,
    }
