"""Realtime tags: ``POST /api/engine/events/`` writes one event and re-evaluates the
realtime tags of that one person at once (bitmaps, counts, numbers), unknown identities
create a person, bad events are refused with nothing written, client ids make events
idempotent, and the realtime result matches what a batch computation gives."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tagportal.catalog.models import TagVersion
from tagportal.catalog.services import publish_tag
from tagportal.core.models import User
from tagportal.core.roles import ANALYST, OPERATOR
from tagportal.engine import bitmaps as bm
from tagportal.engine import realtime, realtime_specs, realtime_storing, results, services
from tagportal.engine.api.serializers import RealtimeEventSerializer
from tagportal.engine.models import TagComputation, TagValueBitmap
from tagportal.profiles import imports as profile_imports
from tagportal.profiles.models import Customer, Event, Identity
from tests.conftest import client_for
from tests.factories import TagFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/engine/events/"
PHONE_A = "13800000001"
PHONE_B = "13800000002"
PHONE_NEW = "13900000009"

STORE_VISITS_30 = {
    "type": "metric",
    "metric": {
        "agg": "count",
        "source": "events",
        "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
        "window": {"last_days": 30},
    },
}
VISITED_7 = {
    "type": "condition",
    "condition": {
        "metric": {
            "agg": "count",
            "source": "events",
            "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
            "window": {"last_days": 7},
        },
        "op": "gte",
        "value": 1,
    },
}
CHANNEL = {
    "type": "preference",
    "pick": "most_frequent",
    "source": "events",
    "field": "channel",
    "window": {"last_days": 90},
}
BUYER = {
    "type": "condition",
    "condition": {"metric": {"agg": "count", "source": "orders"}, "op": "gte", "value": 1},
}
VIP = {"type": "condition", "condition": {"attribute": "member_level", "op": "eq", "value": "gold"}}


def vip_visitor(prefix):
    return {
        "type": "condition",
        "condition": {
            "all": [
                {"tag": f"{prefix}_vip", "op": "eq", "value": True},
                {"tag": f"{prefix}_visitor", "op": "eq", "value": True},
            ]
        },
    }


def publish(world, name, value_type, definition, values=None, refresh_mode="realtime", brand=None):
    brand = brand or world.own_brand
    tag = TagFactory(
        brand=brand,
        category=world.category,
        code=f"{brand.business_line.code}_visit_{name}",
        name=f"标签{name}",
        value_type=value_type,
        values=values or [],
        definition=definition,
        refresh_mode=refresh_mode,
    )
    publish_tag(tag)
    tag.refresh_from_db()
    return tag


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def ago(days: float) -> str:
    return iso(timezone.now() - dt.timedelta(days=days))


def import_rows(brand, kind, rows):
    report = profile_imports.import_frame(brand, kind, pd.DataFrame(rows).astype(str))
    assert report.ok, (report.errors, report.message)
    return report


def stored(tag) -> dict[str, list[int]]:
    rows = TagValueBitmap.objects.filter(computation__tag=tag)
    return {row.value: sorted(bm.deserialize(bytes(row.bitmap))) for row in rows}


def counts(tag) -> dict[str, int]:
    return dict(TagValueBitmap.objects.filter(computation__tag=tag).values_list("value", "count"))


def numbers(tag) -> dict[int, float]:
    series = TagComputation.objects.get(tag=tag).number_series()
    return {int(k): float(v) for k, v in series.items()}


def oneid_of(brand, phone) -> int:
    return Customer.objects.get(
        brand=brand, identities__type="phone", identities__value_hash=_hash(phone)
    ).oneid


def _hash(phone):
    from tagportal.profiles import pii

    return pii.hash_value("phone", phone)


def add_event_permission(user):
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="profiles", codename="add_event")
    )
    return User.objects.get(pk=user.pk)  # a fresh permission cache


@pytest.fixture(autouse=True)
def fresh_caches():
    realtime_specs.clear_spec_cache()
    yield
    realtime_specs.clear_spec_cache()


@pytest.fixture
def tags(world):
    class Tags:
        visits = publish(
            world,
            "visits",
            "number",
            STORE_VISITS_30,
            [{"code": "low", "label": "低", "max": 2}, {"code": "high", "label": "高", "min": 2}],
        )
        visitor = publish(world, "visitor", "boolean", VISITED_7)
        channel = publish(
            world,
            "channel",
            "enum",
            CHANNEL,
            [
                {"code": "store", "label": "门店"},
                {"code": "miniprogram", "label": "小程序"},
                {"code": "wecom", "label": "企微"},
            ],
        )
        buyer = publish(world, "buyer", "boolean", BUYER)
        vip = publish(world, "vip", "boolean", VIP, refresh_mode="batch")
        vip_visitor = publish(world, "vip_visitor", "boolean", vip_visitor("yimei_visit"))

    return Tags


@pytest.fixture
def people(world):
    """A (gold member, one store visit 3 days ago) and B (silver, store visits 10 and 40
    days ago, a page view yesterday), all on the mini program but A's visit."""
    brand = world.own_brand
    import_rows(
        brand,
        "customers",
        [
            {"phone": PHONE_A, "wechat_unionid": "oUnionAAA", "member_level": "gold"},
            {"phone": PHONE_B, "wechat_unionid": "oUnionBBB", "member_level": "silver"},
        ],
    )
    import_rows(
        brand,
        "events",
        [
            {"client_id": "a1", "time": ago(3), "type": "store_visit", "channel": "store", "phone": PHONE_A},
            {
                "client_id": "b1",
                "time": ago(10),
                "type": "store_visit",
                "channel": "miniprogram",
                "phone": PHONE_B,
            },
            {
                "client_id": "b2",
                "time": ago(40),
                "type": "store_visit",
                "channel": "miniprogram",
                "phone": PHONE_B,
            },
            {
                "client_id": "b3",
                "time": ago(1),
                "type": "page_view",
                "channel": "miniprogram",
                "phone": PHONE_B,
            },
        ],
    )

    class People:
        a = oneid_of(brand, PHONE_A)
        b = oneid_of(brand, PHONE_B)

    return People


