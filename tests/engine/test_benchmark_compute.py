"""Smoke test of benchmarks/compute.py at a tiny size: the engine and the hand-written
DuckDB SQL agree on every tag value, and the results JSON has the keys the issue asks for."""

import json

import pytest

from tests.benchmark_helpers import load_benchmark

pytest.importorskip("duckdb")

REQUIRED = {
    "people", "events", "tags", "recompute_s", "duckdb_s", "peak_rss_mb", "realtime_p50_ms",
    "realtime_p99_ms", "oneid_s", "identical_results", "machine", "targets", "passed",
}  # fmt: skip


@pytest.fixture(scope="module")
def compute():
    return load_benchmark("compute")


@pytest.mark.slow
def test_the_sql_and_the_engine_give_the_same_members(compute, tmp_path):
    output = tmp_path / "compute.json"
    results = compute.main(
        ["--people", "2000", "--events-per-person", "10", "--realtime-samples", "50", "--output", str(output)]
    )

    assert results["identical_results"] is True, results["mismatches"]
    assert results["tag_errors"] == {}
    assert results["tags"] >= 45  # the pack's rule tags (model-filled tags and their readers left out)
    kinds = results["tag_kinds"]["definition"]
    assert {"attribute", "metric", "bucket", "cases", "condition", "preference"} <= set(kinds)
    assert results["tag_kinds"]["composite"] >= 1
    assert results["realtime"]["consistent_with_batch"] is True
    assert results["oneid"]["links"] == 3 * results["people"]

    written = json.loads(output.read_text(encoding="utf-8"))
    assert REQUIRED <= set(written)
    assert {"platform", "python", "cpus", "memory_mb"} <= set(written["machine"])
    assert written["people"] == 2000
    assert isinstance(written["identical_results"], bool)


def test_every_sql_statement_is_found(compute):
    statements = compute.sql_statements()
    assert "WITH people AS" in statements[-1]  # the query of the tag values comes last
    assert all(s.strip() for s in statements)


def test_a_mismatch_is_reported(compute):
    """The comparison is not vacuous: a changed member shows up as a mismatch."""
    compute.harness.setup_django()
    specs, _realtime = compute.tag_specs()
    frames = compute.engine_frames(compute.generate_data(300, 5, 2))
    engine = compute.run_engine(specs, frames, compute.END)
    duck = compute.run_duckdb(frames, compute.END)
    assert compute.compare(engine, duck, specs)["identical"]

    table = duck["table"]
    table.loc[table.index[0], "visited_today"] = not table.loc[table.index[0], "visited_today"]
    table.loc[table.index[1], "spend_365d"] += 1
    mismatches = compute.compare(engine, duck, specs)["mismatches"]
    assert set(mismatches) == {"visited_today", "spend_365d"}
