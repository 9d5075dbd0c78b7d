"""The scale benchmark end to end at a tiny size: COPY load, the COPY read against the
ORM read, two Celery workers sharing a chord, the slice against one process, audiences
on the stored bitmaps and the planted OneID cases.

Needs PostgreSQL (``DATABASE_URL``) and Redis, as the other integration tests."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import connection

from tests.benchmark_helpers import environment, run_benchmark
from tests.integration.test_celery_worker import BROKER, _redis

pytestmark = pytest.mark.integration


def test_the_scale_benchmark_runs_at_a_tiny_size(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    if _redis() is None:
        pytest.skip(f"needs Redis at {BROKER}")
    output = tmp_path / "scale.json"
    name = f"{settings.DATABASES['default']['NAME']}_scale"[:60]
    run_benchmark(
        "scale.py", "--people", "2000", "--events-per-person", "5", "--partitions", "4", "--workers", "2",
        "--skip-duckdb", "--audience-runs", "3", "--planted-people", "200", "--database", name,
        "--broker", BROKER, "--output", str(output),
        env=environment(dropped=("PYTEST_", "DJANGO_")), timeout=120, tail=4000,
    )  # fmt: skip
    results = json.loads(output.read_text())
    assert results["people"] == 2000 and results["events"] > 5_000 and results["partitions"] == 4
    assert results["full_scale"] is False
    assert results["all_runs_succeeded"] and results["identical_results"]
    assert sorted(results["ranges_per_worker"]) != [0, 4] and sum(results["ranges_per_worker"]) == 4
    assert results["read"]["identical_frames"]
    assert 0 < results["peak_rss_mb_per_worker"] <= 2048
    assert results["audience_p50_ms"] > 0 and results["oneid_planted"] == 1.0
    assert results["duckdb_ratio_1m"] is None and results["load_s"] > 0
