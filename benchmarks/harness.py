"""What every benchmark shares: Django set-up, a throwaway database, the machine it ran
on, memory, timing and the results file.

A benchmark script starts with ::

    ROOT = Path(__file__).resolve().parent.parent
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import harness

and writes its figures with :func:`write` to ``benchmarks/results/<name>.json``.

Timings are seconds from :func:`time.perf_counter`; they are rounded only when they are
stored, and a ratio of two timings (a speed-up) is computed from the unrounded ones
(:func:`speedup`):

>>> speedup(1.0, 0.25)
4.0
>>> speedup(1.0, 0) is None
True
>>> percentiles_ms([0.001, 0.002, 0.003])["p50_ms"]
2.0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagportal.settings_test")


def log(message: str, quiet: bool = False) -> None:
    """Progress on stderr (stdout is the results table)."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def setup_django() -> None:
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


@contextmanager
def throwaway_database(
    name: str, workdir: Path | str | None = None, *, migrate: bool = True, fast: bool = False
):
    """A database of its own for Django, destroyed at the end: a SQLite file in
    ``workdir`` (the test settings' in-memory one without it), or on the server of
    ``DATABASE_URL`` a database called ``name`` (never the configured one).

    ``migrate=False`` makes the tables straight from the models; ``fast=True`` lets
    SQLite skip fsync (call :func:`durable` before anything is measured)."""
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    test = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        if workdir is not None:
            test["NAME"] = str(Path(workdir) / f"{name}.sqlite3")
        if fast:
            connection.settings_dict.setdefault("OPTIONS", {})["init_command"] = "PRAGMA synchronous = OFF"
    else:
        test["NAME"] = name
    if not migrate:
        test["MIGRATE"] = False
    setup_test_environment(debug=False)
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield connection
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


def durable(connection) -> None:
    """Back to the database's usual settings before anything is measured: SQLite
    reconnects without the ``synchronous = OFF`` of a fast fill; PostgreSQL analyses."""
    if connection.vendor == "sqlite":
        connection.settings_dict.get("OPTIONS", {}).pop("init_command", None)
        connection.close()
    elif connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


# the machine ------------------------------------------------------------------------
def load_average() -> list[float] | None:
    """Other work on the machine: the load average over 1, 5 and 15 minutes."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _proc_field(path: str, prefix: str, separator: str | None = None) -> str | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(separator, 1)[1].strip()
    except OSError:
        pass
    return None


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def machine(connection=None, load_at_start: list[float] | None = None) -> dict:
    """The machine and the software a benchmark ran on: platform, processor, cores,
    memory, load average (at the start and now), the versions of Python, numpy, pandas,
    DuckDB and Django, and the database of ``connection`` when one is given."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": _proc_field("/proc/cpuinfo", "model name", ":")
        or platform.processor()
        or platform.machine(),
        "cpus": os.cpu_count(),
    }
    try:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    memory = _proc_field("/proc/meminfo", "MemTotal:")
    if memory:
        info["memory_mb"] = round(int(memory.split()[0]) / 1024)
    info["load_average_at_start"] = load_at_start
    info["load_average"] = load_average()
    for module in ("numpy", "pandas", "duckdb"):
        info[module] = _version(module)
    import django

    info["django"] = django.get_version()
    if connection is not None:
        info["database"] = connection.vendor
        if connection.vendor == "sqlite":
            import sqlite3

            info["sqlite"] = sqlite3.sqlite_version
        elif connection.vendor == "postgresql":
            connection.ensure_connection()
            info["postgresql"] = connection.pg_version
    return info


# memory -----------------------------------------------------------------------------
def reset_peak() -> bool:
    """Reset the kernel's peak RSS of this process (Linux: ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def process_peak_rss_mb() -> float:
    """Peak RSS of the process since it started."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 / (1024 if sys.platform == "darwin" else 1)


def peak_rss_mb() -> float:
    """Peak RSS in MB since the last :func:`reset_peak` (``VmHWM``), else since start."""
    peak = _proc_field("/proc/self/status", "VmHWM:")
    return int(peak.split()[0]) / 1024 if peak else process_peak_rss_mb()


def current_rss_mb() -> float:
    """This process's resident memory now (Linux ``VmRSS``), else its peak so far."""
    now = _proc_field("/proc/self/status", "VmRSS:")
    return int(now.split()[0]) / 1024 if now else process_peak_rss_mb()


# timing -----------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(seconds, result)`` of one call."""
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """``(wall seconds, CPU seconds of this process, result)`` of one call: on a busy
    machine the CPU time shows the work done, the wall time also the wait for a core."""
    cpu = time.process_time()
    started = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - started
    return wall, time.process_time() - cpu, out


def repeat(fn: Callable[[], Any], runs: int, warmups: int = 1) -> list[float]:
    """Seconds of each of ``runs`` calls of ``fn``, after ``warmups`` calls left out."""
    for _ in range(warmups):
        fn()
    return [timed(fn)[0] for _ in range(runs)]


def median(seconds: Iterable[float]) -> float:
    return statistics.median(seconds)


def percentiles_ms(seconds: Iterable[float], digits: int | None = 4) -> dict:
    """``p50_ms``, ``p99_ms``, ``mean_ms``, ``max_ms`` (milliseconds, rounded to
    ``digits``) and ``samples`` of timings given in seconds."""
    import numpy as np

    values = np.asarray(list(seconds), dtype="float64") * 1000

    def ms(value) -> float:
        return float(value) if digits is None else round(float(value), digits)

    return {
        "p50_ms": ms(np.percentile(values, 50)),
        "p99_ms": ms(np.percentile(values, 99)),
        "mean_ms": ms(values.mean()),
        "max_ms": ms(values.max()),
        "samples": len(values),
    }


def speedup(slow: float | None, fast: float | None, digits: int = 2) -> float | None:
    """How many times faster ``fast`` is than ``slow``, from the unrounded timings,
    rounded to ``digits``; ``None`` without a positive ``fast``."""
    if slow is None or not fast or fast <= 0:
        return None
    return round(slow / fast, digits)


# the results file ---------------------------------------------------------------------
def results_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def add_output_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """``--output`` (also ``--out``): where the results go, ``benchmarks/results/<name>.json``."""
    parser.add_argument(
        "--output", "--out", dest="output", default=str(results_path(name)), help="the results JSON file"
    )


def write(results: dict, path: Path | str) -> Path:
    """The results as indented JSON (Chinese kept as is; dates and the like as text)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    return out
