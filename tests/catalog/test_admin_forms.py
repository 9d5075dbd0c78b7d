"""The tag add/change form in the admin, as an operator, analyst or someone from another business line sees it."""

import json

import pytest
from django.test import Client

from tagportal.catalog.forms import ValuesField
from tagportal.catalog.models import Brand, Tag

from ..factories import BrandFactory, BusinessLineFactory, TagFactory

ADD_URL = "/admin/catalog/tag/add/"

SKIN_TYPE_DEFINITION = {"type": "attribute", "attribute": "skin_type"}


def login(user):
    client = Client()
    client.force_login(user)
    return client


def change_url(tag):
    return f"/admin/catalog/tag/{tag.pk}/change/"


def inline_management(initial=0):
    return {
        "versions-TOTAL_FORMS": str(initial),
        "versions-INITIAL_FORMS": str(initial),
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    }


def add_data(world, **overrides):
    """What the add form posts for a new enum tag 肤质类型, code left empty."""
    data = {
        "name": "肤质类型",
        "name_en": "Skin type",
        "code": "",
        "description": "顾客自述的肤质",
        "brand": str(world.own_brand.pk),
        "category": str(world.category.pk),
        "owner": "",
        "kind": "system",
        "value_type": "enum",
        "values": "oily | 油性 | Oily\ndry | 干性 | Dry",
        "unit": "",
        "refresh_mode": "batch",
        "schedule": "0 2 * * *",
        "definition": json.dumps(SKIN_TYPE_DEFINITION, ensure_ascii=False),
        "_save": "Save",
        **inline_management(),
    }
    data.update(overrides)
    return data


def change_data(tag, **overrides):
    """What the change form posts for ``tag`` unchanged (plus overrides)."""
    data = {
        "name": tag.name,
        "name_en": tag.name_en,
        "code": tag.code,
        "description": tag.description,
        "brand": str(tag.brand_id),
        "category": str(tag.category_id),
        "regions": [str(pk) for pk in tag.regions.values_list("pk", flat=True)],
        "owner": str(tag.owner_id or ""),
        "kind": tag.kind,
        "value_type": tag.value_type,
        "values": ValuesField().prepare_value(tag.values),
        "unit": tag.unit,
        "refresh_mode": tag.refresh_mode,
        "schedule": tag.schedule,
        "definition": json.dumps(tag.definition, ensure_ascii=False),
        "_save": "Save",
        **inline_management(tag.versions.count()),
    }
    data.update(overrides)
    return data


def form_of(response):
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    return response.context["adminform"].form


# --- adding a tag ------------------------------------------------------------------------------


def test_empty_code_is_suggested_from_the_chinese_name(world):
    client = login(world.operator)
    response = client.post(ADD_URL, add_data(world))
    assert response.status_code == 302, form_of(response).errors
    tag = Tag.objects.get(name="肤质类型")
    # {business_line}_{domain}_{name}: 医美 (yimei), category "visit", pinyin of 肤质类型
    assert tag.code == f"yimei_{world.category.code}_fu_zhi_lei_xing"
    assert tag.brand == world.own_brand
    assert tag.business_line == world.own_line  # derived from the brand
    assert tag.owner == world.operator  # the person who added it owns it
    assert tag.status == "draft"
    assert tag.values == [
        {"code": "oily", "label": "油性", "label_en": "Oily"},
        {"code": "dry", "label": "干性", "label_en": "Dry"},
    ]
    assert tag.definition == SKIN_TYPE_DEFINITION
    # The help text tells the user the code may be left empty.
    page = client.get(ADD_URL).content.decode()
    assert "Leave empty to have it suggested from the Chinese name (pinyin)" in page


def test_code_breaking_the_naming_rule_is_an_error_on_the_code_field(world):
    client = login(world.operator)
    response = client.post(ADD_URL, add_data(world, code="skin_type"))
    form = form_of(response)
    assert list(form.errors) == ["code"], form.errors
    message = " ".join(form.errors["code"])
    rule = world.category.naming_rule
    assert rule.name in message  # names the rule
    assert rule.pattern in message
    assert f"yimei_{world.category.code}_skin_type" in message  # a valid example
    # The page shows it next to the code field, in readable Chinese.
    html = response.content.decode()
    assert "errors field-code" in html
    assert f"“{rule.name}”" in html
    assert not Tag.objects.filter(name="肤质类型").exists()


def test_code_of_another_business_line_breaks_the_rule(world):
    client = login(world.operator)
    response = client.post(ADD_URL, add_data(world, code=f"shipin_{world.category.code}_fu_zhi"))
    assert "code" in form_of(response).errors
    assert not Tag.objects.filter(name="肤质类型").exists()


