"""Lineage state changes and graph logic: the one place they live.

The lineage graph flows the way data does::

    data source → data field → tag → tag (a composite tag reading it) → …
    data source → data field → algorithm model → its output tags → …

A tag's inputs (:class:`~tagportal.lineage.models.TagInput`) come from two places:
its definition (every tag code it reads, every data field feeding an engine field
it reads; kept in sync whenever a tag, a field or a source is saved) and people
(:func:`declare_inputs`, for what a definition cannot say, e.g. the fields an
algorithm tag's model reads). An algorithm model of the registry
(:mod:`tagportal.predictive`) is a node of its own: it reads the data fields feeding the
engine fields its kind reads (:class:`~tagportal.lineage.models.ModelInput`, kept in sync
by :func:`sync_model_inputs` whenever a model, a field or a source is saved) and feeds
the tags of its outputs (``ModelOutput``, read as it is). Other apps use :func:`impact`,
:func:`tag_dependents`, :func:`upstream`, :func:`stale_tag_ids` and
:func:`stale_reasons`; the dictionary reads :func:`stale_tag_ids` and
:func:`tag_source_names` through the hooks lineage registers in
:mod:`tagportal.catalog.hooks`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import networkx as nx
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import BigIntegerField, Q, QuerySet, Value
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.catalog.models import Tag
from tagportal.core import graphs
from tagportal.core.days import beijing_text
from tagportal.core.permissions import is_unrestricted, may
from tagportal.predictive.kinds import KINDS, TAG_FEATURE_PREFIX
from tagportal.predictive.models import ModelOutput, PredictiveModel
from tagportal.predictive.services import last_published
from tagportal.profiles import schema
from tagportal.rules.definitions import RuleValidationError, validate_definition

from .choices import InputOrigin
from .models import DataField, DataSource, ModelInput, TagInput, is_past_sla

log = logging.getLogger(__name__)

#: How far in the future a reported load time may be (clock skew between machines).
LOAD_CLOCK_SKEW = dt.timedelta(minutes=5)
#: Loads are dated from 1970 on (older times are typos, and render with odd local-mean-time offsets).
EARLIEST_LOAD = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

SOURCE, FIELD, MODEL, TAG = "source", "field", "model", "tag"
Node = tuple[str, int]


# ---------------------------------------------------------------------------
# What a definition reads


@dataclass(frozen=True)
class DefinitionReads:
    """The tag codes and the engine fields (``profile.age``, ``orders.amount``,
    ``events.properties.project``) a definition reads."""

    tags: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()


def _walk(node, source, tags: set, pairs: set, attributes: set) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, source, tags, pairs, attributes)
        return
    if not isinstance(node, dict):
        return
    here = node["source"] if node.get("source") in schema.SOURCES else source
    if isinstance(node.get("tag"), str) and node["tag"]:
        tags.add(node["tag"])
    if isinstance(node.get("attribute"), str) and node["attribute"]:
        attributes.add(node["attribute"])
    if here and isinstance(node.get("field"), str) and node["field"]:
        pairs.add((here, node["field"]))
    for key, child in node.items():
        if key not in ("map", "value", "values"):  # raw values and value codes, not rule nodes
            _walk(child, here, tags, pairs, attributes)


@lru_cache(maxsize=4096)
def _reads_of_text(text: str) -> DefinitionReads:
    doc = json.loads(text)
    tags: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    attributes: set[str] = set()
    _walk(doc, None, tags, pairs, attributes)
    try:
        info = validate_definition(doc)
    except RuleValidationError:
        pass  # a draft saved without validation: what the walk found is the best guess
    else:
        tags, pairs = set(info.tags), set(info.fields)
    fields = {f"{source}.{name}" for source, name in pairs}
    fields |= {f"profile.{name}" for name in attributes}
    return DefinitionReads(tags=frozenset(tags), fields=frozenset(fields))


def definition_reads(definition) -> DefinitionReads:
    """What a tag definition reads: tag codes, and engine fields written the way
    :attr:`DataField.maps_to` writes them (attribute nodes → ``profile.<name>``,
    ``("events", "type")`` → ``events.type``)."""
    if not definition or not isinstance(definition, dict):
        return DefinitionReads()
    return _reads_of_text(json.dumps(definition, sort_keys=True, ensure_ascii=False))


def _readable_fields(business_line_id) -> QuerySet:
    """Fields a tag of ``business_line_id`` may read: shared sources and its own line's."""
    return DataField.objects.filter(
        Q(source__business_line__isnull=True) | Q(source__business_line_id=business_line_id)
    )


# ---------------------------------------------------------------------------
# Writing a tag's inputs


@dataclass
class SyncResult:
    created: int = 0
    deleted: int = 0
    changed: int = 0

    def __iadd__(self, other: SyncResult):
        self.created += other.created
        self.deleted += other.deleted
        self.changed += other.changed
        return self


