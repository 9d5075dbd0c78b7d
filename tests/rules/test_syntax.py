"""The rule text syntax: parsing to the JSON document, canonical formatting, round trips
and error positions. No database."""

import pytest

from tagportal.catalog.templates import available_packs, resolve_references
from tagportal.rules.definitions import validate_definition
from tagportal.rules.syntax import (
    RuleFormatError,
    RuleSyntaxError,
    format_condition,
    format_definition,
    parse_condition,
    parse_definition,
)

# ---------------------------------------------------------------------------
# Every definition of the template packs round-trips
# ---------------------------------------------------------------------------


def _template_tags():
    for key, pack in sorted(available_packs().items()):
        codes = {tag["name"]: f"demo_{tag['name']}" for tag in pack.tags}
        value_types = {codes[tag["name"]]: tag["value_type"] for tag in pack.tags}
        for tag in pack.tags:
            yield pytest.param(tag, codes, value_types, id=f"{key}-{tag['name']}")


TEMPLATE_TAGS = list(_template_tags())


def test_the_packs_have_definitions():
    assert {p.id.split("-")[0] for p in TEMPLATE_TAGS} == {
        "beauty",
        "food_beverage",
        "health_nutrition",
        "medical_aesthetics",
    }
    assert len(TEMPLATE_TAGS) > 100


@pytest.mark.parametrize("tag,codes,value_types", TEMPLATE_TAGS)
def test_template_definitions_round_trip(tag, codes, value_types):
    resolved = resolve_references(tag["definition"], codes)
    text = format_definition(resolved)
    parsed = parse_definition(text)
    assert parsed == resolved
    assert format_definition(parsed) == text
    # The parsed document is as valid as the template's.
    validate_definition(
        parsed,
        value_type=tag["value_type"],
        value_codes=[v["code"] for v in tag.get("values", [])] if tag["value_type"] == "enum" else None,
        known_tag={c: t for c, t in value_types.items() if c != codes[tag["name"]]}.get,
    )
    # Unresolved references ({"tag": "@name"}) are not names: they are written as texts.
    assert parse_definition(format_definition(tag["definition"])) == tag["definition"]


# ---------------------------------------------------------------------------
# Each construct, with its JSON
# ---------------------------------------------------------------------------

VISITS = {
    "agg": "count",
    "source": "events",
    "where": [
        {"field": "type", "op": "eq", "value": "store_visit"},
        {"field": "channel", "op": "in", "value": ["store", "wecom"]},
    ],
    "window": {"last_days": 90},
}


def attr(name, op, value=None):
    node = {"attribute": name, "op": op}
    if op != "is_set" or value is not None:
        node["value"] = value
    return node


