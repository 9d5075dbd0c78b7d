"""Smoke test of benchmarks/reports.py at a tiny size, in the test database: every kind
of report is built twice with the same data, the planted duplicates are suggested for
merging, every dashboards page answers, and the results JSON has the keys the issue asks
for."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "tags", "usage_rows", "people_per_brand", "reports", "pages", "baselines", "targets",
    "meets_targets", "python", "django", "database", "cpus", "date", "machine",
}  # fmt: skip

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("benchmark_reports", ROOT / "benchmarks" / "reports.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_report_and_page_at_a_tiny_size(tmp_path):
    bench = load_benchmark()
    results = bench.run(tags=60, days=10, people=500, repeat=1, sample=10, quiet=True, throwaway=False)
    written = json.loads(bench.write(results, tmp_path / "reports.json").read_text(encoding="utf-8"))

    assert REQUIRED <= set(written)
    assert written["tags"] == 60
    assert written["people_per_brand"] == 500
    assert written["usage_rows"] > 0
    assert written["targets"] == {"report_s": 60, "page_s": 1}
    assert isinstance(written["meets_targets"], bool)

    assert set(written["reports"]) == {"usage", "cold", "merge", "activity"}
    for kind, report in written["reports"].items():
        assert report["status"] == "success", (kind, report["error"])
        assert report["rows"] > 0, kind
        assert report["identical_second_run"] is True, kind
        assert report["seconds"] > 0 and report["seconds_second_run"] > 0

    # each kind of planted duplicate (name, definition, members) is suggested for merging
    found = written["reports"]["merge"]["planted_found"]
    assert set(found) == {"name", "definition", "members"}
    for kind, counts in found.items():
        assert counts["planted"] >= 1, kind
        assert counts["found"] == counts["planted"], (kind, counts)

    paths = {page["path"] for page in written["pages"].values()}
    assert paths == set(bench.PAGES)
    assert {page["viewer"] for page in written["pages"].values()} == {"admin", "operator"}
    for key, page in written["pages"].items():
        assert page["status"] == 200, key
        assert page["median_s"] > 0, key

    assert set(written["baselines"]) == {"usage", "cold", "merge", "activity"}
    for kind, baseline in written["baselines"].items():
        assert baseline["naive_s"] > 0 and baseline["ours_s"] > 0, kind
        ratio = baseline["naive_s"] / baseline["ours_s"]
        assert baseline["speedup"] == pytest.approx(ratio, rel=0.05, abs=0.01), kind