def _tag_codes(pks: Iterable[int]) -> dict[int, str]:
    return dict(Tag.objects.filter(pk__in=set(pks)).values_list("pk", "code"))


def cycle_path(tag: Tag, upstream_ids: Iterable[int]) -> list[int] | None:
    """The tags (primary keys, in the direction data flows) of the cycle that ``tag``
    reading ``upstream_ids`` would make, e.g. ``[a, b, a]``; ``None`` if there is none.
    A model counts as a step from each tag it reads to each of its output tags."""
    upstream_ids = set(upstream_ids)
    if not upstream_ids:
        return None
    if tag.pk in upstream_ids:
        return [tag.pk, tag.pk]
    graph = nx.DiGraph()
    graph.add_edges_from(
        (upstream_id, tag_id)
        for upstream_id, tag_id, model_id in _tag_hops()
        if model_id or tag_id != tag.pk  # the tag's own inputs are what is being replaced
    )
    if tag.pk not in graph:
        return None
    for upstream_id in sorted(upstream_ids):
        if upstream_id in graph and nx.has_path(graph, tag.pk, upstream_id):
            return [*nx.shortest_path(graph, tag.pk, upstream_id), tag.pk]
    return None


def _cycle_message(path: list[int]) -> str:
    codes = _tag_codes(path)
    return _(
        "This would make a lineage cycle: %(path)s. A tag cannot read itself, directly or through other tags."
    ) % {"path": " → ".join(codes.get(pk, str(pk)) for pk in path)}


def check_cycle(tag: Tag, upstream_ids: Iterable[int], key: str = "tags") -> None:
    """Raise ``ValidationError({key: ...})`` naming the cycle ``tag`` reading ``upstream_ids`` makes."""
    path = cycle_path(tag, upstream_ids)
    if path:
        raise ValidationError({key: [_cycle_message(path)]})


def check_definition_cycle(tag: Tag) -> None:
    """Raise ``ValidationError({"definition": ...})`` if saving ``tag`` with its current
    definition would make a lineage cycle (for form validation before saving)."""
    if tag.pk is None or not tag.brand_id:
        return
    reads = definition_reads(tag.definition)
    if not reads.tags:
        return
    upstream_ids = set(
        Tag.objects.filter(brand_id=tag.brand_id, code__in=reads.tags).values_list("pk", flat=True)
    )
    declared = TagInput.objects.filter(tag_id=tag.pk, origin=InputOrigin.DECLARED, upstream__isnull=False)
    upstream_ids |= set(declared.values_list("upstream_id", flat=True))
    check_cycle(tag, upstream_ids, key="definition")


def _write_inputs(
    tag: Tag,
    derived: set[Node],
    declared: set[Node] | None,
    reason: str,
    cycle_key: str,
) -> SyncResult:
    """Make the tag's input rows exactly ``declared`` (origin declared; ``None`` keeps the
    declared rows as they are) plus ``derived`` (origin definition)."""
    existing = {
        ((FIELD, row.field_id) if row.field_id else (TAG, row.upstream_id)): row
        for row in TagInput.objects.filter(tag_id=tag.pk)
    }
    if declared is None:
        declared = {key for key, row in existing.items() if row.origin == InputOrigin.DECLARED}
    wanted = {key: InputOrigin.DECLARED for key in declared}
    for key in derived:
        wanted.setdefault(key, InputOrigin.DEFINITION)
    check_cycle(tag, {pk for kind, pk in wanted if kind == TAG}, key=cycle_key)

    result = SyncResult()
    for key, row in existing.items():
        if key not in wanted:
            row._change_reason = reason
            row.delete()
            result.deleted += 1
        elif row.origin != wanted[key]:
            row.origin = wanted[key]
            row._change_reason = reason
            row.save(update_fields=["origin", "last_updated"])
            result.changed += 1
    for key, origin in sorted(wanted.items()):
        if key in existing:
            continue
        kind, pk = key
        row = TagInput(
            tag_id=tag.pk,
            field_id=pk if kind == FIELD else None,
            upstream_id=pk if kind == TAG else None,
            origin=origin,
        )
        row._change_reason = reason
        row.save()
        result.created += 1
    return result


def _derived_inputs(tag: Tag, reads: DefinitionReads, fields_index=None) -> set[Node]:
    nodes: set[Node] = set()
    if reads.tags:
        upstream = Tag.objects.filter(brand_id=tag.brand_id, code__in=reads.tags).exclude(pk=tag.pk)
        nodes |= {(TAG, pk) for pk in upstream.values_list("pk", flat=True)}
    if reads.fields:
        if fields_index is None:
            rows = _readable_fields(tag.business_line_id).filter(maps_to__in=reads.fields)
            nodes |= {(FIELD, pk) for pk in rows.values_list("pk", flat=True)}
        else:
            for maps_to in reads.fields:
                nodes |= {
                    (FIELD, pk)
                    for pk, line in fields_index.get(maps_to, ())
                    if line is None or line == tag.business_line_id
                }
    return nodes


