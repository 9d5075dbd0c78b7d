"""The runner against a webhook account (its recipient is the OneID): each node type,
idempotency (a double tick, a step already recorded), caps over Beijing days and weeks,
quiet hours across midnight, consent at send time, re-entry, holdout and split shares."""

from __future__ import annotations

import datetime as dt

import pytest

from tagportal.activation.models import Consent, Delivery, Send
from tagportal.journeys import runner
from tagportal.journeys.models import InstanceStep, JourneyInstance
from tagportal.profiles.models import Event
from tests.activation.helpers import account

from .helpers import T0, chain, customers, enter, entry, make_journey, no_quiet_hours, send

pytestmark = pytest.mark.django_db

PEOPLE = list(range(1, 11))


@pytest.fixture
def hook(world):
    no_quiet_hours(world.own_brand)
    return account(world.own_brand, "webhook")


def states(journey):
    return sorted(set(JourneyInstance.objects.filter(journey=journey).values_list("state", flat=True)))


def at(hours=0, days=0, minutes=0):
    return T0 + dt.timedelta(hours=hours, days=days, minutes=minutes)


# sends, feedback, idempotency ------------------------------------------------------
def test_entry_send_exit_one_send_for_everyone_and_feedback_events(world, hook):
    customers(world.own_brand, PEOPLE)
    journey = make_journey(world.own_brand, chain(entry(), send("s", hook), ("x", "exit", {})))
    assert enter(journey, PEOPLE) == 10
    assert runner.tick(now=T0) == 10
    send_row = Send.objects.get()
    assert send_row.deliveries.count() == 10 and send_row.account == hook
    assert states(journey) == ["exited"]
    steps = InstanceStep.objects.filter(node="s")
    assert steps.count() == 10 and {s.outcome for s in steps} == {"sent"}
    assert all(s.detail["delivery"] and s.detail["kind"] == "webhook" for s in steps)
    instance = JourneyInstance.objects.get(oneid=1)
    assert instance.path == ["in", "s", "x"] and instance.left_at == T0 and instance.last_send_node == "s"
    types = sorted(Event.objects.filter(customer__oneid=1).values_list("type", flat=True))
    assert types == ["journey_entered", "journey_exited"]


def test_a_double_tick_moves_nobody_twice(world, hook):
    journey = make_journey(world.own_brand, chain(entry(), send("s", hook), ("x", "exit", {})))
    enter(journey, PEOPLE)
    runner.tick(now=T0)
    assert runner.tick(now=T0) == 0
    assert runner.tick(now=at(days=1)) == 0
    assert Send.objects.count() == 1 and Delivery.objects.count() == 10
    assert InstanceStep.objects.count() == 30


def test_a_step_already_recorded_is_followed_not_done_again(world, hook):
    journey = make_journey(world.own_brand, chain(entry(), send("s", hook), ("x", "exit", {})))
    enter(journey, [1, 2])
    first = JourneyInstance.objects.get(oneid=1)
    # a worker recorded person 1's send, then died before moving them on
    InstanceStep.objects.create(instance=first, node="s", outcome="sent", detail={"port": "next"}, at=T0)
    runner.tick(now=T0)
    assert list(Delivery.objects.values_list("oneid", flat=True)) == [2]
    assert states(journey) == ["exited"]
    assert InstanceStep.objects.filter(instance=first).count() == 3


def test_an_expired_lease_is_claimed_again_a_live_one_is_not(world, hook):
    journey = make_journey(world.own_brand, chain(entry(), send("s", hook)))
    enter(journey, [1])
    pks, lease = runner.claim(T0, 10)  # a worker took it and died
    assert len(pks) == 1
    assert runner.tick(now=T0 + dt.timedelta(seconds=10)) == 0
    assert runner.tick(now=lease + dt.timedelta(seconds=1)) == 1
    assert states(journey) == ["done"] and Delivery.objects.count() == 1


def test_only_live_journeys_run(world, hook):
    journey = make_journey(world.own_brand, chain(entry(), send("s", hook)), status="paused")
    enter(journey, [1])
    assert runner.tick(now=T0) == 0
    journey.status = "live"
    journey.save()
    assert runner.tick(now=T0) == 1


