"""The realtime tags of a brand, ready to evaluate for one person (see :mod:`.realtime`).

:func:`realtime_specs` answers a brand's published tags whose refresh mode is
*realtime*, from their published snapshots, validated once, with what they read:
the other tags (batch or manual tags give the person's stored values), the columns of
each source and the widest window each source is read with (:class:`Lookback`).

The answer is cached per process and brand under the ``(tag id, published version)``
pairs of the brand's realtime tags; one small query per event checks that key, so
publishing a version, retiring a tag or changing its refresh mode is picked up by
every process at its next event.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from django.db.models import Q
from django.utils.translation import gettext as _

from tagportal.catalog.choices import RefreshMode, TagStatus
from tagportal.catalog.models import Brand, Tag, TagVersion
from tagportal.core.days import BEIJING
from tagportal.rules.definitions import RuleValidationError, tag_references, validate_definition

from . import frames as fr
from . import services
from .evaluate import TagSpec

log = logging.getLogger(__name__)

SOURCES = ("events", "orders")


@dataclass
class Lookback:
    """How far back a source's rows are needed: everything, or whole Beijing days."""

    unbounded: bool = False
    days: int = 0  # the largest ``last_days``
    first_day: int | None = None  # the earliest ``between`` start (days since 1970-01-01)

    def widen(self, window) -> None:
        if not window or not isinstance(window, Mapping):
            self.unbounded = True
            return
        try:
            if "last_days" in window:
                self.days = max(self.days, int(window["last_days"]))
                return
            if "between" in window:
                day = fr.date_to_day(window["between"][0])
                self.first_day = day if self.first_day is None else min(self.first_day, day)
                return
        except (TypeError, ValueError, IndexError, KeyError):
            pass
        self.unbounded = True

    def since(self, as_of: dt.datetime) -> dt.datetime | None:
        """The first moment needed (Beijing midnight), or None for every row."""
        if self.unbounded:
            return None
        days = []
        if self.days:
            days.append(fr.beijing_day(as_of) - self.days + 1)
        if self.first_day is not None:
            days.append(self.first_day)
        if not days:
            return None
        first = fr.EPOCH + dt.timedelta(days=min(days))
        return dt.datetime(first.year, first.month, first.day, tzinfo=BEIJING)


def _source_nodes(definitions: Iterable) -> Iterator[Mapping]:
    """Every node of the definitions that reads a source (events / orders)."""

    def visit(node):
        if isinstance(node, Mapping):
            if node.get("source") in SOURCES:
                yield node
            for value in node.values():
                yield from visit(value)
        elif isinstance(node, list):
            for value in node:
                yield from visit(value)

    for doc in definitions:
        yield from visit(doc)


def source_fields(definitions: Iterable) -> dict[str, set[str]]:
    """Per source (events / orders), the fields the definitions read (aggregated,
    filtered on, picked): only those columns are loaded for one person."""
    found: dict[str, set[str]] = {}
    for node in _source_nodes(definitions):
        fields = found.setdefault(node["source"], set())
        if isinstance(node.get("field"), str):
            fields.add(node["field"])
        for predicate in node.get("where") or ():
            if isinstance(predicate, Mapping) and isinstance(predicate.get("field"), str):
                fields.add(predicate["field"])
    return found


def lookbacks(definitions: Iterable) -> dict[str, Lookback]:
    """Per source (events / orders), the widest window the definitions read it with."""
    found: dict[str, Lookback] = {}
    for node in _source_nodes(definitions):
        window = None if "days_since" in node else node.get("window")
        found.setdefault(node["source"], Lookback()).widen(window)
    return found


@dataclass(frozen=True)
class RealtimeTag:
    tag_id: int
    code: str
    name: str
    version: int
    spec: TagSpec


@dataclass
class RealtimeSpecs:
    """The published realtime tags of a brand, ready to evaluate."""

    key: tuple
    tags: dict[int, RealtimeTag] = field(default_factory=dict)
    #: tag code -> why it cannot be evaluated (missing snapshot, invalid definition).
    errors: dict[str, str] = field(default_factory=dict)
    #: codes of the tags they read that are not evaluated here -> value type.
    reads: dict[str, str] = field(default_factory=dict)
    lookback: dict[str, Lookback] = field(default_factory=dict)
    #: source -> the fields read (columns to load).
    fields: dict[str, set[str]] = field(default_factory=dict)

    @property
    def specs(self) -> list[TagSpec]:
        return [t.spec for t in self.tags.values()]


