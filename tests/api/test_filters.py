"""Filtering, searching, ordering and paging tags; a tag's history, diffs and versions."""

import pytest

from tagportal.catalog.models import Tag
from tagportal.catalog.services import publish_tag

from ..conftest import client_for
from ..factories import BrandFactory, CategoryFactory, NamingRuleFactory, RegionFactory, TagFactory

URL = "/api/catalog/tags/"


@pytest.fixture
def catalog(world):
    """The world plus: a category tree 基础属性 › 肤质 › 毛孔, regions, a sister brand,
    and tags of every kind, value type, owner and status."""
    c = world
    rule = NamingRuleFactory()
    c.country = RegionFactory(code="cn", name="中国")
    c.guangdong = RegionFactory(code="cn_gd", name="广东", level="province", parent=c.country)
    c.shanghai = RegionFactory(code="cn_sh", name="上海", level="province", parent=c.country)
    c.profile = CategoryFactory(code="profile", name="基础属性", naming_rule=rule)
    c.skin = CategoryFactory(code="skin", name="肤质", parent=c.profile, naming_rule=None)
    c.pore = CategoryFactory(code="pore", name="毛孔", parent=c.skin, naming_rule=None)
    c.sister = BrandFactory(code="ruiyan2", name="瑞颜二店", business_line=c.own_line)

    c.skin_tag = TagFactory(
        brand=c.own_brand,
        category=c.skin,
        code="yimei_skin_fu_zhi_lei_xing",
        name="肤质类型",
        name_en="Skin type",
        description="顾客自述的皮肤类型",
        kind="system",
        value_type="enum",
        values=[{"code": "dry", "label": "干性"}, {"code": "oily", "label": "油性"}],
        definition={"type": "attribute", "attribute": "skin_type", "map": {"干性": "dry", "油性": "oily"}},
        owner=c.operator,
    )
    c.skin_tag.regions.set([c.guangdong])
    publish_tag(c.skin_tag)
    c.pore_tag = TagFactory(
        brand=c.own_brand,
        category=c.pore,
        code="yimei_pore_mao_kong_cu_da",
        name="毛孔粗大",
        name_en="Enlarged pores",
        description="护肤顾问标记的肤质问题",
        kind="manual",
        value_type="boolean",
        values=[],
        definition={"type": "manual"},
        owner=c.steward,
    )
    c.pore_tag.regions.set([c.guangdong, c.shanghai])
    c.composite_tag = TagFactory(
        brand=c.own_brand,
        category=c.category,
        code="yimei_visit_gao_jia_zhi",
        name="高价值到店客户",
        name_en="High-value visitor",
        description="",
        kind="composite",
        value_type="boolean",
        values=[],
        definition={"type": "condition", "condition": {"tag": c.own_tag.code, "op": "gte", "value": 3}},
        owner=c.operator,
    )
    c.sister_tag = TagFactory(
        brand=c.sister, category=c.category, code="yimei_visit_yu_yue_ci_shu", name="预约次数"
    )
    c.sister_tag.regions.set([c.shanghai])
    return c


def codes(response) -> list[str]:
    assert response.status_code == 200, response.content
    body = response.json()
    rows = body["results"]
    assert body["count"] == len(rows), "expected a single page"
    return [row["code"] for row in rows]


def tag_codes(*tags) -> set[str]:
    return {t.code for t in tags}


def get(client, **params):
    return client.get(URL, {"page_size": 1000, **params})


# ---------------------------------------------------------------------------
# Filters


def test_filter_by_business_line(catalog):
    admin = client_for(catalog.admin)
    c = catalog
    assert set(codes(get(admin, business_line="yimei"))) == tag_codes(
        c.own_tag, c.skin_tag, c.pore_tag, c.composite_tag, c.sister_tag
    )
    assert codes(get(admin, business_line="shipin")) == [c.other_tag.code]
    assert codes(get(admin, business_line="nosuch")) == []