@transaction.atomic
def sync_tag_inputs(tag: Tag, *, _fields_index=None) -> SyncResult:
    """Derive the tag's inputs from its definition (origin ``definition``); declared
    inputs are kept. Raises ``ValidationError({"definition": ...})`` for a cycle."""
    reads = definition_reads(tag.definition)
    derived = _derived_inputs(tag, reads, _fields_index)
    return _write_inputs(tag, derived, None, _("Derived from the tag definition"), "definition")


def sync_readers(tag: Tag) -> SyncResult:
    """Link the tags of the same brand whose definitions read ``tag``'s code but were
    saved before it existed (run when a tag is created)."""
    result = SyncResult()
    linked = set(TagInput.objects.filter(upstream_id=tag.pk).values_list("tag_id", flat=True))
    for pk, definition in (
        Tag.objects.filter(brand_id=tag.brand_id).exclude(pk=tag.pk).values_list("pk", "definition")
    ):
        if pk not in linked and tag.code in definition_reads(definition).tags:
            result += sync_tag_inputs(Tag.objects.get(pk=pk))
    return result


def sync_field_inputs(data_field: DataField) -> SyncResult:
    """Link ``data_field`` to every tag (of its source's business line, or of every line
    for a shared source) whose definition reads the engine field it feeds."""
    with transaction.atomic():
        line = (
            DataSource.objects.filter(pk=data_field.source_id)
            .values_list("business_line_id", flat=True)
            .first()
        )
        tags = Tag.objects.all() if line is None else Tag.objects.filter(business_line_id=line)
        wanted: set[int] = set()
        if data_field.maps_to:
            for pk, definition in tags.values_list("pk", "definition").iterator():
                if data_field.maps_to in definition_reads(definition).fields:
                    wanted.add(pk)
        result = SyncResult()
        reason = _("Derived from the tag definition")
        existing = {row.tag_id: row for row in TagInput.objects.filter(field_id=data_field.pk)}
        for tag_id, row in existing.items():
            if tag_id not in wanted and row.origin == InputOrigin.DEFINITION:
                row._change_reason = reason
                row.delete()
                result.deleted += 1
        for tag_id in sorted(wanted - set(existing)):
            row = TagInput(tag_id=tag_id, field_id=data_field.pk, origin=InputOrigin.DEFINITION)
            row._change_reason = reason
            row.save()
            result.created += 1
        return result


@dataclass
class SyncSummary:
    tags: int = 0
    models: int = 0
    result: SyncResult = field(default_factory=SyncResult)
    problems: list[str] = field(default_factory=list)


def sync_all() -> SyncSummary:
    """Re-derive every tag's inputs from its definition (for existing data; idempotent).
    A tag whose definition would make a cycle is left as it was and reported."""
    summary = SyncSummary()
    index: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
    for pk, maps_to, line in DataField.objects.exclude(maps_to="").values_list(
        "pk", "maps_to", "source__business_line_id"
    ):
        index[maps_to].append((pk, line))
    for tag in Tag.objects.only("pk", "code", "brand_id", "business_line_id", "definition").iterator():
        summary.tags += 1
        try:
            summary.result += sync_tag_inputs(tag, _fields_index=index)
        except ValidationError as exc:
            messages = "; ".join(m for msgs in exc.message_dict.values() for m in msgs)
            summary.problems.append(f"{tag.code}: {messages}")
    for model in PredictiveModel.objects.select_related("brand").order_by("pk").iterator():
        summary.models += 1
        summary.result += sync_model_inputs(model)
    return summary


# ---------------------------------------------------------------------------
# What an algorithm model reads


def model_reads(model: PredictiveModel) -> frozenset[str]:
    """The engine fields ``model`` reads (its kind's); nothing for an inactive model."""
    kind = KINDS.get(model.kind)
    return frozenset(kind.reads) if kind is not None and model.is_active else frozenset()


def _kinds_reading(maps_to: str) -> list[str]:
    return [key for key, kind in KINDS.items() if maps_to in kind.reads]


def _set_model_inputs(rows: QuerySet, wanted: set[tuple[int, int]], column: str = "field") -> SyncResult:
    """Make the ``(model_id, field_id)`` rows of ``rows`` (``column="tag"``: the
    ``(model_id, tag_id)`` rows) exactly ``wanted``."""
    result = SyncResult()
    rows = rows.filter(**{f"{column}__isnull": False})
    existing = {(m, x): pk for pk, m, x in rows.values_list("pk", "model_id", f"{column}_id")}
    gone = [pk for key, pk in existing.items() if key not in wanted]
    if gone:
        result.deleted = ModelInput.objects.filter(pk__in=gone).delete()[0]
    new = sorted(wanted - set(existing))
    ModelInput.objects.bulk_create([ModelInput(model_id=m, **{f"{column}_id": x}) for m, x in new])
    result.created = len(new)
    return result


