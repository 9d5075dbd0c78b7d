"""The Celery entry points of the engine, run eagerly (the test settings): queues,
the chord of OneID ranges, retries, the periodic tasks and their registration."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tagportal.engine import services, tasks
from tagportal.engine.models import RunStatus, TagComputation, TagRun
from tests.conftest import client_for
from tests.core.test_background import Blocked
from tests.engine.test_compute import AS_OF, FRAMES, stored
from tests.engine.test_compute import tags as tags  # the fixture

KEYS = ("profiles", "events", "orders")


def small_frames(brand, *, since=None, oneid_range=None) -> dict:
    """The small frames as the profiles app's loader answers: only the range asked for."""
    frames = FRAMES if oneid_range is None else services.slice_frames(FRAMES, *oneid_range)
    return dict(zip(KEYS, frames, strict=True))


@pytest.fixture
def frames_from_profiles():
    """The profiles app's loader answering with the small frames; the engine's adapter
    (spied on) asks it for the OneID range of each partition."""
    from tagportal.profiles import loaders

    with (
        mock.patch.object(loaders, "load_frames", side_effect=small_frames),
        mock.patch.object(services, "load_frames", wraps=services.load_frames) as load,
        mock.patch.object(services, "oneid_bounds", return_value=(1, 200)),
    ):
        yield load


