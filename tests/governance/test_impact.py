"""Impact preview in review: a rule change evaluated without publishing it — the tag's
coverage and values before → after, and each audience reading it (directly or
through a composite), size before → after with who joins and leaves — on the
request page, in the review queue and in the API; cached, computed by a task when a
broker is configured, and never in the way of the review when it fails."""

from __future__ import annotations

from unittest import mock

import pytest
from django.test import Client

from tagportal.audiences.models import Audience, AudienceKind, AudienceStatus
from tagportal.audiences.store import STORE
from tagportal.catalog.models import Tag, TagVersion
from tagportal.engine import bitmaps as bm
from tagportal.engine.models import TagComputation, TagRun, TagValueBitmap
from tagportal.engine.services import compute_brand
from tagportal.governance import impact
from tagportal.governance import services as gov
from tagportal.governance.choices import RequestState
from tagportal.governance.models import ChangeItem
from tagportal.governance.services import ItemSpec
from tagportal.governance.tasks import preview_impact
from tagportal.profiles.models import Customer

from ..conftest import client_for
from .conftest import CR_URL, draft_tag, fresh, publish

pytestmark = pytest.mark.django_db

#: Ages of people 1..10 (10 has none); the odd ones are gold members.
AGES = {1: 25, 2: 28, 3: 31, 4: 33, 5: 35, 6: 38, 7: 41, 8: 45, 9: 50}
GOLD = [1, 3, 5, 7, 9]


def age_rule(years: int) -> dict:
    return {"type": "condition", "condition": {"attribute": "age", "op": "gte", "value": years}}


LEVEL_RULE = {"type": "attribute", "attribute": "member_level"}
LEVELS = [{"code": "gold", "label": "金卡"}, {"code": "silver", "label": "银卡"}]


def composite_rule(age_code: str, level_code: str) -> dict:
    return {
        "type": "condition",
        "condition": {
            "all": [
                {"tag": age_code, "op": "eq", "value": True},
                {"tag": level_code, "op": "eq", "value": "gold"},
            ]
        },
    }


def audience(w, name, expression, tags=(), **fields) -> Audience:
    found = Audience.objects.create(
        name=name,
        business_line=w.own_line,
        brand=w.own_brand,
        expression=expression,
        owner=w.operator,
        **fields,
    )
    found.tags.set(tags)
    return found


@pytest.fixture
def shop(gw):
    """Ten people of the own brand with ages and member levels, three computed tags
    (30 or older, member level, and gold 30+ reading both) and audiences on them."""
    w = gw
    STORE.clear()
    for oneid in range(1, 11):
        attributes = {}
        if oneid in AGES:
            attributes = {"age": AGES[oneid], "member_level": "gold" if oneid in GOLD else "silver"}
        Customer.objects.create(brand=w.own_brand, oneid=oneid, attributes=attributes)
    w.age = publish(
        draft_tag(
            w.own_brand,
            w.category,
            "age_30_plus",
            name="30岁以上",
            kind="system",
            value_type="boolean",
            values=[],
            definition=age_rule(30),
        ),
        user=w.admin,
    )
    w.level = publish(
        draft_tag(
            w.own_brand,
            w.category,
            "member_level",
            name="会员等级",
            kind="system",
            value_type="enum",
            values=LEVELS,
            definition=LEVEL_RULE,
        ),
        user=w.admin,
    )
    w.gold_30 = publish(
        draft_tag(
            w.own_brand,
            w.category,
            "gold_30_plus",
            name="30岁以上金卡",
            kind="composite",
            value_type="boolean",
            values=[],
            definition=composite_rule(w.age.code, w.level.code),
        ),
        user=w.admin,
    )
    compute_brand(w.own_brand)
    w.gold_aud = audience(
        w,
        "30+金卡",
        {
            "all": [
                {"tag": w.age.code, "op": "eq", "value": True},
                {"tag": w.level.code, "op": "eq", "value": "gold"},
            ]
        },
        [w.age, w.level],
        is_live=True,
        size=4,
    )
    w.young_aud = audience(w, "30岁以下", {"not": {"tag": w.age.code, "op": "eq", "value": True}}, [w.age])
    w.composite_aud = audience(w, "金卡复合", {"tag": w.gold_30.code, "op": "eq", "value": True}, [w.gold_30])
    w.lookalike = audience(w, "相似人群", {}, kind=AudienceKind.LOOKALIKE, seed=w.gold_aud)
    audience(w, "银卡", {"tag": w.level.code, "op": "eq", "value": "silver"}, [w.level])
    audience(
        w, "旧人群", {"tag": w.age.code, "op": "eq", "value": True}, [w.age], status=AudienceStatus.ARCHIVED
    )
    yield w
    STORE.clear()


