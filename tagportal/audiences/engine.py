"""Selecting people with an expression: validate it against the brand's tags, load the
tags' current results from the :data:`~.store.STORE`, evaluate on bitmaps.

Three small queries per call (the tags named, their results' times, the brand's
population time); bitmaps are read only when a result changed."""

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


def select(brand, expression, store: BitmapStore = STORE) -> Selection:
    """The people of ``brand`` the expression selects. :class:`NoResult` if a tag it
    reads has no computed result yet."""
    expression, tags = prepare(brand, expression)
    results = store.results(brand.pk, tags)
    people = store.people(brand.pk)
    members = evaluate(expression, results, people)
    return Selection(
        expression=expression,
        members=members,
        population=len(people),
        tag_versions={code: result.version for code, result in sorted(results.items())},
        tag_ids={code: info.pk for code, info in sorted(tags.items())},
    )
