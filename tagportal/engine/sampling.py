"""Trying a draft definition on a sample of a brand's people before it is proposed:
the first :data:`SAMPLE_LIMIT` people by OneID, evaluated by the engine in one pass
within :data:`SAMPLE_SECONDS`; the value distribution and the coverage come back,
nothing is stored."""

from __future__ import annotations

import concurrent.futures
import math
import time
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.catalog.models import Brand
from tagportal.profiles import loaders

from . import services
from .evaluate import TagSpec

#: Most people a sample holds.
SAMPLE_LIMIT = 20_000
#: Longest an evaluation of a sample may take (seconds).
SAMPLE_SECONDS = 15.0
#: Bars of a number tag's histogram.
HISTOGRAM_BINS = 12
#: The code a draft without a tag is evaluated under.
DRAFT_CODE = "_draft"

_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="rule-sample")


class SampleTooSlow(RuntimeError):
    """The evaluation did not finish within the time limit."""


class SampleFailed(ValueError):
    """The engine could not evaluate the definition (its message says why)."""


@dataclass
class SampleResult:
    value_type: str
    population: int
    holders: int
    coverage: float
    sampled: bool
    seconds: float
    rows_read: int
    values: list[dict] = field(default_factory=list)
    histogram: list[dict] = field(default_factory=list)
    stats: dict | None = None


def _limits() -> tuple[int, float]:
    return (
        int(getattr(settings, "TAGPORTAL_RULE_SAMPLE_LIMIT", SAMPLE_LIMIT)),
        float(getattr(settings, "TAGPORTAL_RULE_SAMPLE_SECONDS", SAMPLE_SECONDS)),
    )


def histogram(numbers: np.ndarray, bins: int = HISTOGRAM_BINS) -> list[dict]:
    """``[{low, high, count}]`` of finite numbers in at most ``bins`` equal bars (one
    bar when they are all equal). Whole numbers get whole bars, ``low`` and ``high``
    both included:

    >>> histogram(np.array([1.0, 2.0, 2.0, 4.0, 9.0]), bins=3)
    [{'low': 1.0, 'high': 3.0, 'count': 3}, {'low': 4.0, 'high': 6.0, 'count': 1}, {'low': 7.0, 'high': 9.0, 'count': 1}]
    """
    if not len(numbers):
        return []
    low, high = float(numbers.min()), float(numbers.max())
    if low == high:
        return [{"low": low, "high": high, "count": len(numbers)}]
    whole = bool(np.all(np.floor(numbers) == numbers))
    if whole and high - low + 1 <= bins:
        edges = np.arange(low, high + 2)
        counts, _edges = np.histogram(numbers, bins=edges)
        return [
            {"low": float(e), "high": float(e), "count": int(c)}
            for e, c in zip(edges[:-1], counts, strict=True)
        ]
    if whole:  # whole-number bars: 0–9, 10–19 … rather than 0–10.25
        width = math.ceil((high - low + 1) / bins)
        edges = low + width * np.arange(math.ceil((high - low + 1) / width) + 1)
        counts, _edges = np.histogram(numbers, bins=edges)
        return [
            {"low": float(edges[i]), "high": float(edges[i + 1] - 1), "count": int(counts[i])}
            for i in range(len(counts))
        ]
    counts, edges = np.histogram(numbers, bins=bins, range=(low, high))
    return [
        {"low": float(edges[i]), "high": float(edges[i + 1]), "count": int(counts[i])}
        for i in range(len(counts))
    ]


def _value_labels(value_type: str, values) -> dict[str, str]:
    if value_type == "boolean":
        labels = {"true": _("Yes"), "false": _("No")}
    else:
        labels = {}
    for item in values or []:
        if isinstance(item, dict) and item.get("code") is not None:
            labels[str(item["code"])] = str(item.get("label") or item["code"])
    return labels


def evaluate_sample(brand: Brand, spec: TagSpec, as_of=None) -> SampleResult:
    """The distribution of ``spec``'s values over a sample of the brand's people.

    Raises :class:`SampleTooSlow` past the time limit and :class:`SampleFailed` when
    the engine refuses the definition."""
    limit, seconds = _limits()
    started = time.perf_counter()
    oneid_range, counted = loaders.first_people_range(brand, limit)
    specs = {0: services.with_current_codes(brand.pk, spec)}
    if oneid_range is None:
        frames = (None, None, None)
        known = {}
    else:
        frames = services.load_frames(brand, oneid_range)
        known = services.known_values(brand, specs)
    as_of = as_of or timezone.now()
    future = _pool.submit(services.evaluate_partition, specs, frames, as_of, None, known)
    try:
        part = future.result(timeout=max(0.1, seconds - (time.perf_counter() - started)))
    except concurrent.futures.TimeoutError as exc:
        future.cancel()
        raise SampleTooSlow(
            _("Trying the rule took longer than %(s)s seconds: narrow its window or its conditions.")
            % {"s": int(seconds)}
        ) from exc
    if 0 in part.errors:
        raise SampleFailed(part.errors[0])
    outcome = part.outcomes[0]
    population = part.population
    distribution = outcome.distribution
    result = SampleResult(
        value_type=spec.value_type,
        population=population,
        holders=0,
        coverage=0.0,
        sampled=counted > limit,
        seconds=round(time.perf_counter() - started, 3),
        rows_read=part.rows_read,
    )
    if spec.value_type == "number":
        numbers = outcome.numbers.to_numpy(dtype="float64") if outcome.numbers is not None else np.array([])
        numbers = numbers[np.isfinite(numbers)]
        result.holders = len(numbers)
        result.histogram = histogram(numbers)
        if len(numbers):
            result.stats = {
                "min": float(numbers.min()),
                "max": float(numbers.max()),
                "mean": round(float(numbers.mean()), 4),
                "median": float(np.median(numbers)),
            }
    else:
        holding = [distribution.get("true", 0)] if spec.value_type == "boolean" else distribution.values()
        result.holders = int(sum(holding))
    labels = _value_labels(spec.value_type, spec.values)
    order = list(labels) + [key for key in distribution if key not in labels]
    for key in order:
        if key not in distribution:
            continue
        count = int(distribution[key])
        result.values.append(
            {
                "value": key,
                "label": labels.get(key, key),
                "count": count,
                "share": round(count / population, 4) if population else 0.0,
            }
        )
    coverage = outcome.coverage(spec.value_type, population)
    result.coverage = 0.0 if coverage is None or math.isnan(coverage) else round(float(coverage), 4)
    return result
