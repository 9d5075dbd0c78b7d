"""Consent from the channels' own callbacks: a 公众号 follower unfollowing (or following
again), and an SMS reply asking to stop (上行退订), recorded on the people holding the
openid or the number; nothing of the number or the text is kept."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.test import Client

from tagportal.activation import consent, vault
from tagportal.activation.models import Consent
from tagportal.profiles import pii
from tagportal.profiles.models import Customer, Identity

from .helpers import account
from .test_sms_and_shops import make
from .test_wechat import _callback

pytestmark = pytest.mark.django_db


def person(brand, oneid, type_, value, app=""):
    customer, _ = Customer.objects.get_or_create(brand=brand, oneid=oneid)
    Identity.objects.create(
        brand=brand,
        customer=customer,
        type=type_,
        app=app,
        value_hash=pii.hash_value(type_, value),
        value="" if type_ == "phone" else value,
        masked=pii.mask(type_, value),
    )


def _follow(event: str, openid: str) -> bytes:
    return (
        "<xml><ToUserName>gh_7f083739789a</ToUserName>"
        f"<FromUserName>{openid}</FromUserName><CreateTime>1794000000</CreateTime>"
        f"<MsgType>event</MsgType><Event>{event}</Event></xml>"
    ).encode()


def states(brand, channel):
    return dict(Consent.objects.filter(brand=brand, channel=channel).values_list("oneid", "state"))


def test_unfollowing_the_official_account_opts_out_and_following_again_opts_in(world):
    obj = account(world.own_brand, "wechat_mp")
    person(world.own_brand, 7, "wechat_openid", "o-follower", app="wx-app")
    person(world.own_brand, 8, "wechat_openid", "o-follower", app="wx-other-app")  # another app's openid
    assert _callback(obj, body=_follow("unsubscribe", "o-follower")).content == b"success"
    assert states(world.own_brand, "wechat_mp") == {7: "opted_out"}
    assert Consent.objects.get(oneid=7).source == "callback"
    assert consent.may_contact(world.own_brand, 7, "wechat_mp") == (False, consent.OPTED_OUT)
    _callback(obj, body=_follow("subscribe", "o-follower"))
    assert states(world.own_brand, "wechat_mp") == {7: "opted_in"}
    # an openid nobody holds: answered, nothing kept
    assert _callback(obj, body=_follow("unsubscribe", "o-stranger")).content == b"success"
    assert Consent.objects.count() == 1
    # a forged one changes nothing
    assert _callback(obj, body=_follow("unsubscribe", "o-follower"), forge=True).status_code == 403
    assert states(world.own_brand, "wechat_mp") == {7: "opted_in"}


@pytest.mark.parametrize("text", ["TD", " td ", "退订", "T", "N", "Unsubscribe"])
def test_stop_words(text):
    assert consent.is_stop_reply(text)


@pytest.mark.parametrize("text", ["谢谢", "TD我要预约", "", None, 12])
def test_not_stop_words(text):
    assert not consent.is_stop_reply(text)


def _replies(obj, platform, body, token):
    return Client().post(
        f"/api/activation/sms/{obj.pk}/{platform}/replies/?token={token}",
        json.dumps(body, ensure_ascii=False),
        content_type="application/json",
    )


def test_an_sms_stop_reply_opts_the_holders_out_of_sms(world, settings):
    settings.TAGPORTAL_VAULT_KEYS = Fernet.generate_key().decode()
    obj = make(world.own_brand, "sms_aliyun")
    person(world.own_brand, 11, "phone", "13811112222")
    vault.store(world.own_brand, 12, "13933334444")  # a number only the vault knows
    person(world.other_brand, 13, "phone", "13811112222")  # another brand's person: untouched
    body = [
        {
            "phone_number": "13811112222",
            "content": "TD",
            "send_time": "2026-12-07 10:00:00",
            "sign_name": "瑞颜",
        },
        {"phone_number": "+86 139 3333 4444", "content": "退订", "sign_name": "瑞颜"},
        {"phone_number": "13755556666", "content": "请问几点开门", "sign_name": "瑞颜"},
    ]
    answer = _replies(obj, "aliyun", body, "rt-aliyun-9f3")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"code": 0, "msg": "成功", "replies": 3, "stop": 2, "opted_out": 2}
    assert "1381111" not in answer.content.decode()
    assert states(world.own_brand, "sms") == {11: "opted_out", 12: "opted_out"}
    assert not Consent.objects.filter(brand=world.other_brand).exists()
    assert consent.may_contact(world.own_brand, 11, "sms_aliyun")[1] == consent.OPTED_OUT


def test_tencent_replies_and_refusals(world):
    obj = make(world.own_brand, "sms_tencent")
    person(world.own_brand, 21, "phone", "13811112222")
    one = {
        "extend": "",
        "mobile": "13811112222",
        "nationcode": "86",
        "sign": "瑞颜",
        "text": "T",
        "time": 1794000000,
    }
    assert _replies(obj, "tencent", one, "rt-tencent-7c1").json()["opted_out"] == 1
    assert states(world.own_brand, "sms") == {21: "opted_out"}
    assert _replies(obj, "tencent", one, "wrong").status_code == 403
    for bad in ([], [{"mobile": "138"}], [{"text": "TD"}], ["TD"], {"mobile": 13811112222, "text": "TD"}):
        assert _replies(obj, "tencent", bad, "rt-tencent-7c1").status_code == 400, bad
    deep = Client().post(
        f"/api/activation/sms/{obj.pk}/tencent/replies/?token=rt-tencent-7c1",
        "[" * 100000 + "]" * 100000,
        content_type="application/json",
    )
    assert deep.status_code == 400
