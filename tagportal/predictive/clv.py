"""Customer lifetime value: BG/NBD purchases, Gamma-Gamma order values, discounted CLV.

Pure numpy/scipy on frames; no Django models. The conventions are the published papers':

* **Transactions are days.** All purchases of one customer on one (Beijing) day are one
  transaction, whose value is the day's total. Tz-aware times are converted to Beijing
  time before taking the date; naive times and dates are taken as they are.
* **Summary** (:func:`summary_from_orders`), per customer whose first purchase is on or
  before the calibration end (both days inclusive):

  - ``frequency`` *x*: repeat transactions in the calibration period (transaction days
    after the first one);
  - ``recency`` *t_x*: weeks from the first to the last calibration transaction
    (0 when *x* = 0);
  - ``T``: weeks from the first transaction to the calibration end;
  - ``monetary_value``: the mean value of the *repeat* transactions (the first is
    left out, as in the Gamma-Gamma papers); 0 when *x* = 0;
  - ``holdout_frequency`` (with a holdout end): transactions in
    (calibration end, holdout end].

  A week is 7 days; a month is :data:`WEEKS_PER_MONTH` weeks (365.25 / 12 days).
* **BG/NBD** (Fader, Hardie & Lee 2005, "Counting your customers the easy way"):
  purchases while alive are Poisson with rate λ ~ Gamma(r, α); after every repeat purchase
  the customer drops out with probability p ~ Beta(a, b). :func:`fit_bgnbd` maximises the
  log-likelihood (equation 6 of the paper) over the logs of (r, α, a, b) with L-BFGS-B
  and the analytical gradient (:func:`bgnbd_gradient`), on the distinct (x, t_x, T) rows
  weighted by their counts.
* **Predictions** for a customer (x, t_x, T), t weeks ahead:

  - P(alive) = 1 / (1 + [x > 0] · a / (b + x − 1) · ((α + T) / (α + t_x))^(r + x));
  - E[X(t)] (equation 10 of the paper), with the Gauss hypergeometric function
    ₂F₁(r + x, b + x; a + b + x − 1; t / (α + T + t));
  - P(X(t) = 0) = 1 − P(alive) + P(alive) · ((α + T) / (α + T + t))^(r + x): a customer
    alive at T has the posterior λ ~ Gamma(r + x, α + T), and no purchase in the next t
    weeks means no Poisson event in them (dropout happens only right after a purchase),
    whose probability averaged over λ is that power; a customer no longer alive buys
    nothing. This is the x = 0 case of Fader & Hardie's note "Deriving an expression for
    P(X(t) = x | x, t_x, T) under the BG/NBD model". Purchase intent (购买意向) is
    P(X(t) ≥ 1) = 1 − P(X(t) = 0) for t = 30 days, bucketed by :func:`bucket`.
* **Gamma-Gamma** (Fader & Hardie 2013, "The Gamma-Gamma model of monetary value"):
  transaction values ~ Gamma(p, ν), ν ~ Gamma(q, γ) (γ is ``v`` here), fitted by maximum
  likelihood on the repeat buyers' (x, mean repeat value) with a positive value.
  E[M | x, m_x] = p (v + x m_x) / (p x + q − 1); for x = 0 the population mean v p / (q − 1).
* **CLV** over a horizon of whole months with a monthly discount rate d, as the
  ``lifetimes`` package computes it: Σ_{m=1..H} (E[X(m)] − E[X(m − 1)]) · E[M] / (1 + d)^m,
  with E[X(m)] the BG/NBD conditional expected purchases in the next m months.

Parameters and metrics are plain JSON-able dicts (``to_dict``) for a model registry.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from django.utils.translation import gettext as _
from scipy import optimize, special

from tagportal.core.days import BEIJING_ZONE

#: Weeks in a month: 365.25 / 12 days.
WEEKS_PER_MONTH = 365.25 / 12 / 7
#: Days in a week.
DAYS_PER_WEEK = 7.0

_LOG_BOUND = 20.0  # the log-parameters stay in [-20, 20]
_DAY = np.timedelta64(1, "D")


class ClvError(ValueError):
    """Data or parameters the models cannot be fitted to or scored with."""


# ---------------------------------------------------------------------------------------------
# Summary data


def to_day(value) -> np.datetime64:
    """A date, a ``YYYY-MM-DD`` text or a timestamp as a day (a tz-aware moment: its
    Beijing date)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return np.datetime64(value, "D")
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise ClvError(_("Not a date: %(value)s") % {"value": value})
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(BEIJING_ZONE).tz_localize(None)
    return np.datetime64(stamp.normalize().date(), "D")


