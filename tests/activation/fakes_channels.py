"""Local fakes of the SMS platforms, Youzan and Weimob (pytest-httpserver). Each checks
what the real platform checks as far as is practical — the request signature (Aliyun's
ACS3-HMAC-SHA256, Tencent's TC3-HMAC-SHA256, recomputed), the caps, tokens that expire
and the documented error codes — and counts the real sends. Neither SMS platform
promises to drop a repeated ``OutId`` / ``SessionContext`` (they are only echoed back in
receipts and queries), so the fakes send a repeat again and count it in
``duplicates``; what was sent can be asked (``QuerySendDetails``,
``PullSmsSendStatusByPhoneNumber``)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import time
from collections import Counter
from urllib.parse import quote

from werkzeug import Response


def _json(payload, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status, content_type="application/json")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pct(value: str) -> str:
    return quote(value, safe="-_.~")


# Alibaba Cloud SMS -------------------------------------------------------------
class FakeAliyunSms:
    """Dysmsapi ``SendSms`` / ``SendBatchSms`` / ``QuerySendStatistics``: the V3
    signature recomputed with the known key (``SignatureDoesNotMatch`` otherwise), at most
    1,000 numbers per ``SendSms`` and 100 per ``SendBatchSms``, mainland numbers only
    (``isv.MOBILE_NUMBER_ILLEGAL``), the template's parameters
    (``isv.TEMPLATE_MISSING_PARAMETERS``), ``limit_control`` calls refused with
    ``isv.BUSINESS_LIMIT_CONTROL``, ``lose_answers`` calls sent but answered 503 (the
    answer lost); a repeated ``OutId`` is sent again (counted in ``duplicates``).
    ``QuerySendDetails`` answers a number's sends of one Beijing day (``SendDate``
    yyyyMMdd, at most 50 a page) with their ``OutId``."""

    def __init__(self, server, key_id="LTAI-test", key_secret="aliyun-secret", sign_name="TagPortal"):
        self.key_id, self.key_secret, self.sign_name = key_id, key_secret, sign_name
        self.templates = {"SMS_100": ["code"]}
        self.calls: Counter = Counter()
        self.verified = 0
        self.sends: list[dict] = []  # the real sends, one per call that went out
        self.by_out_id: dict[str, str] = {}
        self.duplicates = 0
        self.limit_control = 0
        self.lose_answers = 0
        self._ids = itertools.count(1000)
        server.expect_request("/", method="POST").respond_with_handler(self.handle)

    def _signature_ok(self, request, body: bytes) -> bool:
        auth = request.headers.get("Authorization", "")
        match = re.fullmatch(
            r"ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([a-z0-9;\-]+),Signature=([0-9a-f]{64})", auth
        )
        if not match or match.group(1) != self.key_id:
            return False
        signed = match.group(2).split(";")
        if not {"host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce"} <= set(signed):
            return False
        if request.headers.get("x-acs-content-sha256") != _sha256(body):
            return False
        query = "&".join(
            f"{_pct(k)}={_pct(v)}" for k, v in sorted((k, v) for k, v in request.args.items(multi=True))
        )
        headers = "".join(f"{h}:{request.headers.get(h, '').strip()}\n" for h in signed)
        canonical = "\n".join(["POST", request.path or "/", query, headers, ";".join(signed), _sha256(body)])
        to_sign = "ACS3-HMAC-SHA256\n" + _sha256(canonical.encode())
        expected = hmac.new(self.key_secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, match.group(3))

    @staticmethod
    def _answer(code: str, message: str = "", **extra) -> Response:
        return _json({"Code": code, "Message": message or code, "RequestId": "req-1", **extra})

    def handle(self, request):
        body = request.get_data()
        action = request.headers.get("x-acs-action", "")
        self.calls[action] += 1
        if not self._signature_ok(request, body):
            return _json(
                {"Code": "SignatureDoesNotMatch", "Message": "signature mismatch", "RequestId": "r"}, 400
            )
        self.verified += 1
        params = {**request.args.to_dict(), **request.form.to_dict()}
        if action == "QuerySendStatistics":
            return self._answer("OK", Data={"TotalSize": 0, "TargetList": []})
        if action == "QuerySendDetails":
            return self._details(params)
        if action == "SendSms":
            numbers = params.get("PhoneNumbers", "").split(",")
            cap = 1000
            params_list = [self._params(params.get("TemplateParam"))] * len(numbers)
            signs = [params.get("SignName")]
        elif action == "SendBatchSms":
            try:
                numbers = json.loads(params.get("PhoneNumberJson", "[]"))
                signs = json.loads(params.get("SignNameJson", "[]"))
                params_list = [
                    p if isinstance(p, dict) else None
                    for p in json.loads(params.get("TemplateParamJson", "[]"))
                ]
            except ValueError:
                return self._answer("isv.INVALID_JSON_PARAM")
            cap = 100
            if len(signs) != len(numbers) or len(params_list) != len(numbers):
                return self._answer("isv.INVALID_PARAMETERS", "the JSON arrays differ in length")
        else:
            return _json({"Code": "InvalidAction.NotFound", "Message": action, "RequestId": "r"}, 404)
        return self._send(numbers, cap, signs, params.get("TemplateCode"), params_list, params.get("OutId"))

    @staticmethod
    def _params(raw):
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _send(self, numbers, cap, signs, template, params_list, out_id):
        if not numbers or len(numbers) > cap:
            return self._answer("isv.MOBILE_COUNT_OVER_LIMIT", f"at most {cap} numbers")
        if any(s != self.sign_name for s in signs):
            return self._answer("isv.SMS_SIGNATURE_ILLEGAL")
        if template not in self.templates:
            return self._answer("isv.SMS_TEMPLATE_ILLEGAL")
        if any(not re.fullmatch(r"1\d{10}", str(n)) for n in numbers):
            return self._answer("isv.MOBILE_NUMBER_ILLEGAL")
        for p in params_list:
            if p is None or any(k not in p for k in self.templates[template]):
                return self._answer("isv.TEMPLATE_MISSING_PARAMETERS")
        if self.limit_control:
            self.limit_control -= 1
            return self._answer("isv.BUSINESS_LIMIT_CONTROL", "触发号码天级流控")
        biz_id = f"{next(self._ids)}^0"
        day = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y%m%d")
        self.sends.append({"out_id": out_id, "numbers": list(numbers), "biz_id": biz_id, "day": day})
        if out_id:
            self.duplicates += out_id in self.by_out_id
            self.by_out_id[out_id] = biz_id
        if self.lose_answers:
            self.lose_answers -= 1
            return Response("upstream timeout", status=503)
        return self._answer("OK", BizId=biz_id)

    def _details(self, params):
        number, day = params.get("PhoneNumber", ""), params.get("SendDate", "")
        if not number or not re.fullmatch(r"\d{8}", day):
            return self._answer("isv.INVALID_PARAMETERS", "PhoneNumber and SendDate (yyyyMMdd) are required")
        size, page = int(params.get("PageSize") or 0), int(params.get("CurrentPage") or 0)
        if not 1 <= size <= 50 or page < 1:
            return self._answer("isv.INVALID_PARAMETERS", "PageSize 1 to 50, CurrentPage from 1")
        rows = [
            {
                "PhoneNum": number,
                "OutId": s["out_id"],
                "SendStatus": 3,
                "ErrCode": "DELIVERED",
                "SendDate": day,
            }
            for s in self.sends
            if s["day"] == day and number in s["numbers"]
        ]
        chunk = rows[(page - 1) * size : page * size]
        return self._answer("OK", TotalCount=len(rows), SmsSendDetailDTOs={"SmsSendDetailDTO": chunk})

    def sent_numbers(self) -> int:
        return sum(len(s["numbers"]) for s in self.sends)


# Tencent Cloud SMS -------------------------------------------------------------
class FakeTencentSms:
    """SMS 2021-01-11 ``SendSms`` / ``PullSmsSendStatus``: the TC3 signature recomputed
    (``AuthFailure.SignatureFailure``), at most 200 numbers
    (``LimitExceeded.PhoneNumberCountLimit``), E.164 numbers (a bad one gets
    ``InvalidParameterValue.IncorrectPhoneNumber`` in its own status), numbers over their
    daily limit (``LimitExceeded.PhoneNumberDailyLimit``, per number), the app and sign,
    ``busy`` calls refused with ``RequestLimitExceeded``, ``lose_answers`` calls sent but
    answered 502; a repeated ``SessionContext`` is sent again (counted in
    ``duplicates``). ``PullSmsSendStatusByPhoneNumber`` answers the status reports of a
    number (only once ``reports_ready``: a report comes after the send)."""

    def __init__(
        self, server, secret_id="AKID-test", secret_key="tencent-key", app_id="1400000001", sign="TagPortal"
    ):
        self.secret_id, self.secret_key, self.app_id, self.sign = secret_id, secret_key, app_id, sign
        self.calls: Counter = Counter()
        self.verified = 0
        self.sends: list[dict] = []
        self.by_context: dict[str, list] = {}
        self.duplicates = 0
        self.reports_ready = True
        self.daily_limited: set[str] = set()
        self.busy = 0
        self.lose_answers = 0
        self._ids = itertools.count(1)
        server.expect_request("/", method="POST").respond_with_handler(self.handle)

    @staticmethod
    def _error(code: str, message: str = "") -> Response:
        return _json({"Response": {"Error": {"Code": code, "Message": message or code}, "RequestId": "r"}})

    def _signature_ok(self, request, body: bytes) -> bool:
        match = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/sms/tc3_request, "
            r"SignedHeaders=([a-z0-9;\-]+), Signature=([0-9a-f]{64})",
            request.headers.get("Authorization", ""),
        )
        if not match or match.group(1) != self.secret_id:
            return False
        timestamp = request.headers.get("X-TC-Timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > 300:
            return False
        date = dt.datetime.fromtimestamp(int(timestamp), dt.UTC).strftime("%Y-%m-%d")
        if date != match.group(2):
            return False
        signed = match.group(3).split(";")
        if "host" not in signed or "content-type" not in signed:
            return False
        headers = "".join(f"{h}:{request.headers.get(h, '').strip().lower()}\n" for h in signed)
        canonical = "\n".join(["POST", "/", "", headers, ";".join(signed), _sha256(body)])
        scope = f"{date}/sms/tc3_request"
        to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{_sha256(canonical.encode())}"

        def sign(key: bytes, msg: str) -> bytes:
            return hmac.new(key, msg.encode(), hashlib.sha256).digest()

        key = sign(sign(sign(("TC3" + self.secret_key).encode(), date), "sms"), "tc3_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, match.group(4))

    def handle(self, request):
        body = request.get_data()
        action = request.headers.get("X-TC-Action", "")
        self.calls[action] += 1
        if not self._signature_ok(request, body):
            return self._error("AuthFailure.SignatureFailure", "the signature does not match")
        self.verified += 1
        payload = json.loads(body or b"{}")
        if payload.get("SmsSdkAppId") != self.app_id:
            return self._error("FailedOperation.SmsSdkAppIdVerifyFail")
        if action == "PullSmsSendStatus":
            return _json({"Response": {"PullSmsSendStatusSet": [], "RequestId": "r"}})
        if action == "PullSmsSendStatusByPhoneNumber":
            return self._reports(payload)
        if action != "SendSms":
            return self._error("InvalidAction")
        numbers = payload.get("PhoneNumberSet") or []
        if not numbers or len(numbers) > 200:
            return self._error("LimitExceeded.PhoneNumberCountLimit", "at most 200 numbers")
        if payload.get("SignName") != self.sign:
            return self._error("FailedOperation.SignatureIncorrectOrUnapproved")
        context = payload.get("SessionContext", "")
        if self.busy:
            self.busy -= 1
            return self._error("RequestLimitExceeded", "request frequency over limit")
        statuses = []
        for number in numbers:
            if not re.fullmatch(r"\+\d{8,15}", number):
                code = "InvalidParameterValue.IncorrectPhoneNumber"
            elif number in self.daily_limited:
                code = "LimitExceeded.PhoneNumberDailyLimit"
            else:
                code = "Ok"
            statuses.append(
                {
                    "SerialNo": f"2433:{next(self._ids)}" if code == "Ok" else "",
                    "PhoneNumber": number,
                    "Fee": 1 if code == "Ok" else 0,
                    "SessionContext": context,
                    "Code": code,
                    "Message": "send success" if code == "Ok" else code,
                    "IsoCode": "CN",
                }
            )
        self.sends.append(
            {"context": context, "numbers": [s["PhoneNumber"] for s in statuses if s["Code"] == "Ok"]}
        )
        if context:
            self.duplicates += context in self.by_context
            self.by_context[context] = statuses
        if self.lose_answers:
            self.lose_answers -= 1
            return Response("bad gateway", status=502)
        return _json({"Response": {"SendStatusSet": statuses, "RequestId": "r"}})

    def _reports(self, payload):
        begin, end, limit = payload.get("BeginTime"), payload.get("EndTime"), payload.get("Limit")
        if not isinstance(begin, int) or not isinstance(end, int) or end < begin:
            return self._error("InvalidParameterValue", "BeginTime and EndTime: epoch seconds")
        if not isinstance(limit, int) or not 1 <= limit <= 100 or payload.get("Offset") != 0:
            return self._error("InvalidParameterValue", "Limit 1 to 100, Offset 0")
        number = payload.get("PhoneNumber", "")
        rows = []
        if self.reports_ready:
            for context, statuses in self.by_context.items():
                for status in statuses:
                    if status["PhoneNumber"] == number and status["Code"] == "Ok":
                        rows.append(
                            {
                                "PhoneNumber": number,
                                "SerialNo": status["SerialNo"],
                                "SessionContext": context,
                                "ReportStatus": "SUCCESS",
                                "UserReceiveTime": "2026-03-02 16:00:05",
                            }
                        )
        return _json({"Response": {"PullSmsSendStatusSet": rows[:limit], "RequestId": "r"}})

    def sent_numbers(self) -> int:
        return sum(len(s["numbers"]) for s in self.sends)


# Youzan ------------------------------------------------------------------------
class FakeYouzan:
    """有赞云: ``/auth/token`` (silent grant; tokens expire after ``ttl`` seconds), then
    ``/api/<name>/<version>?access_token=`` with 4201 (unknown token), 4202 (expired),
    ``busy`` calls refused with 4203, tag relations (≤ 20 tags, the known account
    types) and coupons taken."""

    def __init__(
        self, server, client_id="yz-client", client_secret="yz-secret", grant_id="12345", ttl=7 * 86400
    ):
        self.client_id, self.client_secret, self.grant_id, self.ttl = client_id, client_secret, grant_id, ttl
        self.tokens: dict[str, float] = {}
        self.token_calls = 0
        self.calls: Counter = Counter()
        self.busy = 0
        self.relations: set[tuple[str, str, str]] = set()
        self.coupons: list[dict] = []
        self._ids = itertools.count(1)
        server.expect_request("/auth/token", method="POST").respond_with_handler(self.token)
        server.expect_request(
            re.compile(r"^/api/[a-z.]+/\d+\.\d+\.\d+$"), method="POST"
        ).respond_with_handler(self.api)

    def token(self, request):
        self.token_calls += 1
        body = json.loads(request.get_data() or b"{}")
        if body.get("authorize_type") != "silent" or (body.get("client_id"), body.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return _json({"success": False, "code": 4001, "message": "client_id or client_secret invalid"})
        if body.get("grant_id") != self.grant_id:
            return _json({"success": False, "code": 4002, "message": "grant_id invalid"})
        token = f"yz-token-{next(self._ids)}"
        self.tokens[token] = time.time() + self.ttl
        return _json(
            {
                "success": True,
                "code": 200,
                "message": None,
                "data": {"access_token": token, "expires": int(self.tokens[token] * 1000), "scope": "all"},
            }
        )

    @staticmethod
    def _gateway(code: int, message: str) -> Response:
        return _json({"gw_err_resp": {"err_code": code, "err_msg": message}, "success": False})

    def api(self, request):
        _prefix, name, version = request.path.split("/")[1:]
        self.calls[name] += 1
        token = request.args.get("access_token", "")
        if token not in self.tokens:
            return self._gateway(4201, "access_token 不存在")
        if self.tokens[token] <= time.time():
            return self._gateway(4202, "access_token 已过期")
        if self.busy:
            self.busy -= 1
            return self._gateway(4203, "调用频率超过限制")
        body = json.loads(request.get_data() or b"{}")
        if name in ("youzan.scrm.tag.relation.add", "youzan.scrm.tag.relation.delete") and version == "4.0.0":
            tags = [t.get("tag_name") for t in body.get("tags") or []]
            if body.get("account_type") not in (
                "FansID",
                "Mobile",
                "YouZanAccount",
                "OpenUserId",
                "WeiXinOpenId",
                "YzOpenId",
            ):
                return _json({"success": False, "code": 141502101, "message": "account_type invalid"})
            if not isinstance(body.get("account_id"), str) or not 1 <= len(tags) <= 20:
                return _json({"success": False, "code": 141502102, "message": "account_id / tags invalid"})
            for tag in tags:
                key = (body["account_type"], body["account_id"], tag)
                if name.endswith("add"):
                    self.relations.add(key)
                else:
                    self.relations.discard(key)
            return _json({"success": True, "code": 200, "data": True})
        if name == "youzan.ump.coupon.take" and version == "3.0.0":
            if not body.get("coupon_group_id") or not (body.get("yz_open_id") or body.get("mobile")):
                return _json({"success": False, "code": 141503101, "message": "missing parameters"})
            self.coupons.append(body)
            return _json({"success": True, "code": 200, "data": {"coupon_id": next(self._ids)}})
        return self._gateway(4004, "api not found")


# Weimob ------------------------------------------------------------------------
class FakeWeimob:
    """微盟云: ``/fuwu/b/oauth2/token`` (client credentials; tokens expire after ``ttl``),
    then ``/apigw/weimob_cdp/v2.0/customer/tag/bind|unbind?accesstoken=`` with an invalid
    token refused, ``busy`` calls refused for frequency, at most 100 customers a call."""

    INVALID_TOKEN, FREQUENCY = "80001001000119", "80001001000135"

    def __init__(self, server, client_id="wm-client", client_secret="wm-secret", ttl=7200):
        self.client_id, self.client_secret, self.ttl = client_id, client_secret, ttl
        self.tokens: dict[str, float] = {}
        self.token_calls = 0
        self.calls: Counter = Counter()
        self.busy = 0
        self.bound: set[tuple[int, str]] = set()
        self._ids = itertools.count(1)
        server.expect_request("/fuwu/b/oauth2/token", method="POST").respond_with_handler(self.token)
        server.expect_request(
            re.compile(r"^/apigw/weimob_cdp/v2\.0/customer/tag/(bind|unbind)$"), method="POST"
        ).respond_with_handler(self.api)

    def token(self, request):
        self.token_calls += 1
        args = request.args
        if args.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type", "error_description": "grant_type"}, 400)
        if (args.get("client_id"), args.get("client_secret")) != (self.client_id, self.client_secret):
            return _json({"error": "invalid_client", "error_description": "bad client credentials"}, 401)
        token = f"wm-token-{next(self._ids)}"
        self.tokens[token] = time.time() + self.ttl
        return _json(
            {"access_token": token, "token_type": "bearer", "expires_in": self.ttl, "scope": "default"}
        )

    @staticmethod
    def _code(errcode: str, errmsg: str, data=None) -> Response:
        return _json({"code": {"errcode": errcode, "errmsg": errmsg}, "data": data})

    def api(self, request):
        action = request.path.rsplit("/", 1)[1]
        self.calls[action] += 1
        token = request.args.get("accesstoken", "")
        if token not in self.tokens or self.tokens[token] <= time.time():
            return self._code(self.INVALID_TOKEN, "token invalid")
        if self.busy:
            self.busy -= 1
            return self._code(self.FREQUENCY, "调用频率超过限制")
        body = json.loads(request.get_data() or b"{}")
        wids, tags = body.get("widList") or [], body.get("tagIdList") or []
        if not tags or not 1 <= len(wids) <= 100:
            return self._code("1000001", "widList: 1 to 100; tagIdList: at least one")
        for wid in wids:
            for tag in tags:
                (self.bound.add if action == "bind" else self.bound.discard)((wid, tag))
        return self._code("0", "success", {"result": True})
