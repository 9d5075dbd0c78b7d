"""Tag values as Roaring bitmaps (pyroaring), and the quality numbers kept per run.

A tag result is stored as ``{value: BitMap of OneIDs}``:

- boolean tags: ``{True: ..., False: ...}`` (people without a value are in neither);
- enum tags: one bitmap per value code;
- number tags: one bitmap per bucket of the tag's ``values``
  (``[{"code": ..., "min": ..., "max": ...}]``, ``min <= x < max``); the numbers
  themselves are kept separately (:func:`numbers`).

OneIDs must fit in 32 bits (0 .. 4 294 967 295). Work split by OneID range is
merged with :func:`merge_bitmaps` (OR per value).
"""

from __future__ import annotations

import array
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from pyroaring import BitMap

from . import frames as fr

MAX_ONEID = 2**32 - 1
EPSILON = 1e-4


def _uint32(ids) -> array.array:
    ids = np.asarray(ids, dtype="int64")
    if len(ids) and (ids.min() < 0 or ids.max() > MAX_ONEID):
        raise ValueError(f"OneIDs must be between 0 and {MAX_ONEID} to go into a bitmap")
    out = array.array("I")
    out.frombytes(ids.astype("uint32").tobytes())
    return out


def bitmap(ids) -> BitMap:
    """A bitmap of OneIDs from any integer array-like."""
    return BitMap(_uint32(ids))


def bitmap_ids(bm: BitMap) -> np.ndarray:
    """The OneIDs of a bitmap, ascending, as int64."""
    return np.frombuffer(bm.to_array(), dtype="uint32").astype("int64")


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    return "number" if fr.is_number_dtype(series.dtype) else "enum"


def bucket_codes(series: pd.Series, values: Sequence[dict] | None) -> pd.Series:
    """Number tag values as the codes of the tag's buckets (NA outside every bucket)."""
    buckets = fr.value_buckets(values)
    choice = fr.bucket_index(fr.numbers(series), [(low, high) for _code, low, high in buckets])
    table = np.array([code for code, _low, _high in buckets] + [None], dtype=object)
    return pd.Series(table[choice], index=series.index, dtype=pd.StringDtype("pyarrow"))


def _labels(series: pd.Series, values: Sequence | None) -> pd.Series:
    """What the bitmaps are keyed by: booleans, value codes, or bucket codes."""
    kind = _kind(series)
    if kind == "number":
        return bucket_codes(series, values)
    if kind == "boolean":
        return series.astype("boolean")
    return fr.texts(series)


def _declared(series: pd.Series, values: Sequence | None) -> list:
    kind = _kind(series)
    if kind == "boolean":
        return [True, False]
    if kind == "number":
        return [code for code, _low, _high in fr.value_buckets(values)]
    return [v["code"] if isinstance(v, dict) else v for v in values or () if v is not None]


def to_bitmaps(series: pd.Series, values: Sequence | None = None) -> dict:
    """``{value: BitMap}`` of a tag's values (a Series indexed by OneID).

    Boolean tags always get ``True`` and ``False``; with ``values`` (the tag's
    declared values) every declared code gets a bitmap, empty when nobody holds it.
    Number tags need bucket ``values``; without them the result is empty.
    """
    labels = _labels(series, values)
    out = {key: BitMap() for key in _declared(series, values)}
    labels = labels[labels.notna()]
    if labels.empty:
        return out
    ids = labels.index.to_numpy(dtype="int64")
    codes, uniques = pd.factorize(labels)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    for i, key in enumerate(uniques):  # one step per value, not per person
        key = bool(key) if isinstance(key, bool | np.bool_) else key
        out[key] = bitmap(ids[order[bounds[i] : bounds[i + 1]]])
    return out


