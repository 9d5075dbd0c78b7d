"""Weimob (微盟云) open API: the client-credentials token and CDP customer tags.

``POST /fuwu/b/oauth2/token?grant_type=client_credentials&client_id=&client_secret=``
(with ``shop_id`` when set) answers ``access_token`` and ``expires_in``; calls go to
``POST /apigw/<path>?accesstoken=`` and answer ``{"code": {"errcode", "errmsg"}, "data"}``,
``errcode`` ``"0"`` when done.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _

from .base import ChannelError, TokenCache, http_call, json_answer, retry_after_of, with_retries

#: The token is invalid or expired: fetch a new one and call again, once.
TOKEN_INVALID = frozenset({"80001001000119", "80001001000120", "401"})
#: Call frequency and platform faults: worth trying again.
RETRYABLE = frozenset({"80001001000135", "429", "-1"})
#: The most customers one bind or unbind call takes.
MAX_WIDS = 100


def _api_base() -> str:
    return getattr(settings, "TAGPORTAL_WEIMOB_API_BASE", "https://dopen.weimob.com").rstrip("/")


def error_of(data: dict) -> ChannelError:
    code = data.get("code") if isinstance(data.get("code"), dict) else {}
    errcode = str(code.get("errcode", data.get("error", "-1")))
    message = str(code.get("errmsg", data.get("error_description", "")))
    return ChannelError(errcode, message, retryable=errcode in RETRYABLE)


class WeimobClient:
    def __init__(self, account):
        self.account = account
        self.client_id = account.settings.get("client_id", "")
        self.shop_id = str(account.settings.get("shop_id", ""))
        self.client_secret = account.secret("client_secret")
        self.tokens = TokenCache("weimob", account.pk, account.secret_fingerprint(), self.fetch_token)

    def fetch_token(self) -> tuple[str, int]:
        if not self.client_id or not self.client_secret:
            raise ChannelError(
                "not_configured", _("The client id or its secret is missing."), retryable=False
            )
        params = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        if self.shop_id:
            params["shop_id"] = self.shop_id
        response = http_call("POST", f"{_api_base()}/fuwu/b/oauth2/token", idempotent=True, params=params)
        data = json_answer(response)
        if not data.get("access_token"):
            raise error_of(data)
        return data["access_token"], int(data.get("expires_in", 7200))

    def check(self) -> None:
        self.tokens.clear()
        with_retries(self.tokens.get)

    def call(self, path: str, payload: dict, *, idempotent: bool) -> dict:
        return with_retries(lambda: self._once(path, payload, idempotent))

    def _once(self, path: str, payload: dict, idempotent: bool):
        for refreshed in (False, True):
            token = self.tokens.get()
            response = http_call(
                "POST",
                f"{_api_base()}/apigw/{path}",
                idempotent=idempotent,
                params={"accesstoken": token},
                json=payload,
            )
            if response.status_code == 429:
                raise ChannelError(
                    429, "too many requests", retryable=True, retry_after=retry_after_of(response)
                )
            data = json_answer(response)
            error = error_of(data)
            if error.code == "0":
                return data.get("data") or {}
            if error.code in TOKEN_INVALID and not refreshed:
                self.tokens.invalidate(token)
                continue
            raise error
        raise AssertionError("unreachable")

    def _tags(self, action: str, tag_ids: list[str], wids: list[int]) -> None:
        for start in range(0, len(wids), MAX_WIDS):
            self.call(
                f"weimob_cdp/v2.0/customer/tag/{action}",
                {"tagIdList": [str(t) for t in tag_ids], "widList": list(wids[start : start + MAX_WIDS])},
                idempotent=True,  # binding a tag twice changes nothing
            )

    def bind_tags(self, tag_ids: list[str], wids: list[int]) -> None:
        """``weimob_cdp/v2.0/customer/tag/bind``: the tags on the customers (by wid)."""
        self._tags("bind", tag_ids, wids)

    def unbind_tags(self, tag_ids: list[str], wids: list[int]) -> None:
        """``weimob_cdp/v2.0/customer/tag/unbind``: the tags off the customers."""
        self._tags("unbind", tag_ids, wids)
