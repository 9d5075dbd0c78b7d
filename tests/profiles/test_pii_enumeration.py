"""Nobody recovers a phone number by guessing: masks keep at most 3 + 2 digits, looking
people up by a raw identity value is a permission of its own (operators and analysts
trying 10,000 completions of a masked number learn nothing), throttled per user and
recorded without the values; OneIDs out of range answer 400."""

import importlib
import random
import string

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import override_settings

from tagportal.core.roles import API_CLIENT
from tagportal.profiles import pii, services
from tagportal.profiles.choices import IdentityType
from tagportal.profiles.models import MAX_ONEID, Customer, Identity, IdentityLookup

from ..conftest import client_for
from ..factories import UserFactory
from .conftest import OTHER_PHONE, PHONE, links

pytestmark = pytest.mark.django_db

BATCH = "/api/engine/profiles/batch/"
PROFILE_LOOKUP = "/api/engine/profiles/lookup/"
CUSTOMER_LOOKUP = "/api/profiles/customers/lookup/"
HUGE = 99999999999999999999


# ---------------------------------------------------------------------------
# Masks


def sample_values(count: int = 3000, seed: int = 11) -> list[str]:
    """Identifier-like values of every length up to 128, formula characters included."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "_-=+@"
    return ["".join(rng.choices(alphabet, k=rng.randint(1, 128))) for _ in range(count)]


def test_a_masked_phone_keeps_at_most_3_leading_and_2_trailing_digits():
    rng = random.Random(7)
    for phone in [
        PHONE,
        "19900000000",
        *(f"1{rng.randint(3, 9)}{rng.randrange(10**9):09d}" for _ in range(2000)),
    ]:
        masked = pii.mask(IdentityType.PHONE, phone)
        assert len(masked) == 11 and masked == f"{phone[:3]}******{phone[-2:]}"
        assert sum(c.isdigit() for c in masked) == 5


@pytest.mark.parametrize("type_", [t for t in IdentityType.values if t != IdentityType.PHONE])
def test_other_identifiers_keep_about_a_quarter_and_never_start_a_formula(type_):
    for value in sample_values():
        masked = pii.mask(type_, value)
        shown = masked.replace("*", "")
        if len(value) < pii.SHORT_VALUE:
            assert masked == "****"
        else:
            assert len(shown) <= min(len(value) // 4, 4) + 2 and 2 * len(shown) <= len(value), value
            assert masked.count("*") >= 4
        assert not masked.startswith(pii.FORMULA_STARTS), value


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_masked_value_never_starts_with_a_formula_character(start):
    for value in (f"{start}cmd|' /C calc'!A0", f"{start}{start}HYPERLINK(1)", start * 20, start):
        for type_ in IdentityType.values:
            assert not pii.mask(type_, value).startswith(pii.FORMULA_STARTS), (type_, value)


def test_stored_masks_are_what_every_page_shows(world, client):
    services.resolve_identities(world.own_brand, links(("a", "phone", PHONE), ("a", "crm_member_id", "=1+2")))
    customer = Customer.objects.get(brand=world.own_brand)
    assert dict(customer.identities.values_list("type", "masked")) == {
        "phone": "138******78",
        "crm_member_id": "****",
    }
    api = client_for(world.operator).get(f"/api/profiles/customers/{customer.pk}/").json()
    assert {i["type"]: (i["value"], i["masked"]) for i in api["identities"]} == {
        "phone": ("138******78", "138******78"),
        "crm_member_id": ("****", "****"),
    }
    profile = client_for(world.operator).get(f"/api/engine/profiles/{customer.oneid}/", {"brand": "ruiyan"})
    assert {i["type"]: i["value"] for i in profile.json()["identities"]} == {
        "phone": "138******78",
        "crm_member_id": "****",
    }
    client.force_login(world.operator)
    page = client.get(f"/admin/profiles/customer/{customer.pk}/change/").content.decode()
    assert "138******78" in page and PHONE[3:9] not in page


# ---------------------------------------------------------------------------
# Enumeration


@pytest.fixture
def person(world):
    """The own brand's person holding PHONE, and the other brand's one."""
    services.resolve_identities(world.own_brand, links(("a", "phone", PHONE), ("a", "wechat_unionid", "oU1")))
    services.resolve_identities(world.other_brand, links(("z", "phone", OTHER_PHONE)))
    return Customer.objects.get(brand=world.own_brand)


@pytest.fixture
def crm(world):
    return UserFactory(username="crm", role=API_CLIENT, grants=[(world.own_line, "analysts")])


def completions(masked: str, count: int = 10_000) -> list[str]:
    """``count`` numbers the mask could stand for (the first four hidden digits run
    through 0000–9999, the last two are the true ones for PHONE, so one of them is it)."""
    head, tail = masked[:3], masked[-2:]
    return [f"{head}{i:04d}{PHONE[7:9]}{tail}" for i in range(count)]


def test_an_operator_or_analyst_learns_nothing_from_10000_candidates(world, person):
    for user in (world.operator, world.analyst):
        client = client_for(user)
        masked = {
            i["type"]: i["value"]
            for i in client.get(f"/api/profiles/customers/{person.pk}/").json()["identities"]
        }["phone"]
        assert masked == "138******78"
        candidates = completions(masked)
        assert PHONE in candidates and len(set(candidates)) == 10_000

        answers = set()
        for start in range(0, len(candidates), 1000):
            identities = [{"type": "phone", "value": v} for v in candidates[start : start + 1000]]
            response = client.post(BATCH, {"brand": "ruiyan", "identities": identities}, format="json")
            answers.add((response.status_code, response.content))
        # one at a time: the true number, numbers nobody holds, another brand's person
        for value in [PHONE, OTHER_PHONE, *candidates[:150], *candidates[-150:]]:
            for url in (PROFILE_LOOKUP, CUSTOMER_LOOKUP):
                response = client.get(url, {"brand": "ruiyan", "type": "phone", "value": value})
                answers.add((url, response.status_code, response.content))
        statuses = {answer[-2] for answer in answers}
        assert statuses == {403}
        assert len(answers) == 3, answers  # one answer per endpoint, whatever the number
        assert PHONE.encode() not in b"".join(answer[-1] for answer in answers)
        assert str(person.oneid).encode() not in b"".join(a[-1] for a in answers if a[0] == 403)

        rows = IdentityLookup.objects.filter(user=user)
        assert rows.filter(refused=False).count() == 0 and not rows.exclude(found=0).exists()
        assert rows.filter(endpoint="profile_batch").count() == 10
        assert sum(rows.filter(endpoint="profile_batch").values_list("candidates", flat=True)) == 10_000
        assert rows.filter(endpoint="profile_lookup").count() == 302
        assert rows.filter(endpoint="customer_lookup").count() == 302


def test_refused_answers_are_identical_to_the_byte(world, person):
    """A number held by someone and one held by nobody: the same status, headers and body."""
    client = client_for(world.operator)

    def answer(value):
        response = client.get(PROFILE_LOOKUP, {"brand": "ruiyan", "type": "phone", "value": value})
        return response.status_code, response.content, sorted(response.headers.items())

    assert answer(PHONE) == answer("13800000078") == answer(OTHER_PHONE)
    batch = client.post(
        BATCH, {"brand": "ruiyan", "identities": [{"type": "phone", "value": PHONE}]}, format="json"
    )
    assert batch.status_code == 403 and "look people up" in batch.json()["detail"]
    assert "results" not in batch.json()


def test_a_service_account_with_the_permission_finds_the_person(world, person, crm):
    client = client_for(crm)
    found = []
    candidates = completions("138******78")
    for start in range(0, len(candidates), 1000):
        identities = [{"type": "phone", "value": v} for v in candidates[start : start + 1000]]
        response = client.post(BATCH, {"brand": "ruiyan", "identities": identities}, format="json")
        assert response.status_code == 200, response.content
        found += [(r["identity"]["value"], r["oneid"]) for r in response.json()["results"] if r["found"]]
    assert found == [("138******78", person.oneid)]  # the echo stays masked: it holds no view_pii
    assert PHONE not in str(found)
    lookup = client.get(PROFILE_LOOKUP, {"brand": "ruiyan", "type": "phone", "value": PHONE})
    assert lookup.status_code == 200 and lookup.json()["oneid"] == person.oneid
    customer = client.get(CUSTOMER_LOOKUP, {"type": "phone", "value": PHONE})
    assert customer.status_code == 200 and customer.json()["oneid"] == person.oneid
    missing = client.get(CUSTOMER_LOOKUP, {"type": "phone", "value": "13800000078"})
    assert missing.status_code == 404

    rows = IdentityLookup.objects.filter(user=crm).order_by("pk")
    batches = rows.filter(endpoint="profile_batch")
    assert [(r.candidates, r.brand_id, r.refused) for r in batches] == [
        (1000, world.own_brand.pk, False)
    ] * 10
    assert sum(r.found for r in batches) == 1
    assert [(r.endpoint, r.candidates, r.found) for r in rows.exclude(endpoint="profile_batch")] == [
        ("profile_lookup", 1, 1),
        ("customer_lookup", 1, 1),
        ("customer_lookup", 1, 0),
    ]
    # the values are not kept, not even as their keyed hash
    stored = str(list(IdentityLookup.objects.values()))
    assert PHONE not in stored and pii.hash_value("phone", PHONE) not in stored


def test_who_holds_the_lookup_permission(world, crm):
    assert crm.has_perm("profiles.lookup_identity") and world.admin.has_perm("profiles.lookup_identity")
    for user in (world.operator, world.analyst, world.steward, world.nobody):
        assert not user.has_perm("profiles.lookup_identity"), user
    assert not crm.has_perm("core.view_pii")


def test_the_demo_crm_service_account_may_look_people_up(db):
    from tagportal.demo.catalog import bootstrap_demo

    logins = {login.username: login for login in bootstrap_demo(templates=False)}
    users = {u.username: u for u in get_user_model().objects.all()}
    assert logins["crm_sync"].token and users["crm_sync"].has_perm("profiles.lookup_identity")
    assert users["admin"].has_perm("profiles.lookup_identity")
    for name in ("operator", "analyst", "steward", "steward2"):
        assert not users[name].has_perm("profiles.lookup_identity"), name


# ---------------------------------------------------------------------------
# Throttling


@pytest.fixture
def lookup_rate():
    """At most 3 lookups a minute per user (the test settings allow many more)."""
    from django.conf import settings

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "lookup": "3/min"}
    cache.clear()
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        yield
    cache.clear()


def test_lookups_are_throttled_per_user(world, person, crm, lookup_rate):
    client = client_for(crm)
    one = {"brand": "ruiyan", "identities": [{"type": "phone", "value": PHONE}]}
    assert client.get(PROFILE_LOOKUP, {"brand": "ruiyan", "type": "phone", "value": PHONE}).status_code == 200
    assert client.get(CUSTOMER_LOOKUP, {"type": "phone", "value": PHONE}).status_code == 200
    assert client.post(BATCH, one, format="json").status_code == 200  # a batch counts as one call
    throttled = client.get(CUSTOMER_LOOKUP, {"type": "phone", "value": PHONE})
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers
    assert client.post(BATCH, one, format="json").status_code == 429
    assert IdentityLookup.objects.filter(user=crm).count() == 3  # throttled calls look nothing up
    # reading by OneID and the customer list are not lookups by identity
    assert client.post(BATCH, {"brand": "ruiyan", "oneids": [person.oneid]}, format="json").status_code == 200
    assert client.get("/api/profiles/customers/").status_code == 200
    # another user has their own allowance
    other = UserFactory(username="crm2", role=API_CLIENT, grants=[(world.own_line, "analysts")])
    assert client_for(other).get(CUSTOMER_LOOKUP, {"type": "phone", "value": PHONE}).status_code == 200


def test_the_admin_search_by_identifier_is_throttled_too(world, person, client, lookup_rate):
    client.force_login(world.admin)
    for _ in range(3):
        assert list(client.get("/admin/profiles/customer/", {"q": PHONE}).context["cl"].result_list) == [
            person
        ]
    page = client.get("/admin/profiles/customer/", {"q": PHONE})
    assert list(page.context["cl"].result_list) == []
    assert "Too many lookups" in page.content.decode()
    assert IdentityLookup.objects.filter(endpoint="admin_search").count() == 3


# ---------------------------------------------------------------------------
# Out of range


@pytest.mark.parametrize("oneid", [HUGE, MAX_ONEID + 1, -HUGE, 0, -1])
def test_a_oneid_out_of_range_answers_400(world, oneid):
    response = client_for(world.analyst).post(BATCH, {"brand": "ruiyan", "oneids": [1, oneid]}, format="json")
    assert response.status_code == 400, response.content
    assert "oneids" in response.json()


def test_the_largest_oneid_is_fine(world):
    response = client_for(world.analyst).post(
        BATCH, {"brand": "ruiyan", "oneids": [MAX_ONEID]}, format="json"
    )
    assert response.status_code == 200 and response.json()["results"][0]["found"] is False


def test_out_of_range_oneids_elsewhere_answer_400(world):
    client = client_for(world.analyst)
    profile = client.get(f"/api/engine/profiles/{HUGE}/", {"brand": "ruiyan"})
    assert profile.status_code == 400 and "oneid" in profile.json()
    assert client.get(f"/api/engine/profiles/{MAX_ONEID}/", {"brand": "ruiyan"}).status_code == 404
    for url in ("/api/profiles/customers/", "/api/profiles/merges/"):
        response = client.get(url, {"oneid": HUGE})
        assert response.status_code == 400 and "oneid" in response.json(), url


def test_absurdly_many_candidates_answer_400_with_the_limit(world, crm):
    for user in (world.analyst, crm):
        many = client_for(user).post(
            BATCH, {"brand": "ruiyan", "oneids": list(range(1, 200_001))}, format="json"
        )
        assert many.status_code == 400 and "1000" in str(many.json()["oneids"])
        identities = [{"type": "phone", "value": PHONE}] * 50_000
        many = client_for(user).post(BATCH, {"brand": "ruiyan", "identities": identities}, format="json")
        assert many.status_code == 400 and "1000" in str(many.json()["identities"])
    assert not IdentityLookup.objects.exists()  # refused before anything was looked up


def test_stored_masks_are_cut_down_by_the_migration(world):
    """Masks stored before: a phone's new mask comes from its old one (the number is not
    kept), other identifiers are masked again from their value."""
    from django.apps import apps

    remask = importlib.import_module("tagportal.profiles.migrations.0004_remask_identities").remask
    services.resolve_identities(
        world.own_brand,
        links(("a", "phone", PHONE), ("a", "wechat_unionid", "oUnion123"), ("a", "jd_pin", "=1")),
    )
    old = {"phone": "138****5678", "wechat_unionid": "oUn****23", "jd_pin": "=****"}
    for type_, masked in old.items():
        Identity.objects.filter(type=type_).update(masked=masked)
    remask(apps, None)
    assert dict(Identity.objects.values_list("type", "masked")) == {
        "phone": "138******78",
        "wechat_unionid": "oU****3",
        "jd_pin": "****",
    }


def test_refusals_speak_chinese(world, person):
    response = client_for(world.operator).get(
        CUSTOMER_LOOKUP, {"type": "phone", "value": PHONE}, HTTP_ACCEPT_LANGUAGE="zh-hans"
    )
    assert response.status_code == 403 and "无权按身份标识值查找用户" in response.json()["detail"]
