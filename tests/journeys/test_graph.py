"""Graph validation: a valid journey passes; each kind of mistake gives a sentence
naming the node, never an exception."""

from __future__ import annotations

import copy

import pytest

from tagportal.journeys.graph import Graph, validate
from tests.activation.helpers import account

from .helpers import chain, entry, manual_tag

pytestmark = pytest.mark.django_db


def good(hook) -> dict:
    nodes = [
        ("in", "entry", {"trigger": "event", "event": "signup", "reentry": "after_days", "reentry_days": 30}),
        ("h", "holdout", {"holdout_percent": 10}),
        ("w", "wait", {"mode": "duration", "minutes": 60}),
        ("s", "send", {"account": hook.pk, "content": {"text": "你好"}}),
        ("x", "exit", {}),
    ]
    edges = [
        ("in", "next", "h"),
        ("h", "treatment", "w"),
        ("h", "holdout", "x"),
        ("w", "next", "s"),
        ("s", "next", "x"),
    ]
    return {
        "nodes": [
            {"id": n, "type": t, "label": f"节点{n}", "x": 10, "y": 20, "config": c} for n, t, c in nodes
        ],
        "edges": [{"from": a, "to": b, "port": p} for a, p, b in edges],
        "goal": {
            "kind": "event",
            "event": "store_visit",
            "window_days": 7,
            "from": "send",
            "ends_journey": True,
        },
    }


@pytest.fixture
def hook(world):
    return account(world.own_brand, "webhook")


def test_a_valid_graph_has_no_errors_and_parses(world, hook):
    graph = good(hook)
    assert validate(graph, world.own_brand) == []
    parsed = Graph(graph)
    assert parsed.entry() == "in" and parsed.next("h", "holdout") == "x" and parsed.next("x", "next") is None


def linear(hook):
    return chain(
        ("in", "entry", {"trigger": "event", "event": "signup"}),
        ("s", "send", {"account": hook.pk, "content": {"text": "你好"}}),
        ("x", "exit", {}),
    )


def broken(hook, change) -> dict:
    graph = copy.deepcopy(linear(hook))
    change(graph)
    return graph


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda g: g["nodes"].clear(), "no nodes"),
        (lambda g: g["nodes"].append({"id": "in", "type": "exit"}), "share the id"),
        (lambda g: g["nodes"].append({"id": "z", "type": "teleport"}), "unknown type"),
        (
            lambda g: g["nodes"].append(
                {"id": "e2", "type": "entry", "config": {"trigger": "event", "event": "a"}}
            ),
            "exactly one entry",
        ),
        (lambda g: g["edges"].append({"from": "s", "to": "nowhere"}), "does not exist"),
        (lambda g: g["edges"].append({"from": "s", "to": "x", "port": "else"}), "no way out called"),
        (lambda g: g["edges"].append({"from": "x", "to": "s", "port": "next"}), "no way out called"),
        (lambda g: g["nodes"].append({"id": "lost", "type": "exit", "config": {}}), "cannot be reached"),
        (lambda g: g["edges"].append({"from": "s", "to": "in", "port": "next"}), "connected twice"),
        (lambda g: g["nodes"][0]["config"].update(trigger="magic"), "choose what makes people enter"),
        (lambda g: g["nodes"][0]["config"].update(reentry="after_days", reentry_days=0), "re-entry after"),
        (lambda g: g["nodes"][1]["config"].update(content={"text": ""}), "message text is required"),
        (
            lambda g: g["nodes"][1]["config"].update(content={"template_code": "x"}),
            "not part of this channel",
        ),
        (lambda g: g["nodes"][1]["config"].update(account=999999), "not an active one of this brand"),
        (lambda g: g.update(goal={"kind": "event", "event": "v", "window_days": 0}), "attribution window"),
        (lambda g: g.update(goal="yes"), "goal must be an object"),
    ],
)
def test_bad_graphs_are_explained(world, hook, change, expected):
    errors = validate(broken(hook, change), world.own_brand)
    assert errors and any(expected in e for e in errors), errors


@pytest.mark.parametrize(
    "graph", [None, [], "x", 3, {"nodes": "x"}, {"nodes": [1, 2]}, {"nodes": [{"id": "a b"}]}]
)
def test_malformed_input_never_raises(graph):
    assert validate(graph, None)


