"""The helpers every benchmark shares (benchmarks/harness.py): ratios from unrounded
timings, percentiles, warm-ups left out, the results file and the machine record."""

import json

import pytest

from benchmarks import harness


def test_a_speedup_comes_from_the_unrounded_times():
    # rounded first (0.01 / 0.013) this would be 0.77; from the measured times it is 0.73
    assert harness.speedup(0.0096, 0.0131) == 0.73
    assert harness.speedup(3.0, 0.25, digits=1) == 12.0
    assert harness.speedup(1.0, 0) is None
    assert harness.speedup(None, 1.0) is None


def test_percentiles_are_in_milliseconds():
    stats = harness.percentiles_ms([0.001, 0.002, 0.003, 0.004, 0.1])
    assert stats["p50_ms"] == 3.0
    assert stats["max_ms"] == 100.0
    assert stats["mean_ms"] == 22.0
    assert stats["samples"] == 5
    assert 4.0 < stats["p99_ms"] < 100.0
    assert harness.percentiles_ms([0.0012345678], digits=None)["p50_ms"] == pytest.approx(1.2345678)
    assert harness.median([0.3, 0.1, 0.2]) == 0.2


def test_warm_up_calls_are_made_and_left_out():
    calls = []
    timings = harness.repeat(lambda: calls.append(1), runs=3, warmups=2)
    assert len(calls) == 5
    assert len(timings) == 3
    assert all(isinstance(t, float) and t >= 0 for t in timings)

    seconds, result = harness.timed(lambda: "done")
    wall, cpu, again = harness.timed_cpu(lambda: 42)
    assert (result, again) == ("done", 42)
    assert seconds >= 0 and wall >= 0 and cpu >= 0


def test_results_are_written_as_json_with_chinese_kept(tmp_path):
    out = harness.write({"name": "到店次数", "day": harness.ROOT}, tmp_path / "deeper" / "x.json")
    text = out.read_text(encoding="utf-8")
    assert "到店次数" in text and text.endswith("\n")
    assert json.loads(text) == {"name": "到店次数", "day": str(harness.ROOT)}
    assert harness.results_path("compute") == harness.ROOT / "benchmarks" / "results" / "compute.json"


def test_the_output_option_defaults_to_the_results_folder():
    import argparse

    parser = argparse.ArgumentParser()
    harness.add_output_argument(parser, "reports")
    assert parser.parse_args([]).output == str(harness.RESULTS / "reports.json")
    assert parser.parse_args(["--out", "x.json"]).output == "x.json"


@pytest.mark.django_db
def test_the_machine_record_names_the_software_and_the_database():
    from django.db import connection

    info = harness.machine(connection, load_at_start=[1.0, 0.5, 0.25])
    expected = {"platform", "python", "processor", "cpus", "memory_mb", "load_average", "numpy", "pandas"}
    assert expected | {"django", "database"} <= set(info)
    assert info["database"] == connection.vendor
    assert info["load_average_at_start"] == [1.0, 0.5, 0.25]
    assert info["cpus"] >= 1 and info["memory_mb"] > 0
