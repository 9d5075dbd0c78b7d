"""Real Celery worker processes, for the benchmarks and the integration tests: their
environment (the database and broker given, eager tasks off), their start (each in a
session of its own, its output in a log file), waiting until they are ready, and their
stop (SIGTERM, a warm shutdown; SIGKILL when it does not come).

A started process carries ``log_path``; :func:`log` reads it, :func:`stop` removes it.
Importable by the benchmark scripts (``from benchmarks import workers``, after
:mod:`benchmarks.harness`'s path set-up) and by the tests.

>>> database_url({"USER": "postgres", "HOST": "", "PORT": 5432, "NAME": "tag portal"})
'postgres://postgres@127.0.0.1:5432/tag%20portal'
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
QUEUES = ("compute", "default")
#: The environment's variables a worker does not inherit: they would name another
#: broker, the test runner's state or other settings.
DROPPED = ("CELERY_", "PYTEST_", "DJANGO_")


def database_url(db: Mapping) -> str:
    """``DATABASE_URL`` of a PostgreSQL connection's ``settings_dict``."""
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}"


def environment(database: str, broker: str, secret_key: str) -> dict:
    """This process's environment for a worker on ``database`` (a ``DATABASE_URL``) and
    ``broker`` (also the result backend: chords need one)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(DROPPED)}
    env.update(
        DJANGO_SETTINGS_MODULE="tagportal.settings",
        DATABASE_URL=database,
        DATABASE_CONN_MAX_AGE="0",  # no connection outlives a task: a throwaway database is dropped at the end
        CELERY_BROKER_URL=broker,
        CELERY_RESULT_BACKEND=broker,
        CELERY_TASK_ALWAYS_EAGER="false",
        SECRET_KEY=secret_key,
        DEBUG="false",
        LOG_LEVEL="INFO",
    )
    return env


def start(
    name: str,
    env: Mapping[str, str],
    *,
    queues: Sequence[str] = QUEUES,
    pool: Sequence[str] = ("--pool=solo",),
    prefetch_one: bool = True,
    log_prefix: str = "celery-",
    cwd: Path = ROOT,
) -> subprocess.Popen:
    """A ``celery worker`` on ``queues``, named ``name-<random>@<host>``, in a session of
    its own (``os.killpg(process.pid, …)`` reaches its pool too)."""
    log_file = tempfile.NamedTemporaryFile("w+", prefix=f"{log_prefix}{name}-", suffix=".log", delete=False)
    command = [
        sys.executable, "-m", "celery", "-A", "tagportal", "worker",
        "-Q", ",".join(queues), *pool, "--loglevel=INFO",
        *(["--prefetch-multiplier=1"] if prefetch_one else []),
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"{name}-{uuid.uuid4().hex[:8]}@%h",
    ]  # fmt: skip
    try:
        process = subprocess.Popen(
            command, cwd=cwd, env=dict(env), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        log_file.close()  # the worker has its own descriptor
    process.log_path = log_file.name
    return process


def log(process: subprocess.Popen) -> str:
    return Path(process.log_path).read_text(errors="replace")


def check_running(processes: Iterable[subprocess.Popen]) -> None:
    """Raises (quoting the end of its log) when one of the workers stopped."""
    for process in processes:
        if process.poll() is not None:
            raise RuntimeError("a worker stopped:\n" + log(process)[-3000:])


def wait_ready(processes: Sequence[subprocess.Popen], timeout: float = 60, poll: float = 0.2) -> None:
    """Until every worker logged that it is ready; raises when one stopped or the time ran out."""
    deadline = time.monotonic() + timeout
    while not all("ready." in log(p) for p in processes):
        check_running(processes)
        if time.monotonic() > deadline:
            raise RuntimeError(
                "the workers did not start:\n" + "\n\n".join(log(p)[-2000:] for p in processes)
            )
        time.sleep(poll)


def stop(processes: Iterable[subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM to the running ones (a warm shutdown), SIGKILL to those not gone within
    ``timeout`` seconds; their logs removed (a failure message has quoted their end)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        Path(process.log_path).unlink(missing_ok=True)
