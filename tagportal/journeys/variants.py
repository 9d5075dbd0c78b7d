"""Variants of a send node: who gets which, and learning which one works.

- :func:`bucket`: a person's place in ``[0, 1)`` for one journey and one purpose (the
  ``salt``: a split node, the holdout, a send node's variants), from SHA-256 — the same
  person always lands in the same place, and different salts are independent.
- :func:`stats`: per variant of a send node, how many of its deliveries were sent,
  delivered, read, clicked (receipts only move a delivery forward, so a clicked one was
  also sent), and how many people converted with the conversion attributed to it.
- :func:`decision`: what the numbers say, by the node's ``learning`` method:

  ``significance``
      Traffic is split evenly until one variant beats every other on click rate
      (clicks / sent), then all the rest goes to it. Each comparison of the leader with
      another variant is a pooled two-proportion z-test; every variant needs
      ``min_sample`` sent first, and with more than two variants the level is divided by
      the ``k - 1`` comparisons (Bonferroni). The test is read again at every send, so a
      plain 1.96 would find a "winner" among equal variants far more often than 5 % of the
      time; the critical value is therefore the continuous-monitoring boundary of
      O'Brien–Fleming's shape: ``|z| >= c / sqrt(t)`` with ``t = n / horizon`` (``n`` the
      per-arm sample, harmonic mean of the two arms) and ``c`` such that a Brownian motion
      leaves ``[-c, c]`` before ``t = 1`` with probability ``alpha`` (``c = 2.24`` for 5 %).
      Once every variant has ``horizon`` sent without a winner, the test stops:
      ``no_difference``, the split stays even.

  ``thompson``
      Beta-Bernoulli Thompson sampling on clicks: each person draws a click rate for each
      variant from its ``Beta(1 + clicked, 1 + sent - clicked)`` posterior and gets the
      highest. The draw is seeded by the person (and journey and node), so a retry with
      the same numbers picks the same variant. :func:`decision` reports each variant's
      probability of being the best (its expected share of the traffic) and names a
      winner once one's is at least ``1 - alpha`` (traffic keeps being sampled).

- :func:`choose`: the variant key a person gets at a send node, given :func:`stats`.

>>> bucket(7, 42, "split:n3") == bucket(7, 42, "split:n3")
True
>>> 0 <= bucket(7, 42, "split:n3") < 1
True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
from scipy import optimize
from scipy.stats import norm

SIGNIFICANCE = "significance"
THOMPSON = "thompson"
METHODS = (SIGNIFICANCE, THOMPSON)

#: The level of the whole test (all comparisons, all the times it is read).
ALPHA = 0.05
#: Sent per variant before any comparison is made.
MIN_SAMPLE = 200
#: Sent per variant by which the test must have decided (the boundary's scale).
HORIZON = 10_000
#: Draws of the posteriors that estimate each variant's probability of being the best.
POSTERIOR_DRAWS = 4000

# decision states
COLLECTING = "collecting"  # some variant has fewer than min_sample sent
LEARNING = "learning"  # compared, nothing significant yet
WINNER = "winner"
NO_DIFFERENCE = "no_difference"  # the horizon passed without a winner
SINGLE = "single"  # one variant known: nothing to compare (no winner named)


def _digest(*parts) -> bytes:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()


def bucket(journey_id, oneid, salt) -> float:
    """A person's deterministic place in ``[0, 1)`` for ``journey_id`` and ``salt``."""
    return int.from_bytes(_digest(journey_id, oneid, salt)[:8], "big") / 2**64


def _seed(journey_id, oneid, salt) -> int:
    return int.from_bytes(_digest(journey_id, oneid, salt)[8:16], "big")


def _journey_id(journey) -> int | str:
    return getattr(journey, "pk", journey)


# stats ---------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantStats:
    """What happened to a variant's messages (each count includes the later states)."""

    assigned: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    clicked: int = 0
    converted: int = 0

    @property
    def click_rate(self) -> float | None:
        return self.clicked / self.sent if self.sent else None

    @property
    def conversion_rate(self) -> float | None:
        return self.converted / self.sent if self.sent else None

    def as_dict(self) -> dict:
        return {**asdict(self), "click_rate": self.click_rate, "conversion_rate": self.conversion_rate}


