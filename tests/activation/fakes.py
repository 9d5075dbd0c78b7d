"""Local fakes of the channel platforms (pytest-httpserver) that enforce their documented
contracts: request shapes, limits and error codes, and count what they received."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, defaultdict, deque

from werkzeug import Response

from tagportal.activation.connectors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


def _json(payload: dict, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


def _error(code: int, message: str) -> Response:
    return _json({"errcode": code, "errmsg": message})


class FakeWeCom:
    """WeCom's server API: tokens that expire (``ttl``), ``fail_token_once`` (42001 or
    40014 on the next call), ``busy`` (the next n calls answer 45009) or at most
    ``max_per_second`` calls, relationships (84061 without one), the 10,000 recipients
    and the 30-character tag names."""

    def __init__(self, server, corpid="ww-corp", corpsecret="corp-secret", ttl=7200):
        self.corpid, self.corpsecret, self.ttl = corpid, corpsecret, ttl
        self.clock = time.monotonic
        self.tokens: dict[str, float] = {}
        self.gettoken_calls = 0
        self.calls: Counter = Counter()
        self.fail_token_once: int | None = None
        self.refuse_tokens = False
        self.busy = 0
        self.lose_answers = 0  # mass messages created, their answer lost (502)
        self.max_per_second: int | None = None
        self.recent: deque = deque()
        self.relationships: set[tuple[str, str]] = set()
        self.messages: dict[str, dict] = {}
        self.tag_groups: list[dict] = []
        self.marks: list[dict] = []
        self._ids = itertools.count(1)
        server.expect_request("/cgi-bin/gettoken", method="GET").respond_with_handler(self.gettoken)
        for name in (
            "add_msg_template",
            "get_groupmsg_send_result",
            "get_groupmsg_list_v2",
            "get_corp_tag_list",
            "add_corp_tag",
            "mark_tag",
        ):
            server.expect_request(f"/cgi-bin/externalcontact/{name}", method="POST").respond_with_handler(
                self._guarded(name)
            )

    def gettoken(self, request):
        self.gettoken_calls += 1
        if request.args.get("corpid") != self.corpid:
            return _error(40013, "invalid corpid")
        if request.args.get("corpsecret") != self.corpsecret:
            return _error(40001, "invalid credential")
        token = f"token-{next(self._ids)}"
        self.tokens[token] = self.clock() + self.ttl
        return _json({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.ttl})

    def _guarded(self, name):
        def handle(request):
            self.calls[name] += 1
            token = request.args.get("access_token", "")
            if self.fail_token_once is not None:
                code, self.fail_token_once = self.fail_token_once, None
                return _error(code, "access_token invalid or expired")
            if token not in self.tokens or self.refuse_tokens:
                return _error(40014, "invalid access_token")
            if self.tokens[token] <= self.clock():
                return _error(42001, "access_token expired")
            if self.busy:
                self.busy -= 1
                return _error(45009, "api freq out of limit")
            if self.max_per_second is not None:
                now = self.clock()
                while self.recent and self.recent[0] <= now - 1:
                    self.recent.popleft()
                if len(self.recent) >= self.max_per_second:
                    return _error(45009, "api freq out of limit")
                self.recent.append(now)
            try:
                body = json.loads(request.get_data())
            except ValueError:
                return _error(47001, "data format error")
            return getattr(self, name)(body)

        return handle

    def add_msg_template(self, body):
        ids, sender = body.get("external_userid"), body.get("sender")
        if body.get("chat_type", "single") != "single" or not sender or not isinstance(ids, list):
            return _error(40058, "invalid parameter")
        if not 1 <= len(ids) <= 10_000:
            return _error(40058, "external_userid: at most 10000")
        if "text" not in body and not body.get("attachments"):
            return _error(41048, "no content")
        fail = [i for i in ids if (sender, i) not in self.relationships]
        msgid = f"msg-{next(self._ids)}"
        self.messages[msgid] = {"sender": sender, "ids": ids, "fail": fail, "created": int(time.time())}
        if self.lose_answers:
            self.lose_answers -= 1
            return Response("bad gateway", status=502)
        return _json({"errcode": 0, "errmsg": "ok", "fail_list": fail, "msgid": msgid})

    def get_groupmsg_send_result(self, body):
        message = self.messages.get(body.get("msgid"))
        if message is None or body.get("userid") != message["sender"]:
            return _error(41063, "msgid not found")
        limit = min(int(body.get("limit", 500)), 1000)
        start = int(body.get("cursor") or 0)
        rows = [
            {"external_userid": i, "userid": message["sender"], "status": 2 if i in message["fail"] else 1}
            for i in message["ids"][start : start + limit]
        ]
        nxt = start + limit if start + limit < len(message["ids"]) else ""
        return _json(
            {"errcode": 0, "errmsg": "ok", "send_list": rows, "next_cursor": str(nxt) if nxt else ""}
        )

    def get_groupmsg_list_v2(self, body):
        start, end = body.get("start_time"), body.get("end_time")
        if (
            body.get("chat_type") not in ("single", "group")
            or not isinstance(start, int)
            or not isinstance(end, int)
        ):
            return _error(40058, "chat_type, start_time and end_time are required")
        if not 0 <= end - start <= 31 * 86400:
            return _error(40058, "the time range is at most one month")
        limit = min(int(body.get("limit", 50)), 100)
        found = [
            {"msgid": msgid, "creator": m["sender"], "create_type": 1, "create_time": str(m["created"])}
            for msgid, m in self.messages.items()
            if start <= m["created"] <= end and body.get("creator") in (None, m["sender"])
        ]
        offset = int(body.get("cursor") or 0)
        rest = offset + limit < len(found)
        return _json(
            {
                "errcode": 0,
                "errmsg": "ok",
                "group_msg_list": found[offset : offset + limit],
                "next_cursor": str(offset + limit) if rest else "",
            }
        )

    def get_corp_tag_list(self, body):
        return _json({"errcode": 0, "errmsg": "ok", "tag_group": self.tag_groups})

    def add_corp_tag(self, body):
        names = [t.get("name", "") for t in body.get("tag", [])]
        if not names or any(not n or len(n) > 30 for n in [*names, body.get("group_name") or "x"]):
            return _error(40058, "tag name: 1 to 30 characters")
        group = {
            "group_id": body.get("group_id") or f"grp-{next(self._ids)}",
            "group_name": body.get("group_name", ""),
            "tag": [{"id": f"tag-{next(self._ids)}", "name": n} for n in names],
        }
        self.tag_groups.append(group)
        return _json({"errcode": 0, "errmsg": "ok", "tag_group": group})

    def mark_tag(self, body):
        if (body.get("userid"), body.get("external_userid")) not in self.relationships:
            return _error(84061, "not external contact")
        self.marks.append(body)
        return _json({"errcode": 0, "errmsg": "ok"})


class FakeRobot:
    """The group robot: known keys, at most ``per_window`` messages per key in ``window``
    seconds (45009 beyond), 93000 for an unknown key, 44004 for empty content."""

    def __init__(self, server, keys=("robot-key",), per_window=20, window=60.0):
        self.keys, self.per_window, self.window = set(keys), per_window, window
        self.received: dict[str, list[float]] = defaultdict(list)
        self.refused = 0
        server.expect_request("/cgi-bin/webhook/send", method="POST").respond_with_handler(self.send)

    def send(self, request):
        key = request.args.get("key", "")
        if key not in self.keys:
            return _error(93000, "invalid webhook url")
        body = json.loads(request.get_data())
        msgtype = body.get("msgtype")
        if msgtype not in ("text", "markdown", "news"):
            return _error(40008, "invalid message type")
        if msgtype != "news" and not body.get(msgtype, {}).get("content"):
            return _error(44004, "empty content")
        now = time.monotonic()
        recent = [t for t in self.received[key] if t > now - self.window]
        if len(recent) >= self.per_window:
            self.refused += 1
            return _error(45009, "api freq out of limit")
        self.received[key].append(now)
        return _error(0, "ok")

    def count(self, key="robot-key") -> int:
        return len(self.received[key])


class FakeReceiver:
    """A brand's system receiving signed webhooks: 401 for a bad signature; otherwise
    the next of ``statuses`` (then 200); keeps each body by its idempotency key."""

    def __init__(self, server, secret="signing-secret", path="/hooks/tagportal"):
        self.secret, self.path = secret, path
        self.statuses: list[tuple[int, dict]] = []
        self.calls = 0
        self.verified = 0
        self.received: dict[str, dict] = {}
        server.expect_request(path, method="POST").respond_with_handler(self.handle)

    def handle(self, request):
        self.calls += 1
        body = request.get_data()
        try:
            verify(
                self.secret,
                request.headers.get(TIMESTAMP_HEADER),
                request.headers.get(SIGNATURE_HEADER),
                body,
            )
        except Exception:
            return Response("bad signature", status=401)
        self.verified += 1
        if self.statuses:
            status, headers = self.statuses.pop(0)
            return Response("", status=status, headers=headers)
        self.received[request.headers["Idempotency-Key"]] = json.loads(body)
        return Response("", status=204)


class FakeWeChat:
    """WeChat's server API for a 公众号 and a 小程序: tokens that expire (``ttl``) and
        ``fail_token_once`` (40001/40014/42001 on the next call), ``busy`` (the next n calls
        answer 45009), template messages deduplicated by (openid, ``client_msg_id``) with
        ``sent`` counting real sends, the 50-openid cap of tagging (40032 beyond), known tags
        (45159 otherwise) created by ``tags/create`` (1 to 30 characters: 45158; a name taken:
    45157) and listed by ``tags/get``, users with a full tag list (45059), openids of this appid (49003
        otherwise) and subscriptions (43101 without one; one send uses one grant)."""

    def __init__(self, server, appid="wx-app", appsecret="app-secret", ttl=7200):
        self.appid, self.appsecret, self.ttl = appid, appsecret, ttl
        self.clock = time.monotonic
        self.tokens: dict[str, float] = {}
        self.token_calls = 0
        self.calls: Counter = Counter()
        self.fail_token_once: int | None = None
        self.busy = 0
        self.openids: set[str] = set()  # followers of this appid; others answer 49003
        self.full: set[str] = set()  # users who have the most tags already
        self.tags: dict[int, set[str]] = {100: set()}
        self.tag_names: dict[int, str] = {100: "星标组"}
        self.templates: dict[tuple[str, str], str] = {}  # (openid, client_msg_id) → msgid
        self.sent: list[dict] = []
        self.subscriptions: Counter = Counter()  # (openid, template_id) → grants
        self.subscribe_sent: list[dict] = []
        self._ids = itertools.count(1000)
        server.expect_request("/cgi-bin/token", method="GET").respond_with_handler(self.token)
        server.expect_request("/cgi-bin/tags/get", method="GET").respond_with_handler(
            self._guarded("tags_get")
        )
        for path, name in (
            ("tags/create", "tags_create"),
            ("message/template/send", "template_send"),
            ("tags/members/batchtagging", "batchtagging"),
            ("tags/members/batchuntagging", "batchuntagging"),
            ("message/subscribe/send", "subscribe_send"),
        ):
            server.expect_request(f"/cgi-bin/{path}", method="POST").respond_with_handler(self._guarded(name))

    def token(self, request):
        self.token_calls += 1
        if request.args.get("grant_type") != "client_credential":
            return _error(40002, "invalid grant_type")
        if request.args.get("appid") != self.appid:
            return _error(40013, "invalid appid")
        if request.args.get("secret") != self.appsecret:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        token = f"wx-token-{next(self._ids)}"
        self.tokens[token] = self.clock() + self.ttl
        return _json({"access_token": token, "expires_in": self.ttl})

    def _guarded(self, name):
        def handle(request):
            self.calls[name] += 1
            token = request.args.get("access_token", "")
            if self.fail_token_once is not None:
                code, self.fail_token_once = self.fail_token_once, None
                return _error(code, "access_token invalid or expired")
            if token not in self.tokens:
                return _error(40014, "invalid access_token")
            if self.tokens[token] <= self.clock():
                return _error(42001, "access_token expired")
            if self.busy:
                self.busy -= 1
                return _error(45009, "reach max api daily quota limit")
            if request.method == "GET":
                return getattr(self, name)({})
            try:
                body = json.loads(request.get_data())
            except ValueError:
                return _error(47001, "data format error")
            return getattr(self, name)(body)

        return handle

    def tags_get(self, body):
        return _json(
            {
                "tags": [
                    {"id": i, "name": self.tag_names.get(i, f"tag {i}"), "count": len(o)}
                    for i, o in self.tags.items()
                ]
            }
        )

    def tags_create(self, body):
        name = (body.get("tag") or {}).get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 30:
            return _error(45158, "tag name too long")
        if name in self.tag_names.values():
            return _error(45157, "invalid tag name: duplicate")
        tagid = next(self._ids)
        self.tags[tagid], self.tag_names[tagid] = set(), name
        return _json({"tag": {"id": tagid, "name": name}})

    def template_send(self, body):
        openid, template_id, key = body.get("touser"), body.get("template_id"), body.get("client_msg_id")
        if not openid or openid not in self.openids:
            return _error(40003, "invalid openid")
        data = body.get("data")
        if not template_id or not isinstance(data, dict) or any("value" not in v for v in data.values()):
            return _error(47003, "argument invalid! data.value invalid")
        if key and (openid, key) in self.templates:
            return _json({"errcode": 0, "errmsg": "ok", "msgid": self.templates[(openid, key)]})
        msgid = next(self._ids)
        if key:
            self.templates[(openid, key)] = msgid
        self.sent.append(body)
        return _json({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    def _tagging(self, body, add: bool):
        openids, tagid = body.get("openid_list"), body.get("tagid")
        if not isinstance(openids, list) or not openids:
            return _error(40032, "invalid openid list size")
        if len(openids) > 50:
            return _error(40032, "invalid openid list size, at most 50")
        if tagid not in self.tags:
            return _error(45159, "invalid tag id")
        if any(o not in self.openids for o in openids):
            return _error(49003, "not match openid with appid")
        if add and any(o in self.full for o in openids):
            return _error(45059, "has too many tags")
        if add:
            self.tags[tagid].update(openids)
        else:
            self.tags[tagid].difference_update(openids)
        return _error(0, "ok")

    def batchtagging(self, body):
        return self._tagging(body, True)

    def batchuntagging(self, body):
        return self._tagging(body, False)

    def subscribe_send(self, body):
        openid, template_id = body.get("touser"), body.get("template_id")
        if not openid or openid not in self.openids:
            return _error(40003, "invalid openid")
        if body.get("miniprogram_state", "formal") not in ("developer", "trial", "formal"):
            return _error(47003, "argument invalid! miniprogram_state")
        data = body.get("data")
        if not isinstance(data, dict) or not data or any("value" not in v for v in data.values()):
            return _error(47003, "argument invalid! data.value invalid")
        if self.subscriptions[(openid, template_id)] <= 0:
            return _error(43101, "user refuse to accept the msg")
        self.subscriptions[(openid, template_id)] -= 1
        self.subscribe_sent.append(body)
        return _error(0, "ok")