def test_enum_without_values_is_an_error_on_values(world):
    client = login(world.operator)
    response = client.post(ADD_URL, add_data(world, values=""))
    form = form_of(response)
    assert "values" in form.errors
    assert "An enumeration needs at least one value." in form.errors["values"]
    assert "errors field-values" in response.content.decode()
    assert not Tag.objects.filter(name="肤质类型").exists()


@pytest.mark.parametrize(
    "definition, expected",
    [
        ('{"type": "attribute", "attribute": ', "Enter a valid JSON."),
        (json.dumps({"type": "metric", "metric": {"agg": "count", "source": "events"}}), "definition"),
        (json.dumps({"type": "attribute", "attribute": "shoe_size"}), "shoe_size"),
        (json.dumps({"type": "spell"}), "definition"),
    ],
    ids=["not-json", "number-rule-for-enum", "unknown-attribute", "unknown-type"],
)
def test_invalid_definition_is_an_error_on_definition(world, definition, expected):
    client = login(world.operator)
    response = client.post(ADD_URL, add_data(world, definition=definition))
    form = form_of(response)
    assert "definition" in form.errors, form.errors
    assert expected in " ".join(form.errors["definition"])
    assert "errors field-definition" in response.content.decode()
    assert not Tag.objects.filter(name="肤质类型").exists()


def test_malformed_values_line_is_an_error_on_values(world):
    client = login(world.operator)
    response = client.post(ADD_URL, add_data(world, values="oily | 油性 | Oily | 1"))
    form = form_of(response)
    assert "values" in form.errors
    assert "Line 1" in " ".join(form.errors["values"])
    assert not Tag.objects.filter(name="肤质类型").exists()


def test_duplicate_code_in_the_same_brand_is_refused(world):
    client = login(world.operator)
    existing = world.own_tag
    before = Tag.objects.count()
    response = client.post(ADD_URL, add_data(world, name="到店次数二", code=existing.code))
    form = form_of(response)
    errors = form.errors.as_data()
    messages = [str(m) for e in errors.values() for err in e for m in err.messages]
    assert any("already has a tag with the code" in m for m in messages), errors
    assert f"The brand already has a tag with the code “{existing.code}”." in response.content.decode()
    assert Tag.objects.count() == before


def test_same_code_in_another_brand_is_fine(world):
    second = BrandFactory(code="ruiyan2", name="瑞颜二店", business_line=world.own_line)
    client = login(world.operator)
    response = client.post(
        ADD_URL, add_data(world, name="到店次数二", code=world.own_tag.code, brand=str(second.pk))
    )
    assert response.status_code == 302, form_of(response).errors
    assert Tag.objects.filter(code=world.own_tag.code).count() == 2


def test_suggested_code_clashing_with_an_existing_tag_is_refused(world):
    client = login(world.operator)
    assert client.post(ADD_URL, add_data(world)).status_code == 302
    response = client.post(ADD_URL, add_data(world))
    form_of(response)  # re-shown with an error, not saved
    assert Tag.objects.filter(name="肤质类型").count() == 1


# --- the values textarea -----------------------------------------------------------------------


NUMBER_BUCKETS = [
    {"code": "low", "label": "低", "label_en": "Low", "max": 2},
    {"code": "mid", "label": "中", "label_en": "Medium", "min": 2, "max": 5.5},
    {"code": "high", "label": "高", "min": 5.5},
]


def test_number_buckets_render_as_lines(world):
    tag = TagFactory(brand=world.own_brand, category=world.category, values=NUMBER_BUCKETS)
    client = login(world.operator)
    form = form_of(client.get(change_url(tag)))
    text = form["values"].value()
    assert ValuesField().prepare_value(tag.values) == text
    assert text.splitlines() == [
        "low | 低 | Low |  | 2",
        "mid | 中 | Medium | 2 | 5.5",
        "high | 高 |  | 5.5 | ",
    ]
    # and the textarea holds them verbatim (Chinese unescaped)
    assert "low | 低 | Low |  | 2" in client.get(change_url(tag)).content.decode()


def test_number_buckets_round_trip_through_the_change_form(world):
    tag = TagFactory(brand=world.own_brand, category=world.category, values=NUMBER_BUCKETS)
    client = login(world.operator)
    shown = form_of(client.get(change_url(tag)))["values"].value()
    response = client.post(change_url(tag), change_data(tag, values=shown, description="改过描述"))
    assert response.status_code == 302, form_of(response).errors
    tag.refresh_from_db()
    assert tag.description == "改过描述"
    assert tag.values == NUMBER_BUCKETS