def _as_stats(value) -> VariantStats:
    if isinstance(value, VariantStats):
        return value
    known = VariantStats.__dataclass_fields__
    return VariantStats(**{k: int(v or 0) for k, v in dict(value or {}).items() if k in known})


def stats(journey, node_id: str) -> dict[str, VariantStats]:
    """``{variant key: VariantStats}`` of a send node of ``journey``, from the deliveries
    of the sends it made (their ``context`` names the journey, node and variant) and
    the conversions attributed to it. Variants nobody got yet are absent."""
    from django.db.models import Count, Q

    from tagportal.activation.models import Delivery, DeliveryState

    from .models import Conversion

    journey_id = _journey_id(journey)
    forward = [DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.READ, DeliveryState.CLICKED]
    rows = (
        Delivery.objects.filter(send__context__journey=journey_id, send__context__node=node_id)
        .order_by()
        .values("send__context__variant")
        .annotate(
            assigned=Count("pk"),
            sent=Count("pk", filter=Q(state__in=forward)),
            delivered=Count("pk", filter=Q(state__in=forward[1:])),
            read=Count("pk", filter=Q(state__in=forward[2:])),
            clicked=Count("pk", filter=Q(state=DeliveryState.CLICKED)),
        )
    )
    counts = {str(row.pop("send__context__variant") or ""): row for row in rows}
    converted = (
        Conversion.objects.filter(journey_id=journey_id, attributed_node=node_id)
        .order_by()
        .values("attributed_variant")
        .annotate(n=Count("instance", distinct=True))
    )
    for row in converted:
        counts.setdefault(row["attributed_variant"] or "", {})["converted"] = row["n"]
    return {key: _as_stats(values) for key, values in sorted(counts.items())}


# decision ------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """The leader against one other variant."""

    variant: str
    z: float
    p_value: float  # the classic two-sided p-value of this one look
    critical_z: float  # what z must reach at this sample size
    significant: bool


@dataclass(frozen=True)
class Decision:
    method: str
    state: str
    winner: str | None
    #: The share of the next people each variant gets (even while learning).
    shares: dict[str, float]
    rates: dict[str, float | None]
    leader: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    #: thompson: each variant's posterior probability of being the best.
    p_best: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _crossing_probability(c: float) -> float:
    """P(a standard Brownian motion leaves [-c, c] before time 1)."""
    k = np.arange(100)
    inside = (4 / math.pi) * np.sum(
        (-1.0) ** k / (2 * k + 1) * np.exp(-((2 * k + 1) ** 2) * math.pi**2 / (8 * c * c))
    )
    return float(1 - inside)


@lru_cache(maxsize=64)
def boundary(alpha: float) -> float:
    """The ``c`` whose two-sided crossing probability before ``t = 1`` is ``alpha``
    (2.2414 for 0.05): reading ``|z| >= c / sqrt(t)`` at any time keeps the error at
    ``alpha``."""
    return float(optimize.brentq(lambda c: _crossing_probability(c) - alpha, 0.5, 12.0))


def two_proportion_z(clicked_a: int, sent_a: int, clicked_b: int, sent_b: int) -> tuple[float, float]:
    """The pooled two-proportion z of ``a`` over ``b`` and its two-sided p-value."""
    pooled = (clicked_a + clicked_b) / (sent_a + sent_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / sent_a + 1 / sent_b))
    if se == 0:
        return 0.0, 1.0
    z = (clicked_a / sent_a - clicked_b / sent_b) / se
    return z, float(2 * norm.sf(abs(z)))


def _even(keys: Sequence[str]) -> dict[str, float]:
    return {k: 1 / len(keys) for k in keys}


def _significance(counts, alpha: float, min_sample: int, horizon: int) -> Decision:
    keys = list(counts)
    rates = {k: counts[k].click_rate for k in keys}
    if len(keys) < 2:
        return Decision(SIGNIFICANCE, SINGLE, None, {k: 1.0 for k in keys}, rates)
    if min(counts[k].sent for k in keys) < min_sample:
        return Decision(SIGNIFICANCE, COLLECTING, None, _even(keys), rates)
    ordered = sorted(keys, key=lambda k: rates[k], reverse=True)
    leader = ordered[0]
    c = boundary(alpha / (len(keys) - 1))
    lead = counts[leader]
    comparisons = []
    for other in ordered[1:]:
        them = counts[other]
        z, p = two_proportion_z(lead.clicked, lead.sent, them.clicked, them.sent)
        n = 2 / (1 / lead.sent + 1 / them.sent)
        critical = c / math.sqrt(min(1.0, n / horizon))
        comparisons.append(Comparison(other, z, p, critical, z >= critical))
    if all(comp.significant for comp in comparisons):
        shares = {k: float(k == leader) for k in keys}
        return Decision(SIGNIFICANCE, WINNER, leader, shares, rates, leader, comparisons)
    state = NO_DIFFERENCE if min(counts[k].sent for k in keys) >= horizon else LEARNING
    return Decision(SIGNIFICANCE, state, None, _even(keys), rates, leader, comparisons)