# (canonical text, condition)
CONDITIONS = [
    ('gender = "female"', attr("gender", "eq", "female")),
    ('gender != "male"', attr("gender", "ne", "male")),
    ("age > 17", attr("age", "gt", 17)),
    ("age >= 18", attr("age", "gte", 18)),
    ("age < 60", attr("age", "lt", 60)),
    ("age <= -1.5", attr("age", "lte", -1.5)),
    ("points >= 1e+16", attr("points", "gte", 1e16)),
    ("age between 18 and 25", attr("age", "between", [18, 25])),
    ('city in ("深圳", "广州")', attr("city", "in", ["深圳", "广州"])),
    ('city not in ("北京")', attr("city", "not_in", ["北京"])),
    ("age in (18, 20.5, true)", attr("age", "in", [18, 20.5, True])),
    ("member_level is set", attr("member_level", "is_set", True)),
    ("member_level is not set", attr("member_level", "is_set", False)),
    ('city contains "州"', attr("city", "contains", "州")),
    ("wecom_added = true", attr("wecom_added", "eq", True)),
    ("wecom_added != false", attr("wecom_added", "ne", False)),
    (
        'tag(yimei_rfm_rfm_segment) in ("champion", "loyal")',
        {"tag": "yimei_rfm_rfm_segment", "op": "in", "value": ["champion", "loyal"]},
    ),
    ('tag("@skin_type") = "oily"', {"tag": "@skin_type", "op": "eq", "value": "oily"}),
    (
        'count(events where type = "store_visit" and channel in ("store", "wecom") during last 90 days) >= 3',
        {"metric": VISITS, "op": "gte", "value": 3},
    ),
    (
        "count(orders during last 1 day) = 0",
        {"metric": {"agg": "count", "source": "orders", "window": {"last_days": 1}}, "op": "eq", "value": 0},
    ),
    (
        'sum(orders.amount where category = "光电" during last 365 days) >= 10000',
        {
            "metric": {
                "agg": "sum",
                "source": "orders",
                "field": "amount",
                "where": [{"field": "category", "op": "eq", "value": "光电"}],
                "window": {"last_days": 365},
            },
            "op": "gte",
            "value": 10000,
        },
    ),
    (
        "avg(orders.amount) < 99.5",
        {"metric": {"agg": "avg", "source": "orders", "field": "amount"}, "op": "lt", "value": 99.5},
    ),
    (
        "min(orders.discount) > 0 and max(events.value) <= 5",
        {
            "all": [
                {"metric": {"agg": "min", "source": "orders", "field": "discount"}, "op": "gt", "value": 0},
                {"metric": {"agg": "max", "source": "events", "field": "value"}, "op": "lte", "value": 5},
            ]
        },
    ),
    (
        "count_distinct(orders.sku during 2026-01-01 to 2026-03-31) >= 2",
        {
            "metric": {
                "agg": "count_distinct",
                "source": "orders",
                "field": "sku",
                "window": {"between": ["2026-01-01", "2026-03-31"]},
            },
            "op": "gte",
            "value": 2,
        },
    ),
    (
        'days_since(last events where type = "purchase") between 60 and 90',
        {
            "metric": {
                "days_since": "last",
                "source": "events",
                "where": [{"field": "type", "op": "eq", "value": "purchase"}],
            },
            "op": "between",
            "value": [60, 90],
        },
    ),
    (
        "days_since(first orders) > 365",
        {"metric": {"days_since": "first", "source": "orders"}, "op": "gt", "value": 365},
    ),
    (
        'count(events where properties.project = "光子嫩肤") >= 1',
        {
            "metric": {
                "agg": "count",
                "source": "events",
                "where": [{"field": "properties.project", "op": "eq", "value": "光子嫩肤"}],
            },
            "op": "gte",
            "value": 1,
        },
    ),
    (
        'count(events where properties."项目 名称" is set and value between 1 and 5) >= 1',
        {
            "metric": {
                "agg": "count",
                "source": "events",
                "where": [
                    {"field": "properties.项目 名称", "op": "is_set", "value": True},
                    {"field": "value", "op": "between", "value": [1, 5]},
                ],
            },
            "op": "gte",
            "value": 1,
        },
    ),
    ("metric(age) >= 30", {"metric": {"attribute": "age"}, "op": "gte", "value": 30}),
    ("metric(tag(x_spend)) >= 3", {"metric": {"tag": "x_spend"}, "op": "gte", "value": 3}),
    ("not age between 18 and 25", {"not": attr("age", "between", [18, 25])}),
    ("not not age > 1", {"not": {"not": attr("age", "gt", 1)}}),
    ("all(age > 1)", {"all": [attr("age", "gt", 1)]}),
    ("any(age > 1)", {"any": [attr("age", "gt", 1)]}),
    ("all()", {"all": []}),
    ("any()", {"any": []}),
]


@pytest.mark.parametrize("text,cond", CONDITIONS, ids=[t for t, _c in CONDITIONS])
def test_conditions(text, cond):
    assert parse_condition(text) == cond
    assert format_condition(cond) == text
    assert parse_definition(f"condition: {text}") == {"type": "condition", "condition": cond}


def test_the_design_example():
    text = (
        'count(events where type = "store_visit" and channel in ("store", "wecom") during last 90 days)'
        " >= 3 and not age between 18 and 25"
    )
    assert parse_condition(text) == {
        "all": [
            {"metric": VISITS, "op": "gte", "value": 3},
            {"not": {"attribute": "age", "op": "between", "value": [18, 25]}},
        ]
    }


