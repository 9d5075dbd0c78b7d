"""What every channel client shares.

- :class:`ChannelError`: a platform's answer or a transport failure, with its code and
  whether trying again may succeed (``retryable``), and how long to wait if it said so.
- :class:`TokenCache`: one access token per account and secret in Django's cache, kept
  for ``expires_in`` minus a margin; fetched once under a cache lock however many calls
  want it; dropped when the platform calls it invalid, so the next call fetches one anew.
- :func:`with_retries`: tenacity, exponential backoff with jitter, bounded, only for
  retryable errors (a ``Retry-After`` the platform gave is honoured, capped).
- :func:`acquire`: a moving-window rate limit (the ``limits`` library) checked *before*
  calling, in ``TAGPORTAL_RATE_LIMIT_STORAGE`` (memory, or Redis shared by the workers).
- :func:`http_call`: one HTTP request with timeouts, its failures as :class:`ChannelError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

import requests
import tenacity
from django.conf import settings
from django.core.cache import cache
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)
T = TypeVar("T")


class ChannelError(Exception):
    """A call a platform refused or that did not reach it.

    ``code`` is the platform's error code (``errcode``, an HTTP status, ``"connection"``);
    ``retryable`` says whether the same call may succeed later; ``retry_after`` is the
    wait the platform asked for, in seconds, if any; ``maybe_sent`` says the request may
    have reached the platform and been acted on (its answer was lost): such a call is not
    repeated blindly.
    """

    def __init__(
        self,
        code,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        maybe_sent: bool = False,
    ):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


class RateLimited(ChannelError):
    """Our own limiter held the call back: nothing reached the platform."""

    def __init__(self, key: str, retry_after: float):
        super().__init__(
            "rate_limited", f"rate limit of {key} reached", retryable=True, retry_after=retry_after
        )


def _setting(name: str, default):
    return getattr(settings, name, default)


# retries ------------------------------------------------------------------
def _sleep(seconds: float) -> None:
    """The pause between tries (a module attribute so tests can replace it)."""
    time.sleep(seconds)


class _Wait(tenacity.wait.wait_base):
    """Exponential backoff with jitter, or the platform's ``Retry-After`` (capped)."""

    def __init__(self, initial: float, maximum: float):
        # initial * 2**n plus up to ``initial`` of jitter, at most ``maximum``
        self.backoff = tenacity.wait_exponential(multiplier=initial, max=maximum) + tenacity.wait_random(
            0, initial
        )
        self.maximum = maximum

    def __call__(self, retry_state) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ChannelError) and exc.retry_after is not None:
            return max(0.0, min(float(exc.retry_after), self.maximum))
        return self.backoff(retry_state)


def with_retries(call: Callable[[], T], *, attempts: int | None = None) -> T:
    """``call()``, tried again after retryable :class:`ChannelError` up to ``attempts``
    times in all (``TAGPORTAL_CHANNEL_RETRY_ATTEMPTS``); a final error, or the last
    retryable one, is raised as it is."""
    policy = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts or _setting("TAGPORTAL_CHANNEL_RETRY_ATTEMPTS", 4)),
        wait=_Wait(
            _setting("TAGPORTAL_CHANNEL_RETRY_INITIAL_SECONDS", 0.5),
            _setting("TAGPORTAL_CHANNEL_RETRY_MAX_SECONDS", 30.0),
        ),
        # our own limiter's refusal goes back to the caller, who schedules the call later
        # nor is a call that may have been acted on: the caller finds out first
        retry=tenacity.retry_if_exception(
            lambda exc: (
                isinstance(exc, ChannelError)
                and exc.retryable
                and not exc.maybe_sent
                and not isinstance(exc, RateLimited)
            )
        ),
        sleep=lambda seconds: _sleep(seconds),
        before_sleep=lambda state: log.info(
            "channel call failed (%s), try %s again", state.outcome.exception(), state.attempt_number + 1
        ),
        reraise=True,
    )
    return policy(call)


# rate limits --------------------------------------------------------------
@lru_cache(maxsize=4)
def _limiter(uri: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(uri))


