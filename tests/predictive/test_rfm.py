"""RFM: recency, frequency and monetary value in Beijing days, scores 1–5 (quintiles with
ties, thresholds), the eight segments, people without orders, the summary."""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from tagportal.core.days import BEIJING_ZONE
from tagportal.predictive.choices import RfmSegment
from tagportal.predictive.rfm import SCORE_COLUMNS, RfmConfig, compute_rfm, quintile_scores

AS_OF = dt.date(2026, 3, 10)
THRESHOLDS = {
    "method": "thresholds",
    "recency_cuts": [7, 30, 60, 90],
    "frequency_cuts": [2, 3, 4, 5],
    "monetary_cuts": [100, 200, 300, 400],
}


def orders(*rows) -> pd.DataFrame:
    """Orders from ``(oneid, "YYYY-MM-DD HH:MM" in Beijing time, amount)``, stored in UTC."""
    return pd.DataFrame(
        {
            "oneid": pd.Series([r[0] for r in rows], dtype="int64"),
            "time": pd.Series(
                [pd.Timestamp(r[1], tz=BEIJING_ZONE).tz_convert("UTC") for r in rows],
                dtype="datetime64[us, UTC]",
            ),
            "amount": pd.Series([r[2] for r in rows], dtype="float64"),
        }
    )


def scores_of(frame, config=None, as_of=AS_OF) -> pd.DataFrame:
    return compute_rfm(frame, config or RfmConfig(window_days=365), as_of).scores


def test_measures_and_quintile_scores_by_hand():
    # five buyers, each measure ranked in a different order; as of 2026-03-10
    frame = orders(
        (1, "2026-03-10 09:00", 10.0),  # recency 0
        (2, "2026-03-08 09:00", 20.0), (2, "2026-03-01 09:00", 30.0),  # recency 2, 2 days, 50
        (3, "2026-02-08 09:00", 500.0),  # recency 30
        (4, "2026-01-09 09:00", 100.0), (4, "2026-01-05 09:00", 100.0), (4, "2026-01-01 09:00", 100.0),
        (5, "2025-12-10 09:00", 40.0), (5, "2025-12-01 09:00", 40.0), (5, "2025-11-20 09:00", 40.0),
        (5, "2025-11-10 09:00", 40.0),
    )  # fmt: skip
    got = scores_of(frame)
    assert list(got.columns) == list(SCORE_COLUMNS)
    assert got.index.tolist() == [1, 2, 3, 4, 5] and got.index.name == "oneid"
    assert got["recency_days"].tolist() == [0, 2, 30, 60, 90]
    assert got["frequency"].tolist() == [1, 2, 1, 3, 4]
    assert got["monetary"].tolist() == [10.0, 50.0, 500.0, 300.0, 160.0]
    assert got["r"].tolist() == [5, 4, 3, 2, 1]
    # frequency 1, 1 tie: average rank 1.5 → mid-rank percentile 0.2 → both score 2
    assert got["f"].tolist() == [2, 3, 2, 4, 5]
    assert got["m"].tolist() == [1, 2, 5, 4, 3]


def test_identical_values_get_identical_scores_and_groups_are_balanced():
    values = np.array([10, 20, 20, 30, 40, 50, 60, 70, 80, 90])
    assert quintile_scores(values).tolist() == [1, 2, 2, 2, 3, 3, 4, 4, 5, 5]
    assert np.bincount(quintile_scores(np.arange(100)), minlength=6)[1:].tolist() == [20] * 5
    # the order of the rows does not matter: equal values, equal scores, wherever they are
    shuffled = np.array([20, 90, 10, 20, 70])
    assert quintile_scores(shuffled).tolist() == [3, 5, 1, 3, 4]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([5.0], [3]),
        ([7, 7, 7], [3, 3, 3]),
        ([1, 1, 2, 2], [2, 2, 4, 4]),
        ([1, 2], [2, 4]),
        ([1, 2, 3], [1, 3, 5]),
        ([1, 1, 1, 9], [2, 2, 2, 5]),
    ],
)
def test_small_populations_still_score_1_to_5(values, expected):
    assert quintile_scores(np.array(values)).tolist() == expected


