"""The audiences API: estimate, CRUD (delete archives), refresh, snapshots and diffs,
export, re-pin with approval, lookalike. Another business line's audience answers 404,
bad input a 400 naming the part at fault, and nothing is written."""

from __future__ import annotations

import pytest

from tagportal.audiences import services
from tagportal.audiences.models import Audience, AudienceSnapshot, AudienceStatus
from tagportal.core.roles import OPERATOR
from tagportal.usage import services as usage
from tagportal.usage.choices import UsageKind
from tagportal.usage.models import TagUsage

from ..conftest import client_for
from ..factories import UserFactory
from ..formula_guard import FORMULA_STARTS, HOSTILE, assert_csv_guarded, csv_cells
from . import test_lookalike
from .conftest import publish_new_computation, store_result
from .test_services import CHURN_CODE, DAYS_CODE, EXPRESSION, OILY, SKIN_CODE, churn, identity

#: 2,000 people with a planted group: a brand large enough for a lookalike model to learn from.
planted = test_lookalike.planted

URL = "/api/audiences/audiences/"
ESTIMATE = "/api/audiences/estimate/"


def detail(pk, suffix=""):
    return f"{URL}{pk}/{suffix}"


@pytest.fixture
def audience(shop, world):
    return services.create_audience(
        world.operator, brand=shop.brand, name="油皮近访客", expression=EXPRESSION
    )


@pytest.fixture
def stranger(world):
    """An operator of the other business line."""
    return UserFactory(username="op2", role=OPERATOR, grants=[(world.other_line, "operators")])


def state():
    return (Audience.objects.count(), AudienceSnapshot.objects.count(), Audience.history.count())


# ---------------------------------------------------------------------------
# Estimate