@transaction.atomic
def sync_model_inputs(model: PredictiveModel) -> SyncResult:
    """Link ``model`` to the data fields (shared, or of its brand's business line) feeding
    the engine fields its kind reads, and to the tags its last published fit read
    (:func:`sync_model_tags`); an inactive model keeps none."""
    reads = model_reads(model)
    wanted: set[tuple[int, int]] = set()
    if reads:
        line = model.brand.business_line_id
        fields = _readable_fields(line).filter(maps_to__in=reads).values_list("pk", flat=True)
        wanted = {(model.pk, pk) for pk in fields}
    result = _set_model_inputs(ModelInput.objects.filter(model_id=model.pk), wanted)
    result += sync_model_tags(model)
    return result


def run_tag_codes(features) -> frozenset[str]:
    """The tag codes a run's ``features`` name (``tag:<code>``; other features are not tags)."""
    if not isinstance(features, list):
        return frozenset()
    prefix = TAG_FEATURE_PREFIX
    return frozenset(
        f[len(prefix) :]
        for f in features
        if isinstance(f, str) and f.startswith(prefix) and len(f) > len(prefix)
    )


def model_tag_codes(model: PredictiveModel) -> frozenset[str]:
    """The tag codes ``model``'s last published fit read as features (a scoring run, a held
    or a failed run does not count); nothing for an inactive model."""
    if not model.is_active:
        return frozenset()
    run = last_published(model)
    return run_tag_codes(run.features) if run is not None else frozenset()


@transaction.atomic
def sync_model_tags(model: PredictiveModel) -> SyncResult:
    """Link ``model`` to the tags of its brand its last published fit read
    (:func:`model_tag_codes`). A tag the model fills, directly or through other tags and
    models, is skipped (logged): reading it would make a lineage cycle."""
    codes = model_tag_codes(model)
    wanted: set[tuple[int, int]] = set()
    if codes:
        tag_ids = set(
            Tag.objects.filter(brand_id=model.brand_id, code__in=codes).values_list("pk", flat=True)
        )
        outputs = ModelOutput.objects.filter(model_id=model.pk).values_list("tag_id", flat=True)
        downstream = set(graphs.reachable(outputs, _tag_edges(excluding_model=model.pk)))
        for tag_id in sorted(tag_ids & downstream):
            log.warning("lineage: model %s reads tag %s that it fills; edge skipped", model.pk, tag_id)
        wanted = {(model.pk, pk) for pk in tag_ids - downstream}
    return _set_model_inputs(ModelInput.objects.filter(model_id=model.pk), wanted, column="tag")


def sync_tag_models(tag: Tag) -> SyncResult:
    """Link a new ``tag`` to the active models of its brand whose last published fit read
    its code (run when a tag is created, e.g. again after a deletion)."""
    result = SyncResult()
    for model in PredictiveModel.objects.filter(brand_id=tag.brand_id, is_active=True).order_by("pk"):
        if tag.code in model_tag_codes(model):
            result += sync_model_tags(model)
    return result


@transaction.atomic
def sync_field_models(data_field: DataField) -> SyncResult:
    """Link ``data_field`` to every active model (of its source's business line, or of
    every line for a shared source) whose kind reads the engine field it feeds."""
    wanted: set[tuple[int, int]] = set()
    kinds = _kinds_reading(data_field.maps_to) if data_field.maps_to else []
    if kinds:
        line = (
            DataSource.objects.filter(pk=data_field.source_id)
            .values_list("business_line_id", flat=True)
            .first()
        )
        models = PredictiveModel.objects.filter(is_active=True, kind__in=kinds)
        if line is not None:
            models = models.filter(brand__business_line_id=line)
        wanted = {(pk, data_field.pk) for pk in models.values_list("pk", flat=True)}
    return _set_model_inputs(ModelInput.objects.filter(field_id=data_field.pk), wanted)


# ---------------------------------------------------------------------------
# Declaring inputs


@dataclass
class DeclareResult:
    inputs: list[TagInput]
    uncovered: list[str]
    result: SyncResult


def _resolve_fields(user, tag: Tag, items, errors: dict) -> set[int]:
    visible = DataField.objects.all() if user is None else DataField.objects.restrict(user, "view")
    ids, pairs, bad = set(), set(), []
    for item in items or ():
        if isinstance(item, DataField):
            ids.add(item.pk)
        elif isinstance(item, int) and not isinstance(item, bool):
            ids.add(item)
        elif isinstance(item, str) and item.isdigit():
            ids.add(int(item))
        elif isinstance(item, str) and "." in item:
            source, _dot, name = item.partition(".")
            pairs.add((source, name))
        else:
            bad.append(str(item))
    query = Q(pk__in=ids)
    for source, name in pairs:
        query |= Q(source__code=source, name=name)
    found = list(visible.filter(query).select_related("source")) if ids or pairs else []
    missing = sorted(
        [str(pk) for pk in ids - {f.pk for f in found}]
        + [f"{s}.{n}" for s, n in pairs - {(f.source.code, f.name) for f in found}]
    )
    if bad or missing:
        errors.setdefault("fields", []).append(
            _("Unknown data field(s): %(items)s. Give field ids or “source_code.field_name”.")
            % {"items": ", ".join(bad + missing)}
        )
    foreign = sorted(str(f) for f in found if f.source.business_line_id not in (None, tag.business_line_id))
    if foreign:
        errors.setdefault("fields", []).append(
            _("A tag reads only fields of shared sources or of its own business line: %(items)s.")
            % {"items": ", ".join(foreign)}
        )
    return {f.pk for f in found}


