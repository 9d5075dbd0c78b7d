"""What a journey did: people per node, the paths they took, sends, conversions, revenue,
and the uplift of the treated over the holdout.

The uplift is the difference of conversion rates, treatment minus holdout, with a 95 %
confidence interval by Newcombe's hybrid score method (his method 10: the Wilson score
intervals of both rates combined), which keeps its coverage for small groups and rates
near 0 where the normal approximation (Wald) does not:

>>> u = uplift(1000, 120, 100, 5)
>>> round(u.difference, 3), round(u.low, 3), round(u.high, 3)
(0.07, 0.005, 0.106)
>>> u.significant
True
>>> uplift(0, 0, 10, 1).difference is None
True
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, Sum
from scipy.stats import norm

from .choices import OPEN_STATES, HoldoutGroup, InstanceState, StepOutcome
from .models import Conversion, InstanceStep, Journey, JourneyInstance

CONFIDENCE = 0.95
#: Paths read for the Sankey diagram (the most recent instances).
MAX_PATHS = 50_000


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of a proportion.

    >>> [round(x, 4) for x in wilson(0, 20)]
    [0.0, 0.1611]
    """
    if n <= 0:
        return (0.0, 1.0)
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Uplift:
    treated: int
    treated_converted: int
    held_out: int
    held_out_converted: int
    treated_rate: float | None
    held_out_rate: float | None
    difference: float | None
    low: float | None
    high: float | None
    relative: float | None

    @property
    def significant(self) -> bool:
        """Whether the interval leaves out 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)


def uplift(treated: int, treated_converted: int, held_out: int, held_out_converted: int) -> Uplift:
    """Treatment minus holdout conversion rate with its Newcombe (hybrid score) interval."""
    p1 = treated_converted / treated if treated else None
    p2 = held_out_converted / held_out if held_out else None
    if p1 is None or p2 is None:
        return Uplift(
            treated, treated_converted, held_out, held_out_converted, p1, p2, None, None, None, None
        )
    l1, u1 = wilson(treated_converted, treated)
    l2, u2 = wilson(held_out_converted, held_out)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    relative = d / p2 if p2 else None
    return Uplift(treated, treated_converted, held_out, held_out_converted, p1, p2, d, low, high, relative)


def journey_uplift(journey: Journey) -> Uplift | None:
    """The uplift of the journey's holdout node, or ``None`` when nobody was held out."""
    groups = dict(
        JourneyInstance.objects.filter(journey=journey)
        .exclude(group="")
        .order_by()
        .values_list("group")
        .annotate(n=Count("pk"))
        .values_list("group", "n")
    )
    if not groups.get(HoldoutGroup.HOLDOUT):
        return None
    converted = dict(
        Conversion.objects.filter(journey=journey)
        .exclude(instance__group="")
        .order_by()
        .values_list("instance__group")
        .annotate(n=Count("instance", distinct=True))
        .values_list("instance__group", "n")
    )
    return uplift(
        groups.get(HoldoutGroup.TREATMENT, 0),
        converted.get(HoldoutGroup.TREATMENT, 0),
        groups.get(HoldoutGroup.HOLDOUT, 0),
        converted.get(HoldoutGroup.HOLDOUT, 0),
    )


def node_counts(journey: Journey) -> dict[str, dict[str, int]]:
    """Per node id: ``waiting`` (people there now), ``passed`` (people who reached it),
    ``sent`` (messages sent there) and ``converted`` (conversions attributed to it)."""
    counts: dict[str, dict[str, int]] = {}

    def row(node: str) -> dict[str, int]:
        return counts.setdefault(node, {"waiting": 0, "passed": 0, "sent": 0, "converted": 0})

    waiting = (
        JourneyInstance.objects.filter(journey=journey, state__in=OPEN_STATES)
        .order_by()
        .values_list("node")
        .annotate(n=Count("pk"))
    )
    for node, n in waiting:
        row(node)["waiting"] = n
    steps = (
        InstanceStep.objects.filter(instance__journey=journey)
        .order_by()
        .values_list("node")
        .annotate(n=Count("pk"), sent=Count("pk", filter=Q(outcome=StepOutcome.SENT)))
    )
    for node, n, sent in steps:
        row(node)["passed"] = n
        row(node)["sent"] = sent
    converted = (
        Conversion.objects.filter(journey=journey)
        .exclude(attributed_node="")
        .order_by()
        .values_list("attributed_node")
        .annotate(n=Count("pk"))
    )
    for node, n in converted:
        row(node)["converted"] = n
    return counts


