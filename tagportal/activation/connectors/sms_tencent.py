"""Tencent Cloud SMS (腾讯云短信) through the official SDK (``tencentcloud-sdk-python-sms``,
API 2021-01-11): ``SendSms`` and its per-number ``SendStatusSet``.

The SDK signs each call (``TC3-HMAC-SHA256``) and speaks to
``TAGPORTAL_TENCENT_SMS_ENDPOINT`` (``sms.tencentcloudapi.com``; a ``http://host:port`` in
the tests). Numbers go in E.164 (a mainland number gets ``+86``), at most
:data:`MAX_NUMBERS` a call; each call carries a ``SessionContext`` (the delivery's key,
``-<n>`` per split call). Tencent does not promise to drop a repeated
``SessionContext`` (it is only echoed back), so a send whose answer was lost raises a
``maybe_sent`` error rather than being repeated; :meth:`TencentSmsClient.find_sent` looks
for its status report (``PullSmsSendStatusByPhoneNumber``).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.utils.translation import gettext as _

from .base import ChannelError, with_retries

#: The most numbers one ``SendSms`` takes.
MAX_NUMBERS = 200
#: Request-level codes worth trying again: frequency limits, platform faults.
RETRYABLE_PREFIXES = ("LimitExceeded", "RequestLimitExceeded", "InternalError", "ServerNetworkError")
#: ``LimitExceeded`` codes that trying again does not help.
NOT_RETRYABLE = frozenset({"LimitExceeded.PhoneNumberCountLimit"})


def e164(number: str) -> str:
    """A number in E.164; a mainland number without a country code gets ``+86``.

    >>> e164("138 0000 0000"), e164("8613800000000"), e164("+85261234567")
    ('+8613800000000', '+8613800000000', '+85261234567')
    """
    digits = "".join(ch for ch in number if ch.isdigit())
    if number.strip().startswith("+"):
        return f"+{digits}"
    if len(digits) == 11 and digits.startswith("1"):
        return f"+86{digits}"
    if len(digits) == 13 and digits.startswith("86"):
        return f"+{digits}"
    return f"+{digits}"


def _endpoint() -> tuple[str, str]:
    value = getattr(settings, "TAGPORTAL_TENCENT_SMS_ENDPOINT", "sms.tencentcloudapi.com")
    for scheme in ("http", "https"):
        if value.startswith(f"{scheme}://"):
            return scheme, value[len(scheme) + 3 :].rstrip("/")
    return "https", value.rstrip("/")


class TencentSmsClient:
    def __init__(self, account):
        self.account = account
        self.app_id = str(account.settings.get("sms_sdk_app_id", ""))
        self.sign_name = account.settings.get("sign_name", "")
        self.region = account.settings.get("region") or "ap-guangzhou"
        self.secret_id = account.secret("secret_id")
        self.secret_key = account.secret("secret_key")
        self._sdk = None

    def _client(self):
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.sms.v20210111 import sms_client

        if not self.secret_id or not self.secret_key:
            raise ChannelError(
                "not_configured", _("The SecretId or the SecretKey is missing."), retryable=False
            )
        protocol, host = _endpoint()
        profile = HttpProfile(
            protocol=protocol,
            endpoint=host,
            reqMethod="POST",
            reqTimeout=int(getattr(settings, "TAGPORTAL_CHANNEL_TIMEOUT_SECONDS", 10)),
        )
        return sms_client.SmsClient(
            credential.Credential(self.secret_id, self.secret_key),
            self.region,
            ClientProfile(signMethod="TC3-HMAC-SHA256", httpProfile=profile),
        )

    def _call(self, action: str, payload: dict, *, sends: bool = False) -> dict:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.sms.v20210111 import models

        if self._sdk is None:
            self._sdk = self._client()
        client = self._sdk
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps(payload, ensure_ascii=False))
        try:
            response = getattr(client, action)(request)
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "error")
            raise ChannelError(
                code,
                str(exc.get_message() or ""),
                retryable=code.startswith(RETRYABLE_PREFIXES) and code not in NOT_RETRYABLE,
                # a non-200 answer or a fault on the platform's side: the send may have gone out
                maybe_sent=sends
                and code.startswith(("ServerNetworkError", "InternalError", "ClientNetworkError")),
            ) from exc
        except (OSError, ValueError) as exc:
            raise ChannelError("connection", str(exc), retryable=True, maybe_sent=sends) from exc
        return json.loads(response.to_json_string())

    def send(
        self, numbers: list[str], template_id: str, params: list[str] = (), *, session_context: str
    ) -> list[dict]:
        """``SendSms`` of one template to the numbers, :data:`MAX_NUMBERS` a call. Answers
        one row per number: ``{"phone", "ok", "code", "message", "serial_no",
        "session_context"}`` — a number's own refusal (``LimitExceeded.PhoneNumberDailyLimit``,
        ``InvalidParameterValue.IncorrectPhoneNumber``, …) is final for that number and
        not retried; a refusal of the whole request raises :class:`ChannelError`."""
        numbers = [e164(n) for n in numbers]
        chunks = [numbers[i : i + MAX_NUMBERS] for i in range(0, len(numbers), MAX_NUMBERS)]
        rows = []
        for n, chunk in enumerate(chunks):
            context = session_context if len(chunks) == 1 else f"{session_context}-{n + 1}"
            payload = {
                "PhoneNumberSet": chunk,
                "SmsSdkAppId": self.app_id,
                "SignName": self.sign_name,
                "TemplateId": str(template_id),
                "TemplateParamSet": [str(p) for p in params],
                "SessionContext": context,
            }
            answer = with_retries(lambda payload=payload: self._call("SendSms", payload, sends=True))
            for status in answer.get("SendStatusSet") or []:
                code = status.get("Code", "")
                rows.append(
                    {
                        "phone": status.get("PhoneNumber", ""),
                        "ok": code == "Ok",
                        "code": code,
                        "message": status.get("Message", ""),
                        "serial_no": status.get("SerialNo", ""),
                        "session_context": status.get("SessionContext", context),
                    }
                )
        return rows

    def find_sent(self, number: str, session_context: str, since: int, until: int) -> dict | None:
        """The status report (``PullSmsSendStatusByPhoneNumber``, epoch seconds) of the
        send with our ``session_context`` to ``number``: ``{"serial_no", "status"}``, or
        ``None`` when there is none — which does not prove nothing was sent (a report
        may come later, or pulling may be off for the app)."""
        payload = {
            "BeginTime": int(since),
            "EndTime": int(until),
            "Offset": 0,
            "Limit": 100,
            "PhoneNumber": e164(number),
            "SmsSdkAppId": self.app_id,
        }
        answer = with_retries(lambda: self._call("PullSmsSendStatusByPhoneNumber", payload))
        for row in answer.get("PullSmsSendStatusSet") or []:
            if row.get("SessionContext") == session_context:
                return {"serial_no": row.get("SerialNo", ""), "status": row.get("ReportStatus", "")}
        return None

    def check(self) -> None:
        """``PullSmsSendStatus`` of one receipt (reads, sends nothing): the keys, the app
        and the endpoint answer."""
        with_retries(lambda: self._call("PullSmsSendStatus", {"Limit": 1, "SmsSdkAppId": self.app_id}))