def _resolve_tags(user, tag: Tag, items, errors: dict) -> set[int]:
    brand_tags = Tag.objects.filter(brand_id=tag.brand_id)
    if user is not None:
        brand_tags = brand_tags.restrict(user, "view")
    ids, codes, bad = set(), set(), []
    for item in items or ():
        if isinstance(item, Tag):
            ids.add(item.pk)
        elif isinstance(item, int) and not isinstance(item, bool):
            ids.add(item)
        elif isinstance(item, str) and item.isdigit():
            ids.add(int(item))
        elif isinstance(item, str) and item:
            codes.add(item)
        else:
            bad.append(str(item))
    found = list(brand_tags.filter(Q(pk__in=ids) | Q(code__in=codes)).values_list("pk", "code"))
    missing = sorted(
        [str(pk) for pk in ids - {pk for pk, _code in found}] + list(codes - {code for _pk, code in found})
    )
    if bad or missing:
        errors.setdefault("tags", []).append(
            _("Unknown tag(s) in the brand “%(brand)s”: %(items)s.")
            % {"brand": tag.brand, "items": ", ".join(bad + missing)}
        )
    return {pk for pk, _code in found}


def uncovered_fields(tag: Tag, reads: DefinitionReads | None = None) -> list[str]:
    """Engine fields the definition reads that no data field (of a shared source or of
    the tag's business line) feeds: the lineage cannot say where they come from."""
    reads = reads or definition_reads(tag.definition)
    if not reads.fields:
        return []
    fed = set(
        _readable_fields(tag.business_line_id)
        .filter(maps_to__in=reads.fields)
        .values_list("maps_to", flat=True)
    )
    return sorted(reads.fields - fed)


@transaction.atomic
def declare_inputs(
    user, tag: Tag, fields: Iterable = (), tags: Iterable = (), reason: str = ""
) -> DeclareResult:
    """Set the fields and tags ``tag`` is declared to read (replacing earlier declarations).

    ``fields`` are data fields, their ids or ``"source_code.field_name"``; ``tags`` are
    tags of the same brand, their ids or codes. Inputs derived from the definition are
    kept. Refused with ``ValidationError`` (nothing changed) for an unknown or invisible
    field or tag, a field of another business line's source, a tag the definition reads
    that does not exist, or a cycle (the message names it: ``a → b → a``). The result's
    ``uncovered`` lists engine fields the definition reads that no data field feeds.
    """
    if user is not None and not may(user, tag, "change"):
        raise PermissionDenied(_("You may not change the inputs of this tag."))
    tag = Tag.objects.select_for_update(of=("self",)).select_related("brand").get(pk=tag.pk)
    errors: dict[str, list[str]] = {}
    field_ids = _resolve_fields(user, tag, fields, errors)
    tag_ids = _resolve_tags(user, tag, tags, errors)
    reads = definition_reads(tag.definition)
    if reads.tags:
        existing_codes = set(
            Tag.objects.filter(brand_id=tag.brand_id, code__in=reads.tags)
            .exclude(pk=tag.pk)
            .values_list("code", flat=True)
        )
        missing = sorted(reads.tags - existing_codes)
        if missing:
            errors.setdefault("definition", []).append(
                _("The definition reads tag(s) that do not exist in the brand “%(brand)s”: %(codes)s.")
                % {"brand": tag.brand, "codes": ", ".join(missing)}
            )
    if errors:
        raise ValidationError(errors)
    declared = {(FIELD, pk) for pk in field_ids} | {(TAG, pk) for pk in tag_ids}
    result = _write_inputs(tag, _derived_inputs(tag, reads), declared, reason or _("Inputs declared"), "tags")
    inputs = list(TagInput.objects.filter(tag=tag).select_related("field__source", "upstream"))
    return DeclareResult(inputs=inputs, uncovered=uncovered_fields(tag, reads), result=result)


# ---------------------------------------------------------------------------
# Impact and upstream


