"""Signed webhooks to a brand's own systems (MA, CDP, CRM), and the receipts they post back.

A request carries ``X-TagPortal-Timestamp`` (Unix seconds), ``X-TagPortal-Signature:
sha256=<hex>`` — the HMAC-SHA256 under the account's signing secret of
``"<timestamp>.<body>"`` — and ``Idempotency-Key`` (one per delivery, for the receiver
to keep). Receipts coming back are signed the same way and refused outside
:data:`REPLAY_WINDOW` seconds of our clock.

>>> signature("s3cret", "1700000000", b'{"a":1}')
'sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940'
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.utils.translation import gettext as _

from tagportal.core import signing

from .base import ChannelError, http_call, retry_after_of, with_retries

TIMESTAMP_HEADER, SIGNATURE_HEADER = signing.TIMESTAMP_HEADER, signing.SIGNATURE_HEADER
#: Seconds a signed request stays acceptable, either side of our clock.
REPLAY_WINDOW = signing.WINDOW
signature = signing.signature


class SignatureRefused(Exception):
    """A request whose signature is missing, forged or out of the window.
    ``missing`` tells an unsigned request from a wrongly signed one."""

    def __init__(self, message: str, *, missing: bool = False):
        super().__init__(message)
        self.missing = missing


def verify(
    secret: str, timestamp: str | None, signed: str | None, body: bytes, now: float | None = None
) -> None:
    """Nothing if ``signed`` is the signature of ``body`` at ``timestamp`` and that is
    within the window; :class:`SignatureRefused` otherwise."""
    why = signing.refusal(secret, timestamp, signed, body, now=now, window=REPLAY_WINDOW)
    if why == signing.MISSING:
        raise SignatureRefused(_("The request is not signed."), missing=True)
    if why == signing.NOT_A_NUMBER:
        raise SignatureRefused(_("The timestamp is not a number of seconds."))
    if why == signing.MISMATCH:
        raise SignatureRefused(_("The signature does not match."))
    if why == signing.STALE:
        raise SignatureRefused(_("The timestamp is out of the accepted window."))


class WebhookClient:
    def __init__(self, account):
        self.url = account.settings.get("url", "")
        self.secret = account.secret("signing_secret")

    def post(self, event: dict, idempotency_key: str) -> int:
        """POST ``event`` signed; retried on connection errors, 429 (its Retry-After,
        capped) and 5xx only. Answers the final HTTP status."""
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        return with_retries(lambda: self._once(body, idempotency_key))

    def _once(self, body: bytes, idempotency_key: str) -> int:
        if not self.url or not self.secret:
            raise ChannelError(
                "not_configured", _("The URL or the signing secret is missing."), retryable=False
            )
        timestamp = str(int(time.time()))
        response = http_call(
            "POST",
            self.url,
            idempotent=True,  # the receiver keeps the idempotency key
            data=body,
            headers={
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: signature(self.secret, timestamp, body),
                "Idempotency-Key": idempotency_key,
                "User-Agent": "TagPortal-Webhook/1",
            },
            allow_redirects=False,
        )
        status = response.status_code
        if 200 <= status < 300:
            return status
        message = response.reason or ""
        if status == 429:
            raise ChannelError(status, message, retryable=True, retry_after=retry_after_of(response))
        raise ChannelError(status, message, retryable=status >= 500)

    def check(self) -> None:
        """Post a signed ``ping`` (no delivery) and expect a 2xx."""
        self.post({"type": "ping", "sent_at": int(time.time())}, idempotency_key="ping")


def max_receipts() -> int:
    return getattr(settings, "TAGPORTAL_WEBHOOK_MAX_RECEIPTS", 1000)
