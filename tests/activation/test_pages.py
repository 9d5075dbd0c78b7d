"""The activation pages: sending to an audience now (preview counts, confirm, tag
variables, refusals), the API action, the channel accounts, deliveries (masked
recipients, funnel) and dead letters (retry), and the channels section of the audience
page, for each role and in Chinese."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from tagportal.activation import deliveries, sends
from tagportal.activation import services as channel_services
from tagportal.activation.models import Consent, Delivery, DeliveryState, Send, Suppression
from tagportal.audiences import services as audience_services
from tagportal.usage.models import UsageBuffer
from tests.conftest import client_for as api_client_for

from ..audiences.conftest import shop  # noqa: F401 (a fixture)
from ..audiences.test_services import identity
from .helpers import account as make_account

LOW_CHURN = {"tag": "yimei_visit_churn_risk", "op": "eq", "value": "low"}  # 1, 3, 5, 6, 7, 8, 10
OPENIDS = {
    1: "oOpenIdPerson0001",
    3: "oOpenIdPerson0003",
    5: "oOpenIdPerson0005",
    6: "oOpenIdPerson0006",
    7: "oOpenIdPerson0007",
}
SKIN_VARIABLE = "{{tag:yimei_visit_skin_type}}"


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def audience(shop, world):  # noqa: F811
    return audience_services.create_audience(
        world.operator, brand=shop.brand, name="低流失", expression=LOW_CHURN
    )


@pytest.fixture
def mp(world, shop):  # noqa: F811
    """A 公众号 of the brand: people 1, 3, 5, 6, 7 have its openid (8 and 10 do not); 3
    opted out of 公众号 messages and 5 is suppressed, so 1, 6 and 7 may be sent to."""
    acct = make_account(world.own_brand, "wechat_mp", name="瑞颜服务号")
    for oneid, openid in OPENIDS.items():
        identity(world.own_brand, oneid, "wechat_openid", openid, app="wx-app")
    Consent.objects.create(brand=world.own_brand, oneid=3, channel="wechat_mp", state="opted_out")
    Suppression.objects.create(brand=world.own_brand, key_type="oneid", key="5", reason="complained")
    return acct


def form_data(account, **extra) -> dict:
    return {
        "account": account.pk,
        "template": "TPL-skin",
        "key_1": "thing1",
        "value_1": f"您的肤质：{SKIN_VARIABLE}",
        "key_2": "thing2",
        "value_2": "欢迎到店",
        **extra,
    }


def send_url(audience) -> str:
    return reverse("activation:send", args=[audience.pk])


# ---------------------------------------------------------------------------
# Preview and confirm


def test_preview_counts_members_reachable_and_allowed(world, audience, mp):
    response = client_for(world.operator).post(send_url(audience), {**form_data(mp), "preview": "1"})
    assert response.status_code == 200
    preview = response.context["preview"]
    assert (preview.members, preview.reachable, preview.allowed, preview.will_send) == (7, 5, 3, 3)
    assert preview.refused == {"opted_out": 1, "suppressed": 1}
    page = response.content.decode()
    assert 'id="tp-will-send"><strong>3</strong>' in page and 'id="tp-confirm"' in page
    assert not Send.objects.exists()


def test_confirm_sends_only_to_the_allowed_with_their_tag_values(world, shop, audience, mp):  # noqa: F811
    response = client_for(world.operator).post(send_url(audience), {**form_data(mp), "confirm": "1"})
    send = Send.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"?send={send.pk}")
    assert send.audience == audience and send.account == mp and send.created_by == world.operator
    assert send.content == {
        "template_id": "TPL-skin",
        "data": {"thing1": f"您的肤质：{SKIN_VARIABLE}", "thing2": "欢迎到店"},
    }
    rows = {d.oneid: d for d in Delivery.objects.filter(send=send)}
    assert sorted(rows) == [1, 6, 7]
    assert {o: d.variables for o, d in rows.items()} == {
        1: {"yimei_visit_skin_type": "oily"},
        6: {"yimei_visit_skin_type": "dry"},
        7: {"yimei_visit_skin_type": "mixed"},
    }
    assert rows[1].recipient == OPENIDS[1] and rows[1].state == DeliveryState.QUEUED
    assert list(UsageBuffer.objects.filter(kind="activation").values_list("tag_id", "client")) == [
        (shop.churn.pk, world.operator.pk)
    ]


def test_the_adapter_gets_the_content_filled_for_the_person(world, audience, mp, monkeypatch):
    sent = []
    monkeypatch.setitem(channel_services.CLIENTS, "wechat_mp", lambda account: object())
    monkeypatch.setitem(
        deliveries.ADAPTERS, "wechat_mp", lambda client, d, content: sent.append(content) or "m1"
    )
    send, counted = sends.send_to_audience(
        world.operator, audience, mp, {"template_id": "T", "data": {"k": f"肤质{SKIN_VARIABLE}"}}
    )
    delivery = send.deliveries.get(oneid=6)
    assert deliveries.process(delivery) == DeliveryState.SENT
    assert sent == [{"template_id": "T", "data": {"k": "肤质dry"}}]
    assert counted.will_send == 3


def test_an_unknown_tag_variable_is_a_form_error(world, audience, mp):
    data = form_data(mp, value_1="{{tag:no_such_tag}}", preview="1")
    response = client_for(world.operator).post(send_url(audience), data)
    assert response.status_code == 200
    assert "no_such_tag" in str(response.context["form"].non_field_errors())
    assert response.context.get("preview") is None
    response = client_for(world.operator).post(send_url(audience), {**data, "confirm": "1"})
    assert response.status_code == 200 and not Send.objects.exists()


def test_content_missing_what_the_kind_needs_is_a_form_error(world, audience, mp):
    response = client_for(world.operator).post(send_url(audience), form_data(mp, template="", preview="1"))
    assert response.status_code == 200
    assert "template ID" in str(response.context["form"].non_field_errors())


def test_another_brands_account_is_refused(world, audience, mp):
    other = make_account(world.other_brand, "webhook", name="清泉 CRM")
    response = client_for(world.admin).post(send_url(audience), {**form_data(other), "confirm": "1"})
    assert response.status_code == 200 and "account" in response.context["form"].errors
    assert not Send.objects.exists()
    with pytest.raises(sends.SendRefused):
        sends.send_to_audience(world.admin, audience, other, {"text": "hi"})


def test_who_may_send(world, audience, mp, shop):  # noqa: F811
    from ..factories import UserFactory

    assert client_for(world.analyst).get(send_url(audience)).status_code == 403
    assert client_for(world.nobody).get(send_url(audience)).status_code == 404
    stranger = UserFactory(username="op2", role="operator", grants=[(world.other_line, "operators")])
    assert client_for(stranger).get(send_url(audience)).status_code == 404
    response = client_for(world.operator).get(send_url(audience))
    assert response.status_code == 200
    assert list(response.context["form"].fields["account"].queryset) == [mp]


# ---------------------------------------------------------------------------
# The API


def test_api_preview_then_send(world, audience, mp):
    client = api_client_for(world.operator)
    body = {
        "audience": audience.pk,
        "account": mp.pk,
        "content": {"template_id": "T", "data": {"k": SKIN_VARIABLE}},
        "preview": True,
    }
    response = client.post("/api/activation/sends/", body, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "send": None,
        "members": 7,
        "reachable": 5,
        "unreachable": 2,
        "allowed": 3,
        "refused": {"opted_out": 1, "suppressed": 1},
        "will_send": 3,
    }
    assert not Send.objects.exists()
    response = client.post("/api/activation/sends/", {**body, "preview": False}, format="json")
    assert response.status_code == 201
    assert Delivery.objects.filter(send_id=response.json()["send"]).count() == 3


def test_api_refusals_are_4xx(world, audience, mp):
    good = {"audience": audience.pk, "account": mp.pk, "content": {"template_id": "T"}}
    operator = api_client_for(world.operator)
    bad = operator.post(
        "/api/activation/sends/",
        {**good, "content": {"template_id": "T", "data": {"k": "{{tag:nope}}"}}},
        format="json",
    )
    assert bad.status_code == 400 and "nope" in str(bad.json())
    assert (
        operator.post("/api/activation/sends/", {**good, "content": "text"}, format="json").status_code == 400
    )
    assert (
        operator.post("/api/activation/sends/", {**good, "account": 999999}, format="json").status_code == 400
    )
    assert (
        operator.post("/api/activation/sends/", {**good, "audience": 999999}, format="json").status_code
        == 404
    )
    assert (
        api_client_for(world.analyst).post("/api/activation/sends/", good, format="json").status_code == 403
    )
    assert not Send.objects.exists()


# ---------------------------------------------------------------------------
# Pages


@pytest.fixture
def dead(world):
    acct = make_account(world.own_brand, "webhook", name="瑞颜 CRM")
    send = deliveries.create_send(acct, {"text": "hi"}, [(1, "crm-member-123456")], kick=False)
    delivery = send.deliveries.get()
    Delivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.DEAD, attempts=6, last_error_code="timeout"
    )
    return delivery


def test_pages_answer_in_chinese(world, audience, mp, dead):
    client = client_for(world.steward)
    pages = {
        reverse("activation:accounts"): ["渠道账号", "瑞颜服务号", "微信公众号", "测试连接"],
        reverse("activation:deliveries"): ["投递记录", "状态漏斗", "plotly/plotly.min.js"],
        reverse("activation:dead_letters"): ["死信", "重试"],
        send_url(audience): ["立即发送", "预览", "渠道账号"],
        reverse("audiences:detail", args=[audience.pk]): ["立即发送", 'id="tp-section-activation"'],
    }
    for url, words in pages.items():
        response = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
        page = response.content.decode()
        assert response.status_code == 200, url
        assert "触达" in page, url
        for word in words:
            assert word in page, (url, word)
        # scripts and styles come from this server: no address on another host
        assert not re.search(r'(?:src|href)="(?:https?:)?//', page), url


def test_deliveries_list_masks_recipients_and_counts_states(world, dead):
    response = client_for(world.operator).get(
        reverse("activation:deliveries"), {"state": "dead", "kind": "webhook"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "crm-member-123456" not in page and "crm****56" in page
    # made, then reached sent / delivered / read / clicked: a dead one made it no further
    assert response.context["figures"]["funnel"]["data"][0]["x"] == [1, 0, 0, 0, 0]
    assert ("dead", "dead", 1) in response.context["counts"]
    other = client_for(world.operator).get(reverse("activation:deliveries"), {"send": dead.send_id + 1})
    assert other.context["rows"] == []


def test_dead_letter_retry(world, dead):
    url = reverse("activation:retry", args=[dead.pk])
    assert client_for(world.operator).post(url).status_code == 403
    assert "Retry" not in client_for(world.operator).get(reverse("activation:dead_letters")).content.decode()
    response = client_for(world.steward).post(url)
    assert response.status_code == 302
    dead.refresh_from_db()
    assert dead.state == DeliveryState.QUEUED and dead.attempts == 0
    response = client_for(world.steward).post(url, follow=True)
    assert "Only a dead or failed delivery" in response.content.decode()


def test_test_connection_button(world, mp, monkeypatch):
    monkeypatch.setattr(
        channel_services,
        "test_connection",
        lambda account: channel_services.ConnectionCheck(False, "40001", "bad secret"),
    )
    url = reverse("activation:test_account", args=[mp.pk])
    assert client_for(world.operator).post(url).status_code == 403
    response = client_for(world.steward).post(url, follow=True)
    assert "40001" in response.content.decode() and "bad secret" in response.content.decode()
    assert client_for(world.nobody).post(url).status_code == 404


def test_audience_section_lists_recent_sends(world, audience, mp):
    sends.send_to_audience(world.operator, audience, mp, {"template_id": "T"})
    response = client_for(world.operator).get(reverse("audiences:detail", args=[audience.pk]))
    section = next(s for s in response.context["sections"] if s["id"] == "activation")
    assert section["rows"][0].endswith("瑞颜服务号 · 3 deliveries")
    assert section["rows"][1] == "Synced to 0 customer tag(s) of the brand's channels."
    assert (str(section["links"][0][0]), section["links"][0][1]) == ("Send now", send_url(audience))
    assert reverse("activation:audience-syncs", args=[audience.pk]) in [url for _l, url in section["links"]]
    analyst = client_for(world.analyst).get(reverse("audiences:detail", args=[audience.pk]))
    links = [s for s in analyst.context["sections"] if s["id"] == "activation"]
    assert all(url != send_url(audience) for s in links for _label, url in s["links"])


def test_the_funnel_counts_what_reached_each_stage():
    from tagportal.activation.views import funnel_stages

    counts = {"queued": 1, "sent": 2, "delivered": 3, "read": 4, "clicked": 5, "failed": 6, "dead": 7}
    assert [n for _label, n in funnel_stages(counts)] == [28, 14, 12, 9, 5]
