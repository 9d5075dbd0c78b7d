"""Bad input to POST/PATCH /api/catalog/tags/: a 400 keyed by the offending field, a
message that helps, and nothing saved. Also code suggestions from Chinese names."""

import json

import pytest

from tagportal.catalog.models import Tag

from ..conftest import client_for
from ..factories import BrandFactory, CategoryFactory, NamingRuleFactory, RegionFactory, TagFactory

URL = "/api/catalog/tags/"

CONDITION = {
    "type": "condition",
    "condition": {
        "metric": {"agg": "count", "source": "orders", "window": {"last_days": 30}},
        "op": "gte",
        "value": 2,
    },
}
SKIN_VALUES = [{"code": "dry", "label": "干性"}, {"code": "oily", "label": "油性"}]


def payload(world, **changes):
    data = {
        "name": "复购意向",
        "name_en": "Repurchase intent",
        "brand": world.own_brand.code,
        "category": world.category.pk,
        "kind": "behavior",
        "value_type": "boolean",
        "values": [],
        "definition": CONDITION,
    }
    data.update(changes)
    return data


def state():
    """Everything a rejected write must leave as it was."""
    return (
        Tag.objects.count(),
        Tag.history.count(),
        sorted(Tag.objects.values_list("id", "code", "name", "description", "value_type", "definition")),
    )


def messages(body, field) -> str:
    value = body[field]
    return " ".join(value) if isinstance(value, list) else json.dumps(value, ensure_ascii=False)


def metric_condition(metric):
    return {"type": "condition", "condition": {"metric": metric, "op": "gte", "value": 1}}


