"""The churn warning: labels and features on Beijing days, no leakage, model selection
on a planted signal, an honest 0.5 without one, determinism, bad parameters."""

import datetime as dt
import json
import pickle

import numpy as np
import pandas as pd
import pytest
from django.utils import translation

from tagportal.predictive.churn import (
    BASE_FEATURES,
    ChurnConfig,
    ChurnConfigError,
    ChurnDataError,
    ChurnError,
    ChurnRisk,
    churn_features,
    churn_labels,
    plan_cutoffs,
    risk_buckets,
    train_churn,
)

from .synthetic import churn_frames

AS_OF = dt.date(2026, 3, 31)
CUTOFF = dt.date(2026, 3, 10)


def beijing(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="Asia/Shanghai").tz_convert("UTC")


def events(*rows) -> pd.DataFrame:
    """Events from ``(oneid, Beijing time text, type)``."""
    return pd.DataFrame(
        {
            "oneid": pd.Series([r[0] for r in rows], dtype="int64"),
            "time": pd.DatetimeIndex([beijing(r[1]) for r in rows]),
            "type": [r[2] for r in rows],
        }
    )


def no_orders() -> pd.DataFrame:
    return pd.DataFrame(
        {"oneid": pd.Series(dtype="int64"), "time": pd.DatetimeIndex([], tz="UTC"), "amount": []}
    )


# ---------------------------------------------------------------------------
# Labels and eligibility on Beijing day edges
def test_the_horizon_runs_over_whole_beijing_days_after_the_cutoff():
    frame = events(
        *[(n, "2026-03-10 12:00", "sign_in") for n in (1, 2, 3, 4)],
        (1, "2026-03-10 23:59:59", "sign_in"),  # still the cut-off day: not in the horizon
        (2, "2026-03-11 00:00:00", "sign_in"),  # first day of the horizon
        (3, "2026-03-17 23:59:59", "sign_in"),  # last day of the 7-day horizon
        (4, "2026-03-18 00:00:00", "sign_in"),  # the day after it
    )
    labels = churn_labels(frame, None, CUTOFF)
    assert labels.to_dict() == {1: 1, 2: 0, 3: 0, 4: 1}
    assert churn_labels(frame, None, CUTOFF, ChurnConfig(horizon_days=8, cutoff_spacing_days=8))[4] == 0


def test_the_eligible_are_those_with_counted_activity_in_the_last_n_beijing_days():
    frame = events(
        (1, "2026-02-09 00:00:00", "sign_in"),  # the 30th day back, counting the cut-off day
        (2, "2026-02-08 23:59:59", "sign_in"),  # one second earlier: the 31st day
        (3, "2026-03-10 23:59:59", "sign_in"),  # the end of the cut-off day
        (4, "2026-03-11 00:00:00", "sign_in"),  # after the cut-off
        (5, "2026-03-01 10:00:00", "page_view"),  # a type that does not count (below)
    )
    assert list(churn_labels(frame, None, CUTOFF).index) == [1, 3, 5]
    counted = ChurnConfig(event_types=("sign_in",))
    assert list(churn_labels(frame, None, CUTOFF, counted).index) == [1, 3]
    assert list(churn_features(frame, None, CUTOFF, ChurnConfig(eligible_days=29)).index) == [3, 5]

    orders = pd.DataFrame({"oneid": [6], "time": [beijing("2026-03-02 08:00")], "amount": [10.0]})
    assert 6 in churn_labels(frame, orders, CUTOFF, counted).index
    assert (
        6
        not in churn_labels(
            frame, orders, CUTOFF, ChurnConfig(event_types=("sign_in",), count_orders=False)
        ).index
    )


def test_messages_the_brand_sent_are_not_the_persons_activity():
    frame = events(
        (1, "2026-03-05 10:00:00", "message_sent"),
        (1, "2026-03-05 10:00:05", "message_delivered"),
        (2, "2026-03-05 10:00:00", "message_sent"),
        (2, "2026-03-06 09:00:00", "message_clicked"),  # the person's own doing
        (3, "2026-03-06 09:00:00", "sign_in"),
    )
    assert list(churn_labels(frame, None, CUTOFF).index) == [2, 3]


def test_the_features_of_one_person():
    frame = events(
        (1, "2026-01-01 09:00", "sign_in"),  # first seen; 68 days before the cut-off
        (1, "2026-02-20 09:00", "page_view"),
        (1, "2026-03-01 09:00", "page_view"),
        (1, "2026-03-01 10:00", "page_view"),
        (1, "2026-03-05 09:00", "sign_in"),
        (1, "2026-03-08 23:59", "page_view"),
    )
    orders = pd.DataFrame(
        {
            "oneid": [1, 1],
            "time": [beijing("2026-01-20 10:00"), beijing("2026-03-04 00:00")],
            "amount": [50.0, 20.0],
        }
    )
    row = churn_features(frame, orders, CUTOFF).loc[1]
    assert row["recency_days"] == 2
    assert row["tenure_days"] == 68
    assert row["activity_7d"] == 3  # 03-04 order, 03-05, 03-08
    assert row["activity_30d"] == 6
    assert row["activity_90d"] == 8
    assert row["active_days_30d"] == 5  # 02-20, 03-01, 03-04, 03-05, 03-08
    assert (row["orders_30d"], row["amount_30d"], row["orders_90d"], row["amount_90d"]) == (1, 20, 2, 70)
    # 3 in the last 7 days, 3 in the 21 before: rates 3/7 and 3/21.
    assert row["trend_7d_vs_21d"] == pytest.approx((3 / 7 - 3 / 21) / (3 / 7 + 3 / 21))
    assert row["type_30d:page_view"] == 4 and row["type_30d:sign_in"] == 1