@pytest.fixture
def computed(world, tags, people):
    services.compute_brand(world.own_brand)
    return tags


@pytest.fixture
def sender(world):
    user = UserFactory(username="sender", role=OPERATOR, grants=[(world.own_line, "operators")])
    return add_event_permission(user)


def event(client_id, phone=PHONE_A, type_="store_visit", **fields):
    data = {
        "brand": "ruiyan",
        "client_id": client_id,
        "type": type_,
        "channel": "store",
        "identity": {"type": "phone", "value": phone},
    }
    data.update(fields)
    return data


def checked(data) -> realtime.CheckedEvent:
    """The event as the API checks it."""
    serializer = RealtimeEventSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    return serializer.validated_data


def post(user, data):
    return client_for(user).post(URL, data, format="json")


def snapshot():
    """Everything a refused event must leave as it was."""
    return (
        Customer.objects.count(),
        Identity.objects.count(),
        sorted(Event.objects.values_list("client_id", flat=True)),
        sorted(TagValueBitmap.objects.values_list("computation_id", "value", "count", "bitmap")),
        sorted(TagComputation.objects.values_list("tag_id", "version", "last_calculated_at", "distribution")),
    )


# ---------------------------------------------------------------------------
# The happy path


def test_event_updates_the_realtime_tags_of_that_person_at_once(world, computed, people, sender):
    tags = computed
    assert stored(tags.visits) == {"high": [], "low": [people.a, people.b]}
    assert numbers(tags.visits) == {people.a: 1.0, people.b: 1.0}
    before = TagComputation.objects.get(tag=tags.visits)

    response = post(sender, event("rt-1", time=ago(0.01)))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["oneid"] == people.a and body["created"] is True and body["person_created"] is False
    assert body["client_id"] == "rt-1" and body["brand"] == "ruiyan" and body["failed"] == {}
    assert body["changes"] == [
        {"code": tags.visits.code, "name": "标签visits", "old": 1.0, "new": 2.0, "version": 1}
    ]
    # A moved from "low" to "high"; B did not move; counts and the distribution follow.
    assert stored(tags.visits) == {"high": [people.a], "low": [people.b]}
    assert counts(tags.visits) == {"high": 1, "low": 1}
    assert numbers(tags.visits) == {people.a: 2.0, people.b: 1.0}
    after = TagComputation.objects.get(tag=tags.visits)
    assert after.distribution == {"high": 1, "low": 1}
    assert after.last_calculated_at > before.last_calculated_at
    assert after.version == 1 and after.population == before.population
    assert after.coverage == pytest.approx(1.0)
    # the profile tag API answers the new value at once
    profile = client_for(sender).get(f"/api/engine/profiles/{people.a}/", {"brand": "ruiyan"}).json()
    visits = next(t for t in profile["tags"] if t["code"] == tags.visits.code)
    assert visits["value"] == 2.0 and visits["bucket"] == "high" and visits["version"] == 1
    # and so does values_for, in this process (its cached bitmaps were not reused)
    assert results.values_for(world.own_brand, [people.a])[people.a][tags.visits.code]["bucket"] == "high"