def weeks_between(start, end) -> float:
    """Weeks from one day to another (``end`` − ``start`` days / 7)."""
    return float((to_day(end) - to_day(start)) / _DAY / DAYS_PER_WEEK)


def _days(times: pd.Series) -> np.ndarray:
    """The day (``datetime64[D]``) of every time; tz-aware times in Beijing time."""
    times = pd.to_datetime(times)
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert(BEIJING_ZONE).dt.tz_localize(None)
    return times.to_numpy().astype("datetime64[D]")


def summary_from_orders(
    orders: pd.DataFrame,
    calibration_end,
    holdout_end=None,
    *,
    customer: str = "oneid",
    time: str = "time",
    amount: str = "amount",
) -> pd.DataFrame:
    """The per-customer summary (see the module docstring) of an orders frame.

    Returns a frame indexed by customer (sorted) with ``frequency``, ``recency``, ``T``,
    ``monetary_value`` and, when ``holdout_end`` is given, ``holdout_frequency``. Customers
    whose first order is after the calibration end are not in it. Read ``T`` as
    ``summary["T"]`` (``summary.T`` is the transpose)."""
    end = to_day(calibration_end)
    stop = None if holdout_end is None else to_day(holdout_end)
    if stop is not None and stop <= end:
        raise ClvError(_("The holdout end must be after the calibration end."))
    columns = ["frequency", "recency", "T", "monetary_value"] + (
        [] if stop is None else ["holdout_frequency"]
    )
    days = _days(orders[time]) if len(orders) else np.array([], dtype="datetime64[D]")
    values = orders[amount].to_numpy(dtype="float64")
    frame = pd.DataFrame({"c": orders[customer].to_numpy(), "d": days, "v": values})
    frame = frame[frame["d"] <= (end if stop is None else stop)]
    daily = frame.groupby(["c", "d"], sort=True)["v"].sum().reset_index()
    cal = daily[daily["d"] <= end]
    if cal.empty:
        return pd.DataFrame({name: pd.Series(dtype="float64") for name in columns})
    grouped = cal.groupby("c", sort=True)
    first = grouped["d"].min()
    last = grouped["d"].max()
    x = grouped.size() - 1
    repeat_total = grouped["v"].sum() - grouped["v"].first()
    out = pd.DataFrame(index=first.index)
    out.index.name = customer
    out["frequency"] = x.astype("float64")
    out["recency"] = (last - first).dt.days / DAYS_PER_WEEK
    out["T"] = (pd.Timestamp(end) - first).dt.days / DAYS_PER_WEEK
    out["monetary_value"] = np.where(x > 0, repeat_total / x.where(x > 0, 1), 0.0)
    if stop is not None:
        hold = daily[daily["d"] > end].groupby("c", sort=True).size()
        out["holdout_frequency"] = hold.reindex(out.index, fill_value=0).astype("float64")
    return out


# ---------------------------------------------------------------------------------------------
# BG/NBD


def _arrays(*columns) -> list[np.ndarray]:
    return [np.asarray(c, dtype="float64") for c in columns]


class _Rows:
    """A summary prepared for repeated evaluation. The customers without repeat purchases
    (x = 0) contribute r log α − r log(α + T) only; for the others, the functions of x alone
    are computed once per distinct x (``ux``) and spread to the rows through ``inv``."""

    def __init__(self, x, t_x, T, weights=None):
        x, t_x, T = _arrays(x, t_x, T)
        w = np.ones_like(x) if weights is None else np.asarray(weights, dtype="float64")
        once = x == 0
        self.w0, self.T0 = w[once], T[once]
        self.w, self.t_x, self.T = w[~once], t_x[~once], T[~once]
        self.ux, self.inv = np.unique(x[~once], return_inverse=True)
        self.x = x[~once]


def _dot(weights: np.ndarray, values: np.ndarray) -> float:
    """Σ weights · values (einsum: a BLAS dot product may wait on its threads)."""
    return np.einsum("i,i->", weights, values)


