"""The governance API under /api/governance/: change requests and their actions, the
review queue, comments, the inbox and re-certification — status codes, scoping and
bad input (a clear 4xx, nothing saved)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Tag, TagVersion
from tagportal.governance import services as gov
from tagportal.governance.choices import ChangeKind, RequestState
from tagportal.governance.models import ChangeRequest
from tagportal.governance.services import ItemSpec
from tagportal.notifications.models import Notification

from ..conftest import client_for
from ..factories import BrandFactory
from .conftest import (
    BOOL_DEF,
    CR_URL,
    bool_tag,
    composite_tag,
    draft_tag,
    fresh,
    governance_state,
    metric_def,
    publish,
    request_in_state,
    update_spec,
)

S = RequestState


def url(cr, action: str = "") -> str:
    return f"{CR_URL}{cr.pk}/{action + '/' if action else ''}"


def post(user, path, data=None):
    return client_for(user).post(path, data or {}, format="json")


def results(response) -> list:
    body = response.json()
    return body["results"] if isinstance(body, dict) and "results" in body else body


def update_payload(tag, submit=True, **changes):
    return {
        "title": "修改到店次数说明",
        "items": [{"kind": "update", "tag": tag.pk, "changes": changes or {"description": "含预约到店"}}],
        "submit": submit,
    }


# ---------------------------------------------------------------------------
# Proposing


def test_create_update_request_and_submit(gw):
    response = post(gw.operator, CR_URL, update_payload(gw.own_tag, name="到店次数（新）"))
    assert response.status_code == 201, response.content
    body = response.json()
    cr = ChangeRequest.objects.get(pk=body["id"])
    assert cr.state == S.SUBMITTED
    assert body["state"] == "submitted"  # the answer shows the state the request is in
    assert body["title"] == "修改到店次数说明"
    assert body["kind"] == "update"
    assert body["proposer"] == "op" and body["reviewer"] is None
    assert body["business_line"] == "yimei" and body["brand"] == "ruiyan"
    (item,) = body["items"]
    assert item["tag"]["id"] == gw.own_tag.pk and item["base_version"] == 1
    assert item["changes"] == {"name": "到店次数（新）"}
    assert item["diff"][0]["field"] == "name" and item["diff"][0]["new"] == "到店次数（新）"
    assert item["produced_version"] is None
    assert fresh(gw.own_tag).name == "到店次数"


def test_create_draft_then_submit(gw):
    response = post(gw.operator, CR_URL, update_payload(gw.own_tag, submit=False))
    assert response.status_code == 201
    assert response.json()["state"] == "draft"
    cr = ChangeRequest.objects.get(pk=response.json()["id"])
    response = post(gw.operator, url(cr, "submit"))
    assert response.status_code == 200
    assert response.json()["state"] == "submitted"
    assert response.json()["submitted_at"]


def test_create_with_tag_data_in_one_call(gw):
    payload = {
        "items": [
            {
                "kind": "create",
                "tag_data": {
                    "name": "复购意向",
                    "name_en": "Repurchase intent",
                    "brand": gw.own_brand.code,
                    "category": gw.category.pk,
                    "kind": "behavior",
                    "value_type": "boolean",
                    "definition": BOOL_DEF,
                },
            }
        ],
        "submit": True,
    }
    response = post(gw.operator, CR_URL, payload)
    assert response.status_code == 201, response.content
    body = response.json()
    tag = Tag.objects.get(pk=body["items"][0]["tag"]["id"])
    assert tag.code.startswith("yimei_visit_")
    assert tag.status == TagStatus.IN_REVIEW
    assert tag.owner == gw.operator
    assert body["kind"] == "create"
    response = post(gw.steward, url(ChangeRequest.objects.get(pk=body["id"]), "approve"), {"apply": True})
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "applied"
    assert response.json()["reviewer"] == "st"
    assert response.json()["items"][0]["produced_version"] == 1
    tag = fresh(tag)
    assert tag.status == TagStatus.PUBLISHED and tag.published_version == 1


def _tag_data(w, **changes):
    data = {
        "name": "复购意向",
        "brand": w.own_brand.code,
        "category": w.category.pk,
        "kind": "behavior",
        "value_type": "boolean",
        "definition": BOOL_DEF,
    }
    data.update(changes)
    return data


BAD_PAYLOADS = {
    "no-items": (lambda w: {"items": []}, "items"),
    "unknown-kind": (lambda w: {"items": [{"kind": "rename", "tag": w.own_tag.pk}]}, "item_input"),
    "unknown-tag": (
        lambda w: {"items": [{"kind": "update", "tag": 999999, "changes": {"name": "x"}}]},
        "items[0].tag",
    ),
    "no-tag": (lambda w: {"items": [{"kind": "retire"}]}, "items[0].tag"),
    "tag-of-another-line": (
        lambda w: {"items": [{"kind": "update", "tag": w.other_tag.pk, "changes": {"name": "x"}}]},
        "items[0].tag",
    ),
    "update-unknown-field": (
        lambda w: {"items": [{"kind": "update", "tag": w.own_tag.pk, "changes": {"status": "retired"}}]},
        "changes",
    ),
    "changes-not-an-object": (
        lambda w: {"items": [{"kind": "update", "tag": w.own_tag.pk, "changes": ["name", "x"]}]},
        "changes",
    ),
    "tag-not-an-id": (
        lambda w: {"items": [{"kind": "update", "tag": "到店次数", "changes": {"name": "x"}}]},
        "item_input",
    ),
    "update-without-changes": (lambda w: {"items": [{"kind": "update", "tag": w.own_tag.pk}]}, "changes"),
    "enum-without-values": (
        lambda w: {
            "items": [
                {"kind": "update", "tag": w.own_tag.pk, "changes": {"value_type": "enum", "values": []}}
            ]
        },
        "changes.values",
    ),
    "bad-definition": (
        lambda w: {
            "items": [{"kind": "update", "tag": w.own_tag.pk, "changes": {"definition": {"type": "magic"}}}]
        },
        "changes.definition",
    ),
    "merge-into-another-brand": (
        lambda w: {"items": [{"kind": "merge", "tag": w.own_tag.pk, "merge_target": w.other_tag.pk}]},
        "merge_target",  # an operator does not see it ("unknown"), an admin: not the same brand
    ),
    "merge-into-same-line-other-brand": (
        lambda w: {"items": [{"kind": "merge", "tag": w.own_tag.pk, "merge_target": w.sibling_tag.pk}]},
        "merge_target",
    ),
    "merge-without-target": (lambda w: {"items": [{"kind": "merge", "tag": w.own_tag.pk}]}, "merge_target"),
    "merge-into-itself": (
        lambda w: {"items": [{"kind": "merge", "tag": w.own_tag.pk, "merge_target": w.own_tag.pk}]},
        "merge_target",
    ),
    "rollback-to-zero": (
        lambda w: {"items": [{"kind": "update", "tag": w.own_tag.pk, "rollback_to": 0}]},
        "item_input",
    ),
    "rollback-unknown-version": (
        lambda w: {"items": [{"kind": "update", "tag": w.own_tag.pk, "rollback_to": 5}]},
        "rollback_to",
    ),
    "tag-data-for-update": (
        lambda w: {"items": [{"kind": "update", "tag_data": _tag_data(w), "changes": {"name": "x"}}]},
        "items[0].tag_data",
    ),
    "tag-data-invalid": (
        lambda w: {"items": [{"kind": "create", "tag_data": _tag_data(w, value_type="text")}]},
        "items[0].tag_data",
    ),
    "tag-data-code-breaks-rule": (
        lambda w: {"items": [{"kind": "create", "tag_data": _tag_data(w, code="bad_code")}]},
        "code",
    ),
    "tag-data-then-bad-item": (
        lambda w: {
            "items": [
                {"kind": "create", "tag_data": _tag_data(w)},
                {"kind": "update", "tag": w.own_tag.pk, "changes": {"status": "x"}},
            ]
        },
        "items[1].changes",
    ),
    "same-tag-twice": (
        lambda w: {
            "items": [
                {"kind": "update", "tag": w.own_tag.pk, "changes": {"name": "a"}},
                {"kind": "deprecate", "tag": w.own_tag.pk},
            ]
        },
        "items[1].tag",
    ),
    "create-of-published-tag": (lambda w: {"items": [{"kind": "create", "tag": w.own_tag.pk}]}, "kind"),
}


def _check_bad_payload(w, user, case):
    build, key = BAD_PAYLOADS[case]
    payload = {"submit": True, **build(w)}
    before = governance_state()
    versions = TagVersion.objects.count()
    response = post(user, CR_URL, payload)
    assert response.status_code == 400, (case, response.content)
    body = response.json()
    assert any(k == key or k.endswith(key) for k in body), (case, body)
    assert governance_state() == before, case
    assert TagVersion.objects.count() == versions, case


@pytest.fixture
def sibling(gw):
    """A published tag of another brand of the own business line."""
    brand = BrandFactory(code="ruiyanplus", business_line=gw.own_line)
    gw.sibling_tag = publish(draft_tag(brand, gw.category, "xiong_di"))
    return gw


@pytest.mark.parametrize("case", BAD_PAYLOADS)
def test_bad_payloads_are_400_and_nothing_saved(sibling, case):
    _check_bad_payload(sibling, sibling.operator, case)


def test_bad_payloads_from_the_admin_too(sibling):
    for case in BAD_PAYLOADS:
        if case != "tag-of-another-line":  # the admin reaches every line
            _check_bad_payload(sibling, sibling.admin, case)


@pytest.mark.parametrize(("role", "status"), [("analyst", 403), ("nobody", 403)])
def test_who_may_not_propose_via_api(gw, role, status):
    before = governance_state()
    response = post(getattr(gw, role), CR_URL, update_payload(gw.own_tag))
    assert response.status_code == status
    assert governance_state() == before


def test_anonymous_refused(gw):
    from rest_framework.test import APIClient

    assert APIClient().get(CR_URL).status_code in (401, 403)
    assert APIClient().post(CR_URL, update_payload(gw.own_tag), format="json").status_code in (401, 403)
    assert not ChangeRequest.objects.exists()


def test_delete_not_allowed(gw):
    cr = request_in_state(gw, S.DRAFT)
    assert client_for(gw.admin).delete(url(cr)).status_code == 405
    assert ChangeRequest.objects.filter(pk=cr.pk).exists()


# ---------------------------------------------------------------------------
# Reviewing


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("steward", 200),
        ("steward2", 200),
        ("admin", 200),
        ("operator", 403),  # the proposer: four eyes
        ("operator2", 403),
        ("analyst", 403),
        ("other_steward", 404),  # does not even see the request
        ("other_operator", 404),
        ("nobody", 403),
    ],
)
@pytest.mark.parametrize("action", ["approve", "reject", "request-changes"])
def test_review_per_role(gw, role, status, action):
    cr = request_in_state(gw, S.SUBMITTED)
    response = post(getattr(gw, role), url(cr, action), {"reason": "理由"})
    assert response.status_code == status, response.content
    expected = {"approve": S.APPROVED, "reject": S.REJECTED, "request-changes": S.CHANGES_REQUESTED}[action]
    assert fresh(cr).state == (expected if status == 200 else S.SUBMITTED)


@pytest.mark.parametrize("proposer", ["steward", "admin"])
def test_four_eyes_via_api(gw, proposer):
    user = getattr(gw, proposer)
    response = post(user, CR_URL, update_payload(gw.own_tag))
    assert response.status_code == 201
    cr = ChangeRequest.objects.get(pk=response.json()["id"])
    response = post(user, url(cr, "approve"), {"reason": "自己批", "apply": True})
    assert response.status_code == 403
    assert "Four eyes" in response.json()["detail"]
    assert fresh(cr).state == S.SUBMITTED
    assert fresh(gw.own_tag).published_version == 1


def test_reject_without_reason_is_400(gw):
    cr = request_in_state(gw, S.SUBMITTED)
    response = post(gw.steward, url(cr, "reject"), {"reason": ""})
    assert response.status_code == 400
    assert "reason" in response.json()
    assert fresh(cr).state == S.SUBMITTED


def test_approve_and_apply_separately(gw):
    cr = request_in_state(gw, S.SUBMITTED)
    response = post(gw.steward, url(cr, "approve"), {"reason": "没问题"})
    assert response.status_code == 200
    assert response.json()["state"] == "approved"
    assert response.json()["decision_reason"] == "没问题"
    assert fresh(gw.own_tag).published_version == 1
    assert post(gw.operator2, url(cr, "apply")).status_code == 403
    assert post(gw.other_steward, url(cr, "apply")).status_code == 404
    response = post(gw.operator, url(cr, "apply"))  # the proposer applies the approved request
    assert response.status_code == 200
    assert response.json()["state"] == "applied"
    assert response.json()["items"][0]["produced_version"] == 2
    assert fresh(gw.own_tag).published_version == 2


@pytest.mark.parametrize(("role", "status"), [("steward", 403), ("admin", 403), ("operator2", 403)])
def test_only_the_proposer_submits_and_withdraws_via_api(gw, role, status):
    cr = request_in_state(gw, S.DRAFT)
    assert post(getattr(gw, role), url(cr, "submit")).status_code == status
    assert post(getattr(gw, role), url(cr, "withdraw")).status_code == status
    assert fresh(cr).state == S.DRAFT
    assert post(gw.operator, url(cr, "withdraw")).status_code == 200
    assert fresh(cr).state == S.WITHDRAWN


def test_stale_apply_is_409(gw):
    first = request_in_state(gw, S.APPROVED)
    second = request_in_state(gw, S.APPROVED, proposer=gw.operator2)
    assert post(gw.steward, url(first, "apply")).status_code == 200
    tag_before = Tag.objects.filter(pk=gw.own_tag.pk).values().get()
    response = post(gw.steward, url(second, "apply"))
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["base_version"] == 1 and body["current_version"] == 2
    assert body["tag"] == gw.own_tag.code
    assert "version 1" in body["detail"] and "version 2" in body["detail"]
    assert fresh(second).state == S.APPROVED
    assert Tag.objects.filter(pk=gw.own_tag.pk).values().get() == tag_before
    assert not TagVersion.objects.filter(tag=gw.own_tag, version=3).exists()


def test_stale_approve_with_apply_is_409_and_nothing_applied(gw):
    stale = request_in_state(gw, S.SUBMITTED)
    request_in_state(gw, S.APPLIED, proposer=gw.operator2)
    response = post(gw.steward, url(stale, "approve"), {"apply": True})
    assert response.status_code == 409
    assert response.json()["current_version"] == 2
    assert fresh(stale).state != S.APPLIED
    assert fresh(gw.own_tag).published_version == 2


def test_merge_target_gone_at_apply_time_applies_nothing(gw):
    """A bulk whose merge target was deprecated after approval: a clear 4xx and none of
    its changes applied (not the ones before the merge either)."""
    source = publish(draft_tag(gw.own_brand, gw.category, "jiu"))
    target = publish(draft_tag(gw.own_brand, gw.category, "xin"))
    cr = gov.propose(
        gw.operator,
        [update_spec(gw.own_tag, name="先改这个"), ItemSpec(ChangeKind.MERGE, source, merge_target=target)],
        submit_now=True,
    )
    gov.approve(gw.steward, cr, "同意")
    request_in_state(gw, S.APPLIED, proposer=gw.operator2, specs=[ItemSpec(ChangeKind.DEPRECATE, target)])
    assert fresh(target).status == TagStatus.DEPRECATED
    response = post(gw.steward, url(cr, "apply"))
    assert response.status_code in (400, 409), response.content
    assert fresh(cr).state == S.APPROVED
    assert fresh(gw.own_tag).name == "到店次数" and fresh(gw.own_tag).published_version == 1
    assert fresh(source).status == TagStatus.PUBLISHED


def test_dependents_need_confirmation_via_api(gw):
    base = publish(bool_tag(gw.own_brand, gw.category, "gao_yi_xiang"))
    reader = publish(composite_tag(gw.own_brand, gw.category, "zu_he", base.code))
    payload = {"items": [{"kind": "retire", "tag": base.pk}], "submit": True}
    before = governance_state()
    response = post(gw.operator, CR_URL, payload)
    assert response.status_code == 409
    body = response.json()
    assert [d["code"] for d in body["dependents"][base.code]] == [reader.code]
    assert governance_state() == before

    response = post(gw.operator, CR_URL, {**payload, "submit": False})
    assert response.status_code == 201
    assert response.json()["items"][0]["dependents"][0]["code"] == reader.code
    cr = ChangeRequest.objects.get(pk=response.json()["id"])
    assert post(gw.operator, url(cr, "submit")).status_code == 409
    assert fresh(cr).state == S.DRAFT
    response = post(gw.operator, url(cr, "submit"), {"confirm_dependents": True})
    assert response.status_code == 200
    assert response.json()["confirm_dependents"] is True
    assert post(gw.steward, url(cr, "approve"), {"apply": True}).status_code == 200
    assert fresh(base).status == TagStatus.RETIRED

    other = publish(bool_tag(gw.own_brand, gw.category, "ling_yi"))
    publish(composite_tag(gw.own_brand, gw.category, "zu_he_er", other.code))
    response = post(
        gw.operator,
        CR_URL,
        {"items": [{"kind": "deprecate", "tag": other.pk}], "submit": True, "confirm_dependents": True},
    )
    assert response.status_code == 201
    assert ChangeRequest.objects.get(pk=response.json()["id"]).state == S.SUBMITTED


def test_merge_and_rollback_via_api(gw):
    source = publish(draft_tag(gw.own_brand, gw.category, "jiu_biao_qian"))
    response = post(
        gw.operator,
        CR_URL,
        {"items": [{"kind": "merge", "tag": source.pk, "merge_target": gw.own_tag.pk}], "submit": True},
    )
    assert response.status_code == 201, response.content
    cr = ChangeRequest.objects.get(pk=response.json()["id"])
    assert response.json()["items"][0]["merge_target"]["id"] == gw.own_tag.pk
    assert post(gw.steward, url(cr, "approve"), {"apply": True}).status_code == 200
    lookup = client_for(gw.operator).get(
        "/api/catalog/tags/lookup/", {"brand": "ruiyan", "code": source.code}
    )
    assert lookup.status_code == 200
    assert lookup.json()["tag"]["code"] == gw.own_tag.code
    assert lookup.json()["notice"]

    update = request_in_state(gw, S.APPLIED, specs=[update_spec(gw.own_tag, definition=metric_def(7))])
    assert fresh(update).state == S.APPLIED
    response = post(
        gw.operator,
        CR_URL,
        {"items": [{"kind": "update", "tag": gw.own_tag.pk, "rollback_to": 1}], "submit": True},
    )
    assert response.status_code == 201, response.content
    assert response.json()["items"][0]["rollback_to"] == 1
    assert response.json()["items"][0]["changes"] == {"definition": metric_def(90)}
    cr = ChangeRequest.objects.get(pk=response.json()["id"])
    response = post(gw.steward, url(cr, "approve"), {"apply": True})
    assert response.json()["items"][0]["produced_version"] == 3
    assert fresh(gw.own_tag).definition == metric_def(90)


# ---------------------------------------------------------------------------
# Editing a draft


def test_proposer_edits_a_draft(gw):
    cr = request_in_state(gw, S.DRAFT)
    response = client_for(gw.operator).patch(
        url(cr),
        {"title": "新标题", "items": [{"kind": "update", "tag": gw.own_tag.pk, "changes": {"name": "改后"}}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["title"] == "新标题"
    assert fresh(cr).items.get().changes == {"name": "改后"}


@pytest.mark.parametrize("with_items", [True, False])
def test_others_may_not_edit_a_draft(gw, with_items):
    cr = request_in_state(gw, S.DRAFT)
    data = {"title": "别人改的标题"}
    if with_items:
        data["items"] = [{"kind": "update", "tag": gw.own_tag.pk, "changes": {"name": "别人改"}}]
    response = client_for(gw.steward).patch(url(cr), data, format="json")
    assert response.status_code == 403, response.content
    cr = fresh(cr)
    assert cr.title != "别人改的标题"
    assert cr.items.get().changes != {"name": "别人改"}


def test_submitted_request_cannot_be_edited(gw):
    cr = request_in_state(gw, S.SUBMITTED)
    response = client_for(gw.operator).patch(url(cr), {"title": "提交后改"}, format="json")
    assert response.status_code == 409
    assert fresh(cr).title != "提交后改"


# ---------------------------------------------------------------------------
# Scoping: lists and details


@pytest.fixture
def two_lines(gw):
    own = request_in_state(gw, S.SUBMITTED)
    own_draft = request_in_state(gw, S.DRAFT, proposer=gw.operator2)
    other = gov.propose(gw.other_operator, [update_spec(gw.other_tag)], submit_now=True)
    return own, own_draft, other


@pytest.mark.parametrize(
    ("role", "sees"),
    [
        ("operator", {"own", "own_draft"}),
        ("steward", {"own", "own_draft"}),
        ("analyst", {"own", "own_draft"}),
        ("admin", {"own", "own_draft", "other"}),
        ("other_steward", {"other"}),
        ("other_operator", {"other"}),
    ],
)
def test_list_scoping(gw, two_lines, role, sees):
    own, own_draft, other = two_lines
    names = {own.pk: "own", own_draft.pk: "own_draft", other.pk: "other"}
    client = client_for(getattr(gw, role))
    response = client.get(CR_URL)
    assert response.status_code == 200
    assert {names[row["id"]] for row in results(response)} == sees
    for cr, name in ((own, "own"), (other, "other")):
        detail = client.get(url(cr))
        assert detail.status_code == (200 if name in sees else 404)


def test_nobody_gets_403(gw, two_lines):
    client = client_for(gw.nobody)
    assert client.get(CR_URL).status_code == 403
    assert client.get(url(two_lines[0])).status_code == 403


def test_list_filters(gw, two_lines):
    own, own_draft, other = two_lines
    client = client_for(gw.admin)
    assert {r["id"] for r in results(client.get(CR_URL, {"business_line": "shipin"}))} == {other.pk}
    assert {r["id"] for r in results(client.get(CR_URL, {"state": "draft"}))} == {own_draft.pk}
    assert {r["id"] for r in results(client.get(CR_URL, {"proposer": "op"}))} == {own.pk}
    assert {r["id"] for r in results(client.get(CR_URL, {"tag": gw.other_tag.pk}))} == {other.pk}


# ---------------------------------------------------------------------------
# The review queue


@pytest.fixture
def queue(gw):
    sibling = BrandFactory(code="ruiyanplus", name="瑞颜+", business_line=gw.own_line)
    sibling_tag = publish(draft_tag(sibling, gw.category, "xiong_di"))
    requests = {
        "update": gov.propose(gw.operator, [update_spec(gw.own_tag)], submit_now=True),
        "deprecate_sibling": gov.propose(
            gw.operator, [ItemSpec(ChangeKind.DEPRECATE, sibling_tag)], submit_now=True
        ),
        "by_steward": gov.propose(gw.steward, [update_spec(gw.own_tag, name="管家提的")], submit_now=True),
        "draft": gov.propose(gw.operator2, [update_spec(gw.own_tag, name="草稿")]),
        "other_line": gov.propose(gw.other_operator, [update_spec(gw.other_tag)], submit_now=True),
    }
    old = timezone.now() - dt.timedelta(days=10)
    ChangeRequest.objects.filter(pk=requests["deprecate_sibling"].pk).update(submitted_at=old)
    return {name: cr.pk for name, cr in requests.items()}


def _queue(user, **params):
    response = client_for(user).get(f"{CR_URL}queue/", params)
    assert response.status_code == 200, response.content
    return {row["id"] for row in results(response)}


def test_queue_per_user(gw, queue):
    assert _queue(gw.steward) == {queue["update"], queue["deprecate_sibling"]}  # not their own
    assert _queue(gw.steward2) == {queue["update"], queue["deprecate_sibling"], queue["by_steward"]}
    assert _queue(gw.other_steward) == {queue["other_line"]}
    assert _queue(gw.admin) == {
        queue["update"],
        queue["deprecate_sibling"],
        queue["by_steward"],
        queue["other_line"],
    }
    assert _queue(gw.operator) == set()
    assert _queue(gw.analyst) == set()


def test_queue_filters(gw, queue):
    assert _queue(gw.admin, business_line="shipin") == {queue["other_line"]}
    assert _queue(gw.admin, business_line="yimei") == {
        queue["update"],
        queue["deprecate_sibling"],
        queue["by_steward"],
    }
    assert _queue(gw.steward2, brand="ruiyanplus") == {queue["deprecate_sibling"]}
    assert _queue(gw.steward2, brand="ruiyan") == {queue["update"], queue["by_steward"]}
    assert _queue(gw.steward2, kind="deprecate") == {queue["deprecate_sibling"]}
    assert _queue(gw.steward2, kind="update") == {queue["update"], queue["by_steward"]}
    assert _queue(gw.steward2, min_age_days=5) == {queue["deprecate_sibling"]}
    assert _queue(gw.steward2, min_age_days=0) == {
        queue["update"],
        queue["deprecate_sibling"],
        queue["by_steward"],
    }
    response = client_for(gw.steward2).get(f"{CR_URL}queue/", {"min_age_days": 5})
    assert results(response)[0]["age_days"] == 10


def test_queue_bad_filter_is_400(gw, queue):
    assert client_for(gw.steward).get(f"{CR_URL}queue/", {"kind": "rename"}).status_code == 400
    assert client_for(gw.steward).get(f"{CR_URL}queue/", {"min_age_days": "many"}).status_code == 400


# ---------------------------------------------------------------------------
# Comments


def test_comments_api(gw):
    cr = request_in_state(gw, S.SUBMITTED)
    response = post(gw.analyst, url(cr, "comments"), {"text": "口径和 BI 一致吗？"})
    assert response.status_code == 201, response.content
    assert response.json()["author"] == "an"
    response = post(gw.operator, url(cr, "comments"), {"text": "一致"})
    assert response.status_code == 201
    listing = client_for(gw.steward).get(url(cr, "comments"))
    assert listing.status_code == 200
    assert listing.json()["count"] == 2
    assert [(c["author"], c["text"]) for c in listing.json()["results"]] == [
        ("an", "口径和 BI 一致吗？"),
        ("op", "一致"),
    ]
    assert post(gw.steward, url(cr, "comments"), {"text": "  "}).status_code == 400
    assert post(gw.steward, url(cr, "comments"), [None, None]).status_code == 400
    assert post(gw.steward, url(cr, "comments"), {"text": 3}).status_code == 400
    assert post(gw.other_steward, url(cr, "comments"), {"text": "越权"}).status_code == 404
    assert client_for(gw.other_steward).get(url(cr, "comments")).status_code == 404
    assert cr.comments.count() == 2


# ---------------------------------------------------------------------------
# Notifications


def test_notifications_api(gw):
    cr = request_in_state(gw, S.SUBMITTED)
    other = gov.propose(gw.other_operator, [update_spec(gw.other_tag)], submit_now=True)
    client = client_for(gw.steward)
    response = client.get("/api/governance/notifications/")
    assert response.status_code == 200
    rows = results(response)
    assert [r["change_request"] for r in rows] == [cr.pk]
    assert rows[0]["read_at"] is None and rows[0]["subject"].startswith("Review requested")
    assert len(results(client_for(gw.other_steward).get("/api/governance/notifications/"))) == 1
    assert {
        r["change_request"]
        for r in results(client_for(gw.other_steward).get("/api/governance/notifications/"))
    } == {other.pk}

    gov.approve(gw.steward, cr, "同意")
    op = client_for(gw.operator)
    assert len(results(op.get("/api/governance/notifications/", {"unread": "1"}))) == 1
    note = Notification.objects.get(recipient=gw.operator)
    # marking someone else's notification read does nothing
    assert client.post(
        "/api/governance/notifications/mark-read/", {"ids": [note.pk]}, format="json"
    ).json() == {"marked": 0}
    response = op.post("/api/governance/notifications/mark-read/", {"ids": [note.pk]}, format="json")
    assert response.status_code == 200 and response.json() == {"marked": 1}
    assert results(op.get("/api/governance/notifications/", {"unread": "1"})) == []
    assert client.post("/api/governance/notifications/mark-read/", {}, format="json").json() == {"marked": 1}
    assert client_for(gw.nobody).get("/api/governance/notifications/").status_code == 200


# ---------------------------------------------------------------------------
# Re-certification


@pytest.fixture
def due(gw, settings):
    """The own tag and another own-line tag certified long ago; the other line's tag too."""
    settings.TAGPORTAL_RECERTIFICATION_DAYS = 180
    second = publish(draft_tag(gw.own_brand, gw.category, "er"))
    old = timezone.now() - dt.timedelta(days=400)
    Tag.objects.filter(pk__in=[gw.own_tag.pk, gw.other_tag.pk]).update(certified_at=old)
    Tag.objects.filter(pk=second.pk).update(certified_at=timezone.now() - dt.timedelta(days=3))
    return second