def test_a_boolean_and_a_composite_reading_a_batch_tag(world, computed, people, sender):
    tags = computed
    assert stored(tags.visitor) == {"true": [people.a], "false": [people.b]}
    assert stored(tags.vip_visitor) == {"true": [people.a], "false": [people.b]}

    body = post(sender, event("rt-b", phone=PHONE_B, channel="wecom")).json()

    changes = {c["code"]: (c["old"], c["new"]) for c in body["changes"]}
    assert changes == {tags.visits.code: (1.0, 2.0), tags.visitor.code: (False, True)}
    assert stored(tags.visitor) == {"true": [people.a, people.b], "false": []}
    assert counts(tags.visitor) == {"true": 2, "false": 0}
    # B is silver (the batch tag vip, read from its stored result): still no vip visitor
    assert stored(tags.vip_visitor) == {"true": [people.a], "false": [people.b]}
    # most frequent channel: 3 mini program events against 1 WeCom one
    assert stored(tags.channel)["miniprogram"] == [people.b]


def test_an_enum_value_moves_and_a_number_within_a_bucket_changes(world, computed, people, sender):
    tags = computed
    for i in range(2):
        assert post(sender, event(f"w{i}", phone=PHONE_A, channel="wecom")).status_code == 201
    assert stored(tags.channel) == {"miniprogram": [people.b], "store": [], "wecom": [people.a]}
    assert counts(tags.channel) == {"miniprogram": 1, "store": 0, "wecom": 1}
    assert numbers(tags.visits)[people.a] == 3.0  # high before and after the second event
    assert stored(tags.visits)["high"] == [people.a]


def test_the_realtime_result_is_what_a_batch_computation_gives(world, computed, people, sender):
    tags = computed
    post(sender, event("x1", phone=PHONE_B, channel="wecom"))
    post(sender, event("x2", phone=PHONE_NEW, channel="wecom"))
    post(sender, event("x3", phone=PHONE_A, type_="page_view", channel="miniprogram", time=ago(0.5)))
    post(sender, event("x4", phone=PHONE_A, channel="miniprogram", time=ago(60)))  # outside every window
    realtime_tags = [tags.visits, tags.visitor, tags.channel, tags.buyer, tags.vip_visitor]
    by_realtime = {t.code: stored(t) for t in realtime_tags}
    realtime_numbers = numbers(tags.visits)

    services.compute_brand(world.own_brand)

    by_batch = {t.code: stored(t) for t in realtime_tags}
    for code, result in by_batch.items():
        assert {k: v for k, v in by_realtime[code].items() if v} == {k: v for k, v in result.items() if v}, (
            code
        )
    assert realtime_numbers == numbers(tags.visits)


def test_an_unknown_identity_creates_a_person_and_their_values(world, computed, sender):
    tags = computed
    people_before = Customer.objects.count()
    population = TagComputation.objects.get(tag=tags.visits).population

    response = post(sender, event("new-1", phone=PHONE_NEW, channel="wecom"))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["person_created"] is True
    assert Customer.objects.count() == people_before + 1
    person = Customer.objects.get(brand=world.own_brand, oneid=body["oneid"])
    assert person.identities.get().masked == "139******09"
    assert Event.objects.get(client_id="new-1").customer == person
    changes = {c["code"]: (c["old"], c["new"]) for c in body["changes"]}
    assert changes == {
        tags.visits.code: (None, 1.0),
        tags.visitor.code: (None, True),
        tags.channel.code: (None, "wecom"),
        tags.buyer.code: (None, False),
        tags.vip_visitor.code: (None, False),
    }
    assert body["oneid"] in stored(tags.visits)["low"]
    computation = TagComputation.objects.get(tag=tags.visits)
    assert computation.population == population + 1
    assert computation.distribution == {"low": 3, "high": 0}