def outcomes(journey: Journey) -> dict[str, int]:
    """People per instance state (inside, done, exited, converted)."""
    return dict(
        JourneyInstance.objects.filter(journey=journey)
        .order_by()
        .values_list("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )


def path_links(journey: Journey, limit: int = MAX_PATHS) -> Counter:
    """``{(from, to): people}``: the steps people took between nodes, and from the last
    node they reached to how they left (``"state:<state>"``) for those who left."""
    links: Counter = Counter()
    rows = (
        JourneyInstance.objects.filter(journey=journey)
        .order_by("-pk")
        .values_list("path", "node", "state")[:limit]
    )
    for path, node, state in rows:
        nodes = [n for n in (path or []) if isinstance(n, str)]
        if not nodes or nodes[-1] != node:
            nodes.append(node)
        for a, b in itertools.pairwise(nodes):
            if a != b:
                links[(a, b)] += 1
        if state not in OPEN_STATES:
            links[(nodes[-1], f"state:{state}")] += 1
    return links


def conversions(journey: Journey) -> dict:
    """Conversions and revenue (orders' amounts), in all and per kind."""
    rows = (
        Conversion.objects.filter(journey=journey)
        .order_by()
        .values_list("kind")
        .annotate(n=Count("pk"), amount=Sum("amount"))
    )
    per_kind = {kind: {"n": n, "amount": amount or Decimal(0)} for kind, n, amount in rows}
    return {
        "n": sum(r["n"] for r in per_kind.values()),
        "revenue": sum((r["amount"] for r in per_kind.values()), Decimal(0)),
        "per_kind": per_kind,
        "people": JourneyInstance.objects.filter(journey=journey).count(),
        "converted_people": JourneyInstance.objects.filter(journey=journey, conversions__isnull=False)
        .distinct()
        .count(),
    }


def _sends_have_context() -> bool:
    from tagportal.activation.models import Send

    return hasattr(Send, "context")  # the field a journey's sends carry their journey in


def sends(journey: Journey) -> list[tuple[str, str, int]]:
    """``[(channel kind, delivery state, deliveries)]`` of the messages the journey sent
    (empty while sends carry no journey context)."""
    if not _sends_have_context():
        return []
    from tagportal.activation.models import Delivery

    return list(
        Delivery.objects.filter(send__context__journey=journey.pk)
        .order_by("send__kind", "state")
        .values_list("send__kind", "state")
        .annotate(n=Count("pk"))
    )


def variant_rows(journey: Journey, graph: dict) -> list[dict]:
    """Per send node with variants: each variant's numbers and what the learning says
    (from :mod:`.variants` ``stats`` and ``decision`` when they are there)."""
    from . import variants

    stats_of = getattr(variants, "stats", None)
    decide = getattr(variants, "decision", None)
    if stats_of is None:
        return []
    out = []
    for node in (graph or {}).get("nodes") or []:
        config = node.get("config") or {}
        keys = [v.get("key") for v in config.get("variants") or [] if isinstance(v, dict)]
        if node.get("type") != "send" or not keys:
            continue
        numbers = stats_of(journey, node["id"]) or {}
        decided = None
        if decide is not None and numbers:
            try:
                decided = decide(numbers, config.get("learning") or "significance")
            except (ValueError, TypeError):
                decided = None
        rows = []
        for key in keys:
            value = numbers.get(key)
            data = value.as_dict() if hasattr(value, "as_dict") else dict(value or {})
            sent = data.get("sent") or 0
            if data.get("click_rate") is None and sent:
                data["click_rate"] = (data.get("clicked") or 0) / sent
            if data.get("conversion_rate") is None and sent:
                data["conversion_rate"] = (data.get("converted") or 0) / sent
            rows.append(
                {
                    "key": key,
                    "sent": data.get("sent", 0),
                    "delivered": data.get("delivered", 0),
                    "clicked": data.get("clicked", 0),
                    "converted": data.get("converted", 0),
                    "click_rate": data.get("click_rate"),
                    "conversion_rate": data.get("conversion_rate"),
                    "share": (getattr(decided, "shares", {}) or {}).get(key),
                    "p_best": (getattr(decided, "p_best", {}) or {}).get(key),
                    "winner": getattr(decided, "winner", None) == key,
                }
            )
        out.append(
            {
                "node": node["id"],
                "label": node.get("label") or node["id"],
                "learning": config.get("learning") or "significance",
                "state": getattr(decided, "state", ""),
                "rows": rows,
            }
        )
    return out


def finished_states() -> list[str]:
    return [s for s in InstanceState.values if s not in OPEN_STATES]
