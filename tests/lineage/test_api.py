"""The lineage REST API: sources, fields, tag inputs and impact, with the same object
permissions as everywhere (another business line's source answers 404)."""

import datetime as dt

import pytest
from rest_framework.test import APIClient

from tagportal.lineage.models import DataField, DataSource, TagInput

from ..api.contract import DetailContract, Resource, ScopedAPIContract, ScopedDetailContract
from ..conftest import client_for
from ..factories import TagFactory, UserFactory
from .conftest import NOW, make_lineage
from .factories import DataFieldFactory, DataSourceFactory, metric_tag, reading_tag

SOURCES = "/api/lineage/sources/"
FIELDS = "/api/lineage/fields/"
IMPACT = "/api/lineage/impact/"


def inputs_url(tag):
    return f"/api/lineage/tags/{tag.pk}/inputs/"


def codes(response):
    return {row["code"] for row in response.json()["results"]}


# ---------------------------------------------------------------------------
# The shared contract (list, detail, create, update, delete, scoping)


class TestDataSources(ScopedAPIContract):
    url = SOURCES
    model = DataSource

    def user(self, world):
        return world.steward

    def permitted(self, world):
        return make_lineage(world).pos

    def other(self, world):
        return make_lineage(world).tmall

    def create_data(self, world):
        return {
            "code": "yimei-wecom",
            "name": "企业微信",
            "name_en": "WeCom",
            "kind": "wecom",
            "business_line": world.own_line.code,
            "refresh_sla_hours": 12,
        }

    def update_data(self, world):
        return {"name": "门店收银系统", "refresh_sla_hours": 6}

    def deletable(self, world, user):
        return DataSourceFactory(code="yimei-old", business_line=world.own_line)


class TestDataFields(ScopedAPIContract):
    url = FIELDS
    model = DataField

    def user(self, world):
        return world.steward

    def permitted(self, world):
        return make_lineage(world).pos_amount

    def other(self, world):
        return make_lineage(world).tmall_amount

    def create_data(self, world):
        make_lineage(world)
        return {"source": "yimei-pos", "name": "store_code", "data_type": "string", "maps_to": "events.store"}

    def update_data(self, world):
        return {"description": "实付金额", "maps_to": "orders.discount"}

    def deletable(self, world, user):
        return DataFieldFactory(source=make_lineage(world).pos, name="unused")


class TestTagInputs(Resource, DetailContract, ScopedDetailContract):
    """What a tag reads: ``GET`` and ``PUT`` on ``tags/<id>/inputs/`` (no list)."""

    url = "/api/lineage/tags/"
    model = TagInput

    def user(self, world):
        return world.steward

    def permitted(self, world):
        make_lineage(world)
        return world.own_tag

    def other(self, world):
        return world.other_tag

    def detail_url(self, pk) -> str:
        return f"{self.url}{pk}/inputs/"

    def key_of(self, body):
        return body["tag"]["id"]

    def declare(self, user, tag):
        return client_for(user).put(self.detail_url(tag.pk), {"fields": ["crm.points"]}, format="json")

    def declared(self, tag) -> set:
        return set(TagInput.objects.filter(tag=tag, origin="declared").values_list("field__name", flat=True))

    def test_declare(self, world):
        tag = self.permitted(world)
        response = self.declare(self.user(world), tag)
        assert response.status_code == 200, response.content
        assert ("crm", "points", "declared") in {
            (f["source"], f["name"], f["origin"]) for f in response.json()["fields"]
        }
        assert self.declared(tag) == {"points"}

    def test_declare_of_other_scope_is_404_or_403_when_only_viewable(self, world):
        other, user = self.other(world), self.user(world)
        make_lineage(world)
        assert self.declare(user, other).status_code == 404
        self.grant_view_of_other(world, user)
        assert client_for(user).get(self.detail_url(other.pk)).status_code == 200
        assert self.declare(user, other).status_code == 403
        assert self.declared(other) == set()

    def test_read_only_role_may_not_declare(self, world):
        tag = self.permitted(world)
        assert self.declare(self.read_only_user(world), tag).status_code == 403
        response = APIClient().put(self.detail_url(tag.pk), {"fields": ["crm.points"]}, format="json")
        assert response.status_code == 401
        assert self.declared(tag) == set()