def test_people_without_orders_in_the_window_are_not_scored():
    frame = orders(
        (1, "2026-03-01 10:00", 10.0),
        (2, "2025-01-01 10:00", 99.0),  # before a 365-day window: absent
        (3, "2026-03-11 10:00", 50.0),  # after as_of: absent
        (1, "2026-03-12 10:00", 1000.0),  # after as_of: not counted for person 1
    )
    result = compute_rfm(frame, RfmConfig(window_days=365), AS_OF)
    assert result.scores.index.tolist() == [1]
    assert result.scores.loc[1, "monetary"] == 10.0
    assert result.summary["customers"] == 1


def test_no_orders_at_all_gives_an_empty_frame_and_a_summary():
    for frame in (None, orders()):
        result = compute_rfm(frame, RfmConfig(), AS_OF)
        assert result.scores.empty and list(result.scores.columns) == list(SCORE_COLUMNS)
        assert result.summary["customers"] == 0
        assert set(result.summary["segments"].values()) == {0}
        json.dumps(result.summary)


def test_beijing_day_boundaries():
    frame = orders(
        (1, "2026-03-09 23:30", 10.0),  # 15:30 UTC on 03-09: Beijing 03-09
        (2, "2026-03-10 00:30", 10.0),  # 16:30 UTC on 03-09: Beijing 03-10, after as_of 03-09
        (3, "2026-03-09 00:10", 10.0), (3, "2026-03-09 23:50", 10.0),  # one Beijing day
        (4, "2026-03-08 23:30", 10.0), (4, "2026-03-09 00:30", 10.0),  # two Beijing days, 60 minutes apart
    )  # fmt: skip
    assert frame["time"].iloc[0] == pd.Timestamp("2026-03-09 15:30", tz="UTC")
    got = scores_of(frame, RfmConfig(window_days=2), dt.date(2026, 3, 9))
    assert got.index.tolist() == [1, 3, 4]
    assert got["recency_days"].tolist() == [0, 0, 0]
    assert got["frequency"].tolist() == [1, 1, 2]
    by_orders = scores_of(frame, RfmConfig(window_days=2, frequency="orders"), dt.date(2026, 3, 9))
    assert by_orders["frequency"].tolist() == [1, 2, 2]
    # a one-day window holds that Beijing day only
    assert scores_of(frame, RfmConfig(window_days=1), dt.date(2026, 3, 9))["frequency"].to_dict() == {
        1: 1, 3: 1, 4: 1
    }  # fmt: skip
    # as_of as a moment: its Beijing date (16:30 UTC on 03-09 is 03-10 in Beijing)
    moment = dt.datetime(2026, 3, 9, 16, 30, tzinfo=dt.UTC)
    assert scores_of(frame, RfmConfig(window_days=2), moment)["recency_days"].to_dict() == {
        1: 1,
        2: 0,
        3: 1,
        4: 1,
    }