@pytest.mark.parametrize(
    "text,canonical",
    [
        ('@yimei_rfm_rfm_segment = "x"', 'tag(yimei_rfm_rfm_segment) = "x"'),
        ('@"@skin_type" = "oily"', 'tag("@skin_type") = "oily"'),
        ('tag("plain_code") = 1', "tag(plain_code) = 1"),
        ("age == 3", "age = 3"),
        ("age in (1, 2,)", "age in (1, 2)"),
        ("all(age > 1, age < 9,)", "age > 1 and age < 9"),
        ("metric(count(orders)) > 1", "count(orders) > 1"),
        (
            "count(orders during between 2026-01-01 and 2026-03-31) > 1",
            "count(orders during 2026-01-01 to 2026-03-31) > 1",
        ),
        (
            'count(orders during "2026-1-1" to "2026-03-31") > 1',
            'count(orders during "2026-1-1" to 2026-03-31) > 1',
        ),
        ("count(orders during last 1 days) > 1", "count(orders during last 1 day) > 1"),
        ("count(orders during last 7 day) > 1", "count(orders during last 7 days) > 1"),
        ("(age > 1)", "age > 1"),
        ("((age > 1))", "age > 1"),
        ("  age\n>\t1  # a comment\n", "age > 1"),
        ("age\u3000>\u30001", "age > 1"),
        ('age>1 and(gender="f")', 'age > 1 and gender = "f"'),
        ("age >= 1.50", "age >= 1.5"),
        ("age >= 007", "age >= 7"),
    ],
)
def test_other_spellings_have_one_canonical_form(text, canonical):
    assert format_condition(parse_condition(text)) == canonical
    assert parse_condition(canonical) == parse_condition(text)


# ---------------------------------------------------------------------------
# Precedence and parentheses
# ---------------------------------------------------------------------------

A, B, C, D = (attr("age", "gt", n) for n in range(1, 5))


@pytest.mark.parametrize(
    "text,cond",
    [
        ("age > 1 and age > 2 and age > 3", {"all": [A, B, C]}),
        ("age > 1 or age > 2 or age > 3", {"any": [A, B, C]}),
        ("age > 1 or age > 2 and age > 3", {"any": [A, {"all": [B, C]}]}),
        ("age > 1 and age > 2 or age > 3", {"any": [{"all": [A, B]}, C]}),
        ("(age > 1 or age > 2) and age > 3", {"all": [{"any": [A, B]}, C]}),
        ("not age > 1 and age > 2", {"all": [{"not": A}, B]}),
        ("not age > 1 or age > 2", {"any": [{"not": A}, B]}),
        ("not (age > 1 and age > 2)", {"not": {"all": [A, B]}}),
        ("not (age > 1 or age > 2)", {"not": {"any": [A, B]}}),
        # Parentheses keep their nesting: no flattening across them.
        ("(age > 1 and age > 2) and age > 3", {"all": [{"all": [A, B]}, C]}),
        ("age > 1 and (age > 2 and age > 3)", {"all": [A, {"all": [B, C]}]}),
        ("(age > 1 or age > 2) or age > 3", {"any": [{"any": [A, B]}, C]}),
        ("age > 1 and (age > 2 or age > 3) and age > 4", {"all": [A, {"any": [B, C]}, D]}),
        ("all(age > 1 or age > 2)", {"all": [{"any": [A, B]}]}),
        ("any(age > 1 and age > 2, not age > 3)", {"any": [{"all": [A, B]}, {"not": C}]}),
        # between's "and" is not the boolean "and".
        ("age between 1 and 2 and age > 3", {"all": [attr("age", "between", [1, 2]), C]}),
    ],
)
def test_precedence(text, cond):
    assert parse_condition(text) == cond
    assert parse_condition(format_condition(cond)) == cond


@pytest.mark.parametrize(
    "cond,text",
    [
        ({"any": [A, {"all": [B, C]}]}, "age > 1 or (age > 2 and age > 3)"),
        ({"all": [{"any": [A, B]}, C]}, "(age > 1 or age > 2) and age > 3"),
        ({"all": [{"all": [A, B]}, C]}, "(age > 1 and age > 2) and age > 3"),
        ({"not": {"all": [A, B]}}, "not (age > 1 and age > 2)"),
        ({"not": {"all": [A]}}, "not all(age > 1)"),
        ({"all": [{"any": [A]}, {"not": {"not": B}}]}, "any(age > 1) and not not age > 2"),
    ],
)
def test_formatting_adds_only_needed_parentheses(cond, text):
    assert format_condition(cond) == text
    assert parse_condition(text) == cond


