"""The 公众号 and 小程序 clients against a fake enforcing WeChat's contract: one token
for many sends, one refetch on an invalid token, ``client_msg_id`` making a repeated send
a no-op, 50 openids a tagging call, final errors not retried, 45009 retried."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import pytest
from django.test import Client

from tagportal.activation import services
from tagportal.activation.connectors.base import ChannelError
from tagportal.activation.connectors.wechat import (
    MiniProgramClient,
    OfficialAccountClient,
    callback_signature,
    decrypt_message,
    encrypt_message,
    msg_signature,
)
from tagportal.activation.models import Subscription, WebhookReceipt

from .fakes import FakeWeChat
from .helpers import account

pytestmark = pytest.mark.django_db

DATA = {"first": "您好", "keyword1": {"value": "双十一", "color": "#173177"}}


@pytest.fixture
def wechat(wechat_platform):
    fake = FakeWeChat(wechat_platform)
    fake.openids = {f"o{i}" for i in range(200)}
    return fake


@pytest.fixture
def mp(world, wechat):
    return OfficialAccountClient(account(world.own_brand, "wechat_mp"))


@pytest.fixture
def mini(world, wechat):
    return MiniProgramClient(account(world.own_brand, "miniprogram"))


def test_one_token_for_many_template_sends(mp, wechat, sleeps):
    for i in range(20):
        assert mp.send_template(f"o{i}", "tpl-1", DATA, client_msg_id=f"d-{i}", url="https://x.cn/a")
    assert wechat.token_calls == 1
    assert len(wechat.sent) == 20
    assert wechat.sent[0]["data"] == {"first": {"value": "您好"}, "keyword1": DATA["keyword1"]}
    OfficialAccountClient(mp.account).send_template("o1", "tpl-1", DATA, client_msg_id="other")
    assert wechat.token_calls == 1  # another worker shares the cached token


@pytest.mark.parametrize("code", [40001, 40014, 42001])
def test_an_invalid_token_is_fetched_again_once(mp, wechat, code, sleeps):
    mp.send_template("o1", "tpl-1", DATA, client_msg_id="d-1")
    wechat.fail_token_once = code
    mp.send_template("o2", "tpl-1", DATA, client_msg_id="d-2")
    assert wechat.token_calls == 2
    assert wechat.calls["template_send"] == 3 and len(wechat.sent) == 2
    assert sleeps == []


def test_a_repeated_client_msg_id_sends_once(mp, wechat, sleeps):
    first = mp.send_template("o1", "tpl-1", DATA, client_msg_id="delivery-42")
    again = mp.send_template("o1", "tpl-1", DATA, client_msg_id="delivery-42")
    assert first == again
    assert wechat.calls["template_send"] == 2 and len(wechat.sent) == 1
    assert wechat.sent[0]["client_msg_id"] == "delivery-42"


def test_a_template_send_refused_with_45009_is_retried_and_sent_once(mp, wechat, sleeps):
    wechat.busy = 1
    mp.send_template(
        "o1", "tpl-1", DATA, client_msg_id="d-1", miniprogram={"appid": "wx-mini", "pagepath": "p"}
    )
    assert wechat.calls["template_send"] == 2 and len(wechat.sent) == 1 and len(sleeps) == 1
    assert wechat.sent[0]["miniprogram"] == {"appid": "wx-mini", "pagepath": "p"}


def test_120_openids_take_three_tagging_calls(mp, wechat, sleeps):
    openids = [f"o{i}" for i in range(120)]
    assert mp.batch_tagging(100, openids) == {"done": 120, "failed": []}
    assert wechat.calls["batchtagging"] == 3
    assert wechat.tags[100] == set(openids)
    assert mp.batch_untagging(100, openids[:60]) == {"done": 60, "failed": []}
    assert wechat.calls["batchuntagging"] == 2 and len(wechat.tags[100]) == 60


def test_tagging_errors_per_batch_are_final_and_not_retried(mp, wechat, sleeps):
    openids = [f"o{i}" for i in range(100)] + ["stranger"]
    wechat.full = {"o3"}
    result = mp.batch_tagging(100, openids)
    assert result["done"] == 50  # o50..o99 tagged; o0..o49 (45059) and the last call (49003) not
    assert [(f["code"], len(f["openids"])) for f in result["failed"]] == [(45059, 50), (49003, 1)]
    assert wechat.calls["batchtagging"] == 3 and sleeps == []


def test_an_invalid_tag_stops_the_sync(mp, wechat, sleeps):
    with pytest.raises(ChannelError) as caught:
        mp.batch_tagging(999, [f"o{i}" for i in range(120)])
    assert caught.value.code == 45159 and not caught.value.retryable
    assert wechat.calls["batchtagging"] == 1


def test_a_call_over_50_openids_is_refused_by_the_platform(mp, wechat, sleeps):
    with pytest.raises(ChannelError) as caught:
        mp.call(
            "tags/members/batchtagging",
            {"openid_list": [f"o{i}" for i in range(51)], "tagid": 100},
            idempotent=True,
        )
    assert caught.value.code == 40032


# mini-program -------------------------------------------------------------------
def test_subscribe_message_needs_a_subscription(mini, wechat, sleeps):
    wechat.subscriptions[("o1", "sub-1")] = 1
    mini.send_subscribe("o1", "sub-1", {"thing1": "会员日"}, page="pages/index?x=1", state="trial")
    sent = wechat.subscribe_sent[0]
    assert (
        sent["miniprogram_state"] == "trial" and sent["lang"] == "zh_CN" and sent["page"] == "pages/index?x=1"
    )
    with pytest.raises(ChannelError) as caught:  # the one-time grant is used up
        mini.send_subscribe("o1", "sub-1", {"thing1": "会员日"})
    assert caught.value.code == 43101 and not caught.value.retryable
    assert wechat.calls["subscribe_send"] == 2 and sleeps == []


@pytest.mark.parametrize("openid, data, code", [("nobody", {"thing1": "x"}, 40003), ("o1", {}, 47003)])
def test_subscribe_final_errors(mini, wechat, sleeps, openid, data, code):
    wechat.subscriptions[("o1", "sub-1")] = 5
    with pytest.raises(ChannelError) as caught:
        mini.send_subscribe(openid, "sub-1", data)
    assert caught.value.code == code and wechat.calls["subscribe_send"] == 1


def test_subscribe_frequency_is_retried_once_then_sent(mini, wechat, sleeps):
    wechat.subscriptions[("o1", "sub-1")] = 1
    wechat.busy = 1
    mini.send_subscribe("o1", "sub-1", {"thing1": "x"})
    assert wechat.calls["subscribe_send"] == 2 and len(wechat.subscribe_sent) == 1 and len(sleeps) == 1


def test_a_bad_miniprogram_state_is_refused_before_calling(mini, wechat):
    with pytest.raises(ValueError):
        mini.send_subscribe("o1", "sub-1", {"thing1": "x"}, state="beta")
    assert wechat.token_calls == 0


def test_a_wrong_appsecret_is_final(world, wechat, sleeps):
    client = MiniProgramClient(account(world.own_brand, "miniprogram", secrets={"appsecret": "wrong"}))
    with pytest.raises(ChannelError) as caught:
        client.send_subscribe("o1", "sub-1", {"thing1": "x"})
    assert caught.value.code == 40001 and wechat.token_calls == 1 and wechat.calls["subscribe_send"] == 0


# event callback -------------------------------------------------------------------
def _callback(obj, method="post", body=b"", *, token="cb-token", forge=False, HTTP_ACCEPT="*/*", **extra):
    timestamp, nonce = "1794000000", "n0nce"
    query = {
        "signature": callback_signature("forged" if forge else token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
        **extra,
    }
    url = f"/api/activation/wechat/{obj.pk}/callback/?{urlencode(query)}"
    if method == "get":
        return Client().get(url, HTTP_ACCEPT=HTTP_ACCEPT)
    return Client().post(url, body, content_type="text/xml", HTTP_ACCEPT=HTTP_ACCEPT)


def _event(msgid="200163836", status="success") -> bytes:
    return (
        "<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>"
        "<FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>"
        "<CreateTime>1395658920</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>"
        f"<MsgID>{msgid}</MsgID><Status><![CDATA[{status}]]></Status></xml>"
    ).encode()


def test_the_server_check_echoes_when_signed(world):
    obj = account(world.own_brand, "wechat_mp")
    ok = _callback(obj, "get", echostr="echo-123")
    assert ok.status_code == 200 and ok.content == b"echo-123"
    assert ok["Content-Type"].startswith("text/plain")
    assert _callback(obj, "get", forge=True, echostr="echo-123").status_code == 403
    unsigned = Client().get(f"/api/activation/wechat/{obj.pk}/callback/?echostr=x")
    assert unsigned.status_code == 403


def test_a_signed_template_event_is_recorded_once(world):
    obj = account(world.own_brand, "wechat_mp")
    first = _callback(obj, body=_event())
    assert first.status_code == 200 and first.content == b"success"
    # WeChat's retry of the same event, asking for JSON: still plain text
    again = _callback(obj, body=_event(), HTTP_ACCEPT="application/json")
    assert again.status_code == 200 and again.content == b"success"
    receipt = WebhookReceipt.objects.get(account=obj)
    assert (receipt.delivery, receipt.status, receipt.error) == ("200163836", "delivered", "")
    assert receipt.occurred_at == dt.datetime(2014, 3, 24, 11, 2, tzinfo=dt.UTC)
    _callback(obj, body=_event("7", "failed:user block"))
    _callback(obj, body=_event("8", "failed: system failed"))
    assert dict(WebhookReceipt.objects.filter(status="failed").values_list("delivery", "error")) == {
        "7": "user block",
        "8": "system failed",
    }


def test_a_forged_event_is_403_and_nothing_kept(world):
    obj = account(world.own_brand, "wechat_mp")
    assert _callback(obj, body=_event(), forge=True).status_code == 403
    no_token = account(world.own_brand, "wechat_mp", name="no token", secrets={"appsecret": "s"})
    assert _callback(no_token, body=_event()).status_code == 403
    assert not WebhookReceipt.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><MsgType>event",
        b"not xml",
        b"<html/>",
        b'<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><MsgID>&a;</MsgID></xml>',
        _event(status="lost"),
        _event(msgid=""),
        _event().replace(b"1395658920", b"yesterday"),
        b"<xml><Encrypt>abc</Encrypt></xml>",
    ],
)
def test_a_malformed_event_is_400(world, body):
    obj = account(world.own_brand, "wechat_mp")
    assert _callback(obj, body=body).status_code == 400
    assert not WebhookReceipt.objects.exists()


def test_other_messages_are_taken_but_not_kept(world):
    obj = account(world.own_brand, "wechat_mp")
    text = b"<xml><MsgType>text</MsgType><Content>hi</Content></xml>"
    assert _callback(obj, body=text).content == b"success"
    assert _callback(obj, body=_event(), encrypt_type="rot13").status_code == 400
    assert not WebhookReceipt.objects.exists()
    wecom = account(world.own_brand)
    assert _callback(wecom, body=_event()).status_code == 404


# connection test --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["wechat_mp", "miniprogram"])
def test_connection_test_of_both_kinds(world, wechat, kind):
    good = account(world.own_brand, kind)
    bad = account(world.own_brand, kind, name="wrong", secrets={"appsecret": "not-it"})
    assert services.test_connection(good).ok
    refused = services.test_connection(bad)
    assert not refused.ok and refused.code == 40001 and "not-it" not in refused.message
    assert wechat.token_calls == 2


# subscriptions (consent) -----------------------------------------------------------
def test_subscribe_sends_use_recorded_grants(world, wechat, sleeps):
    obj = account(world.own_brand, "miniprogram")
    wechat.subscriptions[("o1", "sub-1")] = 5  # the platform's count
    with pytest.raises(ChannelError) as caught:  # none recorded: not even asked
        services.send_subscribe_message(obj, "o1", "sub-1", {"thing1": "x"})
    assert caught.value.code == 43101 and wechat.calls["subscribe_send"] == 0
    assert services.grant_subscription(obj, "o1", "sub-1") == 1
    assert services.grant_subscription(obj, "o1", "sub-1", 2) == 3
    services.send_subscribe_message(obj, "o1", "sub-1", {"thing1": "x"})
    assert Subscription.objects.get(account=obj).remaining == 2
    with pytest.raises(ChannelError):  # 47003: refused, the grant is given back
        services.send_subscribe_message(obj, "o1", "sub-1", {})
    assert Subscription.objects.get(account=obj).remaining == 2
    wechat.subscriptions[("o1", "sub-1")] = 0  # the platform says there is none left
    with pytest.raises(ChannelError):
        services.send_subscribe_message(obj, "o1", "sub-1", {"thing1": "x"})
    assert Subscription.objects.get(account=obj).remaining == 0
    assert len(wechat.subscribe_sent) == 1


def test_subscriptions_belong_to_mini_programs(world):
    with pytest.raises(ValueError):
        services.grant_subscription(account(world.own_brand, "wechat_mp"), "o1", "sub-1")
    with pytest.raises(ValueError):
        services.grant_subscription(account(world.own_brand, "miniprogram"), "o1", "sub-1", 0)
    assert not Subscription.objects.exists()


# safe mode (安全模式) -----------------------------------------------------------------
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def _safe_account(world, name="safe"):
    return account(
        world.own_brand,
        "wechat_mp",
        name=name,
        secrets={"appsecret": "s", "callback_token": "cb-token", "encoding_aes_key": AES_KEY},
    )


def _safe_post(obj, clear: bytes, *, appid="wx-app", forge=False, key=AES_KEY):
    ciphertext = encrypt_message(key, appid, clear)
    timestamp, nonce = "1794000000", "n0nce"
    body = f"<xml><ToUserName>gh_7f083739789a</ToUserName><Encrypt>{ciphertext}</Encrypt></xml>".encode()
    sig = msg_signature("forged" if forge else "cb-token", timestamp, nonce, ciphertext)
    return _callback(obj, body=body, encrypt_type="aes", msg_signature=sig)


def test_the_safe_mode_layout_is_wechats():
    """Random 16 bytes, big-endian length, message, appid; AES-256-CBC, IV = key[:16],
    PKCS#7 to 32 bytes — read back here with the cipher alone."""
    import base64

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    token = encrypt_message(AES_KEY, "wx-app", b"<xml/>", random16=b"r" * 16)
    key = base64.b64decode(AES_KEY + "=")
    raw = base64.b64decode(token)
    assert len(raw) == 64  # 16 + 4 + 6 + 6 = 32 bytes, a whole block: 32 bytes of padding follow
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    clear = decryptor.update(raw) + decryptor.finalize()
    assert clear.startswith(b"r" * 16 + b"\x00\x00\x00\x06<xml/>wx-app")
    assert decrypt_message(AES_KEY, "wx-app", token) == b"<xml/>"


def test_a_safe_mode_event_is_decrypted_and_recorded(world):
    obj = _safe_account(world)
    answer = _safe_post(obj, _event("991"))
    assert answer.status_code == 200 and answer.content == b"success"
    assert WebhookReceipt.objects.get(account=obj).delivery == "991"


def test_safe_mode_refusals(world):
    obj = _safe_account(world)
    assert _safe_post(obj, _event(), forge=True).status_code == 403  # msg_signature forged
    assert _safe_post(obj, _event(), appid="wx-other").status_code == 403  # another account's message
    other_key = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg"
    assert _safe_post(obj, _event(), key=other_key).status_code in (400, 403)  # does not decrypt
    plain = _callback(obj, body=_event(), encrypt_type="aes", msg_signature="x")
    assert plain.status_code == 400  # no Encrypt element
    no_key = account(world.own_brand, "wechat_mp", name="no key")
    assert _safe_post(no_key, _event()).status_code == 400
    assert not WebhookReceipt.objects.exists()