def propose_rule(w, years: int = 40, submit: bool = True):
    return gov.propose(
        w.operator, [ItemSpec("update", w.age, {"definition": age_rule(years)})], submit_now=submit
    )


def stored_state() -> tuple:
    """Everything a preview must leave alone: results, runs, versions."""
    return (
        sorted(
            TagComputation.objects.values_list(
                "tag_id", "version", "pending_version", "last_calculated_at", "coverage", "is_calculating"
            )
        ),
        sorted((pk, bytes(raw)) for pk, raw in TagValueBitmap.objects.values_list("pk", "bitmap")),
        TagRun.objects.count(),
        TagVersion.objects.count(),
        sorted(Tag.objects.values_list("pk", "status", "published_version", "definition")),
    )


def page_client(user):
    client = Client()
    client.force_login(user)
    return client


def by_name(preview: dict) -> dict[str, dict]:
    return {row["name"]: row for row in preview["audiences"]}


# ---------------------------------------------------------------------------
# The numbers


def test_rule_change_preview_numbers(shop):
    w = shop
    cr = propose_rule(w)
    item = cr.items.get()
    before = stored_state()

    preview = impact.preview_item(item)

    assert preview["tag"] == w.age.code
    assert preview["coverage_before"] == pytest.approx(0.7)
    assert preview["coverage_after"] == pytest.approx(0.3)
    assert preview["population"] == 10
    assert preview["distribution_before"] == {"true": 7, "false": 3}
    assert preview["distribution_after"] == {"true": 3, "false": 7}
    assert preview["values"] == [
        {"value": "true", "label": "Yes", "before": 7, "after": 3, "joined": 0, "left": 4},
        {"value": "false", "label": "No", "before": 3, "after": 7, "joined": 4, "left": 0},
    ]
    assert preview["error"] == ""
    assert preview["took_s"] >= 0 and preview["computed_at"]

    rows = by_name(preview)
    assert set(rows) == {
        "30+金卡",
        "30岁以下",
        "金卡复合",
        "相似人群",
    }  # not the silver one, not the archived one
    gold = rows["30+金卡"]
    assert (gold["id"], gold["is_live"], gold["size_stored"]) == (w.gold_aud.pk, True, 4)
    assert (gold["size_before"], gold["size_after"], gold["joined"], gold["left"]) == (4, 2, 0, 2)
    assert gold["left_sample"] == [3, 5] and gold["joined_sample"] == []
    young = rows["30岁以下"]
    assert (young["size_before"], young["size_after"], young["joined"], young["left"]) == (3, 7, 4, 0)
    assert young["joined_sample"] == [3, 4, 5, 6] and young["is_live"] is False
    # an audience reading a composite that reads the tag moves with it
    composite = rows["金卡复合"]
    assert composite["via"] == [w.gold_30.code]
    assert (composite["size_before"], composite["size_after"], composite["left"]) == (4, 2, 2)
    assert composite["left_sample"] == [3, 5]
    lookalike = rows["相似人群"]
    assert lookalike["size_before"] is None and "not recomputed" in lookalike["note"]

    (dependent,) = preview["dependents"]
    assert dependent["tag"] == w.gold_30.code
    assert dependent["coverage_before"] == pytest.approx(0.4)
    assert dependent["coverage_after"] == pytest.approx(0.2)
    assert (dependent["joined"], dependent["left"]) == (0, 2)

    # nothing published, nothing written to the results
    assert stored_state() == before
    assert fresh(w.age).definition == age_rule(30)


