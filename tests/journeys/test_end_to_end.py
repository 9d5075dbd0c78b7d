"""A whole journey against the fake Aliyun SMS server: people join an audience, wait
three days, get an SMS (numbers from the contact vault, consent checked when it goes),
then wait up to seven days for a store visit; the visitors get a manual tag."""

from __future__ import annotations

import datetime as dt

import pytest
from pyroaring import BitMap

from tagportal.activation import deliveries, vault
from tagportal.audiences import services as audience_services
from tagportal.audiences.choices import RefreshTrigger
from tagportal.engine.results import values_for
from tagportal.journeys import runner, services
from tagportal.journeys.graph import validate
from tagportal.journeys.models import InstanceStep, JourneyInstance
from tagportal.profiles.models import Customer, Event
from tests.activation.fakes_channels import FakeAliyunSms
from tests.activation.test_sms_and_shops import make
from tests.activation.test_syncs import make_audience, people

from .helpers import make_journey, manual_tag, no_quiet_hours

pytestmark = pytest.mark.django_db


def phone(oneid: int) -> str:
    return f"1380000{oneid:04d}"


@pytest.fixture
def aliyun(settings, httpserver):
    settings.TAGPORTAL_ALIYUN_SMS_ENDPOINT = httpserver.url_for("/").rstrip("/")
    settings.TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = 1
    settings.TAGPORTAL_VAULT_KEYS = vault.generate_key()
    return FakeAliyunSms(httpserver)


def test_audience_wait_sms_wait_for_a_visit_then_tag(
    world, aliyun, sleeps, django_capture_on_commit_callbacks
):
    brand = world.own_brand
    no_quiet_hours(brand, caps={"sms_aliyun": {"day": 1}})
    sms = make(brand, "sms_aliyun")
    people(brand, [1, 2, 3], "phone", phone)
    for oneid in (1, 2, 3):
        vault.store(brand, oneid, phone(oneid))
    recalled = manual_tag(world, "recalled", values=[{"code": "yes", "label": "是"}])
    audience = make_audience(world)
    graph = {
        "nodes": [
            {"id": "in", "type": "entry", "config": {"trigger": "audience", "audience": audience.pk}},
            {"id": "w3", "type": "wait", "config": {"mode": "duration", "minutes": 3 * 24 * 60}},
            {
                "id": "sms",
                "type": "send",
                "config": {
                    "account": sms.pk,
                    "content": {"template_code": "SMS_100", "params": {"code": "8折"}},
                },
            },
            {
                "id": "visit",
                "type": "wait",
                "config": {"mode": "event", "event": "store_visit", "within_minutes": 7 * 24 * 60},
            },
            {"id": "tag", "type": "set_tag", "config": {"tag": recalled.code, "value": "yes"}},
            {"id": "out", "type": "exit", "config": {}},
        ],
        "edges": [
            {"from": "in", "to": "w3", "port": "next"},
            {"from": "w3", "to": "sms", "port": "next"},
            {"from": "sms", "to": "visit", "port": "next"},
            {"from": "visit", "to": "tag", "port": "happened"},
            {"from": "visit", "to": "out", "port": "timeout"},
        ],
        "goal": {
            "kind": "event",
            "event": "store_visit",
            "window_days": 7,
            "from": "send",
            "ends_journey": False,
        },
    }
    assert validate(graph, brand) == []
    journey = make_journey(brand, graph)
    services.start_cursors()
    from tagportal.activation.models import Consent

    Consent.objects.create(brand=brand, oneid=3, channel="sms", state="opted_out", source="api")

    with django_capture_on_commit_callbacks(execute=True):
        audience_services.take_snapshot(audience, BitMap([1, 2, 3]), 100, trigger=RefreshTrigger.MANUAL)
    # people enter when the snapshot is taken (the real clock); the clock moves from there
    start = JourneyInstance.objects.earliest("entered_at").entered_at
    assert runner.tick(now=start) == 3
    assert set(JourneyInstance.objects.values_list("node", "state")) == {("w3", "waiting")}

    assert runner.tick(now=start + dt.timedelta(days=2)) == 0
    day3 = start + dt.timedelta(days=3)
    assert runner.tick(now=day3) == 3
    outcomes = dict(InstanceStep.objects.filter(node="sms").values_list("instance__oneid", "outcome"))
    assert outcomes == {1: "sent", 2: "sent", 3: "refused"}
    assert deliveries.deliver_due(now=day3) == {"sent": 2}
    sent = sorted(n for s in aliyun.sends for n in s["numbers"])
    assert sent == [phone(1), phone(2)] and aliyun.duplicates == 0

    visit = day3 + dt.timedelta(days=1)
    Event.objects.create(
        brand=brand,
        customer=Customer.objects.get(brand=brand, oneid=1),
        client_id="pos-1",
        type="store_visit",
        time=visit,
    )
    assert services.poll_activity(now=visit)["woken"] == 1
    assert runner.tick(now=visit) == 1
    assert runner.tick(now=day3 + dt.timedelta(days=7)) == 2
    paths = dict(JourneyInstance.objects.values_list("oneid", "path"))
    assert paths[1] == ["in", "w3", "sms", "visit", "tag"]
    assert paths[2][-1] == paths[3][-1] == "out"
    assert values_for(brand, [1, 2], [recalled.code])[1][recalled.code]["value"] == "yes"
    assert values_for(brand, [1, 2], [recalled.code])[2] == {}
    conversion = journey.conversions.get()
    assert conversion.instance.oneid == 1 and conversion.attributed_node == "sms"
    assert Event.objects.filter(type="journey_exited").count() == 3
    # nothing more is due and nothing is sent twice
    assert runner.tick(now=day3 + dt.timedelta(days=30)) == 0
    assert deliveries.deliver_due(now=day3 + dt.timedelta(days=30)) == {}
    assert len(aliyun.sends) == 2 and aliyun.duplicates == 0