def limiter() -> MovingWindowRateLimiter:
    return _limiter(_setting("TAGPORTAL_RATE_LIMIT_STORAGE", "memory://"))


def acquire(key: str, rate: str, *, wait: float = 0.0) -> None:
    """Take one call of ``rate`` (``"20/minute"``, or several windows ``"50/second;
    100000/day"``) for ``key``, waiting at most ``wait`` seconds for the windows to free;
    :class:`RateLimited` (nothing sent) otherwise. A call refused by one window uses
    none of the others."""
    items = parse_many(rate)
    deadline = time.monotonic() + wait
    while True:
        full = [item for item in items if not limiter().test(item, "tagportal-activation", key)]
        if not full and all(limiter().hit(item, "tagportal-activation", key) for item in items):
            return
        retry_after = max(
            0.01,
            *(
                limiter().get_window_stats(item, "tagportal-activation", key).reset_time - time.time()
                for item in (full or items)
            ),
        )
        if time.monotonic() + retry_after > deadline:
            raise RateLimited(key, retry_after)
        _sleep(min(retry_after, 0.25))


#: Calls a channel account makes, per kind, before each message (checked by the delivery
#: pipeline; ``TAGPORTAL_CHANNEL_RATES`` overrides a kind). The platforms' documented
#: limits, or a cautious default where none is published; the group robot's 20 a minute
#: is checked in its own client (``TAGPORTAL_WECOM_ROBOT_RATE``).
DEFAULT_RATES = {
    # add_msg_template: WeCom caps each corp's API calls; a member confirms each message
    "wecom": "20/second",
    # template/send: the account's daily quota (100,000 for a verified service account)
    "wechat_mp": "50/second;100000/day",
    # subscribeMessage.send: frequency limited per mini-program
    "miniprogram": "50/second",
    # SendSms: per-account QPS (Aliyun 5,000, Tencent 3,000); kept far below
    "sms_aliyun": "100/second",
    "sms_tencent": "100/second",
    # youzan.ump.coupon.take: the app's call frequency (调用频率)
    "youzan": "20/second",
    "webhook": "50/second",
}


def rate_of(kind: str) -> str | None:
    """The rate limit of an account of ``kind`` (``None``: none here)."""
    rates = {**DEFAULT_RATES, **(_setting("TAGPORTAL_CHANNEL_RATES", None) or {})}
    return rates.get(str(kind)) or None


def acquire_for(account) -> None:
    """One call of the account's kind's rate (:func:`rate_of`), keyed per account;
    :class:`RateLimited` when its window is full, nothing sent."""
    rate = rate_of(account.kind)
    if rate:
        acquire(f"account:{account.kind}:{account.pk}", rate)


def reset_rate_limits() -> None:
    """Forget every window (tests, or after changing the storage)."""
    limiter().storage.reset()


