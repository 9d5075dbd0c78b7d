"""Scoring people with a brand's own model over HTTP (the contract:
:mod:`.scoring_contract`).

Conventions
===========

- **Input**: ``features``, a DataFrame indexed by ``oneid`` (unique whole numbers), one
  column per feature (string names); missing values are sent as ``null``.
- **Batches** of ``batch_size`` people in index order, numbered from 0, each signed
  (HMAC-SHA256, see :mod:`.scoring_contract`) and posted in turn.
- **Timeouts**: ``timeout`` seconds to connect and, again, to read the answer.
- **Retries** (urllib3 ``Retry`` on a requests session): up to ``retries`` more
  attempts of a batch after a connection error, a read timeout, ``429`` or a ``5xx``
  answer, waiting ``backoff`` × 2ⁿ seconds (at most ``max_backoff``), or what a
  ``Retry-After`` header says on ``429`` / ``503``, capped at ``max_retry_after``.
  Scoring is idempotent, so a POST is retried. No other ``4xx`` is retried; a ``401``
  or ``403`` (a wrong secret, a clock far off) stops the run: its remaining batches are
  not sent, as each would be refused the same way.
- **Partial failure**: a batch that still fails is listed in ``report["failed_batches"]``
  (``batch``, ``people``, ``error``, ``status``; ``error`` one of ``unauthorized``,
  ``not_sent``, ``rate_limited``, ``server_error``, ``refused`` (another ``4xx``),
  ``malformed``, ``timeout``, ``connection``, ``retries_exhausted``) and its people are
  unscored; the other batches' scores are kept.
- **Answers** are checked (:class:`.scoring_contract.ScoringResponseSerializer` shape):
  a body that is not that JSON fails its batch (``malformed``); entries for people not
  in the batch, repeated people and scores that are not finite numbers are ignored and
  counted in ``report["ignored"]``; people of a batch without a score are counted in
  ``report["unscored"]``.
- **Output**: :class:`HttpScoring` — ``scores`` (float64, index ``oneid``, sorted) and a
  JSON-able ``report`` with the keys ``model``, ``endpoint`` (scheme, host and path: no
  query, no credentials), ``people``, ``batches``, ``batch_size``, ``scored``,
  ``unscored``, ``failed_batches``, ``ignored`` (``unknown_oneids``, ``duplicates``,
  ``not_numbers``), ``stopped`` (the error that stopped the run, or ``None``),
  ``complete`` (every person scored) and ``seconds``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from .scoring_contract import signed_headers

#: Statuses retried (with the connection errors and read timeouts).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Statuses that stop the whole run.
STOP_STATUSES = frozenset({401, 403})
#: The most failed batches and people listed in a report (all are counted).
MAX_LISTED = 100


class ScoringError(ValueError):
    """Scoring that cannot start: bad features or parameters."""


@dataclass
class HttpScoring:
    """The scores a brand's endpoint gave (index ``oneid``) and the run's report."""

    scores: pd.Series
    report: dict


class _CappedRetry(Retry):
    """urllib3's Retry with a cap on what a ``Retry-After`` header may ask for."""

    retry_after_cap: float = 30.0

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.retry_after_cap)


def _retry(retries: int, backoff: float, max_backoff: float, max_retry_after: float) -> Retry:
    capped = type("CappedRetry", (_CappedRetry,), {"retry_after_cap": float(max_retry_after)})
    return capped(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=0,
        allowed_methods=None,  # scoring is idempotent: POST is retried
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff,
        backoff_max=max_backoff,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer is returned and judged below
        raise_on_redirect=False,
    )


