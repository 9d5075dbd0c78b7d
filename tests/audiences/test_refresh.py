"""Refreshing in the background: PostHog-style pending versions (a superseded refresh
stops, a refresh overtaken while it ran writes nothing), error accounting, the engine's
``results_updated`` signal refreshing the audiences that use a recomputed tag, the
hourly schedule and its Celery task."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pandas as pd
import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from tagportal.audiences import services, tasks
from tagportal.audiences.models import Audience, AudienceKind, RefreshTrigger
from tagportal.catalog.services import publish_tag
from tagportal.engine import services as engine
from tagportal.engine.models import TagComputation
from tagportal.engine.signals import results_updated

from ..factories import TagFactory
from .conftest import store_result
from .test_services import EXPRESSION, OILY, RECENT, churn

AS_OF = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)
VIP = {"type": "condition", "condition": {"attribute": "member_level", "op": "eq", "value": "gold"}}


@pytest.fixture
def audience(shop, world):
    return services.create_audience(
        world.operator, brand=shop.brand, name="油皮近访客", expression=EXPRESSION
    )


def numbers(audience) -> list[int]:
    return list(audience.snapshots.order_by("number").values_list("number", flat=True))


# ---------------------------------------------------------------------------
# Computation state


def test_a_refresh_bumps_the_pending_version_and_ends_calculating(world, audience):
    assert audience.pending_version == 0
    services.refresh(audience, "manual", world.operator)
    audience.refresh_from_db()
    assert audience.pending_version == 1
    assert not audience.is_calculating and audience.calculation_started_at is not None


def test_a_superseded_queued_refresh_stops_at_once(audience, django_capture_on_commit_callbacks):
    with mock.patch.object(tasks.refresh_audience, "apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            first = services.enqueue_refresh(audience, RefreshTrigger.SCHEDULE)
            second = services.enqueue_refresh(audience, RefreshTrigger.SCHEDULE)
    assert (first, second) == (1, 2)
    assert [call.kwargs["args"] for call in send.call_args_list] == [
        (audience.pk, "schedule", 1),
        (audience.pk, "schedule", 2),
    ]
    assert send.call_args.kwargs["queue"] == "default"
    # the older request gives way; the newer one refreshes; running it again is harmless
    assert tasks.refresh_audience(audience.pk, "schedule", 1)["snapshot"] is None
    assert tasks.refresh_audience(audience.pk, "schedule", 2)["snapshot"] == 2
    assert tasks.refresh_audience(audience.pk, "schedule", 2)["snapshot"] == 3
    assert numbers(audience) == [1, 2, 3]


def test_a_refresh_overtaken_while_it_ran_writes_nothing(shop, audience):
    real = services.select

    def slow_select(brand, expression):
        selection = real(brand, expression)
        services.enqueue_refresh(audience)  # a newer request arrives meanwhile
        return selection

    with (
        mock.patch.object(services, "select", slow_select),
        mock.patch.object(tasks.refresh_audience, "apply_async"),
    ):
        assert services.refresh(audience, "schedule") is None
    audience.refresh_from_db()
    assert numbers(audience) == [1]
    assert audience.pending_version == 2 and audience.is_calculating  # the newer one will finish it


def test_failures_are_counted_and_cleared(shop, world, audience):
    TagComputation.objects.filter(tag=shop.churn).delete()  # its result is gone
    assert services.refresh(audience, "schedule") is None
    assert services.refresh(audience, "recompute") is None
    audience.refresh_from_db()
    assert audience.errors_calculating == 2 and not audience.is_calculating
    assert "yimei_visit_churn_risk" in audience.last_error
    assert audience.last_error_at is not None  # the computation state every computed thing carries
    store_result(shop.churn, churn([2, 4, 9]))
    assert services.refresh(audience, "schedule").number == 2
    audience.refresh_from_db()
    assert (audience.errors_calculating, audience.last_error) == (0, "")


def test_a_manual_refresh_raises_what_went_wrong(shop, world, audience):
    from django.core.exceptions import ValidationError

    TagComputation.objects.filter(tag=shop.churn).delete()
    with pytest.raises(ValidationError, match="yimei_visit_churn_risk"):
        services.refresh(audience, "manual", world.operator)
    assert Audience.objects.get(pk=audience.pk).errors_calculating == 1


def test_lookalike_audiences_are_not_refreshed(shop, world, audience):
    lookalike = Audience.objects.create(
        name="相似人群",
        brand=shop.brand,
        business_line=shop.brand.business_line,
        kind=AudienceKind.LOOKALIKE,
        seed=audience,
        refresh_every_hours=1,
    )
    assert services.refresh(lookalike, "schedule") is None
    assert lookalike not in services.due_for_refresh(timezone.now() + dt.timedelta(days=1))
    from tagportal.core.exceptions import Conflict

    with pytest.raises(Conflict, match="lookalike"):
        services.refresh(lookalike, "manual", world.operator)


# ---------------------------------------------------------------------------
# Recomputed tags refresh the audiences that use them


def test_results_updated_refreshes_the_audiences_using_the_tags(
    shop, world, audience, django_capture_on_commit_callbacks
):
    recent_only = services.create_audience(world.operator, brand=shop.brand, name="近访", expression=RECENT)
    manual_only = services.create_audience(
        world.operator, brand=shop.brand, name="手动", expression=OILY, refresh_on_recompute=False
    )
    store_result(shop.churn, churn([2, 3, 4, 9]))
    with django_capture_on_commit_callbacks(execute=True):
        results_updated.send(sender=TagComputation, brand_id=shop.brand.pk, tag_ids=[shop.churn.pk])
    snapshot = audience.snapshots.order_by("-number").first()
    assert (snapshot.number, snapshot.trigger, snapshot.size, snapshot.left) == (
        2,
        RefreshTrigger.RECOMPUTE,
        1,
        1,
    )
    assert numbers(recent_only) == [1]  # does not read churn
    assert numbers(manual_only) == [1]

    with django_capture_on_commit_callbacks(execute=True):
        results_updated.send(sender=TagComputation, brand_id=world.other_brand.pk, tag_ids=[shop.churn.pk])
    assert numbers(audience) == [1, 2]  # another brand's results


def test_a_computation_refreshes_the_audiences_reading_its_tags(
    shop, world, django_capture_on_commit_callbacks
):
    """End to end: the engine computes a rule tag, stores it, sends ``results_updated``
    on commit, and the audience reading it gets a "recompute" snapshot."""
    vip = TagFactory(
        brand=shop.brand,
        category=world.category,
        code="yimei_visit_vip",
        name="金卡会员",
        value_type="boolean",
        values=[],
        definition=VIP,
    )
    publish_tag(vip)

    def frames(gold):
        ids = list(range(1, 11))
        profiles = pd.DataFrame(
            {"oneid": ids, "member_level": ["gold" if i in gold else "silver" for i in ids]}
        )
        events = pd.DataFrame(
            {
                "oneid": pd.Series([], dtype="int64"),
                "time": pd.Series([], dtype="datetime64[ns, UTC]"),
                "type": pd.Series([], dtype="object"),
            }
        )
        orders = pd.DataFrame(
            {
                "oneid": pd.Series([], dtype="int64"),
                "time": pd.Series([], dtype="datetime64[ns, UTC]"),
                "amount": pd.Series([], dtype="float64"),
            }
        )
        return profiles, events, orders

    with django_capture_on_commit_callbacks(execute=True):
        engine.compute_brand(shop.brand, frames=frames({1, 2, 3}), as_of=AS_OF)
    gold = services.create_audience(
        world.operator,
        brand=shop.brand,
        name="金卡油皮",
        expression={"all": [{"tag": "yimei_visit_vip", "op": "eq", "value": True}, OILY]},
    )
    assert sorted(services.members(gold)) == [1, 2, 3]

    with django_capture_on_commit_callbacks(execute=True):
        engine.compute_brand(shop.brand, frames=frames({2, 3, 4, 5}), as_of=AS_OF)
    snapshot = gold.snapshots.order_by("-number").first()
    assert (snapshot.number, snapshot.trigger) == (2, RefreshTrigger.RECOMPUTE)
    diff = services.snapshot_diff(snapshot)
    assert (sorted(services.snapshot_members(snapshot)), sorted(diff["joined"]), sorted(diff["left"])) == (
        [2, 3, 4],
        [4],
        [1],
    )


# ---------------------------------------------------------------------------
# Schedule


def test_the_hourly_schedule_is_installed(db):
    task = PeriodicTask.objects.get(name="Refresh audiences due on their schedule")
    assert task.task == "tagportal.audiences.tasks.refresh_due_audiences"
    assert task.enabled and task.queue == "default"
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("5", "*", "Asia/Shanghai")
    assert services.ensure_schedules() == []  # idempotent


def test_refresh_due_audiences_refreshes_what_is_due(
    shop, world, audience, django_capture_on_commit_callbacks
):
    hourly = services.update_audience(world.operator, audience, refresh_every_hours=1)
    Audience.objects.filter(pk=hourly.pk).update(last_calculated_at=timezone.now() - dt.timedelta(hours=2))
    store_result(shop.churn, churn([9]))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.refresh_due_audiences() == 1
    snapshot = hourly.snapshots.order_by("-number").first()
    assert (snapshot.number, snapshot.trigger, snapshot.size, snapshot.joined) == (
        2,
        RefreshTrigger.SCHEDULE,
        3,
        1,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.refresh_due_audiences() == 0  # just refreshed


def test_the_refresh_task_of_a_deleted_audience_does_nothing(db):
    assert tasks.refresh_audience(987654, "schedule")["snapshot"] is None


def test_a_refresh_whose_worker_died_is_cleared_and_requested_again(
    audience, django_capture_on_commit_callbacks
):
    from tagportal.core import claims

    with mock.patch.object(tasks.refresh_audience, "apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            pending = services.enqueue_refresh(audience, RefreshTrigger.SCHEDULE)
        # the worker claimed it, marked it refreshing, and was killed
        killed = claims.acquire(*services.claim_of(audience.pk, RefreshTrigger.SCHEDULE, pending))
        Audience.objects.filter(pk=audience.pk).update(
            is_calculating=True, calculation_started_at=timezone.now()
        )
        audience.refresh_from_db()
        audience.refresh_every_hours = 1
        audience.save()
        assert services.due_for_refresh() == []  # held up while refreshing
        with django_capture_on_commit_callbacks(execute=True):
            assert claims.reap(now=timezone.now() + dt.timedelta(minutes=4)) == [killed.key]
    audience.refresh_from_db()
    assert not audience.is_calculating and "lost" in audience.last_error
    assert audience.pending_version == pending + 1
    assert [c.kwargs["args"] for c in send.call_args_list][-1] == (audience.pk, "schedule", pending + 1)
    # the late redelivery of the killed task does nothing; the requeued one refreshes
    late = tasks.refresh_audience.apply(args=(audience.pk, "schedule", pending)).get()
    assert late["reason"] == "claimed"
    done = tasks.refresh_audience.apply(args=(audience.pk, "schedule", pending + 1)).get()
    assert done["snapshot"] is not None and done["error"] is None
    audience.refresh_from_db()
    assert not audience.is_calculating and audience.errors_calculating == 0