def test_thresholds_mode_by_hand():
    frame = orders(
        (1, "2026-03-03 10:00", 100.0),  # recency 7 = first cut → R 5; one day → F 1; 100 = cut → M 2
        (2, "2026-03-02 10:00", 99.99),  # recency 8 → R 4; M 1
        (3, "2026-01-09 10:00", 450.0), (3, "2026-01-01 10:00", 0.0),  # recency 60 → R 3; F 2; M 5
        (4, "2025-12-09 10:00", 10.0),  # recency 91 → R 1
    )  # fmt: skip
    for day in range(5):  # person 5: five purchase days → F 5, M 400 → 5
        frame = pd.concat([frame, orders((5, f"2026-02-0{day + 1} 10:00", 80.0))], ignore_index=True)
    got = scores_of(frame, RfmConfig(window_days=365, **THRESHOLDS))
    assert got["recency_days"].tolist() == [7, 8, 60, 91, 33]
    assert got["r"].tolist() == [5, 4, 3, 1, 3]
    assert got["f"].tolist() == [1, 1, 2, 1, 5]
    assert got["m"].tolist() == [2, 1, 5, 1, 5]
    summary = compute_rfm(frame, RfmConfig(window_days=365, **THRESHOLDS), AS_OF).summary
    assert summary["cut_points"] == {
        "r": [7.0, 30.0, 60.0, 90.0], "f": [2.0, 3.0, 4.0, 5.0], "m": [100.0, 200.0, 300.0, 400.0]
    }  # fmt: skip


def test_each_of_the_eight_segments_is_reached():
    # thresholds: R high = recency ≤ 30 days, F high = ≥ 3 purchase days, M high = ≥ 200
    def person(oneid, recent, frequent, rich):
        last = "2026-03-05" if recent else "2025-12-01"
        days = 3 if frequent else 1
        amount = 300.0 / days if rich else 30.0 / days
        return [(oneid, f"{last} 10:00" if d == 0 else f"2025-11-0{d} 10:00", amount) for d in range(days)]

    expected = {
        1: (True, True, True, RfmSegment.IMPORTANT_VALUE),
        2: (True, False, True, RfmSegment.IMPORTANT_DEVELOPMENT),
        3: (False, True, True, RfmSegment.IMPORTANT_RETENTION),
        4: (False, False, True, RfmSegment.IMPORTANT_WINBACK),
        5: (True, True, False, RfmSegment.GENERAL_VALUE),
        6: (True, False, False, RfmSegment.GENERAL_DEVELOPMENT),
        7: (False, True, False, RfmSegment.GENERAL_RETENTION),
        8: (False, False, False, RfmSegment.GENERAL_WINBACK),
    }
    frame = orders(*[row for oneid, (r, f, m, _) in expected.items() for row in person(oneid, r, f, m)])
    result = compute_rfm(frame, RfmConfig(window_days=365, **THRESHOLDS), AS_OF)
    got = result.scores
    for oneid, (r, f, m, segment) in expected.items():
        assert (got.loc[oneid, "r"] >= 3, got.loc[oneid, "f"] >= 3, got.loc[oneid, "m"] >= 3) == (r, f, m)
        assert got.loc[oneid, "segment"] == segment.value
    assert result.summary["segments"] == dict.fromkeys(RfmSegment.values, 1)
    with translation.override("zh-hans"):
        assert [str(RfmSegment(got.loc[k, "segment"]).label) for k in (1, 2, 3, 4, 5, 6, 7, 8)] == [
            "重要价值客户", "重要发展客户", "重要保持客户", "重要挽留客户",
            "一般价值客户", "一般发展客户", "一般保持客户", "一般挽留客户",
        ]  # fmt: skip


def test_high_by_the_mean_score():
    # M scores 1, 2, 2, 2, 5 (thresholds): mean 2.4, so 2 is low by the mean, low by the midpoint
    # too; R scores 5, 5, 5, 5, 1: mean 4.2, so 5 is high by both, 1 low by both.
    frame = orders(
        (1, "2026-03-09 10:00", 50.0), (2, "2026-03-09 10:00", 150.0), (3, "2026-03-09 10:00", 150.0),
        (4, "2026-03-09 10:00", 150.0), (5, "2025-10-01 10:00", 500.0),
    )  # fmt: skip
    midpoint = scores_of(frame, RfmConfig(window_days=365, **THRESHOLDS))
    mean = compute_rfm(frame, RfmConfig(window_days=365, high_rule="mean", **THRESHOLDS), AS_OF)
    assert midpoint["m"].tolist() == [1, 2, 2, 2, 5] and midpoint["f"].tolist() == [1] * 5
    assert mean.summary["mean_scores"] == {"r": 4.2, "f": 1.0, "m": 2.4}
    # F: all 1, mean 1 → high by the mean (≥ mean), low by the midpoint
    assert set(midpoint["segment"]) == {RfmSegment.GENERAL_DEVELOPMENT, RfmSegment.IMPORTANT_WINBACK}
    assert mean.scores["segment"].tolist() == [RfmSegment.GENERAL_VALUE] * 4 + [
        RfmSegment.IMPORTANT_RETENTION
    ]


