"""Smoke test of benchmarks/audiences.py at a tiny size: the engine, the API, DuckDB (and
PostgreSQL when ``DATABASE_URL`` points at one) count every expression alike, and the
results JSON has the keys the issue asks for.

The benchmark builds its own throwaway database, so it runs in a subprocess, away from
the test database of this session."""

import json
import os

import pytest

from tests.benchmark_helpers import load_benchmark, run_benchmark

pytest.importorskip("duckdb")

REQUIRED = {
    "people", "expressions", "engine_p50_ms", "engine_p99_ms", "api_p50_ms", "api_p99_ms",
    "duckdb_p50_ms", "postgres_p50_ms", "identical_results", "targets", "meets_targets",
    "speedup_vs_duckdb", "speedup_vs_postgres", "load_seconds", "machine", "date", "per_expression",
}  # fmt: skip
ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


@pytest.mark.slow
def test_every_store_gives_the_same_counts(tmp_path):
    output = tmp_path / "audiences.json"
    args = ["--people", "1500", "--events-per-person", "5", "--output", str(output)]
    args += ["--engine-runs", "5", "--cold-runs", "1", "--api-runs", "2", "--duckdb-runs", "2"]
    if ON_POSTGRES:
        args += ["--postgres-runs", "1", "--postgres-db", f"tagportal_bench_audiences_smoke_{os.getpid()}"]
    else:
        args.append("--no-postgres")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tagportal.settings_test"}
    done = run_benchmark("audiences.py", *args, env=env)
    assert "identical results" in done.stdout

    results = json.loads(output.read_text(encoding="utf-8"))
    assert REQUIRED <= set(results)
    assert results["identical_results"] is True, results["differing_expressions"]
    assert results["people"] == 1500
    assert results["expressions"] == 20 == len(results["per_expression"])
    assert results["tag_errors"] == {}
    assert all(3 <= n <= 8 for n in results["conditions_per_expression"])
    for row in results["per_expression"]:
        assert len(set(row["counts"].values())) == 1, row
        assert row["engine_members_equal_duckdb_members"], row["name"]
    assert any(row["counts"]["engine"] for row in results["per_expression"])  # not all empty
    # timings are there; how fast they are is the benchmark's business, not the test's
    for key in ("engine_p50_ms", "api_p50_ms", "duckdb_p50_ms"):
        assert isinstance(results[key], float) and results[key] >= 0, key
    assert isinstance(results["speedup_vs_duckdb"], float) and results["speedup_vs_duckdb"] >= 0
    if ON_POSTGRES:
        assert isinstance(results["postgres_p50_ms"], float) and results["postgres_p50_ms"] >= 0
        assert isinstance(results["speedup_vs_postgres"], float) and results["speedup_vs_postgres"] >= 0
        assert set(results["per_expression"][0]["counts"]) == {"engine", "api", "duckdb", "postgres"}
    else:
        assert results["postgres_p50_ms"] is None
        assert results["speedup_vs_postgres"] is None
        assert results["meets_targets"]["speedup_vs_postgres"] is None


def test_the_translations_agree_with_the_engine():
    """The DuckDB translation of every expression selects the engine's members on a few
    hundred random people (booleans, enums, bucketed and plain numbers, people without
    a value); a changed expression does not."""
    import duckdb
    import numpy as np
    import pandas as pd
    from pyroaring import BitMap

    from tagportal.audiences.store import evaluate
    from tagportal.engine import bitmaps as bm

    audiences = load_benchmark("audiences")
    rng = np.random.default_rng(7)
    oneids = np.arange(1, 401, dtype="int64")
    infos = audiences.pack_tag_infos()
    tags = {}
    for name, info in infos.items():
        held = oneids[rng.random(len(oneids)) < 0.8]  # a fifth without a value
        if info.value_type == "number":
            numbers = pd.Series(rng.integers(0, 60, len(held)).astype("float64"), index=held)
            numbers.iloc[:3] = [25.0, 45.0, 30.0]  # on the bounds of "between"
            maps = {}
            if info.values:  # buckets: a slice of the people with a number each
                for i, part in enumerate(np.array_split(held, len(info.values))):
                    maps[info.values[i]] = bm.bitmap(part)
            tags[name] = {"value_type": "number", "bitmaps": maps, "numbers": numbers}
            continue
        codes = ("true", "false") if info.value_type == "boolean" else info.values
        picks = rng.integers(0, len(codes), len(held))
        maps = {code: bm.bitmap(held[picks == i]) for i, code in enumerate(codes)}
        tags[name] = {"value_type": info.value_type, "bitmaps": maps, "numbers": None}
    results = {name: audiences.tag_result(i, name, tag) for i, (name, tag) in enumerate(tags.items(), 1)}
    people = bm.bitmap(oneids)
    con = duckdb.connect()
    con.register("wide", audiences.wide_table(tags, oneids))

    def members(expression):
        where = audiences.duck_predicate(expression, tags)
        ids = con.execute(f"SELECT oneid FROM wide WHERE {where} ORDER BY oneid").fetchnumpy()["oneid"]
        return BitMap(ids.astype("uint32"))

    chosen = 0
    for item in audiences.checked_expressions():
        expected = evaluate(item["expression"], results, people)
        assert members(item["expression"]) == expected, item["name"]
        chosen += bool(expected)
    assert chosen >= 5
    flipped = {"not": audiences.EXPRESSIONS[0][1]}
    assert members(flipped) == people - evaluate(audiences.EXPRESSIONS[0][1], results, people)
    assert members(flipped) != evaluate(audiences.EXPRESSIONS[0][1], results, people)