def test_a_tag_never_computed_gets_its_result_created(world, tags, people, sender):
    assert not TagComputation.objects.filter(version__isnull=False).exists()

    body = post(sender, event("first")).json()

    assert {c["code"] for c in body["changes"]} == {
        tags.visits.code,
        tags.visitor.code,
        tags.channel.code,
        tags.buyer.code,
        tags.vip_visitor.code,
    }
    visits = TagComputation.objects.get(tag=tags.visits)
    assert visits.version == 1 and visits.value_type == "number" and visits.last_calculated_at
    assert stored(tags.visits) == {"low": [], "high": [people.a]}  # one bitmap per declared value
    assert numbers(tags.visits) == {people.a: 2.0}
    assert stored(tags.visitor) == {"true": [people.a], "false": []}
    assert stored(tags.channel) == {"store": [people.a], "miniprogram": [], "wecom": []}
    assert not TagComputation.objects.filter(tag=tags.vip).exists()  # a batch tag: not touched
    # only B's event arrives next: A stays, B joins
    post(sender, event("second", phone=PHONE_B, channel="miniprogram"))
    assert stored(tags.visits) == {"low": [], "high": [people.a, people.b]}
    assert counts(tags.visits) == {"low": 0, "high": 2}


def test_a_tag_that_fails_does_not_stop_the_event_or_the_others(world, computed, people, sender):
    tags = computed
    version = TagVersion.objects.get(tag=tags.channel, version=1)
    broken = {**version.snapshot, "definition": {"type": "preference", "pick": "sometimes"}}
    TagVersion.objects.filter(pk=version.pk).update(snapshot=broken)
    realtime_specs.clear_spec_cache()

    body = post(sender, event("f1")).json()

    assert tags.channel.code in body["failed"]
    assert [c["code"] for c in body["changes"]] == [tags.visits.code]
    assert stored(tags.channel)["store"] == [people.a]  # kept


# ---------------------------------------------------------------------------
# Idempotency, bad input, permissions


def test_sending_an_event_twice_adds_it_once(world, computed, people, sender):
    tags = computed
    first = post(sender, event("dup"))
    again = post(sender, event("dup", channel="wecom"))

    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["created"] is False and again.json()["changes"] == []
    assert again.json()["event"] == first.json()["event"] and again.json()["oneid"] == people.a
    assert Event.objects.filter(client_id="dup").count() == 1
    assert numbers(tags.visits)[people.a] == 2.0


def test_a_repeated_client_id_of_an_unknown_identity_creates_nobody(world, computed, sender):
    post(sender, event("dup-new", phone=PHONE_NEW))
    before = snapshot()
    assert post(sender, event("dup-new", phone="13900000010")).status_code == 200
    assert snapshot() == before


BAD_EVENTS = [
    ({"type": "teleport"}, "type", "Unknown event type"),
    ({"type": ""}, "type", "Required"),
    ({"channel": "pigeon"}, "channel", "Unknown channel"),
    ({"time": "yesterday"}, "time", "ISO 8601"),
    ({"time": "2024-05-01 10:30:00"}, "time", "time zone"),
    ({"time": "2999-01-01T00:00:00Z"}, "time", "future"),
    ({"value": "lots"}, "value", "Not a number"),
    ({"properties": ["a"]}, "properties", "object"),
    ({"client_id": ""}, "client_id", "Required"),
    ({"client_id": "x" * 101}, "client_id", "100"),
    ({"identity": None}, "identity", "Required"),
    ({"identity": {"type": "passport", "value": "E123"}}, "identity.type", "Unknown identity type"),
    ({"identity": {"type": "phone", "value": "12345"}}, "identity.value", "mobile number"),
    ({"identity": {"type": "phone"}}, "identity.value", "Required"),
    ({"identity": {"type": "wechat_openid", "value": "oOpen1"}}, "identity.app", "appid"),
    ({"identity": {"type": "phone", "value": PHONE_NEW, "app": "wx1"}}, "identity.app", "openid"),
    ({"colour": "red"}, "non_field_errors", "Unknown fields: colour"),
]


@pytest.mark.parametrize(("changes", "field", "message"), BAD_EVENTS)
def test_a_bad_event_is_refused_with_nothing_written(world, computed, sender, changes, field, message):
    data = event("bad", phone=PHONE_NEW)
    data.update(changes)
    before = snapshot()

    response = post(sender, data)

    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()[field]), response.json()
    assert snapshot() == before


def test_every_problem_is_reported_at_once(world, computed, sender):
    data = {
        "brand": "ruiyan",
        "type": "teleport",
        "time": "soon",
        "identity": {"type": "phone", "value": "1"},
    }
    body = post(sender, data).json()
    assert set(body) == {"client_id", "type", "time", "identity.value"}


