"""The churn warning (流失预警): who, among the people active lately, will do nothing
in the next ``horizon_days`` Beijing days — a probability and a 高 / 中 / 低 bucket.

Conventions
===========

- **Inputs** are the engine's frames (:func:`tagportal.profiles.loaders.load_frames`):
  ``events`` (``oneid``, ``time``, ``type``) and ``orders`` (``oneid``, ``time``,
  ``amount``), times tz-aware UTC (naive taken as UTC), either frame may be ``None``.
- **Days are Beijing days** (``tagportal.core.days.BEIJING``). ``as_of`` (a date, or a
  moment whose Beijing date is taken) is the last day observed, whole, as in the engine:
  rows dated after it are ignored.
- **Activity that counts**: the events whose ``type`` is in ``event_types`` (when
  ``None``: every event but the brand's own messages to the person,
  :data:`tagportal.profiles.schema.OUTBOUND_EVENT_TYPES`) and, when ``count_orders``,
  the orders.
- **A cut-off** ``c`` is a Beijing day, observed through its end. The **eligible** people
  at ``c`` had counted activity in the ``eligible_days`` days ending on ``c``
  (``c - eligible_days + 1 .. c``). An eligible person **churns** at ``c`` when they have
  no counted activity on the days ``c + 1 .. c + horizon_days``.
- **Features at c** use only rows dated ``<= c`` (see :data:`BASE_FEATURES`): recency,
  counted activity in 7/30/90 days, distinct active days in 30/90 days, orders and
  amount in 30/90 days (all orders), days since first seen (any event or order), the
  trend (rate of the last 7 days against the 21 before: ``(a - b) / (a + b)`` in
  [-1, 1], 0 without either) and, per event type among the most frequent
  ``top_event_types`` up to the first cut-off, that type's events in 30 days
  (``type_30d:<type>``). Optional ``extra_features(cutoff_date)`` returns more numeric
  columns per ``oneid`` *as known at that cut-off* (the engine's metric tags and RFM
  computed with ``as_of=cutoff``; missing values are allowed): a callable, not a frame,
  so that past cut-offs never see today's values.
- **Cut-offs**: the validation cut-off ``V = as_of - horizon_days`` (its outcome window
  ends on ``as_of``), and ``training_cutoffs`` earlier ones every
  ``cutoff_spacing_days`` (at least the horizon, so no two outcome windows overlap).
  The earliest cut-off's eligibility window must lie within the data.
- **Model selection and calibration, without leakage**: with ``T0`` the most recent
  training cut-off and ``T`` all of them, each candidate (logistic regression on
  imputed, scaled features; histogram gradient boosting; random forest) is fitted on
  ``T - T0`` and ranked by ROC AUC on ``V`` (the winner's AUC is the best of a few
  looks at ``V``, slightly optimistic). The winner, frozen, is calibrated
  (``isotonic`` or ``sigmoid``) on ``T0`` and every reported metric is computed on
  ``V``, which neither the model nor its calibration saw. The final model is then
  refitted on all of ``T`` and calibrated on ``V``: every labelled cut-off is used, and
  the calibration always comes from days after those the model learnt from.
- **Bounded**: at most ``max_training_rows`` labelled rows (all cut-offs together) are
  drawn, uniformly with ``seed``; the report states the sizes. Everything is
  vectorised: one sort of the person-days, then ``bincount`` per window.
- **Output**: :class:`ChurnRun` — ``scores`` (index ``oneid`` of the people eligible at
  ``as_of``; ``probability`` float64, ``bucket`` a :class:`ChurnRisk` value), a JSON-able
  ``report`` and the fitted :class:`ChurnModel` (which scores later frames alike).
  A run is ``publishable`` only when its validation AUC reaches ``auc_floor``.
- **Report** keys: ``config``, ``as_of``, ``cutoffs``, ``features``, ``event_types``,
  ``candidates`` (``{name: {auc, fit_s}}``, the raw models on ``V``), ``chosen``,
  ``calibration``, ``validation`` (the calibrated model on ``V``: ``auc``, ``pr_auc``,
  ``brier``, ``brier_base_rate``, ``lift_top_decile``, ``base_rate``, ``rows``,
  ``calibration_curve`` of ten quantile bins), ``permutation_importances`` (top 15 by
  the drop in AUC on up to 5,000 rows of ``V``), ``labelled_rows``, ``sample_share``,
  ``training_rows`` (the final model's), ``selection_rows``, ``validation_rows``,
  ``base_rate`` (of the training rows), ``scored``, ``buckets``, ``auc_floor``,
  ``publishable`` and ``seconds``. Everything but ``seconds`` and ``fit_s`` is the
  same for the same inputs and ``seed``.
- **Measured** (synthetic, 1,000,000 people, 20.2 M events, 1.6 M orders over 100
  days, on a shared 2-core machine, one thread): 24.5 s and 27.7 s in all on two runs —
  8.4–10.6 s for the activity and features, 12.4–12.8 s to select, calibrate, explain
  and refit on 200,000 rows, 3.6–4.3 s to score 549,000 eligible people; peak RSS
  3.5 GB with the input frames; validation AUC 0.86.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from tagportal.engine import frames as fr
from tagportal.profiles.schema import OUTBOUND_EVENT_TYPES

#: The model candidates, in the order that breaks a tie in validation AUC.
CANDIDATES = ("logistic_regression", "hist_gradient_boosting", "random_forest")
CALIBRATIONS = ("isotonic", "sigmoid")

#: The features every run has, in column order (then ``type_30d:<type>``, then extras).
BASE_FEATURES = (
    "recency_days", "activity_7d", "activity_30d", "activity_90d", "active_days_30d", "active_days_90d",
    "orders_30d", "amount_30d", "orders_90d", "amount_90d", "tenure_days", "trend_7d_vs_21d",
)  # fmt: skip
TYPE_PREFIX = "type_30d:"
#: Permutation importances: repeats, on at most this many validation rows.
IMPORTANCE_REPEATS = 5
IMPORTANCE_ROWS = 5_000
#: Rows each tree of the random forest draws, at most.
FOREST_TREE_ROWS = 30_000


class ChurnRisk(models.TextChoices):
    """The churn warning's buckets (the template packs' ``churn_risk`` codes)."""

    HIGH = "high", pgettext_lazy("churn risk", "High")
    MEDIUM = "medium", pgettext_lazy("churn risk", "Medium")
    LOW = "low", pgettext_lazy("churn risk", "Low")


class ChurnError(ValueError):
    """A churn run that cannot be made; the message says why."""


class ChurnConfigError(ChurnError):
    """The parameters are wrong whatever the data."""


class ChurnDataError(ChurnError):
    """The data cannot support the run (too short, too few people, a single outcome)."""


@dataclass(frozen=True)
class ChurnConfig:
    """A churn model's parameters (plain values: :meth:`as_dict` is JSON-able)."""

    horizon_days: int = 7
    #: Event types that count as activity; ``None``: every event.
    event_types: tuple[str, ...] | None = None
    count_orders: bool = True
    eligible_days: int = 30
    #: Training cut-offs before the validation one, every ``cutoff_spacing_days``.
    training_cutoffs: int = 4
    cutoff_spacing_days: int = 7
    #: Probability from which a person is 中 (medium), and from which 高 (high).
    medium_from: float = 0.2
    high_from: float = 0.5
    top_event_types: int = 10
    max_training_rows: int = 200_000
    candidates: tuple[str, ...] = CANDIDATES
    calibration: str = "isotonic"
    auc_floor: float = 0.6
    seed: int = 0
    #: Threads for fitting and scoring (OpenMP, BLAS, the random forest). One by default:
    #: on a shared machine OpenMP's spinning threads make gradient boosting several times slower.
    threads: int = 1

    def __post_init__(self):
        if self.event_types is not None:
            object.__setattr__(self, "event_types", tuple(self.event_types))
        object.__setattr__(self, "candidates", tuple(self.candidates))
        positive = {
            "horizon_days": self.horizon_days,
            "eligible_days": self.eligible_days,
            "cutoff_spacing_days": self.cutoff_spacing_days,
            "max_training_rows": self.max_training_rows,
            "threads": self.threads,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ChurnConfigError(_("%(name)s must be a whole number of at least 1.") % {"name": name})
        if not isinstance(self.training_cutoffs, int) or self.training_cutoffs < 2:
            raise ChurnConfigError(
                _("training_cutoffs must be at least 2: one to fit the model on, the next to calibrate it.")
            )
        if not isinstance(self.top_event_types, int) or self.top_event_types < 0:
            raise ChurnConfigError(_("top_event_types must be a whole number, 0 or more."))
        if self.cutoff_spacing_days < self.horizon_days:
            raise ChurnConfigError(
                _(
                    "The cut-offs must be at least the horizon apart (%(spacing)s < %(horizon)s days), "
                    "or their outcome windows would overlap."
                )
                % {"spacing": self.cutoff_spacing_days, "horizon": self.horizon_days}
            )
        if not 0 < self.medium_from <= self.high_from < 1:
            raise ChurnConfigError(_("The buckets need 0 < medium_from <= high_from < 1."))
        if not 0 <= self.auc_floor <= 1:
            raise ChurnConfigError(_("auc_floor must be between 0 and 1."))
        unknown = [name for name in self.candidates if name not in CANDIDATES]
        if unknown or not self.candidates:
            raise ChurnConfigError(
                _("Unknown or no candidate models: %(names)s (known: %(known)s).")
                % {"names": ", ".join(unknown) or "-", "known": ", ".join(CANDIDATES)}
            )
        if self.calibration not in CALIBRATIONS:
            raise ChurnConfigError(
                _("calibration must be one of: %(known)s.") % {"known": ", ".join(CALIBRATIONS)}
            )
        if not self.count_orders and self.event_types == ():
            raise ChurnConfigError(_("No activity counts: give event types or count the orders."))

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["event_types"] = None if self.event_types is None else list(self.event_types)
        out["candidates"] = list(self.candidates)
        return out


# ---------------------------------------------------------------------------
# The activity, prepared once
class _Activity:
    """The frames as sorted arrays of person positions and Beijing days (≤ ``last_day``).

    ``u_*``: counted activity per person and day (``u_n`` rows that day), sorted by day.
    ``o_*``: the orders, ``e_*``: every event, each sorted by day. ``first``: the first
    day each person was seen (any event or order)."""

    def __init__(self, events, orders, last_day: int, config: ChurnConfig):
        ev = fr.activity_frame(events, "events")
        od = fr.activity_frame(orders, "orders")
        e_ids, e_day, e_rows = _ids_days(ev, last_day)
        o_ids, o_day, o_rows = _ids_days(od, last_day)
        self.people, pos = _positions(np.concatenate([e_ids, o_ids]))
        size = self.size = len(self.people)
        e_pos, o_pos = pos[: len(e_ids)], pos[len(e_ids) :]
        day_min = min([int(d.min()) for d in (e_day, o_day) if len(d)], default=last_day)
        self.first_day = day_min if size else None

        types = ev["type"] if "type" in ev.columns else pd.Series([None] * len(ev), index=ev.index)
        codes, names = pd.factorize(types, use_na_sentinel=True)
        self.type_names = np.asarray([str(n) for n in names], dtype=object)
        e_code = codes[e_rows].astype("int32")
        amount = pd.to_numeric(od["amount"], errors="coerce") if "amount" in od.columns else None
        amount = np.zeros(len(od)) if amount is None else amount.fillna(0).to_numpy(dtype="float64")
        o_amount = amount[o_rows]

        first = np.full(size, np.iinfo("int32").max, dtype="int32")
        np.minimum.at(first, e_pos, e_day)
        np.minimum.at(first, o_pos, o_day)
        self.first = first

        # Counted activity per person and day: keys ``pos * span + day`` (already in order when
        # the frames come as the loader reads them, by OneID then time), deduplicated.
        if config.event_types is None:
            outbound = np.flatnonzero(np.isin(self.type_names, list(OUTBOUND_EVENT_TYPES)))
            counted = ~np.isin(e_code, outbound) if len(outbound) else slice(None)
        else:
            counted = np.isin(e_code, np.flatnonzero(np.isin(self.type_names, list(config.event_types))))
        span = last_day - day_min + 1
        keys = [e_pos[counted].astype("int64") * span + (e_day[counted] - day_min)]
        if config.count_orders:
            keys.append(o_pos.astype("int64") * span + (o_day - day_min))
        key = np.sort(np.concatenate(keys), kind="stable")
        starts = np.flatnonzero(np.diff(key, prepend=-1))
        self.u_n = np.diff(starts, append=len(key)).astype("float64")
        u_pos, u_rel = np.divmod(key[starts], span)
        order = _by_day(u_rel)
        self.u_pos, self.u_day, self.u_n = (
            u_pos[order],
            (u_rel[order] + day_min).astype("int32"),
            self.u_n[order],
        )

        order = _by_day(e_day - day_min)
        self.e_pos, self.e_day, self.e_code = e_pos[order], e_day[order], e_code[order]
        order = _by_day(o_day - day_min)
        self.o_pos, self.o_day, self.o_amount = o_pos[order], o_day[order], o_amount[order]

    # windows -------------------------------------------------------------------
    @staticmethod
    def _span(days: np.ndarray, lo: int, hi: int) -> slice:
        """The rows of day-sorted ``days`` dated ``lo .. hi`` inclusive."""
        lo, hi = (days.dtype.type(np.clip(v, -(2**31), 2**31 - 1)) for v in (lo, hi))  # no cast of ``days``
        return slice(int(np.searchsorted(days, lo, "left")), int(np.searchsorted(days, hi, "right")))

    def _activity(self, lo: int, hi: int, *, distinct: bool = False) -> np.ndarray:
        span = self._span(self.u_day, lo, hi)
        weights = None if distinct else self.u_n[span]
        return np.bincount(self.u_pos[span], weights=weights, minlength=self.size).astype("float64")

    def eligible(self, cutoff: int, eligible_days: int) -> np.ndarray:
        """Positions (sorted) of the people with counted activity in the window ending on ``cutoff``."""
        return np.flatnonzero(self._activity(cutoff - eligible_days + 1, cutoff, distinct=True) > 0)

    def churned(self, cutoff: int, horizon: int, positions: np.ndarray) -> np.ndarray:
        """1 for the people at ``positions`` with no counted activity on ``cutoff + 1 .. cutoff + horizon``."""
        return (self._activity(cutoff + 1, cutoff + horizon, distinct=True)[positions] == 0).astype("int8")

    def top_types(self, cutoff: int, count: int) -> list[str]:
        """The ``count`` most frequent event types dated ``<= cutoff`` (ties by name)."""
        if count == 0:
            return []
        codes = self.e_code[: self._span(self.e_day, cutoff, cutoff).stop]
        tally = np.bincount(codes[codes >= 0], minlength=len(self.type_names))
        ranked = sorted((-int(n), str(self.type_names[c])) for c, n in enumerate(tally) if n > 0)
        return [name for _n, name in ranked[:count]]

    def features(self, cutoff: int, positions: np.ndarray, types: Sequence[str], config) -> pd.DataFrame:
        """The features at ``cutoff`` of the people at ``positions`` (rows dated ``<= cutoff`` only)."""
        c = cutoff
        act = {days: self._activity(c - days + 1, c)[positions] for days in (7, 28, 30, 90)}
        span = self._span(self.u_day, c - config.eligible_days + 1, c)
        last = np.full(self.size, np.iinfo("int64").min, dtype="int64")
        np.maximum.at(last, self.u_pos[span], self.u_day[span])
        last = last[positions]
        recency = np.where(last > np.iinfo("int64").min, c - last, np.nan)
        out = {
            "recency_days": recency.astype("float64"),
            "activity_7d": act[7],
            "activity_30d": act[30],
            "activity_90d": act[90],
            "active_days_30d": self._activity(c - 29, c, distinct=True)[positions],
            "active_days_90d": self._activity(c - 89, c, distinct=True)[positions],
        }
        for days in (30, 90):
            span = self._span(self.o_day, c - days + 1, c)
            pos = self.o_pos[span]
            out[f"orders_{days}d"] = np.bincount(pos, minlength=self.size)[positions].astype("float64")
            amount = np.bincount(pos, weights=self.o_amount[span], minlength=self.size)
            out[f"amount_{days}d"] = amount[positions]
        first = self.first[positions]
        out["tenure_days"] = np.where(first <= c, c - first, np.nan).astype("float64")
        recent = act[7] / 7
        before = (act[28] - act[7]) / 21
        total = recent + before
        with np.errstate(invalid="ignore", divide="ignore"):
            out["trend_7d_vs_21d"] = np.where(total > 0, (recent - before) / total, 0.0)
        if types:
            wanted = {name: k for k, name in enumerate(types)}
            slot = np.array([wanted.get(str(n), -1) for n in self.type_names], dtype="int64")
            span = self._span(self.e_day, c - 29, c)
            codes = self.e_code[span]
            k = np.where(codes >= 0, slot[np.maximum(codes, 0)], -1)
            keep = k >= 0
            flat = self.e_pos[span][keep].astype("int64") * len(types) + k[keep]
            table = np.bincount(flat, minlength=self.size * len(types)).reshape(self.size, len(types))
            table = table[positions].astype("float64")
            for j, name in enumerate(types):
                out[TYPE_PREFIX + name] = table[:, j]
        return pd.DataFrame(out, index=pd.Index(self.people[positions], name="oneid"))


def _ids_days(frame: pd.DataFrame, last_day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(oneids, Beijing days, row numbers)`` of the usable rows: a OneID and a time, dated ``<= last_day``."""
    if "oneid" not in frame.columns or "time" not in frame.columns or not len(frame):
        empty = np.zeros(0, dtype="int64")
        return empty, empty.astype("int32"), empty
    ids, ok = fr.oneids(frame["oneid"])
    times = fr.utc_times(frame["time"])
    day = fr.beijing_days(times)
    ok = ok & times.notna().to_numpy(dtype=bool) & (day <= last_day)
    rows = np.flatnonzero(ok)
    return ids[rows], day[rows].astype("int32"), rows


def _positions(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(people, positions)``: the distinct OneIDs, sorted, and each id's index among them
    (through a lookup table when the ids are dense enough, as OneIDs are)."""
    if not len(ids):
        return ids, ids
    lo, hi = int(ids.min()), int(ids.max())
    if hi - lo < min(8 * len(ids), 50_000_000):
        present = np.zeros(hi - lo + 1, dtype=bool)
        present[ids - lo] = True
        lookup = np.cumsum(present, dtype="int32") - 1
        return np.flatnonzero(present) + lo, lookup[ids - lo]
    people = np.unique(ids)
    return people, np.searchsorted(people, ids).astype("int32")


def _by_day(rel_days: np.ndarray) -> np.ndarray:
    """The stable order of rows by day (``rel_days >= 0``; a radix sort under 65,536 days)."""
    if len(rel_days) and rel_days.max() < 65_536:
        rel_days = rel_days.astype("uint16")
    return np.argsort(rel_days, kind="stable")


# ---------------------------------------------------------------------------
# Public helpers
def plan_cutoffs(as_of: dt.date | dt.datetime, config: ChurnConfig) -> tuple[list[dt.date], dt.date]:
    """``(training cut-offs oldest first, validation cut-off)`` for ``as_of``."""
    validation = fr.beijing_day(as_of) - config.horizon_days
    training = [validation - config.cutoff_spacing_days * k for k in range(config.training_cutoffs, 0, -1)]
    return [_date(day) for day in training], _date(validation)


def churn_features(
    events,
    orders,
    cutoff: dt.date,
    config: ChurnConfig | None = None,
    *,
    event_types: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The features at ``cutoff`` of the people eligible then (index ``oneid``), from rows
    dated ``<= cutoff`` only. ``event_types``: the per-type columns (default: the most
    frequent types up to ``cutoff``)."""
    config = config or ChurnConfig()
    day = fr.beijing_day(cutoff)
    act = _Activity(events, orders, day, config)
    types = act.top_types(day, config.top_event_types) if event_types is None else list(event_types)
    return act.features(day, act.eligible(day, config.eligible_days), types, config)


def churn_labels(events, orders, cutoff: dt.date, config: ChurnConfig | None = None) -> pd.Series:
    """1 for the people eligible at ``cutoff`` without counted activity in the horizon after it."""
    config = config or ChurnConfig()
    day = fr.beijing_day(cutoff)
    act = _Activity(events, orders, day + config.horizon_days, config)
    positions = act.eligible(day, config.eligible_days)
    labels = act.churned(day, config.horizon_days, positions)
    return pd.Series(labels, index=pd.Index(act.people[positions], name="oneid"), name="churned")


def risk_buckets(probability, config: ChurnConfig | None = None) -> np.ndarray:
    """The :class:`ChurnRisk` value of each probability."""
    config = config or ChurnConfig()
    p = np.asarray(probability, dtype="float64")
    return np.select(
        [p >= config.high_from, p >= config.medium_from],
        [ChurnRisk.HIGH.value, ChurnRisk.MEDIUM.value],
        default=ChurnRisk.LOW.value,
    ).astype(object)


ExtraFeatures = Callable[[dt.date], pd.DataFrame]


@dataclass
class ChurnModel:
    """A fitted, calibrated churn model and what it needs to score new frames."""

    config: ChurnConfig
    estimator: CalibratedClassifierCV
    features: list[str]
    event_types: list[str]
    extra_columns: list[str] = field(default_factory=list)

    def score(self, events, orders, as_of, extra_features: ExtraFeatures | None = None) -> pd.DataFrame:
        """``probability`` and ``bucket`` (index ``oneid``) of the people eligible at ``as_of``."""
        day = fr.beijing_day(as_of)
        act = _Activity(events, orders, day, self.config)
        with threadpool_limits(limits=self.config.threads):
            return self._score(act, day, extra_features)

    def _score(self, act: _Activity, day: int, extra_features) -> pd.DataFrame:
        positions = act.eligible(day, self.config.eligible_days)
        frame = act.features(day, positions, self.event_types, self.config)
        frame = _with_extras(frame, extra_features, _date(day), self.extra_columns)
        probability = self.estimator.predict_proba(frame[self.features])[:, 1] if len(frame) else np.zeros(0)
        return pd.DataFrame(
            {"probability": probability.astype("float64"), "bucket": risk_buckets(probability, self.config)},
            index=frame.index,
        )


@dataclass
class ChurnRun:
    scores: pd.DataFrame
    report: dict
    model: ChurnModel


# ---------------------------------------------------------------------------
# Training
def train_churn(
    events,
    orders,
    as_of: dt.date | dt.datetime,
    config: ChurnConfig | None = None,
    *,
    extra_features: ExtraFeatures | None = None,
) -> ChurnRun:
    """Select, calibrate and validate a churn model on past cut-offs, then score the
    people eligible at ``as_of`` (see the module's conventions). Raises
    :class:`ChurnDataError` when the data cannot support the run."""
    config = config or ChurnConfig()
    with threadpool_limits(limits=config.threads):
        return _train(events, orders, as_of, config, extra_features)


def _train(events, orders, as_of, config: ChurnConfig, extra_features) -> ChurnRun:
    started = time.perf_counter()
    as_of_day = fr.beijing_day(as_of)
    act = _Activity(events, orders, as_of_day, config)
    training, validation = plan_cutoffs(as_of, config)
    days = [fr.beijing_day(c) for c in training] + [fr.beijing_day(validation)]
    _check_span(act, days, as_of_day, config)
    types = act.top_types(days[0], config.top_event_types)

    # Labelled rows of every cut-off, then a uniform sample of at most max_training_rows.
    eligible = [act.eligible(day, config.eligible_days) for day in days]
    labelled = sum(len(p) for p in eligible)
    rng = np.random.default_rng(config.seed)
    share = min(1.0, config.max_training_rows / labelled) if labelled else 1.0
    parts, labels, groups = [], [], []
    extra_columns: list[str] | None = None
    for g, (day, positions) in enumerate(zip(days, eligible, strict=True)):
        if share < 1:
            keep = rng.choice(len(positions), size=round(len(positions) * share), replace=False)
            positions = positions[np.sort(keep)]
        frame = act.features(day, positions, types, config)
        frame = _with_extras(frame, extra_features, _date(day), extra_columns)
        if extra_columns is None:
            extra_columns = [
                c for c in frame.columns if c not in BASE_FEATURES and not c.startswith(TYPE_PREFIX)
            ]
        parts.append(frame)
        labels.append(act.churned(day, config.horizon_days, positions))
        groups.append(np.full(len(positions), g))
    X = pd.concat(parts)
    y = np.concatenate(labels).astype("int64")
    group = np.concatenate(groups)
    features = list(X.columns)
    last = len(days) - 1  # the validation cut-off
    fit_rows, cal_rows, val_rows = group < last - 1, group == last - 1, group == last
    older = f"{training[0].isoformat()}…{training[-2].isoformat()}"
    for rows, which in (
        (fit_rows, older),
        (cal_rows, training[-1].isoformat()),
        (val_rows, validation.isoformat()),
    ):
        _check_outcomes(y[rows], which)
    features_s = time.perf_counter() - started

    # Selection: each candidate fitted on the older training cut-offs, ranked on validation.
    X_fit, y_fit = X[fit_rows], y[fit_rows]
    X_cal, y_cal = X[cal_rows], y[cal_rows]
    X_val, y_val = X[val_rows], y[val_rows]
    candidates: dict[str, dict] = {}
    fitted = {}
    for name in config.candidates:
        tick = time.perf_counter()
        model = _candidate(name, config, len(y_fit)).fit(X_fit, y_fit)
        fitted[name] = model
        auc = roc_auc_score(y_val, model.predict_proba(X_val)[:, 1])
        candidates[name] = {"auc": _num(auc), "fit_s": _num(time.perf_counter() - tick, 3)}
    chosen = max(config.candidates, key=lambda n: (candidates[n]["auc"], -config.candidates.index(n)))

    # Evaluation: the winner frozen, calibrated on the latest training cut-off, measured on validation.
    evaluated = _calibrate(fitted[chosen], X_cal, y_cal, config)
    p_val = evaluated.predict_proba(X_val)[:, 1]
    validation_metrics = _metrics(y_val, p_val)
    importances = permutation_importance(
        evaluated, X_val, y_val, scoring="roc_auc", n_repeats=IMPORTANCE_REPEATS,
        random_state=config.seed, max_samples=min(1.0, IMPORTANCE_ROWS / max(len(y_val), 1)),
    )  # fmt: skip
    order = np.argsort(-importances.importances_mean, kind="stable")[:15]
    ranked = [
        {
            "feature": features[i],
            "mean": _num(importances.importances_mean[i]),
            "std": _num(importances.importances_std[i]),
        }
        for i in order
    ]

    # Final: refitted on every training cut-off, calibrated on the validation cut-off.
    base = _candidate(chosen, config, int((group < last).sum())).fit(X[group < last], y[group < last])
    final = _calibrate(base, X_val, y_val, config)
    model = ChurnModel(config, final, features, types, extra_columns or [])
    train_s = time.perf_counter() - started - features_s
    tick = time.perf_counter()
    scores = model._score(act, as_of_day, extra_features)
    score_s = time.perf_counter() - tick

    auc = validation_metrics["auc"]
    report = {
        "config": config.as_dict(),
        "as_of": _date(as_of_day).isoformat(),
        "cutoffs": {
            "training": [c.isoformat() for c in training],
            "validation": validation.isoformat(),
            "final_fit": [c.isoformat() for c in training],
            "final_calibration": validation.isoformat(),
        },
        "features": features,
        "event_types": types,
        "candidates": candidates,
        "chosen": chosen,
        "calibration": config.calibration,
        "validation": validation_metrics,
        "permutation_importances": ranked,
        "labelled_rows": int(labelled),
        "sample_share": _num(share),
        "training_rows": int((group < last).sum()),
        "selection_rows": {"fit": int(fit_rows.sum()), "calibration": int(cal_rows.sum())},
        "validation_rows": int(val_rows.sum()),
        "base_rate": _num(y[group < last].mean()),
        "scored": len(scores),
        "buckets": {risk.value: int((scores["bucket"] == risk.value).sum()) for risk in ChurnRisk},
        "auc_floor": config.auc_floor,
        "publishable": bool(auc is not None and auc >= config.auc_floor),
        "seconds": {"features": _num(features_s, 3), "train": _num(train_s, 3), "score": _num(score_s, 3)},
    }
    return ChurnRun(scores=scores, report=report, model=model)


def _candidate(name: str, config: ChurnConfig, rows: int):
    if name == "logistic_regression":
        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(max_iter=1000),
        )
    if name == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.1, max_leaf_nodes=31, l2_regularization=1.0,
            early_stopping=False, random_state=config.seed,
        )  # fmt: skip
    return RandomForestClassifier(
        n_estimators=100, max_depth=12, min_samples_leaf=20, max_samples=min(0.5, FOREST_TREE_ROWS / rows),
        n_jobs=config.threads, random_state=config.seed,
    )  # fmt: skip


def _calibrate(model, X, y, config: ChurnConfig) -> CalibratedClassifierCV:
    """``model`` (already fitted, left as it is) with a calibration fitted on ``X, y``."""
    return CalibratedClassifierCV(FrozenEstimator(model), method=config.calibration).fit(X, y)


def _metrics(y: np.ndarray, p: np.ndarray) -> dict:
    base_rate = float(y.mean())
    top = np.argsort(-p, kind="stable")[: max(1, math.ceil(len(p) / 10))]
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    return {
        "auc": _num(roc_auc_score(y, p)),
        "pr_auc": _num(average_precision_score(y, p)),
        "brier": _num(brier_score_loss(y, p)),
        "brier_base_rate": _num(brier_score_loss(y, np.full(len(y), base_rate))),
        "lift_top_decile": _num(y[top].mean() / base_rate) if base_rate else None,
        "base_rate": _num(base_rate),
        "rows": len(y),
        "calibration_curve": {
            "mean_predicted": [_num(v) for v in predicted],
            "fraction_positive": [_num(v) for v in observed],
        },
        "roc_curve": _roc_points(y, p),
    }


def _roc_points(y: np.ndarray, p: np.ndarray, most: int = 101) -> dict:
    """The ROC curve's false and true positive rates, thinned to at most ``most`` points
    (the first and last kept), for drawing."""
    fpr, tpr, _thresholds = roc_curve(y, p, drop_intermediate=True)
    if len(fpr) > most:
        keep = np.unique(np.linspace(0, len(fpr) - 1, most).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [_num(v) for v in fpr], "tpr": [_num(v) for v in tpr]}


def _with_extras(frame: pd.DataFrame, extra_features, cutoff: dt.date, columns: list[str] | None):
    if extra_features is None:
        if columns:
            raise ChurnDataError(_("The model was trained with extra features; give them to score."))
        return frame
    extra = extra_features(cutoff)
    if "oneid" in extra.columns:
        extra = extra.set_index("oneid")
    if extra.index.has_duplicates:
        raise ChurnDataError(
            _("The extra features at %(day)s have more than one row for a OneID.")
            % {"day": cutoff.isoformat()}
        )
    if columns is not None:
        missing = [c for c in columns if c not in extra.columns]
        if missing:
            raise ChurnDataError(
                _("The extra features at %(day)s lack the columns: %(names)s.")
                % {"day": cutoff.isoformat(), "names": ", ".join(missing)}
            )
        extra = extra[columns]
    clash = [c for c in extra.columns if c in frame.columns]
    wrong = [c for c in extra.columns if not fr.is_number_dtype(extra[c].dtype)]
    if clash or wrong:
        raise ChurnDataError(
            _("Extra features must be numeric columns other than the built-in features: %(names)s.")
            % {"names": ", ".join(map(str, clash + wrong))}
        )
    extra.index = pd.Index(pd.to_numeric(extra.index), name="oneid")
    joined = extra.astype("float64").reindex(frame.index)
    return pd.concat([frame, joined], axis=1)


def _check_span(act: _Activity, days: list[int], as_of_day: int, config: ChurnConfig) -> None:
    start = days[0] - config.eligible_days + 1
    if act.first_day is None or act.first_day > start:
        needed = as_of_day - start + 1
        have = 0 if act.first_day is None else max(0, as_of_day - act.first_day + 1)
        raise ChurnDataError(
            _(
                "No cut-offs fit in the data: %(have)s days up to %(as_of)s, and the run needs %(needed)s "
                "(from %(start)s: %(eligible)s days of eligibility, %(cutoffs)s cut-offs %(spacing)s days apart, "
                "a %(horizon)s-day horizon)."
            )
            % {
                "have": have,
                "as_of": _date(as_of_day).isoformat(),
                "needed": needed,
                "start": _date(start).isoformat(),
                "eligible": config.eligible_days,
                "cutoffs": config.training_cutoffs + 1,
                "spacing": config.cutoff_spacing_days,
                "horizon": config.horizon_days,
            }
        )


def _check_outcomes(y: np.ndarray, cutoff: str) -> None:
    if len(y) < 2 or y.min() == y.max():
        raise ChurnDataError(
            _("The cut-off %(day)s has %(n)s eligible people and not both outcomes (churned and stayed).")
            % {"day": cutoff, "n": len(y)}
        )


def _date(day: int) -> dt.date:
    return fr.EPOCH + dt.timedelta(days=int(day))


def _num(value, digits: int = 6):
    """A plain float for the report (``None`` for NaN)."""
    value = float(value)
    return None if math.isnan(value) else round(value, digits)