def test_deep_nesting_round_trips():
    cond = A
    for i in range(30):
        cond = {"all": [cond, B]} if i % 3 == 0 else {"any": [C, cond]} if i % 3 == 1 else {"not": cond}
    assert parse_condition(format_condition(cond)) == cond


# ---------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------

DEFINITIONS = [
    ("condition: age >= 18", {"type": "condition", "condition": attr("age", "gte", 18)}),
    ("metric: age", {"type": "metric", "metric": {"attribute": "age"}}),
    ("metric: tag(x_spend)", {"type": "metric", "metric": {"tag": "x_spend"}}),
    (
        "metric: avg(orders.amount)",
        {"type": "metric", "metric": {"agg": "avg", "source": "orders", "field": "amount"}},
    ),
    (
        'metric: days_since(last events where type = "purchase")',
        {
            "type": "metric",
            "metric": {
                "days_since": "last",
                "source": "events",
                "where": [{"field": "type", "op": "eq", "value": "purchase"}],
            },
        },
    ),
    (
        'bucket count(events where type = "store_visit" during last 365 days):\n'
        '  "none" below 1\n  "some" from 1 below 3\n  "many" from 3',
        {
            "type": "bucket",
            "metric": {
                "agg": "count",
                "source": "events",
                "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
                "window": {"last_days": 365},
            },
            "buckets": [
                {"value": "none", "max": 1},
                {"value": "some", "min": 1, "max": 3},
                {"value": "many", "min": 3},
            ],
        },
    ),
    (
        'bucket tag(x_aov):\n  "low" from -10.5 below 0.5\n  "odd"',
        {
            "type": "bucket",
            "metric": {"tag": "x_aov"},
            "buckets": [{"value": "low", "min": -10.5, "max": 0.5}, {"value": "odd"}],
        },
    ),
    (
        'cases:\n  when age < 18 then "minor"\n  when age >= 60 or points > 1000 then "vip"\n  else "adult"',
        {
            "type": "cases",
            "cases": [
                {"value": "minor", "when": attr("age", "lt", 18)},
                {"value": "vip", "when": {"any": [attr("age", "gte", 60), attr("points", "gt", 1000)]}},
            ],
            "default": "adult",
        },
    ),
    (
        "cases:\n  when age >= 18 then true",
        {"type": "cases", "cases": [{"value": True, "when": attr("age", "gte", 18)}]},
    ),
    ("cases:\n  else false", {"type": "cases", "cases": [], "default": False}),
    (
        'preference: most_frequent(events.properties.category where type = "product_view" during last 90 days)'
        ' map {"护肤": "skincare", "彩妆": "makeup"}',
        {
            "type": "preference",
            "pick": "most_frequent",
            "source": "events",
            "field": "properties.category",
            "where": [{"field": "type", "op": "eq", "value": "product_view"}],
            "window": {"last_days": 90},
            "map": {"护肤": "skincare", "彩妆": "makeup"},
        },
    ),
    (
        "preference: last(orders.sku during 2026-01-01 to 2026-03-31)",
        {
            "type": "preference",
            "pick": "last",
            "source": "orders",
            "field": "sku",
            "window": {"between": ["2026-01-01", "2026-03-31"]},
        },
    ),
    (
        "preference: first(orders.channel)",
        {"type": "preference", "pick": "first", "source": "orders", "field": "channel"},
    ),
    (
        'attribute: gender map {"F": "female", "M": "male"}',
        {"type": "attribute", "attribute": "gender", "map": {"F": "female", "M": "male"}},
    ),
    (
        'attribute: wecom_added map {"yes": true, "no": false, "1": 1}',
        {"type": "attribute", "attribute": "wecom_added", "map": {"yes": True, "no": False, "1": 1}},
    ),
    ("attribute: age", {"type": "attribute", "attribute": "age"}),
    ("attribute: city map {}", {"type": "attribute", "attribute": "city", "map": {}}),
    ("manual", {"type": "manual"}),
    ('description "VIP 客户，手工维护"\nmanual', {"type": "manual", "description": "VIP 客户，手工维护"}),
    (
        'description "到店 \\"3\\" 次"\ncondition: age > 1',
        {"type": "condition", "description": '到店 "3" 次', "condition": attr("age", "gt", 1)},
    ),
]