def _bgnbd_value_and_grad(params, rows: _Rows) -> tuple[float, np.ndarray]:
    """The log-likelihood (the paper's equation 6) and its gradient in (r, α, a, b).

    Per repeat buyer, LL = A1 + A3 + log(1 + e^D) with D = A2 − A3
    = log((b + x − 1) / a) − (r + x) log((α + T) / (α + t_x)); the gradient is
    dA1 + w dA2 + (1 − w) dA3 with w = 1 / (1 + e^−D) (which is P(alive))."""
    r, alpha, a, b = params
    psi = special.digamma
    log_alpha = np.log(alpha)
    # x = 0: A1 + A2 = r log α − r log(α + T)
    log_t0 = np.log(alpha + rows.T0)
    ll = _dot(rows.w0, r * (log_alpha - log_t0))
    grad = np.array(
        [_dot(rows.w0, log_alpha - log_t0), _dot(rows.w0, r / alpha - r / (alpha + rows.T0)), 0.0, 0.0]
    )
    if len(rows.x) == 0:
        return float(ll), grad
    ux, inv, x, w = rows.ux, rows.inv, rows.x, rows.w
    log_big, log_small = np.log(alpha + rows.T), np.log(alpha + rows.t_x)
    beta_ab = special.betaln(a, b)
    a1 = special.gammaln(r + ux) - special.gammaln(r) + r * log_alpha
    b3 = special.betaln(a + 1, b + ux - 1) - beta_ab
    d = np.log((b + ux - 1) / a)[inv] - (r + x) * (log_big - log_small)
    ll += _dot(w, (a1 + b3)[inv] - (r + x) * log_small + np.logaddexp(0.0, d))
    alive = special.expit(d)  # the weight of A2
    dead = 1.0 - alive  # the weight of A3
    psi_ab, psi_abx = psi(a + b), psi(a + b + ux)
    grad[0] += _dot(w, (psi(r + ux) - psi(r) + log_alpha)[inv] - alive * log_big - dead * log_small)
    grad[1] += _dot(w, r / alpha - (r + x) * (alive / (alpha + rows.T) + dead / (alpha + rows.t_x)))
    grad[2] += _dot(w, alive * (psi_ab - psi_abx)[inv] + dead * (psi(a + 1) - psi_abx - psi(a) + psi_ab)[inv])
    grad[3] += _dot(
        w,
        alive * (psi(b + ux) - psi_abx - psi(b) + psi_ab)[inv]
        + dead * (psi(b + ux - 1) - psi_abx - psi(b) + psi_ab)[inv],
    )
    return float(ll), grad


def bgnbd_log_likelihood(params, frequency, recency, T, weights=None) -> float:
    """The BG/NBD log-likelihood of (r, α, a, b) on the summary (weighted sum)."""
    return _bgnbd_value_and_grad(params, _Rows(frequency, recency, T, weights))[0]


def bgnbd_gradient(params, frequency, recency, T, weights=None) -> np.ndarray:
    """The gradient of :func:`bgnbd_log_likelihood` in (r, α, a, b)."""
    return _bgnbd_value_and_grad(params, _Rows(frequency, recency, T, weights))[1]


def _compress(*columns):
    """The distinct rows of the columns and how often each occurs (``None`` counts: the
    rows as they are, when hardly any repeat)."""
    frame = pd.DataFrame(dict(enumerate(_arrays(*columns))))
    counts = frame.value_counts(sort=False)
    if len(counts) > 0.8 * len(frame):
        return [frame[c].to_numpy() for c in frame.columns], None
    distinct = counts.index.to_frame(index=False)
    return [distinct[c].to_numpy(dtype="float64") for c in distinct.columns], counts.to_numpy(dtype="float64")


