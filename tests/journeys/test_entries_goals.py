"""Entries (an audience snapshot, new tag results, an event, a schedule) and goals
(conversions within the window, last touch, ending the journey), with a moved clock."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pandas as pd
import pytest
from pyroaring import BitMap

from tagportal.audiences import services as audience_services
from tagportal.audiences.choices import RefreshTrigger
from tagportal.journeys import runner, services
from tagportal.journeys.models import Conversion, Journey, JourneyInstance
from tagportal.profiles.models import Customer, Event, Order
from tests.activation.helpers import account
from tests.activation.test_syncs import make_audience

from .helpers import T0, chain, customers, enter, entry, make_journey, manual_tag, no_quiet_hours, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(world):
    no_quiet_hours(world.own_brand)
    return account(world.own_brand, "webhook")


def at(**delta):
    return T0 + dt.timedelta(**delta)


_numbers = itertools.count(1)


def event(world, oneid, kind, time):
    n = next(_numbers)
    customer, _ = Customer.objects.get_or_create(brand=world.own_brand, oneid=oneid)
    return Event.objects.create(
        brand=world.own_brand, customer=customer, client_id=f"e{n}-{kind}", type=kind, time=time
    )


def test_people_who_join_an_audience_enter(world, hook, django_capture_on_commit_callbacks):
    audience = make_audience(world)
    journey = make_journey(world.own_brand, chain(entry("audience", audience=audience.pk), send("s", hook)))
    with django_capture_on_commit_callbacks(execute=True):
        audience_services.take_snapshot(audience, BitMap([1, 2, 3]), 100, trigger=RefreshTrigger.MANUAL)
    with django_capture_on_commit_callbacks(execute=True):
        audience_services.take_snapshot(audience, BitMap([2, 3, 4, 5]), 100, trigger=RefreshTrigger.MANUAL)
    assert sorted(JourneyInstance.objects.filter(journey=journey).values_list("oneid", flat=True)) == [
        1,
        2,
        3,
        4,
        5,
    ]
    # a draft journey on the same audience takes nobody
    make_journey(world.own_brand, chain(entry("audience", audience=audience.pk)), status="draft")
    with django_capture_on_commit_callbacks(execute=True):
        audience_services.take_snapshot(audience, BitMap([9]), 100, trigger=RefreshTrigger.MANUAL)
    assert JourneyInstance.objects.count() == 6


def test_new_tag_results_enter_the_holders_of_the_value(world, hook, django_capture_on_commit_callbacks):
    from tagportal.engine.services import store_values

    tag = manual_tag(
        world, "tier", values=[{"code": "vip", "label": "会员"}, {"code": "std", "label": "普通"}]
    )
    journey = make_journey(world.own_brand, chain(entry("tag", tag=tag.code, value="vip"), send("s", hook)))
    with django_capture_on_commit_callbacks(execute=True):
        store_values(tag, pd.Series(["vip", "std", "vip"], index=[1, 2, 3]))
    assert sorted(JourneyInstance.objects.filter(journey=journey).values_list("oneid", flat=True)) == [1, 3]


def test_an_event_enters_and_wakes_the_people_waiting_for_it(world, hook):
    services.start_cursors()
    graph = chain(
        entry("event", event="skin_test_completed"),
        ("w", "wait", {"mode": "event", "event": "store_visit", "within_minutes": 7 * 24 * 60}),
        ("x", "exit", {}),
        edges=[("w", "happened", "x")],
    )
    graph["edges"].append({"from": "in", "to": "w", "port": "next"})
    journey = make_journey(world.own_brand, graph)
    event(world, 1, "skin_test_completed", T0)
    event(world, 2, "page_view", T0)
    done = services.poll_activity(now=T0)
    assert done["entered"] == 1 and list(JourneyInstance.objects.values_list("oneid", flat=True)) == [1]
    runner.tick(now=T0)
    waiting = JourneyInstance.objects.get(journey=journey)
    assert waiting.state == "waiting" and waiting.next_run_at == at(days=7)
    event(world, 1, "store_visit", at(hours=5))
    assert services.poll_activity(now=at(hours=5))["woken"] == 1
    assert runner.tick(now=at(hours=5)) == 1
    waiting.refresh_from_db()
    assert waiting.state == "exited" and waiting.path == ["in", "w", "x"]
    assert services.poll_activity(now=at(hours=6))["events"] == 0  # read once


def _tier(world):
    return manual_tag(
        world, "tier", values=[{"code": "vip", "label": "会员"}, {"code": "std", "label": "普通"}]
    )


def _entries(journey):
    return sorted(JourneyInstance.objects.filter(journey=journey).values_list("oneid", "entry_seq"))


def test_a_tag_trigger_enters_those_who_newly_hold_the_value(world, hook):
    """Recomputed results: a holder who stays a holder does not enter again after the
    re-entry days; one who left the value and came back does."""
    from tagportal.engine.services import store_values

    tag = _tier(world)
    journey = make_journey(
        world.own_brand,
        chain(
            entry("tag", tag=tag.code, value="vip", reentry="after_days", reentry_days=1), ("x", "exit", {})
        ),
    )

    def look(values, day):
        store_values(tag, pd.Series(values, index=[1, 2, 3]))
        entered = services.on_results_updated(
            None, brand_id=world.own_brand.pk, tag_ids=[tag.pk], now=at(days=day)
        )
        runner.tick(now=at(days=day))
        return entered

    assert look(["vip", "vip", "std"], 0) == 2  # the first look: the current holders
    assert _entries(journey) == [(1, 1), (2, 1)]
    assert look(["vip", "std", "vip"], 2) == 1  # 3 is new; 1 kept the value; 2 left
    assert _entries(journey) == [(1, 1), (2, 1), (3, 1)]
    assert look(["vip", "vip", "vip"], 4) == 1  # 2 came back; 1 and 3 kept it
    assert _entries(journey) == [(1, 1), (2, 1), (2, 2), (3, 1)]
    assert look(["vip", "vip", "vip"], 9) == 0  # nobody changed, however long it was


def test_a_new_live_version_looks_afresh(world, hook):
    from tagportal.engine.services import store_values
    from tagportal.journeys.models import JourneyVersion

    tag = _tier(world)
    graph = chain(
        entry("tag", tag=tag.code, value="vip", reentry="after_days", reentry_days=1), ("x", "exit", {})
    )
    journey = make_journey(world.own_brand, graph)
    store_values(tag, pd.Series(["vip"], index=[1]))
    services.on_results_updated(None, brand_id=world.own_brand.pk, tag_ids=[tag.pk], now=at(days=0))
    runner.tick(now=at(days=0))
    second = JourneyVersion.objects.create(journey=journey, number=2, graph=graph, state="approved")
    Journey.objects.filter(pk=journey.pk).update(live_version=second)
    assert (
        services.on_results_updated(None, brand_id=world.own_brand.pk, tag_ids=[tag.pk], now=at(days=3)) == 1
    )


def test_realtime_tag_entries_from_events_enter_on_a_change_only(world, hook):
    """The people of new events are looked at: holding the value since the last look."""
    from tagportal.engine.services import store_values

    services.start_cursors()
    tag = _tier(world)
    journey = make_journey(
        world.own_brand,
        chain(
            entry("tag", tag=tag.code, value="vip", reentry="after_days", reentry_days=1), ("x", "exit", {})
        ),
    )

    def look(value, day):
        store_values(tag, pd.Series([value], index=[1]))
        event(world, 1, "page_view", at(days=day))
        entered = services.poll_activity(now=at(days=day))["entered"]
        runner.tick(now=at(days=day))
        return entered

    assert look("vip", 0) == 1
    assert look("vip", 3) == 0  # still a holder: not again
    assert look("std", 4) == 0
    assert look("vip", 5) == 1  # back to the value
    assert _entries(journey) == [(1, 1), (1, 2)]


def test_a_backlog_drains_in_one_poll_without_skipping_rows(world, hook):
    services.start_cursors()
    make_journey(world.own_brand, chain(entry("event", event="skin_test_completed")))
    oneids = list(range(1, 24))
    for oneid in oneids:  # 23 events of interest among 46: seven full batches of 3 and more
        event(world, oneid, "page_view", T0)
        event(world, oneid, "skin_test_completed", T0)
    done = services.poll_activity(now=T0, limit=3)
    # only the types the journeys react to are read: 7 full batches, a short one, the orders
    assert done["events"] == 23 and done["rounds"] == 9
    assert sorted(JourneyInstance.objects.values_list("oneid", flat=True)) == oneids
    assert services.poll_activity(now=T0, limit=3)["events"] == 0


def test_a_poll_stops_after_its_rounds_and_the_next_goes_on(world, hook):
    services.start_cursors()
    make_journey(world.own_brand, chain(entry("event", event="skin_test_completed")))
    for oneid in range(1, 11):
        event(world, oneid, "skin_test_completed", T0)
    first = services.poll_activity(now=T0, limit=2, rounds=3)
    assert first["events"] == 6 and first["entered"] == 6
    second = services.poll_activity(now=T0, limit=2, rounds=3)
    assert second["events"] == 4 and second["entered"] == 4
    assert sorted(JourneyInstance.objects.values_list("oneid", flat=True)) == list(range(1, 11))
    # a spent time budget still reads one batch: the poll always moves on
    event(world, 11, "skin_test_completed", T0)
    event(world, 12, "skin_test_completed", T0)
    assert services.poll_activity(now=T0, limit=1, seconds=0)["events"] == 1


def test_a_schedule_enters_the_audience_once_per_run(
    world, hook, django_capture_on_commit_callbacks, monkeypatch
):
    audience = make_audience(world)
    monkeypatch.setattr(audience_services, "members", lambda a: BitMap([1, 2]))
    once = make_journey(
        world.own_brand,
        chain(
            entry("schedule", audience=audience.pk, schedule={"once_at": "2026-03-02T12:00:00+08:00"}),
            send("s", hook),
        ),
    )
    weekly = make_journey(
        world.own_brand,
        chain(
            entry(
                "schedule",
                audience=audience.pk,
                schedule={"cron": "0 10 * * 1"},
                reentry="after_days",
                reentry_days=1,
            ),
            send("s", hook),
        ),
    )
    weekly.live_version.approved_at = T0
    weekly.live_version.save()
    assert services.run_schedules(now=at(hours=1)) == 0  # 11:00 Beijing: nothing due yet
    assert services.run_schedules(now=at(hours=2)) == 2  # the one-off at 12:00
    assert services.run_schedules(now=at(days=1)) == 0
    assert services.run_schedules(now=at(days=7)) == 2  # next Monday 10:00 Beijing
    assert services.run_schedules(now=at(days=7, hours=1)) == 0
    assert JourneyInstance.objects.filter(journey=once).count() == 2
    assert JourneyInstance.objects.filter(journey=weekly).count() == 2
    assert Journey.objects.get(pk=weekly.pk).entry_state["v1"].startswith("2026-03-09")


def test_the_goal_is_attributed_to_the_last_send_within_the_window(world, hook):
    services.start_cursors()
    customers(world.own_brand, [1, 2, 3])
    graph = chain(
        entry(),
        send("s1", hook, "第一条"),
        ("w", "wait", {"mode": "duration", "minutes": 24 * 60}),
        send("s2", hook, "第二条"),
        ("w2", "wait", {"mode": "duration", "minutes": 30 * 24 * 60}),
        goal={
            "kind": "event",
            "event": "store_visit",
            "window_days": 7,
            "from": "send",
            "ends_journey": True,
        },
    )
    journey = make_journey(world.own_brand, graph)
    enter(journey, [1, 2, 3])
    runner.tick(now=T0)
    event(world, 3, "store_visit", at(hours=3))  # after the first send only
    services.poll_activity(now=at(hours=3))
    runner.tick(now=at(days=1))
    event(world, 1, "store_visit", at(days=2))  # after both: the second one
    event(world, 2, "store_visit", at(days=9))  # 8 days after the last send: outside
    services.poll_activity(now=at(days=9))
    conversions = {c.instance.oneid: c for c in Conversion.objects.select_related("instance")}
    assert set(conversions) == {1, 3}
    assert conversions[1].attributed_node == "s2" and conversions[3].attributed_node == "s1"
    assert conversions[1].attributed_delivery_id is not None and conversions[1].at == at(days=2)
    states = dict(JourneyInstance.objects.values_list("oneid", "state"))
    assert states == {1: "converted", 2: "waiting", 3: "converted"}
    assert Event.objects.filter(type="journey_converted").count() == 2
    # the same event read again converts nobody twice
    services.record_goals(
        [services.Activity(999, world.own_brand.pk, 1, "store_visit", at(days=2), Decimal(0))],
        {journey.live_version_id: services.Graph(graph)},
        at(days=2),
    )
    assert Conversion.objects.count() == 2


def test_an_order_goal_from_entry_counts_the_holdout_too(world, hook):
    services.start_cursors()
    customers(world.own_brand, [1, 2])
    graph = chain(
        entry(),
        ("h", "holdout", {"holdout_percent": 50}),
        edges=[("h", "treatment", "s")],
        goal={"kind": "order", "window_days": 7, "from": "entry", "ends_journey": False},
    )
    graph["nodes"].append(
        {"id": "s", "type": "send", "config": {"account": hook.pk, "content": {"text": "x"}}}
    )
    journey = make_journey(world.own_brand, graph)
    enter(journey, [1, 2])
    runner.tick(now=T0)
    for oneid in (1, 2):
        Order.objects.create(
            brand=world.own_brand,
            customer=Customer.objects.get(brand=world.own_brand, oneid=oneid),
            client_id=f"o{oneid}",
            time=at(days=1),
            amount=Decimal("299.00"),
        )
    assert services.poll_activity(now=at(days=1))["converted"] == 2
    assert sorted(Conversion.objects.values_list("amount", flat=True)) == [Decimal("299.00")] * 2
    assert set(JourneyInstance.objects.values_list("state", flat=True)) == {"done"}