# ---------------------------------------------------------------------------
# Sources


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["operator", "analyst", "steward"])
def test_shared_sources_are_visible_another_lines_are_404(world, lin, role):
    client = client_for(getattr(world, role))
    listing = client.get(SOURCES)
    assert listing.status_code == 200
    assert codes(listing) == {"crm", "yimei-pos"}
    assert client.get(f"{SOURCES}{lin.crm.pk}/").status_code == 200
    assert client.get(f"{SOURCES}{lin.tmall.pk}/").status_code == 404
    assert client.get(f"{FIELDS}{lin.tmall_amount.pk}/").status_code == 404
    assert client_for(world.admin).get(f"{SOURCES}{lin.tmall.pk}/").status_code == 200


@pytest.mark.django_db
def test_users_without_the_permission_see_nothing(world, lin):
    assert client_for(world.nobody).get(SOURCES).status_code == 403


@pytest.mark.django_db
def test_only_admins_create_or_change_shared_sources(world, lin):
    steward = client_for(world.steward)
    data = {"code": "group-crm", "name": "集团 CRM", "kind": "crm", "business_line": None}
    refused = steward.post(SOURCES, data, format="json")
    assert refused.status_code == 403
    assert "administrator" in refused.json()["detail"]
    assert not DataSource.objects.filter(code="group-crm").exists()
    assert steward.patch(f"{SOURCES}{lin.crm.pk}/", {"name": "改名"}, format="json").status_code == 403
    assert steward.patch(f"{SOURCES}{lin.pos.pk}/", {"business_line": None}, format="json").status_code == 403
    created = client_for(world.admin).post(SOURCES, data, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["business_line"] is None
    assert created.json()["field_count"] == 0  # as documented (the list's annotation)
    field = client_for(world.admin).post(FIELDS, {"source": "group-crm", "name": "mobile"}, format="json")
    assert field.status_code == 201, field.content
    assert field.json()["dependent_tags"] == 0


@pytest.mark.django_db
def test_sources_are_not_created_in_other_lines_nor_by_operators(world, lin):
    data = {"code": "x-src", "name": "外线", "kind": "jd", "business_line": world.other_line.code}
    response = client_for(world.steward).post(SOURCES, data, format="json")
    assert response.status_code == 400
    assert "business_line" in response.json()
    data["business_line"] = world.own_line.code
    assert client_for(world.operator).post(SOURCES, data, format="json").status_code == 403


@pytest.mark.django_db
def test_bad_source_input_is_a_clear_400(world, lin):
    client = client_for(world.steward)
    response = client.post(
        SOURCES,
        {
            "code": "yimei-pos",
            "name": "重复",
            "kind": "fax",
            "business_line": "yimei",
            "refresh_sla_hours": 0,
        },
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) >= {"kind", "refresh_sla_hours", "code"}


@pytest.mark.django_db
def test_source_filters(world, lin, now):
    DataSource.objects.filter(pk=lin.pos.pk).update(last_loaded_at=NOW - dt.timedelta(hours=1))
    client = client_for(world.admin)
    assert codes(client.get(SOURCES, {"kind": "pos"})) == {"yimei-pos"}
    assert codes(client.get(SOURCES, {"kind": ["pos", "tmall"]})) == {"yimei-pos", "shipin-tmall"}
    assert codes(client.get(SOURCES, {"business_line": "shared"})) == {"crm"}
    assert codes(client.get(SOURCES, {"business_line": "yimei"})) == {"yimei-pos"}
    assert codes(client.get(SOURCES, {"stale": "true"})) == {"crm", "shipin-tmall"}
    assert codes(client.get(SOURCES, {"stale": "false"})) == {"yimei-pos"}
    assert codes(client.get(SOURCES, {"search": "天猫"})) == {"shipin-tmall"}
    stale = {row["code"]: row["is_stale"] for row in client.get(SOURCES).json()["results"]}
    assert stale == {"crm": True, "yimei-pos": False, "shipin-tmall": True}


@pytest.mark.django_db
def test_record_a_successful_load(world, lin, now):
    client = client_for(world.steward)
    response = client.post(f"{SOURCES}{lin.pos.pk}/loaded/")
    assert response.status_code == 200, response.content
    assert response.json()["is_stale"] is False
    lin.pos.refresh_from_db()
    assert lin.pos.last_loaded_at == NOW
    earlier = "2026-11-21T11:30:00+08:00"
    assert client.post(f"{SOURCES}{lin.pos.pk}/loaded/", {"at": earlier}, format="json").status_code == 200
    future = client.post(f"{SOURCES}{lin.pos.pk}/loaded/", {"at": "2026-11-22T12:00:00+08:00"}, format="json")
    assert future.status_code == 400 and "future" in future.json()["at"][0]
    ancient = client.post(
        f"{SOURCES}{lin.pos.pk}/loaded/", {"at": "0619-08-16T12:18:00+08:00"}, format="json"
    )
    assert ancient.status_code == 400 and "1970" in ancient.json()["at"][0]
    lin.pos.refresh_from_db()
    assert lin.pos.last_loaded_at == NOW
    assert client.post(f"{SOURCES}{lin.tmall.pk}/loaded/").status_code == 404
    assert client.post(f"{SOURCES}{lin.crm.pk}/loaded/").status_code == 403  # shared: admins only
    assert client_for(world.operator).post(f"{SOURCES}{lin.pos.pk}/loaded/").status_code == 403
    assert client_for(world.admin).post(f"{SOURCES}{lin.crm.pk}/loaded/").status_code == 200


# ---------------------------------------------------------------------------
# Fields


@pytest.mark.django_db
def test_field_filters_and_counts(world, lin):
    client = client_for(world.steward)
    rows = client.get(FIELDS, {"source": "yimei-pos"}).json()["results"]
    assert {r["name"]: r["dependent_tags"] for r in rows} == {"amount": 0, "visit_type": 1}
    rows = client.get(FIELDS, {"maps_to": "orders.amount"}).json()["results"]
    assert [r["source"] for r in rows] == ["yimei-pos"]


@pytest.mark.django_db
def test_bad_field_input_is_a_clear_400(world, lin):
    client = client_for(world.steward)
    response = client.post(
        FIELDS, {"source": "yimei-pos", "name": "amount", "maps_to": "wallet.cash"}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert "maps_to" in body or "name" in body
    response = client.post(
        FIELDS, {"source": "yimei-pos", "name": "shoe", "maps_to": "profile.shoe"}, format="json"
    )
    assert response.status_code == 400 and "Unknown profile attribute" in response.json()["maps_to"][0]
    response = client.post(FIELDS, {"source": "yimei-pos", "name": "amount"}, format="json")
    assert response.status_code == 400 and "already has a field" in response.json()["name"][0]
    response = client.post(FIELDS, {"source": "shipin-tmall", "name": "x"}, format="json")
    assert response.status_code == 400 and "source" in response.json()


@pytest.mark.django_db
def test_fields_of_shared_sources_are_for_admins_to_add(world, lin):
    response = client_for(world.steward).post(FIELDS, {"source": "crm", "name": "birthday"}, format="json")
    assert response.status_code == 403
    response = client_for(world.admin).post(
        FIELDS, {"source": "crm", "name": "birthday", "data_type": "date"}, format="json"
    )
    assert response.status_code == 201


# ---------------------------------------------------------------------------
# Deleting what tags depend on


@pytest.mark.django_db
def test_deleting_a_field_tags_read_needs_confirmation(world, lin):
    client = client_for(world.steward)
    url = f"{FIELDS}{lin.visit_type.pk}/"
    response = client.delete(url)
    assert response.status_code == 409, response.content
    body = response.json()
    assert [t["code"] for t in body["tags"]] == [world.own_tag.code]
    assert body["other_tags"] == 0 and "confirm" in body["detail"]
    assert DataField.objects.filter(pk=lin.visit_type.pk).exists()
    assert client.delete(url, QUERY_STRING="confirm=true").status_code == 204
    assert not DataField.objects.filter(pk=lin.visit_type.pk).exists()
    assert not TagInput.objects.filter(tag=world.own_tag).exists()


@pytest.mark.django_db
def test_deleting_a_source_tags_read_needs_confirmation(world, lin):
    spend = metric_tag(world.own_brand, world.category, "yimei_visit_spend", "orders", "amount")
    reading_tag(world.own_brand, world.category, "yimei_visit_spend2", spend)
    client = client_for(world.steward)
    url = f"{SOURCES}{lin.pos.pk}/"
    response = client.delete(url)
    assert response.status_code == 409
    tags = {t["code"]: t["depth"] for t in response.json()["tags"]}
    assert tags == {world.own_tag.code: 1, "yimei_visit_spend": 1, "yimei_visit_spend2": 2}
    assert DataSource.objects.filter(pk=lin.pos.pk).exists()
    assert client.delete(f"{url}?confirm=true").status_code == 204
    assert not DataSource.objects.filter(pk=lin.pos.pk).exists()
    assert not DataField.objects.filter(source_id=lin.pos.pk).exists()


@pytest.mark.django_db
def test_deleting_needs_the_delete_permission(world, lin):
    assert client_for(world.operator).delete(f"{FIELDS}{lin.pos_amount.pk}/").status_code == 403
    assert client_for(world.steward).delete(f"{SOURCES}{lin.crm.pk}/?confirm=true").status_code == 403
    assert DataSource.objects.filter(pk=lin.crm.pk).exists()


# ---------------------------------------------------------------------------
# Tag inputs


@pytest.mark.django_db
def test_get_a_tags_inputs(world, lin):
    response = client_for(world.analyst).get(inputs_url(world.own_tag))
    assert response.status_code == 200
    body = response.json()
    assert body["tag"]["code"] == world.own_tag.code
    assert body["fields"] == [
        {
            "id": lin.visit_type.pk,
            "source": "yimei-pos",
            "name": "visit_type",
            "maps_to": "events.type",
            "origin": "definition",
        }
    ]
    assert body["reads"] == {"fields": ["events.type"], "tags": []}
    assert body["uncovered"] == []
    assert client_for(world.analyst).get(inputs_url(world.other_tag)).status_code == 404


@pytest.mark.django_db
def test_put_declares_a_tags_inputs(world, lin):
    rfm = TagFactory(
        brand=world.own_brand,
        category=world.category,
        code="yimei_visit_rfm",
        kind="algorithm",
        definition={"type": "manual"},
    )
    response = client_for(world.operator).put(
        inputs_url(rfm),
        {"fields": [lin.points.pk, "yimei-pos.amount"], "tags": [world.own_tag.code]},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert {(f["source"], f["name"], f["origin"]) for f in body["fields"]} == {
        ("crm", "points", "declared"),
        ("yimei-pos", "amount", "declared"),
    }
    assert [(t["code"], t["origin"]) for t in body["tags"]] == [(world.own_tag.code, "declared")]
    assert TagInput.objects.filter(tag=rfm).count() == 3


@pytest.mark.django_db
def test_put_unknown_field_or_tag_is_400_and_changes_nothing(world, lin):
    client = client_for(world.steward)
    before = TagInput.objects.count()
    response = client.put(inputs_url(world.own_tag), {"fields": [lin.points.pk, 99999]}, format="json")
    assert response.status_code == 400
    assert "99999" in response.json()["fields"][0]
    response = client.put(inputs_url(world.own_tag), {"tags": ["nope"]}, format="json")
    assert response.status_code == 400 and "nope" in response.json()["tags"][0]
    assert TagInput.objects.count() == before


@pytest.mark.django_db
def test_put_a_cycle_is_400_naming_it(world, lin):
    a = metric_tag(world.own_brand, world.category, "yimei_visit_a", "orders", "amount")
    b = reading_tag(world.own_brand, world.category, "yimei_visit_b", a)
    before = TagInput.objects.count()
    response = client_for(world.steward).put(
        inputs_url(a), {"fields": [lin.points.pk], "tags": [b.pk]}, format="json"
    )
    assert response.status_code == 400
    assert "yimei_visit_a → yimei_visit_b → yimei_visit_a" in response.json()["tags"][0]
    assert TagInput.objects.count() == before


@pytest.mark.django_db
def test_put_needs_permission_to_change_the_tag(world, lin):
    assert (
        client_for(world.analyst).put(inputs_url(world.own_tag), {"fields": []}, format="json").status_code
        == 403
    )
    assert (
        client_for(world.steward).put(inputs_url(world.other_tag), {"fields": []}, format="json").status_code
        == 404
    )


# ---------------------------------------------------------------------------
# Impact


@pytest.mark.django_db
def test_impact_of_a_source_field_and_tag(world, lin):
    spend = metric_tag(world.own_brand, world.category, "yimei_visit_spend", "orders", "amount")
    derived = reading_tag(world.own_brand, world.category, "yimei_visit_spend2", spend)
    client = client_for(world.operator)
    body = client.get(IMPACT, {"source": "yimei-pos"}).json()
    assert body["root"]["type"] == "source" and body["root"]["code"] == "yimei-pos"
    assert {f["name"] for f in body["fields"]} == {"amount", "visit_type"}
    assert {t["code"]: t["depth"] for t in body["tags"]} == {
        world.own_tag.code: 1,
        "yimei_visit_spend": 1,
        "yimei_visit_spend2": 2,
    }
    body = client.get(IMPACT, {"field": lin.pos_amount.pk}).json()
    assert [t["code"] for t in body["tags"]] == ["yimei_visit_spend", "yimei_visit_spend2"]
    body = client.get(IMPACT, {"tag": spend.pk}).json()
    assert [(t["id"], t["depth"]) for t in body["tags"]] == [(derived.pk, 1)]
    body = client.get(IMPACT, {"tag": derived.pk, "direction": "upstream"}).json()
    assert [t["code"] for t in body["tags"]] == ["yimei_visit_spend"]
    assert [s["code"] for s in body["sources"]] == ["yimei-pos"]


@pytest.mark.django_db
def test_impact_of_what_the_caller_may_not_view_is_404(world, lin):
    client = client_for(world.operator)
    assert client.get(IMPACT, {"source": "shipin-tmall"}).status_code == 404
    assert client.get(IMPACT, {"field": lin.tmall_amount.pk}).status_code == 404
    assert client.get(IMPACT, {"tag": world.other_tag.pk}).status_code == 404
    assert client.get(IMPACT, {"source": "no-such"}).status_code == 404
    assert client_for(world.nobody).get(IMPACT, {"source": "crm"}).status_code == 404


@pytest.mark.django_db
def test_impact_counts_but_does_not_list_tags_the_caller_may_not_view(world, lin):
    def points_tag(brand, code):
        return TagFactory(
            brand=brand,
            category=world.category,
            code=code,
            definition={"type": "metric", "metric": {"attribute": "points"}},
        )

    points_tag(world.own_brand, "yimei_visit_points")
    points_tag(world.other_brand, "shipin_visit_points")
    body = client_for(world.operator).get(IMPACT, {"source": "crm"}).json()
    assert [t["code"] for t in body["tags"]] == ["yimei_visit_points"]
    assert body["other_tags"] == 1
    body = client_for(world.admin).get(IMPACT, {"source": "crm"}).json()
    assert {t["code"] for t in body["tags"]} == {"yimei_visit_points", "shipin_visit_points"}
    assert body["other_tags"] == 0


@pytest.mark.django_db
def test_impact_marks_stale_tags(world, lin, now):
    body = client_for(world.operator).get(IMPACT, {"source": "yimei-pos"}).json()
    assert body["tags"][0]["stale"] is True  # the POS was never loaded
    DataSource.objects.filter(pk=lin.pos.pk).update(last_loaded_at=NOW)
    body = client_for(world.operator).get(IMPACT, {"source": "yimei-pos"}).json()
    assert body["tags"][0]["stale"] is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [{}, {"source": "crm", "tag": "1"}, {"field": "abc"}, {"source": "crm", "direction": "upstream"}],
)
def test_impact_bad_queries_are_400(world, lin, params):
    assert client_for(world.operator).get(IMPACT, params).status_code == 400


@pytest.mark.django_db
def test_impact_lists_the_audiences_reading_affected_tags(world, lin):
    from tagportal.audiences.models import Audience, AudienceStatus

    spend = metric_tag(world.own_brand, world.category, "yimei_visit_spend", "orders", "amount")
    derived = reading_tag(world.own_brand, world.category, "yimei_visit_spend2", spend)
    reader = Audience.objects.create(
        name="高消费人群", business_line=world.own_line, brand=world.own_brand, size=120, is_live=True
    )
    reader.tags.set([derived])
    archived = Audience.objects.create(
        name="旧人群", business_line=world.own_line, brand=world.own_brand, status=AudienceStatus.ARCHIVED
    )
    archived.tags.set([derived])
    body = client_for(world.operator).get(IMPACT, {"source": "yimei-pos"}).json()
    assert body["audiences"] == [
        {"id": reader.pk, "name": "高消费人群", "brand": "ruiyan", "size": 120, "is_live": True}
    ]
    assert body["other_audiences"] == 0
    assert (
        client_for(world.operator).get(IMPACT, {"tag": derived.pk}).json()["audiences"][0]["id"] == reader.pk
    )
    upstream = client_for(world.operator).get(IMPACT, {"tag": derived.pk, "direction": "upstream"}).json()
    assert upstream["audiences"] == []
    other_line = UserFactory(username="op_other", role="operator", grants=[(world.other_line, "operators")])
    assert client_for(other_line).get(IMPACT, {"source": "crm"}).json()["audiences"] == []
