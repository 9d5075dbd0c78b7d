"""Smoke test of benchmarks/deliveries.py at a tiny size: every kind that sends messages
goes through a real Celery worker killed once mid-run, and the results JSON has the keys
the issue asks for, with nothing lost.

The benchmark creates its own database on the PostgreSQL server and uses two Redis
databases of its own, so it runs in a subprocess, away from the test database."""

import json
import os

import pytest

from tests.benchmark_helpers import run_benchmark, unreachable

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = "redis://127.0.0.1:6379"
REDIS_DBS = "9,10"
REQUIRED = {
    "deliveries", "channels", "worker_kills", "lost", "duplicated", "rate_limit_violations",
    "per_second", "p99_queue_to_sent_ms", "in_doubt", "per_kind", "machine",
}  # fmt: skip


def test_every_kind_is_delivered_through_a_killed_worker(tmp_path):
    why = unreachable(SERVER, f"{REDIS}/9")
    if why:
        pytest.fail(f"needs PostgreSQL at {SERVER} and Redis at {REDIS}: {why}")
    output = tmp_path / "deliveries.json"
    args = ["--deliveries", "150", "--kills", "1", "--robot-keys", "2", "--robot-per-key", "3"]
    args += ["--waves", "2", "--backlog", "100", "--timeout", "240", "--quiet", "--output", str(output)]
    args += ["--postgres-db", f"tagportal_bench_deliveries_smoke_{os.getpid()}", "--redis-dbs", REDIS_DBS]
    run_benchmark("deliveries.py", *args)

    results = json.loads(output.read_text(encoding="utf-8"))
    assert REQUIRED <= set(results)
    assert results["deliveries"] == 150 and results["finished"] is True
    assert len(results["channels"]) == 7
    assert results["worker_kills"] == 1
    assert results["lost"] == 0 and results["unfinished"] == 0
    assert results["rate_limit_violations"] == 0
    for kind, row in results["per_kind"].items():
        assert row["deliveries"] > 0, kind
        assert (
            row["received"] + row["states"].get("failed", 0) + row["states"].get("dead", 0)
            >= row["deliveries"]
        ), kind