@dataclass
class Impact:
    """What depends on ``root`` (``direction="downstream"``) or what it reads
    (``"upstream"``), transitively. The root itself is in no list; each object is listed
    once, however many paths lead to it (chains and diamonds).

    ``depth`` maps a tag's primary key to its distance from the root in tag hops: 1 for a
    tag reading the root (or one of its fields) directly, 2 for a tag reading those, and
    so on (the shortest path counts). Tags are sorted by depth, then brand and code. A
    model between a field and its output tags adds no hop: an output tag of a model
    reading the root field is at depth 1. ``models`` are the algorithm models on the way
    (by brand and name).
    """

    root: DataSource | DataField | Tag
    direction: str = "downstream"
    sources: list[DataSource] = field(default_factory=list)
    fields: list[DataField] = field(default_factory=list)
    models: list[PredictiveModel] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    depth: dict[int, int] = field(default_factory=dict)

    @property
    def tag_ids(self) -> set[int]:
        return {t.pk for t in self.tags}

    def audiences(self):
        """The active audiences that read an affected tag (or the root tag), downstream only."""
        from tagportal.audiences.choices import AudienceStatus
        from tagportal.audiences.models import Audience

        if self.direction != "downstream":
            return Audience.objects.none()
        ids = self.tag_ids | ({self.root.pk} if isinstance(self.root, Tag) else set())
        return (
            Audience.objects.filter(tags__in=ids, status=AudienceStatus.ACTIVE)
            .distinct()
            .select_related("brand")
            .order_by("brand__code", "name", "pk")
        )

    def __bool__(self):
        return bool(self.sources or self.fields or self.models or self.tags)


def _root_node(obj) -> Node:
    if isinstance(obj, DataSource):
        return (SOURCE, obj.pk)
    if isinstance(obj, DataField):
        return (FIELD, obj.pk)
    if isinstance(obj, Tag):
        return (TAG, obj.pk)
    raise TypeError(f"no lineage for {type(obj).__name__}")


def lineage_graph(with_fields: bool = True) -> nx.DiGraph:
    """The whole graph in the direction data flows, nodes ``(kind, pk)`` (four queries;
    one without fields and sources: the tags, and the models reading tags with their
    output tags). An edge into a tag weighs one hop (``hops``), others none."""
    graph = nx.DiGraph()
    if not with_fields:
        for upstream_id, tag_id, model_id in _tag_hops():
            if model_id:
                graph.add_edge((TAG, upstream_id), (MODEL, model_id), hops=0)
                graph.add_edge((MODEL, model_id), (TAG, tag_id), hops=1)
            else:
                graph.add_edge((TAG, upstream_id), (TAG, tag_id), hops=1)
        return graph
    for tag_id, field_id, upstream_id in TagInput.objects.values_list("tag_id", "field_id", "upstream_id"):
        graph.add_edge((FIELD, field_id) if field_id else (TAG, upstream_id), (TAG, tag_id), hops=1)
    for field_id, source_id in DataField.objects.values_list("pk", "source_id"):
        graph.add_edge((SOURCE, source_id), (FIELD, field_id), hops=0)
    for model_id, field_id, tag_id in ModelInput.objects.values_list("model_id", "field_id", "tag_id"):
        graph.add_edge((FIELD, field_id) if field_id else (TAG, tag_id), (MODEL, model_id), hops=0)
    for model_id, tag_id in ModelOutput.objects.filter(model__is_active=True).values_list(
        "model_id", "tag_id"
    ):
        graph.add_edge((MODEL, model_id), (TAG, tag_id), hops=1)
    return graph


def _reach(obj, direction: str, graph: nx.DiGraph | None = None) -> Impact:
    root = _root_node(obj)
    with_fields = not (root[0] == TAG and direction == "downstream")
    graph = graph if graph is not None else lineage_graph(with_fields=with_fields)
    if direction == "upstream":
        graph = graph.reverse(copy=False)
    impact = Impact(root=obj, direction=direction)
    if root not in graph:
        return impact
    # Distances in tag hops: only edges into a tag count (reversed, they keep their weight).
    distances = nx.single_source_dijkstra_path_length(graph, root, weight="hops")
    ids: dict[str, set[int]] = defaultdict(set)
    for (kind, pk), _distance in distances.items():
        if (kind, pk) != root:
            ids[kind].add(pk)
    impact.depth = {pk: d for (kind, pk), d in distances.items() if kind == TAG and (kind, pk) != root}
    if ids[MODEL]:
        models = PredictiveModel.objects.filter(pk__in=ids[MODEL]).select_related("brand")
        impact.models = sorted(models, key=lambda m: (m.brand.code, m.name, m.pk))
    if ids[TAG]:
        tags = Tag.objects.filter(pk__in=ids[TAG]).select_related("brand", "business_line")
        impact.tags = sorted(tags, key=lambda t: (impact.depth[t.pk], t.brand.code, t.code))
    if ids[FIELD]:
        impact.fields = list(DataField.objects.filter(pk__in=ids[FIELD]).select_related("source"))
    if ids[SOURCE]:
        impact.sources = list(DataSource.objects.filter(pk__in=ids[SOURCE]))
    return impact


