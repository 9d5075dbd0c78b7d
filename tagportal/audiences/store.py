"""Evaluating audience expressions on the engine's bitmaps.

A :class:`BitmapStore` keeps, per process, the current result of each tag a brand's
audiences read, ready for set algebra (its value bitmaps, the union of them, and for
number tags the numbers sorted by value), and the brand's people as a bitmap. Each entry
is keyed by the result's ``last_calculated_at``: a recomputed tag is reloaded on next
use, an unchanged one is never read again. The bitmaps and numbers themselves come from
the engine's results API (:mod:`tagportal.engine.results`), which caches them once per
process. Number comparisons are answered from the sorted numbers (a binary search and
one bitmap built from a slice) and kept in a small LRU, so a repeated threshold costs
nothing.

:func:`evaluate` turns an expression (validated by :mod:`.expressions`) into the
bitmap of OneIDs it selects; counting is ``len()`` of it. Everything here is set
algebra on Roaring bitmaps: an AND/OR/NOT of a handful of tags over a million people
takes well under a millisecond once the tags are loaded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from pyroaring import BitMap

from tagportal.core.caches import LRU
from tagportal.engine import bitmaps as bm
from tagportal.engine import results as engine_results

from .expressions import TagInfo

#: Tags kept per process (each holds its value bitmaps and numbers).
TAG_CACHE_SIZE = 512
#: Number comparisons kept per process.
COMPARISON_CACHE_SIZE = 1024


@dataclass
class TagResult:
    """One tag's current result, ready for set algebra."""

    pk: int
    code: str
    value_type: str
    stamp: object  # the result's last_calculated_at
    version: int | None
    values: dict[str, BitMap]
    any: BitMap
    ids_by_value: np.ndarray | None = None  # number tags: OneIDs sorted by their number
    sorted_numbers: np.ndarray | None = None
    numbered: BitMap | None = None  # number tags: everyone with a number
    comparisons: LRU = field(default_factory=lambda: LRU(COMPARISON_CACHE_SIZE))


class NoResult(LookupError):
    """A tag the expression reads has not been computed yet."""

    def __init__(self, codes: list[str]):
        self.codes = codes
        super().__init__(", ".join(codes))


