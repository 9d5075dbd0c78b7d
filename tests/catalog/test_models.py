import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tagportal.catalog.models import Region, Tag, TagVersion
from tagportal.catalog.services import TagLocked, apply_changes, create_tag, publish_tag, update_tag
from tagportal.catalog.validation import values_errors

from ..factories import BrandFactory, CategoryFactory, RegionFactory, TagFactory


@pytest.mark.django_db
def test_code_is_unique_per_brand_in_the_database():
    tag = TagFactory()
    clone = TagFactory.build(
        brand=tag.brand, business_line=tag.business_line, category=tag.category, code=tag.code
    )
    with pytest.raises(ValidationError) as info:
        clone.full_clean()
    assert "__all__" in info.value.message_dict or "code" in info.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        clone.save()
    # Same code in another brand of the same business line is fine.
    other_brand = BrandFactory(business_line=tag.business_line)
    TagFactory(brand=other_brand, category=tag.category, code=tag.code)


@pytest.mark.django_db
@pytest.mark.parametrize("field,value", [("status", "zombie"), ("kind", "magic"), ("value_type", "colour")])
def test_check_constraints(field, value):
    tag = TagFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.filter(pk=tag.pk).update(**{field: value})


@pytest.mark.django_db
def test_published_needs_a_version():
    tag = TagFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.filter(pk=tag.pk).update(status="published", published_version=None)


@pytest.mark.django_db
def test_publish_freezes_an_immutable_version():
    tag = TagFactory()
    v1 = publish_tag(tag, note="首次发布")
    tag.refresh_from_db()
    assert (tag.status, tag.published_version, v1.version) == ("published", 1, 1)
    assert v1.snapshot["code"] == tag.code and v1.snapshot["definition"] == tag.definition
    with pytest.raises(TagLocked):
        update_tag(None, tag, description="直接改")  # published: only through a change request
    v2 = apply_changes(tag, {"description": "新描述"}, reason="变更单 #1")
    assert v2.version == 2 and v2.snapshot["description"] == "新描述"
    assert TagVersion.objects.get(pk=v1.pk).snapshot["description"] != "新描述"
    v1.note = "改写"
    with pytest.raises(ValidationError):
        v1.save()
    with pytest.raises(ValidationError):
        v1.delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        TagVersion.objects.create(tag=tag, version=2, snapshot={})


@pytest.mark.django_db
def test_brand_must_belong_to_business_line():
    tag = TagFactory()
    other = BrandFactory()
    tag.brand = other
    with pytest.raises(ValidationError) as info:
        tag.full_clean()
    assert "brand" in info.value.message_dict


@pytest.mark.django_db
def test_region_tree_levels():
    china = RegionFactory(code="cn", name="中国", level="country")
    guangdong = Region(code="guangdong", name="广东", level="province", parent=china)
    guangdong.full_clean()
    guangdong.save()
    shenzhen = Region(code="shenzhen", name="深圳", level="city", parent=guangdong)
    shenzhen.full_clean()
    shenzhen.save()
    assert str(shenzhen) == "中国 › 广东 › 深圳"
    wrong = Region(code="x", name="错", level="city", parent=china)
    with pytest.raises(ValidationError) as info:
        wrong.full_clean()
    assert "parent" in info.value.message_dict
    orphan = Region(code="y", name="孤", level="province")
    with pytest.raises(ValidationError):
        orphan.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        Region.objects.create(code="z", name="无", level="province", parent=None)


@pytest.mark.django_db
def test_category_cannot_contain_itself():
    root = CategoryFactory(code="root")
    child = CategoryFactory(code="child", parent=root, naming_rule=None)
    root.parent = child
    with pytest.raises(ValidationError):
        root.full_clean()
    assert child.path_name.endswith(f"{root.name} › {child.name}")