# waits -----------------------------------------------------------------------------
def test_wait_duration_and_until_time(world, hook):
    graph = chain(
        entry(),
        ("w", "wait", {"mode": "duration", "minutes": 3 * 24 * 60}),
        ("u", "wait", {"mode": "until_time", "time": "08:30"}),
        ("x", "exit", {}),
    )
    journey = make_journey(world.own_brand, graph)
    enter(journey, [1])
    runner.tick(now=T0)
    instance = JourneyInstance.objects.get()
    assert (instance.node, instance.state, instance.next_run_at) == ("w", "waiting", at(days=3))
    assert runner.tick(now=at(days=2)) == 0
    runner.tick(now=at(days=3))
    instance.refresh_from_db()
    # Thursday 10:00 in Beijing: 08:30 comes the next morning (00:30 UTC)
    assert (instance.node, instance.next_run_at) == ("u", dt.datetime(2026, 3, 6, 0, 30, tzinfo=dt.UTC))
    runner.tick(now=instance.next_run_at)
    instance.refresh_from_db()
    assert instance.state == "exited"


def test_wait_for_an_event_happened_or_timed_out(world, hook):
    customers(world.own_brand, [1, 2])
    graph = chain(
        entry(),
        ("w", "wait", {"mode": "event", "event": "store_visit", "within_minutes": 60}),
        ("yes", "exit", {}),
        ("no", "exit", {}),
        edges=[("in", "next", "w"), ("w", "happened", "yes"), ("w", "timeout", "no")],
    )
    graph["edges"] = [e for e in graph["edges"] if not (e["from"] == "in" and e["port"] == "next")] + [
        {"from": "in", "to": "w", "port": "next"}
    ]
    journey = make_journey(world.own_brand, graph)
    enter(journey, [1, 2])
    runner.tick(now=T0)
    Event.objects.create(
        brand=world.own_brand,
        customer=world.own_brand.customers.get(oneid=1),
        client_id="v1",
        type="store_visit",
        time=at(minutes=30),
    )
    runner.tick(now=at(minutes=31))  # nobody is woken without a poll: still waiting
    runner.tick(now=at(minutes=61))
    paths = dict(JourneyInstance.objects.values_list("oneid", "path"))
    assert paths == {1: ["in", "w", "yes"], 2: ["in", "w", "no"]}


# branch, split, holdout, set tag, sync tag ------------------------------------------
def test_branch_on_a_tag_value(world, hook):
    import pandas as pd

    from tagportal.engine.services import store_values

    from .helpers import manual_tag

    skin = manual_tag(
        world, "skin", values=[{"code": "dry", "label": "干性"}, {"code": "oily", "label": "油性"}]
    )
    store_values(skin, pd.Series(["dry", "oily"], index=[1, 2]))
    graph = chain(
        entry(),
        (
            "b",
            "branch",
            {"tag": skin.code, "cases": [{"key": "d", "values": ["dry"]}, {"key": "o", "values": ["oily"]}]},
        ),
        edges=[("b", "d", "xd"), ("b", "o", "xo"), ("b", "else", "xe")],
    )
    graph["nodes"] += [{"id": n, "type": "exit", "config": {}} for n in ("xd", "xo", "xe")]
    journey = make_journey(world.own_brand, graph)
    enter(journey, [1, 2, 3])
    runner.tick(now=T0)
    last = {o: p[-1] for o, p in JourneyInstance.objects.values_list("oneid", "path")}
    assert last == {1: "xd", 2: "xo", 3: "xe"}


def test_split_and_holdout_are_deterministic_and_near_their_shares(world, hook):
    graph = chain(
        entry(),
        ("h", "holdout", {"holdout_percent": 10}),
        ("sp", "split", {"ways": [{"key": "a", "percent": 30}, {"key": "b", "percent": 70}]}),
        edges=[("h", "treatment", "sp"), ("sp", "a", "xa"), ("sp", "b", "xb"), ("h", "holdout", "xh")],
    )
    graph["nodes"] += [{"id": n, "type": "exit", "config": {}} for n in ("xa", "xb", "xh")]
    people = range(1, 4001)
    first = make_journey(world.own_brand, graph)
    enter(first, people)
    runner.run_due(now=T0, limit=1000)
    groups = dict(JourneyInstance.objects.filter(journey=first).values_list("oneid", "group"))
    holdout = sum(1 for g in groups.values() if g == "holdout")
    assert 320 <= holdout <= 480  # 10 % of 4,000, within ±2 %
    ways = [
        p[2]
        for p in JourneyInstance.objects.filter(journey=first, group="treatment").values_list(
            "path", flat=True
        )
    ]
    assert (
        0.27 <= ways.count("sp")
        and 0.26
        <= sum(
            1
            for p in JourneyInstance.objects.filter(journey=first, group="treatment").values_list(
                "path", flat=True
            )
            if p[-1] == "xa"
        )
        / len(ways)
        <= 0.34
    )
    # the same person lands in the same arm when looked at again
    again = JourneyInstance.objects.filter(journey=first, oneid__in=[5, 50, 500]).values_list(
        "oneid", "group"
    )
    JourneyInstance.objects.filter(journey=first).delete()
    enter(first, [5, 50, 500])
    runner.tick(now=T0)
    assert dict(JourneyInstance.objects.filter(journey=first).values_list("oneid", "group")) == dict(again)


