"""The batch evaluator on small hand-made frames where the right answer is known."""

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from tagportal.engine.evaluate import (
    TagSpec,
    compare,
    dependency_order,
    evaluate_tags,
    metric_key,
)

# 2026-11-28 10:00 in Beijing.
AS_OF = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)
NA = pd.NA


def events(*rows, **columns):
    """Rows of (oneid, UTC time, type[, value[, {properties}]])."""
    records = []
    for row in rows:
        oneid, moment, kind, *rest = row
        record = {"oneid": oneid, "time": moment, "type": kind, "channel": "store", "store": "S1"}
        record["value"] = rest[0] if rest else 0.0
        for key, value in (rest[1] if len(rest) > 1 else {}).items():
            record[f"properties.{key}"] = value
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if len(frame):
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        frame["value"] = frame["value"].astype(float)
    for name, values in columns.items():
        frame[name] = values
    return frame


def orders(*rows):
    """Rows of (oneid, UTC time, amount, category[, {properties}])."""
    records = []
    for oneid, moment, amount, category, *rest in rows:
        record = {"oneid": oneid, "time": moment, "amount": amount, "quantity": 1, "category": category}
        record["channel"], record["discount"] = "store", 0.0
        for key, value in (rest[0] if rest else {}).items():
            record[f"properties.{key}"] = value
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def visits(window=None, **extra):
    node = {
        "agg": "count",
        "source": "events",
        "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
    }
    if window:
        node["window"] = window
    return {**node, **extra}


def run(definition, value_type="boolean", profiles=None, events=None, orders=None, **kwargs):
    """Evaluate one tag; its values as a dict (NA as None) and the whole result."""
    result = evaluate_tags(
        [TagSpec("t", value_type, definition, kwargs.pop("values", None))],
        profiles,
        events,
        orders,
        kwargs.pop("as_of", AS_OF),
        **kwargs,
    )
    assert result.errors == {}, result.errors
    series = result.values["t"]
    return {k: (None if pd.isna(v) else v) for k, v in series.items()}, result


def condition(cond, **kwargs):
    return run({"type": "condition", "condition": cond}, "boolean", **kwargs)[0]


def metric(node, **kwargs):
    return run({"type": "metric", "metric": node}, "number", **kwargs)[0]


PROFILES = pd.DataFrame(
    {
        "oneid": [1, 2, 3, 4],
        "age": [25, 35, None, 50],
        "city": ["上海", "成都", None, ""],
        "gender": ["female", "male", "female", None],
        "wecom_added": ["yes", "no", None, "yes"],
        "member_level": ["金卡", "gold", "钻石卡", None],
    }
)


# operators -------------------------------------------------------------------
@pytest.mark.parametrize(
    "op,value,expected",
    [
        ("eq", 35, {1: False, 2: True, 3: False, 4: False}),
        ("ne", 35, {1: True, 2: False, 3: False, 4: True}),  # missing never matches
        ("gt", 35, {1: False, 2: False, 3: False, 4: True}),
        ("gte", 35, {1: False, 2: True, 3: False, 4: True}),
        ("lt", 35, {1: True, 2: False, 3: False, 4: False}),
        ("lte", 35, {1: True, 2: True, 3: False, 4: False}),
        ("between", [25, 35], {1: True, 2: True, 3: False, 4: False}),
        ("in", [25, 50], {1: True, 2: False, 3: False, 4: True}),
        ("not_in", [25, 50], {1: False, 2: True, 3: False, 4: False}),
        ("is_set", True, {1: True, 2: True, 3: False, 4: True}),
        ("is_set", False, {1: False, 2: False, 3: True, 4: False}),
    ],
)
def test_number_operators_on_an_attribute(op, value, expected):
    assert condition({"attribute": "age", "op": op, "value": value}, profiles=PROFILES) == expected