@pytest.mark.parametrize("text,doc", DEFINITIONS, ids=[t.split("\n")[0][:40] for t, _d in DEFINITIONS])
def test_definitions(text, doc):
    assert parse_definition(text) == doc
    assert format_definition(doc) == text


def test_one_line_forms_with_semicolons():
    assert parse_definition(
        'cases: when age < 18 then "minor"; when age < 60 then "adult"; else "senior";'
    ) == {
        "type": "cases",
        "cases": [
            {"value": "minor", "when": attr("age", "lt", 18)},
            {"value": "adult", "when": attr("age", "lt", 60)},
        ],
        "default": "senior",
    }
    assert parse_definition('bucket age: "young" below 30; "old" from 30') == {
        "type": "bucket",
        "metric": {"attribute": "age"},
        "buckets": [{"value": "young", "max": 30}, {"value": "old", "min": 30}],
    }
    assert parse_definition('bucket @x_aov: "a" below 1 "b" from 1')["metric"] == {"tag": "x_aov"}


def test_long_maps_are_written_one_entry_a_line():
    doc = {"type": "attribute", "attribute": "city", "map": {f"城市{i}": f"city_{i}" for i in range(20)}}
    text = format_definition(doc)
    assert text.startswith('attribute: city map {\n  "城市0": "city_0",\n')
    assert text.endswith('  "城市19": "city_19",\n}')
    assert parse_definition(text) == doc


@pytest.mark.parametrize(
    "text,value_type,codes",
    [
        (
            'condition: count(events where type = "store_visit" and channel in ("store", "wecom")'
            " during last 90 days) >= 3 and not age between 18 and 25",
            "boolean",
            None,
        ),
        ('metric: sum(orders.amount where category = "光电" during last 365 days)', "number", None),
        ("metric: count_distinct(orders.sku during between 2026-01-01 and 2026-03-31)", "number", None),
        (
            'bucket days_since(last events where type = "purchase"):\n  "a" below 30\n  "b" from 30',
            "enum",
            "ab",
        ),
        (
            'preference: most_frequent(events.properties.category where type = "product_view"'
            ' during last 90 days) map {"护肤": "skincare"}',
            "enum",
            ["skincare"],
        ),
        ('cases:\n  when city in ("深圳", "广州") then "south"\n  else "other"', "enum", ["south", "other"]),
        ('attribute: gender map {"F": "female"}', "enum", ["female"]),
        ("manual", "enum", None),
    ],
)
def test_examples_are_valid_documents(text, value_type, codes):
    validate_definition(parse_definition(text), value_type=value_type, value_codes=codes)


# ---------------------------------------------------------------------------
# Texts: Chinese and escaping
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "深圳",
        "光子嫩肤（进阶）",
        'say "hi"',
        "back\\slash",
        'mixed \\"quote',
        "line\nbreak\ttab\r\x01",
        "emoji 😀 and \u2028 separator",
        "#not a comment",
        "",
        "/slash",
    ],
)
def test_texts_round_trip(value):
    cond = {"attribute": "city", "op": "eq", "value": value}
    text = format_condition(cond)
    assert "\n" not in text
    assert parse_condition(text) == cond
    doc = {"type": "attribute", "attribute": "city", "map": {value: "x"}, "description": value}
    assert parse_definition(format_definition(doc)) == doc


def test_chinese_is_written_as_is_and_escapes_are_json():
    assert format_condition(attr("city", "eq", '深"圳')) == 'city = "深\\"圳"'
    assert parse_condition('city = "\\u6df1\\u5733"') == attr("city", "eq", "深圳")
    assert parse_condition('city = "a\\/b\\n"') == attr("city", "eq", "a/b\n")


def test_names_spelled_like_keywords_are_written_as_texts():
    cond = {
        "metric": {
            "agg": "count",
            "source": "events",
            "where": [
                {"field": "properties.first", "op": "eq", "value": "x"},
                {"field": "value", "op": "gt", "value": 0},
                {"field": "set", "op": "is_set", "value": True},
                {"field": "properties.a.b", "op": "eq", "value": 1},
            ],
        },
        "op": "gte",
        "value": 1,
    }
    text = format_condition(cond)
    assert text == (
        'count(events where properties."first" = "x" and value > 0 and "set" is set and properties.a.b = 1) >= 1'
    )
    assert parse_condition(text) == cond
    assert format_condition({"tag": "count", "op": "eq", "value": 1}) == 'tag("count") = 1'
    assert parse_condition('tag("count") = 1') == {"tag": "count", "op": "eq", "value": 1}
    # Reserved everywhere, so a misplaced keyword is reported as such.
    with pytest.raises(RuleSyntaxError) as info:
        parse_condition("count(events where properties.first = 1) > 1")
    assert info.value.message == "unexpected 'first' after '.'; expected a name or a \"text\""
    with pytest.raises(RuleFormatError):
        format_definition({"type": "attribute", "attribute": "manual"})


