"""Cold-tag report: published (and deprecated) tags worth deprecating, with a score.

Each tag gets five components, each between 0 and 1:

- **usage**: 1.0 when nobody used the tag during the period although it was first
  published more than ``GRACE_DAYS`` (30) days before the period ends (younger tags:
  0); when use is falling (the last 30 days below 50 % of the 30 before, which had at
  least 5 uses; see :mod:`.usage`), 0.9 − 0.8 × recent / previous, i.e. 0.5 (halved)
  to 0.9 (stopped); 0 otherwise.
- **coverage** (how much the result tells people apart): 1.0 when there is no result,
  nobody has a value (coverage 0) or the result tells nothing apart — for a yes/no tag
  at least 99 % of the brand's people are "yes"; for an enum or number tag one value
  (or bucket) holds at least 99 % of them; 0.5 when fewer than 0.1 % of the people
  have a value or that share is at least 98 %; 0 otherwise. (For an enum or number
  tag full coverage is normal, e.g. a gender tag; only a single dominant value makes
  it uninformative.)
- **computation**: 1.0 when the computation is failing (failures in a row > 0); 0.7
  when the result is stale: last computed more than ``STALE_RESULT_DAYS`` (7) days
  before the end of the period, or computed from an older version than the published
  one; 0 otherwise.
- **lineage**: 1.0 when the tag reads, directly or through other tags, a data source
  past its refresh SLA at the end of the period
  (:func:`tagportal.lineage.services.stale_tag_ids`); 0 otherwise.
- **cost**: the tag's mean evaluation time (``evaluate_s``, else ``duration_s``) over
  its successful runs started within the period, divided by the 95th percentile of
  those means over the scope's tags, capped at 1. It only counts when the tag is also
  unused (usage = 1) or uninformative (coverage > 0): cost alone never makes a tag cold.

The score is ``round(100 × Σ WEIGHTS[c] × component[c], 1)``, between 0 and 100, with
:data:`WEIGHTS` usage 0.50, coverage 0.20, computation 0.10, lineage 0.10, cost 0.10.
A tag is cold when its score is at least :data:`THRESHOLD` (50). Never used since the
grace period is enough on its own (50); falling use (25 to 45) needs another sign,
e.g. an uninformative result (+ 20) or a failing computation (+ 10); the other
components together (at most 50, cost counting only for an uninformative tag) make a
tag cold only when every one of them is at its worst.

Rows give the reasons in machine form (``{"code": ..., "params": {...}}``);
:func:`reason_text` and :func:`reasons_text` put them in words in the active language.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque

import numpy as np
from django.db.models import Avg, Min
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from tagportal.catalog.choices import TagStatus, ValueType
from tagportal.catalog.models import TagVersion
from tagportal.engine.choices import RunStatus
from tagportal.engine.models import TagComputation, TagRun
from tagportal.lineage.models import TagInput
from tagportal.lineage.services import stale_sources, stale_tag_ids

from . import ReportScope
from .usage import (
    FALLING_BELOW,
    TREND_DAYS,
    TagUse,
    brief,
    brief_tags,
    period_json,
    start_of,
    tag_ids,
    tag_regions,
    trend,
    usage_by_tag,
)

WEIGHTS = {"usage": 0.50, "coverage": 0.20, "computation": 0.10, "lineage": 0.10, "cost": 0.10}
#: A tag is cold from this score on.
THRESHOLD = 50
#: A tag first published fewer days than this before the end of the period is not "unused".
GRACE_DAYS = 30
#: A result computed longer ago than this before the end of the period is stale.
STALE_RESULT_DAYS = 7
#: Coverage thresholds (shares of the brand's people).
NO_INFORMATION = 0.99
LITTLE_INFORMATION = 0.98
TINY_COVERAGE = 0.001
#: Components of the usage and computation scores besides 0 and 1.
FALLING_MIN, FALLING_MAX = 0.5, 0.9
STALE_COMPONENT = 0.7
#: The percentile of the scope's mean run times a tag's mean is divided by.
COST_PERCENTILE = 95
#: A counted cost component from which the tag is called costly.
COSTLY_FROM = 0.5
#: Longest error message kept in a reason.
ERROR_CHARS = 200

STATUSES = (TagStatus.PUBLISHED, TagStatus.DEPRECATED)


def _round(x: float, places: int = 4) -> float:
    return round(float(x), places)


def _reason(code: str, **params) -> dict:
    return {"code": code, "params": params}


# ---------------------------------------------------------------------------
# Components


def usage_component(use: TagUse, published_at: dt.datetime | None, scope: ReportScope) -> tuple[float, list]:
    if use.period == 0:
        past_grace = published_at is not None and published_at <= scope.as_of - dt.timedelta(days=GRACE_DAYS)
        if past_grace:
            return 1.0, [_reason("never_used", days=scope.days)]
        return 0.0, []
    if trend(use.recent, use.previous) == "falling":
        ratio = use.recent / use.previous
        value = FALLING_MAX - (FALLING_MAX - FALLING_MIN) * ratio / FALLING_BELOW
        return _round(min(FALLING_MAX, max(FALLING_MIN, value))), [
            _reason("falling_use", previous=use.previous, recent=use.recent, days=TREND_DAYS)
        ]
    return 0.0, []


def _top_value(distribution: dict) -> tuple[str | None, int]:
    best, most = None, 0
    for value in sorted(distribution or {}, key=str):
        count = distribution[value] or 0
        if isinstance(count, int | float) and count > most:
            best, most = str(value), int(count)
    return best, most


def coverage_component(computation: dict | None, value_type: str) -> tuple[float, list]:
    if computation is None or computation["version"] is None or computation["coverage"] is None:
        return 1.0, [_reason("no_result")]
    coverage = computation["coverage"]
    if coverage <= 0:
        return 1.0, [_reason("empty_coverage")]
    if value_type == ValueType.BOOLEAN:
        if coverage >= NO_INFORMATION:
            return 1.0, [_reason("full_coverage", coverage=_round(coverage))]
        if coverage >= LITTLE_INFORMATION:
            return 0.5, [_reason("full_coverage", coverage=_round(coverage))]
    elif computation["population"]:
        value, count = _top_value(computation["distribution"])
        share = count / computation["population"]
        if value is not None and share >= LITTLE_INFORMATION:
            component = 1.0 if share >= NO_INFORMATION else 0.5
            return component, [_reason("single_value", value=value, share=_round(min(share, 1.0)))]
    if coverage < TINY_COVERAGE:
        return 0.5, [_reason("tiny_coverage", coverage=_round(coverage, 6))]
    return 0.0, []


def computation_component(
    computation: dict | None, published_version, scope: ReportScope
) -> tuple[float, list]:
    if computation is None:
        return 0.0, []
    if computation["errors_calculating"]:
        error = (computation["last_error"] or "").strip()[:ERROR_CHARS]
        return 1.0, [_reason("failing", failures=computation["errors_calculating"], error=error)]
    if computation["version"] is None:
        return 0.0, []
    reasons = []
    calculated = computation["last_calculated_at"]
    if calculated is not None and calculated < scope.as_of - dt.timedelta(days=STALE_RESULT_DAYS):
        reasons.append(_reason("stale_result", days=(scope.as_of - calculated).days))
    if published_version and computation["version"] < published_version:
        reasons.append(
            _reason("old_version", result_version=computation["version"], published_version=published_version)
        )
    return (STALE_COMPONENT if reasons else 0.0), reasons


# ---------------------------------------------------------------------------
# Loading


def _published_since(tags_qs) -> dict[int, dt.datetime]:
    rows = (
        TagVersion.objects.filter(tag__in=tag_ids(tags_qs))
        .order_by()
        .values("tag_id")
        .annotate(first=Min("published_at"))
    )
    return {row["tag_id"]: row["first"] for row in rows}


def _computations(tags_qs) -> dict[int, dict]:
    fields = (
        "tag_id",
        "version",
        "errors_calculating",
        "last_error",
        "last_calculated_at",
        "population",
        "coverage",
        "distribution",
        "psi",
        "drift_flag",
    )
    rows = TagComputation.objects.filter(tag__in=tag_ids(tags_qs)).order_by().values(*fields)
    return {row["tag_id"]: row for row in rows}


def _mean_costs(tags_qs, scope: ReportScope) -> dict[int, float]:
    rows = (
        TagRun.objects.filter(
            tag__in=tag_ids(tags_qs),
            status=RunStatus.SUCCESS,
            started_at__gte=start_of(scope),
            started_at__lt=scope.as_of,
        )
        .order_by()
        .values("tag_id")
        .annotate(mean=Avg(Coalesce("evaluate_s", "duration_s")))
    )
    return {row["tag_id"]: float(row["mean"]) for row in rows if row["mean"] is not None}


def _stale_source_names(stale_ids: set[int], now: dt.datetime) -> dict[int, list[str]]:
    """``{tag id: [names of the stale sources it reads, directly or through tags]}`` for
    the tags of ``stale_ids``. Three queries, whatever the number of tags."""
    if not stale_ids:
        return {}
    sources = dict(stale_sources(now).values_list("pk", "name"))
    readers: dict[int, set[int]] = defaultdict(set)
    for tag_id, source_id in TagInput.objects.filter(field__source_id__in=list(sources)).values_list(
        "tag_id", "field__source_id"
    ):
        readers[source_id].add(tag_id)
    edges: dict[int, list[int]] = defaultdict(list)
    for upstream_id, tag_id in TagInput.objects.filter(upstream__isnull=False).values_list(
        "upstream_id", "tag_id"
    ):
        edges[upstream_id].append(tag_id)
    names: dict[int, set[str]] = defaultdict(set)
    for source_id, start in readers.items():
        seen, queue = set(start), deque(start)
        while queue:
            for reader in edges.get(queue.popleft(), ()):
                if reader not in seen:
                    seen.add(reader)
                    queue.append(reader)
        for tag_id in seen & stale_ids:
            names[tag_id].add(sources[source_id])
    return {tag_id: sorted(found) for tag_id, found in names.items()}


# ---------------------------------------------------------------------------
# The report


def build(scope: ReportScope) -> dict:
    tags_qs = scope.tags().filter(status__in=STATUSES)
    tags = brief_tags(tags_qs, "value_type", "created")
    regions = tag_regions(tags_qs)
    uses = usage_by_tag(tags_qs, scope)
    published = _published_since(tags_qs)
    computations = _computations(tags_qs)
    costs = _mean_costs(tags_qs, scope)
    stale = stale_tag_ids(tags_qs, now=scope.as_of)
    stale_names = _stale_source_names(stale, scope.as_of)
    reference = float(np.percentile(list(costs.values()), COST_PERCENTILE)) if costs else 0.0

    rows = []
    for tag in tags:
        use = uses.get(tag.pk) or TagUse()
        computation = computations.get(tag.pk)
        components, reasons = {}, []
        components["usage"], found = usage_component(use, published.get(tag.pk, tag.created), scope)
        reasons += found
        components["coverage"], found = coverage_component(computation, tag.value_type)
        reasons += found
        components["computation"], found = computation_component(computation, tag.published_version, scope)
        reasons += found
        components["lineage"] = 1.0 if tag.pk in stale else 0.0
        if tag.pk in stale:
            reasons.append(_reason("stale_source", sources=stale_names.get(tag.pk, [])))
        cost = 0.0
        if tag.pk in costs and reference > 0 and (components["usage"] >= 1.0 or components["coverage"] > 0):
            cost = _round(min(1.0, costs[tag.pk] / reference))
            if cost >= COSTLY_FROM:
                reasons.append(_reason("costly", seconds=_round(costs[tag.pk], 3)))
        components["cost"] = cost
        score = round(100 * sum(WEIGHTS[name] * components[name] for name in WEIGHTS), 1)
        rows.append(
            {
                **brief(tag, regions),
                "score": score,
                "cold": score >= THRESHOLD,
                "components": components,
                "reasons": reasons,
                "coverage": computation["coverage"] if computation else None,
                "psi": computation["psi"] if computation else None,
                "drift": bool(computation and computation["drift_flag"]),
                "uses_90": use.uses_90,
                "last_used": use.last_used.isoformat() if use.last_used else None,
                "population": computation["population"] if computation else None,
            }
        )
    rows.sort(key=lambda row: (-row["score"], row["code"], row["tag"]))
    return {
        "meta": {
            "weights": dict(WEIGHTS),
            "threshold": THRESHOLD,
            "grace_days": GRACE_DAYS,
            "cold_count": sum(1 for row in rows if row["cold"]),
            "period": period_json(scope),
        },
        "rows": rows,
    }


# ---------------------------------------------------------------------------
# Reasons in words


def _percent(share) -> str:
    return f"{100 * float(share or 0):.1f}%"


def reason_text(reason: dict) -> str:
    """One reason of a row in words, in the active language."""
    code = reason.get("code")
    p = reason.get("params") or {}
    if code == "never_used":
        days = p.get("days", 0)
        return ngettext("Not used in the last %(days)s day", "Not used in the last %(days)s days", days) % {
            "days": days
        }
    if code == "falling_use":
        return _("Use fell from %(previous)s to %(recent)s in the last %(days)s days") % {
            "previous": p.get("previous"),
            "recent": p.get("recent"),
            "days": p.get("days", TREND_DAYS),
        }
    if code == "no_result":
        return _("No result: the tag has not been computed")
    if code == "empty_coverage":
        return _("Nobody has a value")
    if code == "full_coverage":
        return _("Covers %(coverage)s of people: it tells nothing apart") % {
            "coverage": _percent(p.get("coverage"))
        }
    if code == "single_value":
        return _("One value (“%(value)s”) covers %(share)s of people: it tells nothing apart") % {
            "value": p.get("value"),
            "share": _percent(p.get("share")),
        }
    if code == "tiny_coverage":
        return _("Covers only %(coverage)s of people") % {
            "coverage": f"{100 * float(p.get('coverage') or 0):.3f}%"
        }
    if code == "failing":
        failures = p.get("failures", 0)
        text = ngettext(
            "The computation failed %(n)s time in a row",
            "The computation failed %(n)s times in a row",
            failures,
        ) % {"n": failures}
        return f"{text}: {p['error']}" if p.get("error") else text
    if code == "stale_result":
        days = p.get("days", 0)
        return ngettext("The result is %(days)s day old", "The result is %(days)s days old", days) % {
            "days": days
        }
    if code == "old_version":
        return _("The result is of version %(result)s; version %(published)s is published") % {
            "result": p.get("result_version"),
            "published": p.get("published_version"),
        }
    if code == "stale_source":
        sources = p.get("sources") or []
        if not sources:
            return _("Reads a data source past its refresh SLA")
        return _("Reads data past its refresh SLA: %(sources)s") % {"sources": ", ".join(sources)}
    if code == "costly":
        return _("Costly to compute: %(seconds)s s per run on average") % {"seconds": p.get("seconds")}
    return str(code)


def reasons_text(row: dict) -> list[str]:
    """Every reason of a cold-tag report row in words."""
    return [reason_text(reason) for reason in row.get("reasons") or []]