def test_the_checked_event_is_trimmed_and_normalised():
    data = event(
        " c-1 ", phone="+86 138-0000-0001", store=" 上海静安店 ", value=2, time="2026-01-05T10:30:00+08:00"
    )
    data["channel"] = ""

    checked_event = checked(data)

    assert checked_event == realtime.CheckedEvent(
        client_id="c-1",
        type="store_visit",
        time=dt.datetime(2026, 1, 5, 2, 30, tzinfo=dt.UTC),
        identity=realtime.CheckedIdentity(type="phone", value=PHONE_A, app=""),
        channel="",
        store="上海静安店",
        value=2.0,
        properties={},
    )


WRONG_TYPES = [
    ({"client_id": 5}, "client_id", "Expected a text."),
    ({"value": True}, "value", "Not a number."),
    ({"value": "3"}, "value", "Not a number."),
    ({"value": 1e13}, "value", "Out of range."),
    ({"time": 1700000000}, "time", "ISO 8601"),
    ({"time": "1969-12-31T00:00:00Z"}, "time", "Before 1970."),
    ({"identity": "13800000001"}, "identity", "Expected an object with type, value and app."),
    ({"identity": {"type": "phone", "value": True}}, "identity.value", "Expected a text."),
    ({"identity": {"type": "phone", "value": PHONE_A, "app": 1}}, "identity.app", "Expected a text."),
]


@pytest.mark.parametrize(("changes", "field", "message"), WRONG_TYPES)
def test_values_of_the_wrong_kind_are_refused(changes, field, message):
    serializer = RealtimeEventSerializer(data={**event("w"), **changes})

    assert not serializer.is_valid()
    assert message in " ".join(serializer.errors[field]), serializer.errors


def test_every_problem_of_the_identity_is_reported_at_once():
    data = {**event("i-1"), "identity": {"type": "wechat_openid", "colour": "red"}}

    serializer = RealtimeEventSerializer(data=data)

    assert not serializer.is_valid()
    assert set(serializer.errors) == {"identity", "identity.value", "identity.app"}
    assert serializer.errors["identity"] == ["Unknown fields: colour."]
    assert "appid" in serializer.errors["identity.app"][0]


def test_an_event_that_is_not_an_object_is_refused():
    serializer = RealtimeEventSerializer(data=["an", "event"])

    assert not serializer.is_valid()
    assert "Expected an event" in serializer.errors["non_field_errors"][0]


def test_time_defaults_to_now_and_keeps_its_zone(world, computed, sender):
    before = timezone.now()
    post(sender, event("t-now"))
    assert Event.objects.get(client_id="t-now").time >= before - dt.timedelta(seconds=1)
    post(sender, event("t-zone", time="2026-01-05T10:30:00+08:00"))
    assert Event.objects.get(client_id="t-zone").time == dt.datetime(2026, 1, 5, 2, 30, tzinfo=dt.UTC)


def test_properties_and_value_are_stored(world, computed, sender):
    post(sender, event("p1", value=3.5, store="上海静安店", properties={"project": "热玛吉"}))
    stored_event = Event.objects.get(client_id="p1")
    assert (stored_event.value, stored_event.store, stored_event.properties) == (
        3.5,
        "上海静安店",
        {"project": "热玛吉"},
    )
    assert stored_event.identity.type == "phone"


def test_who_may_send_events(world, computed, sender):
    assert post(world.operator, event("p-1")).status_code == 403  # no profiles.add_event
    analyst = add_event_permission(
        UserFactory(username="an2", role=ANALYST, grants=[(world.own_line, "analysts")])
    )
    assert post(analyst, event("p-2")).status_code == 403  # a view grant only
    assert post(sender, {**event("p-3"), "brand": "qingquan"}).status_code == 404  # another brand
    assert post(sender, {**event("p-4"), "brand": "nosuch"}).status_code == 404
    assert post(sender, {k: v for k, v in event("p-5").items() if k != "brand"}).status_code == 400
    assert client_for(sender).post(URL, {"brand": "ruiyan"}, format="multipart").status_code == 415
    assert not Event.objects.filter(client_id__startswith="p-").exists()
    with pytest.raises(PermissionDenied):  # the service checks too
        realtime.ingest_event(world.own_brand, checked(event("p-6")), user=world.operator)


def test_changes_only_name_tags_the_sender_may_view(world, computed, people):
    robot = UserFactory(username="robot", grants=[(world.own_line, "operators")])
    robot = add_event_permission(robot)  # no role: no catalog.view_tag
    response = post(robot, event("r-1"))
    assert response.status_code == 201 and response.json()["changes"] == []
    assert numbers(computed.visits)[people.a] == 2.0


