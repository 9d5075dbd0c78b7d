"""A journey version's graph: its JSON shape, the checks it must pass, and a parsed form
the runner walks.

The JSON (``JourneyVersion.graph``)::

    {"nodes": [{"id": "n1", "type": "entry", "label": "…", "x": 40, "y": 80, "config": {…}}, …],
     "edges": [{"from": "n1", "to": "n2", "port": "next"}, …],
     "goal": {"kind": "event", "event": "store_visit", "window_days": 7, "from": "entry",
              "ends_journey": true} or null}

:func:`validate` answers the list of problems (empty: the graph may run), each a
sentence for the editor; it never raises on malformed input.

>>> g = {"nodes": [{"id": "a", "type": "entry", "config": {"trigger": "event", "event": "x"}},
...                {"id": "b", "type": "exit", "config": {}}],
...      "edges": [{"from": "a", "to": "b", "port": "next"}]}
>>> validate(g, None)
[]
>>> Graph(g).next("a", "next")
'b'
"""

from __future__ import annotations

import datetime as dt
import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .choices import NodeType, Reentry, Trigger

NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
PORT_KEY = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_NODES = 200
MAX_WAIT_MINUTES = 365 * 24 * 60
MAX_WINDOW_DAYS = 365
MAX_REENTRY_DAYS = 3650
EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
#: The wait-for-event config that waits for an order rather than an event type.
ORDER = "order"


def ports(node: dict) -> list[str]:
    """The out ports of a node (``[]`` for an exit)."""
    kind, config = node.get("type"), node.get("config") or {}
    if kind == NodeType.EXIT:
        return []
    if kind == NodeType.WAIT:
        return ["happened", "timeout"] if config.get("mode") == "event" else ["next"]
    if kind == NodeType.BRANCH:
        cases = config.get("cases") if isinstance(config.get("cases"), list) else []
        return [c.get("key") for c in cases if isinstance(c, dict)] + ["else"]
    if kind == NodeType.SPLIT:
        ways = config.get("ways") if isinstance(config.get("ways"), list) else []
        return [w.get("key") for w in ways if isinstance(w, dict)]
    if kind == NodeType.HOLDOUT:
        return ["treatment", "holdout"]
    return ["next"]


class Graph:
    """A parsed, already validated graph."""

    def __init__(self, data: dict):
        data = data if isinstance(data, dict) else {}
        self.nodes: dict[str, dict] = {
            n["id"]: n for n in data.get("nodes") or [] if isinstance(n, dict) and "id" in n
        }
        self.edges: dict[tuple[str, str], str] = {
            (e["from"], e.get("port") or "next"): e["to"]
            for e in data.get("edges") or []
            if isinstance(e, dict) and "from" in e and "to" in e
        }
        self.goal: dict | None = data.get("goal") or None

    def node(self, node_id: str) -> dict:
        return self.nodes[node_id]

    def config(self, node_id: str) -> dict:
        return self.nodes[node_id].get("config") or {}

    def type(self, node_id: str) -> str:
        return self.nodes[node_id].get("type", "")

    def entry(self) -> str:
        return next(nid for nid, n in self.nodes.items() if n.get("type") == NodeType.ENTRY)

    def next(self, node_id: str, port: str = "next") -> str | None:
        """The node an out port leads to (``None``: nothing connected, the person is done)."""
        return self.edges.get((node_id, port))


