"""Tag values as Roaring bitmaps: round trips, OR-merging of OneID ranges, quality numbers."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyroaring import BitMap

from tagportal.engine import bitmaps
from tagportal.engine.evaluate import TagSpec, evaluate_tags

AS_OF = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)
INDEX = pd.Index([1, 2, 3, 5, 8], name="oneid")
FLAGS = pd.Series([True, False, None, True, False], index=INDEX, dtype="boolean")
LEVELS = pd.Series(["gold", "silver", "gold", None, "regular"], index=INDEX, dtype="string[pyarrow]")
SPEND = pd.Series([0.0, 999.0, 1000.0, np.nan, 25000.0], index=INDEX)
SPEND_VALUES = [
    {"code": "none", "max": 1},
    {"code": "low", "min": 1, "max": 1000},
    {"code": "mid", "min": 1000, "max": 5000},
    {"code": "high", "min": 5000},
]


def ids(bm):
    return sorted(bm)


def test_boolean_bitmaps():
    maps = bitmaps.to_bitmaps(FLAGS)
    assert set(maps) == {True, False}
    assert ids(maps[True]) == [1, 5]
    assert ids(maps[False]) == [2, 8]
    assert all(isinstance(bm, BitMap) for bm in maps.values())


def test_boolean_bitmaps_exist_even_when_nobody_holds_a_value():
    maps = bitmaps.to_bitmaps(pd.Series([True, True], index=[4, 6], dtype="boolean"))
    assert ids(maps[True]) == [4, 6]
    assert len(maps[False]) == 0


def test_enum_bitmaps_include_declared_values():
    maps = bitmaps.to_bitmaps(
        LEVELS, [{"code": "gold"}, {"code": "silver"}, {"code": "regular"}, {"code": "vip"}]
    )
    assert {k: ids(v) for k, v in maps.items()} == {"gold": [1, 3], "silver": [2], "regular": [8], "vip": []}


def test_number_bitmaps_are_buckets_and_numbers_are_kept_apart():
    maps = bitmaps.to_bitmaps(SPEND, SPEND_VALUES)
    assert {k: ids(v) for k, v in maps.items()} == {"none": [1], "low": [2], "mid": [3], "high": [8]}
    assert bitmaps.to_bitmaps(SPEND) == {}
    assert bitmaps.numbers(SPEND).to_dict() == {1: 0.0, 2: 999.0, 3: 1000.0, 8: 25000.0}


@pytest.mark.parametrize("series,value_type", [(FLAGS, "boolean"), (LEVELS, "enum")])
def test_round_trip_through_bytes(series, value_type):
    maps = bitmaps.to_bitmaps(series)
    stored = {key: bitmaps.serialize(bm) for key, bm in maps.items()}
    assert all(isinstance(b, bytes) for b in stored.values())
    loaded = {key: bitmaps.deserialize(b) for key, b in stored.items()}
    assert loaded == maps
    back = bitmaps.to_series(loaded, value_type)
    pd.testing.assert_series_equal(back, series.dropna().astype(back.dtype), check_names=False)


def test_oneids_must_fit_in_32_bits():
    with pytest.raises(ValueError, match="OneIDs"):
        bitmaps.to_bitmaps(pd.Series([True], index=[2**32], dtype="boolean"))
    big = 2**32 - 1
    assert ids(bitmaps.to_bitmaps(pd.Series([True], index=[big], dtype="boolean"))[True]) == [big]


def test_coverage_and_distribution():
    flags = {"true": 2, "false": 2}  # FLAGS as stored
    assert bitmaps.coverage("boolean", flags, 0, 10) == 0.2  # True for boolean tags
    assert bitmaps.coverage("enum", bitmaps.distribution(LEVELS), 0, 5) == 0.8
    assert bitmaps.coverage("number", {}, len(bitmaps.numbers(SPEND)), 0) == 0.0
    assert bitmaps.distribution(FLAGS) == {True: 2, False: 2}
    assert bitmaps.distribution(LEVELS, ["gold", "silver", "regular", "vip"]) == {
        "gold": 2,
        "silver": 1,
        "regular": 1,
        "vip": 0,
    }
    assert bitmaps.distribution(SPEND, SPEND_VALUES) == {"none": 1, "low": 1, "mid": 1, "high": 1}
    assert bitmaps.distribution(pd.Series([2.0, 2.0, 3.0])) == {2.0: 2, 3.0: 1}
    assert bitmaps.bitmap_distribution(bitmaps.to_bitmaps(LEVELS)) == bitmaps.distribution(LEVELS)


def test_coverage_counts_who_holds_a_tag_one_way():
    # yes/no tags: who has "true"; number tags: who has a number, in a bucket or not
    assert bitmaps.coverage("boolean", {"true": 3, "false": 7}, 0, 10) == 0.3
    assert bitmaps.coverage("number", {"low": 1}, 4, 8) == 0.5
    assert bitmaps.coverage("enum", {"gold": 9, "silver": 9}, 0, 10) == 1.0  # at most everybody
    assert bitmaps.coverage("enum", {"gold": 1}, 0, None) is None  # population unknown


def test_declared_values_are_the_stored_texts():
    assert bitmaps.declared_values("boolean", None) == ["true", "false"]
    assert bitmaps.declared_values("number", SPEND_VALUES) == ["none", "low", "mid", "high"]
    assert bitmaps.declared_values("enum", [{"code": "gold"}, {"label": "no code"}, 3, None]) == ["gold", "3"]


def test_psi_is_zero_for_the_same_distribution_and_grows_with_drift():
    base = {"a": 500, "b": 300, "c": 200}
    assert bitmaps.psi(base, base) == 0.0
    assert bitmaps.psi(base, {"a": 50, "b": 30, "c": 20}) == pytest.approx(0.0)  # shares, not counts
    small = bitmaps.psi(base, {"a": 480, "b": 310, "c": 210})
    large = bitmaps.psi(base, {"a": 200, "b": 300, "c": 500})
    new_bin = bitmaps.psi(base, {"a": 200, "b": 300, "c": 200, "d": 300})
    assert 0 < small < 0.01 < large
    assert new_bin > large  # an empty bin counts as epsilon, not as a division by zero
    assert bitmaps.psi({}, {}) == 0.0


def test_merge_is_an_or_per_value_and_does_not_touch_the_parts():
    left = {"gold": BitMap([1, 2]), "silver": BitMap([3])}
    right = {"gold": BitMap([7]), "vip": BitMap([9])}
    merged = bitmaps.merge_bitmaps([left, right])
    assert {k: ids(v) for k, v in merged.items()} == {"gold": [1, 2, 7], "silver": [3], "vip": [9]}
    assert ids(left["gold"]) == [1, 2]


def test_evaluating_by_oneid_range_and_merging_equals_the_whole():
    rng = np.random.default_rng(3)
    n = 600
    events = pd.DataFrame(
        {
            "oneid": rng.integers(1, 400, n),
            "time": pd.Timestamp(AS_OF) - pd.to_timedelta(rng.integers(0, 200 * 86400, n), unit="s"),
            "type": rng.choice(["store_visit", "consultation", "treatment"], n),
            "value": rng.integers(0, 6, n).astype(float),
        }
    )
    profiles = pd.DataFrame({"oneid": np.arange(1, 500), "age": rng.integers(15, 70, 499)})
    visits = {
        "agg": "count",
        "source": "events",
        "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
    }
    values = [{"code": "none", "max": 1}, {"code": "some", "min": 1, "max": 3}, {"code": "many", "min": 3}]
    tags = [
        TagSpec(
            "visitor",
            "boolean",
            {"type": "condition", "condition": {"metric": visits, "op": "gte", "value": 2}},
        ),
        TagSpec("visits", "number", {"type": "metric", "metric": visits}, values),
        TagSpec(
            "pref",
            "enum",
            {"type": "preference", "pick": "most_frequent", "source": "events", "field": "type"},
        ),
    ]
    whole = evaluate_tags(tags, profiles, events, None, AS_OF)
    population = whole.population
    parts = [
        evaluate_tags(
            tags, profiles, events, None, AS_OF, population=population[(population >= lo) & (population < hi)]
        )
        for lo, hi in ((0, 150), (150, 320), (320, 10**6))
    ]
    for spec in tags:
        expected = bitmaps.to_bitmaps(whole.values[spec.code], spec.values)
        merged = bitmaps.merge_bitmaps(bitmaps.to_bitmaps(p.values[spec.code], spec.values) for p in parts)
        assert merged == expected
        assert sum(len(bm) for bm in expected.values()) > 0
