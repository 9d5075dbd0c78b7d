"""The churn warning on the demo generator's data: the planted signal is found (AUC ≥ 0.75,
published), and the same data with each week's activity dealt to other people gives an
honest 0.5 that is held."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tagportal.engine import frames as fr
from tagportal.predictive.churn import ChurnConfig, train_churn
from tagportal.profiles import generator

END = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC)  # 20:00 in Beijing, 2026-03-31
PEOPLE = 4000


@pytest.fixture(scope="module")
def data():
    return generator.generate(11, PEOPLE, 10, industry="beauty", end=END)


def weekly_shuffle(frame: pd.DataFrame, as_of: dt.date, seed: int) -> pd.DataFrame:
    """``frame`` with the OneIDs of each 7-day block (ending on ``as_of``, the blocks the
    churn cut-offs' outcome windows are) permuted independently: a person's next week
    then belongs to somebody else, whatever their past."""
    rng = np.random.default_rng(seed)
    block = (fr.beijing_day(as_of) - fr.beijing_days(frame["time"])) // 7
    oneid = frame["oneid"].to_numpy().copy()
    people = np.arange(1, PEOPLE + 1)
    for b in np.unique(block):
        at = block == b
        oneid[at] = rng.permutation(people)[oneid[at] - 1]
    out = frame.copy()
    out["oneid"] = oneid
    return out


@pytest.mark.slow
def test_the_generators_planted_signal_is_found_and_published(data):
    report = train_churn(data["events"], data["orders"], END, ChurnConfig(seed=3)).report
    assert report["validation_rows"] > 1000
    assert report["validation"]["auc"] >= 0.75
    assert report["publishable"] is True
    assert report["validation"]["lift_top_decile"] > 1.5
    # what the signal shows up in: recency, recent activity, its trend
    top = {item["feature"] for item in report["permutation_importances"][:4]}
    assert top & {"recency_days", "activity_7d", "activity_30d", "trend_7d_vs_21d", "active_days_30d"}


@pytest.mark.slow
def test_the_same_data_with_each_week_dealt_to_others_gives_a_half_and_is_held(data):
    as_of = dt.date(2026, 3, 31)
    events = weekly_shuffle(data["events"], as_of, 1)
    orders = weekly_shuffle(data["orders"], as_of, 2)
    assert len(events) == len(data["events"]) and not events["oneid"].equals(data["events"]["oneid"])
    report = train_churn(events, orders, END, ChurnConfig(seed=3)).report
    assert 0.42 <= report["validation"]["auc"] <= 0.58
    assert all(0.42 <= c["auc"] <= 0.58 for c in report["candidates"].values())
    assert report["publishable"] is False