# ---------------------------------------------------------------------------
# No leakage
def test_the_features_at_a_cutoff_ignore_everything_after_it():
    ev, od = churn_frames(400, days=90, end=AS_OF, seed=3)
    cutoff = dt.date(2026, 3, 15)
    before = churn_features(ev, od, cutoff)
    assert len(before) > 100

    after = pd.Timestamp("2026-03-16", tz="Asia/Shanghai")
    later_ev, later_od = ev["time"] >= after, od["time"] >= after
    assert later_ev.any() and later_od.any()
    altered_ev = ev.copy()
    altered_ev.loc[later_ev, "type"] = "a_new_type"  # would top the type ranking if it were seen
    altered_ev = pd.concat([altered_ev, altered_ev[later_ev], altered_ev[later_ev]], ignore_index=True)
    altered_od = od[~later_od].copy()
    unseen = pd.DataFrame({"oneid": [10**6], "time": [after], "type": ["sign_in"]})
    altered_ev = pd.concat([altered_ev, unseen], ignore_index=True)
    pd.testing.assert_frame_equal(churn_features(altered_ev, altered_od, cutoff), before)

    altered_before = ev.copy()
    altered_before.loc[ev["time"] < after, "type"] = "changed"  # a change before it does show
    assert not churn_features(altered_before, od, cutoff).equals(before)


# ---------------------------------------------------------------------------
# Training on a planted signal, and on none
@pytest.fixture(scope="module")
def planted():
    ev, od = churn_frames(4000, days=120, end=AS_OF, signal=True, seed=1)
    return ev, od, train_churn(ev, od, AS_OF, ChurnConfig(seed=7))


@pytest.mark.slow
def test_a_planted_signal_is_found_and_published(planted):
    *_frames, run = planted
    report = run.report
    assert set(report["candidates"]) == {"logistic_regression", "hist_gradient_boosting", "random_forest"}
    assert report["chosen"] == max(report["candidates"], key=lambda n: report["candidates"][n]["auc"])
    assert report["validation"]["auc"] >= 0.75
    assert report["publishable"] is True
    assert report["validation"]["lift_top_decile"] > 1.5
    assert 0 < report["validation"]["pr_auc"] < 1
    assert report["training_rows"] > 0 and 0 < report["base_rate"] < 1
    top = [item["feature"] for item in report["permutation_importances"][:3]]
    assert {"recency_days", "activity_7d", "trend_7d_vs_21d", "active_days_30d"} & set(top)
    json.dumps(report)  # JSON-able as it is


@pytest.mark.slow
def test_the_probabilities_are_calibrated(planted):
    validation = planted[2].report["validation"]
    assert validation["brier"] < 0.85 * validation["brier_base_rate"]
    curve = validation["calibration_curve"]
    gaps = np.abs(np.array(curve["mean_predicted"]) - np.array(curve["fraction_positive"]))
    assert len(gaps) >= 5 and gaps.mean() < 0.08
    roc = validation["roc_curve"]  # for drawing: from (0, 0) to (1, 1), thinned, its area the AUC
    assert roc["fpr"][0] == roc["tpr"][0] == 0 and roc["fpr"][-1] == roc["tpr"][-1] == 1
    assert 2 <= len(roc["fpr"]) == len(roc["tpr"]) <= 101
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(validation["auc"], abs=0.02)


@pytest.mark.slow
def test_the_current_population_is_scored_with_buckets(planted):
    ev, od, run = planted
    scores = run.scores
    eligible = churn_features(ev, od, AS_OF).index
    assert scores.index.name == "oneid" and list(scores.index) == list(eligible)
    assert scores["probability"].between(0, 1).all()
    assert set(scores["bucket"]) <= set(ChurnRisk.values) and len(set(scores["bucket"])) == 3
    expected = risk_buckets(scores["probability"], run.model.config)
    assert (scores["bucket"].to_numpy() == expected).all()
    assert run.report["buckets"] == scores["bucket"].value_counts().to_dict()
    # The model scores later frames alike (here: the same ones), also once stored and read back.
    pd.testing.assert_frame_equal(run.model.score(ev, od, AS_OF), scores)
    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(run.model)).score(ev, od, AS_OF), scores)