class BitmapStore:
    """Per-process cache of tag results and brand populations (thread-safe)."""

    def __init__(self):
        self._tags = LRU(TAG_CACHE_SIZE)
        self._people: dict[int, tuple[object, BitMap]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._tags.clear()
            self._people.clear()

    # -- loading ------------------------------------------------------------------

    def results(
        self, brand_id: int, tags: dict[str, TagInfo], stamps: dict | None = None
    ) -> dict[str, TagResult]:
        """The current results of ``tags``; ``stamps`` (tag id → (computation id,
        last_calculated_at, version)) if the caller read them already, else one query.
        Bitmaps are read only for results that changed. :class:`NoResult` names tags
        never computed."""
        if not tags:
            return {}
        by_pk = {info.pk: info for info in tags.values()}
        if stamps is None:
            stamps = engine_results.result_stamps(by_pk)
        stamps = {tag_id: stamps[tag_id] for tag_id in by_pk if tag_id in stamps}
        missing = sorted(by_pk[t].code for t in by_pk if t not in stamps)
        if missing:
            raise NoResult(missing)
        out = {}
        for tag_id, (computation_id, stamp, version) in stamps.items():
            cached = self._tags.get(tag_id)
            if cached is None or cached.stamp != stamp or cached.code != by_pk[tag_id].code:  # recoded
                cached = self._load(by_pk[tag_id], computation_id, stamp, version)
                self._tags.set(tag_id, cached)
            out[cached.code] = cached
        return out

    def _load(self, info: TagInfo, computation_id: int, stamp, version) -> TagResult:
        values = engine_results.result_bitmaps({computation_id: stamp})[computation_id]
        numbers = None
        if info.value_type == "number":
            numbers = engine_results.result_numbers({computation_id: stamp}).get(computation_id)
        return make_result(info.pk, info.code, info.value_type, values, numbers, stamp=stamp, version=version)

    def people(self, brand_id: int, stamp=None) -> BitMap:
        """The brand's people (OneIDs not merged into another), cached until a tag of the
        brand is recomputed (``stamp``: the brand's newest result time, if the caller
        read it already)."""
        from tagportal.profiles.models import Customer

        if stamp is None:
            stamp = engine_results.newest_result_at(brand_id)
        cached = self._people.get(brand_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        ids = np.fromiter(
            Customer.objects.filter(brand_id=brand_id, merged_into__isnull=True).values_list(
                "oneid", flat=True
            ),
            dtype="int64",
        )
        people = bm.bitmap(ids)
        with self._lock:
            self._people[brand_id] = (stamp, people)
        return people


def make_result(pk, code, value_type, values: dict, numbers=None, *, stamp=None, version=None) -> TagResult:
    """A :class:`TagResult` from value bitmaps and, for number tags, the per-person
    numbers (a float Series indexed by OneID)."""
    union = BitMap.union(*values.values()) if values else BitMap()
    result = TagResult(pk, code, value_type, stamp, version, dict(values), union)
    if value_type == "number" and numbers is not None and len(numbers):
        order = np.argsort(numbers.to_numpy(), kind="stable")
        result.ids_by_value = numbers.index.to_numpy(dtype="int64")[order]
        result.sorted_numbers = numbers.to_numpy()[order]
        result.numbered = bm.bitmap(result.ids_by_value)
        result.any = result.any | result.numbered
    return result


#: The process-wide store.
STORE = BitmapStore()


# ---------------------------------------------------------------------------
# Evaluation


def _compare(result: TagResult, op: str, value) -> BitMap:
    """People whose number satisfies ``op value`` (from the sorted numbers)."""
    key = (op, tuple(value) if isinstance(value, list) else value)
    cached = result.comparisons.get(key)
    if cached is not None:
        return cached
    numbers, ids = result.sorted_numbers, result.ids_by_value
    if numbers is None:
        out = BitMap()
    elif op == "between":
        low, high = value
        out = bm.bitmap(ids[np.searchsorted(numbers, low, "left") : np.searchsorted(numbers, high, "right")])
    elif op in ("gt", "gte"):
        start = np.searchsorted(numbers, value, "right" if op == "gt" else "left")
        out = bm.bitmap(ids[start:])
    elif op in ("lt", "lte"):
        stop = np.searchsorted(numbers, value, "left" if op == "lt" else "right")
        out = bm.bitmap(ids[:stop])
    elif op in ("eq", "ne"):
        equal = bm.bitmap(
            ids[np.searchsorted(numbers, value, "left") : np.searchsorted(numbers, value, "right")]
        )
        out = equal if op == "eq" else result.any - equal
    else:  # pragma: no cover - validation keeps other operators out
        raise ValueError(op)
    result.comparisons.set(key, out)
    return out


def _values(result: TagResult, codes) -> BitMap:
    picked = [result.values[c] for c in codes if c in result.values]
    if not picked:
        return BitMap()
    return picked[0] if len(picked) == 1 else BitMap.union(*picked)


def _condition(node: dict, results: dict[str, TagResult]) -> BitMap:
    result = results[node["tag"]]
    op, value = node["op"], node.get("value", True)
    if op == "is_set":
        return result.any if value else None  # None: "not any", resolved by the caller
    if result.value_type == "boolean":
        picked = result.values.get("true" if value else "false", BitMap())
        return picked if op == "eq" else result.any - picked
    if result.value_type == "number" and not (
        isinstance(value, str)
        or (op == "in" and isinstance(value, list) and value and isinstance(value[0], str))
    ):
        return _compare(result, op, value)
    if op in ("eq", "ne"):
        picked = _values(result, [value])
    else:
        picked = _values(result, value)
    return picked if op in ("eq", "in") else result.any - picked


def evaluate(expression: dict, results: dict[str, TagResult], people: BitMap) -> BitMap:
    """The OneIDs ``expression`` selects among ``people`` (a new bitmap)."""
    return _evaluate(expression, results, people) & people


def _evaluate(node: dict, results: dict[str, TagResult], people: BitMap) -> BitMap:
    if "all" in node:
        parts = [_evaluate(child, results, people) for child in node["all"]]
        parts.sort(key=len)  # the smallest first keeps intermediate sets small
        out = parts[0]
        for part in parts[1:]:
            if not out:
                break
            out = out & part
        return out
    if "any" in node:
        parts = [_evaluate(child, results, people) for child in node["any"]]
        return parts[0] if len(parts) == 1 else BitMap.union(*parts)
    if "not" in node:
        return people - _evaluate(node["not"], results, people)
    picked = _condition(node, results)
    if picked is None:  # is_set false
        return people - results[node["tag"]].any
    return picked