def test_loops_are_refused(world, hook):
    graph = chain(
        ("in", "entry", {"trigger": "event", "event": "signup"}),
        ("b", "branch", {"tag": world.own_tag.code, "cases": [{"key": "k1", "values": ["a"]}]}),
        ("s", "send", {"account": hook.pk, "content": {"text": "你好"}}),
        edges=[("b", "k1", "s"), ("b", "else", "s"), ("s", "next", "b")],
    )
    graph["edges"] = [e for e in graph["edges"] if not (e["from"] == "in" and e["to"] == "b")] + [
        {"from": "in", "to": "b", "port": "next"}
    ]
    assert any("loop" in e for e in validate(graph, world.own_brand))
    # a wait in the loop does not make it one: a person passes each node once
    graph["nodes"].append({"id": "w", "type": "wait", "config": {"mode": "duration", "minutes": 5}})
    graph["edges"] = [e for e in graph["edges"] if e["from"] != "s"] + [
        {"from": "s", "to": "w", "port": "next"},
        {"from": "w", "to": "b", "port": "next"},
    ]
    assert any("loop" in e for e in validate(graph, world.own_brand))


def test_node_settings_are_checked(world, hook):
    other_hook = account(world.other_brand, "webhook")
    nodes = [
        ("in", "entry", {"trigger": "audience", "audience": 99999}),
        ("w1", "wait", {"mode": "duration", "minutes": 0}),
        ("w2", "wait", {"mode": "until_time", "time": "25:00"}),
        ("w3", "wait", {"mode": "event", "event": "", "within_minutes": 10}),
        ("sp", "split", {"ways": [{"key": "a", "percent": 50}, {"key": "b", "percent": 40}]}),
        ("h", "holdout", {"holdout_percent": 80}),
        ("s", "send", {"account": other_hook.pk, "content": {"text": "x"}}),
        ("v", "send", {"account": hook.pk, "variants": [{"key": "A", "content": {"text": "x"}}]}),
        ("t", "set_tag", {"tag": world.own_tag.code, "value": "1"}),
        ("sy", "sync_tag", {"account": account(world.own_brand, "wecom").pk, "tag_name": "召回"}),
        ("sc", "entry", {}),
    ]
    graph = {"nodes": [{"id": n, "type": t, "config": c} for n, t, c in nodes[:-1]], "edges": []}
    errors = "\n".join(validate(graph, world.own_brand))
    for text in (
        "audience is not one of this brand's",
        "wait 1 minute to 365 days",
        "HH:MM",
        "event type to wait for",
        "adding up to 100",
        "hold out 1 to 50 percent",
        "not an active one of this brand",
        "2 to 5 variants",
        "only a manual tag can be set",
        "this channel needs “WeCom member who tags (userid)”",
    ):
        assert text in errors, text


def test_a_manual_tag_can_be_set_and_a_cron_schedule_is_checked(world, hook):
    tag = manual_tag(world, "recalled", values=[{"code": "yes", "label": "是"}])
    graph = chain(
        ("in", "entry", {"trigger": "schedule", "audience": None, "schedule": {"cron": "0 10 * * 1"}}),
        ("t", "set_tag", {"tag": tag.code, "value": "yes"}),
    )
    errors = validate(graph, world.own_brand)
    assert errors == ["Node “in”: choose an audience."]
    graph["nodes"][0]["config"]["schedule"] = {"cron": "every monday"}
    assert "the cron expression is not valid" in validate(graph, world.own_brand)[-1]


def test_sync_tag_fields_needed_per_channel_kind(world):
    numbers = iter(range(100))

    def errors_for(kind, settings=None, **config):
        from tests.activation.test_sms_and_shops import make

        name = f"{kind}-{next(numbers)}"
        acc = make(world.own_brand, kind, name=name) if kind in ("youzan", "weimob") else None
        acc = acc or account(world.own_brand, kind, name=name)
        if settings:
            type(acc).objects.filter(pk=acc.pk).update(settings={**acc.settings, **settings})
        graph = chain(entry(), ("sy", "sync_tag", {"account": acc.pk, "tag_name": "召回", **config}))
        return [e for e in validate(graph, world.own_brand) if "Sync" in e]

    assert errors_for("wecom") == ["Sync “sy”: this channel needs “WeCom member who tags (userid)”."]
    assert errors_for("wecom", userid="zhangsan", tag_group="召回活动") == []
    assert errors_for("wecom", settings={"userid": "zhangsan"}) == []  # the account's member tags
    assert errors_for("wecom", userid="zhangsan", tag_group="组" * 31) == [
        "Sync “sy”: the WeCom tag group has at most 30 characters."
    ]
    assert errors_for("weimob") == ["Sync “sy”: this channel needs “Weimob tag id”."]
    assert errors_for("weimob", tag_id="1001") == []
    assert errors_for("wechat_mp") == [] and errors_for("youzan") == []
    assert errors_for("wecom", userid=["x"], tag_group="g") == [
        "Sync “sy”: “WeCom member who tags (userid)” must be text."
    ]
