"""The API contract of every catalog resource, plus token authentication."""

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tagportal.catalog.models import Brand, BusinessLine, Category, NamingRule, Region, Tag, TagVersion
from tagportal.catalog.services import grant_business_line, publish_tag
from tagportal.catalog.templates import get_pack
from tagportal.core.roles import STEWARD

from ..conftest import client_for
from ..factories import (
    BrandFactory,
    BusinessLineFactory,
    CategoryFactory,
    NamingRuleFactory,
    RegionFactory,
    TagFactory,
    UserFactory,
)
from .contract import (
    APIContract,
    ProtectedDeleteContract,
    ReadContract,
    ReadOnlyContract,
    Resource,
    ScopedAPIContract,
    ScopedContract,
    SharedDictionaryContract,
    once,
)


def steward_with(world, username, *perms):
    """A data steward of the own business line who also holds some model permissions."""

    def make():
        user = UserFactory(username=username, role=STEWARD, grants=[(world.own_line, "stewards")])
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return type(user).objects.get(pk=user.pk)  # a fresh instance: no permission cache

    return once(world, f"_user_{username}", make)


def country(world):
    return once(world, "_country", lambda: RegionFactory(code="cn", name="中国", name_en="China"))


# ---------------------------------------------------------------------------
# Scoped resources


class TestBusinessLines(ScopedAPIContract, ProtectedDeleteContract):
    url = "/api/catalog/business-lines/"
    model = BusinessLine

    def user(self, world):
        return steward_with(
            world,
            "bl_manager",
            "catalog.add_businessline",
            "catalog.change_businessline",
            "catalog.delete_businessline",
        )

    def permitted(self, world):
        return world.own_line

    def other(self, world):
        return world.other_line

    def create_data(self, world):
        return {
            "code": "dajiankang",
            "name": "大健康",
            "name_en": "Health",
            "description": "大健康业务线",
            "is_active": True,
        }

    def update_data(self, world):
        return {"name": "医美与轻医美", "description": "更新后的说明", "is_active": False}

    def deletable(self, world, user):
        line = BusinessLineFactory(code="linshi", name="临时业务线")
        grant_business_line(user, line, "stewards")
        return line

    def protected(self, world):
        return world.own_line  # its brand refers to it


class TestBrands(ScopedAPIContract, ProtectedDeleteContract):
    url = "/api/catalog/brands/"
    model = Brand

    def user(self, world):
        return steward_with(
            world,
            "brand_manager",
            "catalog.add_brand",
            "catalog.change_brand",
            "catalog.delete_brand",
            "catalog.change_businessline",
        )

    def permitted(self, world):
        return world.own_brand

    def other(self, world):
        return world.other_brand

    def create_data(self, world):
        return {
            "code": "ruiyanplus",
            "name": "瑞颜优选",
            "name_en": "Ruiyan Plus",
            "description": "新品牌",
            "business_line": world.own_line.code,
            "is_active": True,
        }

    def update_data(self, world):
        return {"name": "瑞颜医美", "description": "品牌介绍"}

    def deletable(self, world, user):
        return BrandFactory(code="linshibrand", name="临时品牌", business_line=world.own_line)

    def protected(self, world):
        return world.own_brand  # its tag refers to it

    def test_create_in_other_business_line_is_refused(self, world):
        before = Brand.objects.count()
        data = {**self.create_data(world), "business_line": world.other_line.code}
        response = self.client(world).post(self.url, data, format="json")
        assert response.status_code == 400
        assert "business_line" in response.json()
        assert Brand.objects.count() == before

    def test_move_into_business_line_only_viewable_is_refused(self, world):
        """Moving a brand into a business line is adding a brand to it: it needs the same
        ``change`` grant on the target line as creating one there."""
        user = self.user(world)
        grant_business_line(user, world.other_line, "analysts")  # may view the other line only
        response = client_for(user).patch(
            self.detail_url(world.own_brand.pk), {"business_line": world.other_line.code}, format="json"
        )
        assert response.status_code in (400, 403), response.content
        world.own_brand.refresh_from_db()
        assert world.own_brand.business_line_id == world.own_line.pk