# ---------------------------------------------------------------------------
# Normalisation and what cannot be written
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc,canonical",
    [
        (
            {"type": "condition", "condition": {"attribute": "city", "op": "is_set"}},
            {"type": "condition", "condition": {"attribute": "city", "op": "is_set", "value": True}},
        ),
        (
            {"type": "metric", "metric": {"agg": "count", "source": "orders", "where": []}},
            {"type": "metric", "metric": {"agg": "count", "source": "orders"}},
        ),
        (
            {"type": "cases", "cases": [{"value": "a", "when": A}], "default": None},
            {"type": "cases", "cases": [{"value": "a", "when": A}]},
        ),
        (
            {
                "type": "bucket",
                "metric": {"attribute": "age"},
                "buckets": [{"value": "a", "min": None, "max": 3}],
            },
            {"type": "bucket", "metric": {"attribute": "age"}, "buckets": [{"value": "a", "max": 3}]},
        ),
        (
            {"type": "attribute", "attribute": "age", "map": None},
            {"type": "attribute", "attribute": "age"},
        ),
    ],
)
def test_defaults_are_left_out(doc, canonical):
    validate_definition(doc)
    assert parse_definition(format_definition(doc)) == canonical


@pytest.mark.parametrize(
    "doc",
    [
        None,
        {"type": "unknown"},
        {"condition": A},
        {"type": "condition"},
        {"type": "condition", "condition": A, "extra": 1},
        {"type": "condition", "condition": {"attribute": "age", "op": "like", "value": 1}},
        {"type": "condition", "condition": {"attribute": "age", "op": ["eq"], "value": 1}},
        {"type": "condition", "condition": {"attribute": "age", "op": "eq", "value": [1]}},
        {"type": "condition", "condition": {"attribute": "age", "op": "eq", "value": None}},
        {"type": "condition", "condition": {"attribute": "age", "op": "eq"}},
        {"type": "condition", "condition": {"attribute": "age", "op": "gt", "value": "3"}},
        {"type": "condition", "condition": {"attribute": "age", "op": "gt", "value": True}},
        {"type": "condition", "condition": {"attribute": "age", "op": "gt", "value": float("nan")}},
        {"type": "condition", "condition": {"attribute": "age", "op": "between", "value": [1]}},
        {"type": "condition", "condition": {"attribute": "age", "op": "is_set", "value": "yes"}},
        {"type": "condition", "condition": {"attribute": "城市", "op": "eq", "value": 1}},
        {"type": "condition", "condition": {"attribute": "count", "op": "eq", "value": 1}},
        {"type": "condition", "condition": {"all": A}},
        {"type": "condition", "condition": {"all": [A], "any": [B]}},
        {"type": "condition", "condition": {}},
        {"type": "metric", "metric": {"agg": "median", "source": "orders"}},
        {"type": "metric", "metric": {"agg": "count"}},
        {"type": "metric", "metric": {"days_since": "middle", "source": "orders"}},
        {
            "type": "metric",
            "metric": {"agg": "count", "source": "orders", "window": {"last_days": 1, "between": []}},
        },
        {
            "type": "metric",
            "metric": {"agg": "count", "source": "orders", "window": {"between": ["2026-01-01"]}},
        },
        {"type": "metric", "metric": {"agg": "count", "source": "orders", "where": {"field": "sku"}}},
        {"type": "metric", "metric": {"value": 3}},
        {"type": "preference", "pick": "median", "source": "orders", "field": "sku"},
        {"type": "attribute", "attribute": "city", "map": ["a"]},
        {"type": "manual", "description": 3},
    ],
)
def test_unwritable_documents_raise(doc):
    with pytest.raises(RuleFormatError):
        format_definition(doc)


