"""Smoke test of benchmarks/journeys.py at a tiny size: two worker processes advance one
journey through its wait, branch, holdout and two sends, one worker is killed with
SIGKILL mid-run, and the results JSON has the figures the issue asks for, with no cap,
quiet-hour or duplicate violation.

The benchmark creates its own database on the PostgreSQL server, so it runs in a
subprocess, away from the test database; without PostgreSQL the test is skipped."""

import json
import os

import pytest

from tests.benchmark_helpers import run_benchmark, unreachable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRED = {
    "instances", "advanced_per_s", "tick_p50_ms", "tick_p99_ms", "cap_violations",
    "quiet_hour_violations", "holdout_share_error", "duplicated_sends", "peak_rss_mb", "machine",
}  # fmt: skip


def test_a_tiny_journey_run_through_a_killed_worker(tmp_path):
    why = unreachable(SERVER)
    if why:
        pytest.skip(f"needs PostgreSQL at {SERVER}: {why}")
    output = tmp_path / "journeys.json"
    args = ["--people", "400", "--limit", "25", "--kill-at", "0.2", "--timeout", "300", "--quiet"]
    args += ["--postgres-db", f"tagportal_bench_journeys_smoke_{os.getpid()}", "--output", str(output)]
    run_benchmark("journeys.py", *args)

    results = json.loads(output.read_text(encoding="utf-8"))
    assert REQUIRED <= set(results)
    assert results["instances"] == 400
    assert len(results["kills"]) == 1
    assert results["cap_violations"] == 0 and results["cap_violations_deliveries"] == 0
    assert results["quiet_hour_violations"] == 0
    assert results["duplicated_sends"] == 0
    # everyone left: the 10 % without the tag's value and the 10 % with "b" at the branch
    assert set(results["states"]) <= {"done", "exited"}
    assert sum(results["states"].values()) == 400
    treated = results["holdout"]["treatment"]
    assert results["deliveries"] == {"sms_aliyun": treated, "webhook": treated}
    assert results["holdout"]["holdout"] + treated == 320
    assert results["advanced_per_s"] > 0 and results["tick_p99_ms"] >= results["tick_p50_ms"]
