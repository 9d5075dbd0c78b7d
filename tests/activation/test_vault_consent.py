"""The contact vault (encrypted numbers, audited reveals, key rotation, no vault without
keys), consent and suppression rules, their bulk form, and their API."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone
from rest_framework.test import APIClient

from tagportal.activation import consent, vault
from tagportal.activation.models import Consent, ContactEntry, Suppression, VaultAccess
from tests.conftest import client_for

from ..api.contract import (
    CreateContract,
    DeleteContract,
    ReadContract,
    Resource,
    ScopedContract,
    ScopedDeleteContract,
    once,
)

PHONE = "13812345678"
KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def keys(settings):
    settings.TAGPORTAL_VAULT_KEYS = KEY_A
    return settings


def test_storing_without_vault_keys_refuses(world, settings):
    settings.TAGPORTAL_VAULT_KEYS = ""
    assert not vault.enabled()
    with pytest.raises(vault.VaultUnavailable, match="TAGPORTAL_VAULT_KEYS"):
        vault.store(world.own_brand, 1, PHONE)
    assert not ContactEntry.objects.exists()


def test_store_normalises_encrypts_and_hashes_like_profiles(world, keys):
    from tagportal.profiles import pii

    entry = vault.store(world.own_brand, 7, "+86 138-1234-5678")
    entry.refresh_from_db()
    assert PHONE not in entry.ciphertext and PHONE[3:] not in entry.ciphertext
    assert entry.value_hash == pii.hash_value("phone", PHONE)
    assert entry.masked == "138******78"
    assert "13812345678" not in str(entry)
    with pytest.raises(vault.ContactRefused):
        vault.store(world.own_brand, 7, "12345")


def test_reveal_records_an_access(world, keys):
    entry = vault.store(world.own_brand, 7, PHONE)
    assert vault.reveal(entry, "send sms", actor=world.steward) == PHONE
    assert vault.reveal(entry, "delivery 1") == PHONE
    rows = list(VaultAccess.objects.filter(entry=entry).order_by("pk"))
    assert [(r.purpose, r.actor) for r in rows] == [("send sms", world.steward), ("delivery 1", None)]


def test_key_rotation(world, settings):
    settings.TAGPORTAL_VAULT_KEYS = KEY_A
    entry = vault.store(world.own_brand, 7, PHONE)
    settings.TAGPORTAL_VAULT_KEYS = f"{KEY_B},{KEY_A}"
    assert vault.reveal(entry, "old key still reads") == PHONE
    assert vault.rotate_all() == 1
    settings.TAGPORTAL_VAULT_KEYS = KEY_B
    entry.refresh_from_db()
    assert vault.reveal(entry, "new key only") == PHONE
    settings.TAGPORTAL_VAULT_KEYS = KEY_A
    with pytest.raises(vault.VaultUnavailable):
        vault.reveal(entry, "wrong key")


# may_contact ---------------------------------------------------------------


def test_opt_out_of_channel_and_of_all(world, keys):
    brand = world.own_brand
    assert consent.may_contact(brand, 1, "wecom") == (True, "ok")
    Consent.objects.create(brand=brand, oneid=1, channel="wecom", state="opted_out")
    assert consent.may_contact(brand, 1, "wecom_robot") == (False, "opted_out")
    assert consent.may_contact(brand, 1, "wechat_mp") == (True, "ok")
    Consent.objects.create(brand=brand, oneid=1, channel="all", state="opted_out")
    assert consent.may_contact(brand, 1, "wechat_mp") == (False, "opted_out")
    # another brand's rows do not count
    assert consent.may_contact(world.other_brand, 1, "wechat_mp") == (True, "ok")


def test_suppression_keys_and_expiry(world, keys):
    brand, now = world.own_brand, timezone.now()
    Suppression.objects.create(
        brand=brand, key_type="oneid", key="2", reason="complaint", until=now + timedelta(days=1)
    )
    assert consent.may_contact(brand, 2, "wecom") == (False, "suppressed")
    assert consent.may_contact(brand, 2, "wecom", at=now + timedelta(days=2)) == (True, "ok")
    Suppression.objects.create(brand=brand, key_type="openid", key="o-abc", reason="x")
    assert consent.may_contact(brand, 3, "wechat_mp", openid="o-abc") == (False, "suppressed")
    assert consent.may_contact(brand, 3, "wechat_mp", openid="o-other") == (True, "ok")
    # a suppressed phone holds back its owner in the vault, on every channel
    vault.store(brand, 4, PHONE)
    Suppression.objects.create(brand=brand, key_type="phone", key=vault.phone_hash(PHONE), reason="x")
    assert consent.may_contact(brand, 4, "sms_aliyun") == (False, "suppressed")
    assert consent.may_contact(brand, 5, "wecom", phone_hash=vault.phone_hash(PHONE)) == (False, "suppressed")


def test_sms_needs_a_vault_entry(world, settings):
    settings.TAGPORTAL_VAULT_KEYS = KEY_A
    brand = world.own_brand
    assert consent.may_contact(brand, 6, "sms_tencent") == (False, "no_contact")
    vault.store(brand, 6, PHONE)
    assert consent.may_contact(brand, 6, "sms_tencent") == (True, "ok")
    assert consent.may_contact(brand, 6, "wecom") == (True, "ok")
    settings.TAGPORTAL_VAULT_KEYS = ""
    assert consent.may_contact(brand, 6, "sms_tencent") == (False, "no_vault")


def test_default_policy_both_ways(world, keys):
    brand = world.own_brand
    keys.TAGPORTAL_CONSENT_DEFAULT = "opt_in"
    assert consent.may_contact(brand, 8, "wecom") == (False, "no_consent")
    Consent.objects.create(brand=brand, oneid=8, channel="wecom", state="opted_in")
    assert consent.may_contact(brand, 8, "wecom") == (True, "ok")
    keys.TAGPORTAL_CONSENT_DEFAULT = "wecom=opt_out,*=opt_in"
    assert consent.may_contact(brand, 9, "wecom") == (True, "ok")
    assert consent.may_contact(brand, 9, "youzan") == (False, "no_consent")
    Consent.objects.create(brand=brand, oneid=9, channel="all", state="opted_in")
    assert consent.may_contact(brand, 9, "youzan") == (True, "ok")
    keys.TAGPORTAL_CONSENT_DEFAULT = "opt_out"
    assert consent.may_contact(brand, 10, "youzan") == (True, "ok")


def test_may_contact_many_matches_may_contact_in_bounded_queries(world, keys, django_assert_max_num_queries):
    brand, rng = world.own_brand, random.Random(13)
    keys.TAGPORTAL_CONSENT_DEFAULT = "sms=opt_in,*=opt_out"
    people = list(range(1, 121))
    for oneid in people:
        roll = rng.random()
        if roll < 0.2:
            Consent.objects.create(
                brand=brand, oneid=oneid, channel=rng.choice(["sms", "all"]), state="opted_out"
            )
        elif roll < 0.5:
            Consent.objects.create(
                brand=brand, oneid=oneid, channel=rng.choice(["sms", "all"]), state="opted_in"
            )
        if rng.random() < 0.6:
            vault.store(brand, oneid, f"139{oneid:08d}")
        if rng.random() < 0.1:
            Suppression.objects.create(brand=brand, key_type="oneid", key=str(oneid), reason="x")
    with django_assert_max_num_queries(4):
        result = consent.may_contact_many(brand, people, "sms_aliyun")
    assert result.allowed and len(result.counts) >= 3
    assert len(result.allowed) + sum(result.counts.values()) == len(people)
    for oneid in rng.sample(people, 40):
        ok, reason = consent.may_contact(brand, oneid, "sms_aliyun")
        assert (oneid in result.allowed) == ok
        assert result.refused.get(oneid, "ok") == reason


# API -----------------------------------------------------------------------

CONSENTS, SUPPRESSIONS = "/api/activation/consents/", "/api/activation/suppressions/"


class TestConsents(Resource, ReadContract, CreateContract, ScopedContract):
    url = CONSENTS
    model = Consent

    def user(self, world):
        return world.steward

    def permitted(self, world):
        return once(
            world,
            "_own_consent",
            lambda: Consent.objects.create(brand=world.own_brand, oneid=11, channel="sms", state="opted_in"),
        )

    def other(self, world):
        return once(
            world,
            "_other_consent",
            lambda: Consent.objects.create(
                brand=world.other_brand, oneid=11, channel="sms", state="opted_in"
            ),
        )

    def create_data(self, world):
        return {
            "brand": world.own_brand.code,
            "oneid": 12,
            "channel": "wecom",
            "state": "opted_out",
            "source": "api",
        }


class TestSuppressions(
    Resource, ReadContract, CreateContract, DeleteContract, ScopedContract, ScopedDeleteContract
):
    url = SUPPRESSIONS
    model = Suppression
    write_only_fields = ("value",)

    def user(self, world):
        return world.steward

    def _make(self, brand, key):
        return Suppression.objects.create(brand=brand, key_type="oneid", key=key, masked=key, reason="r")

    def permitted(self, world):
        return once(world, "_own_sup", lambda: self._make(world.own_brand, "21"))

    def other(self, world):
        return once(world, "_other_sup", lambda: self._make(world.other_brand, "21"))

    def deletable(self, world, user):
        return self._make(world.own_brand, "22")

    def create_data(self, world):
        return {"brand": world.own_brand.code, "key_type": "oneid", "value": "23", "reason": "complaint"}


def test_consent_post_sets_and_unsets(world):
    client = client_for(world.steward)
    data = {"brand": world.own_brand.code, "oneid": 30, "channel": "sms", "state": "opted_in"}
    assert client.post(CONSENTS, data, format="json").status_code == 201
    again = client.post(CONSENTS, {**data, "state": "opted_out"}, format="json")
    assert again.status_code == 200, again.content
    assert Consent.objects.get(brand=world.own_brand, oneid=30, channel="sms").state == "opted_out"
    assert client.post(CONSENTS, {**data, "channel": "fax"}, format="json").status_code == 400


def test_operators_read_stewards_write(world):
    Consent.objects.create(brand=world.own_brand, oneid=31, channel="sms", state="opted_in")
    operator = client_for(world.operator)
    assert operator.get(CONSENTS).json()["count"] == 1
    data = {"brand": world.own_brand.code, "oneid": 31, "channel": "sms", "state": "opted_out"}
    assert operator.post(CONSENTS, data, format="json").status_code == 403
    sup = {"brand": world.own_brand.code, "key_type": "oneid", "value": "31", "reason": "r"}
    assert operator.post(SUPPRESSIONS, sup, format="json").status_code == 403
    assert APIClient().post(CONSENTS, data, format="json").status_code == 401
    # a steward may not write into a brand they do not reach
    other = {**data, "brand": world.other_brand.code}
    assert client_for(world.steward).post(CONSENTS, other, format="json").status_code == 400
    assert Consent.objects.get(oneid=31).state == "opted_in"


def test_api_never_returns_the_phone(world, keys):
    vault.store(world.own_brand, 40, PHONE)
    client = client_for(world.steward)
    sup = {"brand": world.own_brand.code, "key_type": "phone", "value": "+86 138 1234 5678", "reason": "r"}
    created = client.post(SUPPRESSIONS, sup, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["masked"] == "138******78"
    row = Suppression.objects.get()
    assert row.key == vault.phone_hash(PHONE)
    for response in (
        created,
        client.get(SUPPRESSIONS),
        client.get(f"{SUPPRESSIONS}{row.pk}/"),
        client.get(CONSENTS),
    ):
        assert PHONE not in response.content.decode()
        assert PHONE[3:] not in response.content.decode()
    assert client.post(SUPPRESSIONS, sup, format="json").status_code == 400  # already suppressed
    bad = client.post(SUPPRESSIONS, {**sup, "value": "555"}, format="json")
    assert bad.status_code == 400


IMPORT = "/api/activation/vault/import/"


def _csv(text: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("phones.csv", text.encode(), content_type="text/csv")


def test_vault_import_all_or_nothing(world, keys):
    from tagportal.profiles.models import Customer

    for oneid in (101, 102):
        Customer.objects.create(brand=world.own_brand, oneid=oneid)
    client = client_for(world.steward)
    bad = client.post(
        IMPORT,
        {
            "brand": world.own_brand.code,
            "file": _csv("oneid,phone\n101,13811112222\n102,12\n999,13933334444\n"),
        },
        format="multipart",
    )
    assert bad.status_code == 400, bad.content
    assert [e["row"] for e in bad.json()["errors"]] == [3, 4]
    assert not ContactEntry.objects.exists()
    good = client.post(
        IMPORT,
        {
            "brand": world.own_brand.code,
            "file": _csv("oneid,phone\n101,+86 138 1111 2222\n102,13933334444\n"),
        },
        format="multipart",
    )
    assert good.status_code == 200, good.content
    assert good.json() == {"stored": 2, "unmatched": 0, "unmatched_rows": []}
    assert "1381111" not in good.content.decode()
    entry = ContactEntry.objects.get(oneid=101)
    assert vault.reveal(entry, "test") == "13811112222"
    header = client.post(
        IMPORT, {"brand": world.own_brand.code, "file": _csv("mobile\n13811112222\n")}, format="multipart"
    )
    assert header.status_code == 400 and header.json()["errors"][0]["row"] == 1


def test_vault_import_of_phones_only_is_a_recorded_identity_lookup(world, keys):
    from tagportal.profiles.models import Customer, Identity, IdentityLookup
    from tagportal.profiles.pii import hash_value, mask

    holder = Customer.objects.create(brand=world.own_brand, oneid=201)
    Identity.objects.create(
        brand=world.own_brand,
        customer=holder,
        type="phone",
        value_hash=hash_value("phone", "13955556666"),
        masked=mask("phone", "13955556666"),
    )
    data = lambda text: {"brand": world.own_brand.code, "file": _csv(text)}  # noqa: E731
    # a steward without the lookup permission may not ask who holds numbers
    refused = client_for(world.steward).post(IMPORT, data("phone\n13955556666\n"), format="multipart")
    assert refused.status_code == 403
    assert IdentityLookup.objects.get().refused
    admin = client_for(world.admin)
    bad = admin.post(IMPORT, data("phone\n13955556666\n123\n139 5555 6666\n"), format="multipart")
    assert bad.status_code == 400
    assert [e["row"] for e in bad.json()["errors"]] == [3, 4]
    assert not ContactEntry.objects.exists()
    good = admin.post(IMPORT, data("phone\n+86 139 5555 6666\n13977778888\n"), format="multipart")
    assert good.status_code == 200, good.content
    assert good.json() == {"stored": 1, "unmatched": 1, "unmatched_rows": [3]}
    assert "1397777" not in good.content.decode()
    entry = ContactEntry.objects.get()
    assert entry.oneid == 201 and vault.reveal(entry, "test") == "13955556666"
    audit = IdentityLookup.objects.filter(refused=False).get()
    assert (audit.endpoint, audit.candidates, audit.found) == ("vault_import", 2, 1)


def test_vault_import_permissions_and_no_vault(world, settings):
    settings.TAGPORTAL_VAULT_KEYS = ""
    data = {"brand": world.own_brand.code, "file": _csv("oneid,phone\n1,13811112222\n")}
    assert client_for(world.operator).post(IMPORT, data, format="multipart").status_code == 403
    data["file"] = _csv("oneid,phone\n1,13811112222\n")
    assert client_for(world.steward).post(IMPORT, data, format="multipart").status_code == 409
    data["file"] = _csv("oneid,phone\n1,13811112222\n")
    assert APIClient().post(IMPORT, data, format="multipart").status_code == 401
    other = {"brand": world.other_brand.code, "file": _csv("oneid,phone\n1,13811112222\n")}
    settings.TAGPORTAL_VAULT_KEYS = KEY_A
    assert client_for(world.steward).post(IMPORT, other, format="multipart").status_code == 400
    assert not ContactEntry.objects.exists()


def test_admin_shows_the_mask_only(world, keys, client):
    entry = vault.store(world.own_brand, 50, PHONE)
    vault.reveal(entry, "audit me")
    client.force_login(world.admin)
    for url in (
        "/admin/activation/contactentry/",
        f"/admin/activation/contactentry/{entry.pk}/change/",
        "/admin/activation/vaultaccess/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "138******78" in html or "audit me" in html
        assert PHONE not in html and entry.ciphertext not in html