# validation ------------------------------------------------------------------------
def _int(value, low: int, high: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _name(node: dict) -> str:
    return str(node.get("label") or node.get("id"))


def validate(graph, brand) -> list[str]:
    """The problems of ``graph`` for ``brand`` (its audiences, tags and channel accounts);
    ``brand`` None checks the shape only."""
    if not isinstance(graph, dict):
        return [_("The journey graph must be an object with nodes and edges.")]
    nodes, edges = graph.get("nodes"), graph.get("edges", [])
    if not isinstance(nodes, list) or not nodes:
        return [_("The journey has no nodes.")]
    if not isinstance(edges, list):
        return [_("The edges must be a list.")]
    if len(nodes) > MAX_NODES:
        return [_("A journey has at most %(n)s nodes.") % {"n": MAX_NODES}]
    errors: list[str] = []
    by_id: dict[str, dict] = {}
    for node in nodes:
        if not isinstance(node, dict):
            errors.append(_("Each node must be an object."))
            continue
        nid = node.get("id")
        if not isinstance(nid, str) or not NODE_ID.match(nid):
            errors.append(_("A node id must be 1–40 letters, digits, “-” or “_”."))
            continue
        if nid in by_id:
            errors.append(_("Two nodes share the id “%(id)s”.") % {"id": nid})
            continue
        if node.get("type") not in NodeType.values:
            errors.append(_("Node “%(node)s” has an unknown type.") % {"node": _name(node)})
            continue
        if not isinstance(node.get("config", {}), dict):
            errors.append(_("The settings of node “%(node)s” must be an object.") % {"node": _name(node)})
            continue
        by_id[nid] = node
    if errors:
        return errors

    entries = [n for n in by_id.values() if n["type"] == NodeType.ENTRY]
    if len(entries) != 1:
        errors.append(_("A journey has exactly one entry node."))

    outgoing: dict[str, dict[str, str]] = {nid: {} for nid in by_id}
    incoming: dict[str, int] = dict.fromkeys(by_id, 0)
    for edge in edges:
        if not isinstance(edge, dict):
            errors.append(_("Each edge must be an object."))
            continue
        source, target, port = edge.get("from"), edge.get("to"), edge.get("port") or "next"
        if source not in by_id or target not in by_id:
            errors.append(_("An edge joins a node that does not exist."))
            continue
        if port not in ports(by_id[source]):
            errors.append(
                _("Node “%(node)s” has no way out called “%(port)s”.")
                % {"node": _name(by_id[source]), "port": port}
            )
            continue
        if port in outgoing[source]:
            errors.append(
                _("The way out “%(port)s” of node “%(node)s” is connected twice.")
                % {"node": _name(by_id[source]), "port": port}
            )
            continue
        if source == target:
            errors.append(_("Node “%(node)s” is connected to itself.") % {"node": _name(by_id[source])})
            continue
        outgoing[source][port] = target
        incoming[target] += 1

    for node in entries:
        if incoming[node["id"]]:
            errors.append(_("Nothing may lead into the entry node."))
    if len(entries) == 1 and not errors:
        errors += _reachability(entries[0]["id"], by_id, outgoing)
        errors += _cycles(by_id, outgoing)

    for node in by_id.values():
        errors += CHECKS[node["type"]](node, node.get("config") or {}, brand)
    errors += _check_goal(graph.get("goal"))
    return errors


def _reachability(entry: str, by_id: dict, outgoing: dict) -> list[str]:
    seen, todo = {entry}, [entry]
    while todo:
        for target in outgoing[todo.pop()].values():
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return [
        _("Node “%(node)s” cannot be reached from the entry.") % {"node": _name(by_id[nid])}
        for nid in by_id
        if nid not in seen
    ]


def _cycles(by_id: dict, outgoing: dict) -> list[str]:
    """A person passes each node at most once (a step is recorded once per node): no loops."""
    state: dict[str, int] = {}

    def visit(nid: str) -> bool:
        state[nid] = 1
        for target in outgoing[nid].values():
            if state.get(target) == 1 or (state.get(target) is None and visit(target)):
                return True
        state[nid] = 2
        return False

    if any(state.get(nid) is None and visit(nid) for nid in by_id):
        return [_("The journey has a loop: each node is passed at most once.")]
    return []


def _check_entry(node: dict, config: dict, brand) -> list[str]:
    name, errors = _name(node), []
    trigger = config.get("trigger")
    if trigger not in Trigger.values:
        return [_("Entry “%(node)s”: choose what makes people enter.") % {"node": name}]
    if trigger in (Trigger.AUDIENCE, Trigger.SCHEDULE):
        errors += _check_audience(name, config.get("audience"), brand)
    if trigger == Trigger.TAG:
        errors += _check_tag(name, config.get("tag"), brand, manual=False)
        if not isinstance(config.get("value"), str) or not config["value"].strip():
            errors.append(_("Entry “%(node)s”: give the tag value that makes people enter.") % {"node": name})
    if trigger == Trigger.EVENT and not _event_type(config.get("event")):
        errors.append(_("Entry “%(node)s”: give the event type that makes people enter.") % {"node": name})
    if trigger == Trigger.SCHEDULE:
        errors += _check_schedule(name, config.get("schedule"))
    reentry = config.get("reentry", Reentry.NEVER)
    if reentry not in Reentry.values:
        errors.append(_("Entry “%(node)s”: re-entry is “never” or “after some days”.") % {"node": name})
    elif reentry == Reentry.AFTER_DAYS and _int(config.get("reentry_days"), 1, MAX_REENTRY_DAYS) is None:
        errors.append(
            _("Entry “%(node)s”: re-entry after 1 to %(n)s days.") % {"node": name, "n": MAX_REENTRY_DAYS}
        )
    return errors


def _event_type(value) -> bool:
    return isinstance(value, str) and bool(EVENT_TYPE.match(value))


def _check_schedule(name: str, schedule) -> list[str]:
    from croniter import croniter

    if not isinstance(schedule, dict) or not ({"once_at", "cron"} & set(schedule)):
        return [_("Entry “%(node)s”: give a time (once) or a cron expression.") % {"node": name}]
    if "cron" in schedule:
        if not isinstance(schedule["cron"], str) or not croniter.is_valid(schedule["cron"]):
            return [_("Entry “%(node)s”: the cron expression is not valid.") % {"node": name}]
        return []
    if parse_moment(schedule.get("once_at")) is None:
        return [_("Entry “%(node)s”: the time must be a date and time (ISO 8601).") % {"node": name}]
    return []


def parse_moment(value) -> dt.datetime | None:
    """An ISO datetime, aware (a naive one is Beijing time); ``None`` if it is not one."""
    from tagportal.core.days import BEIJING

    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=BEIJING)


