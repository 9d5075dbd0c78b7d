"""A brand's scoring service, faked on a local HTTP server (pytest-httpserver, threaded),
enforcing the contract of :mod:`tagportal.predictive.scoring_contract` on its own (its
signature check does not reuse the client's code):

- ``401`` for a missing or wrong ``X-TagPortal-Signature`` or a timestamp more than
  ``tolerance`` seconds from its clock; ``400`` for a body that is not the contract's;
- a rate limit: at most ``rate_limit`` requests per ``rate_window`` seconds, then ``429``
  with ``Retry-After: <retry_after>``;
- injected failures: the first ``fail_first`` calls answer ``503``; the batches in
  ``fail_batches`` always answer ``500``; those in ``slow_batches`` answer after
  ``delay`` seconds; those in ``mangle`` answer a malformed body (``not_json``,
  ``no_scores``, ``unknown_oneid``, ``missing``, ``not_number``, ``duplicate``);
- the score of a person: the logistic of their feature ``feature`` (``null`` as 0).

``calls`` lists each request it answered: ``{"batch", "status"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

PATH = "/score"


def logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class FakeScoring:
    def __init__(
        self,
        server: HTTPServer,
        secret: str,
        *,
        tolerance: int = 300,
        feature: str = "x",
        rate_limit: int | None = None,
        rate_window: float = 0.3,
        retry_after: str = "3600",
        fail_first: int = 0,
        fail_batches: set[int] | None = None,
        slow_batches: set[int] | None = None,
        delay: float = 0.5,
        mangle: dict[int, str] | None = None,
    ):
        self.server = server
        self.secret = secret.encode()
        self.tolerance = tolerance
        self.feature = feature
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.retry_after = retry_after
        self.fail_first = fail_first
        self.fail_batches = fail_batches or set()
        self.slow_batches = slow_batches or set()
        self.delay = delay
        self.mangle = mangle or {}
        self.calls: list[dict] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        server.expect_request(PATH, method="POST").respond_with_handler(self.handle)

    @property
    def url(self) -> str:
        return self.server.url_for(PATH)

    def statuses(self, batch: int | None = None) -> list[int]:
        return [c["status"] for c in self.calls if batch is None or c["batch"] == batch]

    def _answer(self, batch, status: int, body, headers=None) -> Response:
        with self.lock:
            self.calls.append({"batch": batch, "status": status})
        text = body if isinstance(body, str) else json.dumps(body)
        return Response(text, status=status, headers=headers or {}, content_type="application/json")

    def _signed(self, request: Request, body: bytes) -> bool:
        timestamp = request.headers.get("X-TagPortal-Timestamp", "")
        given = request.headers.get("X-TagPortal-Signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.tolerance:
            return False
        expected = (
            "sha256=" + hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        )
        return hmac.compare_digest(expected, given)

    @staticmethod
    def _shape(payload) -> bool:
        if not isinstance(payload, dict) or set(payload) != {"model", "batch", "rows"}:
            return False
        if not isinstance(payload["model"], str) or not isinstance(payload["batch"], int):
            return False
        rows = payload["rows"]
        return isinstance(rows, list) and all(
            isinstance(r, dict)
            and set(r) == {"oneid", "features"}
            and isinstance(r["oneid"], int)
            and isinstance(r["features"], dict)
            for r in rows
        )

    def handle(self, request: Request) -> Response:
        body = request.get_data()
        if not self._signed(request, body):
            return self._answer(None, 401, {"detail": "bad signature"})
        try:
            payload = json.loads(body)
        except ValueError:
            return self._answer(None, 400, {"detail": "not JSON"})
        if not self._shape(payload):
            return self._answer(None, 400, {"detail": "not the contract's body"})
        batch = payload["batch"]
        with self.lock:
            now = time.monotonic()
            self.times = [t for t in self.times if now - t < self.rate_window]
            limited = self.rate_limit is not None and len(self.times) >= self.rate_limit
            if not limited:
                self.times.append(now)
            failing = self.fail_first > 0
            if failing:
                self.fail_first -= 1
        if limited:
            return self._answer(batch, 429, {"detail": "slow down"}, {"Retry-After": self.retry_after})
        if failing:
            return self._answer(batch, 503, {"detail": "warming up"})
        if batch in self.fail_batches:
            return self._answer(batch, 500, {"detail": "this batch breaks the model"})
        if batch in self.slow_batches:
            time.sleep(self.delay)
        scores = [
            {"oneid": r["oneid"], "score": logistic(float(r["features"].get(self.feature) or 0.0))}
            for r in payload["rows"]
        ]
        mode = self.mangle.get(batch)
        if mode == "not_json":
            return self._answer(batch, 200, "<html>oops</html>")
        if mode == "no_scores":
            return self._answer(batch, 200, {"results": scores})
        if mode == "unknown_oneid":
            scores.append({"oneid": 999_999, "score": 0.5})
        elif mode == "missing":
            scores = scores[1:]
        elif mode == "not_number":
            scores[0]["score"] = "high"
            scores[1]["score"] = None
        elif mode == "duplicate":
            scores.append({"oneid": scores[0]["oneid"], "score": 0.0})
        return self._answer(batch, 200, {"scores": scores})


def start_server() -> HTTPServer:
    server = HTTPServer(threaded=True)
    server.start()
    return server
