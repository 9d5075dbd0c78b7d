"""The rule document validator: valid documents pass, and every error names its node."""

import pytest

from tagportal.rules.definitions import (
    RuleError,
    RuleValidationError,
    renamed_tag_references,
    tag_references,
    validate_definition,
)

VISITS = {
    "agg": "count",
    "source": "events",
    "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
    "window": {"last_days": 90},
}


def errors_of(doc, **kwargs):
    with pytest.raises(RuleValidationError) as info:
        validate_definition(doc, **kwargs)
    return {e.path: e.message for e in info.value.errors}


@pytest.mark.parametrize(
    "doc,value_type",
    [
        ({"type": "condition", "condition": {"metric": VISITS, "op": "gte", "value": 3}}, "boolean"),
        ({"type": "metric", "metric": VISITS}, "number"),
        ({"type": "metric", "metric": {"days_since": "last", "source": "orders"}}, "number"),
        (
            {
                "type": "metric",
                "metric": {
                    "agg": "sum",
                    "source": "orders",
                    "field": "amount",
                    "window": {"between": ["2026-01-01", "2026-03-31"]},
                },
            },
            "number",
        ),
        (
            {
                "type": "condition",
                "condition": {
                    "all": [
                        {"attribute": "gender", "op": "eq", "value": "female"},
                        {"not": {"attribute": "age", "op": "between", "value": [18, 25]}},
                    ]
                },
            },
            "boolean",
        ),
        (
            {"type": "condition", "condition": {"any": [{"tag": "x_rfm", "op": "in", "value": ["a", "b"]}]}},
            "boolean",
        ),
        ({"type": "manual"}, "enum"),
        ({"type": "attribute", "attribute": "gender", "map": {"F": "female", "M": "male"}}, "enum"),
    ],
)
def test_valid_documents(doc, value_type):
    info = validate_definition(doc, value_type=value_type, value_codes=["female", "male"])
    assert info is not None


def test_reports_what_it_reads():
    doc = {
        "type": "condition",
        "condition": {
            "all": [
                {"metric": VISITS, "op": "gte", "value": 1},
                {"tag": "yimei_rfm_segment", "op": "eq", "value": "champion"},
                {
                    "metric": {"agg": "avg", "source": "orders", "field": "properties.project"},
                    "op": "gt",
                    "value": 1,
                },
            ]
        },
    }
    info = validate_definition(doc, value_type="boolean")
    assert info.tags == {"yimei_rfm_segment"}
    assert ("events", "type") in info.fields and ("orders", "properties.project") in info.fields


def test_bucket_and_cases_check_value_codes():
    doc = {
        "type": "bucket",
        "metric": VISITS,
        "buckets": [{"value": "low", "max": 2}, {"value": "huge", "min": 2}],
    }
    errors = errors_of(doc, value_type="enum", value_codes=["low", "high"])
    assert "buckets[1].value" in errors and "huge" in errors["buckets[1].value"]
    cases = {
        "type": "cases",
        "cases": [{"value": "vip", "when": {"attribute": "points", "op": "gt", "value": "x"}}],
    }
    errors = errors_of(cases, value_type="enum", value_codes=["vip"])
    assert errors == {"cases[0].when.value": "expected a number, got 'x'"}


