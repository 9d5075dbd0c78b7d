"""The activation API and admin: the contract of channel accounts, secrets never shown
back (API, admin, history), another brand's account 404, the connection test, and the
signed receipt callback (unsigned 401, forged or stale 403, bad body 400)."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from tagportal.activation.connectors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from tagportal.activation.models import ChannelAccount, WebhookReceipt
from tests.conftest import client_for

from ..api.contract import (
    CreateContract,
    ReadContract,
    Resource,
    ScopedContract,
    ScopedUpdateContract,
    UnauthenticatedWriteContract,
    UpdateContract,
    once,
)
from .fakes import FakeWeCom
from .helpers import account

URL = "/api/activation/accounts/"
SECRET = "corp-secret-Zx9"


class TestAccounts(
    Resource,
    ReadContract,
    CreateContract,
    UpdateContract,
    UnauthenticatedWriteContract,
    ScopedContract,
    ScopedUpdateContract,
):
    url = URL
    model = ChannelAccount
    write_only_fields = ("secrets",)

    def user(self, world):
        return world.steward

    def permitted(self, world):
        return once(world, "_own_account", lambda: account(world.own_brand))

    def other(self, world):
        return once(world, "_other_account", lambda: account(world.other_brand))

    def create_data(self, world):
        return {
            "brand": world.own_brand.code,
            "kind": "wecom",
            "name": "企业微信主体",
            "settings": {"corpid": "ww-corp", "agentid": 1000002},
            "secrets": {"corpsecret": SECRET},
            "is_active": True,
        }

    def update_data(self, world):
        return {"name": "企业微信（新）", "settings": {"corpid": "ww-new"}, "is_active": False}


def test_secrets_are_written_never_read(world):
    client = client_for(world.steward)
    data = TestAccounts().create_data(world)
    created = client.post(URL, data, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["secrets_set"] == ["corpsecret"]
    for response in (created, client.get(URL), client.get(f"{URL}{pk}/")):
        assert SECRET not in response.content.decode()
        assert "secrets" not in json.dumps(response.json()).replace("secrets_set", "")
    stored = ChannelAccount.objects.get(pk=pk)
    assert stored.secret("corpsecret") == SECRET
    # a blank secret keeps the stored one; the history never holds it
    assert client.patch(f"{URL}{pk}/", {"secrets": {"corpsecret": ""}}, format="json").status_code == 200
    assert ChannelAccount.objects.get(pk=pk).secret("corpsecret") == SECRET
    assert not hasattr(stored.history.first(), "secrets")


@pytest.mark.parametrize(
    "change, field",
    [
        ({"settings": {"corpid": "ww", "corpsecret": "x"}}, "settings"),
        ({"settings": {"agentid": 1}}, "settings"),
        ({"settings": {"corpid": "ww", "agentid": "abc"}}, "settings"),
        ({"secrets": {"appsecret": "x"}}, "secrets"),
        ({"kind": "fax"}, "kind"),
    ],
)
def test_bad_settings_or_secrets_are_400(world, change, field):
    data = {**TestAccounts().create_data(world), **change}
    response = client_for(world.steward).post(URL, data, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not ChannelAccount.objects.filter(name=data["name"]).exists()


def test_operators_view_but_do_not_manage_accounts(world):
    obj = account(world.own_brand)
    client = client_for(world.operator)
    assert client.get(f"{URL}{obj.pk}/").status_code == 200
    assert client.post(URL, TestAccounts().create_data(world), format="json").status_code == 403
    assert client.post(f"{URL}{obj.pk}/test/").status_code == 403


def test_connection_test_answers_ok_or_the_platform_error(world, platform):
    fake = FakeWeCom(platform, corpsecret=SECRET)
    good = account(world.own_brand, secrets={"corpsecret": SECRET})
    bad = account(world.own_brand, name="wrong", secrets={"corpsecret": "not-the-secret"})
    client = client_for(world.steward)
    assert client.post(f"{URL}{good.pk}/test/").json() == {"ok": True, "code": None, "message": ""}
    refused = client.post(f"{URL}{bad.pk}/test/")
    assert refused.status_code == 200
    assert refused.json()["ok"] is False and refused.json()["code"] == 40001
    assert "not-the-secret" not in refused.content.decode() and SECRET not in refused.content.decode()
    assert fake.gettoken_calls == 2
    other = account(world.other_brand)
    assert client.post(f"{URL}{other.pk}/test/").status_code == 404


def test_secrets_never_in_the_admin(world, platform):
    FakeWeCom(platform, corpsecret=SECRET)
    obj = account(world.own_brand, secrets={"corpsecret": SECRET})
    browser = Client()
    browser.force_login(world.admin)
    for url in (
        f"/admin/activation/channelaccount/{obj.pk}/change/",
        "/admin/activation/channelaccount/",
        f"/admin/activation/channelaccount/{obj.pk}/history/",
    ):
        page = browser.get(url)
        assert page.status_code == 200, url
        assert SECRET not in page.content.decode()
    # saving the form with the secret inputs blank keeps the secret
    form = {
        "brand": obj.brand_id,
        "kind": "wecom",
        "name": "改名",
        "settings": '{"corpid": "ww-corp"}',
        "is_active": "on",
    }
    saved = browser.post(f"/admin/activation/channelaccount/{obj.pk}/change/", form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    obj.refresh_from_db()
    assert obj.name == "改名" and obj.secret("corpsecret") == SECRET
    action = browser.post(
        "/admin/activation/channelaccount/",
        {"action": "test_connection", "_selected_action": [obj.pk]},
        follow=True,
    )
    assert "connected" in action.content.decode()


# receipts ---------------------------------------------------------------------
def _signed(hook, body: dict, *, secret="signing-secret", at=None, forge=False):
    raw = json.dumps(body).encode()
    timestamp = str(int(at if at is not None else time.time()))
    sig = signature("forged" if forge else secret, timestamp, raw)
    return Client().post(
        f"/api/activation/webhooks/{hook.pk}/receipts/",
        raw,
        content_type="application/json",
        headers={TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sig},
    )


RECEIPTS = {
    "receipts": [
        {"delivery": "d-1", "status": "delivered", "at": "2026-11-11T10:00:00+08:00"},
        {"delivery": "d-2", "status": "failed", "at": "2026-11-11T10:00:01+08:00", "error": "unsubscribed"},
    ]
}


def test_signed_receipts_are_recorded_once(world):
    hook = account(world.own_brand, "webhook")
    first = _signed(hook, RECEIPTS)
    assert first.status_code == 200 and first.json() == {"accepted": 2, "duplicates": 0}
    again = _signed(hook, RECEIPTS)
    assert again.json() == {"accepted": 0, "duplicates": 2}
    assert WebhookReceipt.objects.filter(account=hook).count() == 2
    assert WebhookReceipt.objects.get(delivery="d-2").error == "unsubscribed"


def test_forged_stale_or_unsigned_receipts_are_refused(world):
    hook = account(world.own_brand, "webhook")
    assert _signed(hook, RECEIPTS, forge=True).status_code == 403
    assert _signed(hook, RECEIPTS, at=time.time() - 301).status_code == 403
    assert _signed(hook, RECEIPTS, at=time.time() + 400).status_code == 403
    unsigned = Client().post(
        f"/api/activation/webhooks/{hook.pk}/receipts/", RECEIPTS, content_type="application/json"
    )
    assert unsigned.status_code == 401
    assert not WebhookReceipt.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"receipts": []},
        {"receipts": [{"delivery": "d", "status": "lost", "at": "2026-11-11T10:00:00+08:00"}]},
        {"receipts": [{"delivery": "d", "status": "read", "at": "yesterday"}]},
        {"receipts": [{"delivery": "d", "status": "read", "at": "2026-11-11T10:00:00"}]},
        {"receipts": [{"delivery": "", "status": "read", "at": "2026-11-11T10:00:00Z"}]},
        {"receipts": [RECEIPTS["receipts"][0], "x"]},
    ],
)
def test_a_bad_receipt_body_is_400_and_nothing_is_kept(world, body):
    hook = account(world.own_brand, "webhook")
    response = _signed(hook, body)
    assert response.status_code == 400, response.content
    assert not WebhookReceipt.objects.exists()


def test_receipts_for_an_account_that_is_not_a_webhook_are_404(world):
    assert _signed(account(world.own_brand), RECEIPTS).status_code == 404