def _posterior(counts: Mapping[str, VariantStats]) -> tuple[np.ndarray, np.ndarray]:
    clicked = np.array([min(v.clicked, v.sent) for v in counts.values()], dtype=float)
    sent = np.array([v.sent for v in counts.values()], dtype=float)
    return 1 + clicked, 1 + sent - clicked


def _thompson(counts, alpha: float, min_sample: int) -> Decision:
    keys = list(counts)
    rates = {k: counts[k].click_rate for k in keys}
    if len(keys) < 2:
        return Decision(THOMPSON, SINGLE, None, {k: 1.0 for k in keys}, rates)
    a, b = _posterior(counts)
    draws = np.random.default_rng(0).beta(a, b, size=(POSTERIOR_DRAWS, len(keys)))
    best = np.bincount(draws.argmax(axis=1), minlength=len(keys)) / POSTERIOR_DRAWS
    p_best = dict(zip(keys, best.tolist(), strict=True))
    leader = keys[int(best.argmax())]
    enough = min(counts[k].sent for k in keys) >= min_sample
    won = enough and p_best[leader] >= 1 - alpha
    state = WINNER if won else (LEARNING if enough else COLLECTING)
    return Decision(THOMPSON, state, leader if won else None, p_best, rates, leader, p_best=p_best)


def decision(
    stats: Mapping[str, VariantStats | Mapping],
    method: str = SIGNIFICANCE,
    *,
    alpha: float = ALPHA,
    min_sample: int = MIN_SAMPLE,
    horizon: int = HORIZON,
) -> Decision:
    """What the variants' numbers say by ``method`` (see the module's docstring)."""
    counts = {str(k): _as_stats(v) for k, v in stats.items()}
    if method == THOMPSON:
        return _thompson(counts, alpha, min_sample)
    if method != SIGNIFICANCE:
        raise ValueError(f"unknown learning method {method!r}; expected one of {', '.join(METHODS)}")
    key = tuple((k, v.sent, v.clicked) for k, v in counts.items())
    return _significance_cached(key, alpha, min_sample, horizon)


@lru_cache(maxsize=256)
def _significance_cached(key: tuple, alpha: float, min_sample: int, horizon: int) -> Decision:
    counts = {k: VariantStats(sent=sent, clicked=clicked) for k, sent, clicked in key}
    return _significance(counts, alpha, min_sample, horizon)


# choice --------------------------------------------------------------------------
def variant_keys(node: Mapping) -> list[str]:
    return [str(v["key"]) for v in (node.get("config") or {}).get("variants") or [] if "key" in v]


def _options(config: Mapping) -> dict:
    options = {}
    for name in ("min_sample", "horizon"):
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            options[name] = value
    return options


def choose(node: Mapping, journey, oneid: int, stats: Mapping[str, VariantStats | Mapping]) -> str:
    """The variant key ``oneid`` gets at send ``node`` (a graph node with
    ``config.variants``) of ``journey``, given the node's :func:`stats`."""
    keys = variant_keys(node)
    if not keys:
        return ""
    if len(keys) == 1:
        return keys[0]
    config = node.get("config") or {}
    method = config.get("learning") or SIGNIFICANCE
    counts = {k: _as_stats(stats.get(k)) for k in keys}
    journey_id, node_id = _journey_id(journey), node.get("id", "")
    if method == THOMPSON:
        a, b = _posterior(counts)
        draws = np.random.default_rng(_seed(journey_id, oneid, f"thompson:{node_id}")).beta(a, b)
        return keys[int(draws.argmax())]
    found = decision(counts, SIGNIFICANCE, **_options(config))
    if found.winner:
        return found.winner
    return keys[min(len(keys) - 1, int(bucket(journey_id, oneid, f"variant:{node_id}") * len(keys)))]