def test_set_tag_writes_the_manual_tag_and_sync_tag_is_recorded(world, hook):
    from tagportal.engine.results import values_for

    from .helpers import manual_tag

    tag = manual_tag(
        world, "recalled", values=[{"code": "yes", "label": "是"}, {"code": "no", "label": "否"}]
    )
    graph = chain(
        entry(),
        ("t", "set_tag", {"tag": tag.code, "value": "yes"}),
        ("sy", "sync_tag", {"account": hook.pk, "tag_name": "召回"}),
    )
    journey = make_journey(world.own_brand, graph)
    enter(journey, [7, 8])
    runner.tick(now=T0)
    found = values_for(world.own_brand, [7, 8, 9], [tag.code])
    assert found[7][tag.code]["value"] == "yes" and found[8][tag.code]["value"] == "yes" and found[9] == {}
    assert set(InstanceStep.objects.filter(node="t").values_list("outcome", flat=True)) == {"tagged"}
    assert set(InstanceStep.objects.filter(node="sy").values_list("outcome", flat=True)) == {"failed"}
    assert states(journey) == ["done"]


# consent, caps, quiet hours --------------------------------------------------------------
def test_consent_is_checked_at_send_time(world, hook):
    journey = make_journey(
        world.own_brand, chain(entry(), ("w", "wait", {"mode": "duration", "minutes": 60}), send("s", hook))
    )
    enter(journey, [1, 2])
    runner.tick(now=T0)
    Consent.objects.create(brand=world.own_brand, oneid=2, channel="webhook", state="opted_out", source="api")
    runner.tick(now=at(hours=1))
    assert list(Delivery.objects.values_list("oneid", flat=True)) == [1]
    refused = InstanceStep.objects.get(node="s", instance__oneid=2)
    assert refused.outcome == "refused" and refused.detail["reason"] == "opted_out"
    assert states(journey) == ["done"]  # the refused person still goes on


def sends_to_one(world, hook, now, n=1):
    journey = make_journey(world.own_brand, chain(entry(), send("s", hook)))
    enter(journey, [1], now=now)
    runner.tick(now=now)
    return InstanceStep.objects.get(instance__journey=journey, node="s")


def test_day_cap_counts_the_beijing_day(world, hook):
    no_quiet_hours(world.own_brand, caps={"webhook": {"day": 1}})
    late = dt.datetime(2026, 3, 2, 15, 30, tzinfo=dt.UTC)  # 23:30 Monday in Beijing
    assert sends_to_one(world, hook, late).outcome == "sent"
    capped = sends_to_one(world, hook, late + dt.timedelta(minutes=20))  # 23:50, same Beijing day
    assert capped.outcome == "capped" and capped.detail["cap"] == "webhook:day"
    # 00:10 Tuesday in Beijing (still Monday in UTC): a new day
    assert sends_to_one(world, hook, late + dt.timedelta(minutes=40)).outcome == "sent"
    assert Delivery.objects.count() == 2
    assert JourneyInstance.objects.filter(state="done").count() == 3  # capped people advance


def test_week_and_global_caps(world, hook):
    no_quiet_hours(world.own_brand, caps={"webhook": {"week": 2}})
    sunday_night = dt.datetime(2026, 3, 8, 15, 0, tzinfo=dt.UTC)  # Sunday 23:00 Beijing
    assert sends_to_one(world, hook, at(days=1)).outcome == "sent"  # Tuesday
    assert sends_to_one(world, hook, at(days=3)).outcome == "sent"
    assert sends_to_one(world, hook, sunday_night).detail == {"cap": "webhook:week", "port": "next"}
    # Monday 00:30 in Beijing: a new week
    assert sends_to_one(world, hook, sunday_night + dt.timedelta(hours=1, minutes=30)).outcome == "sent"
    no_quiet_hours(world.own_brand, caps={}, global_day=1)
    other = account(world.own_brand, "webhook", name="second hook")
    assert sends_to_one(world, other, sunday_night + dt.timedelta(hours=2)).detail["cap"] == "global:day"


