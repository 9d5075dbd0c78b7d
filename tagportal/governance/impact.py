"""Impact preview of a rule change under review: what approving it would do.

For an update that changes a tag's rule (``definition``, ``values`` or ``value_type``)
the candidate tag — the published snapshot with the proposed changes applied, in
memory — is evaluated by the engine on the brand's data, in one pass together with
the published tags that read it (directly or through others), exactly as
:func:`tagportal.engine.services.compute_brand` evaluates specs, but nothing is
stored (:func:`tagportal.engine.results.evaluate_specs`): no result, no run, no
computation state. The answer compares it with the tag's current result:

- coverage and value distribution before → after, and per value how many people
  would join and leave;
- for each active audience of the brand that reads the tag (or a tag reading it),
  its size before → after: its expression evaluated on the current results, then with
  the candidate bitmaps in place of the changed tags, with who joins and who leaves
  (a sample of at most :data:`SAMPLE` OneIDs each). Lookalike audiences have no
  expression: they are listed, not recomputed.

A preview is cached on its :class:`~.models.ChangeItem` (``impact``), keyed by the
proposed changes and the tag's current result (``last_calculated_at``): it is computed
again when either changes, or on request. With a broker it is computed by the task
:func:`.tasks.preview_impact` (queued on submit, or when a page or the API asks
for a preview that is missing); without one (eager mode) it is computed when asked.
A preview that fails never blocks the review: the error is logged and shown.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from itertools import islice

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from pyroaring import BitMap

from tagportal.audiences import expressions as ex
from tagportal.audiences.models import Audience, AudienceKind, AudienceStatus
from tagportal.audiences.store import STORE, NoResult, TagResult, evaluate, make_result
from tagportal.catalog.models import Tag
from tagportal.core import graphs
from tagportal.core.exceptions import Conflict
from tagportal.engine import results
from tagportal.engine.results import TagSpec
from tagportal.rules.definitions import tag_references

from .choices import OPEN_STATES, ChangeKind
from .models import ChangeItem, ChangeRequest

log = logging.getLogger(__name__)

#: Fields of an update that change what a tag computes.
RULE_FIELDS = ("definition", "values", "value_type")
#: OneIDs shown of the people joining / leaving an audience.
SAMPLE = 20
#: A preview queued longer ago than this is taken to be lost and is queued again.
LOST_AFTER = dt.timedelta(minutes=15)

#: Previews evaluate tags: they go where the engine's computations go.
QUEUE = "compute"

READY, COMPUTING, FAILED = "ready", "computing", "failed"


# ---------------------------------------------------------------------------
# Which items, and their cache key


def changes_rule(item: ChangeItem) -> bool:
    """Whether ``item`` is an update changing what the tag computes."""
    changes = item.changes if isinstance(item.changes, dict) else {}
    return item.kind == ChangeKind.UPDATE and any(name in changes for name in RULE_FIELDS)


def _current_stamp(tag: Tag):
    return results.result_states([tag.pk]).get(tag.pk, {}).get("last_calculated_at")


def cache_key(item: ChangeItem) -> str:
    """What a cached preview depends on: the proposed changes, the published version
    they apply to and the tag's current result."""
    stamp = _current_stamp(item.tag)
    text = json.dumps(
        {
            "changes": item.changes,
            "version": item.tag.published_version,
            "result": stamp.isoformat() if stamp else None,
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def rule_items(cr: ChangeRequest) -> list[ChangeItem]:
    items = cr.items.select_related("tag", "tag__brand").order_by("position", "pk")
    return [item for item in items if changes_rule(item)]


# ---------------------------------------------------------------------------
# Computing one preview (reads only)


def _published_spec(tag: Tag):
    spec = results.published_specs([tag]).get(tag.pk)
    if spec is not None:
        return spec
    return TagSpec(tag.code, tag.value_type, tag.definition or {}, tag.values or None)


def candidate_spec(item: ChangeItem):
    """The tag as the change would publish it, as the engine evaluates it (the code
    stays: the tags and audiences reading the tag name it by its current code)."""
    base = _published_spec(item.tag)
    changes = item.changes
    return TagSpec(
        code=item.tag.code,
        value_type=changes.get("value_type", base.value_type) or "",
        definition=changes.get("definition", base.definition) or {},
        values=changes.get("values", base.values) or None,
    )


def _readers(tag: Tag) -> list[tuple[Tag, object]]:
    """The brand's published tags reading ``tag``, directly or through others, with
    their published specs (manual tags left out: their values are uploaded)."""
    tags = [t for t in Tag.objects.published().filter(brand_id=tag.brand_id).exclude(pk=tag.pk)]
    specs = results.published_specs(tags)
    by_code = {t.code: t for t in tags if t.pk in specs}
    readers_of: dict[str, list[str]] = {}
    for code, other in by_code.items():
        for ref in tag_references(specs[other.pk].definition):
            readers_of.setdefault(ref, []).append(code)
    readers_of = {ref: sorted(codes) for ref, codes in readers_of.items()}
    found = [by_code[code] for code in graphs.reachable([tag.code], readers_of)[1:]]
    return [(t, specs[t.pk]) for t in found if (specs[t.pk].definition or {}).get("type") != "manual"]


def _tag_result(tag: Tag, spec, outcome):
    """A candidate outcome as the audiences' store holds a result."""
    return make_result(tag.pk, tag.code, spec.value_type, dict(outcome.bitmaps), outcome.numbers)


def _empty_result(tag: Tag, value_type: str):
    return TagResult(tag.pk, tag.code, value_type, None, None, {}, BitMap())


def _current_results(brand, codes) -> dict:
    """The current results of the brand's tags ``codes`` that have one."""
    infos = ex.brand_tags(brand, codes)
    while infos:
        try:
            return STORE.results(brand.pk, infos)
        except NoResult as exc:
            infos = {code: info for code, info in infos.items() if code not in exc.codes}
    return {}


def _held(result, value_type: str) -> BitMap:
    """Who holds the tag, as coverage counts it: ``true`` for yes/no tags, any value else."""
    if value_type == "boolean":
        return result.values.get("true", BitMap())
    return result.any


def _sample(bitmap: BitMap) -> list[int]:
    return [int(i) for i in islice(bitmap, SAMPLE)]


def _value_order(spec, *maps) -> list[str]:
    order = results.declared_values(spec.value_type, spec.values)
    for values in maps:
        order += sorted(str(v) for v in values if str(v) not in order)
    return order


def _value_labels(spec, tag: Tag) -> dict[str, str]:
    if spec.value_type == "boolean":
        return {"true": _("Yes"), "false": _("No")}
    labels = {}
    for values in (tag.values, spec.values):  # the proposed labels win
        for entry in values or ():
            if isinstance(entry, dict) and entry.get("code") is not None:
                labels[str(entry["code"])] = str(entry.get("label") or entry["code"])
    return labels


def _value_rows(spec, tag: Tag, before, after) -> list[dict]:
    labels = _value_labels(spec, tag)
    rows = []
    for value in _value_order(spec, before.values, after.values):
        old = before.values.get(value, BitMap())
        new = after.values.get(value, BitMap())
        rows.append(
            {
                "value": value,
                "label": labels.get(value, value),
                "before": len(old),
                "after": len(new),
                "joined": len(new - old),
                "left": len(old - new),
            }
        )
    return rows


def _audiences(brand, codes: set[str], tag_ids: set[int]) -> list:
    """The brand's active audiences reading any of ``codes`` (by their expression or
    their recorded tags), and the lookalikes seeded from them."""
    active = list(
        Audience.objects.filter(brand=brand, status=AudienceStatus.ACTIVE)
        .prefetch_related("tags")
        .order_by("name", "pk")
    )
    found, ids = [], set()
    for audience in active:
        reads = ex.tag_codes(audience.expression) if audience.expression else set()
        if reads & codes or {t.pk for t in audience.tags.all()} & tag_ids:
            found.append(audience)
            ids.add(audience.pk)
    for audience in active:
        if audience.pk not in ids and audience.kind == AudienceKind.LOOKALIKE and audience.seed_id in ids:
            found.append(audience)
    return found


def _audience_rows(brand, audiences, candidates: dict, changed: set[str]) -> list[dict]:
    """Each audience's size on the current results and with the candidates in place."""
    if not audiences:
        return []
    expressions = {a.pk: ex.normalise(a.expression) for a in audiences if a.expression}
    read = set().union(*(ex.tag_codes(e) for e in expressions.values())) if expressions else set()
    current = _current_results(brand, read)
    people = STORE.people(brand.pk)
    rows = []
    for audience in audiences:
        expression = expressions.get(audience.pk)
        reads = ex.tag_codes(expression) if expression else set()
        row = {
            "id": audience.pk,
            "name": audience.name,
            "kind": audience.kind,
            "is_live": audience.is_live,
            "via": sorted(reads & changed),
            "size_stored": audience.size,
            "size_before": None,
            "size_after": None,
            "joined": 0,
            "left": 0,
            "joined_sample": [],
            "left_sample": [],
            "note": "",
        }
        if audience.kind == AudienceKind.LOOKALIKE:
            row["note"] = _("Lookalike audience: not recomputed by the preview.")
            rows.append(row)
            continue
        if expression is None:
            row["note"] = _("The audience has no expression: not recomputed by the preview.")
            rows.append(row)
            continue
        missing = sorted(code for code in reads if code not in current and code not in candidates)
        if missing:
            row["note"] = _("Not recomputed: these tags have no result yet: %(codes)s.") % {
                "codes": ", ".join(missing)
            }
            rows.append(row)
            continue
        before_results = {**current}
        for code in reads & set(candidates):
            before_results.setdefault(code, candidates[code][1])
        after_results = {**before_results, **{c: candidates[c][0] for c in reads & set(candidates)}}
        try:
            before = evaluate(expression, before_results, people)
            after = evaluate(expression, after_results, people)
        except Exception as exc:  # one audience never spoils the others
            log.warning("impact preview: audience %s not evaluated", audience.pk, exc_info=True)
            row["note"] = _("Not recomputed: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
            continue
        joined, left = after - before, before - after
        row.update(
            size_before=len(before),
            size_after=len(after),
            joined=len(joined),
            left=len(left),
            joined_sample=_sample(joined),
            left_sample=_sample(left),
        )
        rows.append(row)
    return rows


def preview_item(item: ChangeItem, frames=None, as_of=None) -> dict | None:
    """The impact preview of one change (None unless it changes the tag's rule).

    ``frames`` (``(profiles, events, orders)``) are loaded from the profiles app when
    not given. A candidate that cannot be evaluated gives a preview with ``error`` set.
    Nothing is written."""
    if not changes_rule(item):
        return None
    started = time.perf_counter()
    tag = item.tag
    brand = tag.brand
    spec = candidate_spec(item)
    computation = results.result_states([tag.pk]).get(tag.pk)
    if computation is not None and computation["version"] is None:
        computation = None
    out = {
        "tag": tag.code,
        "name": tag.name,
        "value_type": spec.value_type,
        "value_type_before": computation["value_type"] if computation else "",
        "coverage_before": computation["coverage"] if computation else None,
        "coverage_after": None,
        "population_before": computation["population"] if computation else None,
        "population": None,
        "distribution_before": dict(computation["distribution"] or {}) if computation else {},
        "distribution_after": {},
        "values": [],
        "audiences": [],
        "dependents": [],
        "error": "",
        "computed_at": None,
        "took_s": None,
    }

    def done(result: dict) -> dict:
        result["computed_at"] = timezone.now().isoformat()
        result["took_s"] = round(time.perf_counter() - started, 3)
        return result

    if (spec.definition or {}).get("type") == "manual":
        out["error"] = _("A manual tag's values come from uploaded lists: there is nothing to compute.")
        return done(out)
    readers = _readers(tag)
    specs = {tag.pk: spec, **{reader.pk: reader_spec for reader, reader_spec in readers}}
    part = results.evaluate_specs(brand, specs, frames, as_of)
    out["population"] = part.population
    if tag.pk in part.errors:
        out["error"] = _("The proposed rule cannot be evaluated: %(error)s") % {"error": part.errors[tag.pk]}
        return done(out)
    outcome = part.outcomes[tag.pk]
    current = _current_results(brand, [tag.code] + [reader.code for reader, _spec in readers])
    # code -> (candidate result, current result)
    candidates = {}
    after = _tag_result(tag, spec, outcome)
    before = current.get(tag.code) or _empty_result(tag, out["value_type_before"] or spec.value_type)
    candidates[tag.code] = (after, before)
    out["coverage_after"] = outcome.coverage(spec.value_type, part.population)
    out["distribution_after"] = outcome.distribution
    out["values"] = _value_rows(spec, tag, before, after)
    changed = {tag.code}
    stored_coverage = {
        tag_id: state["coverage"]
        for tag_id, state in results.result_states([reader.pk for reader, _spec in readers]).items()
        if state["version"] is not None
    }
    for reader, reader_spec in readers:
        row = {
            "tag": reader.code,
            "name": reader.name,
            "coverage_before": stored_coverage.get(reader.pk),
            "coverage_after": None,
            "joined": 0,
            "left": 0,
            "error": "",
        }
        if reader.pk in part.errors or reader.pk not in part.outcomes:
            row["error"] = part.errors.get(reader.pk) or _("The tag was not evaluated.")
            out["dependents"].append(row)
            continue
        reader_outcome = part.outcomes[reader.pk]
        reader_after = _tag_result(reader, reader_spec, reader_outcome)
        reader_before = current.get(reader.code) or _empty_result(reader, reader_spec.value_type)
        candidates[reader.code] = (reader_after, reader_before)
        changed.add(reader.code)
        held_before = _held(reader_before, reader_before.value_type)
        held_after = _held(reader_after, reader_spec.value_type)
        row.update(
            coverage_after=reader_outcome.coverage(reader_spec.value_type, part.population),
            joined=len(held_after - held_before),
            left=len(held_before - held_after),
        )
        out["dependents"].append(row)
    audiences = _audiences(brand, changed, {tag.pk} | {reader.pk for reader, _spec in readers})
    out["audiences"] = _audience_rows(brand, audiences, candidates, changed)
    return done(out)


# ---------------------------------------------------------------------------
# Caching on the item, queueing


def _eager() -> bool:
    """Without a broker tasks run in-process: a preview is then computed when asked."""
    return bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False))


def _fresh(item: ChangeItem, key: str) -> bool:
    impact = item.impact or {}
    return impact.get("key") == key and impact.get("state") in (READY, FAILED)


def _queued(item: ChangeItem, key: str, now) -> bool:
    impact = item.impact or {}
    if impact.get("key") != key or impact.get("state") != COMPUTING:
        return False
    requested = parse_datetime(impact.get("requested_at") or "")
    return requested is not None and now - requested < LOST_AFTER


def _save(item: ChangeItem, impact: dict, computed_at=None) -> None:
    item.impact, item.impact_computed_at = impact, computed_at
    ChangeItem.objects.filter(pk=item.pk).update(impact=impact, impact_computed_at=computed_at)


def compute(item: ChangeItem, key: str | None = None) -> dict:
    """Compute ``item``'s preview now and cache it; a failure is cached as a failed
    preview with its message (and logged), never raised."""
    key = key or cache_key(item)
    try:
        result = preview_item(item)
    except Exception as exc:
        log.exception("impact preview of change item %s failed", item.pk)
        result = {
            "tag": item.tag.code,
            "name": item.tag.name,
            "error": _("The impact preview failed: %(error)s") % {"error": f"{type(exc).__name__}: {exc}"},
            "computed_at": timezone.now().isoformat(),
        }
    if result is None:
        return {}
    impact = {**result, "item": item.pk, "key": key, "state": FAILED if result.get("error") else READY}
    _save(item, impact, timezone.now())
    return impact


def preview(cr: ChangeRequest, force: bool = False) -> list[dict]:
    """The previews of ``cr``'s rule changes, from the cache when still valid, computed
    now otherwise (``force``: computed now in any case)."""
    out = []
    for item in rule_items(cr):
        key = cache_key(item)
        if not force and _fresh(item, key):
            out.append(item.impact)
        else:
            out.append(compute(item, key))
    return out


def request(cr: ChangeRequest, force: bool = False) -> str:
    """Make sure ``cr``'s previews are (or will be) up to date; the state they are in:
    ``ready`` (cached, or just computed in eager mode), ``computing`` (queued) or
    ``none`` (no rule change)."""
    items = rule_items(cr)
    if not items:
        return "none"
    if _eager():
        preview(cr, force=force)
        return READY
    now = timezone.now()
    keys = {item.pk: cache_key(item) for item in items}
    if not force and all(_fresh(item, keys[item.pk]) for item in items):
        return READY
    send = False
    for item in items:
        key = keys[item.pk]
        if not force and (_fresh(item, key) or _queued(item, key, now)):
            continue
        previous = {k: v for k, v in (item.impact or {}).items() if k not in ("state", "key")}
        _save(
            item,
            {**previous, "item": item.pk, "key": key, "state": COMPUTING, "requested_at": now.isoformat()},
            item.impact_computed_at,
        )
        send = True
    if send:
        from .tasks import preview_impact

        cr_id = cr.pk
        transaction.on_commit(
            lambda: preview_impact.apply_async(args=(cr_id,), kwargs={"force": force}, queue=QUEUE)
        )
    return COMPUTING


def queue_on_submit(cr: ChangeRequest) -> None:
    """Queue the previews of a request just submitted (with a broker only: in eager mode
    they are computed when first asked for, not on the submitter's request)."""
    if _eager() or cr.state not in OPEN_STATES:
        return
    try:
        request(cr)
    except Exception:  # a preview never blocks the review
        log.exception("could not queue the impact preview of change request %s", cr.pk)


# ---------------------------------------------------------------------------
# What the pages and the API show


def may_see_members(user) -> bool:
    """OneIDs of who joins or leaves are shown to those who may export audience members."""
    return bool(user and user.has_perm("audiences.export_audience"))


def for_user(impact: dict, user) -> dict:
    """A cached preview as ``user`` may see it (member samples only with the export right;
    the cache key left out)."""
    out = {k: v for k, v in (impact or {}).items() if k != "key"}
    if not may_see_members(user):
        out["audiences"] = [
            {k: v for k, v in row.items() if k not in ("joined_sample", "left_sample")}
            for row in out.get("audiences", [])
        ]
    return out


def api_previews(user, cr: ChangeRequest, force: bool = False) -> tuple[str, list[dict]]:
    """``(state, previews)`` for the API: asks for missing previews first (open requests
    only; a decided request keeps the preview it had, and ``force`` on it is a
    :class:`~tagportal.core.exceptions.Conflict`)."""
    if force and cr.state not in OPEN_STATES:
        raise Conflict(_("The request is decided: its impact preview stays as it was."), state=cr.state)
    state = READY
    if cr.state in OPEN_STATES:
        state = request(cr, force=force)
    previews = [for_user(item.impact, user) for item in rule_items(cr) if item.impact]
    if state != COMPUTING and any(p.get("state") == COMPUTING for p in previews):
        state = COMPUTING
    return state, previews


def _pct(share) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def _delta_pt(before, after) -> str:
    if before is None or after is None:
        return ""
    delta = (after - before) * 100
    return f"{delta:+.1f} pt"


def display(impact: dict, user) -> dict:
    """A cached preview ready for the request page."""
    shown = for_user(impact, user)
    shown["coverage_before_text"] = _pct(shown.get("coverage_before"))
    shown["coverage_after_text"] = _pct(shown.get("coverage_after"))
    shown["coverage_delta_text"] = _delta_pt(shown.get("coverage_before"), shown.get("coverage_after"))
    for row in shown.get("dependents", []):
        row["coverage_before_text"] = _pct(row.get("coverage_before"))
        row["coverage_after_text"] = _pct(row.get("coverage_after"))
    for row in shown.get("audiences", []):
        if row.get("size_before") is not None and row.get("size_after") is not None:
            row["delta"] = row["size_after"] - row["size_before"]
    computed = shown.get("computed_at")
    shown["computed_at"] = parse_datetime(computed) if isinstance(computed, str) else computed
    shown["show_members"] = may_see_members(user)
    return shown


def attach(user, cr: ChangeRequest, entries: list[dict]) -> bool:
    """Put each rule change's preview on its entry of the request page (``entry["impact"]``),
    asking for missing ones first while the request is open (a decided request shows
    the preview it had, if any); whether any entry got one. Never raises: a failure
    becomes a message on the entry."""
    is_open = cr.state in OPEN_STATES
    wanted = {entry["item"].pk: entry for entry in entries if changes_rule(entry["item"])}
    if not wanted:
        return False
    try:
        if is_open:
            request(cr)
        cached = {item.pk: item.impact for item in ChangeItem.objects.filter(pk__in=list(wanted))}
        for pk, entry in wanted.items():
            found = cached.get(pk) or {}
            if found:
                entry["impact"] = {**display(found, user), "can_recompute": is_open}
            elif is_open:
                entry["impact"] = {"state": "none", "can_recompute": True}
    except Exception:
        log.exception("impact preview of change request %s could not be shown", cr.pk)
        for entry in wanted.values():
            entry["impact"] = {
                "state": FAILED,
                "error": _("The impact preview could not be computed; the review is not affected."),
                "can_recompute": is_open,
            }
    return any("impact" in entry for entry in wanted.values())


def summary(items) -> str:
    """One line for the review queue, from the cached previews of ``items`` (never
    computed here): "coverage 32.0% → 41.0%, 2 audiences ±"; empty without previews."""
    try:
        return _summary(items)
    except Exception:  # a preview never breaks the queue
        log.exception("impact summary failed")
        return ""


def _summary(items) -> str:
    parts = []
    items = [item for item in items if changes_rule(item) and item.impact]
    for item in items:
        impact = item.impact
        state = impact.get("state")
        if state == COMPUTING:
            parts.append(_("computing…"))
            continue
        if state == FAILED:
            parts.append(_("preview failed"))
            continue
        text = _("coverage %(before)s → %(after)s") % {
            "before": _pct(impact.get("coverage_before")),
            "after": _pct(impact.get("coverage_after")),
        }
        moved = sum(1 for row in impact.get("audiences", []) if row.get("joined") or row.get("left"))
        if moved:
            text += ", " + ngettext("%(n)s audience ±", "%(n)s audiences ±", moved) % {"n": moved}
        if len(items) > 1:
            text = f"{item.tag.code}: {text}"
        parts.append(text)
    return "; ".join(parts)


def recompute(user, cr: ChangeRequest) -> str:
    """The "recompute" button: the state after asking (see :func:`request`); ``closed``
    for a decided request (its preview stays as it was when it was decided)."""
    if cr.state not in OPEN_STATES:
        return "closed"
    if not rule_items(cr):
        return "none"
    return request(cr, force=True)