def test_estimate(shop, world):
    response = client_for(world.operator).post(
        ESTIMATE, {"brand": shop.brand.code, "expression": EXPRESSION}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["size"], body["population"], body["share"]) == (2, 10, 0.2)
    assert body["tag_versions"] == {SKIN_CODE: 1, DAYS_CODE: 1, CHURN_CODE: 1}
    assert body["took_ms"] >= 0
    # the text form in, the same answer out; analysts may estimate too
    again = client_for(world.analyst).post(
        ESTIMATE, {"brand": shop.brand.code, "expression": body["text"]}, format="json"
    )
    assert again.status_code == 200 and again.json()["size"] == 2


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"expression": {"tag": "yimei_visit_nope", "op": "is_set"}}, "tag", "yimei_visit_nope"),
        ({"expression": {"all": [OILY, {"tag": "yimei_visit_nope", "op": "is_set"}]}}, "all[1].tag", "nope"),
        ({"expression": {"tag": SKIN_CODE, "op": "gt", "value": 3}}, "op", "does not apply"),
        ({"expression": "@yimei_visit_skin_type = = 1"}, "text", ""),
        ({"expression": [1, 2]}, "expression", "expected a condition"),
        ({"brand": "qingquan"}, "brand", "qingquan"),
        ({"brand": "nope"}, "brand", "nope"),
        ({"expression": None}, "expression", ""),
    ],
)
def test_estimate_bad_input_is_a_400_naming_it(shop, world, payload, field, message):
    data = {"brand": shop.brand.code, "expression": EXPRESSION, **payload}
    response = client_for(world.operator).post(ESTIMATE, data, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body, body
    assert message in " ".join(body[field])


def test_estimate_needs_authentication(shop):
    from rest_framework.test import APIClient

    response = APIClient().post(ESTIMATE, {"brand": shop.brand.code, "expression": EXPRESSION}, format="json")
    assert response.status_code == 401


# ---------------------------------------------------------------------------
# CRUD


def test_list_filters_and_scope(shop, world, audience, stranger):
    draft = services.create_audience(
        world.operator, brand=shop.brand, name="草稿", expression=OILY, status="draft"
    )
    client = client_for(world.operator)
    body = client.get(URL).json()
    assert {row["id"] for row in body["results"]} == {audience.pk, draft.pk}
    row = next(r for r in body["results"] if r["id"] == audience.pk)
    assert (row["brand"], row["business_line"], row["kind"], row["size"], row["share"]) == (
        "ruiyan",
        "yimei",
        "rule",
        2,
        0.2,
    )
    assert set(row["tags"]) == {SKIN_CODE, DAYS_CODE, CHURN_CODE}
    assert [r["id"] for r in client.get(URL, {"status": "draft"}).json()["results"]] == [draft.pk]
    assert client.get(URL, {"brand": "qingquan"}).json()["count"] == 0
    assert client.get(URL, {"business_line": "yimei", "kind": "rule"}).json()["count"] == 2
    assert client.get(URL, {"tag": CHURN_CODE}).json()["count"] == 1
    assert client.get(URL, {"status": "nope"}).status_code == 400
    # another business line sees none of them, and gets 404 for each
    other = client_for(stranger)
    assert other.get(URL).json()["count"] == 0
    assert other.get(detail(audience.pk)).status_code == 404
    assert client_for(world.analyst).get(URL).json()["count"] == 2


def test_detail_shows_stale_pins(shop, world, audience):
    publish_new_computation(shop.churn)
    body = client_for(world.analyst).get(detail(audience.pk)).json()
    assert body["pinned_versions"] == {SKIN_CODE: 1, DAYS_CODE: 1, CHURN_CODE: 1}
    assert body["stale_pins"] == [{"code": CHURN_CODE, "name": "流失风险", "pinned": 1, "current": 2}]
    assert body["expression"] == EXPRESSION and body["owner"] == "op"


def test_create(shop, world):
    payload = {
        "brand": "ruiyan",
        "name": "油皮近访客",
        "description": "近30天到店的油皮客户",
        "expression": EXPRESSION,
        "refresh_every_hours": 24,
    }
    response = client_for(world.operator).post(URL, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["size"], body["population"], body["refresh_every_hours"]) == (
        "油皮近访客",
        2,
        10,
        24,
    )
    assert body["pinned_versions"] == {SKIN_CODE: 1, DAYS_CODE: 1, CHURN_CODE: 1}
    assert body["stale_pins"] == [] and body["status"] == "active"
    audience = Audience.objects.get(pk=body["id"])
    assert audience.snapshots.get().trigger == "created"


def test_create_from_text(shop, world):
    text = services.estimate(world.operator, shop.brand, EXPRESSION)["text"]
    response = client_for(world.operator).post(
        URL, {"brand": "ruiyan", "name": "文本", "expression": text}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["expression"] == EXPRESSION


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"expression": {"tag": "yimei_visit_nope", "op": "is_set"}}, "tag", "yimei_visit_nope"),
        ({"expression": {"tag": SKIN_CODE, "op": "eq", "value": "greasy"}}, "value", "greasy"),
        ({"expression": "@yimei_visit_skin_type = "}, "text", ""),
        ({"brand": "qingquan"}, "brand", ""),
        ({"brand": "nope"}, "brand", ""),
        ({"name": ""}, "name", ""),
        ({"refresh_every_hours": 0}, "refresh_every_hours", ""),
        ({"status": "archived"}, "status", "draft or active"),
    ],
)
def test_create_with_bad_input_is_a_400_and_writes_nothing(shop, world, changes, field, message):
    before = state()
    payload = {"brand": "ruiyan", "name": "油皮", "expression": EXPRESSION, **changes}
    response = client_for(world.operator).post(URL, payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert message in " ".join(response.json()[field])
    assert state() == before


def test_analyst_may_not_create(shop, world):
    response = client_for(world.analyst).post(
        URL, {"brand": "ruiyan", "name": "x", "expression": EXPRESSION}, format="json"
    )
    assert response.status_code == 403
    assert state() == (0, 0, 0)


def test_patch(shop, world, audience):
    client = client_for(world.operator)
    response = client.patch(
        detail(audience.pk), {"name": "新名字", "refresh_on_recompute": False}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["refresh_on_recompute"]) == ("新名字", False)
    response = client.patch(detail(audience.pk), {"expression": OILY}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["size"], body["pinned_versions"], body["tags"]) == (4, {SKIN_CODE: 1}, [SKIN_CODE])
    assert audience.snapshots.count() == 2


def test_patch_refusals(shop, world, audience, stranger):
    before = state()
    client = client_for(world.operator)
    bad = client.patch(
        detail(audience.pk), {"expression": {"tag": "yimei_visit_nope", "op": "is_set"}}, format="json"
    )
    assert bad.status_code == 400 and "yimei_visit_nope" in bad.content.decode()
    fixed = client.patch(detail(audience.pk), {"brand": "qingquan", "name": "x"}, format="json")
    assert fixed.status_code == 400 and "brand" in fixed.json()
    assert (
        client_for(world.analyst).patch(detail(audience.pk), {"name": "x"}, format="json").status_code == 403
    )
    assert client_for(stranger).patch(detail(audience.pk), {"name": "x"}, format="json").status_code == 404
    Audience.objects.filter(pk=audience.pk).update(is_live=True)
    live = client.patch(detail(audience.pk), {"expression": OILY}, format="json")
    assert live.status_code == 409 and "live" in live.json()["detail"]
    assert state() == before
    assert Audience.objects.get(pk=audience.pk).name == "油皮近访客"


def test_put_is_not_offered(world, audience):
    response = client_for(world.operator).put(detail(audience.pk), {"name": "x"}, format="json")
    assert response.status_code == 405


def test_delete_archives(world, audience, stranger):
    assert client_for(world.analyst).delete(detail(audience.pk)).status_code == 403
    assert client_for(stranger).delete(detail(audience.pk)).status_code == 404
    response = client_for(world.operator).delete(detail(audience.pk))
    assert response.status_code == 204
    audience.refresh_from_db()
    assert audience.status == AudienceStatus.ARCHIVED and audience.snapshots.count() == 1
    assert client_for(world.operator).get(URL, {"status": "archived"}).json()["count"] == 1


# ---------------------------------------------------------------------------
# Refresh, snapshots, diff


def test_refresh_snapshots_and_diff(shop, world, audience):
    client = client_for(world.operator)
    store_result(shop.churn, churn([2, 3, 4, 9]))
    response = client.post(detail(audience.pk, "refresh/"))
    assert response.status_code == 200, response.content
    assert {k: response.json()[k] for k in ("number", "trigger", "size", "joined", "left")} == {
        "number": 2,
        "trigger": "manual",
        "size": 1,
        "joined": 0,
        "left": 1,
    }
    store_result(shop.churn, churn([9]))
    client.post(detail(audience.pk, "refresh/"))

    listing = client_for(world.analyst).get(detail(audience.pk, "snapshots/")).json()
    assert [(s["number"], s["size"], s["joined"], s["left"], s["trigger"]) for s in listing["results"]] == [
        (3, 3, 2, 0, "manual"),
        (2, 1, 0, 1, "manual"),
        (1, 2, 2, 0, "created"),
    ]
    assert listing["results"][0]["tag_versions"] == {SKIN_CODE: 1, DAYS_CODE: 1, CHURN_CODE: 1}

    diff = client.get(detail(audience.pk, "snapshots/3/diff/")).json()
    assert diff == {
        "number": 3,
        "against": 2,
        "joined": 2,
        "left": 0,
        "joined_oneids": [2, 3],
        "left_oneids": [],
        "limit": 100,
    }
    against_first = client.get(detail(audience.pk, "snapshots/3/diff/"), {"against": 1, "limit": 1}).json()
    assert (against_first["joined"], against_first["joined_oneids"], against_first["left"]) == (1, [2], 0)
    first = client.get(detail(audience.pk, "snapshots/1/diff/")).json()
    assert (first["against"], first["joined_oneids"]) == (None, [1, 3])

    assert client.get(detail(audience.pk, "snapshots/9/diff/")).status_code == 404
    assert client.get(detail(audience.pk, "snapshots/3/diff/"), {"limit": 5000}).status_code == 400
    assert client.get(detail(audience.pk, "snapshots/3/diff/"), {"limit": "many"}).status_code == 400
    bad_against = client.get(detail(audience.pk, "snapshots/3/diff/"), {"against": 7})
    assert bad_against.status_code == 400 and "7" in bad_against.json()["against"][0]


def test_refresh_refusals(shop, world, audience, stranger):
    assert client_for(world.analyst).post(detail(audience.pk, "refresh/")).status_code == 403
    assert client_for(stranger).post(detail(audience.pk, "refresh/")).status_code == 404
    assert client_for(stranger).get(detail(audience.pk, "snapshots/")).status_code == 404
    assert client_for(stranger).get(detail(audience.pk, "snapshots/1/diff/")).status_code == 404
    publish_new_computation(shop.churn)
    store_result(shop.churn, churn([2, 4, 9]))
    response = client_for(world.operator).post(detail(audience.pk, "refresh/"))
    assert response.status_code == 409
    assert response.json()["stale"] == [CHURN_CODE] and CHURN_CODE in response.json()["detail"]
    assert audience.snapshots.count() == 1


# ---------------------------------------------------------------------------
# Re-pin


def test_repin_and_approval(shop, world, audience):
    publish_new_computation(shop.churn)
    store_result(shop.churn, churn([2, 3, 4, 9]))
    Audience.objects.filter(pk=audience.pk).update(is_live=True)
    operator, steward = client_for(world.operator), client_for(world.steward)

    waiting = operator.post(detail(audience.pk, "repin/"))
    assert waiting.status_code == 202, waiting.content
    assert waiting.json()["repin_requested_by"] == "op"
    assert waiting.json()["pinned_versions"][CHURN_CODE] == 1
    assert operator.post(detail(audience.pk, "approve-repin/")).status_code == 403
    assert client_for(world.analyst).post(detail(audience.pk, "repin/")).status_code == 403

    approved = steward.post(detail(audience.pk, "approve-repin/"))
    assert approved.status_code == 200, approved.content
    body = approved.json()
    assert body["pinned_versions"][CHURN_CODE] == 2 and body["repin_requested_by"] is None
    assert (body["size"], body["stale_pins"]) == (1, [])
    assert steward.post(detail(audience.pk, "approve-repin/")).status_code == 409


def test_repin_of_an_audience_not_live(shop, world, audience):
    client = client_for(world.operator)
    assert client.post(detail(audience.pk, "repin/")).status_code == 409  # nothing newer
    publish_new_computation(shop.churn)
    store_result(shop.churn, churn([2, 3, 4, 9]))
    response = client.post(detail(audience.pk, "repin/"))
    assert response.status_code == 200, response.content
    assert response.json()["pinned_versions"][CHURN_CODE] == 2
    assert audience.snapshots.order_by("-number").first().trigger == "repin"


# ---------------------------------------------------------------------------
# Export


def content(response) -> bytes:
    """A download's bytes: exports are streamed."""
    assert response.streaming
    return b"".join(response.streaming_content)


def test_export_csv(shop, world, audience):
    response = client_for(world.operator).get(detail(audience.pk, "export/"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    assert "filename*=utf-8''" in response["Content-Disposition"]  # the Chinese name, encoded
    assert content(response).decode("utf-8-sig").splitlines() == ["oneid", "1", "3"]
    usage.aggregate()
    assert TagUsage.objects.filter(kind=UsageKind.EXPORT, client=world.operator.pk).count() == 3


def test_export_guards_formulas_in_identities_clear_or_masked(shop, world, audience):
    rows = [
        identity(shop.brand, (1, 3)[number % 2], "wechat_unionid", value)
        for number, value in enumerate(HOSTILE)
    ]
    params = {"identity_type": "wechat_unionid"}
    masked = csv_cells(content(client_for(world.operator).get(detail(audience.pk, "export/"), params)))
    assert all(row.masked in masked for row in rows)
    assert not [cell for cell in masked if cell.startswith(FORMULA_STARTS)]  # a mask never starts a formula
    assert_csv_guarded(content(client_for(world.admin).get(detail(audience.pk, "export/"), params)))


def test_export_identities(shop, world, audience):
    identity(shop.brand, 3, "wechat_unionid", "oUnionXyz98765")
    masked = client_for(world.operator).get(
        detail(audience.pk, "export/"), {"identity_type": "wechat_unionid"}
    )
    assert content(masked).decode("utf-8-sig").splitlines() == [
        "oneid,type,app,value",
        "3,wechat_unionid,,oUn****65",
    ]
    clear = client_for(world.admin).get(detail(audience.pk, "export/"), {"identity_type": "wechat_unionid"})
    assert content(clear).decode("utf-8-sig").splitlines()[1] == "3,wechat_unionid,,oUnionXyz98765"


def test_export_refusals(shop, world, audience, stranger):
    assert client_for(world.analyst).get(detail(audience.pk, "export/")).status_code == 403
    assert client_for(stranger).get(detail(audience.pk, "export/")).status_code == 404
    bad = client_for(world.operator).get(
        detail(audience.pk, "export/"), {"identity_type": "qq"}, HTTP_ACCEPT="text/csv"
    )
    assert bad.status_code == 400 and "qq" in bad.json()["identity_type"][0]


# ---------------------------------------------------------------------------
# Lookalike


def test_lookalike(planted):
    world = planted.world
    response = client_for(world.operator).post(
        detail(planted.seed.pk, "lookalike/"), {"size": 100, "name": "相似油皮会员"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["name"], body["size"], body["seed"]) == (
        "lookalike",
        "相似油皮会员",
        100,
        planted.seed.pk,
    )
    assert Audience.objects.get(pk=body["id"]).snapshots.count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "size"), ({"size": 5, "threshold": 0.5}, "size"), ({"size": 0}, "size"), ({"threshold": 2}, None)],
)
def test_lookalike_bad_choices_are_a_400(planted, payload, field):
    before = Audience.objects.count()
    response = client_for(planted.world.operator).post(
        detail(planted.seed.pk, "lookalike/"), payload, format="json"
    )
    assert response.status_code == 400, response.content
    if field:
        assert field in response.json()
    assert Audience.objects.count() == before


def test_lookalike_of_a_tiny_seed_is_a_400(shop, world, audience):
    response = client_for(world.operator).post(detail(audience.pk, "lookalike/"), {"size": 3}, format="json")
    assert response.status_code == 400, response.content
    assert Audience.objects.count() == 1


def test_lookalike_refusals(shop, world, audience, stranger):
    assert (
        client_for(world.analyst)
        .post(detail(audience.pk, "lookalike/"), {"size": 3}, format="json")
        .status_code
        == 403
    )
    assert (
        client_for(stranger).post(detail(audience.pk, "lookalike/"), {"size": 3}, format="json").status_code
        == 404
    )


# ---------------------------------------------------------------------------
# Admin


def admin_client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_admin_list_warns_of_stale_pins_and_is_scoped(shop, world, audience, stranger):
    publish_new_computation(shop.churn)
    page = admin_client(world.operator).get("/admin/audiences/audience/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "油皮近访客" in html and "20.0%" in html
    assert "流失风险 (yimei_visit_churn_risk) v1→v2" in html
    assert "油皮近访客" not in admin_client(stranger).get("/admin/audiences/audience/").content.decode()
    assert admin_client(stranger).get(f"/admin/audiences/audience/{audience.pk}/change/").status_code in (
        302,
        403,
        404,
    )


def test_admin_edits_through_the_services(shop, world, audience):
    client = admin_client(world.operator)
    url = f"/admin/audiences/audience/{audience.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    response = client.post(
        url, {"name": "后台改名", "description": "", "refresh_on_recompute": "on", "refresh_every_hours": "0"}
    )
    assert response.status_code == 200 and "at least 1" in response.content.decode()  # the form refuses 0
    response = client.post(
        url, {"name": "后台改名", "description": "", "refresh_on_recompute": "on", "refresh_every_hours": "6"}
    )
    assert response.status_code == 302
    audience.refresh_from_db()
    assert (audience.name, audience.refresh_every_hours) == ("后台改名", 6)
    assert audience.history.first().history_user == world.operator
    assert audience.expression == EXPRESSION and audience.snapshots.count() == 1


def test_admin_actions(shop, world, audience):
    client = admin_client(world.operator)
    store_result(shop.churn, churn([2, 3, 4, 9]))
    changelist = "/admin/audiences/audience/"
    client.post(changelist, {"action": "refresh_now", "_selected_action": [audience.pk]})
    assert audience.snapshots.count() == 2
    response = client.post(
        changelist, {"action": "repin_selected", "_selected_action": [audience.pk]}, follow=True
    )
    assert "already pinned" in response.content.decode()
    client.post(changelist, {"action": "archive_selected", "_selected_action": [audience.pk]})
    audience.refresh_from_db()
    assert audience.status == AudienceStatus.ARCHIVED
    snapshots = client.get("/admin/audiences/audiencesnapshot/")
    assert snapshots.status_code == 200 and "油皮近访客" in snapshots.content.decode()
    snapshot = audience.snapshots.get(number=2)
    assert client.get(f"/admin/audiences/audiencesnapshot/{snapshot.pk}/change/").status_code == 200
    assert client.get("/admin/audiences/audience/add/").status_code == 403
