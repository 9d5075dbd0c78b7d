"""Synthetic events and orders for the predictive tests, in the engine's frame shapes.

``churn_frames(signal=True)`` plants a churn signal: every person has a daily activity
rate that, from a random day on, decays (halving every ~5 days), so people whose
activity fades stop. ``signal=False`` gives everyone the same constant rate, so the
future is independent of the past and no model can beat AUC 0.5."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from tagportal.core.days import BEIJING_ZONE

TYPES = ("page_view", "product_view", "sign_in", "add_to_cart", "share")
TYPE_WEIGHTS = (0.45, 0.25, 0.15, 0.1, 0.05)


def churn_frames(
    people: int = 4000,
    days: int = 120,
    end: dt.date = dt.date(2026, 3, 31),
    *,
    signal: bool = True,
    seed: int = 0,
    first_oneid: int = 1,
    chunk: int = 100_000,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(events, orders)`` of ``people`` people over the ``days`` Beijing days ending on ``end``."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(end) - pd.Timedelta(days=days - 1)
    events, orders = [], []
    for lo in range(0, people, chunk):
        n = min(chunk, people - lo)
        t = np.arange(days)[None, :]
        if signal:
            base = rng.lognormal(np.log(0.35), 0.6, size=(n, 1))
            onset = rng.uniform(-40, days + 80, size=(n, 1))
            joined = rng.uniform(-60, days - 30, size=(n, 1))
            rate = base * np.where(t < onset, 1.0, np.exp(-(t - onset) / 7.0)) * (t >= joined)
        else:
            rate = np.full((n, days), 0.12)
        counts = rng.poisson(rate)
        order_counts = rng.poisson(rate * 0.08)
        ids = np.arange(lo, lo + n, dtype="int64") + first_oneid
        events.append(_rows(rng, counts, ids, start, with_types=True))
        orders.append(_rows(rng, order_counts, ids, start, with_types=False))
    return pd.concat(events, ignore_index=True), pd.concat(orders, ignore_index=True)


def _rows(rng, counts: np.ndarray, ids: np.ndarray, start: pd.Timestamp, *, with_types: bool) -> pd.DataFrame:
    person, day = np.nonzero(counts)
    repeat = counts[person, day]
    person = np.repeat(person, repeat)
    day = np.repeat(day, repeat)
    seconds = rng.integers(0, 86_400, size=len(day))
    local = start.to_datetime64() + day.astype("timedelta64[D]") + seconds.astype("timedelta64[s]")
    time = pd.DatetimeIndex(local).tz_localize(BEIJING_ZONE).tz_convert("UTC")
    frame = pd.DataFrame({"oneid": ids[person], "time": time})
    if with_types:
        frame["type"] = rng.choice(np.array(TYPES, dtype=object), size=len(day), p=TYPE_WEIGHTS)
    else:
        frame["amount"] = np.round(rng.lognormal(np.log(120), 0.5, size=len(day)), 2)
    return frame
