"""WeChat official accounts (公众号) and mini-programs (小程序): the access token,
template messages and their ``TEMPLATESENDJOBFINISH`` receipts, user tags, and
subscribe messages.

A thin client of our own, like :mod:`.wecom`: wechatpy keeps tokens in its own session
store and does not send ``client_msg_id``. The calls and their shapes follow WeChat's
documentation (developers.weixin.qq.com): ``cgi-bin/token``,
``cgi-bin/message/template/send``, ``cgi-bin/tags/members/batchtagging`` /
``batchuntagging`` and ``cgi-bin/message/subscribe/send``.

The event callback is taken in plain mode (明文模式) and in safe mode (安全模式,
``encrypt_type=aes``): there the body's ``Encrypt`` is signed by ``msg_signature`` (SHA-1
of the sorted token, timestamp, nonce and ciphertext) and decrypted as WeChat's message
encryption describes: AES-256-CBC with the key ``base64(EncodingAESKey + "=")`` and its
first 16 bytes as IV, PKCS#7 padding to 32 bytes, the clear text being 16 random bytes,
the message length (4 bytes, big-endian), the message and the appid (which must be the
account's). Compatible mode (兼容模式) carries both and is read as safe mode.

>>> callback_signature("tok", "1700000000", "nonce")
'd99efb498b2af921b2fb462c378cbf243f7bbd3f'
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from django.conf import settings
from django.utils.translation import gettext as _

from .base import CgiBinClient, ChannelError, TokenCache, http_call, json_answer

#: The token is wrong (40001), invalid (40014) or expired (42001): fetch a new one and
#: call again, once.
TOKEN_INVALID = frozenset({40001, 40014, 42001})
#: Worth trying again after a pause: system busy (-1), call frequency (45009).
RETRYABLE = frozenset({-1, 45009})
#: The most openids one ``batchtagging`` / ``batchuntagging`` call takes.
MAX_OPENIDS = 50
#: The longest user tag name a 公众号 takes, in characters.
MAX_TAG_NAME = 30
#: Tag errors that fail one call's openids but not the others': a user with too many
#: tags (45059), an openid of another appid (49003).
PER_BATCH_FINAL = frozenset({45059, 49003})
#: ``miniprogram_state`` of a subscribe message.
MINIPROGRAM_STATES = ("developer", "trial", "formal")
#: ``Status`` of a ``TEMPLATESENDJOBFINISH`` event → (receipt status, error).
TEMPLATE_STATUS = {
    "success": ("delivered", ""),
    "failed:user block": ("failed", "user block"),
    "failed: system failed": ("failed", "system failed"),
}


def _api_base() -> str:
    return getattr(settings, "TAGPORTAL_WECHAT_API_BASE", "https://api.weixin.qq.com").rstrip("/")


def error_of(data: dict) -> ChannelError:
    code = int(data.get("errcode", -1))
    return ChannelError(code, str(data.get("errmsg", "")), retryable=code in RETRYABLE)


class WeChatClient(CgiBinClient):
    """What a 公众号 and a 小程序 share: ``cgi-bin/token`` (appid + appsecret) cached
    per account and secrets, and calls with it."""

    namespace = "wechat"

    token_invalid = TOKEN_INVALID

    def api_base(self) -> str:
        return _api_base()

    def error_of(self, data: dict) -> ChannelError:
        return error_of(data)

    def __init__(self, account):
        self.account = account
        self.appid = account.settings.get("appid", "")
        self.appsecret = account.secret("appsecret")
        self.tokens = TokenCache(self.namespace, account.pk, account.secret_fingerprint(), self.fetch_token)

    # token -------------------------------------------------------------------
    def fetch_token(self) -> tuple[str, int]:
        """A new access token and its lifetime in seconds."""
        if not self.appid or not self.appsecret:
            raise ChannelError("not_configured", _("The appid or the appsecret is missing."), retryable=False)
        response = http_call(
            "GET",
            f"{_api_base()}/cgi-bin/token",
            idempotent=True,
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.appsecret},
        )
        data = json_answer(response)
        if data.get("errcode", 0) != 0 or not data.get("access_token"):
            raise error_of(data)
        return data["access_token"], int(data.get("expires_in", 7200))


def _data(values: dict) -> dict:
    """``{key: value}`` or ``{key: {"value": value}}`` as WeChat's ``{key: {"value"}}``."""
    return {key: value if isinstance(value, dict) else {"value": str(value)} for key, value in values.items()}