def test_computations_are_sent_to_the_compute_queue(tags, django_capture_on_commit_callbacks):
    with (
        mock.patch.object(tasks.compute_brand_task, "apply_async") as single,
        mock.patch.object(tasks.compute_brand_chord, "apply_async") as chord,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.enqueue_compute(tags.vip.brand)
        services.enqueue_compute(tags.vip.brand, partitions=4)
    assert single.call_args.kwargs["queue"] == chord.call_args.kwargs["queue"] == "compute"
    assert chord.call_args.kwargs["args"][2] == 4
    assert OperationalError in tasks.compute_brand_task.autoretry_for
    assert tasks.compute_brand_task.retry_backoff


def test_enqueue_runs_the_task_after_commit(tags, frames_from_profiles, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        pending = services.enqueue_compute(tags.vip.brand)
    frames_from_profiles.assert_called_once()
    assert TagRun.objects.filter(pending_version=pending, status=RunStatus.SUCCESS).count() == 3
    assert stored(tags.vip)["true"] == [1, 2, 3]


def test_running_a_task_twice_is_safe(tags, frames_from_profiles):
    pending = services.enqueue_compute(tags.vip.brand)
    tasks.compute_brand_task.apply(args=(tags.vip.brand.pk, pending)).get()
    first = {t.code: stored(t) for t in (tags.vip, tags.gender, tags.visits)}
    tasks.compute_brand_task.apply(args=(tags.vip.brand.pk, pending)).get()
    assert {t.code: stored(t) for t in (tags.vip, tags.gender, tags.visits)} == first
    # the run is idempotent in its history too: the repeated delivery records nothing more
    runs = TagRun.objects.filter(pending_version=pending)
    assert sorted(runs.values_list("status", flat=True)) == [RunStatus.SUCCESS] * 3
    assert not TagComputation.objects.filter(is_calculating=True).exists()
    # a new request computes again (and finds no drift)
    pending = services.enqueue_compute(tags.vip.brand)
    tasks.compute_brand_task.apply(args=(tags.vip.brand.pk, pending)).get()
    assert TagComputation.objects.get(tag=tags.vip).psi == 0.0


def test_the_chord_equals_the_unpartitioned_result(
    tags, frames_from_profiles, django_capture_on_commit_callbacks
):
    services.compute_brand(tags.vip.brand, frames=FRAMES, as_of=AS_OF)
    whole = {t.code: stored(t) for t in (tags.vip, tags.gender, tags.visits)}
    whole_numbers = TagComputation.objects.get(tag=tags.visits).number_series()

    with django_capture_on_commit_callbacks(execute=True):
        pending = services.enqueue_compute(tags.vip.brand, partitions=3)

    assert frames_from_profiles.call_count == 3
    ranges = [c.kwargs["oneid_range"] for c in frames_from_profiles.call_args_list]
    assert ranges[0][0] == 0 and ranges[-1][1] == services.ONEID_END
    chord_runs = TagRun.objects.filter(pending_version=pending)
    assert {(r.status, r.partitions) for r in chord_runs} == {(RunStatus.SUCCESS, 3)}
    assert chord_runs.count() == 3
    assert {t.code: stored(t) for t in (tags.vip, tags.gender, tags.visits)} == whole
    assert TagComputation.objects.get(tag=tags.visits).number_series().equals(whole_numbers)
    assert not TagComputation.objects.filter(is_calculating=True).exists()


def test_a_superseded_chord_stores_nothing(tags, frames_from_profiles):
    pending = services.enqueue_compute(tags.vip.brand)
    services.enqueue_compute(tags.vip.brand)  # a newer request
    tasks.compute_brand_chord.apply(args=(tags.vip.brand.pk, pending, 2)).get()
    assert not frames_from_profiles.called
    assert set(TagRun.objects.values_list("status", flat=True)) == {RunStatus.SUPERSEDED}


def test_infrastructure_errors_are_retried_with_backoff(tags):
    from celery.exceptions import Retry

    with mock.patch.object(services, "compute_brand", side_effect=OperationalError("connection lost")):
        with pytest.raises(Retry) as retry:
            tasks.compute_brand_task.apply(args=(tags.vip.brand.pk, 1)).get()
    assert isinstance(retry.value.exc, OperationalError)
    assert 0 <= retry.value.when <= 30  # the first back-off step (with jitter)


def test_other_errors_are_not_retried(tags):
    with mock.patch.object(services, "compute_brand", side_effect=KeyError("bug")) as compute:
        with pytest.raises(KeyError):
            tasks.compute_brand_task.apply(args=(tags.vip.brand.pk, 1)).get()
    assert compute.call_count == 1


def test_a_rule_error_is_a_failed_run_not_a_task_failure(tags, frames_from_profiles):
    from tests.engine.test_compute import break_snapshot

    break_snapshot(tags.gender, {"type": "attribute", "attribute": "shoe_size"})
    pending = services.enqueue_compute(tags.vip.brand)
    result = tasks.compute_brand_task.apply(args=(tags.vip.brand.pk, pending))
    assert result.successful()
    assert result.get()["runs"][tags.gender.code] == RunStatus.FAILED
    assert frames_from_profiles.call_count == 1


def test_schedule_due_computes_requests_due_brands(
    tags, frames_from_profiles, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        requested = tasks.schedule_due_computes.apply().get()
    assert requested == {tags.vip.brand.code: 1}
    assert TagRun.objects.filter(status=RunStatus.SUCCESS).count() == 3
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.schedule_due_computes.apply().get() == {}  # nothing due any more


def test_reset_stuck_runs_task(tags):
    from django.utils import timezone

    TagComputation.objects.create(
        tag=tags.vip, is_calculating=True, calculation_started_at=timezone.now() - services.STUCK_AFTER * 2
    )
    assert tasks.reset_stuck_runs.apply().get() == 1


def test_default_schedules_are_registered_and_editable(db):
    names = [entry["name"] for entry in services.DEFAULT_SCHEDULES]
    # The data migration registered them.
    assert set(PeriodicTask.objects.filter(name__in=names).values_list("task", flat=True)) == {
        "tagportal.engine.tasks.schedule_due_computes",
        "tagportal.engine.tasks.reset_stuck_runs",
    }
    edited = PeriodicTask.objects.get(name=names[0])
    edited.interval = IntervalSchedule.objects.create(every=15, period="minutes")
    edited.save()
    PeriodicTask.objects.filter(name=names[1]).delete()

    call_command("setup_schedules")

    assert PeriodicTask.objects.get(name=names[0]).interval.every == 15  # an admin's edit stays
    restored = PeriodicTask.objects.get(name=names[1])
    assert restored.queue == "default" and restored.interval.every == 30


def test_periodic_task_names_are_registered_tasks():
    from tagportal.celery import app

    for entry in services.DEFAULT_SCHEDULES:
        assert entry["task"] in app.tasks


def test_without_a_broker_a_computation_runs_on_a_thread_after_the_request(
    tags, world, settings, django_capture_on_commit_callbacks
):
    """POST /api/engine/compute/ answers 202 while the computation has not run; it runs
    on a thread, with the brand, version and tags it was asked for."""
    settings.TAGPORTAL_EAGER_IN_THREAD = True
    brand = tags.vip.brand
    blocked = Blocked()
    with (
        mock.patch.object(tasks.compute_brand_task, "apply", blocked),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client_for(world.admin).post("/api/engine/compute/", {"brand": brand.code}, format="json")
    assert response.status_code == 202, response.content
    assert blocked.calls == []  # answered before the computation ran
    blocked.finish("task:tagportal.engine.tasks.compute_brand_task")
    [(thread, args, kwargs)] = blocked.calls
    assert thread.startswith("task:") and args == (brand.pk, response.json()["pending_version"])
    assert tags.vip.pk in kwargs["tag_ids"]
