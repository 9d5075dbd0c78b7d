"""A real Celery worker (prefork, its own process group) SIGKILLed at a named moment —
mid compute, mid store, mid report, mid audience refresh — then a fresh worker and the
reaper: the killed work is recorded abandoned and queued again at once (its claim's
owner is gone) or once its heartbeat is older than TAGPORTAL_CLAIM_STALE_AFTER_S, the
store is never half-written, the results equal a clean compute, nothing stays
calculating, and the broker's late redelivery of the killed message (restored here as
Redis does after its visibility timeout) records nothing more.

The kill lands where the test hook ``TAGPORTAL_TEST_PAUSE_AT`` makes the task sleep.
Needs PostgreSQL and Redis (skipped otherwise, as :mod:`.test_celery_worker`)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from benchmarks import workers as celery_workers
from tagportal.catalog.services import publish_tag
from tagportal.core.choices import ClaimStatus
from tagportal.core.models import WorkClaim
from tagportal.engine import bitmaps as bm
from tagportal.engine import services as engine
from tagportal.engine.models import RunStatus, TagComputation, TagRun, TagValueBitmap

from .test_celery_worker import BASE_DIR, BROKER, QUEUES, _enqueue, _env, _people, _redis

pytestmark = pytest.mark.integration

WAIT_SECONDS = 40
#: The test's workers beat every second and are taken for dead after 4 s without one.
FAST_CLAIMS = {"TAGPORTAL_CLAIM_HEARTBEAT_S": "1", "TAGPORTAL_CLAIM_STALE_AFTER_S": "4"}
REDIS_KEYS = (*QUEUES, "unacked", "unacked_index", "unacked_mutex")


class Workers:
    """Starts workers (each in its own process group) and kills them with SIGKILL."""

    def __init__(self):
        self.started = []

    def start(self, pause_at: str = "") -> subprocess.Popen:
        env = {
            **_env(),
            **FAST_CLAIMS,
            "TAGPORTAL_TEST_PAUSE_AT": pause_at,
            "TAGPORTAL_TEST_PAUSE_SECONDS": "120",
        }
        process = celery_workers.start(
            "tagportal-kill",
            env,
            pool=("--pool=prefork", "--concurrency=1"),
            prefetch_one=False,
            cwd=BASE_DIR,
        )
        self.started.append(process)
        return process

    @staticmethod
    def log(process) -> str:
        return celery_workers.log(process)

    def wait_for(self, process, text: str, count: int = 1) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if self.log(process).count(text) >= count:
                return
            assert process.poll() is None, "the worker stopped:\n" + self.log(process)[-4000:]
            time.sleep(0.2)
        pytest.fail(f"no {text!r} within {WAIT_SECONDS} s:\n" + self.log(process)[-4000:])

    @staticmethod
    def kill(process) -> dt.datetime:
        """SIGKILL to the worker and its pool (the whole process group)."""
        os.killpg(process.pid, signal.SIGKILL)
        killed = timezone.now()
        process.wait(timeout=10)
        return killed

    def stop_all(self):
        for process in self.started:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                    process.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)
            Path(process.log_path).unlink(missing_ok=True)


@pytest.fixture
def workers(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): the worker must see the test database")
    client = _redis()
    if client is None:
        pytest.skip(f"needs Redis at {BROKER}")
    client.delete(*REDIS_KEYS)
    pool = Workers()
    try:
        yield pool
    finally:
        pool.stop_all()
        client.delete(*REDIS_KEYS)


def _reaping(found):
    """``found`` checked after a run of the reaper, as beat runs it every minute (here at
    each look): a heartbeat that was not yet stale at the first run is caught later."""

    def check():
        _reap()
        return found()

    return check


def _reap() -> str:
    """The periodic reaper, as beat runs it (here: its command, with the workers' settings)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "reap_claims"],
        cwd=BASE_DIR,
        env={**_env(), **FAST_CLAIMS},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _redeliver() -> None:
    """What Redis does after the visibility timeout: put the killed worker's unacknowledged
    messages back on their queues."""
    from kombu import Connection

    with Connection(BROKER, transport_options={"visibility_timeout": 0}) as conn:
        conn.default_channel.qos.restore_visible(num=100)


def _send(name: str, args: list, queue: str) -> None:
    """Queue a task through the broker (the test process itself runs tasks eagerly)."""
    from celery import Celery

    app = Celery("tagportal-test-sender", broker=BROKER, set_as_current=False)
    try:
        app.send_task(name, args=args, queue=queue)
    finally:
        app.close()


def _wait(condition, what: str, process, workers: Workers):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        assert process.poll() is None, "the worker stopped:\n" + workers.log(process)[-4000:]
        time.sleep(0.3)
    pytest.fail(f"{what} not within {WAIT_SECONDS} s:\n" + workers.log(process)[-4000:])


def _brand_with_tags(code: str):
    from tests.engine.test_compute import BUCKETS, VIP, VISITS
    from tests.factories import BrandFactory, BusinessLineFactory, CategoryFactory, TagFactory

    brand = BrandFactory(code=f"{code}brand", business_line=BusinessLineFactory(code=code))
    category = CategoryFactory(code="visit")
    prefix = f"{code}_visit"
    tags = [
        TagFactory(brand=brand, category=category, code=f"{prefix}_vip", value_type="boolean", values=[], definition=VIP),
        TagFactory(
            brand=brand, category=category, code=f"{prefix}_visits", value_type="number", values=BUCKETS,
            definition=VISITS,
        ),
    ]  # fmt: skip
    for tag in tags:
        publish_tag(tag)
    _people(brand)
    return brand, tags


def _stored(brand) -> dict:
    rows = TagValueBitmap.objects.filter(computation__tag__brand=brand).select_related("computation__tag")
    return {(row.computation.tag.code, row.value): sorted(bm.deserialize(bytes(row.bitmap))) for row in rows}


def _statuses(brand, pending) -> list[str]:
    return sorted(
        TagRun.objects.filter(brand=brand, pending_version=pending).values_list("status", flat=True)
    )


def _abandoned_claim(subject_prefix: str) -> WorkClaim | None:
    return WorkClaim.objects.filter(key__startswith=subject_prefix, status=ClaimStatus.ABANDONED).first()


def _report(what: str, killed: dt.datetime, claim: WorkClaim, done: dt.datetime) -> None:
    print(
        f"\n{what}: kill → requeue {(claim.finished_at - killed).total_seconds():.1f} s, "
        f"kill → done {(done - killed).total_seconds():.1f} s"
    )


def _killed_compute(workers: Workers, code: str, pause_at: str, *extra: str, move_owner: bool = False):
    brand, tags = _brand_with_tags(code)
    engine.compute_brand(brand)  # a clean compute, in this process: the reference
    clean = _stored(brand)
    calculated = dict(
        TagComputation.objects.filter(tag__brand=brand).values_list("tag_id", "last_calculated_at")
    )

    first = workers.start(pause_at=pause_at)
    pending = _enqueue(brand.code, *extra)
    workers.wait_for(first, f"pause point {pause_at} reached")
    killed = workers.kill(first)

    # what the kill left: tags calculating, no run recorded yet, the previous results whole
    assert TagComputation.objects.filter(tag__brand=brand, is_calculating=True).count() == len(tags)
    assert _statuses(brand, pending) == []
    assert _stored(brand) == clean
    now = dict(TagComputation.objects.filter(tag__brand=brand).values_list("tag_id", "last_calculated_at"))
    assert now == calculated, "a tag of the killed run was stored: the store is mixed"
    if move_owner:  # as if the worker ran on another machine: only its heartbeat tells
        WorkClaim.objects.filter(status=ClaimStatus.RUNNING).update(owner_node="another-machine")

    fresh = workers.start()
    _reap()  # the fresh worker reaps at its start too; whichever comes first records it
    _wait(
        _reaping(lambda: _abandoned_claim(f"engine:{brand.pk}:{pending}:")),
        "the abandoned claim",
        fresh,
        workers,
    )
    again = _wait(
        lambda: (
            TagRun.objects.filter(brand=brand, pending_version__gt=pending, status=RunStatus.SUCCESS).count()
            >= len(tags)
            and TagRun.objects.filter(brand=brand, pending_version__gt=pending).first()
        ),
        "the computation requested again",
        fresh,
        workers,
    )
    claim = _abandoned_claim(f"engine:{brand.pk}:{pending}:")
    _report(f"{pause_at} {' '.join(extra)}".strip(), killed, claim, again.finished_at)

    assert _statuses(brand, pending) == [RunStatus.ABANDONED] * len(tags)
    assert _statuses(brand, again.pending_version) == [RunStatus.SUCCESS] * len(tags)
    assert _stored(brand) == clean  # identical to a clean compute
    assert not TagComputation.objects.filter(tag__brand=brand, is_calculating=True).exists()
    assert not WorkClaim.objects.filter(status=ClaimStatus.RUNNING).exists()

    # the broker's redelivery of the killed message, an hour later: nothing more recorded
    runs = TagRun.objects.filter(brand=brand).count()
    _redeliver()
    workers.wait_for(fresh, "succeeded", count=Workers.log(fresh).count("succeeded") + 1)
    time.sleep(1)
    assert TagRun.objects.filter(brand=brand).count() == runs
    assert _statuses(brand, pending) == [RunStatus.ABANDONED] * len(tags)
    assert _stored(brand) == clean
    assert not TagComputation.objects.filter(tag__brand=brand, is_calculating=True).exists()
    return claim, killed


def test_a_worker_killed_mid_compute(workers):
    _killed_compute(workers, "kcomp", "engine.compute")


def test_a_worker_killed_mid_store_of_a_chord(workers):
    """The kill lands after the first tag was written in the store's transaction."""
    _killed_compute(workers, "kstore", "engine.store", "--partitions", "2", move_owner=True)


def test_a_worker_killed_mid_report(workers):
    from unittest import mock

    from tagportal.governance.choices import ReportKind, ReportStatus
    from tagportal.governance.models import Report
    from tagportal.governance.reports import service

    first = workers.start(pause_at="governance.report")
    with mock.patch(
        "tagportal.governance.tasks.run_report.delay",
        side_effect=lambda pk: _send("tagportal.governance.tasks.run_report", [pk], "default"),
    ):
        report = service.request_report(None, ReportKind.USAGE, run_now=False)
    workers.wait_for(first, "pause point governance.report reached")
    killed = workers.kill(first)
    report.refresh_from_db()
    assert report.status == ReportStatus.RUNNING

    # the owner's machine is "another" here: recovery by the stopped heartbeat alone
    WorkClaim.objects.filter(status=ClaimStatus.RUNNING).update(owner_node="another-machine")
    fresh = workers.start()
    time.sleep(4)
    _reap()
    done = _wait(
        _reaping(lambda: Report.objects.filter(pk=report.pk, status=ReportStatus.SUCCESS).first()),
        "the report",
        fresh,
        workers,
    )
    claim = _abandoned_claim(f"report:{report.pk}:")
    assert claim is not None
    _report("governance.report (heartbeat)", killed, claim, done.finished_at)
    assert done.runs == 1 and done.error == ""
    assert list(WorkClaim.objects.filter(subject=f"report:{report.pk}").values_list("status", flat=True)) == [
        ClaimStatus.DONE,
        ClaimStatus.ABANDONED,
    ]
    # may be requested again at once
    with mock.patch("tagportal.governance.tasks.run_report.delay") as delay:
        assert service.request_report(None, ReportKind.USAGE, run_now=False).status == ReportStatus.PENDING
    delay.assert_called_once()


def test_a_worker_killed_mid_audience_refresh(workers):
    from unittest import mock

    from tagportal.audiences import services as audiences
    from tagportal.audiences.models import Audience
    from tagportal.core.models import User

    brand, tags = _brand_with_tags("kaud")
    engine.compute_brand(brand)
    admin = User.objects.create_superuser("kaud-admin", "kaud@example.com", "x")
    audience = audiences.create_audience(
        admin, brand=brand, name="金卡会员", expression={"tag": tags[0].code, "op": "eq", "value": True}
    )
    members = sorted(bm.deserialize(bytes(audience.snapshots.order_by("-number").first().bitmap)))
    assert members == [1, 2, 30]

    first = workers.start(pause_at="audiences.refresh")
    with mock.patch(
        "tagportal.audiences.tasks.refresh_audience.apply_async",
        side_effect=lambda args, queue: _send(
            "tagportal.audiences.tasks.refresh_audience", list(args), queue
        ),
    ):
        pending = audiences.enqueue_refresh(audience)
    workers.wait_for(first, "pause point audiences.refresh reached")
    killed = workers.kill(first)
    audience.refresh_from_db()
    assert audience.is_calculating

    fresh = workers.start()
    _reap()
    done = _wait(
        _reaping(
            lambda: (
                Audience.objects.filter(pk=audience.pk, is_calculating=False, pending_version__gt=pending)
                .exclude(last_calculated_at=audience.last_calculated_at)
                .first()
            )
        ),
        "the refresh requested again",
        fresh,
        workers,
    )
    claim = _abandoned_claim(f"audience:{audience.pk}:{pending}")
    assert claim is not None
    _report("audiences.refresh", killed, claim, done.last_calculated_at)
    latest = done.snapshots.order_by("-number").first()
    assert latest.number == 2 and sorted(bm.deserialize(bytes(latest.bitmap))) == members
    assert "lost" in claim.note and done.last_error == ""
    assert not WorkClaim.objects.filter(status=ClaimStatus.RUNNING).exists()  # nothing holds up the schedule