def _check_audience(name: str, audience_id, brand) -> list[str]:
    if _int(audience_id, 1, 2**63) is None:
        return [_("Node “%(node)s”: choose an audience.") % {"node": name}]
    if brand is None:
        return []
    from tagportal.audiences.models import Audience

    if not Audience.objects.filter(pk=audience_id, brand=brand).exists():
        return [_("Node “%(node)s”: the audience is not one of this brand's.") % {"node": name}]
    return []


def _check_tag(name: str, code, brand, *, manual: bool) -> list[str]:
    if not isinstance(code, str) or not code.strip():
        return [_("Node “%(node)s”: choose a tag.") % {"node": name}]
    if brand is None:
        return []
    from tagportal.catalog.choices import TagKind
    from tagportal.catalog.models import Tag

    tag = Tag.objects.filter(code=code, brand=brand).first()
    if tag is None:
        return [_("Node “%(node)s”: the brand has no tag “%(code)s”.") % {"node": name, "code": code}]
    if manual and tag.kind != TagKind.MANUAL:
        return [_("Node “%(node)s”: only a manual tag can be set by a journey.") % {"node": name}]
    return []


def _check_wait(node: dict, config: dict, brand) -> list[str]:
    name, mode = _name(node), config.get("mode")
    if mode == "duration":
        if _int(config.get("minutes"), 1, MAX_WAIT_MINUTES) is None:
            return [_("Wait “%(node)s”: wait 1 minute to 365 days.") % {"node": name}]
    elif mode == "until_time":
        if not isinstance(config.get("time"), str) or not TIME_OF_DAY.match(config["time"]):
            return [_("Wait “%(node)s”: the time of day is HH:MM (Beijing time).") % {"node": name}]
    elif mode == "event":
        errors = []
        if config.get("event") != ORDER and not _event_type(config.get("event")):
            errors.append(_("Wait “%(node)s”: give the event type to wait for.") % {"node": name})
        if _int(config.get("within_minutes"), 1, MAX_WAIT_MINUTES) is None:
            errors.append(_("Wait “%(node)s”: wait for the event 1 minute to 365 days.") % {"node": name})
        return errors
    else:
        return [_("Wait “%(node)s”: choose how long to wait.") % {"node": name}]
    return []


