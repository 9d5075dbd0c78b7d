"""Alibaba Cloud SMS (阿里云短信) through the official SDK (``alibabacloud-dysmsapi20170525``):
``SendSms`` and ``SendBatchSms``.

The SDK signs each call (``ACS3-HMAC-SHA256``) and speaks to
``TAGPORTAL_ALIYUN_SMS_ENDPOINT`` (``dysmsapi.aliyuncs.com``; a ``http://host:port`` in
the tests). Its own retries are switched off: ours (``with_retries``) retry only the
retryable codes. Each call carries an ``OutId`` (the delivery's key, ``-<n>`` per split
call). Aliyun does not promise to drop a repeated ``OutId`` (it only echoes it in the
receipts and in ``QuerySendDetails``), so a send whose answer was lost is not repeated:
it raises a ``maybe_sent`` error and :meth:`AliyunSmsClient.find_sent` asks the platform.
"""

from __future__ import annotations

import datetime as dt
import json

from django.conf import settings
from django.utils.translation import gettext as _

from .base import ChannelError, with_retries

#: The most numbers one ``SendSms`` takes, comma-separated.
MAX_NUMBERS = 1000
#: The most numbers one ``SendBatchSms`` takes (``PhoneNumberJson``).
MAX_BATCH = 100
#: Worth trying again later: flow control on the number or the account, throttling, a
#: platform fault.
RETRYABLE = frozenset(
    {"isv.BUSINESS_LIMIT_CONTROL", "isp.SYSTEM_ERROR", "Throttling", "Throttling.User", "ServiceUnavailable"}
)
#: Named final failures (every unknown code is final too).
FINAL = frozenset(
    {"isv.MOBILE_NUMBER_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS", "isv.SMS_TEMPLATE_ILLEGAL"}
)


def _endpoint() -> tuple[str, str]:
    """(protocol, host[:port]) of the SMS endpoint setting."""
    value = getattr(settings, "TAGPORTAL_ALIYUN_SMS_ENDPOINT", "dysmsapi.aliyuncs.com")
    for scheme in ("http", "https"):
        if value.startswith(f"{scheme}://"):
            return scheme, value[len(scheme) + 3 :].rstrip("/")
    return "https", value.rstrip("/")


def domestic(number: str) -> str:
    """A number as Aliyun takes it: mainland numbers without ``+86``, others with their
    country code and no ``+``.

    >>> domestic("+86 138-0000-0000"), domestic("8613800000000"), domestic("+85261234567")
    ('13800000000', '13800000000', '85261234567')
    """
    digits = "".join(ch for ch in number if ch.isdigit())
    if number.strip().startswith("+86") or (digits.startswith("86") and len(digits) == 13):
        return digits[2:]
    return digits


def error_of(code: str, message: str, status: int | None = None) -> ChannelError:
    retryable = code in RETRYABLE or code.startswith("Throttling") or (status or 0) >= 500
    return ChannelError(code, message, retryable=retryable)