def test_recertification_list(gw, due):
    response = client_for(gw.steward).get("/api/governance/recertification/")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == [gw.own_tag.pk]
    assert {row["id"] for row in client_for(gw.admin).get("/api/governance/recertification/").json()} == {
        gw.own_tag.pk,
        gw.other_tag.pk,
    }
    assert [r["id"] for r in client_for(gw.other_steward).get("/api/governance/recertification/").json()] == [
        gw.other_tag.pk
    ]
    assert client_for(gw.operator).get("/api/governance/recertification/").json() == []


def test_recertification_certify(gw, due):
    url_ = f"/api/governance/recertification/{gw.own_tag.pk}/certify/"
    certified_at = fresh(gw.own_tag).certified_at
    assert client_for(gw.operator).post(url_, {}, format="json").status_code == 403
    assert client_for(gw.analyst).post(url_, {}, format="json").status_code == 403
    assert client_for(gw.other_steward).post(url_, {}, format="json").status_code == 404
    assert client_for(gw.nobody).post(url_, {}, format="json").status_code == 404
    assert fresh(gw.own_tag).certified_at == certified_at
    response = client_for(gw.steward).post(url_, {"note": "已复核"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == gw.own_tag.pk and response.json()["certified_at"]
    assert fresh(gw.own_tag).certified_by == gw.steward
    assert client_for(gw.steward).get("/api/governance/recertification/").json() == []
    history = client_for(gw.steward).get(f"/api/catalog/tags/{gw.own_tag.pk}/history/")
    assert results(history)[0]["change_reason"] == "已复核"
    assert results(history)[0]["history_user"] == "st"


def test_a_body_that_is_not_an_object_is_400(gw, due):
    """Fuzzing sent ``[null, null]``: each action reading the body names the problem
    (it was a 500), and nothing changes."""
    cr = request_in_state(gw, S.DRAFT, proposer=gw.operator)
    certified_at = fresh(gw.own_tag).certified_at
    for user, path in (
        (gw.operator, url(cr, "submit")),
        (gw.steward, url(cr, "comments")),
        (gw.steward, "/api/governance/notifications/mark-read/"),
        (gw.steward, f"/api/governance/recertification/{gw.own_tag.pk}/certify/"),
    ):
        response = post(user, path, [None, None])
        assert response.status_code == 400, (path, response.content)
        assert "non_field_errors" in response.json()
    assert fresh(cr).state == S.DRAFT
    assert not cr.comments.exists()
    assert fresh(gw.own_tag).certified_at == certified_at
    refused = post(gw.steward, f"/api/governance/recertification/{gw.own_tag.pk}/certify/", {"note": ["x"]})
    assert refused.status_code == 400 and "note" in refused.json()


@pytest.mark.parametrize("ids", [[{}], [-310762959834757411635200], [2**63], ["x"], None, "1"])
def test_mark_read_refuses_bad_ids(gw, ids):
    request_in_state(gw, S.SUBMITTED)  # the stewards are told
    assert Notification.objects.filter(read_at__isnull=True).exists()
    unread = Notification.objects.filter(read_at__isnull=True).count()
    response = post(gw.steward, "/api/governance/notifications/mark-read/", {"ids": ids})
    assert response.status_code == 400, response.content
    assert "ids" in response.json()
    assert Notification.objects.filter(read_at__isnull=True).count() == unread


def test_certify_unpublished_tag_is_400(gw):
    tag = draft_tag(gw.own_brand, gw.category, "cao_gao")
    response = client_for(gw.steward).post(
        f"/api/governance/recertification/{tag.pk}/certify/", {}, format="json"
    )
    assert response.status_code == 400
    assert fresh(tag).certified_at is None