def scoring_session(
    *, retries: int = 3, backoff: float = 0.5, max_backoff: float = 10.0, max_retry_after: float = 30.0
) -> requests.Session:
    """A requests session that retries as the module docstring says."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=_retry(retries, backoff, max_backoff, max_retry_after))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _body(model_key: str, number: int, batch: pd.DataFrame, columns: list[str]) -> bytes:
    rows = [
        {"oneid": int(oneid), "features": {c: _plain(v) for c, v in zip(columns, values, strict=True)}}
        for oneid, values in zip(batch.index, batch.itertuples(index=False, name=None), strict=True)
    ]
    return json.dumps(
        {"model": model_key, "batch": number, "rows": rows},
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
        default=str,
    ).encode()


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _check_features(features: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(features, pd.DataFrame):
        raise ScoringError("features must be a DataFrame indexed by oneid")
    if not pd.api.types.is_integer_dtype(features.index.dtype) and len(features):
        raise ScoringError("features must be indexed by whole OneIDs")
    if features.index.has_duplicates:
        raise ScoringError("features repeat a OneID")
    if not all(isinstance(c, str) for c in features.columns):
        raise ScoringError("feature names must be texts")
    return features


def _read_scores(response: requests.Response, asked: set[int]) -> tuple[dict[int, float] | None, dict]:
    """The scores of an answer (``None`` when it is malformed) and what was ignored."""
    ignored = {"unknown_oneids": 0, "duplicates": 0, "not_numbers": 0}
    try:
        payload = response.json()
    except ValueError:
        return None, ignored
    entries = payload.get("scores") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        return None, ignored
    scores: dict[int, float] = {}
    for entry in entries:
        oneid = entry.get("oneid") if isinstance(entry, dict) else None
        if isinstance(oneid, bool) or not isinstance(oneid, int) or oneid not in asked:
            ignored["unknown_oneids"] += 1
            continue
        if oneid in scores:
            ignored["duplicates"] += 1
            continue
        score = entry.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            ignored["not_numbers"] += 1
            continue
        scores[oneid] = float(score)
    return scores, ignored


def score_over_http(
    endpoint_url: str,
    secret: str | bytes,
    features: pd.DataFrame,
    *,
    model_key: str,
    batch_size: int = 1000,
    timeout: float = 10.0,
    retries: int = 3,
    backoff: float = 0.5,
    max_backoff: float = 10.0,
    max_retry_after: float = 30.0,
    session: requests.Session | None = None,
    clock: Callable[[], float] = time.time,
) -> HttpScoring:
    """Score the people of ``features`` at ``endpoint_url`` (see the module docstring)."""
    if batch_size < 1:
        raise ScoringError("batch_size must be at least 1")
    if timeout <= 0 or retries < 0:
        raise ScoringError("timeout must be positive and retries not negative")
    if urlsplit(endpoint_url).scheme not in ("http", "https"):
        raise ScoringError("the endpoint must be an http(s) URL")
    features = _check_features(features)
    started = time.perf_counter()
    own_session = session is None
    session = session or scoring_session(
        retries=retries, backoff=backoff, max_backoff=max_backoff, max_retry_after=max_retry_after
    )
    columns = list(features.columns)
    batches = range(0, len(features), batch_size)
    scores: dict[int, float] = {}
    failed: list[dict] = []
    ignored = {"unknown_oneids": 0, "duplicates": 0, "not_numbers": 0}
    stopped = None
    try:
        for number, start in enumerate(batches):
            batch = features.iloc[start : start + batch_size]
            if stopped is not None:
                failed.append({"batch": number, "people": len(batch), "error": "not_sent", "status": None})
                continue
            error, status, got = _post(
                session, endpoint_url, secret, _body(model_key, number, batch, columns), batch, timeout, clock
            )
            if error is None:
                batch_scores, batch_ignored = got
                scores.update(batch_scores)
                for key, count in batch_ignored.items():
                    ignored[key] += count
                continue
            failed.append({"batch": number, "people": len(batch), "error": error, "status": status})
            if status in STOP_STATUSES:
                stopped = error
    finally:
        if own_session:
            session.close()
    series = pd.Series(scores, dtype="float64", name="score").sort_index()
    series.index = series.index.astype("int64")
    series.index.name = "oneid"
    people = len(features)
    report = {
        "model": model_key,
        "endpoint": _public_url(endpoint_url),
        "people": people,
        "batches": len(batches),
        "batch_size": batch_size,
        "scored": len(series),
        "unscored": people - len(series),
        "failed_batches": failed[:MAX_LISTED],
        "failed_batch_count": len(failed),
        "ignored": ignored,
        "stopped": stopped,
        "complete": len(series) == people,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return HttpScoring(scores=series, report=report)


def _post(session, url, secret, body, batch, timeout, clock):
    """``(error, status, (scores, ignored))`` of one batch; ``error`` is ``None`` on success."""
    headers = signed_headers(secret, body, now=clock())
    try:
        response = session.post(url, data=body, headers=headers, timeout=(timeout, timeout))
    except requests.exceptions.RetryError:
        return "retries_exhausted", None, None
    except requests.exceptions.Timeout:
        return "timeout", None, None
    except requests.exceptions.ConnectionError as exc:
        # requests answers a read timeout that exhausted the retries as a ConnectionError
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return ("timeout" if isinstance(reason, ReadTimeoutError) else "connection"), None, None
    except requests.exceptions.RequestException:
        return "connection", None, None
    with response:
        status = response.status_code
        if status == 401 or status == 403:
            return "unauthorized", status, None
        if status != 200:
            if status == 429:
                return "rate_limited", status, None
            return ("server_error" if status >= 500 else "refused"), status, None
        got = _read_scores(response, set(int(o) for o in batch.index))
        if got[0] is None:
            return "malformed", status, None
        return None, status, got
