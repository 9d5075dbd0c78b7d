"""Signed HTTP requests between TagPortal and a brand's own systems (scoring endpoints,
webhooks and the receipts they post back): one scheme for all of them.

A request carries ``X-TagPortal-Timestamp`` (Unix seconds) and ``X-TagPortal-Signature:
sha256=<hex>``, the HMAC-SHA256 under the shared secret of ``"<timestamp>.<body>"``. A
receiver refuses a request whose timestamp is more than :data:`WINDOW` seconds from its
clock, so a captured request cannot be replayed later.

>>> signature("s3cret", "1700000000", b'{"a":1}')
'sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940'
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-TagPortal-Timestamp"
SIGNATURE_HEADER = "X-TagPortal-Signature"
PREFIX = "sha256="
#: Seconds a signed request stays acceptable, either side of the receiver's clock.
WINDOW = 300

#: Why :func:`refusal` refuses a request.
MISSING, NOT_A_NUMBER, MISMATCH, STALE = "missing", "not_a_number", "mismatch", "stale"


def signature(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    """The signature header's value of ``body`` signed at ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return PREFIX + hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str | bytes, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The headers of a JSON request with ``body`` signed now (or at ``now``)."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def refusal(
    secret: str | bytes,
    timestamp: str | None,
    given: str | None,
    body: bytes,
    *,
    now: float | None = None,
    window: int = WINDOW,
) -> str | None:
    """``None`` when ``given`` signs ``body`` at ``timestamp`` and that is within
    ``window`` seconds of ``now``; otherwise why not (:data:`MISSING`,
    :data:`NOT_A_NUMBER`, :data:`MISMATCH`, :data:`STALE`)."""
    if not timestamp or not given:
        return MISSING
    if not timestamp.isdigit():
        return NOT_A_NUMBER
    if not secret or not hmac.compare_digest(signature(secret, timestamp, body), given):
        return MISMATCH
    if abs((time.time() if now is None else now) - int(timestamp)) > window:
        return STALE
    return None
