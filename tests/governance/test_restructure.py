"""Restructuring the category tree through a change request: the preview lists the tags
with their current and re-suggested codes, a second steward approves, applying recodes
the tags (old codes kept as aliases: the API, audiences and their pins still resolve),
and invalid or foreign restructures are refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from tagportal.audiences import services as audiences
from tagportal.audiences.members import select
from tagportal.audiences.models import Audience
from tagportal.audiences.store import STORE
from tagportal.catalog.models import Category, Tag, TagAlias
from tagportal.governance import restructure
from tagportal.governance import services as gov
from tagportal.governance.choices import AuditAction, ChangeKind, RequestState
from tagportal.governance.models import AuditEvent, ChangeRequest
from tagportal.profiles.models import Customer

from ..audiences.conftest import store_result
from ..conftest import client_for
from ..factories import CategoryFactory
from .conftest import bool_tag, publish


@pytest.fixture
def tree(gw):
    w = gw
    w.skin = CategoryFactory(code="skin", name="肤质档案")
    w.care = CategoryFactory(code="care", name="护理偏好", parent=w.skin, naming_rule=None)
    w.oily = publish(bool_tag(w.own_brand, w.skin, "you_pi"), user=w.admin)
    w.cared = publish(bool_tag(w.own_brand, w.care, "hu_li"), user=w.admin)
    return w


def test_preview_lists_current_and_resuggested_codes(tree):
    w = tree
    result = restructure.build_preview("rename", w.skin.pk, new_name="肤质", new_code="skinfile")
    rows = {row["old_code"]: row for row in restructure.preview_rows(result)}
    assert set(rows) == {"yimei_skin_you_pi"}  # the child category keeps its own code
    assert rows["yimei_skin_you_pi"]["new_code"] == "yimei_skinfile_you_pi"
    assert rows["yimei_skin_you_pi"]["new_category"] == "肤质"
    merged = restructure.build_preview("merge", w.care.pk, w.category.pk)
    assert [(r["old_code"], r["new_code"]) for r in restructure.preview_rows(merged)] == [
        ("yimei_care_hu_li", "yimei_visit_hu_li")
    ]


def test_an_approved_rename_recodes_keeps_aliases_and_audiences_resolve(tree):
    w = tree
    STORE.clear()
    for oneid in range(1, 11):
        Customer.objects.create(brand=w.own_brand, oneid=oneid)
    store_result(w.oily, {"true": [1, 2, 3], "false": [4, 5]})
    audience = audiences.create_audience(
        w.operator,
        brand=w.own_brand,
        name="油皮",
        expression={"tag": "yimei_skin_you_pi", "op": "eq", "value": True},
    )
    cr = restructure.propose(
        w.steward, operation="rename", source=w.skin.pk, new_code="skinfile", submit_now=True
    )
    assert cr.state == RequestState.SUBMITTED and cr.restructure["operation"] == "rename"
    item = cr.items.get()
    assert item.kind == ChangeKind.RESTRUCTURE and item.changes["code"] == "yimei_skinfile_you_pi"
    assert Tag.objects.get(pk=w.oily.pk).code == "yimei_skin_you_pi"  # nothing before approval
    with pytest.raises(PermissionDenied, match="Four eyes"):
        gov.approve(w.steward, cr, "ok", apply_now=True)

    gov.approve(w.steward2, cr, "同意", apply_now=True)
    tag = Tag.objects.get(pk=w.oily.pk)
    assert tag.code == "yimei_skinfile_you_pi" and tag.published_version == 2
    assert Category.objects.get(pk=w.skin.pk).code == "skinfile"
    assert TagAlias.objects.filter(brand=w.own_brand, code="yimei_skin_you_pi", target=tag).exists()
    # lookups by the old code: API, a new expression, the audience (renamed, no re-pin asked)
    body = client_for(w.operator).get("/api/catalog/tags/lookup/", {"code": "yimei_skin_you_pi"}).json()
    assert body["tag"]["code"] == "yimei_skinfile_you_pi"
    assert select(w.own_brand, {"tag": "yimei_skin_you_pi", "op": "eq", "value": True}).size == 3
    audience.refresh_from_db()
    assert audience.expression["tag"] == "yimei_skinfile_you_pi"
    assert "yimei_skinfile_you_pi" in audience.pinned_versions and audiences.stale_pins(audience) == []
    # recorded
    assert AuditEvent.objects.filter(change_request=cr, action=AuditAction.APPLIED, tag=tag).exists()
    assert f"#{cr.pk}" in tag.history.first().history_change_reason


def test_a_merge_moves_children_recodes_and_removes_the_category(tree):
    w = tree
    other = CategoryFactory(code="skin2", name="肤质2")
    moved = publish(bool_tag(w.own_brand, other, "gan_pi"), user=w.admin)
    CategoryFactory(code="sub", name="子类", parent=other)
    cr = restructure.propose(w.steward, operation="merge", source=other.pk, target=w.skin.pk, submit_now=True)
    gov.approve(w.steward2, cr, "同意", apply_now=True)
    assert not Category.objects.filter(pk=other.pk).exists()
    assert Category.objects.get(code="sub").parent_id == w.skin.pk
    tag = Tag.objects.get(pk=moved.pk)
    assert (tag.code, tag.category_id) == ("yimei_skin_gan_pi", w.skin.pk)
    assert TagAlias.objects.filter(code="yimei_skin2_gan_pi", target=tag).exists()


def test_refusals(tree):
    w = tree
    with pytest.raises(ValidationError, match="inside itself"):
        restructure.build_preview("move", w.skin.pk, w.care.pk)  # a cycle
    with pytest.raises(ValidationError, match="itself"):
        restructure.build_preview("merge", w.skin.pk, w.skin.pk)
    with pytest.raises(ValidationError):
        restructure.build_preview("rename", w.skin.pk)  # nothing to rename to
    with pytest.raises(ValidationError):
        restructure.build_preview("rename", w.skin.pk, new_code="Bad-Code")
    # world.category holds tags of both business lines: not merged into by one line
    with pytest.raises((ValidationError, PermissionDenied)):
        restructure.propose(w.steward, operation="merge", source=w.care.pk, target=w.category.pk)
    # another brand's category
    foreign = CategoryFactory(code="foreign", name="别家")
    publish(bool_tag(w.other_brand, foreign, "bie_jia"), user=w.admin)
    with pytest.raises(PermissionDenied, match="may not change"):
        restructure.propose(w.steward, operation="rename", source=foreign.pk, new_name="改名")
    with pytest.raises(PermissionDenied):
        restructure.propose(w.analyst, operation="rename", source=w.skin.pk, new_name="改名")
    assert Audience.objects.count() == 0 and not Category.objects.filter(name="改名").exists()


def test_the_stewards_form_previews_and_proposes(tree):
    from django.test import Client
    from django.urls import reverse

    w = tree
    url = reverse("governance:restructure")
    operator = Client()
    operator.force_login(w.operator)
    assert operator.get(url).status_code == 403  # stewards only
    steward = Client()
    steward.force_login(w.steward)
    assert 'id="tp-restructure-form"' in steward.get(url).content.decode()
    data = {"operation": "rename", "source": w.skin.pk, "new_code": "skinfile", "preview": "1"}
    page = steward.post(url, data)
    html = page.content.decode()
    assert page.status_code == 200 and "yimei_skin_you_pi" in html and "yimei_skinfile_you_pi" in html
    refused = steward.post(
        url, {"operation": "move", "source": w.skin.pk, "target": w.care.pk, "preview": "1"}
    )
    assert refused.status_code == 400 and "inside itself" in refused.content.decode()
    proposed = steward.post(url, {**data, "propose": "1"})
    assert proposed.status_code == 302
    cr = ChangeRequest.objects.get(restructure__operation="rename")
    assert cr.state == RequestState.SUBMITTED and cr.proposer == w.steward
    assert Tag.objects.get(pk=w.oily.pk).code == "yimei_skin_you_pi"  # waits for the second steward
    assert steward.get(reverse("governance:request", args=[cr.pk])).status_code == 200


def test_the_api_shows_the_restructure_and_its_items(tree):
    w = tree
    cr = restructure.propose(w.steward, operation="rename", source=w.skin.pk, new_code="skinfile")
    body = client_for(w.steward2).get(f"/api/governance/change-requests/{cr.pk}/").json()
    assert body["restructure"]["operation"] == "rename" and body["restructure"]["new_code"] == "skinfile"
    assert [item["kind"] for item in body["items"]] == ["restructure"]
