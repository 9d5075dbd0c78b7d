"""Selecting people with an expression: validate it against the brand's tags, load the
tags' current results from the :data:`~.store.STORE`, evaluate on bitmaps.

One query per call reads the tags named, their results' times and the brand's newest
result time (which keys the cached population); bitmaps are read only when a result
changed."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from django.utils.dateparse import parse_datetime
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
    :class:`~tagportal.rules.definitions.RuleValidationError` naming unknown tags and values."""
    if isinstance(expression, str):
        expression = ex.parse_text(expression)
    codes = ex.tag_codes(expression)
    tags = ex.brand_tags(brand, codes)
    expression = ex.validate(expression, tags)
    return expression, {code: tags[code] for code in ex.tag_codes(expression)}


_SQL: dict[str, str] = {}


def _sql(connection) -> str:
    """The query of :func:`_tags_and_stamps`, written once per database vendor: the
    builder calls it on every change, and compiling it through the ORM each time cost
    more than running it."""
    if connection.vendor not in _SQL:
        from tagportal.catalog.models import Tag
        from tagportal.engine.models import TagComputation

        q = connection.ops.quote_name
        tag, computation = q(Tag.table_name()), q(TagComputation.table_name())
        _SQL[connection.vendor] = (
            f"SELECT t.{q('id')}, t.{q('code')}, t.{q('name')}, t.{q('value_type')}, t.{q('values')}, "
            f"t.{q('published_version')}, c.{q('id')}, c.{q('last_calculated_at')}, c.{q('version')}, "
            f"(SELECT MAX(c2.{q('last_calculated_at')}) FROM {computation} c2 "
            f"JOIN {tag} t2 ON c2.{q('tag_id')} = t2.{q('id')} WHERE t2.{q('brand_id')} = %s) "
            f"FROM {tag} t LEFT JOIN {computation} c ON c.{q('tag_id')} = t.{q('id')} "
            f"WHERE t.{q('brand_id')} = %s AND t.{q('status')} IN (%s, %s) AND t.{q('code')} IN ({{codes}})"
        )
    return _SQL[connection.vendor]


def _datetime(value):
    """A time as the ORM gives it (aware, UTC on SQLite, which hands back text)."""
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = parse_datetime(str(value))
    return parsed.replace(tzinfo=dt.UTC) if parsed is not None and parsed.tzinfo is None else parsed


def _tags_and_stamps(brand, codes) -> tuple[dict[str, ex.TagInfo], dict[int, tuple], object]:
    """The brand's published tags among ``codes`` with their current results' stamps, and
    the brand's newest result time: one query."""
    from django.db import connections, router

    from tagportal.catalog.choices import TagStatus
    from tagportal.catalog.models import Tag

    codes = sorted(codes)
    tags, stamps, brand_newest = {}, {}, None
    if not codes:
        return tags, stamps, brand_newest
    connection = connections[router.db_for_read(Tag)]
    sql = _sql(connection).replace("{codes}", ", ".join(["%s"] * len(codes)))
    params = [brand.pk, brand.pk, TagStatus.PUBLISHED, TagStatus.DEPRECATED, *codes]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for pk, code, name, value_type, values, version, computation, stamp, result_version, newest_at in rows:
        if isinstance(values, str | bytes):
            values = json.loads(values)
        tags[code] = ex.TagInfo(pk, code, name, value_type, ex.value_codes(value_type, values), version)
        if computation is not None and result_version is not None:
            stamps[pk] = (computation, _datetime(stamp), result_version)
        brand_newest = _datetime(newest_at)
    return tags, stamps, brand_newest


def select(brand, expression, store: BitmapStore = STORE) -> Selection:
    """The people of ``brand`` the expression selects. :class:`NoResult` if a tag it
    reads has no computed result yet."""
    if isinstance(expression, str):
        expression = ex.parse_text(expression)
    codes = ex.tag_codes(expression)
    tags, stamps, brand_newest = _tags_and_stamps(brand, codes)
    if codes - set(tags):  # old codes of recoded or merged tags resolve through their aliases
        from tagportal.catalog.restructure import resolve_aliases

        mapping = resolve_aliases(brand.pk, codes - set(tags))
        if mapping:
            expression = ex.rename_tags(expression, mapping)
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
