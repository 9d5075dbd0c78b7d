"""An out-of-date change request: made on version N of a tag, it is out of date once
version N+1 is published. Its page, the review queue and the API say so; approving,
sending back and applying it are refused (409) with nothing recorded — no state change,
no audit event, no notification, no comment, no version — and the page's message and
badge agree; rejecting or withdrawing still closes it."""

from __future__ import annotations

import pytest

from tagportal.catalog.models import Tag, TagVersion
from tagportal.governance import services as gov
from tagportal.governance.choices import RequestState as S
from tagportal.governance.models import ChangeRequest

from ..conftest import client_for
from .conftest import CR_URL, fresh, governance_state, request_in_state, update_spec


@pytest.fixture
def stale(gw):
    """Request #A (submitted) made on version 1 of the own tag; then another request
    changing the same tag is approved and applied: version 2 is published."""
    cr = request_in_state(gw, S.SUBMITTED, specs=[update_spec(gw.own_tag, description="旧版本上的修改")])
    request_in_state(gw, S.APPLIED, proposer=gw.operator2, specs=[update_spec(gw.own_tag, name="新名称")])
    assert fresh(gw.own_tag).published_version == 2
    gw.stale = cr
    return gw


def recorded(cr) -> tuple:
    """Everything a refused action must leave as it was."""
    cr = ChangeRequest.objects.get(pk=cr.pk)
    return (
        governance_state(),
        cr.state,
        cr.reviewer_id,
        cr.decided_at,
        cr.decision_reason,
        cr.audit_events.count(),
        cr.notifications.count(),
        TagVersion.objects.count(),
        Tag.objects.filter(pk=cr.items.get().tag_id).values_list("name", "description").get(),
    )


def test_the_api_says_out_of_date(stale):
    w = stale
    body = client_for(w.steward).get(f"{CR_URL}{w.stale.pk}/").json()
    assert body["stale"] is True and body["current_version"] == 2
    assert body["items"][0]["stale"] is True and body["items"][0]["base_version"] == 1
    # a request on the current version is not, nor an applied one
    current = request_in_state(w, S.SUBMITTED, proposer=w.operator2, specs=[update_spec(fresh(w.own_tag))])
    body = client_for(w.steward).get(f"{CR_URL}{current.pk}/").json()
    assert body["stale"] is False and body["current_version"] == 2 and body["items"][0]["stale"] is False
    applied = ChangeRequest.objects.get(state=S.APPLIED)
    assert client_for(w.steward).get(f"{CR_URL}{applied.pk}/").json()["stale"] is False
    listed = {row["id"]: row["stale"] for row in client_for(w.steward).get(CR_URL).json()["results"]}
    assert listed[w.stale.pk] is True and listed[current.pk] is False


@pytest.mark.parametrize(
    "action, data",
    [
        ("approve", {"reason": "同意"}),
        ("approve", {"reason": "同意", "apply": True}),
        ("request-changes", {"reason": "请更新"}),
    ],
    ids=["approve", "approve-and-apply", "request-changes"],
)
def test_api_refuses_with_409_and_records_nothing(stale, action, data):
    w = stale
    before = recorded(w.stale)
    response = client_for(w.steward).post(f"{CR_URL}{w.stale.pk}/{action}/", data, format="json")
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["base_version"] == 1 and body["current_version"] == 2 and body["tag"] == w.own_tag.code
    assert "out of date" in body["detail"] and "nothing was recorded" in body["detail"]
    assert recorded(w.stale) == before
    assert fresh(w.stale).state == S.SUBMITTED


