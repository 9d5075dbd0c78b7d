"""WeCom (企业微信) server API: the access token, customer mass messages and their
per-customer results, customer tags.

A thin client of our own rather than ``wechatpy.enterprise.WeChatClient``: wechatpy keeps
tokens in its own session store (not Django's cache under a lock, keyed by the secret),
refreshes on an invalid token without bound, and lacks ``get_groupmsg_send_result``.
The calls and their shapes follow WeCom's documentation (developer.work.weixin.qq.com).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.utils.translation import gettext as _

from .base import CgiBinClient, ChannelError, TokenCache, http_call, json_answer

#: The token is invalid (40014) or expired (42001): fetch a new one and call again, once.
TOKEN_INVALID = frozenset({40014, 42001})
#: Worth trying again after a pause: system busy (-1), call frequency (45009),
#: concurrency (45033).
RETRYABLE = frozenset({-1, 45009, 45033})
#: Named final failures (every other code is final too): 84061 no relationship between
#: the member and the customer, 41048 no customer to send to, 40001/40013 wrong secret or corpid.
FINAL = frozenset({84061, 41048, 40001, 40013})
#: The most ``external_userid`` one ``add_msg_template`` call takes.
MAX_RECIPIENTS = 10_000
#: The longest customer tag or tag group name, in characters.
MAX_TAG_NAME = 30
SEND_STATUS = {0: "unsent", 1: "sent", 2: "not_friend", 3: "already_received_today"}


class TagNameTooLong(ValueError):
    pass


def _api_base() -> str:
    return getattr(settings, "TAGPORTAL_WECOM_API_BASE", "https://qyapi.weixin.qq.com").rstrip("/")


def error_of(data: dict) -> ChannelError:
    code = int(data.get("errcode", -1))
    return ChannelError(code, str(data.get("errmsg", "")), retryable=code in RETRYABLE)


class WeComClient(CgiBinClient):
    token_invalid = TOKEN_INVALID

    def api_base(self) -> str:
        return _api_base()

    def error_of(self, data: dict) -> ChannelError:
        return error_of(data)

    def __init__(self, account):
        self.account = account
        self.corpid = account.settings.get("corpid", "")
        self.corpsecret = account.secret("corpsecret")
        self.tokens = TokenCache("wecom", account.pk, account.secret_fingerprint(), self.fetch_token)

    # token -------------------------------------------------------------------
    def fetch_token(self) -> tuple[str, int]:
        """A new access token from ``gettoken`` and its lifetime in seconds."""
        if not self.corpid or not self.corpsecret:
            raise ChannelError(
                "not_configured", _("The corpid or the corpsecret is missing."), retryable=False
            )
        response = http_call(
            "GET",
            f"{_api_base()}/cgi-bin/gettoken",
            idempotent=True,
            params={"corpid": self.corpid, "corpsecret": self.corpsecret},
        )
        data = json_answer(response)
        if data.get("errcode", 0) != 0 or not data.get("access_token"):
            raise error_of(data)
        return data["access_token"], int(data.get("expires_in", 7200))

    # customer mass messages -------------------------------------------------
    def add_msg_template(
        self, sender: str, external_userids: list[str], text: str, attachments: Iterable[dict] = ()
    ) -> list[dict]:
        """Create the mass messages of ``text`` (and attachments) from ``sender`` to the
        customers, at most :data:`MAX_RECIPIENTS` per call; the member confirms each in
        the client. Answers ``[{"msgid", "fail_list", "external_userid"}]`` per call."""
        results = []
        for start in range(0, len(external_userids), MAX_RECIPIENTS):
            chunk = external_userids[start : start + MAX_RECIPIENTS]
            payload = {"chat_type": "single", "external_userid": chunk, "sender": sender}
            if text:
                payload["text"] = {"content": text}
            if attachments:
                payload["attachments"] = list(attachments)
            data = self.call("externalcontact/add_msg_template", payload, idempotent=False)
            results.append(
                {
                    "msgid": data.get("msgid", ""),
                    "fail_list": data.get("fail_list", []),
                    "external_userid": chunk,
                }
            )
        return results

    def get_groupmsg_send_result(self, msgid: str, userid: str) -> list[dict]:
        """Each customer's result of a mass message sent by ``userid``:
        ``{"external_userid", "status" (:data:`SEND_STATUS`), "send_time"}``."""
        rows, cursor = [], ""
        while True:
            payload = {"msgid": msgid, "userid": userid, "limit": 1000}
            if cursor:
                payload["cursor"] = cursor
            data = self.call("externalcontact/get_groupmsg_send_result", payload, idempotent=True)
            for row in data.get("send_list", []):
                rows.append({**row, "status": SEND_STATUS.get(row.get("status"), "unknown")})
            cursor = data.get("next_cursor", "")
            if not cursor:
                return rows

    def get_groupmsg_list(self, creator: str, start_time: int, end_time: int) -> list[dict]:
        """The single-chat mass messages ``creator`` created between the two epoch
        seconds (``get_groupmsg_list_v2``, at most a month apart): ``{"msgid",
        "creator", "create_time"}``."""
        rows, cursor = [], ""
        while True:
            payload = {
                "chat_type": "single",
                "start_time": int(start_time),
                "end_time": int(end_time),
                "creator": creator,
                "filter_type": 2,
                "limit": 100,
            }
            if cursor:
                payload["cursor"] = cursor
            data = self.call("externalcontact/get_groupmsg_list_v2", payload, idempotent=True)
            rows.extend(data.get("group_msg_list", []))
            cursor = data.get("next_cursor", "")
            if not cursor:
                return rows

    def find_sent(self, sender: str, external_userid: str, start_time: int, end_time: int) -> str | None:
        """The msgid of a mass message ``sender`` created in the window that includes
        ``external_userid``, or ``None``: nothing of ours reached WeCom for them."""
        for message in self.get_groupmsg_list(sender, start_time, end_time):
            msgid = message.get("msgid", "")
            if msgid and any(
                row.get("external_userid") == external_userid
                for row in self.get_groupmsg_send_result(msgid, sender)
            ):
                return msgid
        return None

    # customer tags -----------------------------------------------------------
    def get_corp_tag_list(self, tag_ids: list[str] = (), group_ids: list[str] = ()) -> list[dict]:
        payload = {}
        if tag_ids:
            payload["tag_id"] = list(tag_ids)
        if group_ids:
            payload["group_id"] = list(group_ids)
        return self.call("externalcontact/get_corp_tag_list", payload, idempotent=True).get("tag_group", [])

    def add_corp_tag(self, names: list[str], *, group_id: str = "", group_name: str = "") -> dict:
        """Add customer tags into a group (an existing one by id, or a new one by name);
        names longer than :data:`MAX_TAG_NAME` characters are refused before calling."""
        for name in [group_name, *names]:
            if len(name) > MAX_TAG_NAME:
                raise TagNameTooLong(
                    _("“%(name)s” is longer than the %(max)s characters WeCom takes for a tag name.")
                    % {"name": name, "max": MAX_TAG_NAME}
                )
        payload = {"tag": [{"name": name} for name in names]}
        if group_id:
            payload["group_id"] = group_id
        elif group_name:
            payload["group_name"] = group_name
        return self.call("externalcontact/add_corp_tag", payload, idempotent=False).get("tag_group", {})

    def mark_tag(
        self, userid: str, external_userid: str, add_tag: list[str] = (), remove_tag: list[str] = ()
    ):
        payload = {"userid": userid, "external_userid": external_userid}
        if add_tag:
            payload["add_tag"] = list(add_tag)
        if remove_tag:
            payload["remove_tag"] = list(remove_tag)
        self.call("externalcontact/mark_tag", payload, idempotent=True)
