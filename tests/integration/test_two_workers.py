"""Two Celery worker processes share one chord: a brand's computation split into OneID
ranges is evaluated partly by each, and what the chord stores equals what one process
computing everybody at once stores.

Needs PostgreSQL and Redis, as the other integration tests (skipped otherwise)."""

from __future__ import annotations

import re
import time

import pytest
from django.db import connection

from benchmarks import workers
from tagportal.engine import bitmaps as bm
from tagportal.engine import services
from tagportal.engine.models import RunStatus, TagComputation, TagValueBitmap
from tests.integration.test_celery_worker import BASE_DIR, BROKER, QUEUES, _enqueue, _env, _redis

pytestmark = pytest.mark.integration

PARTITIONS = 8
SUCCEEDED = re.compile(r"Task tagportal\.engine\.tasks\.compute_partition\[[^\]]+\] succeeded")


def _log(process) -> str:
    return workers.log(process)


@pytest.fixture
def two_workers(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL): the workers must see the test database")
    client = _redis()
    if client is None:
        pytest.skip(f"needs Redis at {BROKER}")
    client.delete(*QUEUES)
    started = [workers.start(name, _env(), cwd=BASE_DIR) for name in ("first", "second")]
    try:
        workers.wait_ready(started, timeout=60)
        yield started
    finally:
        workers.stop(started, timeout=20)
        client.delete(*QUEUES)


def _stored(brand) -> dict:
    bitmaps = {
        (row.computation.tag.code, row.value): sorted(bm.deserialize(bytes(row.bitmap)))
        for row in TagValueBitmap.objects.filter(computation__tag__brand=brand).select_related(
            "computation__tag"
        )
    }
    numbers = {
        c.tag.code: c.number_series().round(9).to_dict()
        for c in TagComputation.objects.filter(tag__brand=brand, value_type="number").select_related("tag")
    }
    return {"bitmaps": bitmaps, "numbers": numbers}


def test_two_workers_share_a_chord_and_store_the_single_process_result(two_workers):
    from tagportal.catalog.models import Tag
    from tagportal.catalog.services import apply_template
    from tagportal.engine.models import TagRun
    from tagportal.profiles.generator import load_demo
    from tests.factories import BrandFactory, BusinessLineFactory

    brand = BrandFactory(code="itesttwo", business_line=BusinessLineFactory(code="itesttwo"))
    apply_template(brand, "medical_aesthetics")
    load_demo(brand, people=1000, seed=5, industry="medical_aesthetics")
    computed = Tag.objects.filter(brand=brand, status="published").exclude(definition__type="manual").count()

    single = services.compute_brand(brand)  # one process, everybody at once
    assert single.runs and all(run.status == RunStatus.SUCCESS for run in single.runs)
    expected = _stored(brand)
    TagValueBitmap.objects.filter(computation__tag__brand=brand).delete()

    pending = _enqueue(brand.code, "--partitions", str(PARTITIONS))
    deadline = time.monotonic() + 120
    while TagRun.objects.filter(pending_version=pending).count() < computed:
        workers.check_running(two_workers)
        assert time.monotonic() < deadline, "\n\n".join(_log(w)[-3000:] for w in two_workers)
        time.sleep(0.5)

    runs = TagRun.objects.filter(pending_version=pending)
    assert {(run.status, run.partitions) for run in runs} == {(RunStatus.SUCCESS, PARTITIONS)}
    shares = [len(SUCCEEDED.findall(_log(w))) for w in two_workers]
    assert sum(shares) == PARTITIONS
    assert all(share >= 1 for share in shares), shares  # both took part in the chord
    assert _stored(brand) == expected