def to_series(bitmaps: Mapping, value_type: str | None = None) -> pd.Series:
    """The inverse of :func:`to_bitmaps` for boolean and enum tags: a Series indexed
    by OneID (ascending) holding each person's value."""
    parts_ids, parts_values = [], []
    for key, bm in bitmaps.items():
        ids = bitmap_ids(bm)
        parts_ids.append(ids)
        parts_values.append(np.full(len(ids), key, dtype=object))
    ids = np.concatenate(parts_ids) if parts_ids else np.array([], dtype="int64")
    vals = np.concatenate(parts_values) if parts_values else np.array([], dtype=object)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("a OneID is in more than one value's bitmap")
    order = np.argsort(ids, kind="stable")
    index = pd.Index(ids[order], name="oneid")
    if value_type is None:
        value_type = "boolean" if set(bitmaps) <= {True, False} and bitmaps else "enum"
    dtype = "boolean" if value_type == "boolean" else pd.StringDtype("pyarrow")
    return pd.Series(vals[order], index=index, dtype=dtype)


def numbers(series: pd.Series) -> pd.Series:
    """The numbers of a number tag worth storing: the people who have one."""
    values = pd.Series(fr.numbers(series), index=series.index, dtype="float64")
    return values[values.notna()]


def declared_values(value_type: str, values: Sequence | None) -> list[str]:
    """The values a result of a tag keeps a bitmap for even when nobody holds them, as
    stored (texts): ``true`` / ``false``, the codes of number buckets, enum codes."""
    if value_type == "boolean":
        return ["true", "false"]
    if value_type == "number":
        return [code for code, _low, _high in fr.value_buckets(values)]
    codes = (v.get("code") if isinstance(v, dict) else v for v in values or ())
    return [str(code) for code in codes if code is not None]


def coverage(value_type: str, counts: Mapping, numbers: int, population: int | None) -> float | None:
    """The share of ``population`` holding a tag, from its people per stored value
    (``counts``, a result's distribution) and how many have a number (number tags):
    ``true`` for yes/no tags, a number for number tags (in a bucket or not), any value
    for the others. At most 1; 0 for no people; None when the population is unknown.

    >>> coverage("boolean", {"true": 2, "false": 6}, 0, 10)
    0.2
    >>> coverage("number", {"low": 1}, 4, 5)
    0.8
    """
    if population is None:
        return None
    if not population:
        return 0.0
    if value_type == "boolean":
        held = counts.get("true", 0)
    elif value_type == "number":
        held = numbers
    else:
        held = sum(counts.values())
    return min(1.0, held / population)


def distribution(series: pd.Series, values: Sequence | None = None) -> dict:
    """``{value: number of people}``; number tags are counted per bucket of
    ``values`` (raw numbers without buckets). Declared values count 0 when unused."""
    kind = _kind(series)
    if kind == "number" and not fr.value_buckets(values):
        counts = series.dropna().value_counts(sort=False)
        return {float(k): int(v) for k, v in counts.items()}
    labels = _labels(series, values)
    out = {key: 0 for key in _declared(series, values)}
    for key, count in labels.dropna().value_counts(sort=False).items():
        out[bool(key) if kind == "boolean" else key] = int(count)
    return out


def bitmap_distribution(bitmaps: Mapping) -> dict:
    """``{value: number of people}`` straight from stored bitmaps."""
    return {key: len(bm) for key, bm in bitmaps.items()}


def psi(expected: Mapping, actual: Mapping, epsilon: float = EPSILON) -> float:
    """Population stability index between two distributions (``{value: count}`` or
    shares): ``sum((a - e) * ln(a / e))`` over the shares of every value, an empty
    bin counting as ``epsilon``. 0 means the same; above 0.25 is usually a big shift."""
    keys = list(dict.fromkeys([*expected, *actual]))
    total_e = float(sum(expected.values()))
    total_a = float(sum(actual.values()))
    value = 0.0
    for key in keys:
        e = expected.get(key, 0) / total_e if total_e else 0.0
        a = actual.get(key, 0) / total_a if total_a else 0.0
        e, a = max(e, epsilon), max(a, epsilon)
        value += (a - e) * math.log(a / e)
    return value


def serialize(bm: BitMap) -> bytes:
    return bm.serialize()


def deserialize(data: bytes) -> BitMap:
    return BitMap.deserialize(data)


def merge_bitmaps(parts: Iterable[Mapping]) -> dict:
    """OR-merge partial results (e.g. one per OneID range) value by value."""
    merged: dict = {}
    for part in parts:
        for key, bm in part.items():
            if key in merged:
                merged[key] |= bm
            else:
                merged[key] = BitMap(bm)
    return merged