@pytest.mark.parametrize(
    "op,value,expected",
    [
        ("eq", "上海", {1: True, 2: False, 3: False, 4: False}),
        ("ne", "上海", {1: False, 2: True, 3: False, 4: False}),
        ("in", ["上海", "北京"], {1: True, 2: False, 3: False, 4: False}),
        ("not_in", ["上海", "北京"], {1: False, 2: True, 3: False, 4: False}),
        ("contains", "都", {1: False, 2: True, 3: False, 4: False}),
        ("is_set", True, {1: True, 2: True, 3: False, 4: False}),  # the empty text is not set
        ("is_set", False, {1: False, 2: False, 3: True, 4: True}),
    ],
)
def test_text_operators_on_an_attribute(op, value, expected):
    assert condition({"attribute": "city", "op": op, "value": value}, profiles=PROFILES) == expected


def test_is_set_without_a_value_means_set():
    assert condition({"attribute": "city", "op": "is_set"}, profiles=PROFILES) == {
        1: True,
        2: True,
        3: False,
        4: False,
    }


def test_compare_coerces_between_texts_numbers_and_booleans():
    texts = pd.Series(["520", "双11", None, "7.0"], dtype="string[pyarrow]")
    assert compare(texts, "eq", 520).tolist() == [True, False, False, False]
    assert compare(texts, "gte", 7).tolist() == [True, False, False, True]
    flags = pd.Series([True, "true", "no", None], dtype=object)
    assert compare(flags, "eq", True).tolist() == [True, True, False, False]
    assert compare(flags, "eq", False).tolist() == [False, False, True, False]
    numbers = np.array([1.0, np.nan, 3.0])
    assert compare(numbers, "in", ["1", "3"]).tolist() == [True, False, True]


def test_all_any_not():
    female = {"attribute": "gender", "op": "eq", "value": "female"}
    older = {"attribute": "age", "op": "gte", "value": 30}
    assert condition({"all": [female, older]}, profiles=PROFILES) == {1: False, 2: False, 3: False, 4: False}
    assert condition({"any": [female, older]}, profiles=PROFILES) == {1: True, 2: True, 3: True, 4: True}
    assert condition({"not": female}, profiles=PROFILES) == {1: False, 2: True, 3: False, 4: True}
    nested = {
        "all": [{"not": {"any": [female, {"attribute": "age", "op": "is_set", "value": False}]}}, older]
    }
    assert condition(nested, profiles=PROFILES) == {1: False, 2: True, 3: False, 4: True}


# metrics and windows -----------------------------------------------------------
EVENTS = events(
    (1, "2026-11-27 16:30", "store_visit", 4.0),  # 2026-11-28 00:30 Beijing: today
    (1, "2026-11-20 03:00", "store_visit", 2.0),
    (1, "2026-11-20 04:00", "consultation", 5.0, {"concern": "痘痘"}),
    (2, "2026-11-27 15:59", "store_visit", 1.0),  # 2026-11-27 23:59 Beijing: yesterday
    (2, "2026-11-22 12:00", "treatment", 3.0, {"project": "热玛吉", "project_type": "光电"}),
    (3, "2026-11-29 01:00", "store_visit", 1.0),  # after as_of's Beijing date: ignored
)


def test_last_days_one_is_today_in_beijing():
    today = {"metric": visits({"last_days": 1}), "op": "gte", "value": 1}
    assert condition(today, events=EVENTS) == {1: True, 2: False, 3: False}