def test_api_refuses_to_apply_an_approved_request_gone_stale(gw):
    cr = request_in_state(gw, S.APPROVED, specs=[update_spec(gw.own_tag, description="先批准后过期")])
    request_in_state(gw, S.APPLIED, proposer=gw.operator2, specs=[update_spec(gw.own_tag, name="新名称")])
    before = recorded(cr)
    response = client_for(gw.steward).post(f"{CR_URL}{cr.pk}/apply/", {}, format="json")
    assert response.status_code == 409 and response.json()["current_version"] == 2
    assert recorded(cr) == before
    # it is closed by withdrawing it (the proposer) ...
    response = client_for(gw.operator).post(f"{CR_URL}{cr.pk}/withdraw/", {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == S.WITHDRAWN and response.json()["stale"] is False


def test_an_approved_request_gone_stale_can_be_rejected(gw):
    cr = request_in_state(gw, S.APPROVED, specs=[update_spec(gw.own_tag, description="先批准后过期")])
    request_in_state(gw, S.APPLIED, proposer=gw.operator2, specs=[update_spec(gw.own_tag, name="新名称")])
    gov.reject(gw.steward2, cr, "已过期")
    assert fresh(cr).state == S.REJECTED
    # an approved request that is not stale still cannot be rejected
    current = request_in_state(gw, S.APPROVED, specs=[update_spec(fresh(gw.own_tag))])
    with pytest.raises(gov.InvalidTransition):
        gov.reject(gw.steward2, current, "不行")


def test_reject_and_withdraw_still_close_a_stale_request(stale):
    w = stale
    response = client_for(w.steward).post(
        f"{CR_URL}{w.stale.pk}/reject/", {"reason": "已过期"}, format="json"
    )
    assert response.status_code == 200 and response.json()["state"] == S.REJECTED
    other = request_in_state(w, S.SUBMITTED, specs=[update_spec(w.own_tag)])  # own_tag: version 1 object
    assert fresh(other).items.get().base_version == 2  # made on the current version: not stale
    assert gov.stale_changes(fresh(other)) == []


def test_the_page_warns_and_offers_only_reject(client, stale):
    w = stale
    client.force_login(w.steward)
    page = client.get(f"/review/{w.stale.pk}/").content.decode()
    assert 'id="tp-out-of-date-warning"' in page and 'id="tp-out-of-date-badge"' in page
    assert "version 1" in page and "version 2 is the published version now" in page
    assert 'id="tp-approve"' not in page and 'id="tp-request-changes"' not in page
    assert 'id="tp-reject"' in page and 'id="tp-apply-form"' not in page
    # the diff's column says the version it was made on is not the current one
    assert "Version 1, when proposed (version 2 is published now)" in page


@pytest.mark.parametrize(
    "post",
    [
        {"action": "approve", "reason": "同意", "apply_now": "on"},
        {"action": "approve", "reason": "同意"},
        {"action": "request_changes", "reason": "请更新"},
    ],
    ids=["approve-and-apply", "approve", "request-changes"],
)
def test_the_page_refuses_and_its_message_and_badge_agree(client, stale, post):
    """The browser case of the finding: the message said "not recorded" while the
    badge read 已批准. Now nothing is recorded, and the page says so in both places."""
    w = stale
    client.force_login(w.steward)
    before = recorded(w.stale)
    response = client.post(f"/review/{w.stale.pk}/", post, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "out of date" in html and "nothing was recorded" in html
    assert 'data-state="submitted"' in html  # the state badge: still in review
    assert "Approved" not in [m.message for m in response.context["messages"]]
    assert recorded(w.stale) == before


def test_the_page_in_chinese(client, stale):
    w = stale
    client.force_login(w.steward)
    response = client.post(
        f"/review/{w.stale.pk}/",
        {"action": "approve", "reason": "同意", "apply_now": "on"},
        follow=True,
        headers={"accept-language": "zh-hans"},
    )
    html = response.content.decode()
    assert "已过期" in html and "未记录任何操作" in html
    assert 'data-state="submitted"' in html


def test_the_queue_marks_it(client, stale):
    w = stale
    current = request_in_state(w, S.SUBMITTED, proposer=w.operator2, specs=[update_spec(fresh(w.own_tag))])
    client.force_login(w.steward)
    response = client.get("/review/")
    rows = {row["cr"].pk: row for row in response.context["rows"]}
    assert [item.tag.code for item in rows[w.stale.pk]["out_of_date"]] == [w.own_tag.code]
    assert rows[current.pk]["out_of_date"] == []
    html = response.content.decode()
    row_html = html.split(f'data-request="{w.stale.pk}"')[1].split("</tr>")[0]
    assert "tp-out-of-date" in row_html
    assert "tp-out-of-date" not in html.split(f'data-request="{current.pk}"')[1].split("</tr>")[0]