def impact(obj: DataSource | DataField | Tag) -> Impact:
    """Everything that depends on a data source, a data field or a tag, transitively:
    a source's fields, the tags and the models reading them, the models' output tags,
    the tags reading those tags, …"""
    return _reach(obj, "downstream")


def upstream(tag: Tag) -> Impact:
    """Everything ``tag`` reads, transitively: the tags it reads, the model filling it (an
    algorithm model's output tag), the fields they read and the sources of those fields
    (``direction="upstream"``; ``depth`` counts tag hops)."""
    return _reach(tag, "upstream")


def tag_dependents(tag: Tag) -> list[Tag]:
    """The tags that read ``tag``, directly or through other tags, nearest first."""
    return _reach(tag, "downstream").tags


# ---------------------------------------------------------------------------
# Freshness


def stale_sources(now: dt.datetime | None = None) -> QuerySet:
    """Active data sources never loaded, or last loaded longer ago than their refresh SLA."""
    return DataSource.objects.stale(now or timezone.now())


def _stale_source_rows(now: dt.datetime) -> list[tuple[int, str, dt.datetime | None, int]]:
    rows = DataSource.objects.filter(is_active=True).values_list(
        "pk", "name", "last_loaded_at", "refresh_sla_hours"
    )
    return [row for row in rows if is_past_sla(row[2], row[3], now)]


def _tag_hops(excluding_model: int | None = None) -> QuerySet:
    """``(upstream tag id, tag id, model id)`` rows, one query: a tag reading a tag (model
    id 0), and a tag an active model reads → each output tag of that model."""
    by_tags = (
        TagInput.objects.filter(upstream__isnull=False)
        .order_by()
        .values_list("upstream_id", "tag_id", Value(0, output_field=BigIntegerField()))
    )
    by_models = ModelOutput.objects.filter(model__is_active=True, model__lineage_inputs__tag__isnull=False)
    if excluding_model is not None:
        by_models = by_models.exclude(model_id=excluding_model)
    return by_tags.union(
        by_models.order_by().values_list("model__lineage_inputs__tag_id", "tag_id", "model_id")
    )


def _tag_edges(excluding_model: int | None = None) -> dict[int, list[int]]:
    """``{tag id: [tags reading it, directly or through a model]}`` (one query)."""
    edges: dict[int, list[int]] = defaultdict(list)
    for upstream_id, tag_id, _model_id in _tag_hops(excluding_model):
        edges[upstream_id].append(tag_id)
    return edges


def _direct_readers(source_ids: list[int]) -> list[tuple[int, int]]:
    """``(tag id, source id)`` for each tag reading a field of one of ``source_ids``
    itself or through the active model filling it: one query."""
    by_tags = (
        TagInput.objects.filter(field__source_id__in=source_ids)
        .order_by()
        .values_list("tag_id", "field__source_id")
    )
    by_models = (
        ModelOutput.objects.filter(
            model__is_active=True, model__lineage_inputs__field__source_id__in=source_ids
        )
        .order_by()
        .values_list("tag_id", "model__lineage_inputs__field__source_id")
    )
    return list(by_tags.union(by_models))


def stale_tag_ids(tag_queryset: QuerySet | None = None, now: dt.datetime | None = None) -> set[int]:
    """Primary keys of the tags reading, directly, through the model filling them or
    through other tags, a field of a stale source; limited to ``tag_queryset`` when
    given. At most four queries."""
    stale = _stale_source_rows(now or timezone.now())
    if not stale:
        return set()
    direct = {tag_id for tag_id, _source_id in _direct_readers([row[0] for row in stale])}
    if not direct:
        return set()
    found = set(graphs.reachable(direct, _tag_edges()))
    if tag_queryset is not None:
        found &= set(tag_queryset.values_list("pk", flat=True))
    return found


def tag_source_names(user, tag_ids: QuerySet) -> dict[int, list[str]]:
    """``{tag id: [names of the data sources it reads directly]}`` for the tags of the
    ``tag_ids`` subquery (an output tag: those its model reads), naming only the sources
    ``user`` may view: one query. (A tag's inputs are part of the tag; the dictionary
    export shows them, see :mod:`tagportal.catalog.hooks`.)"""
    visible = DataSource.objects.restrict(user, "view")
    by_tags = (
        TagInput.objects.filter(tag__in=tag_ids, field__source__in=visible)
        .order_by()
        .values_list("tag_id", "field__source__name")
    )
    by_models = (
        ModelOutput.objects.filter(
            tag__in=tag_ids, model__is_active=True, model__lineage_inputs__field__source__in=visible
        )
        .order_by()
        .values_list("tag_id", "model__lineage_inputs__field__source__name")
    )
    sources: dict[int, list[str]] = defaultdict(list)
    for tag_id, name in sorted(by_tags.union(by_models)):
        sources[tag_id].append(name)
    return dict(sources)


def _local(value: dt.datetime) -> str:
    return beijing_text(value)