def _maximise(neg_mean, start: np.ndarray) -> optimize.OptimizeResult:
    """L-BFGS-B on the log-parameters, restarted from its own answer until it stops moving
    (the polish), with Nelder-Mead if it fails."""
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(start)
    options = {"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10}
    best = optimize.minimize(neg_mean, start, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
    for _round in range(3):
        again = optimize.minimize(
            neg_mean, best.x, jac=True, method="L-BFGS-B", bounds=bounds, options=options
        )
        improved = again.fun < best.fun - 1e-12
        if again.fun <= best.fun:
            best = again
        if not improved:
            break
    if not np.isfinite(best.fun):
        best = optimize.minimize(
            lambda z: neg_mean(z)[0], start, method="Nelder-Mead", options={"maxiter": 20000, "xatol": 1e-10}
        )
    if not np.isfinite(best.fun):
        raise ClvError(_("The model could not be fitted to this data."))
    return best


@dataclass(frozen=True)
class BGNBD:
    """A fitted BG/NBD model; times in weeks."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = math.nan
    customers: int = 0

    @property
    def params(self) -> tuple[float, float, float, float]:
        return (self.r, self.alpha, self.a, self.b)

    def to_dict(self) -> dict:
        return asdict(self)

    def p_alive(self, frequency, recency, T) -> np.ndarray:
        """P(still alive at T | x, t_x, T)."""
        r, alpha, a, b = self.params
        x, t_x, T = _arrays(frequency, recency, T)
        repeat = x > 0
        ratio = np.zeros_like(x)
        xr = x[repeat]
        ratio[repeat] = np.exp(
            np.log(a / (b + xr - 1)) + (r + xr) * np.log((alpha + T[repeat]) / (alpha + t_x[repeat]))
        )
        return 1.0 / (1.0 + ratio)

    def expected_purchases(self, t, frequency, recency, T) -> np.ndarray:
        """E[X(t) | x, t_x, T]: expected transactions in the next ``t`` weeks."""
        r, alpha, a, b = self.params
        x, t_x, T = _arrays(frequency, recency, T)
        t = np.asarray(t, dtype="float64")
        if np.any(t < 0):
            raise ClvError(_("The horizon must not be negative."))
        z = t / (alpha + T + t)
        power = np.exp((r + x) * np.log((alpha + T) / (alpha + T + t)))
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
        numerator = (a + b + x - 1) / (a - 1) * (1.0 - power * hyp)
        return np.maximum(numerator * self.p_alive(x, t_x, T), 0.0)

    def expected_purchases_new(self, t) -> np.ndarray:
        """E[X(t)] for a customer just acquired (t weeks after the first purchase)."""
        r, alpha, a, b = self.params
        t = np.asarray(t, dtype="float64")
        hyp = special.hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * (1.0 - (alpha / (alpha + t)) ** r * hyp)

    def p_no_purchase(self, t, frequency, recency, T) -> np.ndarray:
        """P(X(t) = 0 | x, t_x, T): no transaction in the next ``t`` weeks."""
        r, alpha, _, _ = self.params
        x, t_x, T = _arrays(frequency, recency, T)
        alive = self.p_alive(x, t_x, T)
        quiet = np.exp((r + x) * np.log((alpha + T) / (alpha + T + np.asarray(t, dtype="float64"))))
        return 1.0 - alive + alive * quiet

    def p_any_purchase(self, t, frequency, recency, T) -> np.ndarray:
        """P(X(t) ≥ 1 | x, t_x, T): at least one transaction in the next ``t`` weeks."""
        return 1.0 - self.p_no_purchase(t, frequency, recency, T)


def fit_bgnbd(frequency, recency, T, *, start=(1.0, 1.0, 1.0, 1.0)) -> BGNBD:
    """The maximum-likelihood BG/NBD model of a summary (weeks)."""
    x, t_x, T = _arrays(frequency, recency, T)
    _check_summary(x, t_x, T)
    (x, t_x, T), weights = _compress(x, t_x, T)
    total = len(x) if weights is None else weights.sum()
    rows = _Rows(x, t_x, T, weights)

    def neg_mean(z):
        params = np.exp(z)
        with np.errstate(all="ignore"):
            ll, grad = _bgnbd_value_and_grad(params, rows)
            grad = grad * params
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros(4)
        return -ll / total, -grad / total

    best = _maximise(neg_mean, np.log(np.asarray(start, dtype="float64")))
    r, alpha, a, b = np.exp(best.x)
    return BGNBD(float(r), float(alpha), float(a), float(b), float(-best.fun * total), int(total))


def _check_summary(x, t_x, T) -> None:
    if len(x) == 0:
        raise ClvError(_("No customers to fit."))
    if (
        np.any(x < 0)
        or np.any(x != np.round(x))
        or np.any(t_x < 0)
        or np.any(t_x > T)
        or np.any((x > 0) & (t_x <= 0))
    ):
        raise ClvError(_("A summary needs whole x ≥ 0 and 0 ≤ t_x ≤ T (t_x > 0 when x > 0)."))


# ---------------------------------------------------------------------------------------------
# Gamma-Gamma


class _Values:
    """Repeat buyers' (x, mean value) prepared for repeated evaluation: the sums that do not
    depend on the parameters, and the distinct x with their counts."""

    def __init__(self, x, m):
        self.x, self.m = _arrays(x, m)
        self.n = len(self.x)
        self.ux, inv = np.unique(self.x, return_inverse=True)
        self.count = np.bincount(inv).astype("float64")
        log_m, log_x = np.log(self.m), np.log(self.x)
        self.sum_log_m = log_m.sum()
        self.sum_x_log_mx = _dot(self.x, log_m + log_x)


def _gamma_gamma_value_and_grad(params, values: _Values) -> tuple[float, np.ndarray]:
    """The log-likelihood (Fader & Hardie 2013, per customer
    log Γ(px + q) − log Γ(px) − log Γ(q) + q log v + (px − 1) log m + px log x − (px + q) log(v + m x))
    summed, and its gradient in (p, q, v)."""
    p, q, v = params
    ux, count, x, n = values.ux, values.count, values.x, values.n
    psi = special.digamma
    pux = p * ux
    big = v + values.m * x
    log_big = np.log(big)
    sum_log_big, sum_x_log_big = log_big.sum(), _dot(x, log_big)
    ll = (
        _dot(count, special.gammaln(pux + q) - special.gammaln(pux))
        - n * special.gammaln(q)
        + n * q * np.log(v)
        + p * values.sum_x_log_mx
        - values.sum_log_m
        - p * sum_x_log_big
        - q * sum_log_big
    )
    psi_all = psi(pux + q)
    grad = np.array(
        [
            _dot(count, ux * (psi_all - psi(pux))) + values.sum_x_log_mx - sum_x_log_big,
            _dot(count, psi_all) - n * psi(q) + n * np.log(v) - sum_log_big,
            n * q / v - _dot(p * x + q, 1.0 / big),
        ]
    )
    return float(ll), grad


def gamma_gamma_log_likelihood(params, frequency, monetary_value) -> float:
    """The Gamma-Gamma log-likelihood of (p, q, v) on repeat buyers' (x > 0, mean value > 0)."""
    return _gamma_gamma_value_and_grad(params, _Values(frequency, monetary_value))[0]


def gamma_gamma_gradient(params, frequency, monetary_value) -> np.ndarray:
    """The gradient of :func:`gamma_gamma_log_likelihood` in (p, q, v)."""
    return _gamma_gamma_value_and_grad(params, _Values(frequency, monetary_value))[1]


@dataclass(frozen=True)
class GammaGamma:
    """A fitted Gamma-Gamma model of the mean transaction value."""

    p: float
    q: float
    v: float
    log_likelihood: float = math.nan
    customers: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def mean_value(self) -> float:
        """The population mean transaction value v p / (q − 1) (infinite when q ≤ 1)."""
        return self.v * self.p / (self.q - 1) if self.q > 1 else math.inf

    def expected_value(self, frequency, monetary_value) -> np.ndarray:
        """E[M | x, m_x]: the expected mean transaction value of each customer."""
        x, m = _arrays(frequency, monetary_value)
        m = np.where(x > 0, m, 0.0)
        return self.p * (self.v + x * m) / (self.p * x + self.q - 1)


def fit_gamma_gamma(frequency, monetary_value, *, start=(1.0, 1.0, 1.0)) -> GammaGamma:
    """The maximum-likelihood Gamma-Gamma model on the customers with x > 0 and a positive
    mean repeat value (the others are left out)."""
    x, m = _arrays(frequency, monetary_value)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) == 0:
        raise ClvError(_("No repeat buyers with a positive order value to fit."))

    values = _Values(x, m)

    def neg_mean(z):
        params = np.exp(z)
        with np.errstate(all="ignore"):
            ll, grad = _gamma_gamma_value_and_grad(params, values)
            grad = grad * params
        if not np.isfinite(ll) or not np.all(np.isfinite(grad)):
            return np.inf, np.zeros(3)
        return -ll / len(x), -grad / len(x)

    best = _maximise(neg_mean, np.log(np.asarray(start, dtype="float64")))
    p, q, v = np.exp(best.x)
    return GammaGamma(float(p), float(q), float(v), float(-best.fun * len(x)), len(x))


# ---------------------------------------------------------------------------------------------
# CLV and scores


def customer_lifetime_value(
    bgnbd: BGNBD,
    gamma_gamma: GammaGamma,
    frequency,
    recency,
    T,
    monetary_value,
    *,
    months: int = 12,
    monthly_discount: float = 0.01,
) -> np.ndarray:
    """Discounted expected revenue over the next ``months`` whole months (see the module
    docstring)."""
    if months < 1 or int(months) != months:
        raise ClvError(_("The horizon must be a whole number of months ≥ 1."))
    if monthly_discount <= -1:
        raise ClvError(_("The monthly discount rate must be above -1."))
    x, t_x, T, m = _arrays(frequency, recency, T, monetary_value)
    value = gamma_gamma.expected_value(x, m)
    total = np.zeros_like(x)
    before = np.zeros_like(x)
    for month in range(1, int(months) + 1):
        now = bgnbd.expected_purchases(month * WEEKS_PER_MONTH, x, t_x, T)
        total += (now - before) * value / (1.0 + monthly_discount) ** month
        before = now
    return total


def bucket(values, *, high: float = 0.5, low: float = 0.2, labels=("高", "中", "低")) -> np.ndarray:
    """高 at or above ``high``, 低 below ``low``, 中 between (labels configurable)."""
    if not 0 <= low <= high <= 1:
        raise ClvError(_("The thresholds need 0 ≤ low ≤ high ≤ 1."))
    values = np.asarray(values, dtype="float64")
    top, middle, bottom = labels
    return np.where(values >= high, top, np.where(values < low, bottom, middle))


def score(
    summary: pd.DataFrame,
    bgnbd: BGNBD,
    gamma_gamma: GammaGamma | None = None,
    *,
    clv_months: int = 12,
    monthly_discount: float = 0.01,
    intent_days: float = 30,
    high: float = 0.5,
    low: float = 0.2,
) -> pd.DataFrame:
    """Every customer's scores, indexed like ``summary``: ``p_alive``,
    ``expected_purchases_30d``, ``expected_purchases_90d``, ``purchase_intent`` (P(≥ 1
    purchase in ``intent_days``)), ``purchase_intent_level`` (高/中/低) and, with a
    Gamma-Gamma model, ``expected_order_value`` and ``clv``."""
    x, t_x, T = (summary[c].to_numpy(dtype="float64") for c in ("frequency", "recency", "T"))
    out = pd.DataFrame(index=summary.index)
    out["p_alive"] = bgnbd.p_alive(x, t_x, T)
    out["expected_purchases_30d"] = bgnbd.expected_purchases(30 / DAYS_PER_WEEK, x, t_x, T)
    out["expected_purchases_90d"] = bgnbd.expected_purchases(90 / DAYS_PER_WEEK, x, t_x, T)
    out["purchase_intent"] = bgnbd.p_any_purchase(intent_days / DAYS_PER_WEEK, x, t_x, T)
    out["purchase_intent_level"] = bucket(out["purchase_intent"], high=high, low=low)
    if gamma_gamma is not None:
        m = summary["monetary_value"].to_numpy(dtype="float64")
        out["expected_order_value"] = gamma_gamma.expected_value(x, m)
        out["clv"] = customer_lifetime_value(
            bgnbd, gamma_gamma, x, t_x, T, m, months=clv_months, monthly_discount=monthly_discount
        )
    return out


# ---------------------------------------------------------------------------------------------
# Simulation (for checks of the fits)


def simulate_bgnbd(
    n: int, r: float, alpha: float, a: float, b: float, T, *, holdout: float = 0.0, seed=None
) -> pd.DataFrame:
    """Summaries of ``n`` customers drawn from the BG/NBD model, observed for ``T`` weeks
    after their first purchase (a number or one per customer), and their transactions in
    the ``holdout`` weeks after (``holdout_frequency``)."""
    rng = np.random.default_rng(seed)
    T = np.broadcast_to(np.asarray(T, dtype="float64"), (n,)).copy()
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    budget = rng.geometric(np.clip(p, 1e-300, 1.0))  # drops out right after this repeat purchase
    events = rng.poisson(lam * T)
    x = np.minimum(events, budget)
    # The x-th of N uniform event times on (0, T]: Beta(x, N − x + 1) · T.
    repeat = x > 0
    t_x = np.zeros(n)
    t_x[repeat] = T[repeat] * rng.beta(x[repeat], events[repeat] - x[repeat] + 1)
    alive = events < budget
    later = np.where(alive, np.minimum(rng.poisson(lam * holdout), budget - events), 0) if holdout else 0
    return pd.DataFrame(
        {
            "frequency": x.astype("float64"),
            "recency": t_x,
            "T": T,
            "holdout_frequency": np.broadcast_to(later, (n,)).astype("float64"),
        }
    )


def simulate_gamma_gamma(frequency, p: float, q: float, v: float, *, seed=None) -> np.ndarray:
    """The mean value of each customer's ``frequency`` (> 0) transactions, drawn from the
    Gamma-Gamma model."""
    rng = np.random.default_rng(seed)
    x = np.asarray(frequency, dtype="float64")
    nu = rng.gamma(q, 1.0 / v, len(x))
    return rng.gamma(p * x, 1.0 / nu) / x