def campaign_send(hook, oneids, created, state="queued", code=""):
    """A send made outside journeys (an audience's one-off send), created at ``created``."""
    from tagportal.activation import deliveries

    made = deliveries.create_send(hook, {"text": "双十一"}, [(o, str(o)) for o in oneids], kick=False)
    Delivery.objects.filter(send=made).update(created=created, state=state, last_error_code=code)
    return made


def test_caps_count_the_campaign_sends_made_outside_journeys(world, hook):
    no_quiet_hours(world.own_brand, caps={"webhook": {"day": 1}})
    noon = dt.datetime(2026, 3, 2, 4, 0, tzinfo=dt.UTC)  # 12:00 Monday in Beijing
    campaign_send(hook, [1], noon - dt.timedelta(hours=2))
    capped = sends_to_one(world, hook, noon)
    assert capped.outcome == "capped" and capped.detail["cap"] == "webhook:day"
    # yesterday's campaign send (Beijing day) does not count today
    Delivery.objects.filter(send__context__isnull=True).update(created=noon - dt.timedelta(days=1))
    assert sends_to_one(world, hook, noon + dt.timedelta(minutes=5)).outcome == "sent"


def test_global_cap_counts_a_campaign_on_another_channel(world, hook):
    sms = account(world.own_brand, "webhook", name="second hook")
    no_quiet_hours(world.own_brand, caps={}, global_day=1)
    noon = dt.datetime(2026, 3, 2, 4, 0, tzinfo=dt.UTC)
    campaign_send(sms, [1], noon - dt.timedelta(minutes=30))
    assert sends_to_one(world, hook, noon).detail["cap"] == "global:day"


def test_refused_or_failed_campaign_deliveries_do_not_count_in_doubt_ones_do(world, hook):
    no_quiet_hours(world.own_brand, caps={"webhook": {"day": 1}})
    noon = dt.datetime(2026, 3, 2, 4, 0, tzinfo=dt.UTC)
    campaign_send(hook, [1], noon - dt.timedelta(hours=1), state="failed", code="refused")
    campaign_send(hook, [1], noon - dt.timedelta(hours=1), state="dead", code="500")
    assert sends_to_one(world, hook, noon).outcome == "sent"
    campaign_send(hook, [2], noon - dt.timedelta(hours=1), state="failed", code="in_doubt")
    journey = make_journey(world.own_brand, chain(entry(), send("s", hook)))
    enter(journey, [2], now=noon)
    runner.tick(now=noon)
    assert InstanceStep.objects.get(instance__journey=journey, node="s").outcome == "capped"


def test_a_journey_send_is_counted_once_not_by_its_delivery_too(world, hook):
    no_quiet_hours(world.own_brand, caps={"webhook": {"day": 2}})
    noon = dt.datetime(2026, 3, 2, 4, 0, tzinfo=dt.UTC)
    assert sends_to_one(world, hook, noon).outcome == "sent"
    # its delivery is stamped now (wall clock) as well: moved to the same Beijing day
    Delivery.objects.update(created=noon)
    assert sends_to_one(world, hook, noon + dt.timedelta(minutes=5)).outcome == "sent"
    assert sends_to_one(world, hook, noon + dt.timedelta(minutes=10)).outcome == "capped"


def test_sent_counts_is_one_query_for_a_batch(world, hook, django_assert_num_queries):
    from tagportal.journeys import services

    noon = dt.datetime(2026, 3, 2, 4, 0, tzinfo=dt.UTC)
    campaign_send(hook, [1, 2, 3], noon - dt.timedelta(hours=1))
    with django_assert_num_queries(1):
        counts = services.sent_counts(world.own_brand.pk, range(1, 200), noon)
    assert {o: c["day"]["webhook"] for o, c in counts.items()} == {1: 1, 2: 1, 3: 1}


