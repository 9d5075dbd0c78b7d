"""Reports: usage, cold tags, merge suggestions and activity.

A report is built by a pure function of its :class:`ReportScope` (business line,
brand, region and period) and the database, ``build(scope) -> {"meta": ..., "rows":
[...]}``, registered in :data:`BUILDERS`. Builders are deterministic: the same scope on
the same data gives the same JSON (rows in a fixed order, times taken from the period,
never from the clock), which is what makes reports idempotent.

:mod:`.service` requests, runs and stores them (:class:`~tagportal.governance.models.Report`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import QuerySet

from tagportal.catalog.models import Brand, BusinessLine, Region, Tag
from tagportal.core.days import BEIJING


@dataclass(frozen=True)
class ReportScope:
    """What a report covers: tags of a business line / brand / region (``None``: all)
    over the Beijing days ``start`` to ``end`` (both included)."""

    start: dt.date
    end: dt.date
    business_line: BusinessLine | None = None
    brand: Brand | None = None
    region: Region | None = None
    params: dict = field(default_factory=dict)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def as_of(self) -> dt.datetime:
        """The end of the period: midnight after ``end`` in Beijing (an aware datetime)."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), tzinfo=BEIJING)

    def tags(self) -> QuerySet:
        """Every tag in the scope, whatever its status."""
        tags = Tag.objects.all()
        if self.business_line is not None:
            tags = tags.filter(business_line=self.business_line)
        if self.brand is not None:
            tags = tags.filter(brand=self.brand)
        if self.region is not None:
            tags = tags.filter(regions__in=Region.descendant_ids(self.region.pk)).distinct()
        return tags


def tag_brief(tag: Tag, region_ids: list[int] | None = None) -> dict:
    """How a row names a tag: enough to show it and to filter it by permission."""
    return {
        "tag": tag.pk,
        "code": tag.code,
        "name": tag.name,
        "name_en": tag.name_en,
        "status": tag.status,
        "version": tag.published_version,
        "business_line": tag.business_line_id,
        "brand": tag.brand_id,
        "category": tag.category_id,
        "regions": sorted(region_ids if region_ids is not None else (r.pk for r in tag.regions.all())),
        "owner": tag.owner_id,
    }


def _builders():
    from . import activity, cold, merge, usage

    return {"usage": usage.build, "cold": cold.build, "merge": merge.build, "activity": activity.build}


def build(kind: str, scope: ReportScope) -> dict:
    return _builders()[kind](scope)