# ---------------------------------------------------------------------------
# Errors: line, column and what was expected
# ---------------------------------------------------------------------------

CONDITION_ERRORS = [
    # missing operands
    ("age >= ", 1, 7, "expected a number after '>='"),
    ("age >=", 1, 7, "expected a number after '>='"),
    ("age > 3 and", 1, 12, "expected a condition after 'and'"),
    ("age > 3 or ", 1, 11, "expected a condition after 'or'"),
    ("not", 1, 4, "expected a condition after 'not'"),
    (
        "age",
        1,
        4,
        "expected a comparison (=, !=, >, >=, <, <=, between, in, not in, is set, contains) after 'age'",
    ),
    ("age between 1 and", 1, 18, "expected a number after 'and'"),
    ("age between 1 or 2", 1, 15, "unexpected 'or' after '1'; expected 'and'"),
    ("city in ()  and", 1, 16, "expected a condition after 'and'"),
    ("city in", 1, 8, "expected '(' after 'in'"),
    ("city is", 1, 8, "expected 'not' or 'set' after 'is'"),
    ("and age > 3", 1, 1, "unexpected 'and'; expected a condition"),
    ("", 1, 1, "the text is empty; expected a condition"),
    ("   # only a comment", 1, 1, "the text is empty; expected a condition"),
    ('age > "3"', 1, 7, "unexpected \"3\" after '>'; expected a number"),
    ("city contains 3", 1, 15, "unexpected '3' after 'contains'; expected a \"text\""),
    # unknown keywords
    (
        "age > 3 nad age < 9",
        1,
        9,
        "unknown keyword 'nad' after '3'; expected 'and', 'or' or the end of the text",
    ),
    (
        "gender = female",
        1,
        10,
        "unknown keyword 'female' after '='; expected a value (a \"text\", a number, true or false);"
        ' texts are written in double quotes: "female"',
    ),
    (
        "count(events durng last 3 days) > 1",
        1,
        14,
        "unknown keyword 'durng' after 'events'; expected ')', '.', 'during' or 'where'",
    ),
    (
        "count(events during past 3 days) > 1",
        1,
        21,
        "unknown keyword 'past' after 'during'; expected 'between', 'last', a date like 2026-01-31 or a \"text\"",
    ),
    (
        "count(events during last 3 weeks) > 1",
        1,
        28,
        "unknown keyword 'weeks' after '3'; expected 'day' or 'days'",
    ),
    (
        "days_since(latest orders) > 1",
        1,
        12,
        "unknown keyword 'latest' after '('; expected 'first' or 'last'",
    ),
    ("age > 3 when", 1, 9, "unexpected 'when' after '3'; expected 'and', 'or' or the end of the text"),
    # unbalanced parentheses
    (
        "(age > 3 and age < 9",
        1,
        1,
        "unbalanced parenthesis: this '(' is never closed; expected ')', 'and' or 'or'",
    ),
    (
        "((age > 3) and age < 9",
        1,
        1,
        "unbalanced parenthesis: this '(' is never closed; expected ')', 'and' or 'or'",
    ),
    (
        'count(events where type = "x"',
        1,
        6,
        "unbalanced parenthesis: this '(' is never closed; expected ')', 'and' or 'during'",
    ),
    ("age > 3)", 1, 8, "unbalanced parenthesis: this ')' has no matching '('"),
    ("(age > 3))", 1, 10, "unbalanced parenthesis: this ')' has no matching '('"),
    ("()", 1, 2, "unexpected ')' after '('; expected a condition"),
    # texts
    ('city = "深圳', 1, 8, 'unterminated text: the closing " is missing'),
    ('city = "深圳\n" and age > 1', 1, 8, 'unterminated text: the closing " is missing'),
    ('city = "a\\qb"', 1, 10, "invalid escape '\\q' in a text; use \\\\ for a backslash"),
    ('city = "a\\u12"', 1, 10, "invalid escape '\\u' in a text; use \\\\ for a backslash"),
    ('city = "a\tb"', 1, 10, "a text cannot contain a control character such as a tab; use \\t or \\n"),
    ("city = '深圳'", 1, 8, 'texts are written in double quotes ("…"), not single quotes'),
    # characters
    (
        '城市 = "深圳"',
        1,
        1,
        "unexpected character '城'; names are ASCII letters, digits and _, "
        'and Chinese text goes in double quotes ("…")',
    ),
    ('city in （"深圳")', 1, 9, "full-width '（' is not allowed here; use '('"),
    ("city = “深圳”", 1, 8, "full-width '“' is not allowed here; use '\"'"),
    ("age > 1 && age < 3", 1, 9, "unexpected character '&'; write 'and' / 'or'"),
    (
        "age ~ 3",
        1,
        5,
        "unexpected character '~'; expected a comparison (=, !=, >, >=, <, <=, between, in, not in, "
        "is set, contains)",
    ),
]