def test_filter_by_brand(catalog):
    admin = client_for(catalog.admin)
    c = catalog
    assert set(codes(get(admin, brand="ruiyan"))) == tag_codes(
        c.own_tag, c.skin_tag, c.pore_tag, c.composite_tag
    )
    assert codes(get(admin, brand="ruiyan2")) == [c.sister_tag.code]
    assert codes(get(admin, brand="qingquan")) == [c.other_tag.code]


def test_filter_never_widens_the_scope(catalog):
    steward = client_for(catalog.steward)
    assert codes(get(steward, business_line="shipin")) == []
    assert codes(get(steward, brand="qingquan")) == []
    assert catalog.other_tag.code not in codes(get(steward, category=catalog.category.pk))


def test_filter_by_region(catalog):
    admin = client_for(catalog.admin)
    c = catalog
    gd = codes(get(admin, region="cn_gd"))
    assert sorted(gd) == sorted(tag_codes(c.skin_tag, c.pore_tag))
    sh = codes(get(admin, region="cn_sh"))
    assert sorted(sh) == sorted(tag_codes(c.pore_tag, c.sister_tag))  # listed once each
    assert codes(get(admin, region="cn")) == []  # regions are matched exactly


def test_filter_by_category_includes_subcategories(catalog):
    admin = client_for(catalog.admin)
    c = catalog
    assert set(codes(get(admin, category=c.profile.pk))) == tag_codes(c.skin_tag, c.pore_tag)
    assert set(codes(get(admin, category=c.skin.pk))) == tag_codes(c.skin_tag, c.pore_tag)
    assert codes(get(admin, category=c.pore.pk)) == [c.pore_tag.code]
    assert set(codes(get(admin, category=c.category.pk))) == tag_codes(
        c.own_tag, c.composite_tag, c.sister_tag, c.other_tag
    )


def test_filter_by_kind(catalog):
    admin = client_for(catalog.admin)
    c = catalog
    assert codes(get(admin, kind="composite")) == [c.composite_tag.code]
    both = admin.get(URL, {"kind": ["system", "manual"]})
    assert set(codes(both)) == tag_codes(c.skin_tag, c.pore_tag)


def test_filter_by_value_type(catalog):
    admin = client_for(catalog.admin)
    c = catalog
    assert codes(get(admin, value_type="enum")) == [c.skin_tag.code]
    assert set(codes(get(admin, value_type="boolean"))) == tag_codes(c.pore_tag, c.composite_tag)
    assert set(codes(get(admin, value_type="number"))) == tag_codes(c.own_tag, c.sister_tag, c.other_tag)


def test_filter_by_status(catalog):
    admin = client_for(catalog.admin)
    c = catalog
    assert codes(get(admin, status="published")) == [c.skin_tag.code]
    drafts = set(codes(get(admin, status="draft")))
    assert c.skin_tag.code not in drafts
    assert len(drafts) == Tag.objects.count() - 1


def test_filter_by_owner(catalog):
    admin = client_for(catalog.admin)
    c = catalog
    assert set(codes(get(admin, owner="op"))) == tag_codes(c.skin_tag, c.composite_tag)
    assert codes(get(admin, owner="st")) == [c.pore_tag.code]
    assert codes(get(admin, owner="nobody")) == []


def test_filters_combine(catalog):
    admin = client_for(catalog.admin)
    response = get(admin, business_line="yimei", value_type="boolean", owner="op")
    assert codes(response) == [catalog.composite_tag.code]


def test_filter_by_exact_code(catalog):
    admin = client_for(catalog.admin)
    assert codes(get(admin, code=catalog.pore_tag.code)) == [catalog.pore_tag.code]
    assert codes(get(admin, code="yimei_pore")) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "magic"}, "kind"),
        ({"value_type": "text"}, "value_type"),
        ({"status": "gone"}, "status"),
        ({"category": "skin"}, "category"),
        ({"updated_after": "yesterday"}, "updated_after"),
    ],
    ids=["kind", "value_type", "status", "category", "updated_after"],
)
def test_invalid_filter_values_are_400(catalog, params, field):
    response = client_for(catalog.admin).get(URL, params)
    assert response.status_code == 400
    assert field in response.json()


