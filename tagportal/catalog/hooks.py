"""What the apps above the dictionary show in it, without the dictionary importing them.

The dictionary sits below the engine and lineage (layers point down only). It
shows what they know about a tag in two ways:

- **Computation state** travels with the tag, as PostHog's cohort carries its own: the
  engine's result model points at :class:`~.models.Tag` with the one-to-one reverse
  relation :data:`COMPUTATION` (``tag.computation``). The dictionary joins it in by that
  name (:meth:`~.models.TagQuerySet.with_computation`) and reads it with
  :func:`computation_of`. A dictionary without the engine shows no coverage.
- **Data freshness and sources** are lineage's to decide: lineage registers its
  functions here when it starts (``LineageConfig.ready``) with
  :func:`register_stale_flags` and :func:`register_source_names`. Without lineage the
  dictionary flags nothing and names no sources.
- **Model-backed template tags**: a template tag may declare the algorithm model output
  that fills it (``model: {kind, output, parameters}``). The predictive app registers
  :func:`register_model_check` to judge such declarations when packs are checked, and
  links the tags to its models on :data:`~.signals.template_applied`. Without it the
  declarations are checked for their shape only.
- **Who proposed and who approved a published version** is governance's to know: it
  registers :func:`register_version_people` when it starts. Without it a version names
  only the person who published it.
- **Trying a draft rule on a sample** is the engine's: it registers the name of its
  sample URL with :func:`register_rule_sample_url`; without it the rule editor offers
  no trial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: The reverse relation from a tag to its current result and computation state.
COMPUTATION = "computation"
#: The reverse relation from a tag to its computation runs, newest first.
RUNS = "runs"

StaleFlags = Callable[[], Iterable[int]]
SourceNames = Callable[..., dict[int, list[str]]]

#: ``fn(model, value_type, value_codes)``: problems with a template tag's model declaration.
ModelCheck = Callable[[dict, str, list[str]], list[str]]

_stale_flags: list[StaleFlags] = []
_source_names: list[SourceNames] = []
_model_checks: list[ModelCheck] = []

#: ``fn(version_ids)``: ``{version id: {"proposed_by": user, "approved_by": user}}``.
VersionPeople = Callable[[list[int]], dict[int, dict]]
_version_people: list[VersionPeople] = []


def _register(registry: list, fn):
    if fn not in registry:
        registry.append(fn)
    return fn


def register_stale_flags(fn: StaleFlags) -> StaleFlags:
    """Register ``fn()``, the ids of the tags reading a data source past its refresh SLA."""
    return _register(_stale_flags, fn)


def register_source_names(fn: SourceNames) -> SourceNames:
    """Register ``fn(user, tag_ids)``: ``{tag id: [names of the data sources it reads]}``
    for the tags of the ``tag_ids`` subquery, naming only sources ``user`` may view."""
    return _register(_source_names, fn)


def register_model_check(fn: ModelCheck) -> ModelCheck:
    """Register ``fn(model, value_type, value_codes)``: the problems (plain strings) with a
    template tag's ``model`` declaration for a tag of that value type and value codes."""
    return _register(_model_checks, fn)


def register_version_people(fn: VersionPeople) -> VersionPeople:
    """Register ``fn(version_ids)``: who proposed and who approved each published version
    (``{version id: {"proposed_by": user or None, "approved_by": user or None}}``)."""
    return _register(_version_people, fn)


def version_people(version_ids: list[int]) -> dict[int, dict]:
    """Who proposed and who approved each of the versions, by every registered provider
    (none: ``{}``)."""
    people: dict[int, dict] = {}
    for fn in _version_people:
        for version_id, found in fn(list(version_ids)).items():
            people.setdefault(version_id, {}).update(found)
    return people


def model_problems(model: dict, value_type: str, value_codes: list[str]) -> list[str]:
    """What every registered judge finds wrong with a template tag's model declaration."""
    problems: list[str] = []
    for fn in _model_checks:
        problems += fn(model, value_type, value_codes)
    return problems


def stale_tag_ids() -> set[int]:
    """The tags whose data is stale, by every registered judge (none: nothing is stale)."""
    found: set[int] = set()
    for fn in _stale_flags:
        found.update(fn())
    return found


def source_names(user, tag_ids) -> dict[int, list[str]]:
    """``{tag id: [source names]}`` from every registered provider (none: ``{}``)."""
    names: dict[int, list[str]] = {}
    for fn in _source_names:
        for tag_id, found in fn(user, tag_ids).items():
            names.setdefault(tag_id, []).extend(found)
    return names


def computation_of(tag):
    """The tag's computation state (its engine result row), or ``None`` when it was never
    computed or nothing computes tags."""
    return getattr(tag, COMPUTATION, None)


_rule_sample_url: list[str] = []


def register_rule_sample_url(url_name: str) -> str:
    """Register the URL name of the endpoint that tries a draft rule on a sample."""
    _rule_sample_url[:] = [url_name]
    return url_name


def rule_sample_url() -> str | None:
    """The URL of the sample trial of draft rules (``None`` when nothing registered it)."""
    from django.urls import NoReverseMatch, reverse

    if not _rule_sample_url:
        return None
    try:
        return reverse(_rule_sample_url[0])
    except NoReverseMatch:
        return None
