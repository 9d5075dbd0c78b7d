"""Selecting people with an expression: validate it against the brand's tags, load the
tags' current results from the :data:`~.store.STORE`, evaluate on bitmaps.

One query per call reads the tags named, their results' times and the brand's newest
result time (which keys the cached population); bitmaps are read only when a result
changed."""

from __future__ import annotations

from dataclasses import dataclass

from pyroaring import BitMap

from . import expressions as ex
from .store import STORE, BitmapStore, NoResult, evaluate

__all__ = ["NoResult", "Selection", "prepare", "select"]


@dataclass
class Selection:
    expression: dict
    members: BitMap
    population: int
    tag_versions: dict[str, int | None]  # code -> published version of the result used
    tag_ids: dict[str, int]

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def share(self) -> float:
        return self.size / self.population if self.population else 0.0


def prepare(brand, expression) -> tuple[dict, dict[str, ex.TagInfo]]:
    """The validated, normalised expression and the tags it reads; raises
    :class:`~.expressions.ExpressionInvalid` naming unknown tags and values."""
    if isinstance(expression, str):
        expression = ex.parse_text(expression)
    codes = ex.tag_codes(expression)
    tags = ex.brand_tags(brand, codes)
    expression = ex.validate(expression, tags)
    return expression, {code: tags[code] for code in ex.tag_codes(expression)}


COLUMNS = (
    "pk", "code", "name", "value_type", "values", "published_version",
    "computation__pk", "computation__last_calculated_at", "computation__version", "brand_newest",
)  # fmt: skip


def _tags_and_stamps(brand, codes) -> tuple[dict[str, ex.TagInfo], dict[int, tuple], object]:
    """The brand's published tags among ``codes`` with their current results' stamps, and
    the brand's newest result time: one query."""
    from django.db.models import Max, OuterRef, Subquery

    from tagportal.catalog.choices import TagStatus
    from tagportal.catalog.models import Tag
    from tagportal.engine.models import TagComputation

    newest = (
        TagComputation.objects.filter(tag__brand_id=OuterRef("brand_id"))
        .values("tag__brand_id")
        .annotate(at=Max("last_calculated_at"))
        .values("at")[:1]
    )
    rows = (
        Tag.objects.filter(
            brand=brand, code__in=sorted(codes), status__in=[TagStatus.PUBLISHED, TagStatus.DEPRECATED]
        )
        .annotate(brand_newest=Subquery(newest))
        .values_list(*COLUMNS)
    )
    tags, stamps, brand_newest = {}, {}, None
    for pk, code, name, value_type, values, version, computation, stamp, result_version, newest_at in rows:
        tags[code] = ex.TagInfo(pk, code, name, value_type, ex.value_codes(value_type, values), version)
        if computation is not None and result_version is not None:
            stamps[pk] = (computation, stamp, result_version)
        brand_newest = newest_at
    return tags, stamps, brand_newest


def select(brand, expression, store: BitmapStore = STORE) -> Selection:
    """The people of ``brand`` the expression selects. :class:`NoResult` if a tag it
    reads has no computed result yet."""
    if isinstance(expression, str):
        expression = ex.parse_text(expression)
    tags, stamps, brand_newest = _tags_and_stamps(brand, ex.tag_codes(expression))
    expression = ex.validate(expression, tags)
    tags = {code: tags[code] for code in ex.tag_codes(expression)}
    results = store.results(brand.pk, tags, stamps=stamps)
    people = store.people(brand.pk, stamp=brand_newest) if tags else store.people(brand.pk)
    members = evaluate(expression, results, people)
    return Selection(
        expression=expression,
        members=members,
        population=len(people),
        tag_versions={code: result.version for code, result in sorted(results.items())},
        tag_ids={code: info.pk for code, info in sorted(tags.items())},
    )
