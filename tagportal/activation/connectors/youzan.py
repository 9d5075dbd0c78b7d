"""Youzan (有赞云) open API: the silent-grant token, customer tag relations and coupons.

``POST /auth/token`` (``authorize_type`` silent, ``client_id``, ``client_secret``,
``grant_id`` = the shop's kdt_id) answers ``data.access_token`` and ``data.expires`` (the
expiry, epoch milliseconds); calls go to ``POST /api/<name>/<version>?access_token=``
and answer ``{"success", "code", "data"}``, or a gateway refusal in ``gw_err_resp``.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.utils.translation import gettext as _

from .base import ChannelError, TokenCache, http_call, json_answer, with_retries

#: The token is unknown or expired: fetch a new one and call again, once.
TOKEN_INVALID = frozenset({4201, 4202})
#: Call frequency (调用频率超限) and platform faults: worth trying again.
RETRYABLE = frozenset({4203, 4204, 5000, 141500203})
#: The account types a tag relation takes.
ACCOUNT_TYPES = ("FansID", "Mobile", "YouZanAccount", "OpenUserId", "WeiXinOpenId", "YzOpenId")
#: The most tags one relation call takes.
MAX_TAGS = 20


def _api_base() -> str:
    return getattr(settings, "TAGPORTAL_YOUZAN_API_BASE", "https://open.youzanyun.com").rstrip("/")


def error_of(data: dict) -> ChannelError:
    refusal = data.get("gw_err_resp") or {}
    code = refusal.get("err_code", data.get("code", -1))
    message = refusal.get("err_msg", data.get("message", ""))
    try:
        code = int(code)
    except (TypeError, ValueError):
        pass
    return ChannelError(code, str(message), retryable=code in RETRYABLE or "调用频率" in str(message))


def _succeeded(data: dict) -> bool:
    return bool(data.get("success")) and not data.get("gw_err_resp")


class YouzanClient:
    def __init__(self, account):
        self.account = account
        self.client_id = account.settings.get("client_id", "")
        self.grant_id = str(account.settings.get("grant_id", ""))
        self.client_secret = account.secret("client_secret")
        self.tokens = TokenCache("youzan", account.pk, account.secret_fingerprint(), self.fetch_token)

    def fetch_token(self) -> tuple[str, int]:
        if not self.client_id or not self.client_secret or not self.grant_id:
            raise ChannelError(
                "not_configured", _("The client id, its secret or the shop id is missing."), retryable=False
            )
        response = http_call(
            "POST",
            f"{_api_base()}/auth/token",
            idempotent=True,
            json={
                "authorize_type": "silent",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "grant_id": self.grant_id,
                "refresh": False,
            },
        )
        data = json_answer(response)
        token = (data.get("data") or {}).get("access_token")
        if not _succeeded(data) or not token:
            raise error_of(data)
        expires_ms = int((data.get("data") or {}).get("expires") or 0)
        return token, max(1, int(expires_ms / 1000 - time.time())) if expires_ms else 7 * 86400

    def check(self) -> None:
        self.tokens.clear()
        with_retries(self.tokens.get)

    def call(self, name: str, version: str, payload: dict, *, idempotent: bool) -> dict:
        return with_retries(lambda: self._once(name, version, payload, idempotent))

    def _once(self, name: str, version: str, payload: dict, idempotent: bool):
        for refreshed in (False, True):
            token = self.tokens.get()
            response = http_call(
                "POST",
                f"{_api_base()}/api/{name}/{version}",
                idempotent=idempotent,
                params={"access_token": token},
                json=payload,
            )
            data = json_answer(response, idempotent=idempotent)
            if _succeeded(data):
                return data.get("data")
            error = error_of(data)
            if error.code in TOKEN_INVALID and not refreshed:
                self.tokens.invalidate(token)
                continue
            raise error
        raise AssertionError("unreachable")

    # tags --------------------------------------------------------------------
    def _relation(self, name: str, tags: list[str], account_type: str, account_ids: list[str]) -> None:
        if account_type not in ACCOUNT_TYPES:
            raise ValueError(f"account_type must be one of {', '.join(ACCOUNT_TYPES)}")
        for start in range(0, len(tags), MAX_TAGS):
            chunk = [{"tag_name": tag} for tag in tags[start : start + MAX_TAGS]]
            for account_id in account_ids:
                self.call(
                    name,
                    "4.0.0",
                    {"account_type": account_type, "account_id": account_id, "tags": chunk},
                    idempotent=True,  # adding or removing a tag twice changes nothing
                )

    def add_tags(self, tags: list[str], account_type: str, account_ids: list[str]) -> None:
        """``youzan.scrm.tag.relation.add``: the tags (by name, created if missing) on each customer."""
        self._relation("youzan.scrm.tag.relation.add", tags, account_type, account_ids)

    def remove_tags(self, tags: list[str], account_type: str, account_ids: list[str]) -> None:
        """``youzan.scrm.tag.relation.delete``: the tags off each customer."""
        self._relation("youzan.scrm.tag.relation.delete", tags, account_type, account_ids)

    # coupons -----------------------------------------------------------------
    def take_coupon(self, coupon_group_id: str, *, yz_open_id: str = "", mobile: str = "") -> dict:
        """``youzan.ump.coupon.take``: one coupon of the group to a customer (by
        yz_open_id, or mobile). Not repeated after a timeout (it would issue twice)."""
        payload = {"coupon_group_id": str(coupon_group_id)}
        if yz_open_id:
            payload["yz_open_id"] = yz_open_id
        elif mobile:
            payload["mobile"] = mobile
        else:
            raise ValueError("a yz_open_id or a mobile is needed")
        return self.call("youzan.ump.coupon.take", "3.0.0", payload, idempotent=False) or {}