# (changes to a valid payload, the field at fault, what its message must contain)
BAD_INPUT = {
    "code-breaks-naming-rule": (
        {"code": "bad_code"},
        "code",
        ["bad_code", "业务线前缀规则", "{business_line}_{domain}_{name}", "yimei_visit_skin_type"],
    ),
    "code-of-another-business-line": (
        {"code": "shipin_visit_fu_gou"},
        "code",
        ["业务线前缀规则", "yimei_visit_skin_type"],
    ),
    "code-not-snake-case": ({"code": "yimei_visit_Fu-Gou"}, "code", ["yimei_visit_skin_type"]),
    "unknown-category": ({"category": 999999}, "category", ["999999"]),
    "category-not-an-id": ({"category": "到店"}, "category", []),
    "unknown-value-type": ({"value_type": "text"}, "value_type", ["text"]),
    "unknown-kind": ({"kind": "magic"}, "kind", ["magic"]),
    "enum-without-values": ({"value_type": "enum", "definition": {}}, "values", ["at least one value"]),
    "enum-values-not-a-list": (
        {"value_type": "enum", "values": {"dry": "干性"}, "definition": {}},
        "values",
        ["list"],
    ),
    "definition-not-an-object": ({"definition": ["condition"]}, "definition", ["JSON object"]),
    "definition-unknown-type": ({"definition": {"type": "magic"}}, "definition", ["type", "'magic'"]),
    "definition-wrong-type-for-value-type": (
        {"definition": {"type": "metric", "metric": {"agg": "count", "source": "events"}}},
        "definition",
        ["type", "'metric'", "boolean"],
    ),
    "definition-unknown-attribute": (
        {
            "definition": {
                "type": "condition",
                "condition": {"attribute": "shoe_size", "op": "eq", "value": "42"},
            }
        },
        "definition",
        ["condition.attribute", "shoe_size"],
    ),
    "definition-window-of-0-days": (
        {"definition": metric_condition({"agg": "count", "source": "events", "window": {"last_days": 0}})},
        "definition",
        ["condition.metric.window.last_days"],
    ),
    "definition-unknown-event-type": (
        {
            "definition": metric_condition(
                {
                    "agg": "count",
                    "source": "events",
                    "where": [{"field": "type", "op": "eq", "value": "teleport"}],
                }
            )
        },
        "definition",
        ["condition.metric.where[0].value", "teleport"],
    ),
    "definition-nested-error-path": (
        {
            "definition": {
                "type": "condition",
                "condition": {
                    "all": [
                        {"attribute": "age", "op": "gte", "value": 18},
                        {
                            "metric": {"agg": "sum", "source": "orders", "field": "colour"},
                            "op": "gt",
                            "value": 1,
                        },
                    ]
                },
            }
        },
        "definition",
        ["condition.all[1].metric.field", "colour"],
    ),
    "enum-case-value-not-among-values": (
        {
            "value_type": "enum",
            "values": SKIN_VALUES,
            "definition": {
                "type": "cases",
                "cases": [
                    {"value": "combo", "when": {"attribute": "skin_type", "op": "eq", "value": "combo"}}
                ],
                "default": "dry",
            },
        },
        "definition",
        ["cases[0].value", "'combo'", "dry, oily"],
    ),
    "composite-reads-unknown-tag": (
        {
            "kind": "composite",
            "definition": {
                "type": "condition",
                "condition": {"tag": "yimei_visit_wei_zhi", "op": "eq", "value": True},
            },
        },
        "definition",
        ["condition.tag", "yimei_visit_wei_zhi"],
    ),
    "unknown-region": ({"regions": ["mars"]}, "regions", ["mars"]),
    "unknown-owner": ({"owner": "ghost"}, "owner", ["ghost"]),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_post_bad_input_is_400_and_saves_nothing(world, case):
    changes, field, expected = BAD_INPUT[case]
    before = state()
    response = client_for(world.steward).post(URL, payload(world, **changes), format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {field}, body
    text = messages(body, field)
    for part in expected:
        assert part in text, (part, text)
    assert state() == before


@pytest.mark.parametrize("case", BAD_INPUT)
def test_patch_bad_input_is_400_and_changes_nothing(world, case):
    changes, field, expected = BAD_INPUT[case]
    before = state()
    history = world.own_tag.history.count()
    data = payload(world, **changes)
    data.pop("brand")  # stays in its brand
    response = client_for(world.steward).patch(f"{URL}{world.own_tag.pk}/", data, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body, body
    text = messages(body, field)
    for part in expected:
        assert part in text, (part, text)
    assert state() == before
    assert world.own_tag.history.count() == history
    assert list(world.own_tag.regions.all()) == []


def test_composite_may_not_read_another_brands_tag(world):
    """Another brand's tag reads as unknown: nothing about it leaks, nothing is saved."""
    before = state()
    definition = {"type": "condition", "condition": {"tag": world.other_tag.code, "op": "gt", "value": 1}}
    response = client_for(world.steward).post(
        URL, payload(world, kind="composite", definition=definition), format="json"
    )
    assert response.status_code == 400
    assert f"unknown tag '{world.other_tag.code}'" in messages(response.json(), "definition")
    assert state() == before


def test_composite_reading_a_tag_of_its_brand_is_fine(world):
    definition = {"type": "condition", "condition": {"tag": world.own_tag.code, "op": "gt", "value": 1}}
    response = client_for(world.steward).post(
        URL, payload(world, kind="composite", definition=definition), format="json"
    )
    assert response.status_code == 201, response.content
    assert Tag.objects.get(pk=response.json()["id"]).kind == "composite"


def test_brand_of_another_business_line_is_400(world):
    before = state()
    response = client_for(world.steward).post(
        URL, payload(world, brand=world.other_brand.code), format="json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"brand"}
    assert state() == before


# ---------------------------------------------------------------------------
# Duplicate codes


def _mentions_code_and_brand(body):
    text = json.dumps(body, ensure_ascii=False).lower()
    return "code" in text and "brand" in text


def test_duplicate_code_in_same_brand_is_400(world):
    before = state()
    response = client_for(world.steward).post(URL, payload(world, code=world.own_tag.code), format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) <= {"code", "non_field_errors"}, body
    assert _mentions_code_and_brand(body), body
    assert state() == before


def test_suggested_code_that_exists_is_400(world):
    """到店次数 suggests the code of the existing tag: refused, not a 409 or a 500."""
    before = state()
    response = client_for(world.steward).post(URL, payload(world, name="到店次数"), format="json")
    assert response.status_code == 400, response.content
    assert _mentions_code_and_brand(response.json())
    assert state() == before


def test_patch_to_duplicate_code_is_400(world):
    second = TagFactory(brand=world.own_brand, category=world.category, code="yimei_visit_di_er")
    before = state()
    history = second.history.count()
    response = client_for(world.steward).patch(
        f"{URL}{second.pk}/", {"code": world.own_tag.code}, format="json"
    )
    assert response.status_code == 400, response.content
    assert _mentions_code_and_brand(response.json())
    assert state() == before
    assert second.history.count() == history


def test_same_code_in_another_brand_is_fine(world):
    sister = BrandFactory(code="ruiyan2", name="瑞颜二店", business_line=world.own_line)
    response = client_for(world.steward).post(
        URL, payload(world, code=world.own_tag.code, brand=sister.code), format="json"
    )
    assert response.status_code == 201, response.content
    assert Tag.objects.filter(code=world.own_tag.code).count() == 2
    assert Tag.objects.get(pk=response.json()["id"]).brand == sister


# ---------------------------------------------------------------------------
# Code suggestions from the Chinese name (pinyin, following the naming rule)


def test_empty_code_is_suggested_from_the_chinese_name(world):
    client = client_for(world.steward)
    missing = client.post(URL, payload(world, name="肤质类型"), format="json")
    assert missing.status_code == 201, missing.content
    assert missing.json()["code"] == "yimei_visit_fu_zhi_lei_xing"
    blank = client.post(
        URL,
        payload(
            world, name="肤质类型", code="", brand=BrandFactory(code="b2", business_line=world.own_line).code
        ),
        format="json",
    )
    assert blank.status_code == 201, blank.content
    assert blank.json()["code"] == "yimei_visit_fu_zhi_lei_xing"
    assert Tag.objects.filter(code="yimei_visit_fu_zhi_lei_xing").count() == 2


def test_mixed_chinese_and_latin_name(world):
    response = client_for(world.steward).post(URL, payload(world, name="RFM 分层"), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["code"] == "yimei_visit_rfm_fen_ceng"


def test_subcategory_uses_its_parents_rule_and_its_own_code(world):
    child = CategoryFactory(code="skin", name="肤质", parent=world.category, naming_rule=None)
    response = client_for(world.steward).post(
        URL, payload(world, name="肤质类型", category=child.pk), format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["code"] == "yimei_skin_fu_zhi_lei_xing"


def test_patch_with_empty_code_keeps_the_code(world):
    response = client_for(world.steward).patch(
        f"{URL}{world.own_tag.pk}/", {"code": "", "description": "改"}, format="json"
    )
    assert response.status_code == 200, response.content
    world.own_tag.refresh_from_db()
    assert world.own_tag.code == "yimei_visit_dao_dian_ci_shu"
    assert world.own_tag.description == "改"


def suggest(client, **params):
    return client.get(f"{URL}suggest-code/", params)


def test_suggest_code_endpoint(world):
    client = client_for(world.steward)
    response = suggest(client, name="肤质类型", brand=world.own_brand.code, category=world.category.pk)
    assert response.status_code == 200
    assert response.json() == {"code": "yimei_visit_fu_zhi_lei_xing"}
    # and creating with an empty code gives exactly the suggestion
    created = client.post(URL, payload(world, name="肤质类型"), format="json")
    assert created.json()["code"] == response.json()["code"]


def test_suggest_code_follows_the_categorys_rule(world):
    rule = NamingRuleFactory(name="品牌前缀规则", pattern="{brand}_{name}")
    category = CategoryFactory(code="skin", naming_rule=rule)
    response = suggest(
        client_for(world.steward), name="肤质类型", brand=world.own_brand.code, category=category.pk
    )
    assert response.json() == {"code": "ruiyan_fu_zhi_lei_xing"}


def test_suggest_code_without_brand_or_category_is_the_plain_name(world):
    response = suggest(client_for(world.steward), name="肤质类型")
    assert response.status_code == 200
    assert response.json() == {"code": "fu_zhi_lei_xing"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"name": ""}, "name"),
        ({"brand": "ruiyan"}, "name"),
        ({"name": "肤质类型", "brand": "qingquan"}, "brand"),  # another business line's: unknown
        ({"name": "肤质类型", "brand": "nosuch"}, "brand"),
        ({"name": "肤质类型", "category": 999999}, "category"),
        ({"name": "肤质类型", "category": "visit"}, "category"),
    ],
    ids=["empty-name", "no-name", "other-brand", "unknown-brand", "unknown-category", "category-not-id"],
)
def test_suggest_code_bad_params_are_400(world, params, field):
    response = suggest(client_for(world.steward), **params)
    assert response.status_code == 400
    assert field in response.json()


def test_suggest_code_for_another_business_lines_brand_leaks_nothing(world):
    client = client_for(world.steward)
    other = suggest(client, name="肤质类型", brand=world.other_brand.code)
    unknown = suggest(client, name="肤质类型", brand="nosuch")
    assert other.status_code == unknown.status_code == 400
    assert other.json() == unknown.json()


def test_suggest_code_needs_the_add_permission(world):
    response = suggest(client_for(world.analyst), name="肤质类型")
    assert response.status_code == 403


# ---------------------------------------------------------------------------
# Chinese text round-trips unescaped


def test_chinese_round_trips_unescaped(world):
    region = RegionFactory(code="cn", name="中国")
    client = client_for(world.steward)
    data = payload(world, name="肤质类型", description="近90天，皮肤偏油「T区」", regions=[region.code])
    created = client.post(URL, data, format="json")
    assert created.status_code == 201
    pk = created.json()["id"]
    for response in (created, client.get(f"{URL}{pk}/"), client.get(URL, {"search": "肤质"})):
        raw = response.content
        assert "肤质类型".encode() in raw
        assert "近90天，皮肤偏油「T区」".encode() in raw
        assert b"\\u" not in raw
        assert response["Content-Type"].startswith("application/json")
    stored = Tag.objects.get(pk=pk)
    assert stored.name == "肤质类型"
    assert stored.description == "近90天，皮肤偏油「T区」"


def test_error_messages_are_unescaped_too(world):
    response = client_for(world.steward).post(URL, payload(world, code="bad_code"), format="json")
    assert response.status_code == 400
    assert "业务线前缀规则".encode() in response.content
    assert b"\\u" not in response.content