def test_quiet_hours_defer_across_midnight_never_drop(world, hook):
    no_quiet_hours(world.own_brand, quiet_start=dt.time(21, 0), quiet_end=dt.time(9, 0))
    journey = make_journey(world.own_brand, chain(entry(), send("s", hook)))
    evening = dt.datetime(2026, 3, 2, 14, 0, tzinfo=dt.UTC)  # 22:00 Beijing
    enter(journey, [1], now=evening)
    runner.tick(now=evening)
    instance = JourneyInstance.objects.get()
    next_morning = dt.datetime(2026, 3, 3, 1, 0, tzinfo=dt.UTC)  # 09:00 Beijing
    assert (instance.node, instance.state, instance.next_run_at) == ("s", "waiting", next_morning)
    assert not Delivery.objects.exists()
    after_midnight = dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.UTC)  # 01:00 Beijing: same morning
    assert runner.tick(now=after_midnight) == 0
    runner.tick(now=next_morning)
    assert Delivery.objects.count() == 1 and states(journey) == ["done"]


def test_quiet_hours_within_one_day_and_just_after_midnight(world):
    from tagportal.journeys.models import ContactPolicy
    from tagportal.journeys.services import quiet_until

    night = ContactPolicy(quiet_start=dt.time(21, 0), quiet_end=dt.time(9, 0))
    just_after = dt.datetime(2026, 3, 2, 16, 5, tzinfo=dt.UTC)  # 00:05 Tuesday Beijing
    assert quiet_until(night, just_after) == dt.datetime(2026, 3, 3, 1, 0, tzinfo=dt.UTC)
    assert quiet_until(night, T0) is None
    lunch = ContactPolicy(quiet_start=dt.time(12, 0), quiet_end=dt.time(13, 0))
    assert quiet_until(lunch, dt.datetime(2026, 3, 2, 4, 30, tzinfo=dt.UTC)) == dt.datetime(
        2026, 3, 2, 5, 0, tzinfo=dt.UTC
    )
    assert quiet_until(lunch, T0) is None


# re-entry -------------------------------------------------------------------------
def test_reentry_never_and_after_days(world, hook):
    once = make_journey(world.own_brand, chain(entry(), send("s", hook)))
    assert enter(once, [1]) == 1
    runner.tick(now=T0)
    assert enter(once, [1], now=at(days=100)) == 0
    again = make_journey(
        world.own_brand,
        chain(
            entry(reentry="after_days", reentry_days=7), ("w", "wait", {"mode": "duration", "minutes": 60})
        ),
    )
    assert enter(again, [1]) == 1
    assert enter(again, [1], now=at(days=8)) == 0  # still inside
    runner.tick(now=T0)
    runner.tick(now=at(hours=1))
    assert JourneyInstance.objects.get(journey=again).state == "done"
    assert enter(again, [1], now=at(days=3)) == 0  # left, but the last entry is too recent
    assert enter(again, [1], now=at(days=8)) == 1
    assert sorted(JourneyInstance.objects.filter(journey=again).values_list("entry_seq", flat=True)) == [1, 2]


# variants -----------------------------------------------------------------------------
def test_variants_make_one_send_each(world, hook):
    node = (
        "s",
        "send",
        {
            "account": hook.pk,
            "variants": [{"key": "A", "content": {"text": "甲"}}, {"key": "B", "content": {"text": "乙"}}],
        },
    )
    journey = make_journey(world.own_brand, chain(entry(), node))
    enter(journey, range(1, 201))
    runner.tick(now=T0)
    texts = sorted(Send.objects.values_list("content__text", flat=True))
    assert texts == ["乙", "甲"]
    chosen = {s.detail["variant"] for s in InstanceStep.objects.filter(node="s")}
    assert chosen == {"A", "B"}
    assert set(JourneyInstance.objects.values_list("last_variant", flat=True)) == {"A", "B"}


def test_a_batch_colliding_with_another_workers_step_keeps_nothing(world, hook, monkeypatch):
    journey = make_journey(world.own_brand, chain(entry(), send("s", hook)))
    enter(journey, [1, 2])
    original = runner.HANDLERS["send"]

    def raced(ctx, graph, node_id, batch):
        # another worker (whose lease ran out under us) records person 1's send first
        InstanceStep.objects.create(
            instance=batch[0], node=node_id, outcome="sent", detail={"port": "next"}, at=T0
        )
        return original(ctx, graph, node_id, batch)

    monkeypatch.setitem(runner.HANDLERS, "send", raced)
    assert runner.tick(now=T0) == 0
    assert not Send.objects.exists() and not InstanceStep.objects.exists()
    assert set(JourneyInstance.objects.values_list("node", flat=True)) == {"in"}  # untouched, still leased
    monkeypatch.setitem(runner.HANDLERS, "send", original)
    assert runner.tick(now=T0 + dt.timedelta(minutes=10)) == 2  # once the lease ran out
    assert Delivery.objects.count() == 2 and states(journey) == ["done"]