@pytest.mark.parametrize(
    "values,value_type,fragment",
    [
        ([], "enum", "at least one value"),
        ([{"code": "a", "label": "甲"}, {"code": "a", "label": "乙"}], "enum", "used twice"),
        ([{"code": "A B", "label": "甲"}], "enum", "lower-case"),
        ([{"code": "a"}], "enum", "label is required"),
        ([{"code": "a", "label": "甲", "min": 1}], "enum", "only number tags"),
        ([{"code": "a", "label": "甲", "min": 5, "max": 1}], "number", "less than max"),
        (
            [{"code": "a", "label": "甲", "max": 5}, {"code": "b", "label": "乙", "min": 3}],
            "number",
            "overlap",
        ),
        ([{"code": "maybe", "label": "也许"}], "boolean", "true"),
        ("oily", "enum", "must be a list"),
    ],
)
def test_values_errors(values, value_type, fragment):
    assert any(fragment in e for e in values_errors(values, value_type))


def test_values_ok():
    assert (
        values_errors(
            [{"code": "low", "label": "低", "max": 2}, {"code": "high", "label": "高", "min": 2}], "number"
        )
        == []
    )
    assert values_errors([], "boolean") == []
    assert values_errors([], "number") == []


@pytest.mark.django_db
def test_create_tag_service_is_atomic_and_records_history(world):
    before = Tag.history.count()
    with pytest.raises(ValidationError):
        create_tag(
            world.operator,
            brand=world.own_brand,
            category=world.category,
            name="坏",
            kind="behavior",
            value_type="enum",
            values=[],
            definition={"type": "manual"},
        )
    assert Tag.history.count() == before
    tag = create_tag(
        world.operator, brand=world.own_brand, category=world.category, name="会员等级", kind="manual",
        value_type="enum", values=[{"code": "gold", "label": "金卡"}],
        regions=[RegionFactory(code="cn", name="中国")],
    )  # fmt: skip
    assert tag.code == "yimei_visit_hui_yuan_deng_ji"
    assert tag.owner == world.operator and tag.status == "draft"
    assert tag.definition == {"type": "manual"}
    assert list(tag.regions.values_list("code", flat=True)) == ["cn"]
    assert tag.history.first().history_change_reason


@pytest.mark.django_db
def test_published_tag_needs_definition(world):
    t = TagFactory(brand=world.own_brand, category=world.category, definition={})
    with pytest.raises(ValidationError) as info:
        publish_tag(t)
    assert "definition" in info.value.message_dict


@pytest.mark.django_db
def test_tags_may_not_read_each_other_in_a_circle(world):
    def reads(code):
        return {"type": "condition", "condition": {"tag": code, "op": "eq", "value": True}}

    common = {"brand": world.own_brand, "category": world.category, "value_type": "boolean", "values": []}
    base = create_tag(None, name="甲", code="yimei_visit_jia", kind="manual", **common)
    second = create_tag(
        None, name="乙", code="yimei_visit_yi", kind="composite", definition=reads(base.code), **common
    )
    third = create_tag(
        None, name="丙", code="yimei_visit_bing", kind="composite", definition=reads(second.code), **common
    )
    with pytest.raises(ValidationError) as info:
        update_tag(None, base, kind="composite", definition=reads(third.code))
    message = info.value.message_dict["definition"][0]
    assert "yimei_visit_jia → yimei_visit_bing → yimei_visit_yi → yimei_visit_jia" in message
    base.refresh_from_db()
    assert base.definition == {"type": "manual"}


def test_field_labels_for_other_apps():
    """Other apps label tag fields through these, not through ``Tag._meta``."""
    from django.utils import translation

    with translation.override("zh-hans"):
        assert Tag.field_label("status") == "状态"
        assert Tag.field_labels()["status"] == "状态"
    with translation.override("en"):
        assert Tag.field_label("name_en") == "English name"
    assert Tag.field_label("merged_into") == "merged_into"  # not a field: the key itself
    assert Tag.field_label("computation") == "computation"  # a reverse relation has no label
    assert Tag.table_name() == "catalog_tag"