def test_quintile_summary_cut_points_and_counts():
    frame = orders(*[(k, f"2026-03-{10 - k % 10:02d} 10:00", float(k * 10)) for k in range(1, 11)])
    result = compute_rfm(frame, RfmConfig(window_days=30), AS_OF)
    summary = json.loads(json.dumps(result.summary))
    assert summary["as_of"] == "2026-03-10" and summary["customers"] == 10
    assert summary["score_counts"]["m"] == [2, 2, 2, 2, 2]
    # M: smallest amount scoring ≥ 2, 3, 4, 5; R: largest recency scoring ≥ 5, 4, 3, 2
    assert summary["cut_points"]["m"] == [30.0, 50.0, 70.0, 90.0]
    assert summary["cut_points"]["r"] == [1.0, 3.0, 5.0, 7.0]
    # F: everybody bought on one day: all score 3, no one scores 4 or 5
    assert summary["cut_points"]["f"] == [1.0, 1.0, None, None]
    assert summary["config"] == RfmConfig(window_days=30).to_dict()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 40), st.integers(0, 400), st.sampled_from([0.0, 5.0, 5.0, 19.99, 120.0, 3000.0])
        ),
        min_size=1,
        max_size=120,
    )
)
def test_scores_are_1_to_5_and_monotone(rows):
    base = pd.Timestamp("2026-03-10 12:00", tz=BEIJING_ZONE)
    frame = pd.DataFrame(
        {
            "oneid": [r[0] for r in rows],
            "time": [(base - pd.Timedelta(days=r[1])).tz_convert("UTC") for r in rows],
            "amount": [r[2] for r in rows],
        }
    )
    got = scores_of(frame)
    assert got[["r", "f", "m"]].isin([1, 2, 3, 4, 5]).all().all()
    assert set(got.index) == {r[0] for r in rows if r[1] < 365}
    for measure, score, better in (("recency_days", "r", -1), ("frequency", "f", 1), ("monetary", "m", 1)):
        ordered = got.sort_values(measure, kind="stable")
        steps = np.diff(ordered[score].to_numpy())
        assert (steps * better >= 0).all(), f"{score} is not monotone in {measure}"
        assert (got.groupby(measure)[score].nunique() == 1).all(), f"equal {measure}, different {score}"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window_days": 0}, "window_days"),
        ({"window_days": 30.5}, "window_days"),
        ({"method": "deciles"}, "method"),
        ({"frequency": "weeks"}, "frequency"),
        ({"high_rule": "median"}, "high_rule"),
        ({**THRESHOLDS, "recency_cuts": [7, 30, 30, 90]}, "recency_cuts"),
        ({**THRESHOLDS, "monetary_cuts": [1, 2, 3]}, "monetary_cuts"),
        ({**THRESHOLDS, "frequency_cuts": "1,2,3,4"}, "frequency_cuts"),
        ({**THRESHOLDS, "frequency_cuts": [1, 2, 3, float("nan")]}, "frequency_cuts"),
        ({"window": 30}, "unknown RFM parameters: window"),
    ],
)
def test_bad_configurations_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        RfmConfig.from_dict(params)


def test_configuration_round_trips_through_json():
    config = RfmConfig(window_days=180, high_rule="mean", **THRESHOLDS)
    assert RfmConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