class AliyunSmsClient:
    def __init__(self, account):
        self.account = account
        self.sign_name = account.settings.get("sign_name", "")
        self.region = account.settings.get("region") or "cn-hangzhou"
        self.key_id = account.secret("access_key_id")
        self.key_secret = account.secret("access_key_secret")
        self._sdk = None

    def _client(self):
        from alibabacloud_dysmsapi20170525.client import Client
        from alibabacloud_tea_openapi.models import Config

        if not self.key_id or not self.key_secret:
            raise ChannelError(
                "not_configured", _("The AccessKey ID or its secret is missing."), retryable=False
            )
        protocol, host = _endpoint()
        return Client(
            Config(
                access_key_id=self.key_id,
                access_key_secret=self.key_secret,
                endpoint=host,
                protocol=protocol,
                region_id=self.region,
                read_timeout=int(getattr(settings, "TAGPORTAL_CHANNEL_TIMEOUT_SECONDS", 10) * 1000),
                connect_timeout=5000,
            )
        )

    def _call(self, method: str, request, *, sends: bool = False) -> dict:
        """One SDK call, its answer's body; a refusal or a transport failure as
        :class:`ChannelError` (``maybe_sent`` when a send's answer was lost)."""
        from alibabacloud_tea_util.models import RuntimeOptions
        from Tea.exceptions import TeaException

        if self._sdk is None:
            self._sdk = self._client()
        client = self._sdk
        try:
            response = getattr(client, method)(request, RuntimeOptions(autoretry=False, max_attempts=0))
        except TeaException as exc:
            if getattr(exc, "inner_exception", None) is not None:
                # failed on the way (connection, timeout): a send may have arrived
                raise ChannelError(
                    "connection", str(exc.message or exc), retryable=True, maybe_sent=sends
                ) from exc
            status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None)
            status = status if isinstance(status, int) else None
            error = error_of(str(exc.code or status or "error"), str(exc.message or ""), status)
            error.maybe_sent = sends and (status or 0) >= 500
            raise error from exc
        except (OSError, ValueError) as exc:
            raise ChannelError("connection", str(exc), retryable=True, maybe_sent=sends) from exc
        body = response.body.to_map() if response.body is not None else {}
        code = str(body.get("Code", ""))
        if code != "OK":
            raise error_of(code or "no_code", str(body.get("Message", "")))
        return body

    def send(
        self, numbers: list[str], template_code: str, params: dict | None = None, *, out_id: str
    ) -> list[dict]:
        """``SendSms`` of one template to the numbers, at most :data:`MAX_NUMBERS` a call;
        answers ``[{"biz_id", "out_id", "numbers"}]`` per call."""
        from alibabacloud_dysmsapi20170525 import models

        numbers = [domestic(n) for n in numbers]
        chunks = [numbers[i : i + MAX_NUMBERS] for i in range(0, len(numbers), MAX_NUMBERS)]
        results = []
        for n, chunk in enumerate(chunks):
            chunk_id = out_id if len(chunks) == 1 else f"{out_id}-{n + 1}"
            request = models.SendSmsRequest(
                phone_numbers=",".join(chunk),
                sign_name=self.sign_name,
                template_code=template_code,
                template_param=json.dumps(params, ensure_ascii=False) if params else None,
                out_id=chunk_id,
            )
            body = with_retries(
                lambda request=request: self._call("send_sms_with_options", request, sends=True)
            )
            results.append({"biz_id": body.get("BizId", ""), "out_id": chunk_id, "numbers": chunk})
        return results

    def send_batch(self, messages: list[tuple[str, dict]], template_code: str, *, out_id: str) -> list[dict]:
        """``SendBatchSms``: one template, each number its own parameters
        (``[(number, params)]``), at most :data:`MAX_BATCH` a call."""
        from alibabacloud_dysmsapi20170525 import models

        results = []
        chunks = [messages[i : i + MAX_BATCH] for i in range(0, len(messages), MAX_BATCH)]
        for n, chunk in enumerate(chunks):
            chunk_id = out_id if len(chunks) == 1 else f"{out_id}-{n + 1}"
            numbers = [domestic(number) for number, _params in chunk]
            request = models.SendBatchSmsRequest(
                phone_number_json=json.dumps(numbers),
                sign_name_json=json.dumps([self.sign_name] * len(chunk), ensure_ascii=False),
                template_code=template_code,
                template_param_json=json.dumps([p or {} for _n, p in chunk], ensure_ascii=False),
                out_id=chunk_id,
            )
            body = with_retries(
                lambda request=request: self._call("send_batch_sms_with_options", request, sends=True)
            )
            results.append({"biz_id": body.get("BizId", ""), "out_id": chunk_id, "numbers": numbers})
        return results

    def find_sent(self, number: str, out_id: str, day: dt.date) -> dict | None:
        """``QuerySendDetails`` of ``number`` on the Beijing ``day``: the record our
        ``out_id`` sent (``{"out_id", "send_status", "err_code"}``), or ``None`` when the
        platform holds none (nothing of ours reached it)."""
        from alibabacloud_dysmsapi20170525 import models

        page = 1
        while True:
            request = models.QuerySendDetailsRequest(
                phone_number=domestic(number),
                send_date=day.strftime("%Y%m%d"),
                page_size=50,
                current_page=page,
            )
            body = with_retries(
                lambda request=request: self._call("query_send_details_with_options", request)
            )
            rows = (body.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
            for row in rows:
                if row.get("OutId") == out_id:
                    return {
                        "out_id": out_id,
                        "send_status": row.get("SendStatus"),
                        "err_code": row.get("ErrCode", ""),
                    }
            if len(rows) < 50 or page * 50 >= int(body.get("TotalCount") or 0):
                return None
            page += 1

    def check(self) -> None:
        """Call ``QuerySendStatistics`` for today (reads, sends nothing): the keys and
        the endpoint answer."""
        from alibabacloud_dysmsapi20170525 import models

        day = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y%m%d")
        request = models.QuerySendStatisticsRequest(
            is_globe=1, start_date=day, end_date=day, page_index=1, page_size=1
        )
        with_retries(lambda: self._call("query_send_statistics_with_options", request))