_SPECS: dict[int, RealtimeSpecs] = {}
_SPECS_LOCK = threading.Lock()


def _spec_key(brand: Brand) -> tuple:
    return tuple(
        Tag.objects.filter(brand=brand, status=TagStatus.PUBLISHED, refresh_mode=RefreshMode.REALTIME)
        .order_by("pk")
        .values_list("pk", "published_version")
    )


def realtime_specs(brand: Brand) -> RealtimeSpecs:
    """The brand's published realtime tags, from the per-process cache when their
    published versions did not change (one query checks that)."""
    key = _spec_key(brand)
    cached = _SPECS.get(brand.pk)
    if cached is not None and cached.key == key:
        return cached
    built = _build_specs(brand, key)
    with _SPECS_LOCK:
        _SPECS[brand.pk] = built
    return built


def clear_spec_cache() -> None:
    with _SPECS_LOCK:
        _SPECS.clear()


def _build_specs(brand: Brand, key: tuple) -> RealtimeSpecs:
    built = RealtimeSpecs(key=key)
    if not key:
        return built
    candidates = _published_realtime_tags(key, built.errors)
    referenced = set().union(*(tag_references(t.spec.definition) for t in candidates.values()))
    types = _value_types(brand, candidates.values(), referenced)
    for tag_id, tag in candidates.items():
        problem = _definition_problem(tag.spec, types)
        if problem is None:
            built.tags[tag_id] = tag
        else:
            built.errors[tag.code] = problem
    definitions = [t.spec.definition for t in built.tags.values()]
    evaluated = {t.code for t in built.tags.values()}
    built.reads = {code: types[code] for code in sorted(referenced - evaluated) if code in types}
    built.lookback = lookbacks(definitions)
    built.fields = source_fields(definitions)
    if built.errors:
        log.warning("realtime tags of %s that cannot be evaluated: %s", brand.code, built.errors)
    return built


def _published_realtime_tags(key: tuple, errors: dict[str, str]) -> dict[int, RealtimeTag]:
    """The tags of ``key`` as their published versions say, by tag id: those whose
    published version is a batch or a manual tag are left out, those whose version is
    missing go to ``errors``."""
    condition = Q()
    for tag_id, version in key:
        condition |= Q(tag_id=tag_id, version=version)
    versions = {v.tag_id: v for v in TagVersion.objects.filter(condition).select_related("tag")}
    codes_by_id = dict(Tag.objects.filter(pk__in=[tag_id for tag_id, _v in key]).values_list("pk", "code"))
    found: dict[int, RealtimeTag] = {}
    for tag_id, version in key:
        snapshot = versions.get(tag_id)
        if snapshot is None:
            errors[codes_by_id.get(tag_id, str(tag_id))] = _(
                "Published version %(n)s of the tag is missing."
            ) % {"n": version}
            continue
        snap = snapshot.snapshot or {}
        if snap.get("refresh_mode", RefreshMode.REALTIME) != RefreshMode.REALTIME:
            continue  # the live field was edited, the published version is a batch tag
        spec = services.spec_of(snapshot)
        if isinstance(spec.definition, dict) and spec.definition.get("type") == "manual":
            continue  # values come from uploaded lists
        found[tag_id] = RealtimeTag(tag_id, spec.code, snap.get("name") or snapshot.tag.name, version, spec)
    return found


def _value_types(brand: Brand, tags: Iterable[RealtimeTag], referenced: set[str]) -> dict[str, str]:
    """Value types by code: of the realtime tags and of the brand's tags they read."""
    tags = list(tags)
    codes = {t.code for t in tags}
    types = dict(
        Tag.objects.filter(brand=brand, code__in=sorted(referenced - codes)).values_list("code", "value_type")
    )
    types.update({t.code: t.spec.value_type for t in tags})
    return types


def _definition_problem(spec: TagSpec, types: Mapping[str, str]) -> str | None:
    """Why the tag's definition cannot be evaluated, or None."""
    values = [str(v["code"]) if isinstance(v, dict) else str(v) for v in spec.values or () if v is not None]
    try:
        validate_definition(
            spec.definition,
            spec.value_type,
            values if spec.value_type == "enum" and values else None,
            known_tag=types.get,
        )
    except RuleValidationError as exc:
        return _("Invalid definition: %(error)s") % {"error": exc}
    return None