@pytest.mark.slow
def test_labels_without_signal_give_an_honest_half_and_are_not_published():
    ev, od = churn_frames(4000, days=120, end=AS_OF, signal=False, seed=2)
    report = train_churn(ev, od, AS_OF, ChurnConfig(seed=7)).report
    assert abs(report["validation"]["auc"] - 0.5) <= 0.05
    assert all(abs(c["auc"] - 0.5) <= 0.05 for c in report["candidates"].values())
    assert report["publishable"] is False


@pytest.mark.slow
def test_the_same_seed_gives_the_same_run_and_extra_features_are_taken_per_cutoff():
    ev, od = churn_frames(1500, days=100, end=AS_OF, seed=4)
    rng = np.random.default_rng(0)
    noise = pd.DataFrame({"oneid": np.arange(1, 1501), "noise": rng.normal(size=1500)})
    asked = []

    def extra(cutoff):
        asked.append(cutoff)
        return noise

    config = ChurnConfig(seed=5, max_training_rows=3000)
    first = train_churn(ev, od, AS_OF, config, extra_features=extra)
    second = train_churn(ev, od, AS_OF, config, extra_features=extra)
    pd.testing.assert_frame_equal(first.scores, second.scores)

    def stable(report):
        report = {k: v for k, v in report.items() if k != "seconds"}
        report["candidates"] = {n: c["auc"] for n, c in report["candidates"].items()}
        return report

    assert stable(first.report) == stable(second.report)
    assert first.report["training_rows"] + first.report["validation_rows"] <= 3000
    assert first.report["labelled_rows"] > 3000 and first.report["sample_share"] < 1

    training, validation = plan_cutoffs(AS_OF, config)
    assert asked[:6] == [*training, validation, AS_OF]
    assert first.report["features"][: len(BASE_FEATURES)] == list(BASE_FEATURES)
    assert first.report["features"][-1] == "noise"
    with pytest.raises(ChurnDataError, match="extra features"):
        first.model.score(ev, od, AS_OF)
    with pytest.raises(ChurnDataError, match="more than one row for a OneID"):
        first.model.score(ev, od, AS_OF, extra_features=lambda c: pd.concat([noise, noise]))


# ---------------------------------------------------------------------------
# Cut-offs and bad parameters
def test_the_cutoffs_are_weekly_and_the_validation_horizon_ends_on_as_of():
    training, validation = plan_cutoffs(dt.datetime(2026, 3, 30, 16, 30, tzinfo=dt.UTC), ChurnConfig())
    assert validation == dt.date(2026, 3, 24)  # as_of is 03-31 in Beijing
    assert training == [dt.date(2026, 2, 24), dt.date(2026, 3, 3), dt.date(2026, 3, 10), dt.date(2026, 3, 17)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"horizon_days": 0}, "horizon_days must be a whole number of at least 1"),
        ({"eligible_days": -3}, "eligible_days must be"),
        ({"training_cutoffs": 1}, "training_cutoffs must be at least 2"),
        ({"horizon_days": 14}, r"at least the horizon apart \(7 < 14 days\)"),
        ({"medium_from": 0.6, "high_from": 0.5}, "medium_from <= high_from"),
        ({"candidates": ("xgboost",)}, "Unknown or no candidate models: xgboost"),
        ({"calibration": "platt"}, "calibration must be one of: isotonic, sigmoid"),
        ({"event_types": (), "count_orders": False}, "No activity counts"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_message(params, message):
    with pytest.raises(ChurnConfigError, match=message) as caught:
        ChurnConfig(**params)
    assert isinstance(caught.value, ValueError)


def test_data_too_short_for_the_cutoffs_is_refused():
    ev, od = churn_frames(300, days=50, end=AS_OF, seed=5)
    with pytest.raises(
        ChurnDataError, match=r"No cut-offs fit in the data: 50 days up to 2026-03-31.*needs 65"
    ) as e:
        train_churn(ev, od, AS_OF)
    assert isinstance(e.value, ChurnError) and isinstance(e.value, ValueError)
    with pytest.raises(ChurnDataError, match="No cut-offs fit"):
        train_churn(None, None, AS_OF)


def test_a_cutoff_without_both_outcomes_is_refused():
    days = pd.date_range("2025-12-01", "2026-03-31", freq="D", tz="Asia/Shanghai")
    frame = pd.DataFrame(
        {"oneid": np.repeat(np.arange(1, 21), len(days)), "time": np.tile(days, 20), "type": "sign_in"}
    )
    frame["time"] = frame["time"].dt.tz_convert("UTC")
    with pytest.raises(ChurnDataError, match="not both outcomes"):
        train_churn(frame, no_orders(), AS_OF)


def test_the_buckets_and_their_chinese_names():
    assert list(risk_buckets([0.0, 0.19, 0.2, 0.49, 0.5, 1.0])) == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]
    config = ChurnConfig(medium_from=0.1, high_from=0.3)
    assert list(risk_buckets([0.1, 0.3], config)) == ["medium", "high"]
    with translation.override("zh-hans"):
        assert [str(risk.label) for risk in ChurnRisk] == ["高", "中", "低"]
    assert str(ChurnRisk.HIGH.label) == "High"