class TestTags(ScopedAPIContract, ProtectedDeleteContract):
    url = "/api/catalog/tags/"
    model = Tag

    def user(self, world):
        return world.steward

    def permitted(self, world):
        return world.own_tag

    def other(self, world):
        return world.other_tag

    def create_data(self, world):
        return {
            "code": "yimei_visit_fu_gou_yi_xiang",
            "name": "复购意向",
            "name_en": "Repurchase intent",
            "description": "近30天下单两次及以上",
            "brand": world.own_brand.code,
            "category": world.category.pk,
            "regions": [country(world).code],
            "owner": world.operator.username,
            "kind": "behavior",
            "value_type": "boolean",
            "refresh_mode": "batch",
            "definition": {
                "type": "condition",
                "condition": {
                    "metric": {"agg": "count", "source": "orders", "window": {"last_days": 30}},
                    "op": "gte",
                    "value": 2,
                },
            },
        }

    def update_data(self, world):
        return {"description": "近30天到店次数", "name_en": "Visits (30 days)", "unit": "次"}

    def deletable(self, world, user):
        return TagFactory(brand=world.own_brand, category=world.category)

    def protected(self, world):
        publish_tag(world.own_tag)  # a published version refers to it
        return world.own_tag

    def test_created_tag_is_a_draft_in_its_brands_business_line(self, world):
        response = self.client(world).post(self.url, self.create_data(world), format="json")
        assert response.status_code == 201
        tag = Tag.objects.get(pk=response.json()["id"])
        assert tag.status == "draft"
        assert tag.business_line == world.own_line
        assert list(tag.regions.values_list("code", flat=True)) == ["cn"]


class TestVersions(Resource, ReadContract, ScopedContract, ReadOnlyContract):
    url = "/api/catalog/versions/"
    model = TagVersion

    def user(self, world):
        return world.steward

    def permitted(self, world):
        return once(world, "_own_version", lambda: publish_tag(world.own_tag, note="首次发布"))

    def other(self, world):
        return once(world, "_other_version", lambda: publish_tag(world.other_tag))

    def test_version_shows_its_snapshot(self, world):
        version = self.permitted(world)
        body = self.client(world).get(self.detail_url(version.pk)).json()
        assert body["tag"] == world.own_tag.pk
        assert body["tag_code"] == world.own_tag.code
        assert body["version"] == 1
        assert body["note"] == "首次发布"
        assert body["snapshot"]["code"] == world.own_tag.code
        assert body["snapshot"]["name"] == "到店次数"


# ---------------------------------------------------------------------------
# Shared dictionaries: the admin writes them, everyone with a role reads them


class TestRegions(APIContract, ProtectedDeleteContract, SharedDictionaryContract):
    url = "/api/catalog/regions/"
    model = Region

    def permitted(self, world):
        return country(world)

    def create_data(self, world):
        return {
            "code": "cn_zj",
            "name": "浙江",
            "name_en": "Zhejiang",
            "level": "province",
            "parent": country(world).code,
        }

    def update_data(self, world):
        return {"name": "中华人民共和国", "name_en": "People's Republic of China"}

    def deletable(self, world, user):
        return RegionFactory(code="cn_tmp", name="临时省", level="province", parent=country(world))

    def protected(self, world):
        RegionFactory(code="cn_gd", name="广东", level="province", parent=country(world))
        return country(world)

    def test_province_without_parent_is_400(self, world):
        data = {**self.create_data(world), "parent": None}
        before = Region.objects.count()
        response = self.client(world).post(self.url, data, format="json")
        assert response.status_code == 400
        assert "parent" in response.json()
        assert Region.objects.count() == before

    def test_path_name_reads_down_the_tree(self, world):
        response = self.client(world).post(self.url, self.create_data(world), format="json")
        assert response.json()["path_name"] == "中国 › 浙江"