# tokens -------------------------------------------------------------------
class TokenCache:
    """One access token of an account's secrets, in Django's cache (so shared by the
    workers when the cache is Redis).

    ``fetch()`` answers ``(token, expires_in)``; the token is kept ``expires_in`` minus
    ``TAGPORTAL_TOKEN_MARGIN_SECONDS``. Only one caller fetches at a time (a lock made
    with ``cache.add``); the others wait for its token.
    """

    LOCK_SECONDS = 30

    def __init__(self, namespace: str, account_id, fingerprint: str, fetch: Callable[[], tuple[str, int]]):
        self.key = f"activation:token:{namespace}:{account_id}:{fingerprint}"
        self.fetch = fetch

    def get(self) -> str:
        token = cache.get(self.key)
        if token:
            return token
        deadline = time.monotonic() + self.LOCK_SECONDS
        while not cache.add(self.key + ":lock", 1, self.LOCK_SECONDS):
            _sleep(0.05)
            token = cache.get(self.key)
            if token:
                return token
            if time.monotonic() > deadline:
                raise ChannelError("token_lock", "timed out waiting for another token fetch", retryable=True)
        try:
            token = cache.get(self.key)  # fetched while we took the lock
            if token:
                return token
            token, expires_in = self.fetch()
            margin = _setting("TAGPORTAL_TOKEN_MARGIN_SECONDS", 300)
            cache.set(
                self.key,
                token,
                max(1, int(expires_in) - margin if expires_in > 2 * margin else expires_in // 2),
            )
            return token
        finally:
            cache.delete(self.key + ":lock")

    def clear(self) -> None:
        cache.delete(self.key)

    def invalidate(self, token: str) -> None:
        """Drop ``token`` if it is still the cached one (another caller may have replaced it)."""
        if cache.get(self.key) == token:
            cache.delete(self.key)


# HTTP ---------------------------------------------------------------------
def http_call(
    method: str, url: str, *, idempotent: bool, timeout: float | None = None, **kwargs
) -> requests.Response:
    """One HTTP request. A connection that failed before the request was sent is
    retryable; a timeout after it was sent is retryable only for an idempotent call (a
    send that may have arrived is not repeated blindly)."""
    timeout = timeout or _setting("TAGPORTAL_CHANNEL_TIMEOUT_SECONDS", 10)
    try:
        return requests.request(method, url, timeout=timeout, **kwargs)
    except requests.ConnectTimeout as exc:
        raise ChannelError("connection", str(exc), retryable=True) from exc
    except requests.Timeout as exc:
        raise ChannelError("timeout", str(exc), retryable=idempotent, maybe_sent=not idempotent) from exc
    except requests.ConnectionError as exc:
        raise ChannelError("connection", str(exc), retryable=True) from exc
    except requests.RequestException as exc:
        raise ChannelError("request", str(exc), retryable=False) from exc


def retry_after_of(response: requests.Response) -> float | None:
    """The ``Retry-After`` of a response in seconds (only the delta-seconds form)."""
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def json_answer(response, *, idempotent: bool = True) -> dict:
    """The JSON object a WeChat-family API answered (a 5xx is retryable — but for a call
    that is not ``idempotent`` it may have been acted on: ``maybe_sent``, not repeated —
    anything not a JSON object a final error)."""
    if response.status_code >= 500:
        raise ChannelError(
            response.status_code,
            response.reason or "server error",
            retryable=True,
            maybe_sent=not idempotent,
        )
    try:
        data = response.json()
    except ValueError as exc:
        raise ChannelError(response.status_code, "not a JSON answer", retryable=False) from exc
    if not isinstance(data, dict):
        raise ChannelError(response.status_code, "not a JSON object", retryable=False)
    return data


class CgiBinClient:
    """What the WeChat-family clients (WeCom, 公众号, 小程序) share: ``POST
    <api base>/cgi-bin/<path>?access_token=`` with the cached token (``self.tokens``, a
    :class:`TokenCache`), retried on retryable errors, the token fetched anew once when
    the platform calls it invalid (:attr:`token_invalid`). Subclasses give
    :meth:`api_base` and :meth:`error_of`."""

    token_invalid: frozenset[int] = frozenset()
    tokens: TokenCache

    def api_base(self) -> str:
        raise NotImplementedError

    def error_of(self, data: dict) -> ChannelError:
        raise NotImplementedError

    def check(self) -> None:
        """Fetch a token now (the connection test), kept for the calls to come."""
        self.tokens.clear()
        with_retries(self.tokens.get)

    def call(self, path: str, payload: dict | None, *, idempotent: bool, method: str = "POST") -> dict:
        """POST ``payload`` to ``/cgi-bin/<path>`` with the cached token (or GET it, with no
        body), retried on retryable errors; an invalid or expired token is fetched anew once."""
        return with_retries(lambda: self._once(path, payload, idempotent, method))

    def _once(self, path: str, payload: dict | None, idempotent: bool, method: str = "POST") -> dict:
        for refreshed in (False, True):
            token = self.tokens.get()
            response = http_call(
                method,
                f"{self.api_base()}/cgi-bin/{path}",
                idempotent=idempotent,
                params={"access_token": token},
                **({"json": payload} if method == "POST" else {}),
            )
            data = json_answer(response, idempotent=idempotent)
            code = int(data.get("errcode", 0))
            if code == 0:
                return data
            if code in self.token_invalid and not refreshed:
                self.tokens.invalidate(token)
                continue
            raise self.error_of(data)
        raise AssertionError("unreachable")