def _keys(items, name: str, what: str) -> list[str]:
    keys = [i.get("key") for i in items]
    if any(not isinstance(k, str) or not PORT_KEY.match(k) for k in keys):
        return [
            _("Node “%(node)s”: each %(what)s needs a short key (letters, digits).")
            % {"node": name, "what": what}
        ]
    if len(set(keys)) != len(keys) or "else" in keys:
        return [_("Node “%(node)s”: the %(what)s keys must differ.") % {"node": name, "what": what}]
    return []


def _check_branch(node: dict, config: dict, brand) -> list[str]:
    name = _name(node)
    errors = _check_tag(name, config.get("tag"), brand, manual=False)
    cases = config.get("cases")
    if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) for c in cases):
        return [*errors, _("Branch “%(node)s”: add at least one case.") % {"node": name}]
    errors += _keys(cases, name, _("case"))
    for case in cases:
        values = case.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            errors.append(_("Branch “%(node)s”: each case lists the tag values it takes.") % {"node": name})
            break
    return errors


def _check_split(node: dict, config: dict, brand) -> list[str]:
    name, ways = _name(node), config.get("ways")
    if not isinstance(ways, list) or not 2 <= len(ways) <= 10 or not all(isinstance(w, dict) for w in ways):
        return [_("Split “%(node)s”: 2 to 10 ways.") % {"node": name}]
    errors = _keys(ways, name, _("way"))
    shares = [_int(w.get("percent"), 1, 99) for w in ways]
    if None in shares or sum(shares) != 100:
        errors.append(
            _("Split “%(node)s”: the percentages are whole numbers adding up to 100.") % {"node": name}
        )
    return errors


def _check_holdout(node: dict, config: dict, brand) -> list[str]:
    if _int(config.get("holdout_percent"), 1, 50) is None:
        return [_("Holdout “%(node)s”: hold out 1 to 50 percent.") % {"node": _name(node)}]
    return []


def _account(name: str, account_id, brand, *, messages: bool):
    """(account or None, errors)."""
    if _int(account_id, 1, 2**63) is None:
        return None, [_("Node “%(node)s”: choose a channel account.") % {"node": name}]
    if brand is None:
        return None, []
    from tagportal.activation.models import ChannelAccount

    account = ChannelAccount.objects.filter(pk=account_id, brand=brand, is_active=True).first()
    if account is None:
        return None, [
            _("Node “%(node)s”: the channel account is not an active one of this brand.") % {"node": name}
        ]
    return account, []


def _content_errors(name: str, kind: str, content) -> list[str]:
    from tagportal.activation.sends import SendRefused, check_content

    try:
        check_content(kind, content)
    except SendRefused as exc:
        return [_("Send “%(node)s”: %(error)s") % {"node": name, "error": m} for m in exc.messages]
    return []


def _check_send(node: dict, config: dict, brand) -> list[str]:
    name = _name(node)
    account, errors = _account(name, config.get("account"), brand, messages=True)
    variants = config.get("variants")
    if variants is not None:
        if (
            not isinstance(variants, list)
            or not 2 <= len(variants) <= 5
            or not all(isinstance(v, dict) for v in variants)
        ):
            return [*errors, _("Send “%(node)s”: 2 to 5 variants.") % {"node": name}]
        errors += _keys(variants, name, _("variant"))
        if config.get("learning", "significance") not in ("significance", "thompson"):
            errors.append(_("Send “%(node)s”: choose how the winning variant is learned.") % {"node": name})
        contents = [v.get("content") for v in variants]
    else:
        contents = [config.get("content")]
    if account is not None:
        for content in contents:
            errors += _content_errors(name, account.kind, content)
    elif brand is None and any(not isinstance(c, dict) for c in contents):
        errors.append(_("Send “%(node)s”: the message content must be an object.") % {"node": name})
    return errors


