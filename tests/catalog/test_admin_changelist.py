"""The tag changelist: what an operator and an admin see, its filters and search, Chinese text,
and a number of queries that does not grow with the number of tags."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tagportal.catalog.models import Tag
from tagportal.catalog.services import grant_business_line

from ..factories import (
    BrandFactory,
    BusinessLineFactory,
    CategoryFactory,
    RegionFactory,
    TagFactory,
    UserFactory,
)

URL = "/admin/catalog/tag/"


def login(user):
    client = Client()
    client.force_login(user)
    return client


def shown(response):
    """Codes of the tags on the page (from the changelist and, to be sure, from the HTML)."""
    assert response.status_code == 200
    codes = {t.code for t in response.context["cl"].result_list}
    html = response.content.decode()
    for code in codes:
        assert code in html
    return codes


def choices(response, parameter):
    """Labels of the choices of the (displayed) filter that uses ``parameter``; "All" and "empty" left out."""
    cl = response.context["cl"]
    for spec in cl.filter_specs:
        if parameter in spec.expected_parameters():
            return [
                c["display"]
                for c in spec.choices(cl)
                if c["query_string"] != "?" and "__isnull" not in c["query_string"]
            ]
    raise AssertionError(f"no filter for {parameter}")


@pytest.fixture
def catalog(world):
    """A category tree, regions and tags spread over every filter dimension.

    own_tag (world): 到店行为, draft, batch, behavior/number, no owner, no template, no region.
    age:    基础属性 › 人口属性 › 年龄段, published, realtime, system/enum, owner operator,
            template medical_aesthetics, region 广东.
    member: 基础属性 › 人口属性, second own brand, draft, algorithm/boolean, owner steward, region 中国.
    health: a third business line (大健康) the operator was granted as an analyst: 到店行为,
            in review, manual/number, no owner.
    foreign: another business line's tag with values of its own (never visible to the operator).
    """

    class Catalog:
        pass

    c = Catalog()
    c.world = world
    rule = world.category.naming_rule
    c.root = CategoryFactory(code="basic", name="基础属性", name_en="Basic attributes", naming_rule=rule)
    c.child = CategoryFactory(code="demo", name="人口属性", parent=c.root, naming_rule=None)
    c.leaf = CategoryFactory(code="age", name="年龄段分类", parent=c.child, naming_rule=None)
    c.china = RegionFactory(code="cn", name="中国", level="country")
    c.guangdong = RegionFactory(code="gd", name="广东", level="province", parent=c.china)
    c.second_brand = BrandFactory(code="ruiyan2", name="瑞颜二店", business_line=world.own_line)
    c.health_line = BusinessLineFactory(code="dajiankang", name="大健康")
    c.health_brand = BrandFactory(code="kangle", name="康乐", business_line=c.health_line)
    grant_business_line(world.operator, c.health_line, "analysts")
    c.health = TagFactory(
        brand=c.health_brand,
        category=world.category,
        code="dajiankang_visit_ti_jian_ci_shu",
        name="体检次数",
        name_en="Health checks",
        description="年度体检",
        kind="manual",
        status="in_review",
        definition={"type": "manual"},
    )
    c.other_owner = UserFactory(username="foreigner", display_name="外线负责人")
    world.own_tag.description = "近90天到店次数"
    world.own_tag.save()
    c.age = TagFactory(
        brand=world.own_brand,
        category=c.leaf,
        code="yimei_age_nian_ling_duan",
        name="年龄段",
        name_en="Age band",
        description="按出生年份计算",
        kind="system",
        value_type="enum",
        values=[{"code": "young", "label": "青年"}, {"code": "old", "label": "中老年"}],
        definition={"type": "manual"},
        status="published",
        published_version=1,
        refresh_mode="realtime",
        owner=world.operator,
        template="medical_aesthetics",
    )
    c.age.regions.set([c.guangdong])
    c.member = TagFactory(
        brand=c.second_brand,
        category=c.child,
        code="yimei_demo_hui_yuan_deng_ji",
        name="会员等级",
        name_en="Member level",
        description="会员体系等级",
        kind="algorithm",
        value_type="boolean",
        values=[],
        definition={"type": "manual"},
        owner=world.steward,
    )
    c.member.regions.set([c.china])
    c.foreign = TagFactory(
        brand=world.other_brand,
        category=c.leaf,
        code="shipin_age_nian_ling_duan",
        name="年龄段食品",
        name_en="Age band food",
        description="食品线的年龄段",
        kind="system",
        value_type="enum",
        values=[{"code": "young", "label": "青年"}],
        definition={"type": "manual"},
        status="published",
        published_version=1,
        refresh_mode="realtime",
        owner=c.other_owner,
        template="food_beverage",
    )
    c.foreign.regions.set([c.guangdong])
    return c


def visible_codes(catalog):
    return {
        "own": catalog.world.own_tag.code,
        "age": catalog.age.code,
        "member": catalog.member.code,
        "health": catalog.health.code,
    }


# --- what is listed ----------------------------------------------------------------------------


def test_operator_sees_own_business_line_tags_only(catalog):
    w = catalog.world
    response = login(w.operator).get(URL)
    codes = shown(response)
    # the own business line's tags, and those of the line the operator was granted read access to
    assert codes == set(visible_codes(catalog).values())
    html = response.content.decode()
    for foreign in (w.other_tag, catalog.foreign):
        assert foreign.code not in html
        assert foreign.name not in html
    assert "食品饮料" not in html and "清泉" not in html


def test_admin_sees_every_tag(catalog):
    w = catalog.world
    codes = shown(login(w.admin).get(URL))
    assert codes == set(Tag.objects.values_list("code", flat=True))
    assert {w.other_tag.code, catalog.foreign.code} <= codes


def test_user_without_a_role_cannot_open_the_changelist(catalog):
    response = login(catalog.world.nobody).get(URL)
    assert response.status_code == 403


def test_analyst_sees_own_business_line_tags_only(catalog):
    w = catalog.world
    codes = shown(login(w.analyst).get(URL))
    assert codes == {w.own_tag.code, catalog.age.code, catalog.member.code}


# --- filters -----------------------------------------------------------------------------------


FILTERS = {
    "business_line-own": (
        lambda c: {"business_line__id__exact": c.world.own_line.pk},
        {"own", "age", "member"},
    ),
    "business_line-granted": (lambda c: {"business_line__id__exact": c.health_line.pk}, {"health"}),
    "business_line-other": (lambda c: {"business_line__id__exact": c.world.other_line.pk}, set()),
    "brand-own": (lambda c: {"brand__id__exact": c.world.own_brand.pk}, {"own", "age"}),
    "brand-second": (lambda c: {"brand__id__exact": c.second_brand.pk}, {"member"}),
    "brand-other": (lambda c: {"brand__id__exact": c.world.other_brand.pk}, set()),
    "region-province": (lambda c: {"regions__id__exact": c.guangdong.pk}, {"age"}),
    "region-country": (lambda c: {"regions__id__exact": c.china.pk}, {"member"}),
    "category-root-with-subcategories": (lambda c: {"category": c.root.pk}, {"age", "member"}),
    "category-middle": (lambda c: {"category": c.child.pk}, {"age", "member"}),
    "category-leaf": (lambda c: {"category": c.leaf.pk}, {"age"}),
    "category-other-root": (lambda c: {"category": c.world.category.pk}, {"own", "health"}),
    "kind": (lambda c: {"kind__exact": "system"}, {"age"}),
    "kind-algorithm": (lambda c: {"kind__exact": "algorithm"}, {"member"}),
    "kind-manual": (lambda c: {"kind__exact": "manual"}, {"health"}),
    "value_type-enum": (lambda c: {"value_type__exact": "enum"}, {"age"}),
    "value_type-boolean": (lambda c: {"value_type__exact": "boolean"}, {"member"}),
    "value_type-number": (lambda c: {"value_type__exact": "number"}, {"own", "health"}),
    "status-published": (lambda c: {"status__exact": "published"}, {"age"}),
    "status-draft": (lambda c: {"status__exact": "draft"}, {"own", "member"}),
    "status-in_review": (lambda c: {"status__exact": "in_review"}, {"health"}),
    "refresh_mode-realtime": (lambda c: {"refresh_mode__exact": "realtime"}, {"age"}),
    "refresh_mode-batch": (lambda c: {"refresh_mode__exact": "batch"}, {"own", "member", "health"}),
    "owner-operator": (lambda c: {"owner__id__exact": c.world.operator.pk}, {"age"}),
    "owner-steward": (lambda c: {"owner__id__exact": c.world.steward.pk}, {"member"}),
    "template": (lambda c: {"template": "medical_aesthetics"}, {"age"}),
    "no-template": (lambda c: {"template": ""}, {"own", "member", "health"}),
    "template-other-line": (lambda c: {"template": "food_beverage"}, set()),
    "combined": (lambda c: {"category": c.root.pk, "status__exact": "draft"}, {"member"}),
}


@pytest.mark.parametrize("name", FILTERS)
def test_filter(catalog, name):
    params, expected = FILTERS[name]
    codes = visible_codes(catalog)
    response = login(catalog.world.operator).get(URL, params(catalog))
    assert shown(response) == {codes[key] for key in expected}
    assert catalog.foreign.code not in response.content.decode()


def test_category_filter_ignores_a_bad_value(catalog):
    response = login(catalog.world.operator).get(URL, {"category": "abc"})
    assert response.status_code == 200
    assert shown(response) == set()


def test_category_filter_offers_the_tree_with_paths(catalog):
    response = login(catalog.world.operator).get(URL)
    labels = choices(response, "category")
    assert "基础属性 › 人口属性 › 年龄段分类" in labels
    assert "基础属性 › 人口属性" in labels and "基础属性" in labels
    assert "基础属性 › 人口属性 › 年龄段分类" in response.content.decode()


def test_brand_and_business_line_filters_offer_only_what_the_operator_may_view(catalog):
    w = catalog.world
    response = login(w.operator).get(URL)
    assert sorted(choices(response, "business_line__id__exact")) == sorted(["医美", "大健康"])
    assert sorted(choices(response, "brand__id__exact")) == sorted(["瑞颜", "瑞颜二店", "康乐"])
    html = response.content.decode()
    assert "食品饮料" not in html and "清泉" not in html
    # the filters are on the page
    assert f"?business_line__id__exact={catalog.health_line.pk}" in html
    assert f"?brand__id__exact={catalog.second_brand.pk}" in html
    assert f"?brand__id__exact={w.other_brand.pk}" not in html


def test_admin_filters_offer_every_brand_and_business_line(catalog):
    response = login(catalog.world.admin).get(URL)
    assert set(choices(response, "business_line__id__exact")) == {"医美", "食品饮料", "大健康"}
    assert set(choices(response, "brand__id__exact")) == {"瑞颜", "瑞颜二店", "清泉", "康乐"}


def test_owner_and_template_filters_offer_only_values_of_visible_tags(catalog):
    w = catalog.world
    response = login(w.operator).get(URL)
    owners = choices(response, "owner__id__exact")
    assert set(owners) == {str(w.operator), str(w.steward)}
    assert "外线负责人" not in response.content.decode()
    assert "医美" in choices(response, "template")  # the template's name, not its key
    assert "medical_aesthetics" not in choices(response, "template")
    assert "食品饮料" not in choices(response, "template")
    assert "food_beverage" not in response.content.decode()


def test_region_filter_offers_the_region_tree(catalog):
    response = login(catalog.world.operator).get(URL)
    assert set(choices(response, "regions__id__exact")) == {"中国", "中国 › 广东"}


# --- search ------------------------------------------------------------------------------------


SEARCHES = {
    "chinese-name": ("到店", {"own"}),
    "chinese-name-full": ("年龄段", {"age"}),
    "english-name": ("Age band", {"age"}),
    "english-name-any-case": ("member LEVEL", {"member"}),
    "code": ("yimei_demo_hui_yuan", {"member"}),
    "description": ("会员体系", {"member"}),
    "description-digits": ("90天", {"own"}),
    "granted-line": ("体检", {"health"}),
    "only-another-line": ("购买次数", set()),
    "nothing": ("不存在的标签", set()),
}


@pytest.mark.parametrize("name", SEARCHES)
def test_search(catalog, name):
    term, expected = SEARCHES[name]
    w = catalog.world
    codes = visible_codes(catalog)
    response = login(w.operator).get(URL, {"q": term})
    assert shown(response) == {codes[key] for key in expected}
    html = response.content.decode()
    assert catalog.foreign.code not in html and w.other_tag.code not in html
    # the search box keeps the term, unescaped
    assert f'value="{term}"' in html


def test_admin_search_finds_other_business_lines(catalog):
    w = catalog.world
    response = login(w.admin).get(URL, {"q": "年龄段"})
    assert shown(response) == {catalog.age.code, catalog.foreign.code}


# --- Chinese text ------------------------------------------------------------------------------


def test_chinese_text_is_rendered_as_utf8_without_escaping(catalog):
    response = login(catalog.world.operator).get(URL)
    assert response["Content-Type"] == "text/html; charset=utf-8"
    raw = response.content
    html = raw.decode("utf-8")
    for text in ("年龄段", "会员等级", "到店次数", "基础属性 › 人口属性 › 年龄段分类", "瑞颜二店", "医美"):
        assert text in html
        assert text.encode("utf-8") in raw
    # no Chinese character is written as an HTML entity
    entities = [
        m
        for m in re.findall(r"&#(x[0-9a-fA-F]+|\d+);", html)
        if int(m[1:], 16 if m[0] == "x" else 10) > 0x2E80
    ]
    assert entities == []
    assert "\\u5e74" not in html  # nor as an escape sequence (年)


# --- a constant number of queries --------------------------------------------------------------


def add_tags(world, count, categories, regions, owners):
    """``count`` more tags in the own brand (bulk), half of them in a region."""
    start = Tag.objects.count()
    tags = Tag.objects.bulk_create(
        [
            Tag(
                brand=world.own_brand,
                business_line=world.own_line,
                category=categories[i % len(categories)],
                code=f"yimei_{categories[i % len(categories)].code}_bulk_{start + i}",
                name=f"批量标签{start + i}",
                name_en=f"Bulk tag {start + i}",
                description="批量创建",
                kind=("behavior", "system", "algorithm")[i % 3],
                value_type="boolean",
                status=("draft", "in_review")[i % 2],
                refresh_mode=("batch", "realtime")[i % 2],
                owner=owners[i % len(owners)],
                template=("", "medical_aesthetics", "beauty")[i % 3],
            )
            for i in range(count)
        ]
    )
    through = Tag.regions.through
    through.objects.bulk_create(
        [
            through(tag_id=tag.pk, region_id=regions[i % len(regions)].pk)
            for i, tag in enumerate(tags)
            if i % 2 == 0
        ]
    )


def count_queries(client, params):
    with CaptureQueriesContext(connection) as context:
        response = client.get(URL, params)
    assert response.status_code == 200
    return len(context.captured_queries), response


def measure(world, user, categories, regions, params=None, small=6, factor=10):
    owners = [world.operator, world.steward, world.admin, None]
    client = login(user)
    add_tags(world, small, categories, regions, owners)
    client.get(URL)  # warm caches (content types, session)
    small_count, small_response = count_queries(client, params or {})
    add_tags(world, small * (factor - 1), categories, regions, owners)
    large_count, large_response = count_queries(client, params or {})
    assert len(large_response.context["cl"].result_list) > 5 * len(small_response.context["cl"].result_list)
    return small_count, large_count, client


@pytest.fixture
def tree(world):
    """A three-level category tree (with the world's category as a fourth root)."""
    rule = world.category.naming_rule
    root = CategoryFactory(code="basic", name="基础属性", naming_rule=rule)
    child = CategoryFactory(code="demo", name="人口属性", parent=root, naming_rule=None)
    leaf = CategoryFactory(code="age", name="年龄段分类", parent=child, naming_rule=None)
    china = RegionFactory(code="cn", name="中国", level="country")
    regions = [
        china,
        RegionFactory(code="gd", name="广东", level="province", parent=china),
        RegionFactory(code="zj", name="浙江", level="province", parent=china),
    ]
    return [world.category, root, child, leaf], regions


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_changelist_queries_do_not_grow_with_tags(world, tree, role, django_assert_num_queries):
    categories, regions = tree
    user = getattr(world, role)
    small, large, client = measure(world, user, categories, regions)
    print(f"\nchangelist queries ({role}): {small} with ~6 tags, {large} with ~60 tags")
    assert small == large
    add_tags(world, 30, categories, regions, [world.operator, None])
    with django_assert_num_queries(small):
        assert client.get(URL).status_code == 200


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_filtered_and_searched_changelist_queries_do_not_grow(world, tree, role):
    categories, regions = tree
    params = {"category": categories[1].pk, "regions__id__exact": regions[0].pk, "q": "批量"}
    small, large, _client = measure(world, getattr(world, role), categories, regions, params=params)
    print(f"\nfiltered changelist queries ({role}): {small} vs {large}")
    assert small == large


def test_changelist_queries_do_not_grow_with_a_deep_category_tree(world):
    """Categories four levels deep (which the category filter supports) must not cost a query per row."""
    rule = world.category.naming_rule
    level1 = CategoryFactory(code="basic", name="基础属性", naming_rule=rule)
    level2 = CategoryFactory(code="demo", name="人口属性", parent=level1, naming_rule=None)
    level3 = CategoryFactory(code="age", name="年龄", parent=level2, naming_rule=None)
    level4 = CategoryFactory(code="band", name="年龄段", parent=level3, naming_rule=None)
    regions = [RegionFactory(code="cn", name="中国", level="country")]
    small, large, _client = measure(world, world.operator, [level4, level3], regions)
    print(f"\nchangelist queries with 4-level categories: {small} vs {large}")
    assert small == large
    page = login(world.operator).get(URL).content.decode()
    assert "基础属性 › 人口属性 › 年龄 › 年龄段" in page