# ---------------------------------------------------------------------------
# The service and its pieces


def test_ingest_event_returns_the_event_the_person_and_the_changes(world, computed, people):
    event_obj, customer, changes = realtime.ingest_event(world.own_brand, checked(event("svc-1")))
    assert event_obj.client_id == "svc-1" and customer.oneid == people.a
    assert [(c.code, c.old, c.new) for c in changes] == [(computed.visits.code, 1.0, 2.0)]
    again = realtime.ingest_event(world.own_brand, checked(event("svc-1")))
    assert again.created is False and again.event == event_obj and list(again.changes) == []


def test_specs_are_cached_until_a_version_changes(world, computed):
    brand = world.own_brand
    first = realtime_specs.realtime_specs(brand)
    assert realtime_specs.realtime_specs(brand) is first
    assert set(first.reads) == {computed.vip.code}
    assert {t.code for t in first.tags.values()} == {
        computed.visits.code,
        computed.visitor.code,
        computed.channel.code,
        computed.buyer.code,
        computed.vip_visitor.code,
    }
    tag = computed.visitor
    tag.definition = {**VISITED_7, "condition": {**VISITED_7["condition"], "value": 2}}
    tag.save()
    assert realtime_specs.realtime_specs(brand) is first  # a draft edit is not published
    publish_tag(tag)
    second = realtime_specs.realtime_specs(brand)
    assert second is not first
    assert second.tags[tag.pk].version == 2
    assert second.tags[tag.pk].spec.definition["condition"]["value"] == 2


def test_the_new_version_of_a_realtime_tag_applies_at_the_next_event(world, computed, people, sender):
    tag = computed.visitor
    tag.definition = {**VISITED_7, "condition": {**VISITED_7["condition"], "value": 2}}
    tag.save()
    publish_tag(tag)
    body = post(sender, event("v2", phone=PHONE_A, type_="page_view")).json()
    assert {c["code"]: (c["old"], c["new"]) for c in body["changes"]} == {
        tag.code: (True, False),
        computed.vip_visitor.code: (True, False),  # reads it
    }


def test_windows_bound_the_rows_read():
    looks = realtime_specs.lookbacks(
        [
            STORE_VISITS_30,
            VISITED_7,
            {"type": "metric", "metric": {"agg": "sum", "source": "orders", "field": "amount",
                                           "window": {"between": ["2026-01-01", "2026-03-31"]}}},
        ]
    )  # fmt: skip
    as_of = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 in Beijing
    assert looks["events"].since(as_of) == dt.datetime(2026, 10, 30, tzinfo=services.BEIJING)
    assert looks["orders"].since(as_of) == dt.datetime(2026, 1, 1, tzinfo=services.BEIJING)
    unbounded = realtime_specs.lookbacks(
        [BUYER, {"type": "metric", "metric": {"days_since": "last", "source": "events"}}]
    )
    assert unbounded["orders"].since(as_of) is None and unbounded["events"].since(as_of) is None


def test_only_the_persons_rows_within_the_window_are_read(world, computed, people, sender):
    with CaptureQueriesContext(connection) as queries:
        post(sender, event("q1"))
    events = [q["sql"] for q in queries if 'FROM "profiles_event"' in q["sql"] and '"time" >=' in q["sql"]]
    assert len(events) == 1 and "customer_id" in events[0]
    orders = [q["sql"] for q in queries if 'FROM "profiles_order"' in q["sql"]]
    assert len(orders) == 1 and '"time" >=' not in orders[0]  # the buyer tag has no window


def test_an_update_made_meanwhile_by_another_event_is_kept(world, computed, people, sender, monkeypatch):
    """Results read before another event changed them are re-read under the lock."""
    tags = computed
    stale = realtime_storing.current_results(world.own_brand, realtime_specs.realtime_specs(world.own_brand))
    post(sender, event("first-a"))  # A: low -> high
    assert stored(tags.visits) == {"high": [people.a], "low": [people.b]}
    monkeypatch.setattr(realtime_storing, "current_results", lambda brand, specs: stale)

    body = post(sender, event("then-b", phone=PHONE_B)).json()  # B: low -> high, from a stale read

    assert {c["code"] for c in body["changes"]} >= {tags.visits.code}
    assert stored(tags.visits) == {"high": [people.a, people.b], "low": []}
    assert counts(tags.visits) == {"high": 2, "low": 0}
    assert numbers(tags.visits) == {people.a: 2.0, people.b: 2.0}