#: The platform-tag fields of a ``sync_tag`` node per channel kind (as
#: ``activation.syncs.tag_people`` takes them), and whether each is required: WeCom's
#: member who tags (``userid``; optional when the account's settings name one) and the
#: tag group (default: the tag name); 微盟's tag id. 公众号 and 有赞 need the name only.
SYNC_FIELDS: dict[str, tuple[tuple[str, bool], ...]] = {
    "wecom": (("userid", True), ("tag_group", False)),
    "weimob": (("tag_id", True),),
}
SYNC_FIELD_LABELS = {
    "userid": gettext_lazy("WeCom member who tags (userid)"),
    "tag_group": gettext_lazy("WeCom tag group"),
    "tag_id": gettext_lazy("Weimob tag id"),
}
#: The longest tag group name WeCom takes.
MAX_TAG_GROUP = 30


def sync_required(kind: str, account_settings: dict | None = None) -> list[str]:
    """The fields a ``sync_tag`` node through an account of ``kind`` must set."""
    out = []
    for field, required in SYNC_FIELDS.get(kind, ()):
        if field == "userid" and str((account_settings or {}).get("userid") or "").strip():
            required = False  # the account's own member tags
        if required:
            out.append(field)
    return out


def _check_sync_tag(node: dict, config: dict, brand) -> list[str]:
    name = _name(node)
    account, errors = _account(name, config.get("account"), brand, messages=False)
    tag_name = config.get("tag_name")
    if not isinstance(tag_name, str) or not tag_name.strip() or len(tag_name) > 30:
        errors.append(
            _("Sync “%(node)s”: give the platform tag name (at most 30 characters).") % {"node": name}
        )
    for field in ("userid", "tag_group", "tag_id"):
        value = config.get(field)
        if value is not None and not isinstance(value, str | int):
            errors.append(
                _("Sync “%(node)s”: “%(field)s” must be text.")
                % {"node": name, "field": SYNC_FIELD_LABELS[field]}
            )
    if len(str(config.get("tag_group") or "")) > MAX_TAG_GROUP:
        errors.append(
            _("Sync “%(node)s”: the WeCom tag group has at most %(max)s characters.")
            % {"node": name, "max": MAX_TAG_GROUP}
        )
    if account is not None:
        if account.kind not in ("wecom", "wechat_mp", "youzan", "weimob"):
            errors.append(_("Sync “%(node)s”: this channel has no customer tags.") % {"node": name})
        for field in sync_required(account.kind, account.settings):
            if not str(config.get(field) or "").strip():
                errors.append(
                    _("Sync “%(node)s”: this channel needs “%(field)s”.")
                    % {"node": name, "field": SYNC_FIELD_LABELS[field]}
                )
    return errors


def _check_set_tag(node: dict, config: dict, brand) -> list[str]:
    name = _name(node)
    errors = _check_tag(name, config.get("tag"), brand, manual=True)
    if not isinstance(config.get("value"), str) or not config["value"].strip():
        errors.append(_("Set tag “%(node)s”: give the value to set.") % {"node": name})
    return errors


def _check_exit(node: dict, config: dict, brand) -> list[str]:
    return []


CHECKS = {
    NodeType.ENTRY: _check_entry,
    NodeType.WAIT: _check_wait,
    NodeType.BRANCH: _check_branch,
    NodeType.SPLIT: _check_split,
    NodeType.HOLDOUT: _check_holdout,
    NodeType.SEND: _check_send,
    NodeType.SYNC_TAG: _check_sync_tag,
    NodeType.SET_TAG: _check_set_tag,
    NodeType.EXIT: _check_exit,
}


def _check_goal(goal) -> list[str]:
    if goal is None:
        return []
    if not isinstance(goal, dict):
        return [_("The goal must be an object or empty.")]
    errors = []
    if goal.get("kind") not in ("event", "order"):
        errors.append(_("The goal is an event or an order."))
    elif goal["kind"] == "event" and not _event_type(goal.get("event")):
        errors.append(_("Give the event type of the goal."))
    if _int(goal.get("window_days"), 1, MAX_WINDOW_DAYS) is None:
        errors.append(_("The goal's attribution window is 1 to %(n)s days.") % {"n": MAX_WINDOW_DAYS})
    if goal.get("from", "entry") not in ("entry", "send"):
        errors.append(_("The goal's window starts at the entry or at the last send."))
    if not isinstance(goal.get("ends_journey", True), bool):
        errors.append(_("Say whether reaching the goal ends the journey."))
    return errors
