"""Claims on running work: one holder at a time, heartbeats, and the reaper that finds
the claims of dead workers (clock moved past the heartbeat; a process of this machine
that is gone) and hands them to the handler of their kind, at most a few times an hour."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from tagportal.core import claims
from tagportal.core.choices import ClaimStatus
from tagportal.core.models import WorkClaim

KIND = "test.work"


@pytest.fixture
def handled(monkeypatch):
    calls = []
    monkeypatch.setitem(claims.HANDLERS, KIND, lambda claim, requeue: calls.append((claim.key, requeue)))
    return calls


def later(minutes: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(minutes=minutes)


def test_one_holder_at_a_time_and_a_finished_unit_may_run_again(db):
    first = claims.acquire(KIND, "unit:1", "thing:1", {"id": 1})
    assert first.status == ClaimStatus.RUNNING and first.owner == claims.owner()
    assert claims.acquire(KIND, "unit:1", "thing:1") is None  # held and alive
    claims.finish(first)
    again = claims.acquire(KIND, "unit:1", "thing:1")
    assert again is not None and again.pk == first.pk and again.status == ClaimStatus.RUNNING


def test_hold_marks_done_or_failed(db):
    with claims.hold(KIND, "unit:ok", "thing:1") as claim:
        assert claim is not None
    assert WorkClaim.objects.get(key="unit:ok").status == ClaimStatus.DONE
    with pytest.raises(RuntimeError), claims.hold(KIND, "unit:bad", "thing:1"):
        raise RuntimeError("断开")
    failed = WorkClaim.objects.get(key="unit:bad")
    assert failed.status == ClaimStatus.FAILED and "断开" in failed.note
    with claims.hold(KIND, "unit:bad", "thing:1") as claim:  # a retry claims it again
        assert claim is not None


def test_a_claim_without_heartbeat_is_abandoned_and_handed_over(db, handled, settings):
    settings.TAGPORTAL_CLAIM_STALE_AFTER_S = 180
    claim = claims.acquire(KIND, "unit:2", "thing:2", {"id": 2})
    assert claims.reap(now=later(2)) == []  # the heartbeat is recent enough
    assert handled == []
    assert claims.reap(now=later(4)) == ["unit:2"]
    assert handled == [("unit:2", True)]
    claim.refresh_from_db()
    assert claim.status == ClaimStatus.ABANDONED and claim.finished_at is not None
    assert claims.owner() in claim.note
    assert claims.reap(now=later(5)) == []  # once
    # the broker's late redelivery of the same unit does not run it
    assert claims.acquire(KIND, "unit:2", "thing:2") is None


def test_the_heartbeat_keeps_a_slow_claim_alive(db, settings):
    settings.TAGPORTAL_CLAIM_STALE_AFTER_S = 180
    claim = claims.acquire(KIND, "unit:3", "thing:3")
    WorkClaim.objects.filter(pk=claim.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=10))
    # what the heartbeat thread does every TAGPORTAL_CLAIM_HEARTBEAT_S
    heartbeat = claims.Heartbeat(claim.pk, claim.owner, 3600)
    assert heartbeat.beat() and not heartbeat.lost
    assert claims.reap() == []
    WorkClaim.objects.filter(pk=claim.pk).update(status=ClaimStatus.ABANDONED)
    assert not heartbeat.beat() and heartbeat.lost  # reaped meanwhile: the task may stop


def test_a_redelivery_takes_over_a_dead_claim_before_the_reaper(db, handled):
    claim = claims.acquire(KIND, "unit:4", "thing:4")
    WorkClaim.objects.filter(pk=claim.pk).update(
        owner="elsewhere:1", heartbeat_at=timezone.now() - dt.timedelta(hours=1)
    )
    again = claims.acquire(KIND, "unit:4", "thing:4")
    assert again is not None and again.owner == claims.owner()
    assert claims.reap() == [] and handled == []


@pytest.mark.skipif(not claims.node(), reason="needs /proc")
def test_a_gone_process_of_this_machine_is_reaped_at_once(db, handled):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    claim = claims.acquire(KIND, "unit:5", "thing:5")
    WorkClaim.objects.filter(pk=claim.pk).update(owner=f"{claims.owner().rsplit(':', 1)[0]}:{child.pid}")
    assert claims.reap() == ["unit:5"]  # no need to wait for the heartbeat to age
    assert handled == [("unit:5", True)]
    # another machine's process with the same id is only judged by its heartbeat
    other = claims.acquire(KIND, "unit:6", "thing:6")
    WorkClaim.objects.filter(pk=other.pk).update(owner=f"x:{child.pid}", owner_node="another-machine")
    assert claims.reap() == []


def test_work_abandoned_again_and_again_is_no_longer_requeued(db, handled, settings):
    settings.TAGPORTAL_CLAIM_MAX_ABANDONED = 2
    for n in range(3):
        claims.acquire(KIND, f"unit:7:{n}", "thing:7")
        claims.reap(now=later(4 + n))
    assert handled == [("unit:7:0", True), ("unit:7:1", True), ("unit:7:2", False)]


def test_a_failing_handler_leaves_the_claim_for_the_next_reap(db, monkeypatch):
    def broken(claim, requeue):
        raise RuntimeError("handler failed")

    monkeypatch.setitem(claims.HANDLERS, KIND, broken)
    claim = claims.acquire(KIND, "unit:8", "thing:8")
    assert claims.reap(now=later(4)) == []
    claim.refresh_from_db()
    assert claim.status == ClaimStatus.RUNNING


def test_old_finished_claims_are_deleted(db):
    claim = claims.acquire(KIND, "unit:9", "thing:9")
    claims.finish(claim)
    claims.reap(now=later(60 * 24 * 6))
    assert WorkClaim.objects.filter(pk=claim.pk).exists()
    claims.reap(now=later(60 * 24 * 8))
    assert not WorkClaim.objects.filter(pk=claim.pk).exists()


def test_the_pause_point_only_pauses_when_named(settings, monkeypatch):
    slept = []
    monkeypatch.setattr(claims.time, "sleep", slept.append)
    settings.TAGPORTAL_TEST_PAUSE_AT = ""
    claims.pause_point("engine.store")
    settings.TAGPORTAL_TEST_PAUSE_AT = "engine.compute, engine.store"
    settings.TAGPORTAL_TEST_PAUSE_SECONDS = 7
    claims.pause_point("engine.store")
    claims.pause_point("governance.report")
    assert slept == [7]


def test_the_reaper_runs_every_minute_and_from_the_command(db, handled, capsys):
    task = PeriodicTask.objects.get(task="tagportal.core.tasks.reap_abandoned_claims")
    assert (task.interval.every, task.interval.period, task.queue) == (1, "minutes", "default")
    claim = claims.acquire(KIND, "unit:10", "thing:10")
    WorkClaim.objects.filter(pk=claim.pk).update(heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    call_command("reap_claims")
    assert "unit:10" in capsys.readouterr().out
    assert handled == [("unit:10", True)]