@pytest.mark.parametrize(
    "doc,path,fragment",
    [
        ("not an object", "", "JSON object"),
        ({"type": "magic"}, "type", "unknown definition type"),
        ({"type": "metric"}, "", "missing 'metric'"),
        (
            {"type": "metric", "metric": {**VISITS, "window": {"last_days": 0}}},
            "metric.window.last_days",
            "at least 1",
        ),
        ({"type": "metric", "metric": {**VISITS, "agg": "median"}}, "metric.agg", "expected one of"),
        ({"type": "metric", "metric": {"agg": "sum", "source": "events"}}, "metric", "needs a 'field'"),
        (
            {"type": "metric", "metric": {"agg": "sum", "source": "orders", "field": "store"}},
            "metric.field",
            "numeric",
        ),
        (
            {"type": "metric", "metric": {"agg": "count", "source": "clicks"}},
            "metric.source",
            "expected one of",
        ),
        (
            {
                "type": "metric",
                "metric": {**VISITS, "where": [{"field": "type", "op": "eq", "value": "teleport"}]},
            },
            "metric.where[0].value",
            "unknown event type",
        ),
        (
            {
                "type": "metric",
                "metric": {**VISITS, "where": [{"field": "colour", "op": "eq", "value": "red"}]},
            },
            "metric.where[0].field",
            "unknown events field",
        ),
        (
            {
                "type": "metric",
                "metric": {**VISITS, "where": [{"field": "channel", "op": "eq", "value": "myspace"}]},
            },
            "metric.where[0].value",
            "unknown channel",
        ),
        (
            {"type": "metric", "metric": {**VISITS, "window": {"between": ["2026-03-01", "2026-01-01"]}}},
            "metric.window.between",
            "after the end",
        ),
        (
            {"type": "metric", "metric": {**VISITS, "window": {"between": ["2026-02-30", "2026-03-01"]}}},
            "metric.window.between[0]",
            "date",
        ),
        ({"type": "condition", "condition": {"all": []}}, "condition.all", "non-empty"),
        (
            {"type": "condition", "condition": {"attribute": "shoe_size", "op": "eq", "value": 1}},
            "condition.attribute",
            "unknown profile attribute",
        ),
        (
            {"type": "condition", "condition": {"attribute": "age", "op": "contains", "value": "1"}},
            "condition.op",
            "expected one of",
        ),
        (
            {"type": "condition", "condition": {"attribute": "age", "op": "between", "value": [30, 20]}},
            "condition.value",
            "greater than",
        ),
        (
            {"type": "condition", "condition": {"attribute": "city", "op": "in", "value": []}},
            "condition.value",
            "non-empty",
        ),
        ({"type": "condition", "condition": {"metric": VISITS, "op": "gte"}}, "condition", "missing 'value'"),
        (
            {"type": "condition", "condition": {"metric": VISITS, "op": "gte", "value": 1, "extra": 2}},
            "condition.extra",
            "unknown key",
        ),
        ({"type": "condition", "condition": {"weather": "sunny"}}, "condition", "needs one of"),
    ],
)
def test_errors_point_at_the_node(doc, path, fragment):
    errors = errors_of(doc, value_type=None)
    assert path in errors, errors
    assert fragment in errors[path]


def test_value_type_mismatch():
    errors = errors_of({"type": "metric", "metric": VISITS}, value_type="boolean")
    assert "cannot produce boolean" in errors["type"]


def test_unknown_tag_when_tags_are_known():
    doc = {"type": "condition", "condition": {"tag": "nope", "op": "eq", "value": "x"}}
    errors = errors_of(doc, value_type="boolean", known_tag={"yes": "enum"}.get)
    assert errors == {"condition.tag": "unknown tag 'nope'"}


def test_deep_nesting_is_refused_not_crashing():
    node = {"attribute": "age", "op": "gt", "value": 1}
    for _ in range(50):
        node = {"not": node}
    errors = errors_of({"type": "condition", "condition": node}, value_type="boolean")
    assert any("nested too deeply" in message for message in errors.values())


def test_all_errors_reported_at_once():
    doc = {
        "type": "condition",
        "condition": {
            "all": [
                {"attribute": "x", "op": "eq", "value": 1},
                {"metric": {**VISITS, "window": {"last_days": -1}}, "op": "gt", "value": 0},
            ]
        },
    }
    errors = errors_of(doc, value_type="boolean")
    assert set(errors) == {"condition.all[0].attribute", "condition.all[1].metric.window.last_days"}


def test_the_error_keys_problems_by_path_and_names_the_whole_document():
    error = RuleValidationError(
        [RuleError("", "too deep"), RuleError("metric", "missing"), RuleError("metric", "again")]
    )
    assert error.as_dict() == {"definition": ["too deep"], "metric": ["missing", "again"]}
    assert str(error) == "definition: too deep; metric: missing; metric: again"
    named = RuleValidationError([RuleError("", "too deep")], document="expression", label="表达式")
    assert named.as_dict() == {"expression": ["too deep"]} and str(named) == "表达式: too deep"
    with pytest.raises(RuleValidationError) as info:
        validate_definition([], value_type="number")
    assert list(info.value.as_dict()) == ["definition"]


def test_renamed_tag_references_copies_the_rule_with_the_new_codes():
    doc = {
        "type": "cases",
        "cases": [
            {
                "when": {"all": [{"tag": "old_a", "op": "eq", "value": True}, {"tag": "b", "op": "is_set"}]},
                "value": "x",
            },
            {"when": {"metric": {"tag": "old_a"}, "op": "gt", "value": 1}, "value": "y"},
        ],
    }
    renamed = renamed_tag_references(doc, {"old_a": "new_a"})
    assert tag_references(renamed) == {"new_a", "b"}
    assert tag_references(doc) == {"old_a", "b"}  # the rule given is left as it was
    assert renamed["cases"][0]["value"] == "x" and renamed_tag_references(doc, {}) is doc