def test_bucket_changes_are_rule_changes(shop):
    w = shop
    years = publish(
        draft_tag(
            w.own_brand,
            w.category,
            "age_years",
            name="年龄",
            kind="system",
            value_type="number",
            values=[
                {"code": "young", "label": "青年", "max": 30},
                {"code": "mature", "label": "成熟", "min": 30},
            ],
            definition={"type": "attribute", "attribute": "age"},
        ),
        user=w.admin,
    )
    compute_brand(w.own_brand, tag_ids=[years.pk])
    mature = audience(w, "成熟", {"tag": years.code, "op": "eq", "value": "mature"}, [years])
    over_35 = audience(w, "35岁以上", {"tag": years.code, "op": "gte", "value": 35}, [years])
    buckets = [{"code": "young", "label": "青年", "max": 40}, {"code": "mature", "label": "成熟", "min": 40}]
    cr = gov.propose(w.operator, [ItemSpec("update", years, {"values": buckets})], submit_now=True)

    preview = impact.preview_item(cr.items.get())

    assert preview["values"] == [
        {"value": "young", "label": "青年", "before": 2, "after": 6, "joined": 4, "left": 0},
        {"value": "mature", "label": "成熟", "before": 7, "after": 3, "joined": 0, "left": 4},
    ]
    assert (
        preview["coverage_before"] == preview["coverage_after"] == pytest.approx(0.9)
    )  # everyone with an age
    rows = by_name(preview)
    assert (rows["成熟"]["size_before"], rows["成熟"]["size_after"], rows["成熟"]["left"]) == (7, 3, 4)
    assert rows["成熟"]["id"] == mature.pk
    # a comparison on the numbers does not move with the buckets
    assert (rows["35岁以上"]["size_before"], rows["35岁以上"]["size_after"]) == (5, 5)
    assert rows["35岁以上"]["id"] == over_35.pk


def test_non_rule_changes_have_no_preview(shop):
    w = shop
    cr = gov.propose(
        w.operator, [ItemSpec("update", w.age, {"description": "年龄不小于30岁"})], submit_now=True
    )
    assert impact.preview_item(cr.items.get()) is None
    assert impact.preview(cr) == []
    deprecate = gov.propose(w.operator, [ItemSpec("deprecate", w.level)], confirm_dependents=True)
    assert impact.preview_item(deprecate.items.get()) is None
    assert client_for(w.steward).get(f"{CR_URL}{cr.pk}/impact/").json() == []
    response = page_client(w.steward).get(f"/review/{cr.pk}/")
    assert response.status_code == 200
    assert b'id="tp-impact"' not in response.content


# ---------------------------------------------------------------------------
# The cache


def test_preview_is_cached_until_the_changes_or_the_result_change(shop):
    w = shop
    cr = propose_rule(w)
    with mock.patch.object(impact, "preview_item", wraps=impact.preview_item) as computed:
        first = impact.preview(cr)
        assert computed.call_count == 1
        assert first[0]["state"] == impact.READY and first[0]["coverage_after"] == pytest.approx(0.3)
        item = ChangeItem.objects.get(pk=first[0]["item"])
        assert item.impact["key"] == first[0]["key"] and item.impact_computed_at is not None

        assert impact.preview(cr) == first
        assert computed.call_count == 1

        # the proposer edits the rule: computed again
        gov.request_changes(w.steward, cr, "门槛改为35岁")
        gov.replace_items(w.operator, cr, [ItemSpec("update", w.age, {"definition": age_rule(35)})])
        cr = fresh(cr)
        again = impact.preview(cr)
        assert computed.call_count == 2
        assert again[0]["values"][0] == {
            "value": "true",
            "label": "Yes",
            "before": 7,
            "after": 5,
            "joined": 0,
            "left": 2,
        }

        # the tag is recomputed (new data): computed again
        Customer.objects.filter(brand=w.own_brand, oneid=1).update(attributes={"age": 36})
        compute_brand(w.own_brand)
        third = impact.preview(cr)
        assert computed.call_count == 3
        assert third[0]["coverage_before"] == pytest.approx(0.8)
        assert third[0]["values"][0] == {
            "value": "true",
            "label": "Yes",
            "before": 8,
            "after": 6,
            "joined": 0,
            "left": 2,
        }

        # the recompute button computes anyway
        impact.recompute(w.steward, cr)
        assert computed.call_count == 4


# ---------------------------------------------------------------------------
# Pages


