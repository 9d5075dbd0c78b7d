"""Category suggestions: the method in use beats the most frequent category on the four
industry template packs (each tag left out in turn), and the API and the propose page
offer them, from the tags the user may view only."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tagportal.catalog import classify
from tagportal.catalog.templates import available_packs

from ..conftest import client_for
from ..factories import CategoryFactory, TagFactory

URL = "/api/catalog/tags/suggest-category/"


def test_the_method_in_use_beats_the_most_frequent_category_on_every_pack():
    packs = available_packs()
    assert len(packs) == 4
    for key, pack in packs.items():
        examples = classify.pack_examples(pack)
        chosen = classify.leave_one_out(examples, classify.METHOD)
        baseline = classify.leave_one_out(examples, "baseline")
        assert chosen["top1"] > baseline["top1"] + 0.15, (key, chosen, baseline)
        assert chosen["top3"] > baseline["top3"] + 0.3, (key, chosen, baseline)


def test_rank_votes_for_the_nearest_tags_category():
    train = [
        classify.Example("近30天到店次数", "门店到店次数", {"source": "events"}, label="visit", key=1),
        classify.Example("近90天到店天数", "到店的天数", {"source": "events"}, label="visit", key=2),
        classify.Example("近一年消费金额", "订单实付金额合计", {"source": "orders"}, label="spend", key=3),
        classify.Example("客单价", "平均每单实付金额", {"source": "orders"}, label="spend", key=4),
    ]
    for method in classify.SIMILARITIES:
        ranked = classify.rank(train, classify.Example("近60天到店次数", "到店次数"), method=method, k=3)
        assert ranked[0].label == "visit", method
        assert {key for key, _w in ranked[0].neighbours} <= {1, 2}


@pytest.fixture
def dictionary(world):
    spend = CategoryFactory(code="spend", name="消费能力")
    for i, (name, description) in enumerate(
        [("近一年消费金额", "订单实付金额合计"), ("客单价", "平均每单实付金额")]
    ):
        TagFactory(
            brand=world.own_brand,
            category=spend,
            name=name,
            description=description,
            code=f"yimei_spend_s{i}",
        )
    for i, name in enumerate(["近30天到店次数", "近90天到店天数"]):
        TagFactory(
            brand=world.own_brand,
            category=world.category,
            name=name,
            description="门店到店",
            code=f"yimei_visit_v{i}",
        )
    # another business line's tags are not seen
    other = CategoryFactory(code="secret", name="别家分类")
    for i in range(3):
        TagFactory(
            brand=world.other_brand, category=other, name=f"近60天到店次数{i}", code=f"shipin_secret_x{i}"
        )
    return spend


def test_api_suggests_a_category_from_the_visible_tags(world, dictionary):
    response = client_for(world.operator).get(URL, {"name": "近60天到店次数", "description": "门店到店次数"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["categories"][0]["id"] == world.category.pk
    assert body["categories"][0]["path"] == "到店行为"
    assert all(c["path"] != "别家分类" for c in body["categories"])
    assert {t["name"] for t in body["categories"][0]["similar"]} <= {
        "近30天到店次数",
        "近90天到店天数",
        "到店次数",
    }
    assert body["business_lines"][0]["code"] == "yimei"
    spend = client_for(world.operator).get(URL, {"name": "年度消费金额", "description": "实付金额"}).json()
    assert spend["categories"][0]["id"] == dictionary.pk


def test_api_refusals(world, dictionary):
    client = client_for(world.operator)
    assert client.get(URL).status_code == 400
    assert "definition" in client.get(URL, {"name": "到店", "definition": "{nope"}).json()
    assert client.get(URL, {"name": "到店", "exclude": "x"}).status_code == 400
    assert client_for(world.nobody).get(URL, {"name": "到店"}).status_code == 403


def test_the_propose_page_carries_the_hint(world, dictionary):
    client = Client()
    client.force_login(world.operator)
    page = client.get(reverse("governance:propose", args=[world.own_tag.pk])).content.decode()
    assert 'id="tp-category-hint"' in page and f'data-exclude="{world.own_tag.pk}"' in page
    assert "Suggested category:" in page and "suggest-category" in page