# ---------------------------------------------------------------------------
# Search


def test_search_chinese_name_and_description(catalog):
    admin = client_for(catalog.admin)
    # 肤质 is in the name of one tag and in the description of another
    assert set(codes(get(admin, search="肤质"))) == tag_codes(catalog.skin_tag, catalog.pore_tag)
    assert codes(get(admin, search="毛孔")) == [catalog.pore_tag.code]


def test_search_english_name_ignores_case(catalog):
    admin = client_for(catalog.admin)
    assert codes(get(admin, search="skin type")) == [catalog.skin_tag.code]
    assert codes(get(admin, search="PORES")) == [catalog.pore_tag.code]


def test_search_code(catalog):
    admin = client_for(catalog.admin)
    assert codes(get(admin, search="gao_jia_zhi")) == [catalog.composite_tag.code]


def test_search_description(catalog):
    admin = client_for(catalog.admin)
    assert codes(get(admin, search="顾客自述")) == [catalog.skin_tag.code]


def test_search_stays_in_scope(catalog):
    c = catalog
    # the other line's tag says 近90天到店次数 too, but only the admin finds it
    admin_hits = set(codes(get(client_for(c.admin), search="到店")))
    steward_hits = set(codes(get(client_for(c.steward), search="到店")))
    assert c.other_tag.code in admin_hits
    assert c.other_tag.code not in steward_hits
    assert steward_hits == admin_hits - {c.other_tag.code}
    assert {c.own_tag.code, c.composite_tag.code} <= steward_hits


def test_search_combines_with_filters(catalog):
    admin = client_for(catalog.admin)
    assert codes(get(admin, search="肤质", kind="manual")) == [catalog.pore_tag.code]


# ---------------------------------------------------------------------------
# Ordering and paging


def test_default_ordering_is_brand_then_code(catalog):
    rows = get(client_for(catalog.admin)).json()["results"]
    keys = [(row["brand"], row["code"]) for row in rows]
    assert keys == sorted(keys)
    assert len(keys) == Tag.objects.count()


@pytest.mark.parametrize("field", ["code", "name_en", "created"])
def test_ordering(catalog, field):
    admin = client_for(catalog.admin)
    up = [row[field] for row in get(admin, ordering=field).json()["results"]]
    down = [row[field] for row in get(admin, ordering=f"-{field}").json()["results"]]
    assert up == sorted(up)
    assert down == sorted(down, reverse=True)
    assert len(up) == Tag.objects.count()
    assert up != down


def test_ordering_by_unknown_field_is_ignored(catalog):
    response = get(client_for(catalog.admin), ordering="owner__password")
    assert response.status_code == 200
    keys = [(row["brand"], row["code"]) for row in response.json()["results"]]
    assert keys == sorted(keys)


def test_page_size(catalog):
    admin = client_for(catalog.admin)
    total = Tag.objects.count()
    first = admin.get(URL, {"page_size": 2, "ordering": "code"})
    body = first.json()
    assert body["count"] == total
    assert len(body["results"]) == 2
    assert body["previous"] is None
    assert "page=2" in body["next"] and "page_size=2" in body["next"]
    seen = [row["code"] for row in body["results"]]
    page = 2
    while body["next"]:
        body = admin.get(URL, {"page_size": 2, "ordering": "code", "page": page}).json()
        seen += [row["code"] for row in body["results"]]
        page += 1
    assert seen == sorted(Tag.objects.values_list("code", flat=True))


def test_default_page_size_and_out_of_range_page(catalog):
    admin = client_for(catalog.admin)
    body = admin.get(URL).json()
    assert len(body["results"]) == Tag.objects.count()  # fewer than the default 50
    assert admin.get(URL, {"page": 99}).status_code == 404