def test_request_page_shows_the_preview(shop):
    w = shop
    cr = propose_rule(w)
    before = stored_state()
    response = page_client(w.steward).get(f"/review/{cr.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="tp-impact"' in html
    assert "70.0% → 30.0%" in html
    assert "-40.0 pt" in html
    assert (
        '<tr data-value="true"><td>Yes <span class="tp-muted">(true)</span></td>'
        "<td>7</td><td>3</td><td>+0</td><td>−4</td></tr>"
    ) in html
    assert "30+金卡" in html and "tp-live" in html
    assert "4 → 2" in html and "3 → 7" in html
    assert "3, 4, 5, 6" in html  # the steward may see members
    assert "Recompute the preview" in html
    assert stored_state() == before
    # computed once, then served from the cache
    with mock.patch.object(impact, "preview_item") as computed:
        assert page_client(w.steward).get(f"/review/{cr.pk}/").status_code == 200
        computed.assert_not_called()


def test_members_are_shown_only_with_the_export_right(shop):
    w = shop
    cr = propose_rule(w)
    impact.preview(cr)
    html = page_client(w.analyst).get(f"/review/{cr.pk}/").content.decode()
    assert "4 → 2" in html
    assert "3, 4, 5, 6" not in html
    data = client_for(w.analyst).get(f"{CR_URL}{cr.pk}/impact/").json()
    assert "joined_sample" not in data[0]["audiences"][0]
    assert "key" not in data[0]


def queue_row(client, cr) -> str:
    html = client.get("/review/").content.decode()
    return html.split(f'data-request="{cr.pk}"')[1].split("</tr>")[0]


def test_review_queue_shows_the_impact_column(shop):
    w = shop
    cr = propose_rule(w)
    other = gov.propose(
        w.operator, [ItemSpec("update", w.level, {"description": "会员等级（CRM）"})], submit_now=True
    )
    client = page_client(w.steward)
    assert "coverage" not in queue_row(client, cr)  # not computed yet: the queue never computes
    client.get(f"/review/{cr.pk}/")
    assert "coverage 70.0% → 30.0%, 3 audiences ±" in queue_row(client, cr)
    assert "coverage" not in queue_row(client, other)


def test_recompute_button(shop):
    w = shop
    cr = propose_rule(w)
    client = page_client(w.steward)
    client.get(f"/review/{cr.pk}/")
    with mock.patch.object(impact, "preview_item", wraps=impact.preview_item) as computed:
        response = client.post(f"/review/{cr.pk}/impact/", follow=True)
        assert response.status_code == 200
        assert computed.call_count == 1
    assert "The impact preview was computed again." in response.content.decode()
    assert client.get(f"/review/{cr.pk}/impact/").status_code == 405
    other = page_client(w.other_steward)
    assert other.post(f"/review/{cr.pk}/impact/").status_code == 404


# ---------------------------------------------------------------------------
# API


def test_api_returns_the_preview(shop):
    w = shop
    cr = propose_rule(w)
    response = client_for(w.steward).get(f"{CR_URL}{cr.pk}/impact/")
    assert response.status_code == 200, response.content
    (preview,) = response.json()
    assert preview["tag"] == w.age.code and preview["state"] == "ready"
    assert preview["coverage_before"] == pytest.approx(0.7)
    assert preview["coverage_after"] == pytest.approx(0.3)
    assert preview["values"][1] == {
        "value": "false",
        "label": "No",
        "before": 3,
        "after": 7,
        "joined": 4,
        "left": 0,
    }
    gold = by_name(preview)["30+金卡"]
    assert (gold["size_before"], gold["size_after"], gold["joined"], gold["left"]) == (4, 2, 0, 2)
    assert gold["left_sample"] == [3, 5]
    # the request's detail carries it per item
    detail = client_for(w.steward).get(f"{CR_URL}{cr.pk}/").json()
    assert detail["items"][0]["impact"]["coverage_after"] == pytest.approx(0.3)
    # POST computes it again
    with mock.patch.object(impact, "preview_item", wraps=impact.preview_item) as computed:
        assert client_for(w.steward).post(f"{CR_URL}{cr.pk}/impact/").status_code == 200
        assert computed.call_count == 1


def test_api_scoping(shop):
    w = shop
    cr = propose_rule(w)
    assert client_for(w.other_steward).get(f"{CR_URL}{cr.pk}/impact/").status_code == 404
    assert client_for(w.other_operator).post(f"{CR_URL}{cr.pk}/impact/").status_code == 404
    assert client_for(w.nobody).get(f"{CR_URL}{cr.pk}/impact/").status_code in (403, 404)
    assert ChangeItem.objects.get(change_request=cr).impact == {}


def test_with_a_broker_the_task_computes_and_the_api_answers_202_meanwhile(
    shop, settings, django_capture_on_commit_callbacks
):
    w = shop
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with mock.patch.object(preview_impact, "apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            cr = propose_rule(w)
        # queued on submit, nothing computed on the submitter's request
        send.assert_called_once_with(args=(cr.pk,), kwargs={"force": False}, queue="compute")
        item = cr.items.get()
        assert fresh(item).impact["state"] == impact.COMPUTING

        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(w.steward).get(f"{CR_URL}{cr.pk}/impact/")
        assert response.status_code == 202
        assert response.json()["state"] == "computing"
        assert send.call_count == 1  # already queued: not sent twice

        page = page_client(w.steward).get(f"/review/{cr.pk}/").content.decode()
        assert "Computing…" in page

    result = preview_impact(cr.pk)  # what the worker runs
    assert result == {"change_request": cr.pk, "items": {item.pk: "ready"}}
    response = client_for(w.steward).get(f"{CR_URL}{cr.pk}/impact/")
    assert response.status_code == 200
    assert response.json()[0]["coverage_after"] == pytest.approx(0.3)


def test_the_task_is_registered_and_safe_on_a_missing_request(shop):
    from tagportal.celery import app

    assert "tagportal.governance.impact_tasks.preview_impact" in app.tasks
    assert preview_impact(987654) == {"change_request": 987654, "status": "missing"}


# ---------------------------------------------------------------------------
# Failures never block the review


def test_a_rule_that_fails_to_evaluate_gives_a_message(shop):
    w = shop
    cr = propose_rule(w)
    # as if the vocabulary changed after the proposal was validated
    broken = {"type": "condition", "condition": {"attribute": "no_such_attribute", "op": "gte", "value": 1}}
    ChangeItem.objects.filter(change_request=cr).update(changes={"definition": broken})
    before = stored_state()

    response = page_client(w.steward).get(f"/review/{cr.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "The proposed rule cannot be evaluated" in html
    assert 'id="tp-review-form"' in html  # the steward can still decide

    data = client_for(w.steward).get(f"{CR_URL}{cr.pk}/impact/").json()
    assert data[0]["state"] == impact.FAILED
    assert "no_such_attribute" in data[0]["error"]
    assert stored_state() == before

    gov.approve(w.steward, cr, "同意")
    assert fresh(cr).state == RequestState.APPROVED


def test_an_unexpected_failure_is_logged_and_shown(shop, caplog):
    w = shop
    cr = propose_rule(w)
    with mock.patch("tagportal.engine.services.load_frames", side_effect=RuntimeError("warehouse down")):
        response = page_client(w.steward).get(f"/review/{cr.pk}/")
    assert response.status_code == 200
    assert "The impact preview failed: RuntimeError: warehouse down" in response.content.decode()
    assert "impact preview of change item" in caplog.text
    # the queue says so, and the API too
    assert "preview failed" in page_client(w.steward).get("/review/").content.decode()
    assert client_for(w.steward).get(f"{CR_URL}{cr.pk}/impact/").json()[0]["state"] == impact.FAILED


def test_draft_requests_are_previewed_too_and_decided_ones_keep_theirs(shop):
    w = shop
    cr = propose_rule(w, submit=False)
    assert client_for(w.operator).get(f"{CR_URL}{cr.pk}/impact/").json()[0][
        "coverage_after"
    ] == pytest.approx(0.3)
    gov.submit(w.operator, cr)
    gov.approve(w.steward, cr, "同意", apply_now=True)
    assert fresh(cr).state == RequestState.APPLIED
    with mock.patch.object(impact, "preview_item") as computed:
        data = client_for(w.steward).get(f"{CR_URL}{cr.pk}/impact/").json()
        computed.assert_not_called()
    assert data[0]["coverage_before"] == pytest.approx(0.7)  # the preview made before approval
    assert client_for(w.steward).post(f"{CR_URL}{cr.pk}/impact/").status_code == 409
    page = page_client(w.steward)
    html = page.get(f"/review/{cr.pk}/").content.decode()
    assert "70.0% → 30.0%" in html and "Recompute the preview" not in html
    response = page.post(f"/review/{cr.pk}/impact/", follow=True)
    assert "The request is decided" in response.content.decode()


def test_bitmaps_of_the_engine_match_the_preview(shop):
    """The preview's "after" is what computing the approved change gives."""
    w = shop
    cr = propose_rule(w)
    preview = impact.preview(cr)[0]
    gov.approve(w.steward, cr, "同意", apply_now=True)
    compute_brand(w.own_brand)
    rows = TagValueBitmap.objects.filter(computation__tag=w.age)
    stored = {row.value: len(bm.deserialize(bytes(row.bitmap))) for row in rows}
    assert stored == preview["distribution_after"]
    assert TagComputation.objects.get(tag=w.age).coverage == pytest.approx(preview["coverage_after"])
