"""Receipts moving deliveries forward (webhook, 公众号, Aliyun, Tencent, WeCom's read-back),
sends done once settled, calls in doubt settled without a duplicate, Youzan coupons as
deliveries, and each kind's per-account rate limit."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tagportal.activation import deliveries, services, tasks
from tagportal.activation.choices import ChannelKind
from tagportal.activation.connectors import base
from tagportal.activation.connectors.base import RateLimited, acquire
from tagportal.activation.models import Delivery, Send, WebhookReceipt
from tests.conftest import client_for

from .fakes import FakeReceiver, FakeWeCom
from .fakes_channels import FakeAliyunSms, FakeTencentSms, FakeYouzan
from .helpers import account
from .test_sms_and_shops import make

pytestmark = pytest.mark.django_db

PHONE = "13800000000"


@pytest.fixture(autouse=True)
def pipeline(settings, monkeypatch):
    settings.TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = 1
    settings.TAGPORTAL_DELIVERY_BACKOFF_SECONDS = 10
    settings.TAGPORTAL_DELIVERY_BACKOFF_MAX_SECONDS = 20
    settings.TAGPORTAL_DELIVERY_LEASE_SECONDS = 60
    monkeypatch.setattr(deliveries, "PRE_SEND_CHECKS", [])
    monkeypatch.setattr(deliveries, "PHONE_RESOLVERS", [lambda d: PHONE])


@pytest.fixture
def endpoints(settings, httpserver):
    base_url = httpserver.url_for("/").rstrip("/")
    for name in (
        "TAGPORTAL_ALIYUN_SMS_ENDPOINT",
        "TAGPORTAL_TENCENT_SMS_ENDPOINT",
        "TAGPORTAL_YOUZAN_API_BASE",
        "TAGPORTAL_WECOM_API_BASE",
    ):
        setattr(settings, name, base_url)
    return httpserver


@pytest.fixture
def receiver(httpserver):
    return FakeReceiver(httpserver)


@pytest.fixture
def hook(world, httpserver, receiver):
    return account(world.own_brand, "webhook", settings={"url": httpserver.url_for(receiver.path)})


def later(seconds: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=seconds)


def crash_after_calling(monkeypatch):
    """The worker dies once the platform answered, before recording the answer."""
    monkeypatch.setattr(deliveries, "_finish", lambda delivery, **fields: False)


# receipts ------------------------------------------------------------------------
def test_webhook_receipts_only_move_forward(hook, receiver, sleeps):
    send = deliveries.create_send(hook, {}, [(1, "crm-1"), (2, "crm-2")], kick=False)
    deliveries.deliver_due()
    first, second = (f"{send.pk}:1", f"{send.pk}:2")

    def push(*rows):
        return services.record_receipts(
            hook,
            {"receipts": [{"delivery": k, "status": s, "at": at, "error": e} for k, s, at, e in rows]},
        )

    push(
        (first, "delivered", "2026-03-02T08:00:00+08:00", ""), (first, "clicked", "2026-03-02T09:00:00Z", "")
    )
    push((first, "read", "2026-03-02T08:30:00+08:00", ""))  # late: changes nothing
    push(
        (second, "failed", "2026-03-02T08:00:00Z", "mailbox full"),
        ("unknown:9", "delivered", "2026-03-02T08:00:00Z", ""),
    )
    one, two = send.deliveries.get(oneid=1), send.deliveries.get(oneid=2)
    assert one.state == "clicked" and one.read_at is None
    assert one.delivered_at == dt.datetime(2026, 3, 2, 0, 0, tzinfo=dt.UTC)
    assert one.clicked_at == dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    assert (two.state, two.last_error_code, two.last_error) == ("failed", "receipt", "mailbox full")
    assert WebhookReceipt.objects.filter(account=hook, delivery="unknown:9").exists()
    # a delivered receipt after the failure does not bring it back
    assert deliveries.apply_receipt(hook, second, "delivered", None, "") is False


def _sent(acc, key, provider_id, recipient="r-1", oneid=1) -> Delivery:
    send = Send.objects.create(brand=acc.brand, account=acc, kind=acc.kind, content={})
    return Delivery.objects.create(
        send=send,
        oneid=oneid,
        recipient=recipient,
        idempotency_key=key,
        provider_id=provider_id,
        state="sent",
        next_attempt_at=timezone.now(),
    )


def _event(msgid, status="success") -> bytes:
    return (
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o-1]]></FromUserName>"
        "<CreateTime>1772409600</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>"
        f"<MsgID>{msgid}</MsgID><Status><![CDATA[{status}]]></Status></xml>"
    ).encode()


def test_wechat_events_move_the_delivery_of_their_msgid_on_that_account(world):
    mp = account(world.own_brand, "wechat_mp")
    other = account(world.own_brand, "wechat_mp", name="other")
    mine, theirs = _sent(mp, "k-1", "5001"), _sent(other, "k-2", "5001")
    blocked = _sent(mp, "k-3", "5002", oneid=2)
    assert services.record_wechat_event(mp, _event("5001")) is True
    assert services.record_wechat_event(mp, _event("5002", "failed:user block")) is True
    assert services.record_wechat_event(mp, _event("7777")) is True  # unknown: kept only
    mine.refresh_from_db(), theirs.refresh_from_db(), blocked.refresh_from_db()
    assert (mine.state, theirs.state) == ("delivered", "sent")
    assert mine.delivered_at is not None
    assert (blocked.state, blocked.last_error_code) == ("failed", "receipt")


def test_sms_pushes_move_deliveries_by_out_id_and_by_sid(world):
    aliyun, tencent = make(world.own_brand, "sms_aliyun"), make(world.own_brand, "sms_tencent")
    by_out_id = _sent(aliyun, "41:1001", "9^0")
    by_sid = _sent(tencent, "42:1001", "2433:7")
    services.record_sms_receipts(
        aliyun,
        [{"phone_number": PHONE, "report_time": "2026-03-02 16:00:05", "success": True, "out_id": "41:1001"}],
    )
    services.record_sms_receipts(
        tencent,
        [
            {
                "sid": "2433:7",
                "report_status": "FAIL",
                "user_receive_time": "2026-03-02 16:00:06",
                "errmsg": "DELIVRD_FAIL",
                "description": "用户关机",
            }
        ],
    )
    by_out_id.refresh_from_db(), by_sid.refresh_from_db()
    assert by_out_id.state == "delivered"
    assert by_out_id.delivered_at == dt.datetime(2026, 3, 2, 8, 0, 5, tzinfo=dt.UTC)
    assert (by_sid.state, by_sid.last_error) == ("failed", "DELIVRD_FAIL 用户关机")


@pytest.fixture
def wecom(endpoints):
    fake = FakeWeCom(endpoints)
    fake.relationships = {("alice", "wm-1"), ("alice", "wm-2")}
    return fake


def test_wecom_send_results_are_read_back_as_receipts(world, wecom, sleeps):
    acc = account(world.own_brand, "wecom")
    send = deliveries.create_send(
        acc, {"sender": "alice", "text": "新品"}, [(1, "wm-1"), (2, "wm-2")], kick=False
    )
    assert deliveries.deliver_due() == {"sent": 2}
    msgid = send.deliveries.get(oneid=2).provider_id
    wecom.messages[msgid]["fail"].append("wm-2")  # the customer removed alice meanwhile
    assert deliveries.read_wecom_results(acc)["accepted"] == 2
    one, two = send.deliveries.get(oneid=1), send.deliveries.get(oneid=2)
    assert one.state == "delivered"
    assert two.state == "failed" and two.last_error.startswith("not_friend")
    # the hourly task: nothing left sent, nothing asked
    assert tasks.read_wecom_results() == {acc.pk: {"accepted": 0, "duplicates": 0}}
    assert wecom.calls["get_groupmsg_send_result"] == 2  # one per message, all read before
    assert "tagportal.activation.tasks.read_wecom_results" in {e["task"] for e in tasks.DEFAULT_SCHEDULES}
    body = client_for(world.steward).get(f"/api/activation/deliveries/{one.pk}/").json()
    assert body["delivered_at"] and body["state"] == "delivered"


# sends ---------------------------------------------------------------------------
def test_a_send_is_done_once_no_delivery_is_queued_or_sending(hook, receiver, sleeps):
    receiver.statuses = [(503, {})]
    send = deliveries.create_send(hook, {}, [(1, "a"), (2, "b")], kick=False)
    deliveries.deliver_due()
    send.refresh_from_db()
    assert send.status == "queued"  # one waits for its retry
    deliveries.deliver_due(now=later(60))
    send.refresh_from_db()
    assert send.status == "done"
    dead = send.deliveries.get(oneid=1)
    Delivery.objects.filter(pk=dead.pk).update(state="dead")
    deliveries.retry(dead)
    send.refresh_from_db()
    assert send.status == "queued"


# in doubt ------------------------------------------------------------------------
def test_a_webhook_in_doubt_is_sent_again_the_receiver_dedupes(hook, receiver, sleeps, monkeypatch):
    send = deliveries.create_send(hook, {}, [(1, "a")], kick=False)
    with monkeypatch.context() as m:
        crash_after_calling(m)
        deliveries.deliver_due()
    row = send.deliveries.get()
    # a kind whose repeat is dropped downstream keeps no journal of the call: it is resent
    assert row.state == "sending" and row.call_started_at is None
    assert deliveries.deliver_due(now=later(120)) == {"sent": 1}
    assert receiver.calls == 2 and len(receiver.received) == 1  # one key: the receiver keeps one
    row.refresh_from_db()
    assert row.call_started_at is None


@pytest.mark.parametrize("kind", ["miniprogram", "wecom_robot"])
def test_a_kind_that_cannot_tell_is_failed_in_doubt_not_resent(world, kind, monkeypatch):
    acc = account(world.own_brand, kind)
    send = deliveries.create_send(acc, {"text": "x"}, [(1, "o-1")], kick=False)
    claimed = deliveries.claim_due(10)
    Delivery.objects.filter(pk=claimed[0].pk).update(call_started_at=timezone.now())
    monkeypatch.setitem(deliveries.ADAPTERS, kind, pytest.fail)  # never called again
    assert deliveries.deliver_due(now=later(120)) == {"failed": 1}
    row = send.deliveries.get()
    assert row.last_error_code == "in_doubt" and "not resent" in row.last_error


def test_wecom_in_doubt_is_found_in_the_mass_messages_or_sent_again(world, wecom, sleeps, monkeypatch):
    acc = account(world.own_brand, "wecom")
    send = deliveries.create_send(acc, {"sender": "alice", "text": "x"}, [(1, "wm-1")], kick=False)
    with monkeypatch.context() as m:
        crash_after_calling(m)
        deliveries.deliver_due()
    assert deliveries.deliver_due(now=later(120)) == {"sent": 1}
    row = send.deliveries.get()
    assert wecom.calls["add_msg_template"] == 1 and wecom.calls["get_groupmsg_list_v2"] == 1
    assert row.provider_id in wecom.messages and row.call_started_at is None
    # a call that never reached WeCom: nothing found, sent
    other = deliveries.create_send(acc, {"sender": "alice", "text": "y"}, [(2, "wm-2")], kick=False)
    claimed = deliveries.claim_due(10)
    Delivery.objects.filter(pk=claimed[0].pk).update(call_started_at=timezone.now())
    assert deliveries.deliver_due(now=later(120)) == {"sent": 1}
    assert wecom.calls["add_msg_template"] == 2
    assert other.deliveries.get().provider_id != row.provider_id


def test_a_lost_wecom_answer_is_not_repeated_but_found(world, wecom, settings, sleeps):
    settings.TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = 3  # the client's own retries do not repeat it either
    wecom.lose_answers = 1
    acc = account(world.own_brand, "wecom")
    send = deliveries.create_send(acc, {"sender": "alice", "text": "x"}, [(1, "wm-1")], kick=False)
    assert deliveries.deliver_due() == {"queued": 1}
    assert wecom.calls["add_msg_template"] == 1 and sleeps == []
    assert deliveries.deliver_due(now=later(60)) == {"sent": 1}
    assert wecom.calls["add_msg_template"] == 1 and len(wecom.messages) == 1
    assert send.deliveries.get().provider_id in wecom.messages


def test_aliyun_lost_answer_is_asked_and_not_sent_twice(world, endpoints, sleeps):
    aliyun = FakeAliyunSms(endpoints)
    aliyun.lose_answers = 1
    acc = make(world.own_brand, "sms_aliyun")
    send = deliveries.create_send(
        acc, {"template_code": "SMS_100", "params": {"code": "1"}}, [(1, "h-1")], kick=False
    )
    assert deliveries.deliver_due() == {"queued": 1}
    row = send.deliveries.get()
    assert row.state == "queued" and row.call_started_at is not None
    assert deliveries.deliver_due(now=later(60)) == {"sent": 1}
    assert len(aliyun.sends) == 1 and aliyun.duplicates == 0
    assert aliyun.calls["QuerySendDetails"] == 1
    # the platform holds nothing of a claimed call: sent
    other = deliveries.create_send(
        acc, {"template_code": "SMS_100", "params": {"code": "2"}}, [(2, "h-2")], kick=False
    )
    claimed = deliveries.claim_due(10)
    Delivery.objects.filter(pk=claimed[0].pk).update(call_started_at=timezone.now())
    assert deliveries.deliver_due(now=later(120)) == {"sent": 1}
    assert len(aliyun.sends) == 2 and aliyun.duplicates == 0
    assert aliyun.sends[1]["out_id"] == other.deliveries.get().idempotency_key


@pytest.mark.parametrize(("ready", "outcome"), [(True, "sent"), (False, "failed")])
def test_tencent_lost_answer_is_found_by_its_report_or_failed_in_doubt(
    world, endpoints, sleeps, ready, outcome
):
    tencent = FakeTencentSms(endpoints)
    tencent.lose_answers = 1
    tencent.reports_ready = ready
    acc = make(world.own_brand, "sms_tencent")
    send = deliveries.create_send(acc, {"template_id": "1001", "params": ["1"]}, [(1, "h-1")], kick=False)
    assert deliveries.deliver_due() == {"queued": 1}
    assert deliveries.deliver_due(now=later(60)) == {outcome: 1}
    row = send.deliveries.get()
    assert len(tencent.sends) == 1 and tencent.duplicates == 0
    assert tencent.calls["PullSmsSendStatusByPhoneNumber"] == 1
    if ready:
        assert row.provider_id == tencent.by_context[row.idempotency_key][0]["SerialNo"]
    else:
        assert row.last_error_code == "in_doubt"


# Youzan coupons ------------------------------------------------------------------
def test_youzan_coupons_go_through_the_pipeline(world, endpoints, sleeps, monkeypatch):
    youzan = FakeYouzan(endpoints)
    acc = make(world.own_brand, "youzan")
    by_phone = deliveries.create_send(acc, {"coupon_group_id": "cg-1"}, [(1, "hash-1")], kick=False)
    by_open_id = deliveries.create_send(
        acc, {"coupon_group_id": "cg-2", "to": "yz_open_id"}, [(2, "yz-2")], kick=False
    )
    no_group = deliveries.create_send(acc, {}, [(3, "hash-3")], kick=False)
    assert deliveries.deliver_due() == {"sent": 2, "failed": 1}
    assert [(c["coupon_group_id"], c.get("mobile"), c.get("yz_open_id")) for c in youzan.coupons] == [
        ("cg-1", PHONE, None),
        ("cg-2", None, "yz-2"),
    ]
    assert by_phone.deliveries.get().provider_id and by_open_id.deliveries.get().state == "sent"
    assert no_group.deliveries.get().last_error_code == "invalid"
    # a coupon call in doubt is not repeated
    again = deliveries.create_send(acc, {"coupon_group_id": "cg-1"}, [(4, "hash-4")], kick=False)
    with monkeypatch.context() as m:
        crash_after_calling(m)
        deliveries.deliver_due()
    assert deliveries.deliver_due(now=later(120)) == {"failed": 1}
    assert len(youzan.coupons) == 3 and again.deliveries.get().last_error_code == "in_doubt"


# rate limits ---------------------------------------------------------------------
def test_every_sending_kind_has_a_rate_but_the_robot_its_own():
    assert set(deliveries.ADAPTERS) - {ChannelKind.WECOM_ROBOT} <= set(base.DEFAULT_RATES)


def test_a_full_window_requeues_without_calling_or_counting_an_attempt(
    world, hook, receiver, settings, httpserver
):
    settings.TAGPORTAL_CHANNEL_RATES = {"webhook": "1/minute"}
    other = account(
        world.own_brand, "webhook", name="other", settings={"url": httpserver.url_for(receiver.path)}
    )
    send = deliveries.create_send(hook, {}, [(1, "a"), (2, "b")], kick=False)
    elsewhere = deliveries.create_send(other, {}, [(3, "c")], kick=False)
    assert deliveries.deliver_due() == {"sent": 2, "queued": 1}  # the other account has its own window
    assert receiver.calls == 2 and elsewhere.deliveries.get().state == "sent"
    held = send.deliveries.get(state="queued")
    assert (held.attempts, held.last_error_code, held.call_started_at) == (0, "rate_limited", None)


def test_several_windows_a_refusal_uses_none(settings):
    acquire("k", "2/minute;3/hour")
    acquire("k", "2/minute;3/hour")
    with pytest.raises(RateLimited):
        acquire("k", "2/minute;3/hour")  # the minute is full: the hour's third is not used
    acquire("k", "5/minute;3/hour")
    with pytest.raises(RateLimited):
        acquire("k", "5/minute;3/hour")  # now the hour is full
    acquire("other", "2/minute;3/hour")  # another key, its own windows


def test_a_receipt_that_came_before_the_delivery_was_recorded_applies_once_it_is(hook, receiver, sleeps):
    send = deliveries.create_send(hook, {}, [(1, "a"), (2, "b")], kick=False)
    key = f"{send.pk}:1"
    # the receiver reports delivery and a click while our worker has not written "sent" yet
    services.record_receipts(hook, {"receipts": [
        {"delivery": key, "status": "clicked", "at": "2026-12-07T10:00:05+08:00"},
        {"delivery": key, "status": "delivered", "at": "2026-12-07T10:00:01+08:00"},
    ]})  # fmt: skip
    assert send.deliveries.get(oneid=1).state == "queued"
    assert deliveries.deliver_due() == {"sent": 2}
    first, second = send.deliveries.get(oneid=1), send.deliveries.get(oneid=2)
    assert first.state == "clicked" and first.delivered_at is not None and first.clicked_at is not None
    assert second.state == "sent"