def test_enum_values_round_trip_and_blank_lines_are_ignored(world):
    client = login(world.operator)
    text = "oily | 油性 | Oily\n\n  dry|干性|Dry  \nmixed | 混合性 |\n"
    response = client.post(ADD_URL, add_data(world, values=text))
    assert response.status_code == 302, form_of(response).errors
    tag = Tag.objects.get(name="肤质类型")
    assert tag.values == [
        {"code": "oily", "label": "油性", "label_en": "Oily"},
        {"code": "dry", "label": "干性", "label_en": "Dry"},
        {"code": "mixed", "label": "混合性"},
    ]
    shown = form_of(client.get(change_url(tag)))["values"].value()
    assert shown.splitlines() == ["oily | 油性 | Oily", "dry | 干性 | Dry", "mixed | 混合性 | "]
    response = client.post(change_url(tag), change_data(tag, values=shown))
    assert response.status_code == 302, form_of(response).errors
    tag.refresh_from_db()
    assert tag.values == [
        {"code": "oily", "label": "油性", "label_en": "Oily"},
        {"code": "dry", "label": "干性", "label_en": "Dry"},
        {"code": "mixed", "label": "混合性"},
    ]


def test_number_bucket_bound_that_is_not_a_number_is_an_error(world):
    tag = TagFactory(brand=world.own_brand, category=world.category)
    client = login(world.operator)
    response = client.post(change_url(tag), change_data(tag, values="low | 低 | Low | | two"))
    form = form_of(response)
    assert "values" in form.errors
    assert "'two' is not a number" in " ".join(form.errors["values"])
    tag.refresh_from_db()
    assert tag.values[0]["code"] == "low" and tag.values[0]["max"] == 2


# --- who may add and change --------------------------------------------------------------------


def test_brand_dropdown_offers_only_brands_the_operator_may_add_to(world):
    second = BrandFactory(code="ruiyan2", name="瑞颜二店", business_line=world.own_line)
    third_line = BusinessLineFactory(code="dajiankang", name="大健康")
    BrandFactory(code="kangle", name="康乐", business_line=third_line)
    client = login(world.operator)
    response = client.get(ADD_URL)
    form = form_of(response)
    assert set(form.fields["brand"].queryset) == {world.own_brand, second}
    html = response.content.decode()
    assert ">瑞颜</option>" in html and ">瑞颜二店</option>" in html
    assert "清泉" not in html and "康乐" not in html


def test_operator_cannot_add_into_another_business_lines_brand(world):
    client = login(world.operator)
    response = client.post(
        ADD_URL, add_data(world, brand=str(world.other_brand.pk), code=f"shipin_{world.category.code}_fu_zhi")
    )
    form = form_of(response)
    assert "brand" in form.errors
    assert not Tag.objects.filter(name="肤质类型").exists()


def test_admin_brand_dropdown_offers_every_brand(world):
    response = login(world.admin).get(ADD_URL)
    assert set(form_of(response).fields["brand"].queryset) == set(Brand.objects.all())


def test_analyst_cannot_add(world):
    client = login(world.analyst)
    assert client.get(ADD_URL).status_code == 403
    assert client.post(ADD_URL, add_data(world)).status_code == 403
    assert not Tag.objects.filter(name="肤质类型").exists()
    # and the changelist offers no "Add" button
    page = client.get("/admin/catalog/tag/").content.decode()
    assert ADD_URL not in page


def test_analyst_sees_an_own_tag_read_only(world):
    client = login(world.analyst)
    tag = world.own_tag
    response = client.get(change_url(tag))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    html = response.content.decode()
    assert tag.name in html and tag.code in html
    assert 'name="_save"' not in html
    assert 'name="code"' not in html  # no editable inputs


def test_analyst_cannot_change_an_own_tag(world):
    client = login(world.analyst)
    tag = world.own_tag
    response = client.post(change_url(tag), change_data(tag, name="被分析师改过"))
    assert response.status_code == 403
    tag.refresh_from_db()
    assert tag.name == "到店次数"


def test_operator_cannot_open_another_business_lines_tag(world):
    client = login(world.operator)
    other = world.other_tag
    response = client.get(change_url(other))
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response["Location"] == "/admin/"
        page = client.get(response["Location"]).content.decode()
        assert "doesn’t exist" in page or "doesn't exist" in page
    else:
        page = response.content.decode()
    assert other.name not in page and other.code not in page
    # posting a change does nothing either
    response = client.post(change_url(other), change_data(other, name="越权修改"))
    assert response.status_code in (302, 403, 404)
    other.refresh_from_db()
    assert other.name == "购买次数"


def test_operator_changes_an_own_tag(world):
    client = login(world.operator)
    tag = world.own_tag
    response = client.post(change_url(tag), change_data(tag, name_en="Store visits (90 days)"))
    assert response.status_code == 302, form_of(response).errors
    tag.refresh_from_db()
    assert tag.name_en == "Store visits (90 days)"


def test_operator_cannot_move_a_tag_into_another_business_line(world):
    client = login(world.operator)
    tag = world.own_tag
    response = client.post(change_url(tag), change_data(tag, brand=str(world.other_brand.pk)))
    assert "brand" in form_of(response).errors
    tag.refresh_from_db()
    assert tag.brand == world.own_brand and tag.business_line == world.own_line