def stale_reason(source: DataSource) -> str:
    """Why a source is stale, e.g. “CRM 会员数据 last loaded 2026-11-20 10:00 (Beijing time), SLA 24 h”."""
    return _reason(source.name, source.last_loaded_at, source.refresh_sla_hours)


def _reason(name: str, last_loaded_at: dt.datetime | None, sla_hours: int) -> str:
    if last_loaded_at is None:
        return _("%(source)s has never been loaded, SLA %(sla)s h") % {"source": name, "sla": sla_hours}
    return _("%(source)s last loaded %(when)s (Beijing time), SLA %(sla)s h") % {
        "source": name,
        "when": _local(last_loaded_at),
        "sla": sla_hours,
    }


def stale_reasons(tag_ids: Iterable[int], now: dt.datetime | None = None) -> dict[int, list[str]]:
    """For each of ``tag_ids`` that is stale, why: one line per stale source it reads,
    directly or through other tags. Tags that are not stale are left out. Three queries."""
    wanted = set(tag_ids)
    stale = _stale_source_rows(now or timezone.now())
    if not wanted or not stale:
        return {}
    by_source: dict[int, set[int]] = defaultdict(set)
    for tag_id, source_id in _direct_readers([row[0] for row in stale]):
        by_source[source_id].add(tag_id)
    if not by_source:
        return {}
    edges = _tag_edges()
    reasons: dict[int, list[str]] = defaultdict(list)
    for source_id, name, last_loaded_at, sla in sorted(stale, key=lambda row: (row[1], row[0])):
        reached = wanted.intersection(graphs.reachable(by_source.get(source_id, ()), edges))
        if reached:
            message = _reason(name, last_loaded_at, sla)
            for tag_id in reached:
                reasons[tag_id].append(message)
    return dict(reasons)


@transaction.atomic
def record_load(source: DataSource, at: dt.datetime | None = None, user=None) -> DataSource:
    """Record a successful load of ``source`` at ``at`` (default: now). An older time than
    the one recorded changes nothing; a time in the future is refused."""
    if user is not None and not may(user, source, "change"):
        raise PermissionDenied(_("You may not record loads of this data source."))
    now = timezone.now()
    at = at or now
    if timezone.is_naive(at):
        at = timezone.make_aware(at)
    if at > now + LOAD_CLOCK_SKEW:
        raise ValidationError({"at": [_("A load cannot have happened in the future.")]})
    if at < EARLIEST_LOAD:
        raise ValidationError({"at": [_("A load cannot have happened before 1970.")]})
    source = DataSource.objects.select_for_update().get(pk=source.pk)
    if source.last_loaded_at is None or at > source.last_loaded_at:
        source.last_loaded_at = at
        source._change_reason = _("Successful load recorded")
        if user is not None:
            source._history_user = user
        source.save(update_fields=["last_loaded_at", "last_updated"])
    return source


# ---------------------------------------------------------------------------
# Creating, changing and deleting sources and fields


def may_use_business_line(user, business_line) -> bool:
    """Whether ``user`` may put a data source into ``business_line`` (``None``: shared,
    for users reaching every business line)."""
    from tagportal.core.permissions import may_add_into

    if business_line is None:
        return is_unrestricted(user) and user.has_perm("lineage.add_datasource")
    return may_add_into(user, DataSource, business_line)


class DependentsExist(Exception):
    """Deleting ``obj`` would cut tags off their data; ``impact`` lists them."""

    def __init__(self, obj, impact: Impact):
        self.obj = obj
        self.impact = impact
        self.tags = impact.tags
        super().__init__(
            _("%(obj)s is read by %(n)s tag(s): %(codes)s. Confirm to delete it anyway.")
            % {
                "obj": obj,
                "n": len(impact.tags),
                "codes": ", ".join(t.code for t in impact.tags[:20])
                + (" …" if len(impact.tags) > 20 else ""),
            }
        )


def _delete(user, obj, confirm: bool, reason: str):
    if user is not None and not may(user, obj, "delete"):
        raise PermissionDenied(_("You may not delete this."))
    found = impact(obj)
    if found.tags and not confirm:
        raise DependentsExist(obj, found)
    obj._change_reason = reason
    if user is not None:
        obj._history_user = user
    obj.delete()
    log.info("lineage: deleted %s %s (%s dependent tags)", type(obj).__name__, obj, len(found.tags))
    return found


@transaction.atomic
def delete_field(user, data_field: DataField, confirm: bool = False, reason: str = "") -> Impact:
    """Delete a data field. Raises :class:`DependentsExist` if tags read it, unless ``confirm``."""
    return _delete(user, data_field, confirm, reason or _("Deleted"))


@transaction.atomic
def delete_source(user, source: DataSource, confirm: bool = False, reason: str = "") -> Impact:
    """Delete a data source and its fields. Raises :class:`DependentsExist` if tags read
    one of its fields, unless ``confirm``."""
    return _delete(user, source, confirm, reason or _("Deleted"))