# ---------------------------------------------------------------------------
# History and diffs


def history(client, tag):
    response = client.get(f"{URL}{tag.pk}/history/")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_history_lists_the_change_and_who_made_it(world):
    steward = client_for(world.steward)
    response = steward.patch(
        f"{URL}{world.own_tag.pk}/",
        {"name": "到店次数（近30天）", "description": "近30天到店次数"},
        format="json",
    )
    assert response.status_code == 200
    records = history(steward, world.own_tag)
    assert len(records) == 2
    newest, created = records
    assert newest["history_type"] == "changed"
    assert set(newest["changed_fields"]) == {"name", "description"}
    assert newest["history_user"] == "st"
    assert newest["change_reason"] == "Edited via the API"
    assert created["history_type"] == "created"
    assert created["changed_fields"] == []
    assert newest["history_id"] > created["history_id"]


def test_history_records_each_change_newest_first(world):
    client = client_for(world.operator)
    client.patch(f"{URL}{world.own_tag.pk}/", {"unit": "次"}, format="json")
    client_for(world.steward).patch(f"{URL}{world.own_tag.pk}/", {"name_en": "Visits"}, format="json")
    records = history(client, world.own_tag)
    assert [r["changed_fields"] for r in records] == [["name_en"], ["unit"], []]
    assert [r["history_user"] for r in records] == ["st", "op", None]


def test_history_lists_region_changes(world):
    region = RegionFactory(code="cn", name="中国")
    steward = client_for(world.steward)
    response = steward.patch(f"{URL}{world.own_tag.pk}/", {"regions": ["cn"]}, format="json")
    assert response.status_code == 200
    assert response.json()["regions"] == ["cn"]
    newest = history(steward, world.own_tag)[0]
    assert newest["changed_fields"] == ["regions"]
    diff = steward.get(
        f"{URL}{world.own_tag.pk}/diff/",
        {"from": history(steward, world.own_tag)[-1]["history_id"], "to": newest["history_id"]},
    ).json()
    change = {c["field"]: c for c in diff["changes"]}["regions"]
    assert change["old"] == "—"
    assert change["new"] == str(region)


def test_history_of_another_scope_is_404(world):
    response = client_for(world.steward).get(f"{URL}{world.other_tag.pk}/history/")
    assert response.status_code == 404


def _edit(world):
    client = client_for(world.steward)
    client.patch(f"{URL}{world.own_tag.pk}/", {"description": "近30天到店次数", "unit": "次"}, format="json")
    records = history(client, world.own_tag)
    return client, records[-1]["history_id"], records[0]["history_id"]


def diff_url(tag):
    return f"{URL}{tag.pk}/diff/"


def test_diff_field_by_field(world):
    client, created, changed = _edit(world)
    response = client.get(diff_url(world.own_tag), {"from": created, "to": changed})
    assert response.status_code == 200
    body = response.json()
    assert (body["from"], body["to"]) == (created, changed)
    changes = {c["field"]: c for c in body["changes"]}
    assert set(changes) == {"description", "unit"}
    assert changes["description"]["old"] == "近90天到店次数"
    assert changes["description"]["new"] == "近30天到店次数"
    assert changes["unit"]["old"] == "—"
    assert changes["unit"]["new"] == "次"
    assert all(c["changed"] for c in body["changes"])
    assert changes["description"]["label"]


def test_diff_orders_the_records_oldest_first(world):
    client, created, changed = _edit(world)
    body = client.get(diff_url(world.own_tag), {"from": changed, "to": created}).json()
    assert (body["from"], body["to"]) == (created, changed)
    description = {c["field"]: c for c in body["changes"]}["description"]
    assert (description["old"], description["new"]) == ("近90天到店次数", "近30天到店次数")


def test_diff_all_includes_unchanged_fields(world):
    client, created, changed = _edit(world)
    body = client.get(diff_url(world.own_tag), {"from": created, "to": changed, "all": "1"}).json()
    changes = {c["field"]: c for c in body["changes"]}
    assert changes["code"]["changed"] is False
    assert changes["code"]["old"] == changes["code"]["new"] == world.own_tag.code
    assert changes["description"]["changed"] is True


