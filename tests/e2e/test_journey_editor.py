"""An operator draws a small journey in the editor (entry → wait → send → exit) with the
palette, the ports and the side panel's pickers, saves it, and it is stored as a draft
version; a save refused by the server shows the message beside the node."""

import re

import pytest

from tagportal.journeys import lifecycle
from tagportal.journeys.choices import VersionState
from tagportal.journeys.models import Journey

from ..activation.helpers import account
from .test_review import login

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def connect(page, source: str, port: str, target: str):
    """Click a node's way out, then the node it leads to."""
    page.click(f".tp-node[data-id={source}] .tp-port[data-port={port}]")
    page.click(f".tp-node[data-id={target}] .tp-node-head")
    page.wait_for_selector(
        f"g.tp-edge[data-from={source}][data-to={target}][data-port={port}]", state="attached"
    )


def test_operator_draws_and_saves_a_journey(live_server, page, world):
    wecom = account(world.own_brand, "wecom", name="瑞颜企业微信")
    login(page, live_server, "op", "pw")
    page.goto(f"{live_server.url}/journeys/new/")
    page.wait_for_selector("#tp-canvas[data-ready='1']")
    for kind in ("entry", "wait", "send", "exit"):
        page.click(f"#tp-palette [data-type={kind}]")
    assert page.locator(".tp-node").count() == 4

    # entry: when a store visit happens
    page.click(".tp-node[data-id=n1] .tp-node-head")
    page.select_option("#tp-cfg-trigger", "event")
    page.select_option("#tp-cfg-event", "store_visit")
    assert "store_visit" in page.locator(".tp-node[data-id=n1] .tp-node-summary").inner_text()

    # wait two hours
    page.click(".tp-node[data-id=n2] .tp-node-head")
    page.fill("#tp-cfg-minutes input[type=number]", "2")
    page.select_option("#tp-cfg-minutes select", "60")  # hours
    assert re.search(r"2 (hours|小时)", page.locator(".tp-node[data-id=n2] .tp-node-summary").inner_text())

    # send on WeCom
    page.click(".tp-node[data-id=n3] .tp-node-head")
    page.select_option("#tp-cfg-account", str(wecom.pk))
    page.fill("#tp-panel textarea[data-content=text]", "您好，欢迎再次到店")
    page.fill("#tp-panel input[data-content=sender]", "zhangsan")

    # a node dragged with the mouse keeps its place
    head = page.locator(".tp-node[data-id=n4] .tp-node-head").bounding_box()
    page.mouse.move(head["x"] + 20, head["y"] + 5)
    page.mouse.down()
    page.mouse.move(head["x"] + 260, head["y"] + 45, steps=6)
    page.mouse.up()

    connect(page, "n1", "next", "n2")
    connect(page, "n2", "next", "n3")
    connect(page, "n3", "next", "n4")
    page.fill("#id_name", "到店后回访")
    page.click("#tp-save")
    page.wait_for_selector("#tp-journey-actions")

    journey = Journey.objects.get(name="到店后回访")
    assert journey.brand == world.own_brand
    version = lifecycle.latest_version(journey)
    assert version.state == VersionState.DRAFT
    graph = version.graph
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert [nodes[i]["type"] for i in ("n1", "n2", "n3", "n4")] == ["entry", "wait", "send", "exit"]
    assert nodes["n1"]["config"]["event"] == "store_visit"
    assert nodes["n2"]["config"] == {"mode": "duration", "minutes": 120}
    assert nodes["n3"]["config"]["account"] == wecom.pk
    assert nodes["n3"]["config"]["content"] == {"text": "您好，欢迎再次到店", "sender": "zhangsan"}
    assert nodes["n4"]["x"] >= 200  # dragged to the right
    assert sorted((e["from"], e["port"], e["to"]) for e in graph["edges"]) == [
        ("n1", "next", "n2"),
        ("n2", "next", "n3"),
        ("n3", "next", "n4"),
    ]


def test_a_refused_save_shows_the_message_beside_the_node(live_server, page, world):
    login(page, live_server, "op", "pw")
    page.goto(f"{live_server.url}/journeys/new/")
    page.wait_for_selector("#tp-canvas[data-ready='1']")
    page.click("#tp-palette [data-type=entry]")
    page.click("#tp-palette [data-type=exit]")
    connect(page, "n1", "next", "n2")
    page.fill("#id_name", "缺人群")
    page.click("#tp-save")  # the entry has no audience chosen
    page.wait_for_selector(".tp-node[data-id=n1] .tp-node-errors")
    assert "n1" in page.locator(".tp-node[data-id=n1] .tp-node-errors").inner_text()
    assert page.locator(".tp-node").count() == 2  # the drawing is kept
    assert not Journey.objects.filter(name="缺人群").exists()


def test_the_sync_node_takes_the_fields_its_channel_kind_needs(live_server, page, world):
    from ..activation.test_sms_and_shops import make

    wecom = account(world.own_brand, "wecom", name="瑞颜企业微信")
    weimob = make(world.own_brand, "weimob", name="瑞颜微盟")
    login(page, live_server, "op", "pw")
    page.goto(f"{live_server.url}/journeys/new/")
    page.wait_for_selector("#tp-canvas[data-ready='1']")
    for kind in ("entry", "sync_tag", "exit"):
        page.click(f"#tp-palette [data-type={kind}]")
    page.click(".tp-node[data-id=n1] .tp-node-head")
    page.select_option("#tp-cfg-trigger", "event")
    page.select_option("#tp-cfg-event", "store_visit")
    connect(page, "n1", "next", "n2")
    connect(page, "n2", "next", "n3")

    # WeCom: the member who tags (required: the account names none) and the tag group
    page.click(".tp-node[data-id=n2] .tp-node-head")
    page.select_option("#tp-cfg-sync-account", str(weimob.pk))
    assert page.locator("#tp-cfg-sync-tag_id").count() == 1
    assert page.locator("#tp-cfg-sync-userid").count() == 0
    page.select_option("#tp-cfg-sync-account", str(wecom.pk))
    assert page.locator("#tp-cfg-sync-tag_id").count() == 0
    assert "userid" in page.locator("label[for=tp-cfg-sync-userid]").inner_text()
    page.fill("#tp-panel .tp-field input[maxlength='30']:not([id^=tp-cfg-sync])", "到店召回")
    page.fill("#id_name", "企微打标")
    page.click("#tp-save")  # no userid yet: refused, the message beside the node
    page.wait_for_selector(".tp-node[data-id=n2] .tp-node-errors")
    assert "userid" in page.locator(".tp-node[data-id=n2] .tp-node-errors").inner_text()
    assert not Journey.objects.filter(name="企微打标").exists()

    page.click(".tp-node[data-id=n2] .tp-node-head")
    page.fill("#tp-cfg-sync-userid", "zhangsan")
    page.fill("#tp-cfg-sync-tag_group", "召回活动")
    page.click("#tp-save")
    page.wait_for_selector("#tp-journey-actions")
    version = lifecycle.latest_version(Journey.objects.get(name="企微打标"))
    node = next(n for n in version.graph["nodes"] if n["id"] == "n2")
    assert node["config"] == {
        "account": wecom.pk,
        "tag_name": "到店召回",
        "userid": "zhangsan",
        "tag_group": "召回活动",
    }
