"""Evaluating in forked processes over OneID ranges gives the one-process result."""

import importlib.util
from pathlib import Path

import pytest

from tagportal.engine import parallel, services

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_compute_p", ROOT / "benchmarks" / "compute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.django_db
def test_processes_give_the_one_process_result(bench, monkeypatch):
    specs, _realtime = bench.tag_specs()
    frames = bench.engine_frames(bench.generate_data(1500, 6, 4))
    keyed = dict(enumerate(specs))
    monkeypatch.setattr(parallel, "MIN_PEOPLE", 0)

    one = services.evaluate_partition(keyed, frames, bench.END)
    three = parallel.evaluate(keyed, frames, bench.END, processes=3)

    assert three.population == one.population == 1500
    assert three.errors == one.errors == {}
    assert set(three.outcomes) == set(one.outcomes)
    for key, outcome in one.outcomes.items():
        assert three.outcomes[key].bitmaps == outcome.bitmaps, specs[key].code
        if outcome.numbers is not None:
            assert three.outcomes[key].numbers.sort_index().equals(outcome.numbers.sort_index()), specs[
                key
            ].code


def test_small_inputs_and_pool_processes_stay_in_process(monkeypatch):
    monkeypatch.setattr(parallel, "can_fork", lambda: False)
    called = []
    monkeypatch.setattr(services, "evaluate_partition", lambda *args: called.append(args) or "in-process")
    import pandas as pd

    assert (
        parallel.evaluate({1: object()}, {}, None, population=pd.Index(range(10**6)), processes=2)
        == "in-process"
    )
    assert len(called) == 1