def test_the_beijing_midnight_edge_moves_with_as_of():
    today = {"metric": visits({"last_days": 1}), "op": "gte", "value": 1}
    # 2026-11-27 23:59:59 Beijing: person 2's visit is today, person 1's is tomorrow.
    as_of = dt.datetime(2026, 11, 27, 15, 59, 59, tzinfo=dt.UTC)
    assert condition(today, events=EVENTS, as_of=as_of) == {1: False, 2: True, 3: False}
    # The same moment given in Beijing time.
    beijing = dt.datetime(2026, 11, 28, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    assert condition(today, events=EVENTS, as_of=beijing) == {1: True, 2: False, 3: False}


def test_as_of_may_be_a_naive_utc_datetime_or_a_beijing_date():
    today = {"metric": visits({"last_days": 1}), "op": "gte", "value": 1}
    assert condition(today, events=EVENTS, as_of=dt.datetime(2026, 11, 28, 2, 0)) == {
        1: True,
        2: False,
        3: False,
    }
    assert condition(today, events=EVENTS, as_of=dt.date(2026, 11, 27)) == {1: False, 2: True, 3: False}


def test_last_days_counts_whole_beijing_days():
    frame = events(
        (1, "2026-11-21 16:00", "store_visit"),  # 11-22 00:00 Beijing: 7th day back, inside
        (1, "2026-11-21 15:59", "store_visit"),  # 11-21 23:59 Beijing: 8th day back, outside
        (2, "2026-11-28 15:00", "store_visit"),  # 11-28 23:00 Beijing: later today, inside
    )
    assert metric(visits({"last_days": 7}), events=frame) == {1: 1.0, 2: 1.0}
    assert metric(visits({"last_days": 8}), events=frame) == {1: 2.0, 2: 1.0}


def test_between_dates_are_beijing_dates_inclusive():
    frame = events(
        (1, "2026-10-31 16:30", "store_visit"),  # 11-01 00:30 Beijing: in
        (1, "2026-10-31 15:30", "store_visit"),  # 10-31 23:30 Beijing: out
        (2, "2026-11-10 15:59", "store_visit"),  # 11-10 23:59 Beijing: in
        (2, "2026-11-10 16:00", "store_visit"),  # 11-11 00:00 Beijing: out
    )
    window = {"between": ["2026-11-01", "2026-11-10"]}
    assert metric(visits(window), events=frame) == {1: 1.0, 2: 1.0}


def test_aggregations_over_events():
    def agg(name, **extra):
        return metric({"agg": name, "source": "events", "field": "value", **extra}, events=EVENTS)

    assert metric({"agg": "count", "source": "events"}, events=EVENTS) == {1: 3.0, 2: 2.0, 3: 0.0}
    assert agg("sum") == {1: 11.0, 2: 4.0, 3: 0.0}
    assert agg("avg") == {1: 11 / 3, 2: 2.0, 3: None}
    assert agg("min") == {1: 2.0, 2: 1.0, 3: None}
    assert agg("max") == {1: 5.0, 2: 3.0, 3: None}
    assert agg("max", window={"last_days": 1}) == {1: 4.0, 2: None, 3: None}
    distinct = {"agg": "count_distinct", "source": "events", "field": "type"}
    assert metric(distinct, events=EVENTS) == {1: 2.0, 2: 2.0, 3: 0.0}


def test_aggregations_over_orders_with_property_predicates():
    frame = orders(
        (1, "2026-11-11 02:00", 100.0, "护肤品", {"campaign": "双11", "is_gift": True}),
        (1, "2026-06-18 02:00", 300.0, "注射", {"campaign": "618", "is_gift": False}),
        (2, "2026-11-12 02:00", 50.0, "护肤品", {"campaign": None, "is_gift": None}),
    )
    double11 = [{"field": "properties.campaign", "op": "in", "value": ["双11", "双十一"]}]
    assert metric({"agg": "sum", "source": "orders", "field": "amount", "where": double11}, orders=frame) == {
        1: 100.0,
        2: 0.0,
    }
    gift = [{"field": "properties.is_gift", "op": "eq", "value": True}]
    assert metric({"agg": "count", "source": "orders", "where": gift}, orders=frame) == {1: 1.0, 2: 0.0}
    tagged = [{"field": "properties.campaign", "op": "is_set", "value": True}]
    assert metric({"agg": "count", "source": "orders", "where": tagged}, orders=frame) == {1: 2.0, 2: 0.0}
    categories = {"agg": "count_distinct", "source": "orders", "field": "category"}
    assert metric(categories, orders=frame) == {1: 2.0, 2: 1.0}
    amount = [{"field": "amount", "op": "gte", "value": 100}]
    assert metric({"agg": "avg", "source": "orders", "field": "amount", "where": amount}, orders=frame) == {
        1: 200.0,
        2: None,
    }


def test_days_since_counts_beijing_days():
    frame = events(
        (1, "2026-11-27 16:30", "store_visit"),  # today in Beijing
        (1, "2026-11-27 15:30", "store_visit"),  # yesterday in Beijing
        (1, "2026-08-30 12:00", "store_visit"),
        (2, "2026-11-20 12:00", "treatment"),
    )
    where = [{"field": "type", "op": "eq", "value": "store_visit"}]
    last = {"days_since": "last", "source": "events", "where": where}
    first = {"days_since": "first", "source": "events", "where": where}
    assert metric(last, events=frame) == {1: 0.0, 2: None}
    assert metric(first, events=frame) == {1: 90.0, 2: None}
    assert metric({"days_since": "last", "source": "events"}, events=frame) == {1: 0.0, 2: 8.0}


def test_attribute_and_tag_metrics():
    assert metric({"attribute": "age"}, profiles=PROFILES) == {1: 25.0, 2: 35.0, 3: None, 4: 50.0}
    tags = [
        TagSpec("age", "number", {"type": "metric", "metric": {"attribute": "age"}}),
        TagSpec("age_copy", "number", {"type": "metric", "metric": {"tag": "age"}}),
    ]
    result = evaluate_tags(tags, PROFILES, None, None, AS_OF)
    assert result.values["age_copy"].equals(result.values["age"].rename("age_copy"))


# definition types --------------------------------------------------------------
def test_condition_tags_are_false_for_people_without_data():
    values, result = run(
        {"type": "condition", "condition": {"metric": visits(), "op": "gte", "value": 1}},
        events=EVENTS,
        population=pd.Index([1, 2, 3, 99]),
    )
    assert values == {1: True, 2: True, 3: False, 99: False}
    assert str(result.values["t"].dtype) == "boolean"


def test_metric_tags_fill_counts_and_sums_with_zero():
    values, result = run({"type": "metric", "metric": visits()}, "number", events=EVENTS, profiles=PROFILES)
    assert values == {1: 2.0, 2: 1.0, 3: 0.0, 4: 0.0}
    assert result.values["t"].dtype == "float64"
    assert result.values["t"].index.name == "oneid"


def test_bucket_min_is_inclusive_max_exclusive_and_no_bucket_is_na():
    definition = {
        "type": "bucket",
        "metric": {"attribute": "age"},
        "buckets": [{"value": "young", "max": 35}, {"value": "middle", "min": 35, "max": 50}],
    }
    values, result = run(definition, "enum", profiles=PROFILES)
    assert values == {1: "young", 2: "middle", 3: None, 4: None}
    assert isinstance(result.values["t"].dtype, pd.StringDtype)


def test_cases_first_match_wins_then_default():
    definition = {
        "type": "cases",
        "cases": [
            {"value": "senior", "when": {"attribute": "age", "op": "gte", "value": 30}},
            {"value": "woman", "when": {"attribute": "gender", "op": "eq", "value": "female"}},
        ],
        "default": "other",
    }
    assert run(definition, "enum", profiles=PROFILES)[0] == {1: "woman", 2: "senior", 3: "woman", 4: "senior"}
    definition.pop("default")
    definition["cases"][1]["when"]["value"] = "male"
    assert run(definition, "enum", profiles=PROFILES)[0] == {1: None, 2: "senior", 3: None, 4: "senior"}


def test_boolean_cases():
    definition = {
        "type": "cases",
        "cases": [{"value": True, "when": {"attribute": "age", "op": "gte", "value": 30}}],
        "default": False,
    }
    assert run(definition, "boolean", profiles=PROFILES)[0] == {1: False, 2: True, 3: False, 4: True}


PREFERENCE_EVENTS = events(
    (1, "2026-11-01 02:00", "consultation", 0, {"concern": "痘痘"}),
    (1, "2026-11-02 02:00", "consultation", 0, {"concern": "痘印"}),  # acne twice
    (1, "2026-11-03 02:00", "consultation", 0, {"concern": "色斑"}),
    (1, "2026-11-04 02:00", "consultation", 0, {"concern": "说不清"}),  # unmapped: ignored
    (1, "2026-11-05 02:00", "consultation", 0, {"concern": "说不清"}),
    (1, "2026-11-06 02:00", "consultation", 0, {"concern": "说不清"}),
    (2, "2026-11-01 02:00", "consultation", 0, {"concern": "色斑"}),
    (2, "2026-11-03 02:00", "consultation", 0, {"concern": "痘痘"}),  # tie: the latest wins
    (2, "2026-11-02 02:00", "consultation", 0, {"concern": "色斑"}),
    (2, "2026-11-04 02:00", "consultation", 0, {"concern": "痘痘"}),
    (3, "2026-11-04 02:00", "consultation", 0, {"concern": "说不清"}),  # only unmapped: NA
    (4, "2026-11-04 02:00", "store_visit", 0, {"concern": "痘痘"}),  # filtered out by where
    (5, "2025-01-04 02:00", "consultation", 0, {"concern": "痘痘"}),  # outside the window
)


def preference(pick, **extra):
    return {
        "type": "preference",
        "pick": pick,
        "source": "events",
        "field": "properties.concern",
        "where": [{"field": "type", "op": "eq", "value": "consultation"}],
        "window": {"last_days": 365},
        "map": {"痘痘": "acne", "痘印": "acne", "色斑": "pigmentation"},
        **extra,
    }


def test_preference_most_frequent_maps_first_and_breaks_ties_by_the_latest():
    values = run(preference("most_frequent"), "enum", events=PREFERENCE_EVENTS)[0]
    assert values == {1: "acne", 2: "acne", 3: None, 4: None, 5: None}


def test_preference_first_and_last_go_by_time():
    assert run(preference("first"), "enum", events=PREFERENCE_EVENTS)[0] == {
        1: "acne",
        2: "pigmentation",
        3: None,
        4: None,
        5: None,
    }
    assert run(preference("last"), "enum", events=PREFERENCE_EVENTS)[0] == {
        1: "pigmentation",  # the later unmapped values are ignored
        2: "acne",
        3: None,
        4: None,
        5: None,
    }


def test_preference_without_a_map_uses_the_raw_value():
    definition = preference("most_frequent")
    del definition["map"]
    assert run(definition, "enum", events=PREFERENCE_EVENTS)[0] == {
        1: "说不清",
        2: "痘痘",
        3: "说不清",
        4: None,
        5: None,
    }


def test_preference_over_orders():
    frame = orders(
        (1, "2026-11-01 02:00", 10.0, "护肤品"),
        (1, "2026-11-02 02:00", 10.0, "注射"),
        (1, "2026-11-03 02:00", 10.0, "注射"),
        (2, "2026-11-03 02:00", 10.0, "光电"),
    )
    definition = {"type": "preference", "pick": "most_frequent", "source": "orders", "field": "category"}
    assert run(definition, "enum", orders=frame)[0] == {1: "注射", 2: "光电"}


def test_attribute_definitions():
    level = {"type": "attribute", "attribute": "member_level", "map": {"金卡": "gold", "gold": "gold"}}
    assert run(level, "enum", profiles=PROFILES)[0] == {1: "gold", 2: "gold", 3: None, 4: None}
    wecom = {"type": "attribute", "attribute": "wecom_added", "map": {"yes": True, "no": False}}
    values, result = run(wecom, "boolean", profiles=PROFILES)
    assert values == {1: True, 2: False, 3: None, 4: True}
    assert str(result.values["t"].dtype) == "boolean"
    assert run({"type": "attribute", "attribute": "city"}, "enum", profiles=PROFILES)[0] == {
        1: "上海",
        2: "成都",
        3: None,
        4: "",
    }
    assert run({"type": "attribute", "attribute": "age"}, "number", profiles=PROFILES)[0] == {
        1: 25.0,
        2: 35.0,
        3: None,
        4: 50.0,
    }


def test_manual_tags_are_empty():
    values, result = run({"type": "manual"}, "enum", profiles=PROFILES)
    assert values == {}
    assert result.values["t"].empty


# composites --------------------------------------------------------------------
def test_composites_over_composites_run_after_what_they_read():
    tags = [
        TagSpec(
            "vip_woman",
            "boolean",
            {
                "type": "condition",
                "condition": {
                    "all": [
                        {"tag": "segment", "op": "in", "value": ["regular", "fan"]},
                        {"tag": "woman", "op": "eq", "value": True},
                    ]
                },
            },
        ),
        TagSpec(
            "segment",
            "enum",
            {
                "type": "cases",
                "cases": [
                    {"value": "fan", "when": {"tag": "visits", "op": "gte", "value": 2}},
                    {"value": "regular", "when": {"tag": "visits", "op": "gte", "value": 1}},
                ],
                "default": "none",
            },
            [{"code": "fan"}, {"code": "regular"}, {"code": "none"}],
        ),
        TagSpec("visits", "number", {"type": "metric", "metric": visits()}),
        TagSpec(
            "woman",
            "boolean",
            {"type": "condition", "condition": {"attribute": "gender", "op": "eq", "value": "female"}},
        ),
    ]
    result = evaluate_tags(tags, PROFILES, EVENTS, None, AS_OF)
    assert result.errors == {}
    assert result.order.index("visits") < result.order.index("segment") < result.order.index("vip_woman")
    assert result.order.index("woman") < result.order.index("vip_woman")
    assert result.values["segment"].to_dict() == {1: "fan", 2: "regular", 3: "none", 4: "none"}
    assert result.values["vip_woman"].to_dict() == {1: True, 2: False, 3: False, 4: False}


def test_known_values_let_composites_read_manual_tags():
    tags = [
        TagSpec("vip", "boolean", {"type": "manual"}),
        TagSpec(
            "vip_visitor",
            "boolean",
            {
                "type": "condition",
                "condition": {
                    "all": [
                        {"tag": "vip", "op": "eq", "value": True},
                        {"metric": visits(), "op": "gte", "value": 1},
                    ]
                },
            },
        ),
    ]
    known = {"vip": pd.Series([True, True], index=pd.Index([1, 3], name="oneid"), dtype="boolean")}
    result = evaluate_tags(tags, None, EVENTS, None, AS_OF, known=known)
    assert result.errors == {}
    assert result.values["vip"].empty
    assert result.values["vip_visitor"].to_dict() == {1: True, 2: False, 3: False}


# failures ------------------------------------------------------------------------
def test_a_failing_tag_does_not_stop_the_others():
    tags = [
        TagSpec(
            "bad_op",
            "boolean",
            {"type": "condition", "condition": {"attribute": "age", "op": "like", "value": 1}},
        ),
        TagSpec(
            "reads_bad",
            "boolean",
            {"type": "condition", "condition": {"tag": "bad_op", "op": "eq", "value": True}},
        ),
        TagSpec(
            "unknown",
            "boolean",
            {"type": "condition", "condition": {"tag": "nowhere", "op": "eq", "value": True}},
        ),
        TagSpec("fine", "number", {"type": "metric", "metric": {"attribute": "age"}}),
    ]
    result = evaluate_tags(tags, PROFILES, None, None, AS_OF)
    assert set(result.errors) == {"bad_op", "reads_bad", "unknown"}
    assert "condition.op" in result.errors["bad_op"]
    assert "bad_op" in result.errors["reads_bad"]
    assert "nowhere" in result.errors["unknown"]
    assert list(result.values) == ["fine"]
    assert result.values["fine"].notna().sum() == 3

    # Without validation the evaluator's own checks catch it.
    unchecked = evaluate_tags(tags, PROFILES, None, None, AS_OF, validate=False)
    assert "unknown operator 'like'" in unchecked.errors["bad_op"]
    assert "fine" in unchecked.values


def test_an_unexpected_exception_is_recorded(monkeypatch):
    from tagportal.engine import evaluate as module

    def explode(self, doc):
        raise RuntimeError("boom")

    monkeypatch.setattr(module._Evaluator, "def_bucket", explode)
    tags = [
        TagSpec(
            "b",
            "enum",
            {"type": "bucket", "metric": {"attribute": "age"}, "buckets": [{"value": "x", "min": 1}]},
        ),
        TagSpec("ok", "number", {"type": "metric", "metric": {"attribute": "age"}}),
    ]
    result = evaluate_tags(tags, PROFILES, None, None, AS_OF)
    assert result.errors == {"b": "RuntimeError: boom"}
    assert "ok" in result.values


def test_cycles_and_repeated_codes_are_errors():
    def reads(code, other):
        return TagSpec(
            code, "boolean", {"type": "condition", "condition": {"tag": other, "op": "eq", "value": True}}
        )

    tags = [reads("a", "b"), reads("b", "a"), reads("c", "a"), TagSpec("a", "number", {"type": "manual"})]
    ordered, errors = dependency_order(tags)
    assert [t.code for t in ordered] == ["b", "a", "c"]
    assert set(errors) == {"a", "b"}
    result = evaluate_tags(tags, None, None, None, AS_OF)
    assert set(result.errors) == {"a", "b", "c"}
    assert "cycle" in result.errors["b"]


# sharing -------------------------------------------------------------------------
def test_identical_aggregations_are_computed_once():
    where = [
        {"field": "type", "op": "eq", "value": "store_visit"},
        {"field": "channel", "op": "eq", "value": "store"},
    ]
    same = {"agg": "count", "source": "events", "where": where, "window": {"last_days": 90}}
    reordered = {"window": {"last_days": 90}, "where": where[::-1], "source": "events", "agg": "count"}
    assert metric_key(same) == metric_key(reordered)
    tags = [
        TagSpec("n", "number", {"type": "metric", "metric": same}),
        TagSpec(
            "some",
            "boolean",
            {"type": "condition", "condition": {"metric": reordered, "op": "gte", "value": 1}},
        ),
        TagSpec(
            "band",
            "enum",
            {
                "type": "bucket",
                "metric": same,
                "buckets": [{"value": "lo", "max": 2}, {"value": "hi", "min": 2}],
            },
        ),
        TagSpec("other", "number", {"type": "metric", "metric": {**same, "window": {"last_days": 30}}}),
    ]
    result = evaluate_tags(tags, None, EVENTS, None, AS_OF)
    assert result.errors == {}
    assert result.metrics_computed == 2
    assert result.metrics_reused == 2
    assert result.values["n"].to_dict() == {1: 2.0, 2: 1.0, 3: 0.0}
    assert result.values["band"].to_dict() == {1: "hi", 2: "lo", 3: "lo"}


# awkward inputs --------------------------------------------------------------------
def test_missing_columns_match_nothing():
    frame = EVENTS.drop(columns=["store", "properties.project", "properties.project_type"])
    project = [{"field": "properties.project", "op": "eq", "value": "热玛吉"}]
    assert metric({"agg": "count", "source": "events", "where": project}, events=frame) == {
        1: 0.0,
        2: 0.0,
        3: 0.0,
    }
    store = [{"field": "store", "op": "in", "value": ["S1"]}]
    assert metric({"agg": "count", "source": "events", "where": store}, events=frame) == {
        1: 0.0,
        2: 0.0,
        3: 0.0,
    }
    unset = [{"field": "store", "op": "is_set", "value": False}]
    assert metric({"agg": "count", "source": "events", "where": unset}, events=frame) == {
        1: 3.0,
        2: 2.0,
        3: 0.0,
    }
    distinct = {"agg": "count_distinct", "source": "events", "field": "properties.project"}
    assert metric(distinct, events=frame) == {1: 0.0, 2: 0.0, 3: 0.0}
    average = {"agg": "avg", "source": "events", "field": "properties.score"}
    assert metric(average, events=frame) == {1: None, 2: None, 3: None}
    pref = {"type": "preference", "pick": "last", "source": "events", "field": "properties.project"}
    assert run(pref, "enum", events=frame)[0] == {1: None, 2: None, 3: None}
    skin = {"type": "attribute", "attribute": "skin_type"}
    assert run(skin, "enum", profiles=PROFILES)[0] == {1: None, 2: None, 3: None, 4: None}


def test_a_frame_without_times_has_no_usable_rows():
    frame = EVENTS.drop(columns=["time"])
    assert metric({"agg": "count", "source": "events"}, events=frame) == {1: 0.0, 2: 0.0, 3: 0.0}


@pytest.mark.parametrize("empty", [None, pd.DataFrame(), events().iloc[0:0]])
def test_empty_frames(empty):
    tags = [
        TagSpec("n", "number", {"type": "metric", "metric": visits({"last_days": 7})}),
        TagSpec(
            "b", "boolean", {"type": "condition", "condition": {"metric": visits(), "op": "eq", "value": 0}}
        ),
        TagSpec(
            "p", "enum", {"type": "preference", "pick": "first", "source": "orders", "field": "category"}
        ),
        TagSpec("d", "number", {"type": "metric", "metric": {"days_since": "last", "source": "orders"}}),
    ]
    result = evaluate_tags(tags, empty, empty, empty, AS_OF)
    assert result.errors == {}
    assert all(s.empty for s in result.values.values())
    with_people = evaluate_tags(tags, PROFILES, empty, empty, AS_OF)
    assert with_people.errors == {}
    assert with_people.values["n"].tolist() == [0.0] * 4
    assert with_people.values["b"].tolist() == [True] * 4
    assert with_people.values["p"].isna().all()
    assert with_people.values["d"].isna().all()


def test_arrow_dtypes_and_other_input_shapes():
    frame = EVENTS.astype(
        {
            "oneid": pd.ArrowDtype(pa.int64()),
            "time": pd.ArrowDtype(pa.timestamp("us", tz="UTC")),
            "type": pd.ArrowDtype(pa.string()),
            "value": pd.ArrowDtype(pa.float64()),
            "properties.project": "string[pyarrow]",
        }
    )
    expected = {1: 4.0, 2: None, 3: None}
    node = {"agg": "max", "source": "events", "field": "value", "window": {"last_days": 1}}
    assert metric(node, events=frame) == expected
    naive = EVENTS.assign(time=EVENTS["time"].dt.tz_localize(None))  # naive times are UTC
    assert metric(node, events=naive) == expected
    texts = EVENTS.assign(time=EVENTS["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert metric(node, events=texts) == expected
    indexed = EVENTS.set_index("oneid")
    assert metric(node, events=indexed) == expected
    profiles = PROFILES.set_index("oneid").astype({"age": "Int64", "city": "string[pyarrow]"})
    assert condition({"attribute": "age", "op": "gte", "value": 35}, profiles=profiles) == {
        1: False,
        2: True,
        3: False,
        4: True,
    }


def test_population_limits_and_extends_the_people():
    values, result = run({"type": "metric", "metric": visits()}, "number", events=EVENTS, population=[2, 7])
    assert values == {2: 1.0, 7: 0.0}
    assert list(result.population) == [2, 7]


def test_a_properties_column_of_dicts_can_be_flattened():
    from tagportal.profiles.loaders import flatten_properties

    raw = events(
        (1, "2026-11-20 02:00", "treatment"),
        (2, "2026-11-21 02:00", "treatment"),
        (3, "2026-11-22 02:00", "treatment"),
    ).assign(properties=[{"project": "热玛吉", "n": 2}, None, {"project": "肉毒素"}])
    frame = flatten_properties(raw)
    assert {"properties.project", "properties.n"} <= set(frame.columns)
    assert "properties" not in frame.columns
    where = [{"field": "properties.project", "op": "in", "value": ["热玛吉", "超声炮"]}]
    assert metric({"agg": "count", "source": "events", "where": where}, events=frame) == {
        1: 1.0,
        2: 0.0,
        3: 0.0,
    }


def test_beijing_days():
    from tagportal.engine.frames import beijing_day, beijing_days, date_to_day

    assert beijing_day(dt.datetime(2026, 11, 27, 16, 30, tzinfo=dt.UTC)) == date_to_day("2026-11-28")
    assert beijing_day(dt.datetime(2026, 11, 27, 15, 59, tzinfo=dt.UTC)) == date_to_day("2026-11-27")
    times = pd.Series(pd.to_datetime(["2026-11-27 16:30", "2026-11-27 15:59"], utc=True))
    assert beijing_days(times).tolist() == [date_to_day("2026-11-28"), date_to_day("2026-11-27")]


def test_tags_may_be_plain_tuples():
    tag = (
        "adult",
        "boolean",
        {"type": "condition", "condition": {"attribute": "age", "op": "gte", "value": 18}},
        None,
    )
    result = evaluate_tags([tag], PROFILES, None, None, AS_OF)
    assert result["adult"].tolist() == [True, True, False, True]
    assert "adult" in result