class OfficialAccountClient(WeChatClient):
    """A 公众号: template messages and user tags."""

    namespace = "wechat_mp"

    def send_template(
        self,
        openid: str,
        template_id: str,
        data: dict,
        *,
        client_msg_id: str,
        url: str = "",
        miniprogram: dict | None = None,
    ) -> str:
        """Send a template message and answer its ``msgid``. ``client_msg_id`` (one per
        delivery) makes a repeated call send nothing more, so a timeout is retried."""
        payload = {
            "touser": openid,
            "template_id": template_id,
            "data": _data(data),
            "client_msg_id": client_msg_id,
        }
        if url:
            payload["url"] = url
        if miniprogram:
            payload["miniprogram"] = {
                "appid": miniprogram.get("appid", ""),
                "pagepath": miniprogram.get("pagepath", ""),
            }
        answer = self.call("message/template/send", payload, idempotent=True)
        return str(answer.get("msgid", ""))

    def get_tags(self) -> list[dict]:
        """``cgi-bin/tags/get``: the account's user tags, ``[{"id", "name", "count"}]``."""
        return self.call("tags/get", None, idempotent=True, method="GET").get("tags", [])

    def create_tag(self, name: str) -> dict:
        """``cgi-bin/tags/create``: a new user tag, answered as ``{"id", "name"}``; a name
        longer than :data:`MAX_TAG_NAME` characters is refused before calling. Not
        repeated after a timeout (it may have created the tag: read :meth:`get_tags`)."""
        if not name or len(name) > MAX_TAG_NAME:
            raise ValueError(_("A 公众号 tag name has 1 to %(max)s characters.") % {"max": MAX_TAG_NAME})
        return self.call("tags/create", {"tag": {"name": name}}, idempotent=False).get("tag", {})

    def batch_tagging(self, tagid: int, openids: list[str]) -> dict:
        return self._tagging("tags/members/batchtagging", tagid, openids)

    def batch_untagging(self, tagid: int, openids: list[str]) -> dict:
        return self._tagging("tags/members/batchuntagging", tagid, openids)

    def _tagging(self, path: str, tagid: int, openids: list[str]) -> dict:
        """Tag (or untag) the openids, :data:`MAX_OPENIDS` a call. A call refused for
        its users (45059, 49003) is reported in ``failed`` and the others go on; an
        invalid tag (45159) or any other final error stops with :class:`ChannelError`.
        Answers ``{"done": n, "failed": [{"openids", "code", "message"}]}``."""
        done, failed = 0, []
        for start in range(0, len(openids), MAX_OPENIDS):
            chunk = list(openids[start : start + MAX_OPENIDS])
            try:
                self.call(path, {"openid_list": chunk, "tagid": tagid}, idempotent=True)
            except ChannelError as exc:
                if exc.code not in PER_BATCH_FINAL:
                    raise
                failed.append({"openids": chunk, "code": exc.code, "message": exc.message})
                continue
            done += len(chunk)
        return {"done": done, "failed": failed}


class MiniProgramClient(WeChatClient):
    """A 小程序: subscribe messages (a person must have subscribed: 43101 otherwise)."""

    namespace = "miniprogram"

    def send_subscribe(
        self,
        openid: str,
        template_id: str,
        data: dict,
        *,
        page: str = "",
        state: str = "formal",
        lang: str = "zh_CN",
    ) -> None:
        """Send one subscribe message. 43101 (not subscribed or refused), 47003 (wrong
        template data) and 40003 (invalid openid) are final; 45009 is retried. No
        idempotency key exists for this call, so a timeout after sending is not retried."""
        if state not in MINIPROGRAM_STATES:
            raise ValueError(_("miniprogram_state is developer, trial or formal."))
        payload = {
            "touser": openid,
            "template_id": template_id,
            "data": _data(data),
            "miniprogram_state": state,
            "lang": lang,
        }
        if page:
            payload["page"] = page
        self.call("message/subscribe/send", payload, idempotent=False)


# event callback ----------------------------------------------------------------
class CallbackRefused(ValueError):
    """A callback whose signature does not match (``forged``) or whose body is unusable."""

    def __init__(self, message: str, *, forged: bool = False):
        super().__init__(message)
        self.forged = forged


