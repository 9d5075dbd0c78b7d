"""Audience expressions: the JSON and text forms, validation naming the unknown tag or
value, and evaluation on bitmaps against members known by construction."""

from __future__ import annotations

import pytest
from django.utils import timezone, translation

from tagportal.audiences import expressions as ex
from tagportal.audiences.members import select
from tagportal.audiences.store import STORE, NoResult
from tagportal.rules.definitions import RuleValidationError

from .conftest import CHURN, DAYS, PEOPLE, SKIN, VISITED, store_result


def members(shop, expression) -> list[int]:
    return sorted(select(shop.brand, expression).members)


ALL = set(PEOPLE)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"tag": "yimei_visit_skin_type", "op": "eq", "value": "oily"}, SKIN["oily"]),
        ({"tag": "yimei_visit_skin_type", "op": "in", "value": ["dry", "mixed"]}, [5, 6, 7]),
        ({"tag": "yimei_visit_skin_type", "op": "ne", "value": "oily"}, [5, 6, 7]),  # has another value
        ({"tag": "yimei_visit_skin_type", "op": "not_in", "value": ["oily", "dry"]}, [7]),
        ({"tag": "yimei_visit_skin_type", "op": "is_set", "value": True}, [1, 2, 3, 4, 5, 6, 7]),
        ({"tag": "yimei_visit_skin_type", "op": "is_set", "value": False}, [8, 9, 10]),
        ({"tag": "yimei_visit_visited_30d", "op": "eq", "value": True}, VISITED["true"]),
        ({"tag": "yimei_visit_visited_30d", "op": "eq", "value": False}, VISITED["false"]),
        ({"tag": "yimei_visit_visited_30d", "op": "ne", "value": True}, VISITED["false"]),
        ({"tag": "yimei_visit_last_visit_days", "op": "lte", "value": 30}, [1, 2, 3]),
        ({"tag": "yimei_visit_last_visit_days", "op": "lt", "value": 30}, [1, 2]),
        ({"tag": "yimei_visit_last_visit_days", "op": "gt", "value": 45}, [6, 7]),
        ({"tag": "yimei_visit_last_visit_days", "op": "gte", "value": 45}, [5, 6, 7]),
        ({"tag": "yimei_visit_last_visit_days", "op": "between", "value": [10, 45]}, [2, 3, 4, 5]),
        ({"tag": "yimei_visit_last_visit_days", "op": "eq", "value": 31}, [4]),
        ({"tag": "yimei_visit_last_visit_days", "op": "ne", "value": 31}, [1, 2, 3, 5, 6, 7]),
        ({"tag": "yimei_visit_last_visit_days", "op": "eq", "value": "recent"}, [1, 2, 3]),
        ({"tag": "yimei_visit_last_visit_days", "op": "in", "value": ["older"]}, [4, 5, 6, 7]),
        ({"tag": "yimei_visit_last_visit_days", "op": "is_set", "value": False}, [8, 9, 10]),
        ({"metric": {"tag": "yimei_visit_last_visit_days"}, "op": "gte", "value": 90}, [6, 7]),
        (
            {"not": {"tag": "yimei_visit_churn_risk", "op": "eq", "value": "high"}},
            sorted(ALL - set(CHURN["high"])),
        ),
        (
            {
                "all": [
                    {"tag": "yimei_visit_skin_type", "op": "eq", "value": "oily"},
                    {"tag": "yimei_visit_last_visit_days", "op": "lte", "value": 30},
                    {"not": {"tag": "yimei_visit_churn_risk", "op": "eq", "value": "high"}},
                ]
            },
            [1, 3],
        ),
        (
            {
                "any": [
                    {"tag": "yimei_visit_skin_type", "op": "eq", "value": "dry"},
                    {
                        "all": [
                            {"tag": "yimei_visit_visited_30d", "op": "eq", "value": True},
                            {"tag": "yimei_visit_churn_risk", "op": "eq", "value": "high"},
                        ]
                    },
                ]
            },
            [5, 6, 9],
        ),
        (
            {
                "all": [
                    {"tag": "yimei_visit_skin_type", "op": "eq", "value": "mixed"},
                    {"tag": "yimei_visit_skin_type", "op": "eq", "value": "dry"},
                ]
            },
            [],
        ),
    ],
)
def test_members(shop, expression, expected):
    assert members(shop, expression) == expected


def test_text_form_is_parsed_by_the_engine_parser(shop):
    text = '@yimei_visit_skin_type = "oily" and @yimei_visit_last_visit_days <= 30 and not @yimei_visit_churn_risk = "high"'
    assert members(shop, text) == [1, 3]
    parsed = ex.parse_text(text)
    assert ex.parse_text(ex.to_text(parsed)) == parsed
    assert members(
        shop, 'tag(yimei_visit_skin_type) in ("dry", "mixed") or @yimei_visit_visited_30d = true'
    ) == [1, 3, 5, 6, 7, 9]


