"""The profile tag API: a person's tag values by OneID or by identity (identities masked
without the PII permission), batches of up to 1,000 people, another brand's people
answering 404, and the usage counters every read adds to."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm

from tagportal.core.days import beijing_today
from tagportal.core.roles import API_CLIENT
from tagportal.engine import results, services
from tagportal.profiles import services as profile_services
from tagportal.profiles.models import Customer
from tagportal.usage.choices import UsageKind
from tagportal.usage.models import TagUsage
from tagportal.usage.services import add_counts, aggregate
from tests.conftest import client_for
from tests.engine.test_realtime import (
    BUYER,
    CHANNEL,
    PHONE_A,
    PHONE_B,
    STORE_VISITS_30,
    VIP,
    add_event_permission,
    ago,
    import_rows,
    oneid_of,
    publish,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/engine/profiles/"
OTHER_PHONE = "13700000003"


@pytest.fixture
def crm(world):
    """A service account of the own business line that may look people up by identity."""
    return UserFactory(username="crm", role=API_CLIENT, grants=[(world.own_line, "analysts")])


@pytest.fixture
def shop(world):
    """Two people of the own brand with computed tags, and one of the other brand."""
    brand = world.own_brand
    import_rows(
        brand,
        "customers",
        [
            {"phone": PHONE_A, "wechat_unionid": "oUnionAAA", "member_level": "gold"},
            {"phone": PHONE_B, "member_level": "silver"},
        ],
    )
    import_rows(
        brand,
        "events",
        [
            {"client_id": "a1", "time": ago(3), "type": "store_visit", "channel": "store", "phone": PHONE_A},
            {"client_id": "a2", "time": ago(4), "type": "store_visit", "channel": "store", "phone": PHONE_A},
        ],
    )
    import_rows(world.other_brand, "customers", [{"phone": OTHER_PHONE, "member_level": "gold"}])

    class Shop:
        visits = publish(
            world,
            "visits",
            "number",
            STORE_VISITS_30,
            [{"code": "low", "label": "低", "max": 2}, {"code": "high", "label": "高", "min": 2}],
        )
        vip = publish(world, "vip", "boolean", VIP, refresh_mode="batch")
        channel = publish(world, "channel", "enum", CHANNEL, [{"code": "store", "label": "门店"}])
        buyer = publish(world, "buyer", "boolean", BUYER)
        other_vip = publish(world, "vip", "boolean", VIP, refresh_mode="batch", brand=world.other_brand)
        a = oneid_of(brand, PHONE_A)
        b = oneid_of(brand, PHONE_B)
        other = Customer.objects.get(brand=world.other_brand).oneid

    services.compute_brand(brand)
    services.compute_brand(world.other_brand)
    return Shop


def links(*records) -> pd.DataFrame:
    return pd.DataFrame([(r, t, "", v) for r, t, v in records], columns=["record", "type", "app", "value"])


def get(user, path, **params):
    return client_for(user).get(f"{URL}{path}", params)


def batch(user, **data):
    return client_for(user).post(f"{URL}batch/", {"brand": "ruiyan", **data}, format="json")


def tags_of(body) -> dict:
    return {t["code"]: t for t in body["tags"]}


def usage() -> dict[tuple[str, int], int]:
    aggregate()  # fold the buffered reads into the daily counters
    return {(u.tag.code, u.client): u.count for u in TagUsage.objects.select_related("tag")}


# ---------------------------------------------------------------------------
# One person


def test_all_tag_values_of_a_person_by_oneid(world, shop):
    response = get(world.analyst, f"{shop.a}/", brand="ruiyan")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["brand"] == "ruiyan" and body["oneid"] == shop.a and "requested_oneid" not in body
    tags = tags_of(body)
    assert set(tags) == {shop.visits.code, shop.vip.code, shop.channel.code, shop.buyer.code}
    visits = tags[shop.visits.code]
    assert visits["name"] == "标签visits" and visits["value"] == 2.0 and visits["bucket"] == "high"
    assert visits["version"] == 1
    computed_at = dt.datetime.fromisoformat(visits["computed_at"])
    computation = results.values_for(world.own_brand, [shop.a])[shop.a][shop.visits.code]
    assert computed_at == computation["computed_at"]
    assert tags[shop.vip.code]["value"] is True and "bucket" not in tags[shop.vip.code]
    assert tags[shop.channel.code]["value"] == "store"
    assert tags[shop.buyer.code]["value"] is False
    # B has no channel value: the tag is left out
    assert shop.channel.code not in tags_of(get(world.analyst, f"{shop.b}/", brand="ruiyan").json())


def test_identities_are_masked_unless_the_caller_may_see_personal_data(world, shop):
    body = get(world.analyst, f"{shop.a}/", brand="ruiyan").json()
    assert {i["type"]: i["value"] for i in body["identities"]} == {
        "phone": "138******01",
        "wechat_unionid": "oU****A",
    }
    assert PHONE_A not in str(body) and "oUnionAAA" not in str(body)
    admin = get(world.admin, f"{shop.a}/", brand="ruiyan").json()  # core.view_pii: never a phone
    assert {i["type"]: i["value"] for i in admin["identities"]} == {
        "phone": "138******01",
        "wechat_unionid": "oUnionAAA",
    }
    reader = UserFactory(username="reader", grants=[(world.own_line, "analysts")])
    reader.user_permissions.add(*_perms("catalog.view_tag"))
    plain = get(reader, f"{shop.a}/", brand="ruiyan").json()  # no profiles.view_identity
    assert "identities" not in plain and tags_of(plain)


def test_lookup_by_identity(world, shop, crm):
    found = get(crm, "lookup/", brand="ruiyan", type="phone", value=f"+86 {PHONE_A[:3]}-{PHONE_A[3:]}")
    assert found.status_code == 200, found.content
    assert found.json()["oneid"] == shop.a and tags_of(found.json())[shop.visits.code]["value"] == 2.0
    by_union = get(crm, "lookup/", brand="ruiyan", type="wechat_unionid", value="oUnionAAA")
    assert by_union.json()["oneid"] == shop.a
    assert get(crm, "lookup/", brand="ruiyan", type="phone", value="13911112222").status_code == 404
    bad_type = get(crm, "lookup/", brand="ruiyan", type="passport", value="E1")
    assert bad_type.status_code == 400 and "type" in bad_type.json()
    bad_phone = get(crm, "lookup/", brand="ruiyan", type="phone", value="123")
    assert bad_phone.status_code == 400 and "value" in bad_phone.json()
    assert get(crm, "lookup/", type="phone", value=PHONE_A).status_code == 400  # no brand
    # operators and analysts may not look people up by identity value
    for user in (world.analyst, world.operator):
        refused = get(user, "lookup/", brand="ruiyan", type="phone", value=PHONE_A)
        assert refused.status_code == 403 and "look people up" in refused.json()["detail"]


def test_a_merged_oneid_answers_the_person_it_was_merged_into(world, shop):
    profile_services.resolve_identities(
        world.own_brand, links(("r", "phone", PHONE_A), ("r", "crm_member_id", "M1"), ("s", "phone", PHONE_B))
    )
    profile_services.resolve_identities(
        world.own_brand, links(("t", "crm_member_id", "M1"), ("t", "phone", PHONE_B))
    )
    merged = Customer.objects.get(brand=world.own_brand, oneid=shop.b)
    assert merged.merged_into is not None and merged.merged_into.oneid == shop.a
    body = get(world.analyst, f"{shop.b}/", brand="ruiyan").json()
    assert body["oneid"] == shop.a and body["requested_oneid"] == shop.b
    results = batch(world.analyst, oneids=[shop.b]).json()["results"]
    assert results[0]["requested_oneid"] == shop.b and results[0]["oneid"] == shop.a and results[0]["found"]


def test_another_brands_person_answers_404(world, shop, crm):
    assert shop.other == shop.a  # OneIDs are per brand: the same number in both brands
    assert get(world.analyst, f"{shop.other}/", brand="qingquan").status_code == 404  # not granted
    assert get(world.analyst, "99999/", brand="ruiyan").status_code == 404
    assert get(crm, "lookup/", brand="ruiyan", type="phone", value=OTHER_PHONE).status_code == 404
    assert get(crm, "lookup/", brand="qingquan", type="phone", value=OTHER_PHONE).status_code == 404
    assert batch(world.analyst, brand="qingquan", oneids=[shop.other]).status_code == 404
    assert get(world.analyst, f"{shop.a}/", brand="nosuch").status_code == 404
    # the admin reaches both brands, and each brand answers its own person
    other = get(world.admin, f"{shop.other}/", brand="qingquan").json()
    assert set(tags_of(other)) == {shop.other_vip.code}
    assert shop.other_vip.code not in tags_of(get(world.admin, f"{shop.a}/", brand="ruiyan").json())


def test_who_may_read_tag_values(world, shop):
    assert get(world.nobody, f"{shop.a}/", brand="ruiyan").status_code == 403  # no catalog.view_tag
    assert client_for(None).get(f"{URL}{shop.a}/", {"brand": "ruiyan"}).status_code in (401, 403)
    outsider = UserFactory(username="outsider", role="analyst", grants=[(world.other_line, "analysts")])
    assert get(outsider, f"{shop.a}/", brand="ruiyan").status_code == 404
    assert get(outsider, f"{shop.other}/", brand="qingquan").status_code == 200
    # a grant on the brand alone is enough
    brand_only = UserFactory(username="brand_only", role="analyst")
    assign_perm("catalog.view_brand", brand_only, world.own_brand)
    assert get(brand_only, f"{shop.a}/", brand="ruiyan").status_code == 200
    # sending events does not let one read values
    robot = add_event_permission(UserFactory(username="robot", grants=[(world.own_line, "operators")]))
    assert get(robot, f"{shop.a}/", brand="ruiyan").status_code == 403


def test_a_realtime_event_shows_at_once(world, shop):
    sender = add_event_permission(
        UserFactory(username="sender", role="operator", grants=[(world.own_line, "operators")])
    )
    assert tags_of(get(sender, f"{shop.b}/", brand="ruiyan").json())[shop.visits.code]["value"] == 0.0
    response = client_for(sender).post(
        "/api/engine/events/",
        {"brand": "ruiyan", "client_id": "live-1", "type": "store_visit", "channel": "store",
         "identity": {"type": "phone", "value": PHONE_B}},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201
    tags = tags_of(get(sender, f"{shop.b}/", brand="ruiyan").json())
    assert tags[shop.visits.code]["value"] == 1.0 and tags[shop.channel.code]["value"] == "store"


# ---------------------------------------------------------------------------
# Batches


def test_batch_by_oneids(world, shop):
    response = batch(world.analyst, oneids=[shop.b, shop.a, 424242, shop.a])

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["brand"] == "ruiyan" and body["count"] == 4
    results = body["results"]
    assert [(r["requested_oneid"], r["oneid"], r["found"]) for r in results] == [
        (shop.b, shop.b, True),
        (shop.a, shop.a, True),
        (424242, None, False),
        (shop.a, shop.a, True),
    ]
    assert tags_of(results[1])[shop.visits.code]["bucket"] == "high"
    assert tags_of(results[0])[shop.vip.code]["value"] is False
    assert results[2]["tags"] == []


def test_batch_by_identities_masks_what_it_echoes(world, shop, crm):
    response = batch(
        crm,
        identities=[
            {"type": "phone", "value": PHONE_A},
            {"type": "wechat_unionid", "value": "oUnionAAA"},
            {"type": "phone", "value": "13911112222"},
            {"type": "phone", "value": OTHER_PHONE},  # another brand's person
        ],
    )

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [(r["identity"]["value"], r["oneid"], r["found"]) for r in results] == [
        ("138******01", shop.a, True),
        ("oU****A", shop.a, True),
        ("139******22", None, False),
        ("137******03", None, False),
    ]
    assert tags_of(results[0]) == tags_of(results[1])
    admin = batch(world.admin, identities=[{"type": "wechat_unionid", "value": "oUnionAAA"}]).json()
    assert admin["results"][0]["identity"]["value"] == "oUnionAAA"


def test_batch_limits_and_bad_input(world, shop, crm):
    assert batch(world.analyst, oneids=list(range(1, 1001))).status_code == 200
    read = usage()
    over = batch(world.analyst, oneids=list(range(1, 1002)))
    assert over.status_code == 400 and "1000" in str(over.json()["oneids"])
    over = batch(world.analyst, identities=[{"type": "phone", "value": PHONE_A}] * 1001)
    assert over.status_code == 400 and "identities" in over.json()
    assert batch(world.analyst).status_code == 400  # neither
    assert (
        batch(world.analyst, oneids=[shop.a], identities=[{"type": "phone", "value": PHONE_A}]).status_code
        == 400
    )
    assert batch(world.analyst, oneids=[]).status_code == 400
    assert batch(world.analyst, oneids=["x"]).status_code == 400
    bad = batch(crm, identities=[{"type": "phone", "value": PHONE_A}, {"type": "phone", "value": "42"}])
    assert bad.status_code == 400 and "1" in bad.json()["identities"]
    unknown_type = batch(crm, identities=[{"type": "passport", "value": "E1"}])
    assert unknown_type.status_code == 400
    assert usage() == read  # only the first, good batch read values


# ---------------------------------------------------------------------------
# Usage


def test_each_value_read_is_counted_per_tag_and_client(world, shop):
    analyst, steward = world.analyst, world.steward
    get(analyst, f"{shop.a}/", brand="ruiyan")
    assert usage() == {
        (code, analyst.pk): 1
        for code in (shop.visits.code, shop.vip.code, shop.channel.code, shop.buyer.code)
    }
    batch(analyst, oneids=[shop.a])
    batch(analyst, oneids=[shop.a, shop.b, 777])
    get(steward, f"{shop.b}/", brand="ruiyan")  # B: no channel value
    assert usage() == {
        (shop.visits.code, analyst.pk): 4,
        (shop.vip.code, analyst.pk): 4,
        (shop.buyer.code, analyst.pk): 4,
        (shop.channel.code, analyst.pk): 3,
        (shop.visits.code, steward.pk): 1,
        (shop.vip.code, steward.pk): 1,
        (shop.buyer.code, steward.pk): 1,
    }
    row = TagUsage.objects.filter(client=analyst.pk).first()
    assert row.day == beijing_today() and row.kind == UsageKind.API_READ
    # refused requests read nothing
    get(analyst, "99999/", brand="ruiyan")
    get(world.nobody, f"{shop.a}/", brand="ruiyan")
    assert sum(usage().values()) == 18


def test_usage_is_one_statement_per_request(world, shop):
    for call in (
        lambda: get(world.analyst, f"{shop.a}/", brand="ruiyan"),
        lambda: batch(world.analyst, oneids=[shop.a, shop.b]),
        lambda: batch(world.analyst, oneids=[shop.a, shop.b]),
    ):
        with CaptureQueriesContext(connection) as queries:
            assert call().status_code == 200
        statements = [
            q["sql"] for q in queries if "usage_usagebuffer" in q["sql"] or "usage_tagusage" in q["sql"]
        ]
        assert len(statements) == 1 and statements[0].startswith("INSERT"), statements
        assert "usage_usagebuffer" in statements[0]  # appended, never an upsert on a hot counter


def test_add_counts_adds_up():
    from tests.factories import TagFactory

    first, second = TagFactory(), TagFactory()
    day = dt.date(2026, 11, 28)
    assert add_counts({first.pk: 2, second.pk: 0}, client=7, day=day) == 1
    add_counts({first.pk: 3, second.pk: 1}, client=7, day=day)
    add_counts({first.pk: 1}, client=8, day=day)
    add_counts({first.pk: 1}, client=7, day=day + dt.timedelta(days=1))
    rows = sorted(TagUsage.objects.values_list("tag_id", "day", "client", "count"))
    assert rows == sorted(
        [
            (first.pk, day, 7, 5),
            (second.pk, day, 7, 1),
            (first.pk, day, 8, 1),
            (first.pk, day + dt.timedelta(days=1), 7, 1),
        ]
    )
    assert add_counts({}, client=7) == 0


def _perms(*names):
    from django.contrib.auth.models import Permission

    return [
        Permission.objects.get(content_type__app_label=name.split(".")[0], codename=name.split(".")[1])
        for name in names
    ]