def callback_signature(token: str, timestamp: str, nonce: str) -> str:
    """SHA-1 of the token, timestamp and nonce sorted and joined, as WeChat signs."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def verify_callback(token: str, signature: str | None, timestamp: str | None, nonce: str | None) -> None:
    if not token or not signature or not timestamp or nonce is None:
        raise CallbackRefused(_("The callback is not signed."), forged=True)
    if not hmac.compare_digest(callback_signature(token, timestamp, nonce), signature):
        raise CallbackRefused(_("The signature does not match."), forged=True)


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of a 43-character EncodingAESKey (``CallbackRefused`` if malformed)."""
    try:
        key = base64.b64decode((encoding_aes_key or "") + "=", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(encoding_aes_key or "") != 43 or len(key) != 32:
        raise CallbackRefused(_("The account's EncodingAESKey is not 43 characters of base64."))
    return key


def _cipher(key: bytes) -> Cipher:
    return Cipher(algorithms.AES(key), modes.CBC(key[:16]))


def encrypt_message(encoding_aes_key: str, appid: str, message: bytes, random16: bytes | None = None) -> str:
    """``message`` encrypted as WeChat does for safe mode (base64 text): what a test or a
    reply uses."""
    import os

    key = aes_key(encoding_aes_key)
    clear = (random16 or os.urandom(16)) + struct.pack(">I", len(message)) + message + appid.encode()
    pad = 32 - len(clear) % 32
    clear += bytes([pad]) * pad
    encryptor = _cipher(key).encryptor()
    return base64.b64encode(encryptor.update(clear) + encryptor.finalize()).decode()


def decrypt_message(encoding_aes_key: str, appid: str, ciphertext: str) -> bytes:
    """The message inside a safe-mode ``Encrypt`` (``CallbackRefused`` if it does not
    decrypt, is padded wrongly, or belongs to another appid)."""
    key = aes_key(encoding_aes_key)
    try:
        raw = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CallbackRefused(_("The encrypted message is not base64.")) from exc
    if not raw or len(raw) % 16:
        raise CallbackRefused(_("The encrypted message does not decrypt."))
    decryptor = _cipher(key).decryptor()
    clear = decryptor.update(raw) + decryptor.finalize()
    pad = clear[-1]
    if not 1 <= pad <= 32 or clear[-pad:] != bytes([pad]) * pad or len(clear) - pad < 20:
        raise CallbackRefused(_("The encrypted message does not decrypt."))
    clear = clear[:-pad]
    (length,) = struct.unpack(">I", clear[16:20])
    message, sender = clear[20 : 20 + length], clear[20 + length :]
    if len(message) != length or not hmac.compare_digest(sender, appid.encode()):
        raise CallbackRefused(_("The encrypted message is not for this account."), forged=True)
    return message


def msg_signature(token: str, timestamp: str, nonce: str, ciphertext: str) -> str:
    """The ``msg_signature`` of a safe-mode message."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, ciphertext])).encode()).hexdigest()


def open_safe_message(
    body: bytes, *, token: str, encoding_aes_key: str, appid: str, signature, timestamp, nonce
) -> bytes:
    """The clear XML of a safe-mode message after checking its ``msg_signature``."""
    fields = _xml_fields(body)
    ciphertext = fields.get("Encrypt", "")
    if not ciphertext:
        raise CallbackRefused(_("The message has no Encrypt element."))
    if not token or not signature or not timestamp or nonce is None:
        raise CallbackRefused(_("The callback is not signed."), forged=True)
    if not hmac.compare_digest(msg_signature(token, timestamp, nonce, ciphertext), signature):
        raise CallbackRefused(_("The signature does not match."), forged=True)
    return decrypt_message(encoding_aes_key, appid, ciphertext)


def _xml_fields(body: bytes) -> dict[str, str]:
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise CallbackRefused(_("The body is not XML.")) from exc
    if root.tag != "xml":
        raise CallbackRefused(_("The body is not a WeChat message."))
    return {child.tag: (child.text or "").strip() for child in root}


def parse_event(body: bytes) -> dict[str, str]:
    """The fields of a plain-mode event message (``CallbackRefused`` if it is not one)."""
    fields = _xml_fields(body)
    if "Encrypt" in fields and "MsgType" not in fields:
        raise CallbackRefused(_("A safe-mode message must come with encrypt_type=aes."))
    return fields


def template_receipt(fields: dict[str, str]) -> tuple[str, str, dt.datetime, str] | None:
    """``(msgid, status, when, error)`` of a ``TEMPLATESENDJOBFINISH`` event, ``None``
    for any other message; ``CallbackRefused`` if the event is malformed."""
    if fields.get("MsgType") != "event" or fields.get("Event") != "TEMPLATESENDJOBFINISH":
        return None
    msgid, status = fields.get("MsgID", ""), fields.get("Status", "")
    if not msgid or len(msgid) > 100:
        raise CallbackRefused(_("The event has no MsgID."))
    if status not in TEMPLATE_STATUS:
        raise CallbackRefused(_("The event's Status is unknown: %(status)s.") % {"status": status[:50]})
    try:
        when = dt.datetime.fromtimestamp(int(fields.get("CreateTime", "")), tz=dt.UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise CallbackRefused(_("The event's CreateTime is not a number of seconds.")) from exc
    receipt_status, error = TEMPLATE_STATUS[status]
    return msgid, receipt_status, when, error