def test_selection_reports_size_share_and_versions(shop):
    selection = select(shop.brand, {"tag": "yimei_visit_skin_type", "op": "eq", "value": "oily"})
    assert (selection.size, selection.population, selection.share) == (4, 10, 0.4)
    assert selection.tag_versions == {"yimei_visit_skin_type": 1}
    assert selection.tag_ids == {"yimei_visit_skin_type": shop.skin.pk}


@pytest.mark.parametrize(
    ("expression", "path", "message"),
    [
        ({"tag": "yimei_visit_nope", "op": "eq", "value": "x"}, "tag", "unknown tag “yimei_visit_nope”"),
        (
            {"tag": "yimei_visit_skin_type", "op": "eq", "value": "greasy"},
            "value",
            "“greasy” is not a value of the tag",
        ),
        (
            {"tag": "yimei_visit_skin_type", "op": "in", "value": ["oily", "waxy"]},
            "value[1]",
            "“waxy” is not a value",
        ),
        ({"tag": "yimei_visit_skin_type", "op": "gt", "value": 3}, "op", "does not apply"),
        ({"tag": "yimei_visit_visited_30d", "op": "eq", "value": "yes"}, "value", "takes true or false"),
        (
            {"tag": "yimei_visit_last_visit_days", "op": "gte", "value": "thirty"},
            "value",
            "expected a number",
        ),
        ({"tag": "yimei_visit_last_visit_days", "op": "between", "value": [9, 3]}, "value", "low end"),
        ({"all": []}, "all", "non-empty list"),
        (
            {"any": [{"tag": "yimei_visit_skin_type", "op": "eq", "value": "oily"}, 3]},
            "any[1]",
            "expected a condition",
        ),
        ({"attribute": "gender", "op": "eq", "value": "female"}, "", "needs one of"),
        ({"tag": "yimei_visit_skin_type", "op": "eq"}, "", "missing"),
    ],
)
def test_invalid_expressions_name_the_problem(shop, expression, path, message):
    with pytest.raises(RuleValidationError) as caught:
        select(shop.brand, expression)
    errors = caught.value.as_dict()
    key = path or "expression"
    assert key in errors, errors
    assert any(message in m for m in errors[key]), errors


def test_another_brands_tag_is_unknown(shop, world):
    with pytest.raises(RuleValidationError, match="unknown tag"):
        select(world.other_brand, {"tag": "yimei_visit_skin_type", "op": "eq", "value": "oily"})


def test_a_text_that_does_not_parse_says_where(shop):
    with pytest.raises(RuleValidationError) as caught:
        select(shop.brand, '@yimei_visit_skin_type = "oily" and and')
    assert "text" in caught.value.as_dict()


def test_the_rule_languages_error_names_the_whole_an_expression(shop):
    """The rule language's error class, keyed and worded for an expression."""
    with pytest.raises(RuleValidationError) as caught:
        select(shop.brand, {"all": [{"tag": "yimei_visit_skin_type", "op": "eq"}, 3]})
    assert caught.value.as_dict() == {
        "all[0]": ["missing “value”"],
        "all[1]": ["expected a condition or a group"],
    }
    with pytest.raises(RuleValidationError) as caught:
        select(shop.brand, {"tag": "yimei_visit_skin_type", "op": "eq"})
    assert str(caught.value) == "expression: missing “value”"
    with translation.override("zh-hans"), pytest.raises(RuleValidationError) as caught:
        select(shop.brand, {"tag": "yimei_visit_skin_type", "op": "eq"})
    assert str(caught.value) == "表达式: 缺少“value”"  # as the audiences' own error class said it


def test_a_tag_without_result_is_named(shop):
    from tagportal.engine.models import TagComputation

    TagComputation.objects.filter(tag=shop.churn).delete()
    with pytest.raises(NoResult) as caught:
        select(shop.brand, {"tag": "yimei_visit_churn_risk", "op": "eq", "value": "high"})
    assert caught.value.codes == ["yimei_visit_churn_risk"]


def test_a_recomputed_tag_is_reloaded_and_an_unchanged_one_is_not(shop, django_assert_max_num_queries):
    expression = {"tag": "yimei_visit_skin_type", "op": "eq", "value": "oily"}
    assert members(shop, expression) == SKIN["oily"]
    with django_assert_max_num_queries(3):  # tags, results' times, population time: no bitmap read
        assert members(shop, expression) == SKIN["oily"]
    store_result(shop.skin, {"oily": [1, 2], "dry": [3]}, at=timezone.now())
    assert members(shop, expression) == [1, 2]
    STORE.clear()


def test_count_and_codes():
    expression = {
        "all": [
            {"tag": "a", "op": "eq", "value": 1},
            {
                "not": {
                    "any": [{"tag": "b", "op": "is_set"}, {"metric": {"tag": "c"}, "op": "gt", "value": 2}]
                }
            },
        ]
    }
    assert ex.count_conditions(expression) == 3
    assert ex.tag_codes(expression) == {"a", "b", "c"}
    assert DAYS  # the fixture data is shared with the conftest
