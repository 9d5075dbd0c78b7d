"""RFM: recency, frequency and monetary value of each buyer, scored 1–5, and the eight
classic segments (重要价值客户 … 一般挽留客户).

Conventions
===========

- **Input**: an orders frame as :func:`tagportal.profiles.loaders.load_frames` gives it
  (``oneid`` int64, ``time`` tz-aware UTC, ``amount`` float); rows without a OneID or a
  time are ignored, a missing amount counts as 0. Refunds are whatever the amounts say
  (a negative amount lowers M).
- **Days are Beijing days**, as in the tag engine (:mod:`tagportal.engine.evaluate`):
  ``as_of`` is a moment (a naive datetime is UTC) or a Beijing date, and the window is
  the ``window_days`` Beijing calendar days ending on ``as_of``'s Beijing date,
  inclusive. Orders dated after it are ignored, so a past ``as_of`` recomputes what was
  known then. An order at 23:30 Beijing (15:30 UTC) belongs to that Beijing day.
- **Recency** = whole Beijing days from the last order in the window to ``as_of``'s
  date (0: bought that day). **Frequency** = distinct Beijing days with an order in the
  window (``frequency="days"``, the default: a basket split into several orders is one
  purchase, as in the BG/NBD convention) or the number of orders
  (``frequency="orders"``). **Monetary** = the sum of the amounts in the window.
- **Who is scored**: only people with at least one order in the window. People without
  are absent from the result (no R, F, M, no segment), not scored 1: "no purchase"
  is not the worst value of a purchase measure.
- **Scores 1–5**, higher is better (R: more recent is higher).

  ``quintiles``: each person's mid-rank percentile ``p = (rank - 0.5) / n``, where the
  rank is the *average* rank (``rank(method="average")``), gives the score
  ``floor(5 p) + 1`` (computed in integers, so exactly). Identical values share one
  rank and so one score; n distinct values give five groups of n/5; a population with
  fewer than five distinct values still gets valid scores, centred (everybody equal
  scores 3, two equal halves score 2 and 4); one person scores 3.

  ``thresholds``: four ascending cut points per measure. F and M score 1 + the number of
  cut points ≤ the value (a value equal to a cut point reaches its score). R cut points
  are days: recency ≤ cut 1 scores 5, ≤ cut 2 scores 4, ≤ cut 3 scores 3, ≤ cut 4
  scores 2, above scores 1.
- **High or low**, for the segments: ``high_rule="midpoint"`` (the default) calls a
  score high when it is ≥ 3; ``high_rule="mean"`` when it is ≥ the mean of that score
  over the scored people. Then R high/low × F high/low × M high/low name the segment:
  M high is 重要 (important), low is 一般 (general); R and F high: 价值 (value); R high,
  F low: 发展 (development); R low, F high: 保持 (retention); both low: 挽留 (win-back).

>>> import pandas as pd, datetime as dt
>>> orders = pd.DataFrame({
...     "oneid": [1, 1, 2],
...     "time": pd.to_datetime(["2026-03-01 15:30", "2026-03-09 01:00", "2026-02-01 02:00"], utc=True),
...     "amount": [100.0, 50.0, 20.0],
... })
>>> result = compute_rfm(orders, RfmConfig(window_days=90), dt.date(2026, 3, 10))
>>> result.scores[["recency_days", "frequency", "monetary", "r", "f", "m"]].to_dict("index")[1]
{'recency_days': 1, 'frequency': 2, 'monetary': 150.0, 'r': 4, 'f': 4, 'm': 4}
>>> str(result.scores.loc[2, "segment"])
'general_winback'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tagportal.engine.frames import EPOCH, activity_frame, beijing_day, beijing_days, oneids, utc_times

from .choices import RfmSegment

METHODS = ("quintiles", "thresholds")
FREQUENCIES = ("days", "orders")
HIGH_RULES = ("midpoint", "mean")
#: The columns of :attr:`RfmResult.scores` (indexed by ``oneid``).
SCORE_COLUMNS = ("recency_days", "frequency", "monetary", "r", "f", "m", "segment")

#: Segment by (R high, F high, M high), as an index ``4 R + 2 F + M``.
_SEGMENTS = np.array(
    [
        RfmSegment.GENERAL_WINBACK, RfmSegment.IMPORTANT_WINBACK,  # R low, F low
        RfmSegment.GENERAL_RETENTION, RfmSegment.IMPORTANT_RETENTION,  # R low, F high
        RfmSegment.GENERAL_DEVELOPMENT, RfmSegment.IMPORTANT_DEVELOPMENT,  # R high, F low
        RfmSegment.GENERAL_VALUE, RfmSegment.IMPORTANT_VALUE,  # R high, F high
    ],
    dtype=object,
)  # fmt: skip
_SEGMENT_CODES = np.array([RfmSegment.values.index(s) for s in _SEGMENTS], dtype="int8")


@dataclass(frozen=True)
class RfmConfig:
    """A brand's RFM parameters (JSON-able through :meth:`to_dict` / :meth:`from_dict`).

    ``recency_cuts`` (days), ``frequency_cuts`` and ``monetary_cuts``: four strictly
    ascending numbers each, required with ``method="thresholds"`` and not used by
    ``quintiles``."""

    window_days: int = 365
    method: str = "quintiles"
    frequency: str = "days"
    high_rule: str = "midpoint"
    recency_cuts: tuple[float, ...] = ()
    frequency_cuts: tuple[float, ...] = ()
    monetary_cuts: tuple[float, ...] = ()

    def __post_init__(self):
        if not _whole(self.window_days) or self.window_days < 1:
            raise ValueError(f"window_days must be a whole number ≥ 1, got {self.window_days!r}")
        for name, allowed in (("method", METHODS), ("frequency", FREQUENCIES), ("high_rule", HIGH_RULES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        for name in ("recency_cuts", "frequency_cuts", "monetary_cuts"):
            cuts = getattr(self, name)
            if isinstance(cuts, str | bytes) or not isinstance(cuts, list | tuple):
                raise ValueError(f"{name} must be a list of numbers, got {cuts!r}")
            if not all(
                isinstance(c, int | float) and not isinstance(c, bool) and np.isfinite(c) for c in cuts
            ):
                raise ValueError(f"{name} must hold finite numbers, got {list(cuts)!r}")
            object.__setattr__(self, name, tuple(cuts))
            if self.method == "thresholds" and (
                len(cuts) != 4 or any(a >= b for a, b in itertools.pairwise(cuts))
            ):
                raise ValueError(f"{name} must be four strictly ascending numbers, got {list(cuts)!r}")

    def to_dict(self) -> dict[str, Any]:
        return {key: list(v) if isinstance(v, tuple) else v for key, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> RfmConfig:
        """The configuration of stored parameters; unknown keys are refused (ValueError)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown RFM parameters: {', '.join(unknown)}")
        return cls(**params)


