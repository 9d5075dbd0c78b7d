"""The audience pages: the list, the builder (saving, errors), the tag picker's search,
an audience's page (stale pins and re-pin, history chart, export, lookalike metrics) and
a snapshot's joined/left members, for each role."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tagportal.audiences import services
from tagportal.audiences.models import Audience, AudienceKind
from tagportal.core.roles import OPERATOR
from tagportal.profiles import pii
from tagportal.profiles.models import Customer, Identity

from ..factories import UserFactory
from ..formula_guard import FORMULA_STARTS, HOSTILE, assert_csv_guarded, csv_cells
from .conftest import SKIN, publish_new_computation, store_result
from .test_services import identity

OILY = {"tag": "yimei_visit_skin_type", "op": "eq", "value": "oily"}
RECENT = {"tag": "yimei_visit_last_visit_days", "op": "lte", "value": 30}
NOT_CHURNING = {"not": {"tag": "yimei_visit_churn_risk", "op": "eq", "value": "high"}}
EXPRESSION = {"all": [OILY, RECENT, NOT_CHURNING]}  # [1, 2, 3, 4] & [1, 2, 3] - [2, 4, 9] = [1, 3]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def audience(shop, world):
    return services.create_audience(
        world.operator, brand=shop.brand, name="油皮近访客", expression=EXPRESSION
    )


@pytest.fixture
def stranger(world):
    """An operator of the other business line."""
    return UserFactory(username="op2", role=OPERATOR, grants=[(world.other_line, "operators")])


def page_urls(audience) -> list[str]:
    return [
        reverse("audiences:list"),
        reverse("audiences:new"),
        reverse("audiences:detail", args=[audience.pk]),
        reverse("audiences:snapshot", args=[audience.pk, 1]),
    ]


# ---------------------------------------------------------------------------
# Who sees what


def test_every_page_answers_the_operator_of_the_business_line(world, audience):
    client = client_for(world.operator)
    for url in page_urls(audience):
        response = client.get(url)
        assert response.status_code == 200, url
    listing = client.get(reverse("audiences:list")).content.decode()
    assert "油皮近访客" in listing and reverse("audiences:detail", args=[audience.pk]) in listing
    detail = client.get(reverse("audiences:detail", args=[audience.pk])).content.decode()
    assert 'id="tp-size" data-size="2"' in detail
    assert "tp-export-form" in detail and "tp-refresh" in detail


def test_another_business_lines_operator_gets_404(world, audience, stranger):
    client = client_for(stranger)
    assert client.get(reverse("audiences:detail", args=[audience.pk])).status_code == 404
    assert client.get(reverse("audiences:snapshot", args=[audience.pk, 1])).status_code == 404
    for action in ("refresh", "repin", "export", "lookalike"):
        assert client.post(reverse(f"audiences:{action}", args=[audience.pk])).status_code == 404
    assert client.get(reverse("audiences:tags"), {"brand": "ruiyan", "q": ""}).status_code == 404
    listing = client.get(reverse("audiences:list"))
    assert listing.status_code == 200 and "油皮近访客" not in listing.content.decode()
    builder = client.get(reverse("audiences:new"))
    brands = [b["code"] for b in builder.context["config"]["brands"]]
    assert brands == ["qingquan"]


def test_analyst_sees_the_pages_without_save_export_or_repin(world, shop, audience):
    publish_new_computation(shop.skin)  # a stale pin: the operator would see "Re-pin"
    client = client_for(world.analyst)
    for url in page_urls(audience):
        assert client.get(url).status_code == 200, url
    builder = client.get(reverse("audiences:new")).content.decode()
    assert "tp-save-form" not in builder and "tp-estimate-only" in builder
    assert client.get(reverse("audiences:new")).context["config"]["canSave"] is False
    detail = client.get(reverse("audiences:detail", args=[audience.pk])).content.decode()
    assert "tp-stale-warning" in detail  # the warning, but no control
    for control in ("tp-repin", "tp-export-form", "tp-refresh-form", "tp-lookalike-form", "tp-approve-repin"):
        assert f'id="{control}"' not in detail, control
    saved = client.post(
        reverse("audiences:new"), {"brand": "ruiyan", "name": "x", "expression": json.dumps(EXPRESSION)}
    )
    assert saved.status_code == 403
    exported = client.post(reverse("audiences:export", args=[audience.pk]), {"identity_type": ""})
    assert exported.status_code == 302 and Audience.objects.count() == 1
    # the tag search is open to viewers (estimates need it)
    assert client.get(reverse("audiences:tags"), {"brand": "ruiyan", "q": "肤质"}).status_code == 200


# ---------------------------------------------------------------------------
# The builder


def test_builder_offers_the_brands_the_operator_may_add_into(world, shop):
    response = client_for(world.operator).get(reverse("audiences:new"))
    config = response.context["config"]
    assert [b["code"] for b in config["brands"]] == ["ruiyan"]
    assert config["lines"] == [{"code": "yimei", "name": "医美"}]
    assert config["canSave"] is True
    assert config["urls"]["estimate"] == "/api/audiences/estimate/"
    assert config["strings"]["ops"]["between"]
    content = response.content.decode()
    assert 'id="tp-builder-config"' in content and "audiences/builder.js" in content


def test_saving_creates_the_audience_and_goes_to_its_page(world, shop):
    client = client_for(world.operator)
    response = client.post(
        reverse("audiences:new"),
        {
            "brand": "ruiyan",
            "name": "油皮近访客",
            "description": "近30天到店的油性肌肤、流失风险不高",
            "expression": json.dumps(EXPRESSION),
            "refresh_on_recompute": "on",
            "refresh_every_hours": "24",
        },
    )
    audience = Audience.objects.get()
    assert response.status_code == 302 and response.url == reverse("audiences:detail", args=[audience.pk])
    assert audience.size == 2 and audience.owner == world.operator and audience.refresh_every_hours == 24
    assert audience.brand == shop.brand and audience.description.startswith("近30天")
    page = client.get(response.url).content.decode()
    assert "油皮近访客" in page and 'data-size="2"' in page
    assert "yimei_visit_skin_type" in page  # the text form and the pins


def test_saving_from_the_script_answers_json(world, shop):
    client = client_for(world.operator)
    response = client.post(
        reverse("audiences:new"),
        {"brand": "ruiyan", "name": "油皮", "expression": json.dumps({"all": [OILY]})},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201
    audience = Audience.objects.get()
    assert response.json() == {"id": audience.pk, "url": reverse("audiences:detail", args=[audience.pk])}
    assert audience.size == 4


def test_a_bad_expression_shows_the_message_and_saves_nothing(world, shop):
    client = client_for(world.operator)
    bad = {"all": [OILY, {"tag": "yimei_visit_skin_type", "op": "eq", "value": "greasy"}]}
    response = client.post(
        reverse("audiences:new"), {"brand": "ruiyan", "name": "坏的", "expression": json.dumps(bad)}
    )
    assert response.status_code == 400
    content = response.content.decode()
    assert "greasy" in content and "all[1].value" in content
    assert Audience.objects.count() == 0
    # the builder comes back with what was entered, the error keyed by its path
    initial = response.context["config"]["initial"]
    assert initial["brand"] == "ruiyan" and initial["expression"] == bad
    assert "all[1].value" in initial["errors"]
    assert initial["tags"]["yimei_visit_skin_type"]["values"][0] == {"code": "oily", "label": "oily"}

    as_json = client.post(
        reverse("audiences:new"),
        {"brand": "ruiyan", "name": "坏的", "expression": json.dumps(bad)},
        HTTP_ACCEPT="application/json",
    )
    assert as_json.status_code == 400
    assert "greasy" in " ".join(as_json.json()["errors"]["all[1].value"])
    unknown = client.post(
        reverse("audiences:new"),
        {"brand": "ruiyan", "name": "坏的", "expression": json.dumps({"tag": "nope", "op": "is_set"})},
        HTTP_ACCEPT="application/json",
    )
    assert "nope" in " ".join(unknown.json()["errors"]["tag"])
    missing = client.post(reverse("audiences:new"), {"brand": "ruiyan", "name": "", "expression": ""})
    assert missing.status_code == 400 and Audience.objects.count() == 0
    other = client.post(
        reverse("audiences:new"), {"brand": "qingquan", "name": "别家", "expression": json.dumps(OILY)}
    )
    assert other.status_code == 400 and Audience.objects.count() == 0


def test_the_estimate_api_the_builder_calls(world, shop):
    client = client_for(world.operator)
    answer = client.post(
        "/api/audiences/estimate/",
        {"brand": "ruiyan", "expression": EXPRESSION},
        content_type="application/json",
    )
    assert answer.status_code == 200
    assert answer.json()["size"] == 2 and answer.json()["population"] == 10


# ---------------------------------------------------------------------------
# The tag picker


def search(client, q, brand="ruiyan"):
    response = client.get(reverse("audiences:tags"), {"brand": brand, "q": q})
    assert response.status_code == 200
    return [row["code"] for row in response.json()["results"]]


@pytest.mark.parametrize(
    "query, code",
    [
        ("肤质", "yimei_visit_skin_type"),  # Chinese
        ("流失", "yimei_visit_churn_risk"),
        ("churn", "yimei_visit_churn_risk"),  # English
        ("Last Visit", "yimei_visit_last_visit_days"),
        ("fuzhi", "yimei_visit_skin_type"),  # pinyin
        ("fz", "yimei_visit_skin_type"),  # pinyin initials
        ("liu shi", "yimei_visit_churn_risk"),
        ("daodian", "yimei_visit_visited_30d"),
        ("visited_30d", "yimei_visit_visited_30d"),  # code
    ],
)
def test_tag_search_finds_by_chinese_english_and_pinyin(world, shop, query, code):
    found = search(client_for(world.operator), query)
    assert found[0] == code or code in found


def test_tag_search_answers_what_the_builder_needs(world, shop):
    client = client_for(world.operator)
    rows = client.get(reverse("audiences:tags"), {"brand": "ruiyan", "q": "最近到店"}).json()["results"]
    days = rows[0]
    assert days["code"] == "yimei_visit_last_visit_days" and days["name"] == "最近到店天数"
    assert days["value_type"] == "number" and days["category"] == "到店行为"
    assert days["values"] == [{"code": "recent", "label": "近期"}, {"code": "older", "label": "较早"}]
    everything = search(client, "")
    assert set(everything) == {
        "yimei_visit_skin_type",
        "yimei_visit_visited_30d",
        "yimei_visit_last_visit_days",
        "yimei_visit_churn_risk",
    }  # published only: the world's draft tag is not offered
    assert search(client, "完全不存在的标签") == []
    assert client.get(reverse("audiences:tags"), {"brand": "qingquan", "q": ""}).status_code == 404


# ---------------------------------------------------------------------------
# Pins


def test_stale_pin_warning_and_one_click_repin(world, shop, audience):
    client = client_for(world.operator)
    detail = reverse("audiences:detail", args=[audience.pk])
    assert "tp-stale-warning" not in client.get(detail).content.decode()

    publish_new_computation(shop.skin)  # version 2 of skin type is published …
    page = client.get(detail).content.decode()
    assert 'id="tp-stale-warning"' in page and 'id="tp-repin"' in page
    assert "v1 → v2" in page and "肤质" in page
    assert "newer version" in client.get(reverse("audiences:list")).content.decode()
    # … and computed: the re-pin moves to it and takes a snapshot
    shop.skin.refresh_from_db()
    store_result(shop.skin, SKIN)
    response = client.post(reverse("audiences:repin", args=[audience.pk]), follow=True)
    assert "Re-pinned" in response.content.decode()
    audience.refresh_from_db()
    assert audience.pinned_versions["yimei_visit_skin_type"] == 2
    assert audience.snapshots.count() == 2
    assert "tp-stale-warning" not in client.get(detail).content.decode()


def test_a_live_audience_is_repinned_through_review(world, shop, audience):
    Audience.objects.filter(pk=audience.pk).update(is_live=True)
    publish_new_computation(shop.skin)
    store_result(shop.skin, SKIN)
    operator = client_for(world.operator)
    detail = reverse("audiences:detail", args=[audience.pk])
    page = operator.get(detail).content.decode()
    assert 'id="tp-repin-review"' in page and "goes through review" in page
    operator.post(reverse("audiences:repin", args=[audience.pk]))
    audience.refresh_from_db()
    assert audience.repin_requested_by == world.operator
    assert audience.pinned_versions["yimei_visit_skin_type"] == 1  # not yet
    page = operator.get(detail).content.decode()
    assert 'id="tp-repin-requested"' in page and 'id="tp-approve-repin"' not in page

    steward = client_for(world.steward)
    page = steward.get(detail).content.decode()
    assert 'id="tp-approve-repin"' in page
    response = steward.post(reverse("audiences:approve_repin", args=[audience.pk]), follow=True)
    assert "Re-pin approved" in response.content.decode()
    audience.refresh_from_db()
    assert audience.pinned_versions["yimei_visit_skin_type"] == 2 and audience.repin_requested_at is None


# ---------------------------------------------------------------------------
# History


def test_history_table_chart_and_snapshot_diff(world, shop):
    audience = services.create_audience(world.operator, brand=shop.brand, name="油皮", expression=OILY)
    store_result(shop.skin, {**SKIN, "oily": [1, 2, 3, 5]})  # 4 leaves, 5 joins
    client = client_for(world.operator)
    response = client.post(reverse("audiences:refresh", args=[audience.pk]), follow=True)
    assert "snapshot #2" in response.content.decode()

    response = client.get(reverse("audiences:detail", args=[audience.pk]))
    figure = response.context["figures"]["history"]
    traces = {trace["name"]: trace for trace in figure["data"]}
    assert set(traces) == {"Size", "Joined", "Left"}
    assert traces["Size"]["type"] == "scatter" and list(traces["Size"]["y"]) == [4, 4]
    assert list(traces["Joined"]["y"]) == [4, 1] and list(traces["Left"]["y"]) == [0, -1]
    assert list(traces["Size"]["x"]) == ["#1", "#2"]
    content = response.content.decode()
    assert 'id="tp-figures"' in content and "plotly/plotly.min.js" in content
    rows = response.context["history_rows"]
    assert [r["snapshot"].number for r in rows] == [2, 1]
    assert rows[0]["taken_at"] == timezone.localtime(rows[0]["snapshot"].taken_at).strftime("%Y-%m-%d %H:%M")

    diff = client.get(reverse("audiences:snapshot", args=[audience.pk, 2]))
    assert diff.context["joined"] == [5] and diff.context["left"] == [4]
    assert diff.context["joined_count"] == 1 and diff.context["left_count"] == 1
    first = client.get(reverse("audiences:snapshot", args=[audience.pk, 1]))
    assert first.context["joined"] == [1, 2, 3, 4] and first.context["left"] == []
    assert client.get(reverse("audiences:snapshot", args=[audience.pk, 9])).status_code == 404


# ---------------------------------------------------------------------------
# Export


def test_export_oneids_as_csv(world, audience):
    client = client_for(world.operator)
    response = client.post(reverse("audiences:export", args=[audience.pk]), {"identity_type": ""})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert (
        "attachment" in response["Content-Disposition"]
        and "filename*=utf-8''" in response["Content-Disposition"]
    )
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert body.splitlines() == ["oneid", "1", "3"]


def test_export_guards_formulas(world, shop, audience):
    rows = [
        identity(shop.brand, (1, 3)[number % 2], "wechat_unionid", value)
        for number, value in enumerate(HOSTILE)
    ]
    url = reverse("audiences:export", args=[audience.pk])
    masked = client_for(world.operator).post(url, {"identity_type": "wechat_unionid"})
    cells = csv_cells(b"".join(masked.streaming_content))
    assert all(row.masked in cells for row in rows)
    assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]  # a mask never starts a formula
    clear = client_for(world.admin).post(url, {"identity_type": "wechat_unionid"})
    assert_csv_guarded(b"".join(clear.streaming_content), HOSTILE)


def test_export_identities_masked_without_pii(world, shop, audience):
    customer = Customer.objects.get(brand=shop.brand, oneid=1)
    value = "oUnionAbcdef123"
    Identity.objects.create(
        brand=shop.brand,
        customer=customer,
        type="wechat_unionid",
        value_hash=pii.hash_value("wechat_unionid", value),
        value=value,
        masked=pii.mask("wechat_unionid", value),
    )
    client = client_for(world.operator)
    page = client.get(reverse("audiences:detail", args=[audience.pk])).content.decode()
    assert 'id="id_identity_type"' in page and 'id="tp-masked-note"' in page
    response = client.post(
        reverse("audiences:export", args=[audience.pk]), {"identity_type": "wechat_unionid"}
    )
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert body.splitlines() == ["oneid,type,app,value", "1,wechat_unionid,,oUn****23"]
    assert value not in body


# ---------------------------------------------------------------------------
# Lookalike


def test_lookalike_page_shows_the_models_validation(world, shop, audience):
    lookalike = Audience.objects.create(
        name="油皮近访客 相似人群",
        business_line=shop.brand.business_line,
        brand=shop.brand,
        kind=AudienceKind.LOOKALIKE,
        owner=world.operator,
        seed=audience,
        size=3,
        population=10,
        model_params={"size": 3},
        model_metrics={
            "auc": 0.8123,
            "average_precision": 0.61,
            "positives": 2,
            "validation": "hold-out of one person in five",
            "top_features": [
                {
                    "feature": "yimei_visit_skin_type=oily",
                    "tag": "yimei_visit_skin_type",
                    "tag_name": "肤质",
                    "kind": "value",
                    "value": "oily",
                    "coefficient": 1.23,
                }
            ],
        },
    )
    client = client_for(world.operator)
    page = client.get(reverse("audiences:detail", args=[lookalike.pk])).content.decode()
    assert 'id="tp-metrics"' in page and "0.812" in page and "0.610" in page
    assert "肤质 = oily" in page and "more like the seed" in page
    assert 'id="tp-refresh-form"' not in page  # a lookalike is not refreshed
    seed_page = client.get(reverse("audiences:detail", args=[audience.pk])).content.decode()
    assert 'id="tp-lookalike-form"' in seed_page and "油皮近访客 相似人群" in seed_page


def test_lookalike_form_reports_what_the_model_refuses(world, shop, audience):
    client = client_for(world.operator)
    response = client.post(
        reverse("audiences:lookalike", args=[audience.pk]), {"mode": "size", "size": "3"}, follow=True
    )
    assert "at least 20" in response.content.decode()  # a seed of 2 people is too small to learn from
    assert Audience.objects.count() == 1
    response = client.post(
        reverse("audiences:lookalike", args=[audience.pk]), {"mode": "threshold"}, follow=True
    )
    assert "score threshold" in response.content.decode()
