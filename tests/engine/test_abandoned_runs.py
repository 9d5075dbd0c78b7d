"""Recovering the runs of dead workers (simulated: a claim held by nobody, the clock
moved past its heartbeat): the run is recorded abandoned, its tags stop calculating and
are requested again; a late redelivery records nothing; the store of a brand run is all
or nothing, and a redelivered merge records no second success."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.utils import timezone

from tagportal.core import claims
from tagportal.core.choices import ClaimStatus
from tagportal.core.models import WorkClaim
from tagportal.engine import services, tasks
from tagportal.engine.models import RunStatus, TagComputation, TagRun
from tests.engine.test_compute import AS_OF, FRAMES, make_frames, stored
from tests.engine.test_compute import tags as tags  # the fixture
from tests.engine.test_tasks import frames_from_profiles as frames_from_profiles  # the fixture


def later(minutes: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(minutes=minutes)


def statuses(pending: int) -> list[str]:
    return sorted(TagRun.objects.filter(pending_version=pending).values_list("status", flat=True))


def killed_while_computing(brand, pending: int, part: str = "whole", partitions: int = 1) -> WorkClaim:
    """What a worker killed mid-run leaves: tags calculating, a claim nobody renews."""
    plan = services.plan_compute(brand, None, pending, partitions)
    return claims.acquire(
        tasks.CLAIM_KIND,
        f"engine:{brand.pk}:{pending}:{part}",
        f"engine.brand:{brand.pk}",
        {
            "brand_id": brand.pk,
            "pending_version": pending,
            "tag_ids": sorted(plan.claims),
            "partitions": partitions,
        },
    )


def clean(tags) -> dict:
    return {t.code: stored(t) for t in (tags.vip, tags.gender, tags.visits)}


def test_a_dead_workers_run_is_abandoned_then_computed_again(
    tags, frames_from_profiles, django_capture_on_commit_callbacks
):
    brand = tags.vip.brand
    services.compute_brand(brand, frames=FRAMES)
    expected = clean(tags)
    with mock.patch.object(tasks.compute_brand_task, "apply_async"):
        with django_capture_on_commit_callbacks(execute=True):
            pending = services.enqueue_compute(brand)
    claim = killed_while_computing(brand, pending)
    assert TagComputation.objects.filter(is_calculating=True).count() == 3

    assert claims.reap(now=later(2)) == []  # not yet stale
    with django_capture_on_commit_callbacks(execute=True):
        assert claims.reap(now=later(4)) == [claim.key]

    assert statuses(pending) == [RunStatus.ABANDONED] * 3
    abandoned = TagRun.objects.filter(pending_version=pending).first()
    assert claims.owner() in abandoned.error
    assert statuses(pending + 1) == [RunStatus.SUCCESS] * 3
    assert clean(tags) == expected  # identical to a clean compute
    assert not TagComputation.objects.filter(is_calculating=True).exists()

    # the broker redelivers the killed task an hour later: nothing more is recorded
    runs = TagRun.objects.count()
    result = tasks.compute_brand_task.apply(args=(brand.pk, pending)).get()
    assert result["skipped"] is True
    tasks.merge_and_store.apply(args=([], brand.pk, pending, None)).get()
    assert TagRun.objects.count() == runs
    assert clean(tags) == expected


def test_a_dead_range_of_a_chord_abandons_the_run(
    tags, frames_from_profiles, django_capture_on_commit_callbacks
):
    brand = tags.vip.brand
    with mock.patch.object(tasks.compute_brand_chord, "apply_async"):
        with django_capture_on_commit_callbacks(execute=True):
            pending = services.enqueue_compute(brand, partitions=2)
    claim = killed_while_computing(brand, pending, part="range:0", partitions=2)
    with django_capture_on_commit_callbacks(execute=True):
        assert claims.reap(now=later(4)) == [claim.key]
    assert statuses(pending) == [RunStatus.ABANDONED] * 3
    again = TagRun.objects.filter(pending_version=pending + 1)
    assert {(r.status, r.partitions) for r in again} == {(RunStatus.SUCCESS, 2)} and again.count() == 3
    # the killed range, redelivered late, is not computed again
    frames_from_profiles.reset_mock()
    out = tasks.compute_partition.apply(args=(brand.pk, None, 0, 100, pending)).get()
    assert out["superseded"] and not frames_from_profiles.called


def test_a_run_that_finished_is_left_alone(tags, frames_from_profiles, django_capture_on_commit_callbacks):
    brand = tags.vip.brand
    with django_capture_on_commit_callbacks(execute=True):
        pending = services.enqueue_compute(brand)  # computed at once (eager)
    runs, requested = services.abandon_run(brand.pk, pending, [tags.vip.pk, tags.gender.pk])
    assert runs == [] and requested is None
    assert statuses(pending) == [RunStatus.SUCCESS] * 3


def test_work_abandoned_again_and_again_waits_for_the_schedule(
    tags, settings, django_capture_on_commit_callbacks
):
    settings.TAGPORTAL_CLAIM_MAX_ABANDONED = 0
    brand = tags.vip.brand
    with mock.patch.object(tasks.compute_brand_task, "apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            pending = services.enqueue_compute(brand)
            killed_while_computing(brand, pending)
            claims.reap(now=later(4))
    assert send.call_count == 1  # the first request only
    assert statuses(pending) == [RunStatus.ABANDONED] * 3
    computation = TagComputation.objects.get(tag=tags.vip)
    assert not computation.is_calculating and computation.errors_calculating == 1
    assert services.due_tags(brand) == []  # the back-off after a failure


def test_the_store_of_a_brand_run_is_all_or_nothing(tags):
    brand = tags.vip.brand
    services.compute_brand(brand, frames=FRAMES, as_of=AS_OF)
    before = clean(tags)
    calculated = dict(TagComputation.objects.values_list("tag_id", "last_calculated_at"))
    calls = []
    swap = services._swap

    def dies_on_the_second_tag(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("worker killed")
        return swap(*args, **kwargs)

    later_frames = make_frames(gold=(4, 5))  # other results
    with mock.patch.object(services, "_swap", side_effect=dies_on_the_second_tag), pytest.raises(SystemExit):
        services.compute_brand(brand, frames=later_frames, as_of=AS_OF)
    assert len(calls) == 2
    # the first tag's new result was rolled back with the rest
    assert clean(tags) == before
    assert dict(TagComputation.objects.values_list("tag_id", "last_calculated_at")) == calculated
    assert TagRun.objects.filter(status=RunStatus.SUCCESS).count() == 3  # the first run's only


def test_a_redelivered_merge_records_no_second_success(
    tags, frames_from_profiles, django_capture_on_commit_callbacks
):
    brand = tags.vip.brand
    with django_capture_on_commit_callbacks(execute=True):
        pending = services.enqueue_compute(brand, partitions=2)
    assert statuses(pending) == [RunStatus.SUCCESS] * 3
    ids = sorted(TagRun.objects.filter(pending_version=pending).values_list("tag_id", flat=True))
    part = services.compute_range(brand, ids, 0, services.ONEID_END, pending, as_of=AS_OF).to_json()
    before = clean(tags)
    tasks.merge_and_store.apply(args=([part], brand.pk, pending, ids)).get()
    assert statuses(pending) == [RunStatus.SUCCESS] * 3
    assert clean(tags) == before
    assert not TagComputation.objects.filter(is_calculating=True).exists()
    assert set(WorkClaim.objects.values_list("status", flat=True)) == {ClaimStatus.DONE}