@pytest.mark.parametrize("text,line,column,message", CONDITION_ERRORS, ids=[e[0] for e in CONDITION_ERRORS])
def test_condition_errors(text, line, column, message):
    with pytest.raises(RuleSyntaxError) as info:
        parse_condition(text)
    error = info.value
    assert (error.line, error.column, error.message) == (line, column, message)
    assert str(error) == f"line {line}, column {column}: {message}"


DEFINITION_ERRORS = [
    (
        "conditon: age > 1",
        1,
        1,
        "unknown keyword 'conditon'; expected a definition (condition:, metric:, bucket, cases:, preference:,"
        " attribute: or manual) or 'description'",
    ),
    ("condition age > 1", 1, 11, "unknown keyword 'age' after 'condition'; expected ':'"),
    ("condition:", 1, 11, "expected a condition after ':'"),
    ("metric: age > 1", 1, 13, "unexpected '>' after 'age'; expected the end of the text"),
    (
        "metric: count(orders",
        1,
        14,
        "unbalanced parenthesis: this '(' is never closed; expected ')', '.', 'during' or 'where'",
    ),
    (
        'cases:\n  when age > 1\n  else "x"',
        3,
        3,
        "unexpected 'else' after '1'; expected 'and', 'or' or 'then'",
    ),
    (
        "cases:\n  when age > 1 then\n",
        2,
        20,
        "expected a value (a \"text\", a number, true or false) after 'then'",
    ),
    (
        'cases:\n  when age > 1 then "a"\n  else',
        3,
        7,
        "expected a value (a \"text\", a number, true or false) after 'else'",
    ),
    ('bucket age:\n  "a" from x', 2, 12, "unknown keyword 'x' after 'from'; expected a number"),
    ('attribute: city map {"a": "b", "a": "c"}', 1, 32, 'the key "a" appears twice in the map'),
    (
        'attribute: city map {a: "b"}',
        1,
        22,
        "unknown keyword 'a' after '{'; expected '}' or a \"text\"; "
        'texts are written in double quotes: "a"',
    ),
    ('attribute: city map {"a": "b"', 1, 30, "expected ',' or '}' after \"b\""),
    ("manual manual", 1, 8, "unexpected 'manual' after 'manual'; expected the end of the text"),
    (
        'description "x"',
        1,
        16,
        "expected a definition (condition:, metric:, bucket, cases:, preference:, attribute:"
        ' or manual) after "x"',
    ),
    (
        "preference: most_frequent(orders.category during last 0) ",
        1,
        56,
        "unexpected ')' after '0'; expected 'day' or 'days'",
    ),
]


@pytest.mark.parametrize("text,line,column,message", DEFINITION_ERRORS, ids=[e[0] for e in DEFINITION_ERRORS])
def test_definition_errors(text, line, column, message):
    with pytest.raises(RuleSyntaxError) as info:
        parse_definition(text)
    assert (info.value.line, info.value.column, info.value.message) == (line, column, message)


def test_errors_are_value_errors_with_syntax_error_names():
    with pytest.raises(ValueError) as info:
        parse_definition("condition:\n  age >= 3 and\n  city =")
    error = info.value
    assert isinstance(error, RuleSyntaxError)
    assert (error.lineno, error.offset) == (3, 9)
    assert error.expected == ('a value (a "text", a number, true or false)',)
    assert str(error) == (
        "line 3, column 9: expected a value (a \"text\", a number, true or false) after '='"
    )


def test_a_definition_is_not_a_condition():
    with pytest.raises(RuleSyntaxError):
        parse_condition("condition: age > 1")
    with pytest.raises(RuleSyntaxError):
        parse_definition("age > 1")
    with pytest.raises(TypeError):
        parse_condition(None)