class TestCategories(APIContract, ProtectedDeleteContract, SharedDictionaryContract):
    url = "/api/catalog/categories/"
    model = Category

    def permitted(self, world):
        return world.category

    def create_data(self, world):
        return {
            "code": "skin",
            "name": "肤质",
            "name_en": "Skin",
            "description": "肤质相关",
            "parent": world.category.pk,
            "naming_rule": None,
            "order": 3,
        }

    def update_data(self, world):
        return {"name": "到店与预约", "order": 5}

    def deletable(self, world, user):
        return CategoryFactory(code="linshi", naming_rule=world.category.naming_rule)

    def protected(self, world):
        return world.category  # its tags refer to it

    def test_category_cannot_be_inside_itself(self, world):
        child = CategoryFactory(code="child", parent=world.category, naming_rule=None)
        client = self.client(world)
        for parent in (world.category, child):
            response = client.patch(self.detail_url(world.category.pk), {"parent": parent.pk}, format="json")
            assert response.status_code == 400, (parent.code, response.status_code, response.content)
            assert "parent" in response.json()
            world.category.refresh_from_db()
            assert world.category.parent_id is None

    def test_duplicate_root_code_is_refused_without_saving(self, world):
        before = Category.objects.count()
        with transaction.atomic():  # a database-level refusal must not break the test's transaction
            response = self.client(world).post(
                self.url, {"code": world.category.code, "name": "重复"}, format="json"
            )
        assert response.status_code in (400, 409), response.status_code
        assert Category.objects.count() == before


class TestNamingRules(APIContract, ProtectedDeleteContract, SharedDictionaryContract):
    url = "/api/catalog/naming-rules/"
    model = NamingRule

    def permitted(self, world):
        return world.category.naming_rule

    def create_data(self, world):
        return {
            "name": "品牌前缀规则",
            "description": "品牌编码开头",
            "pattern": "{brand}_{domain}_{name}",
            "min_length": 5,
            "max_length": 60,
            "example_name": "skin_type",
        }

    def update_data(self, world):
        return {"description": "业务线编码开头", "max_length": 60}

    def deletable(self, world, user):
        return NamingRuleFactory(name="临时规则")

    def protected(self, world):
        return world.category.naming_rule  # a category refers to it

    def test_bad_pattern_is_400(self, world):
        before = NamingRule.objects.count()
        data = {**self.create_data(world), "pattern": "{foo}_{name}_{name}"}
        response = self.client(world).post(self.url, data, format="json")
        assert response.status_code == 400
        message = " ".join(response.json()["pattern"])
        assert "{foo}" in message
        assert NamingRule.objects.count() == before

    @pytest.mark.parametrize(
        "lengths",
        [{"min_length": 10, "max_length": 5}, {"max_length": 80}, {"min_length": 0}],
        ids=["min-above-max", "max-above-64", "min-zero"],
    )
    def test_impossible_lengths_are_400(self, world, lengths):
        """Lengths are input errors (400, naming the field), not conflicts with stored data."""
        before = NamingRule.objects.count()
        with transaction.atomic():  # a database-level refusal must not break the test's transaction
            response = self.client(world).post(
                self.url, {**self.create_data(world), **lengths}, format="json"
            )
        assert response.status_code == 400, (response.status_code, response.content)
        assert set(response.json()) & {"min_length", "max_length", "non_field_errors"}
        assert NamingRule.objects.count() == before


# ---------------------------------------------------------------------------
# Industry templates: not stored objects but packs on disk; applying one writes into a brand


class TestTemplates(Resource, ReadContract):
    url = "/api/catalog/templates/"
    model = Tag  # what applying a template writes
    paginated = False
    id_field = "key"

    def user(self, world):
        return world.steward

    def permitted(self, world):
        return get_pack("health_nutrition")

    def key(self, obj):
        return obj.key

    def apply(self, user, brand):
        return client_for(user).post(
            f"{self.url}health_nutrition/apply/", {"brand": brand.code}, format="json"
        )

    def test_apply_to_a_permitted_brand(self, world):
        response = self.apply(self.user(world), world.own_brand)
        assert response.status_code == 201, response.content
        created = Tag.objects.filter(brand=world.own_brand, code__in=response.json()["created_codes"])
        assert created.count() == response.json()["created"] == len(get_pack("health_nutrition").tags)

    def test_apply_to_another_business_lines_brand_is_404(self, world):
        before = self.count()
        assert self.apply(self.user(world), world.other_brand).status_code == 404
        assert self.count() == before

    def test_read_only_role_may_not_apply(self, world):
        before = self.count()
        assert self.apply(self.read_only_user(world), world.own_brand).status_code == 403
        assert self.count() == before

    def test_unauthenticated_apply(self, world):
        before = self.count()
        response = APIClient().post(
            f"{self.url}health_nutrition/apply/", {"brand": world.own_brand.code}, format="json"
        )
        assert response.status_code == 401
        assert self.count() == before

    def test_no_other_writes(self, world):
        client = client_for(world.admin)
        assert client.post(self.url, {}, format="json").status_code == 405
        assert client.delete(self.detail_url("health_nutrition")).status_code == 405