def test_diff_of_a_record_with_itself_is_empty(world):
    client, created, _changed = _edit(world)
    body = client.get(diff_url(world.own_tag), {"from": created, "to": created}).json()
    assert body["changes"] == []


def test_diff_of_definition_has_line_diff(world):
    client = client_for(world.steward)
    definition = {**world.own_tag.definition}
    definition["metric"] = {**definition["metric"], "window": {"last_days": 30}}
    assert (
        client.patch(f"{URL}{world.own_tag.pk}/", {"definition": definition}, format="json").status_code
        == 200
    )
    records = history(client, world.own_tag)
    body = client.get(
        diff_url(world.own_tag), {"from": records[-1]["history_id"], "to": records[0]["history_id"]}
    ).json()
    change = {c["field"]: c for c in body["changes"]}["definition"]
    assert {"op": "-", "text": '      "last_days": 90'} in change["lines"]
    assert {"op": "+", "text": '      "last_days": 30'} in change["lines"]


def test_diff_with_another_tags_history_id_is_404(world):
    client, created, _changed = _edit(world)
    other_record = world.other_tag.history.first().history_id
    response = client.get(diff_url(world.own_tag), {"from": created, "to": other_record})
    assert response.status_code == 404
    assert str(other_record) in response.json()["detail"]
    # and through the other tag itself: not even visible
    response = client.get(diff_url(world.other_tag), {"from": other_record, "to": other_record})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "params",
    [{}, {"from": 1}, {"to": 1}, {"from": "a", "to": "b"}],
    ids=["none", "no-to", "no-from", "not-ints"],
)
def test_diff_without_params_is_400(world, params):
    response = client_for(world.steward).get(diff_url(world.own_tag), params)
    assert response.status_code == 400
    assert "from" in response.json()["detail"]


# ---------------------------------------------------------------------------
# Versions


def test_versions_endpoint(world):
    publish_tag(world.own_tag, note="首次发布")
    publish_tag(world.own_tag, note="第二版")
    client = client_for(world.analyst)
    response = client.get(f"{URL}{world.own_tag.pk}/versions/")
    assert response.status_code == 200
    assert response.json()["count"] == 2
    rows = response.json()["results"]
    assert [row["version"] for row in rows] == [2, 1]
    assert [row["note"] for row in rows] == ["第二版", "首次发布"]
    assert {row["tag_code"] for row in rows} == {world.own_tag.code}
    assert rows[0]["snapshot"]["brand"] == "ruiyan"
    tag = client.get(f"{URL}{world.own_tag.pk}/").json()
    assert tag["status"] == "published"
    assert tag["published_version"] == 2


def test_versions_endpoint_without_versions_and_out_of_scope(world):
    client = client_for(world.steward)
    response = client.get(f"{URL}{world.own_tag.pk}/versions/")
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}
    publish_tag(world.other_tag)
    assert client.get(f"{URL}{world.other_tag.pk}/versions/").status_code == 404


def test_version_list_filters(world):
    publish_tag(world.own_tag)
    publish_tag(world.own_tag)
    publish_tag(world.other_tag)
    admin = client_for(world.admin)

    def versions(**params):
        response = admin.get("/api/catalog/versions/", params)
        assert response.status_code == 200
        return sorted((row["tag_code"], row["version"]) for row in response.json()["results"])

    own = world.own_tag.code
    assert versions(tag_code=own) == [(own, 1), (own, 2)]
    assert versions(brand="qingquan") == [(world.other_tag.code, 1)]
    assert versions(version=2) == [(own, 2)]
    assert versions(tag=world.other_tag.pk) == [(world.other_tag.code, 1)]
    steward = client_for(world.steward).get("/api/catalog/versions/").json()
    assert {row["tag_code"] for row in steward["results"]} == {own}
