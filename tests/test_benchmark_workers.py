"""The Celery worker launcher shared by the scale benchmark and the integration tests
(benchmarks/workers.py): the workers' environment, and how a stopped worker, one not
ready in time and the stop are handled (here with stand-in processes; the integration
tests start real workers)."""

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from benchmarks import workers


def stand_in(code: str) -> subprocess.Popen:
    """A process with a log, as :func:`workers.start` makes them."""
    log = tempfile.NamedTemporaryFile("w+", prefix="stand-in-", suffix=".log", delete=False)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    process.log_path = log.name
    return process


def test_the_environment_names_the_database_and_the_broker(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://elsewhere/1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    monkeypatch.setenv("TAGPORTAL_KEEP", "kept")
    url = workers.database_url({"USER": "pg", "PASSWORD": "p@ss", "HOST": "db", "PORT": "", "NAME": "t"})
    assert url == "postgres://pg:p%40ss@db/t"
    env = workers.environment(url, "redis://127.0.0.1:6379/13", "k" * 50)
    assert env["CELERY_BROKER_URL"] == env["CELERY_RESULT_BACKEND"] == "redis://127.0.0.1:6379/13"
    assert env["DATABASE_URL"] == url and env["CELERY_TASK_ALWAYS_EAGER"] == "false"
    assert env["DJANGO_SETTINGS_MODULE"] == "tagportal.settings" and env["SECRET_KEY"] == "k" * 50
    assert env["TAGPORTAL_KEEP"] == "kept" and "PYTEST_XDIST_WORKER" not in env


def test_a_ready_worker_is_waited_for_and_stopped_with_its_log_removed():
    ready = stand_in("import time; print('celery@host ready.', flush=True); time.sleep(60)")
    try:
        workers.wait_ready([ready], timeout=30, poll=0.05)
        workers.check_running([ready])
    finally:
        workers.stop([ready], timeout=10)
    assert ready.returncode is not None and ready.returncode != 0  # terminated, not finished
    assert not Path(ready.log_path).exists()


def test_a_stopped_worker_or_one_never_ready_is_reported():
    gone = stand_in("print('no broker: 断开', flush=True)")
    gone.wait(timeout=30)
    with pytest.raises(RuntimeError, match=r"(?s)a worker stopped:\n.*断开"):
        workers.wait_ready([gone], timeout=30, poll=0.05)
    slow = stand_in("import time; time.sleep(60)")
    try:
        with pytest.raises(RuntimeError, match="did not start"):
            workers.wait_ready([slow], timeout=0.3, poll=0.05)
    finally:
        workers.stop([gone, slow], timeout=10)
    assert not Path(gone.log_path).exists() and not Path(slow.log_path).exists()
