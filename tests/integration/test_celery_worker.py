"""End to end through a real Celery worker: a computation requested with the
``compute_tags --enqueue`` command goes through Redis to a ``celery worker``
subprocess, which reads the brand's people from PostgreSQL through the profiles
app, computes and stores the results that this test then reads back.

Needs PostgreSQL (the worker must see the test database, so SQLite in memory cannot
work) and Redis; skipped otherwise. ``TAGPORTAL_TEST_BROKER_URL`` (or
``CELERY_INTEGRATION_BROKER``) overrides the broker (default ``redis://127.0.0.1:6379/15``)."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from benchmarks import workers
from tagportal.catalog.services import publish_tag
from tagportal.engine import bitmaps as bm
from tagportal.engine.models import RunStatus, TagComputation, TagRun, TagValueBitmap

pytestmark = pytest.mark.integration

BROKER = (
    os.environ.get("TAGPORTAL_TEST_BROKER_URL")
    or os.environ.get("CELERY_INTEGRATION_BROKER")
    or "redis://127.0.0.1:6379/15"
)
QUEUES = workers.QUEUES
WAIT_SECONDS = 60
BASE_DIR = Path(settings.BASE_DIR)


def _redis():
    try:
        import redis

        client = redis.Redis.from_url(BROKER, socket_connect_timeout=2)
        client.ping()
        return client
    except Exception:
        return None


def _env() -> dict:
    return workers.environment(
        workers.database_url(settings.DATABASES["default"]),
        BROKER,
        "tagportal-integration-test-key-" + "0123456789abcdef" * 3,
    )


@pytest.fixture
def worker(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): the worker must see the test database")
    client = _redis()
    if client is None:
        pytest.skip(f"needs Redis at {BROKER}")
    client.delete(*QUEUES)  # no leftovers of an earlier run
    process = workers.start("tagportal-test", _env(), prefetch_one=False, cwd=BASE_DIR)
    try:
        yield process
    finally:
        workers.stop([process], timeout=20)
        client.delete(*QUEUES)


def _worker_log(process) -> str:
    return workers.log(process)[-4000:]


def _enqueue(brand_code: str, *extra: str) -> int:
    done = subprocess.run(
        [sys.executable, "manage.py", "compute_tags", "--brand", brand_code, "--enqueue", *extra],
        cwd=BASE_DIR,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # the requested version is the last number of the message (in whichever language it is)
    return int(re.findall(r"\d+", done.stdout)[-1])


def _wait_for_runs(process, pending: int, count: int) -> list[TagRun]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        runs = list(TagRun.objects.filter(pending_version=pending).select_related("tag"))
        if len(runs) >= count:
            return runs
        assert process.poll() is None, "the worker stopped:\n" + _worker_log(process)
        time.sleep(0.5)
    pytest.fail(f"no {count} runs of request {pending} within {WAIT_SECONDS} s:\n" + _worker_log(process))


def _people(brand):
    from tagportal.profiles.models import Customer, Event, Order

    now = dt.datetime.now(dt.UTC)
    customers = {
        oneid: Customer.objects.create(
            brand=brand,
            oneid=oneid,
            attributes={"member_level": "gold" if oneid in (1, 2, 30) else "silver", "gender": "female"},
        )
        for oneid in (1, 2, 3, 10, 20, 30)
    }
    visits = {1: 3, 3: 1, 20: 2, 30: 4}
    for oneid, count in visits.items():
        for k in range(count):
            Event.objects.create(
                brand=brand,
                customer=customers[oneid],
                client_id=f"e-{oneid}-{k}",
                type="store_visit",
                channel="store",
                time=now - dt.timedelta(days=k + 1),
            )
    Order.objects.create(brand=brand, customer=customers[10], client_id="o-1", time=now, amount=99)


def test_a_real_worker_computes_and_stores_results(worker):
    from tests.engine.test_compute import BUCKETS, VIP, VISITS
    from tests.factories import BrandFactory, BusinessLineFactory, CategoryFactory, TagFactory

    line = BusinessLineFactory(code="itest")
    brand = BrandFactory(code="itestbrand", business_line=line)
    category = CategoryFactory(code="visit")
    vip = TagFactory(
        brand=brand,
        category=category,
        code="itest_visit_vip",
        value_type="boolean",
        values=[],
        definition=VIP,
    )
    visits = TagFactory(
        brand=brand, category=category, code="itest_visit_visits", value_type="number", values=BUCKETS,
        definition=VISITS,
    )  # fmt: skip
    publish_tag(vip)
    publish_tag(visits)
    _people(brand)

    pending = _enqueue(brand.code)
    runs = _wait_for_runs(worker, pending, 2)

    assert {run.tag.code: run.status for run in runs} == {
        vip.code: RunStatus.SUCCESS,
        visits.code: RunStatus.SUCCESS,
    }, [run.error for run in runs]
    assert {run.population for run in runs} == {6}
    stored = {
        (row.computation.tag.code, row.value): sorted(bm.deserialize(bytes(row.bitmap)))
        for row in TagValueBitmap.objects.select_related("computation__tag")
    }
    assert stored[(vip.code, "true")] == [1, 2, 30]
    assert stored[(visits.code, "high")] == [1, 20, 30]
    assert stored[(visits.code, "low")] == [2, 3, 10]
    numbers = TagComputation.objects.get(tag=visits).number_series()
    assert numbers.to_dict() == {1: 3.0, 2: 0.0, 3: 1.0, 10: 0.0, 20: 2.0, 30: 4.0}

    # The same through a chord of two OneID ranges (merged by OR-ing bitmaps).
    pending = _enqueue(brand.code, "--partitions", "2")
    runs = _wait_for_runs(worker, pending, 2)
    assert {(run.status, run.partitions) for run in runs} == {(RunStatus.SUCCESS, 2)}, [r.error for r in runs]
    again = {
        (row.computation.tag.code, row.value): sorted(bm.deserialize(bytes(row.bitmap)))
        for row in TagValueBitmap.objects.select_related("computation__tag")
    }
    assert again == stored
    assert "tagportal.engine.tasks.compute_partition" in workers.log(worker)
    assert TagComputation.objects.get(tag=vip).psi == 0.0
    assert not TagComputation.objects.filter(is_calculating=True).exists()


def test_a_real_worker_computes_an_industry_template(worker):
    """The medical-aesthetics template on generated demo people, computed by the worker."""
    from tagportal.catalog.models import Tag
    from tagportal.catalog.services import apply_template
    from tagportal.profiles.generator import load_demo
    from tests.factories import BrandFactory, BusinessLineFactory

    brand = BrandFactory(code="itestyimei", business_line=BusinessLineFactory(code="itestym"))
    apply_template(brand, "medical_aesthetics")
    load_demo(brand, people=300, seed=3, industry="medical_aesthetics")
    # manual tags and the algorithm tags models fill (definition manual) are not computed
    computed = Tag.objects.filter(brand=brand, status="published").exclude(definition__type="manual")
    expected = computed.count()
    assert expected >= 45

    pending = _enqueue(brand.code)
    runs = _wait_for_runs(worker, pending, expected)

    failed = {run.tag.code: run.error for run in runs if run.status != RunStatus.SUCCESS}
    assert failed == {}
    assert {run.population for run in runs} == {300}
    assert sum(1 for run in runs if run.coverage) >= expected * 0.8  # most tags hold values for someone
    for computation in TagComputation.objects.filter(tag__brand=brand, value_type="boolean"):
        counts = dict(computation.bitmaps.values_list("value", "count"))
        assert counts.get("true", 0) + counts.get("false", 0) == 300, computation.tag.code
