"""What the benchmarks' smoke tests share: a benchmark script run in a subprocess (away
from the test database, with the environment it is given), a benchmark module loaded from
its file, and whether the servers a benchmark needs answer."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
#: The environment's variables a benchmark run in a subprocess does not inherit: it sets
#: up its own Django, broker and database.
DROPPED = ("CELERY_", "PYTEST_", "DJANGO_")


def environment(dropped: tuple[str, ...] = DROPPED, **extra: str) -> dict:
    """This process's environment without the variables starting with ``dropped``, with ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    env.update(extra)
    return env


def run_benchmark(
    script: str, *args: str, env: dict | None = None, timeout: float = 600, tail: int = 3000
) -> subprocess.CompletedProcess:
    """``benchmarks/<script>`` run with ``args`` in a subprocess from the project's root
    (``env``: :func:`environment` unless given); fails the test, quoting the last ``tail``
    characters of its stderr, unless it exits 0. Answers the finished process."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=ROOT,
        env=environment() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-tail:]
    return done


def load_benchmark(name: str) -> ModuleType:
    """The module of ``benchmarks/<name>.py``, loaded from its file as ``benchmark_<name>``
    (registered in :data:`sys.modules`: dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def unreachable(postgres: str, redis: str | None = None) -> str | None:
    """Why the PostgreSQL server ``postgres`` (and the Redis ``redis``, if given) cannot
    be reached, or None when they answer."""
    try:
        import psycopg

        psycopg.connect(postgres, connect_timeout=2).close()
        if redis:
            import redis as redis_client

            redis_client.Redis.from_url(redis, socket_connect_timeout=2).ping()
    except Exception as exc:
        return str(exc)
    return None
