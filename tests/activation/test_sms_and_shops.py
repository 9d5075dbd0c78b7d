"""Aliyun and Tencent SMS (through their official SDKs), Youzan and Weimob against fakes
that check signatures, caps, idempotency keys, tokens and error codes: sends split at
the caps, a lost answer retried without a second send, limits retried, illegal numbers
final, status pushes kept once behind the account's receipt token, tokens cached."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from django.test import Client

from tagportal.activation import services
from tagportal.activation.connectors.base import ChannelError
from tagportal.activation.connectors.sms_aliyun import AliyunSmsClient
from tagportal.activation.connectors.sms_tencent import TencentSmsClient
from tagportal.activation.connectors.weimob import WeimobClient
from tagportal.activation.connectors.youzan import YouzanClient
from tagportal.activation.models import ChannelAccount, WebhookReceipt

from .fakes_channels import FakeAliyunSms, FakeTencentSms, FakeWeimob, FakeYouzan

pytestmark = pytest.mark.django_db

DEFAULTS = {
    "sms_aliyun": (
        {"sign_name": "TagPortal", "region": "cn-hangzhou"},
        {
            "access_key_id": "LTAI-test",
            "access_key_secret": "aliyun-secret",
            "receipt_token": "rt-aliyun-9f3",
        },
    ),
    "sms_tencent": (
        {"sms_sdk_app_id": "1400000001", "sign_name": "TagPortal"},
        {"secret_id": "AKID-test", "secret_key": "tencent-key", "receipt_token": "rt-tencent-7c1"},
    ),
    "youzan": ({"client_id": "yz-client", "grant_id": "12345"}, {"client_secret": "yz-secret"}),
    "weimob": ({"client_id": "wm-client", "shop_id": "4020504537894"}, {"client_secret": "wm-secret"}),
}


def make(brand, kind, *, name=None, secrets=None) -> ChannelAccount:
    settings_, default_secrets = DEFAULTS[kind]
    obj = ChannelAccount(brand=brand, kind=kind, name=name or f"{kind} account", settings=settings_)
    obj.merge_secrets({**default_secrets, **(secrets or {})})
    obj.full_clean()
    obj.save()
    return obj


def numbers(n: int, start: int = 0) -> list[str]:
    return [f"138{i:08d}" for i in range(start, start + n)]


@pytest.fixture
def endpoints(settings, httpserver):
    base = httpserver.url_for("/").rstrip("/")
    settings.TAGPORTAL_ALIYUN_SMS_ENDPOINT = base
    settings.TAGPORTAL_TENCENT_SMS_ENDPOINT = base
    settings.TAGPORTAL_YOUZAN_API_BASE = base
    settings.TAGPORTAL_WEIMOB_API_BASE = base
    return httpserver


# Aliyun --------------------------------------------------------------------------
@pytest.fixture
def aliyun(endpoints):
    return FakeAliyunSms(endpoints)


def test_aliyun_splits_1001_numbers_into_two_signed_calls(world, aliyun, sleeps):
    client = AliyunSmsClient(make(world.own_brand, "sms_aliyun"))
    results = client.send(numbers(1001), "SMS_100", {"code": "1234"}, out_id="d-1")
    assert aliyun.calls["SendSms"] == 2 and aliyun.verified == 2
    assert [len(s["numbers"]) for s in aliyun.sends] == [1000, 1]
    assert [r["out_id"] for r in results] == ["d-1-1", "d-1-2"]
    assert all(r["biz_id"] for r in results)


def test_aliyun_batch_splits_at_100_and_takes_each_numbers_params(world, aliyun, sleeps):
    client = AliyunSmsClient(make(world.own_brand, "sms_aliyun"))
    messages = [(f"+86{n}", {"code": str(i)}) for i, n in enumerate(numbers(150))]
    results = client.send_batch(messages, "SMS_100", out_id="b-1")
    assert aliyun.calls["SendBatchSms"] == 2
    assert [len(r["numbers"]) for r in results] == [100, 50]
    assert results[0]["numbers"][0] == "13800000000"  # +86 dropped for Aliyun


def test_aliyun_lost_answer_is_not_repeated_but_can_be_asked(world, aliyun, sleeps):
    client = AliyunSmsClient(make(world.own_brand, "sms_aliyun"))
    aliyun.lose_answers = 1
    with pytest.raises(ChannelError) as caught:
        client.send(numbers(3), "SMS_100", {"code": "1"}, out_id="d-2")
    assert caught.value.maybe_sent is True
    assert aliyun.calls["SendSms"] == 1 and aliyun.sent_numbers() == 3 and sleeps == []
    today = dt.datetime.now(dt.UTC).astimezone(services.BEIJING).date()
    assert client.find_sent(numbers(1, 1)[0], "d-2", today)["out_id"] == "d-2"
    assert client.find_sent(numbers(1, 1)[0], "d-9", today) is None
    assert client.find_sent(numbers(1, 5)[0], "d-2", today) is None


def test_the_aliyun_fake_sends_a_repeated_out_id_again(world, aliyun, sleeps):
    client = AliyunSmsClient(make(world.own_brand, "sms_aliyun"))
    client.send(numbers(1), "SMS_100", {"code": "1"}, out_id="d-7")
    client.send(numbers(1), "SMS_100", {"code": "1"}, out_id="d-7")
    assert len(aliyun.sends) == 2 and aliyun.duplicates == 1


def test_aliyun_limit_control_is_retried(world, aliyun, sleeps):
    client = AliyunSmsClient(make(world.own_brand, "sms_aliyun"))
    aliyun.limit_control = 2
    client.send(numbers(1), "SMS_100", {"code": "1"}, out_id="d-3")
    assert aliyun.calls["SendSms"] == 3 and len(aliyun.sends) == 1
    assert len(sleeps) == 2


@pytest.mark.parametrize(
    ("to", "params", "code"),
    [
        (["1380000"], {"code": "1"}, "isv.MOBILE_NUMBER_ILLEGAL"),
        (numbers(1), {}, "isv.TEMPLATE_MISSING_PARAMETERS"),
    ],
)
def test_aliyun_illegal_number_or_missing_params_are_final(world, aliyun, sleeps, to, params, code):
    client = AliyunSmsClient(make(world.own_brand, "sms_aliyun"))
    with pytest.raises(ChannelError) as caught:
        client.send(to, "SMS_100", params, out_id="d-4")
    assert caught.value.code == code and caught.value.retryable is False
    assert aliyun.calls["SendSms"] == 1 and aliyun.sends == [] and sleeps == []


def test_aliyun_connection_test_and_a_wrong_secret(world, aliyun, sleeps):
    good = make(world.own_brand, "sms_aliyun")
    bad = make(world.own_brand, "sms_aliyun", name="wrong", secrets={"access_key_secret": "nope-nope"})
    assert services.test_connection(good).ok is True
    refused = services.test_connection(bad)
    assert refused.ok is False and refused.code == "SignatureDoesNotMatch"
    assert "nope-nope" not in refused.message
    assert aliyun.verified == 1 and aliyun.calls["QuerySendStatistics"] == 2


# Tencent -------------------------------------------------------------------------
@pytest.fixture
def tencent(endpoints):
    return FakeTencentSms(endpoints)


def test_tencent_splits_201_numbers_in_e164(world, tencent, sleeps):
    client = TencentSmsClient(make(world.own_brand, "sms_tencent"))
    rows = client.send(numbers(201), "1001", ["1234"], session_context="d-1")
    assert tencent.calls["SendSms"] == 2 and tencent.verified == 2
    assert [len(s["numbers"]) for s in tencent.sends] == [200, 1]
    assert len(rows) == 201 and all(r["ok"] for r in rows)
    assert rows[0]["phone"] == "+8613800000000"
    assert {r["session_context"] for r in rows} == {"d-1-1", "d-1-2"}


def test_tencent_numbers_refused_one_by_one_are_final(world, tencent, sleeps):
    client = TencentSmsClient(make(world.own_brand, "sms_tencent"))
    tencent.daily_limited = {"+8613800000001"}
    rows = client.send([*numbers(2), "12"], "1001", ["1"], session_context="d-2")
    assert [r["code"] for r in rows] == [
        "Ok",
        "LimitExceeded.PhoneNumberDailyLimit",
        "InvalidParameterValue.IncorrectPhoneNumber",
    ]
    assert [r["ok"] for r in rows] == [True, False, False]
    assert tencent.calls["SendSms"] == 1 and sleeps == []


def test_tencent_request_limits_are_retried_and_a_lost_answer_is_not(world, tencent, sleeps):
    client = TencentSmsClient(make(world.own_brand, "sms_tencent"))
    tencent.busy = 1
    rows = client.send(numbers(2), "1001", ["1"], session_context="d-3")
    assert tencent.calls["SendSms"] == 2 and len(sleeps) == 1  # refused, then sent
    assert all(r["ok"] for r in rows)
    tencent.lose_answers = 1
    with pytest.raises(ChannelError) as caught:
        client.send(numbers(1, 5), "1001", ["1"], session_context="d-4")
    assert caught.value.maybe_sent is True and tencent.calls["SendSms"] == 3
    assert len(tencent.sends) == 2 and tencent.duplicates == 0
    now = int(time.time())
    found = client.find_sent(numbers(1, 5)[0], "d-4", now - 60, now + 60)
    assert found["serial_no"] == tencent.by_context["d-4"][0]["SerialNo"]
    assert client.find_sent(numbers(1, 5)[0], "d-3", now - 60, now + 60) is None


def test_the_tencent_fake_sends_a_repeated_session_context_again(world, tencent, sleeps):
    client = TencentSmsClient(make(world.own_brand, "sms_tencent"))
    client.send(numbers(1), "1001", ["1"], session_context="d-8")
    client.send(numbers(1), "1001", ["1"], session_context="d-8")
    assert len(tencent.sends) == 2 and tencent.duplicates == 1


def test_tencent_connection_test_and_a_wrong_key(world, tencent, sleeps):
    good = make(world.own_brand, "sms_tencent")
    bad = make(world.own_brand, "sms_tencent", name="wrong", secrets={"secret_key": "wrong-key"})
    assert services.test_connection(good).ok is True
    refused = services.test_connection(bad)
    assert refused.ok is False and refused.code == "AuthFailure.SignatureFailure"
    assert tencent.verified == 1


# receipts ------------------------------------------------------------------------
ALIYUN_PUSH = [
    {
        "phone_number": "13800000000",
        "send_time": "2026-11-11 10:00:00",
        "report_time": "2026-11-11 10:00:05",
        "success": True,
        "err_code": "DELIVERED",
        "err_msg": "用户接收成功",
        "sms_size": "1",
        "biz_id": "1000^0",
        "out_id": "d-1",
    },
    {
        "phone_number": "13800000001",
        "report_time": "2026-11-11 10:00:06",
        "success": False,
        "err_code": "MK:0005",
        "err_msg": "",
        "biz_id": "1000^0",
        "out_id": "d-1",
    },
]
TENCENT_PUSH = [
    {
        "user_receive_time": "2026-11-11 10:00:05",
        "nationcode": "86",
        "mobile": "13800000000",
        "report_status": "SUCCESS",
        "errmsg": "DELIVRD",
        "description": "用户短信送达成功",
        "sid": "2433:1",
    },
    {
        "user_receive_time": "2026-11-11 10:00:06",
        "mobile": "13800000001",
        "report_status": "FAIL",
        "errmsg": "UNDELIV",
        "sid": "2433:2",
    },
]


def _push(obj, platform, body, token):
    query = f"?token={token}" if token is not None else ""
    return Client().post(
        f"/api/activation/sms/{obj.pk}/{platform}/receipts/{query}",
        json.dumps(body, ensure_ascii=False),
        content_type="application/json",
    )


@pytest.mark.parametrize(
    ("kind", "platform", "body", "token", "answer"),
    [
        ("sms_aliyun", "aliyun", ALIYUN_PUSH, "rt-aliyun-9f3", {"code": 0}),
        ("sms_tencent", "tencent", TENCENT_PUSH, "rt-tencent-7c1", {"result": 0}),
    ],
)
def test_sms_receipts_are_kept_once_behind_the_token(world, kind, platform, body, token, answer):
    obj = make(world.own_brand, kind)
    assert _push(obj, platform, body, None).status_code == 403
    assert _push(obj, platform, body, "wrong").status_code == 403
    assert WebhookReceipt.objects.filter(account=obj).count() == 0
    first = _push(obj, platform, body, token)
    assert first.status_code == 200
    assert first.json()["accepted"] == 2 and answer.items() <= first.json().items()
    again = _push(obj, platform, body, token)
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 2
    kept = WebhookReceipt.objects.filter(account=obj).order_by("occurred_at")
    assert [r.status for r in kept] == ["delivered", "failed"]
    assert kept[0].occurred_at.isoformat() == "2026-11-11T02:00:05+00:00"  # Beijing → UTC
    assert "13800000000" not in " ".join(r.delivery for r in kept)  # numbers never kept
    # the other platform's path for this account is 404
    other = "tencent" if platform == "aliyun" else "aliyun"
    assert _push(obj, other, body, token).status_code == 404


def test_a_bad_sms_push_is_400_and_nothing_is_kept(world):
    obj = make(world.own_brand, "sms_aliyun")
    broken = [ALIYUN_PUSH[0], {**ALIYUN_PUSH[1], "report_time": "yesterday"}]
    assert _push(obj, "aliyun", broken, "rt-aliyun-9f3").status_code == 400
    assert _push(obj, "aliyun", {"not": "a list"}, "rt-aliyun-9f3").status_code == 400
    assert WebhookReceipt.objects.filter(account=obj).count() == 0


def test_an_account_without_a_receipt_token_refuses_every_push(world):
    obj = make(world.own_brand, "sms_aliyun", name="no token")
    obj.secrets = json.dumps({"access_key_id": "a", "access_key_secret": "b"})
    obj.save()
    assert _push(obj, "aliyun", ALIYUN_PUSH, "").status_code == 403


# Youzan --------------------------------------------------------------------------
@pytest.fixture
def youzan(endpoints):
    return FakeYouzan(endpoints)


def test_youzan_token_is_cached_and_tags_and_coupons_go_through(world, youzan, sleeps):
    obj = make(world.own_brand, "youzan")
    client = YouzanClient(obj)
    client.add_tags(["高价值", "复购"], "Mobile", ["13800000000", "13800000001"])
    YouzanClient(obj).remove_tags(["复购"], "Mobile", ["13800000001"])
    client.take_coupon("cg-1", yz_open_id="yz-1")
    assert youzan.token_calls == 1
    assert youzan.calls["youzan.scrm.tag.relation.add"] == 2
    assert ("Mobile", "13800000001", "复购") not in youzan.relations
    assert ("Mobile", "13800000000", "复购") in youzan.relations
    assert youzan.coupons == [{"coupon_group_id": "cg-1", "yz_open_id": "yz-1"}]


def test_youzan_refetches_an_expired_token_once_and_retries_the_rate_limit(world, youzan, sleeps):
    client = YouzanClient(make(world.own_brand, "youzan"))
    client.add_tags(["a"], "YzOpenId", ["yz-1"])
    for token in youzan.tokens:
        youzan.tokens[token] = 0  # expired on the platform's side
    youzan.busy = 1
    client.add_tags(["b"], "YzOpenId", ["yz-1"])
    assert youzan.token_calls == 2 and len(sleeps) == 1
    assert ("YzOpenId", "yz-1", "b") in youzan.relations


def test_youzan_connection_test(world, youzan):
    assert services.test_connection(make(world.own_brand, "youzan")).ok is True
    refused = services.test_connection(
        make(world.own_brand, "youzan", name="wrong", secrets={"client_secret": "bad-secret"})
    )
    assert refused.ok is False and refused.code == 4001


# Weimob --------------------------------------------------------------------------
@pytest.fixture
def weimob(endpoints):
    return FakeWeimob(endpoints)


def test_weimob_token_is_cached_and_binds_split_at_100(world, weimob, sleeps):
    obj = make(world.own_brand, "weimob")
    WeimobClient(obj).bind_tags(["t-1"], list(range(1, 151)))
    WeimobClient(obj).unbind_tags(["t-1"], [1])
    assert weimob.token_calls == 1
    assert weimob.calls["bind"] == 2 and weimob.calls["unbind"] == 1
    assert len(weimob.bound) == 149 and (1, "t-1") not in weimob.bound


def test_weimob_invalid_token_refetched_and_frequency_retried(world, weimob, sleeps):
    client = WeimobClient(make(world.own_brand, "weimob"))
    client.bind_tags(["t"], [1])
    weimob.tokens.clear()  # revoked on the platform's side
    weimob.busy = 1
    client.bind_tags(["t"], [2])
    assert weimob.token_calls == 2 and len(sleeps) == 1
    assert (2, "t") in weimob.bound


def test_weimob_connection_test(world, weimob):
    assert services.test_connection(make(world.own_brand, "weimob")).ok is True
    refused = services.test_connection(
        make(world.own_brand, "weimob", name="wrong", secrets={"client_secret": "bad"})
    )
    assert refused.ok is False and refused.code == "invalid_client"


def test_the_fakes_refuse_more_than_the_caps_and_that_is_final(world, tencent, sleeps):
    client = TencentSmsClient(make(world.own_brand, "sms_tencent"))
    payload = {"PhoneNumberSet": [f"+86{n}" for n in numbers(201)], "SmsSdkAppId": "1400000001"}
    with pytest.raises(ChannelError) as caught:
        client._call("SendSms", {**payload, "SignName": "TagPortal", "TemplateId": "1"})
    assert caught.value.code == "LimitExceeded.PhoneNumberCountLimit"
    assert caught.value.retryable is False and tencent.sends == []
