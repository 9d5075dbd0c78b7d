"""The WeCom group robot (群机器人): ``POST cgi-bin/webhook/send?key=…`` with a text,
markdown or news message, at most 20 messages a minute per robot — held to by our own
limiter before calling, so the platform never sees a 21st."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.utils.translation import gettext as _

from .base import ChannelError, acquire, http_call, json_answer, with_retries
from .wecom import _api_base, error_of

MSGTYPES = ("text", "markdown", "news")
#: Content limits of the documentation: text 2048 bytes, markdown 4096 bytes, 1–8 articles.
MAX_BYTES = {"text": 2048, "markdown": 4096}
MAX_ARTICLES = 8
#: The robot's answer to a key it does not know.
INVALID_KEY = 93000


class RobotClient:
    def __init__(self, account):
        self.key = account.secret("key")
        self.limit_key = "wecom_robot:" + hashlib.sha256(self.key.encode()).hexdigest()[:16]

    @staticmethod
    def message(msgtype: str, content) -> dict:
        """The request body of a message (``ValueError`` naming what is wrong)."""
        if msgtype not in MSGTYPES:
            raise ValueError(_("A robot message is text, markdown or news."))
        if msgtype == "news":
            if not isinstance(content, list) or not 1 <= len(content) <= MAX_ARTICLES:
                raise ValueError(_("A news message has 1 to 8 articles."))
            return {"msgtype": "news", "news": {"articles": content}}
        if not isinstance(content, str) or not content or len(content.encode()) > MAX_BYTES[msgtype]:
            raise ValueError(
                _("The content must be a text of 1 to %(max)s bytes.") % {"max": MAX_BYTES[msgtype]}
            )
        return {"msgtype": msgtype, msgtype: {"content": content}}

    def send(self, msgtype: str, content, *, wait: float = 0.0) -> None:
        """Send one message; :class:`~.base.RateLimited` when the robot's minute is full
        (after waiting at most ``wait`` seconds), nothing sent."""
        body = self.message(msgtype, content)
        with_retries(lambda: self._post(body, wait))

    def _post(self, body: dict, wait: float) -> dict:
        if not self.key:
            raise ChannelError("not_configured", _("The robot's key is missing."), retryable=False)
        acquire(self.limit_key, getattr(settings, "TAGPORTAL_WECOM_ROBOT_RATE", "20/minute"), wait=wait)
        response = http_call(
            "POST",
            f"{_api_base()}/cgi-bin/webhook/send",
            idempotent=False,
            params={"key": self.key},
            json=body,
        )
        data = json_answer(response, idempotent=False)
        if int(data.get("errcode", 0)) != 0:
            raise error_of(data)
        return data

    def check(self) -> None:
        """Whether the robot knows the key, without posting to the group: an empty text
        is refused for its content (a known key) rather than for the key (93000)."""
        if not self.key:
            raise ChannelError("not_configured", _("The robot's key is missing."), retryable=False)
        response = http_call(
            "POST",
            f"{_api_base()}/cgi-bin/webhook/send",
            idempotent=True,
            params={"key": self.key},
            json={"msgtype": "text", "text": {"content": ""}},
        )
        data = json_answer(response)
        code = int(data.get("errcode", 0))
        if code == INVALID_KEY or code in (-1, 45009):
            raise error_of(data)
