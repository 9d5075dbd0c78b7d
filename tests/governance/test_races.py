"""Two stewards approve-and-apply the same change request at the same moment, 20 times,
on a file SQLite database with real threads (see race_run.py, run in a subprocess: the
test database is in memory, one per connection). Exactly one wins each time, the other
gets 409 — never a 500 "database is locked" — and exactly one approval and one version
are recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.db import OperationalError
from rest_framework.test import APIRequestFactory

from tagportal.core.api import exception_handler
from tagportal.core.middleware import DatabaseErrorPageMiddleware

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 20


def test_simultaneous_approvals_one_wins_the_other_gets_409(tmp_path):
    env = {**os.environ, "RACE_ROUNDS": str(ROUNDS), "DATABASE_URL": ""}
    done = subprocess.run(
        [sys.executable, "-m", "tests.governance.race_run", str(tmp_path / "race.sqlite3")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["transaction_mode"] == "IMMEDIATE"
    assert len(result["rounds"]) == ROUNDS
    for n, round_ in enumerate(result["rounds"]):
        assert round_["codes"] == [200, 409], (n, round_)
        assert round_["approvals"] == 1 and round_["applied"] == 1, (n, round_)
    assert result["versions"] == ROUNDS + 1  # version 1, then one per round


def test_a_locked_database_is_a_503_not_a_500():
    """Should the busy timeout run out after all: a clear 503 with Retry-After, in the
    API and on a page, nothing else."""
    exc = OperationalError("database is locked")
    response = exception_handler(exc, {})
    assert response.status_code == 503 and response["Retry-After"]
    assert "busy" in response.data["detail"] and "nothing was saved" in response.data["detail"]
    request = APIRequestFactory().get("/review/")
    page = DatabaseErrorPageMiddleware(lambda r: None).process_exception(request, exc)
    assert page.status_code == 503 and page["Retry-After"]
    assert "nothing was saved" in page.content.decode()
    # another operational error is not dressed up as "busy"
    assert exception_handler(OperationalError("no such table: x"), {}) is None