@dataclass
class RfmResult:
    """``scores``: one row per scored person (index ``oneid``, ascending), columns
    :data:`SCORE_COLUMNS` (``segment`` a categorical of :class:`RfmSegment` values);
    ``summary``: a JSON-able dict (see :func:`compute_rfm`)."""

    scores: pd.DataFrame
    summary: dict[str, Any]


def compute_rfm(orders: pd.DataFrame | None, config: RfmConfig, as_of: dt.datetime | dt.date) -> RfmResult:
    """RFM scores and segments of the people with orders in the window (module docstring).

    The summary: ``as_of`` (the Beijing date, ISO), the configuration, ``customers``,
    ``segments`` (people per segment, all eight), ``score_counts`` (people per score
    1..5 for r, f and m), ``mean_scores`` and ``cut_points``: four per measure in the
    thresholds' sense (for ``quintiles`` the ones the data gave: for F and M the
    smallest value scoring ≥ 2, 3, 4, 5; for R the largest recency scoring ≥ 5, 4, 3,
    2; ``None`` where no one has that score)."""
    as_of_day = beijing_day(as_of)
    first_day = as_of_day - config.window_days + 1
    ids, days, valid = dated_rows(orders, "orders")
    rows = valid & (days >= first_day) & (days <= as_of_day)
    amounts = _amounts(orders, rows)
    codes, people = person_codes(ids[rows])
    days = days[rows]
    n = len(people)
    last_day = np.full(n, first_day, dtype="int64")
    np.maximum.at(last_day, codes, days)
    recency = as_of_day - last_day
    monetary = np.bincount(codes, weights=amounts, minlength=n).astype("float64")
    if config.frequency == "days":
        frequency = distinct_days(codes, days - first_day, config.window_days, n)
    else:
        frequency = np.bincount(codes, minlength=n).astype("int64")

    if config.method == "quintiles":
        r, f, m = quintile_scores(-recency), quintile_scores(frequency), quintile_scores(monetary)
    else:
        r = 5 - np.searchsorted(np.asarray(config.recency_cuts), recency, side="left")
        f = 1 + np.searchsorted(np.asarray(config.frequency_cuts), frequency, side="right")
        m = 1 + np.searchsorted(np.asarray(config.monetary_cuts), monetary, side="right")
    r, f, m = (s.astype("int64") for s in (r, f, m))
    means = {name: float(s.mean()) if len(s) else None for name, s in (("r", r), ("f", f), ("m", m))}
    high = [
        s >= (3 if config.high_rule == "midpoint" else means[name])
        for name, s in (("r", r), ("f", f), ("m", m))
    ]
    segment = _SEGMENT_CODES[high[0].astype(int) * 4 + high[1].astype(int) * 2 + high[2].astype(int)]

    scores = pd.DataFrame(
        {
            "recency_days": recency,
            "frequency": frequency,
            "monetary": monetary,
            "r": r,
            "f": f,
            "m": m,
            "segment": pd.Categorical.from_codes(segment, categories=RfmSegment.values),
        },
        index=pd.Index(people.astype("int64"), name="oneid"),
    )
    return RfmResult(scores=scores, summary=_summary(scores, config, as_of_day, means))