# ---------------------------------------------------------------------------
# Token authentication


def token_client(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_token_sees_only_its_grants(world):
    token = Token.objects.create(user=world.operator)
    client = token_client(token.key)
    listing = client.get("/api/catalog/tags/")
    assert listing.status_code == 200
    codes = {row["code"] for row in listing.json()["results"]}
    assert codes == {world.own_tag.code}
    assert client.get(f"/api/catalog/tags/{world.own_tag.pk}/").status_code == 200
    assert client.get(f"/api/catalog/tags/{world.other_tag.pk}/").status_code == 404
    brands = {row["code"] for row in client.get("/api/catalog/brands/").json()["results"]}
    assert brands == {world.own_brand.code}


def test_token_writes_are_recorded_as_its_user(world):
    token = Token.objects.create(user=world.operator)
    response = token_client(token.key).patch(
        f"/api/catalog/tags/{world.own_tag.pk}/", {"description": "令牌修改"}, format="json"
    )
    assert response.status_code == 200
    newest = world.own_tag.history.order_by("-history_date", "-history_id").first()
    assert newest.history_user == world.operator
    assert newest.description == "令牌修改"


def test_token_of_analyst_cannot_write(world):
    token = Token.objects.create(user=world.analyst)
    response = token_client(token.key).patch(
        f"/api/catalog/tags/{world.own_tag.pk}/", {"description": "越权"}, format="json"
    )
    assert response.status_code == 403
    world.own_tag.refresh_from_db()
    assert world.own_tag.description != "越权"


@pytest.mark.parametrize(
    "header",
    [
        "Token " + "0" * 40,
        "Token forged-key",
        # what a WSGI server hands over for UTF-8 bytes in a header: latin-1 text
        "Token 伪造的令牌".encode().decode("latin-1"),
        "Token",
        "Token two parts",
        "Token " + "a" * 5000,
        "Bearer " + "0" * 40,
    ],
    ids=["unknown", "forged", "non-ascii", "no-key", "spaces", "huge", "other-scheme"],
)
def test_forged_or_malformed_token_is_401(world, header):
    Token.objects.create(user=world.admin)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    for method, url in (
        ("get", "/api/catalog/tags/"),
        ("get", f"/api/catalog/tags/{world.own_tag.pk}/"),
        ("post", "/api/catalog/tags/"),
    ):
        response = getattr(client, method)(url)
        assert response.status_code == 401, (header[:20], url, response.status_code)
        assert "results" not in response.json()
    assert Tag.objects.count() == 2


def test_token_of_inactive_user_is_401(world):
    token = Token.objects.create(user=world.steward)
    world.steward.is_active = False
    world.steward.save()
    response = token_client(token.key).get("/api/catalog/tags/")
    assert response.status_code == 401


def test_obtain_token_with_password(world):
    api = APIClient()
    response = api.post("/api/token/", {"username": "op", "password": "pw"}, format="json")
    assert response.status_code == 200
    key = response.json()["token"]
    assert Token.objects.get(user=world.operator).key == key
    wrong = api.post("/api/token/", {"username": "op", "password": "wrong"}, format="json")
    assert wrong.status_code == 400
    assert "token" not in wrong.json()
    listing = token_client(key).get("/api/catalog/tags/")
    assert {row["code"] for row in listing.json()["results"]} == {world.own_tag.code}
