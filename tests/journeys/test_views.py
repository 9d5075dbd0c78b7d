"""The journey pages: who sees what, saving a drawing (with the messages beside the nodes
it is refused for), the actions, the review with four eyes, and the journey's numbers."""

from __future__ import annotations

import json

from django.utils import timezone

from tagportal.journeys import lifecycle
from tagportal.journeys.choices import InstanceState, JourneyStatus, VersionState
from tagportal.journeys.models import Conversion, InstanceStep, Journey, JourneyInstance

from .portal_helpers import draft, live, simple_graph


def logged_in(client, user):
    client.force_login(user)
    return client


def test_list_shows_own_brand_only(client, world):
    mine = draft(world, "欢迎新客")
    Journey.objects.create(brand=world.other_brand, name="别家的旅程")
    page = logged_in(client, world.operator).get("/journeys/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "欢迎新客" in html and "别家的旅程" not in html
    assert f'data-journey="{mine.pk}"' in html
    assert 'id="tp-new-journey"' in html


def test_pages_need_a_login(client, world):
    journey = draft(world)
    for url in ("/journeys/", "/journeys/new/", f"/journeys/{journey.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and "login" in response["Location"]


def test_the_analyst_may_view_but_not_draw(client, world):
    journey = draft(world)
    logged_in(client, world.analyst)
    assert client.get(f"/journeys/{journey.pk}/").status_code == 200
    assert client.get("/journeys/new/").status_code == 403
    assert client.get(f"/journeys/{journey.pk}/edit/").status_code == 403
    assert 'id="tp-new-journey"' not in client.get("/journeys/").content.decode()


def test_another_brands_journey_is_404(client, world):
    other = Journey.objects.create(brand=world.other_brand, name="别家的旅程")
    logged_in(client, world.operator)
    assert client.get(f"/journeys/{other.pk}/").status_code == 404
    assert client.post(f"/journeys/{other.pk}/pause/").status_code == 404


def test_the_editor_gives_its_script_the_pickers(client, world):
    page = logged_in(client, world.operator).get("/journeys/new/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="tp-canvas"' in html and 'id="tp-palette"' in html
    catalog = page.context["catalog"]
    assert {t["code"] for t in catalog["tags"]} == {world.own_tag.code}  # not the other brand's
    assert "store_visit" in {e["code"] for e in catalog["events"]}
    assert set(catalog["content"]["sms_aliyun"]["required"]) == {"template_code"}
    assert page.context["strings"]["type_wait"] == "Wait"


def test_saving_a_drawing_stores_a_draft(client, world):
    logged_in(client, world.operator)
    response = client.post(
        "/journeys/new/",
        {
            "brand": world.own_brand.pk,
            "name": "到店回访",
            "description": "",
            "graph": json.dumps(simple_graph()),
        },
    )
    journey = Journey.objects.get(name="到店回访")
    assert response.status_code == 302 and response["Location"] == f"/journeys/{journey.pk}/"
    version = lifecycle.latest_version(journey)
    assert (version.number, version.state, version.graph) == (1, VersionState.DRAFT, simple_graph())
    # saving again rewrites the draft
    changed = simple_graph(minutes=15)
    client.post(
        f"/journeys/{journey.pk}/edit/",
        {"name": "到店回访", "description": "改", "graph": json.dumps(changed)},
    )
    journey.refresh_from_db()
    assert journey.versions.count() == 1 and lifecycle.latest_version(journey).graph == changed
    assert journey.description == "改"


def test_a_refused_drawing_shows_the_messages_beside_the_nodes(client, world):
    logged_in(client, world.operator)
    graph = simple_graph()
    graph["nodes"][1]["config"] = {"mode": "duration", "minutes": 0}
    graph["nodes"][1]["label"] = "等一会"
    response = client.post(
        "/journeys/new/", {"brand": world.own_brand.pk, "name": "不完整", "graph": json.dumps(graph)}
    )
    assert response.status_code == 400
    assert not Journey.objects.filter(name="不完整").exists()
    errors = response.context["node_errors"]
    assert list(errors) == ["n2"] and "等一会" in errors["n2"][0]
    assert 'id="tp-journey-errors"' in response.content.decode()


def test_a_drawing_that_cannot_be_read_is_refused(client, world):
    logged_in(client, world.operator)
    response = client.post("/journeys/new/", {"brand": world.own_brand.pk, "name": "坏", "graph": "{nope"})
    assert response.status_code == 400
    assert "could not be read" in response.content.decode()


def test_submit_review_and_four_eyes_on_the_pages(client, world):
    journey = draft(world)
    logged_in(client, world.operator)
    response = client.post(f"/journeys/{journey.pk}/submit/", follow=True)
    assert "Submitted for review" in response.content.decode()
    version = lifecycle.latest_version(journey)
    assert version.state == VersionState.PENDING
    # the proposer sees no review form
    page = client.get(f"/journeys/versions/{version.pk}/review/")
    assert 'id="tp-review-form"' not in page.content.decode()
    # the steward approves
    logged_in(client, world.steward)
    queue = client.get("/journeys/review/").content.decode()
    assert f'data-version="{version.pk}"' in queue
    page = client.get(f"/journeys/versions/{version.pk}/review/")
    assert 'id="tp-review-form"' in page.content.decode()
    done = client.post(f"/journeys/versions/{version.pk}/review/", {"decision": "approve", "note": "好"})
    assert done.status_code == 302
    journey.refresh_from_db()
    assert journey.status == JourneyStatus.LIVE and journey.live_version_id == version.pk


def test_a_rejection_without_a_reason_is_refused_on_the_page(client, world):
    journey = draft(world)
    version = lifecycle.submit(world.operator, journey)
    logged_in(client, world.steward)
    response = client.post(
        f"/journeys/versions/{version.pk}/review/", {"decision": "reject", "note": ""}, follow=True
    )
    assert "Say why" in response.content.decode()
    version.refresh_from_db()
    assert version.state == VersionState.PENDING


def test_a_refused_action_is_a_message(client, world):
    journey = draft(world)
    response = logged_in(client, world.operator).post(f"/journeys/{journey.pk}/pause/", follow=True)
    assert "Only a live journey can be paused" in response.content.decode()
    assert client.post(f"/journeys/{journey.pk}/explode/").status_code == 404


def test_the_journey_page_counts_people_per_node_and_the_uplift(client, world):
    journey = live(world)
    version = journey.live_version
    now = timezone.now()
    for oneid in range(1, 21):
        group = "holdout" if oneid <= 5 else "treatment"
        done = oneid % 2 == 0
        instance = JourneyInstance.objects.create(
            journey=journey,
            version=version,
            brand=journey.brand,
            oneid=oneid,
            node="n3" if done else "n2",
            state=InstanceState.DONE if done else InstanceState.WAITING,
            group=group,
            path=["n1", "n2", "n3"] if done else ["n1", "n2"],
            entered_at=now,
        )
        InstanceStep.objects.create(instance=instance, node="n1", outcome="entered", at=now)
        if group == "treatment" and oneid <= 12:
            Conversion.objects.create(
                instance=instance,
                journey=journey,
                at=now,
                kind="order",
                source_id=oneid,
                amount=100,
                attributed_node="n2",
            )
    page = logged_in(client, world.operator).get(f"/journeys/{journey.pk}/")
    assert page.status_code == 200
    rows = {row["id"]: row for row in page.context["node_rows"]}
    assert rows["n1"]["passed"] == 20
    assert rows["n2"]["waiting"] == 10
    assert rows["n2"]["converted"] == 7
    uplift = page.context["uplift"]
    assert (uplift["treated"], uplift["treated_converted"], uplift["held_out"]) == (15, 7, 5)
    assert uplift["treated_rate"] == "46.7%" and uplift["held_out_rate"] == "0.0%"
    assert page.context["conversions"]["revenue"] == 700
    sankey = page.context["figures"]["sankey"]["data"][0]
    assert sankey["type"] == "sankey"
    assert sum(sankey["link"]["value"]) == 20 + 10  # n1→n2, n2→n3 (went through: no sink)
    html = page.content.decode()
    assert "plotly/plotly.min.js" in html and 'data-figure="sankey"' in html


def test_the_journey_page_without_people(client, world):
    journey = draft(world)
    page = logged_in(client, world.operator).get(f"/journeys/{journey.pk}/")
    html = page.content.decode()
    assert 'id="tp-no-paths"' in html and 'id="tp-no-holdout"' in html
    assert 'id="tp-submit"' in html and 'id="tp-pause"' not in html


def test_pages_are_in_chinese(client, world):
    journey = draft(world)
    logged_in(client, world.operator)
    html = client.get(f"/journeys/{journey.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "提交审核" in html
    strings = client.get("/journeys/new/", HTTP_ACCEPT_LANGUAGE="zh-hans").context["strings"]
    assert strings["type_wait"] == "等待"


def test_the_variants_table_reads_the_variants_module(client, world, monkeypatch):
    from types import SimpleNamespace

    from tagportal.journeys import variants
    from tagportal.journeys.models import JourneyVersion

    journey = Journey.objects.create(brand=world.own_brand, name="AB 测试", status=JourneyStatus.LIVE)
    graph = {
        "nodes": [
            {
                "id": "s1",
                "type": "send",
                "label": "唤醒",
                "config": {"variants": [{"key": "A"}, {"key": "B"}]},
            },
        ],
        "edges": [],
    }
    journey.live_version = JourneyVersion.objects.create(
        journey=journey, number=1, graph=graph, state="approved"
    )
    journey.save()
    monkeypatch.setattr(
        variants,
        "stats",
        lambda j, node: {"A": {"sent": 400, "clicked": 20}, "B": {"sent": 400, "clicked": 60}},
        raising=False,
    )
    decided = SimpleNamespace(state="winner", winner="B", shares={"A": 0.0, "B": 1.0}, p_best={})
    monkeypatch.setattr(variants, "decision", lambda stats, method: decided, raising=False)
    page = logged_in(client, world.operator).get(f"/journeys/{journey.pk}/")
    html = page.content.decode()
    assert 'id="tp-variants"' in html and "a winner is found" in html
    block = page.context["variants"][0]
    assert [(r["key"], r["click_rate_text"], r["share_text"], r["winner"]) for r in block["rows"]] == [
        ("A", "5.0%", "0.0%", False),
        ("B", "15.0%", "100.0%", True),
    ]


def test_journey_pages_wear_the_portal_chrome(client, world):
    """The portal header, as on the workbench; not the admin's model sidebar nor a way back
    to the admin."""
    journey = draft(world)
    logged_in(client, world.steward)
    for url in ("/journeys/", f"/journeys/{journey.pk}/", f"/journeys/{journey.pk}/edit/", "/journeys/new/"):
        for language in ("en", "zh-hans"):
            page = client.get(url, HTTP_ACCEPT_LANGUAGE=language)
            assert page.status_code == 200, url
            html = page.content.decode()
            assert 'id="tp-portal-nav"' in html and 'id="tp-nav-journeys"' in html, url
            assert 'id="nav-sidebar"' not in html and 'id="toggle-nav-sidebar"' not in html, url
            assert "Back to the admin" not in html and "返回管理后台" not in html, url
            assert 'href="/admin/"' not in html, url
            assert 'id="tp-journeys-nav"' in html, url


def test_the_editor_offers_the_sync_fields_per_kind_in_chinese(client, world):
    from tagportal.activation.models import ChannelAccount
    from tests.activation.helpers import account

    wecom = account(world.own_brand, "wecom", name="导诊企微")
    named = account(world.own_brand, "wecom", name="有成员的企微")
    ChannelAccount.objects.filter(pk=named.pk).update(settings={**named.settings, "userid": "lisi"})
    page = logged_in(client, world.operator).get("/journeys/new/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    catalog, strings = page.context["catalog"], page.context["strings"]
    assert catalog["sync_fields"]["wecom"] == [
        {"name": "userid", "label": "打标签的企业微信成员（userid）"},
        {"name": "tag_group", "label": "企业微信标签组"},
    ]
    assert catalog["sync_fields"]["weimob"] == [{"name": "tag_id", "label": "微盟标签 ID"}]
    required = {a["id"]: a["sync_required"] for a in catalog["accounts"]}
    assert required[wecom.pk] == ["userid"] and required[named.pk] == []
    assert strings["required"] == "必填" and "userid" in strings["sync_userid_help"]