def quintile_scores(values: np.ndarray) -> np.ndarray:
    """Scores 1..5 by mid-rank percentile of the average rank (higher value, higher
    score; equal values, equal scores; see the module docstring).

    >>> quintile_scores(np.array([10, 20, 20, 30, 40, 50, 60, 70, 80, 90])).tolist()
    [1, 2, 2, 2, 3, 3, 4, 4, 5, 5]
    >>> quintile_scores(np.array([7, 7, 7])).tolist(), quintile_scores(np.array([1, 1, 2, 2])).tolist()
    ([3, 3, 3], [2, 2, 4, 4])
    """
    n = len(values)
    if n == 0:
        return np.array([], dtype="int64")
    # Average ranks are multiples of 1/2: twice the rank is a whole number, so the score is exact.
    twice_rank = np.rint(2 * pd.Series(values).rank(method="average").to_numpy()).astype("int64")
    return np.minimum((twice_rank - 1) * 5 // (2 * n) + 1, 5)


def person_codes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, people)``: the distinct OneIDs in ascending order and each row's
    position among them (``people[codes] == ids``). OneIDs within a range not much wider
    than the rows (the usual case: they are handed out in sequence) go through a table
    over the range, without hashing or sorting; others through ``pd.factorize``.

    >>> codes, people = person_codes(np.array([7, 3, 7, 5]))
    >>> codes.tolist(), people.tolist()
    ([2, 0, 2, 1], [3, 5, 7])
    """
    ids = np.asarray(ids, dtype="int64")
    if len(ids) == 0:
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    low, high = int(ids.min()), int(ids.max())
    if high - low >= 2 * len(ids) + (1 << 20):
        codes, people = pd.factorize(ids, sort=True)
        return codes.astype("int64"), np.asarray(people, dtype="int64")
    offsets = ids - low
    present = np.zeros(high - low + 1, dtype=bool)
    present[offsets] = True
    position = np.cumsum(present, dtype="int64") - 1
    return position[offsets], np.flatnonzero(present) + low


def distinct_days(codes: np.ndarray, offsets: np.ndarray, span: int, n: int) -> np.ndarray:
    """Distinct days per person: ``codes`` are people's positions ``0..n-1``, ``offsets``
    the rows' days counted from the first day of a window of ``span`` days
    (``0..span-1``). One sort of the (person, day) pairs, no hashing.

    >>> distinct_days(np.array([0, 0, 1, 0, 1]), np.array([3, 3, 0, 4, 0]), 7, 3).tolist()
    [2, 1, 0]
    """
    if len(codes) == 0:
        return np.zeros(n, dtype="int64")
    pairs = np.sort(codes.astype("int64") * span + offsets)
    first = np.empty(len(pairs), dtype=bool)
    first[0] = True
    np.not_equal(pairs[1:], pairs[:-1], out=first[1:])
    return np.bincount(pairs[first] // span, minlength=n).astype("int64")


def dated_rows(frame: pd.DataFrame | None, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, days, valid)`` of an events or orders frame: each row's OneID (int64),
    Beijing day (days since 1970-01-01) and whether it has both."""
    frame = activity_frame(frame, source)
    ids, valid = oneids(frame["oneid"])
    if "time" not in frame.columns:
        return ids, np.zeros(len(frame), dtype="int64"), np.zeros(len(frame), dtype=bool)
    times = utc_times(frame["time"])
    return ids, beijing_days(times), valid & times.notna().to_numpy()


def _amounts(orders: pd.DataFrame | None, rows: np.ndarray) -> np.ndarray:
    if orders is None or "amount" not in orders.columns:
        return np.zeros(int(rows.sum()))
    return pd.to_numeric(orders["amount"][rows], errors="coerce").fillna(0.0).to_numpy(dtype="float64")


def _summary(scores: pd.DataFrame, config: RfmConfig, as_of_day: int, means: dict) -> dict[str, Any]:
    counts = scores["segment"].value_counts()
    if config.method == "thresholds":
        cuts = {"r": config.recency_cuts, "f": config.frequency_cuts, "m": config.monetary_cuts}
        cut_points = {name: [float(c) for c in values] for name, values in cuts.items()}
    else:
        recency = scores.groupby("r")["recency_days"].max()
        cut_points = {"r": [_number(recency[recency.index >= s].max()) for s in (5, 4, 3, 2)]}
        for name, column in (("f", "frequency"), ("m", "monetary")):
            lowest = scores.groupby(name)[column].min()
            cut_points[name] = [_number(lowest[lowest.index >= s].min()) for s in (2, 3, 4, 5)]
    return {
        "as_of": (EPOCH + dt.timedelta(days=as_of_day)).isoformat(),
        "config": config.to_dict(),
        "customers": len(scores),
        "segments": {segment.value: int(counts.get(segment.value, 0)) for segment in RfmSegment},
        "score_counts": {
            name: [int(n) for n in np.bincount(scores[name].to_numpy(), minlength=6)[1:6]] for name in "rfm"
        },
        "mean_scores": means,
        "cut_points": cut_points,
    }


def _number(value) -> float | None:
    return None if pd.isna(value) else float(value)


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
