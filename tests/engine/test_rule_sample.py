"""The rule editor's endpoints: the language, the check of a draft rule (valid and
invalid of every definition type, as a document or as text) and the trial on a sample
of the brand's people (numbers against a direct count, the sample bound, the time
limit, another brand refused)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from unittest import mock

import pytest
from django.utils import timezone

from tagportal.engine import sampling
from tagportal.profiles.models import Customer, Event, Order
from tests.conftest import client_for

CHECK = "/api/catalog/rules/check/"
SAMPLE = "/api/engine/rules/sample/"
LANGUAGE = "/api/catalog/rules/language/"

VISITS = {
    "agg": "count",
    "source": "events",
    "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
    "window": {"last_days": 30},
}
LEVELS = [{"code": "gold", "label": "金卡"}, {"code": "silver", "label": "银卡"}]

#: (value type, values, a valid document, an invalid one, the path of its problem)
CASES = {
    "attribute": (
        "enum",
        LEVELS,
        {"type": "attribute", "attribute": "member_level", "map": {"金卡": "gold", "银卡": "silver"}},
        {"type": "attribute", "attribute": "shoe_size"},
        "attribute",
    ),
    "metric": (
        "number",
        None,
        {"type": "metric", "metric": VISITS},
        {"type": "metric", "metric": {**VISITS, "window": {"last_days": 0}}},
        "metric.window.last_days",
    ),
    "bucket": (
        "enum",
        LEVELS,
        {
            "type": "bucket",
            "metric": VISITS,
            "buckets": [{"value": "silver", "max": 2}, {"value": "gold", "min": 2}],
        },
        {"type": "bucket", "metric": VISITS, "buckets": [{"value": "silver", "min": 3, "max": 2}]},
        "buckets[0]",
    ),
    "cases": (
        "enum",
        LEVELS,
        {
            "type": "cases",
            "cases": [{"value": "gold", "when": {"attribute": "points", "op": "gte", "value": 100}}],
        },
        {
            "type": "cases",
            "cases": [{"value": "platinum", "when": {"attribute": "points", "op": "gte", "value": 1}}],
        },
        "cases[0].value",
    ),
    "condition": (
        "boolean",
        None,
        {"type": "condition", "condition": {"metric": VISITS, "op": "gte", "value": 2}},
        {"type": "condition", "condition": {"all": [{"attribute": "age", "op": "contains", "value": "x"}]}},
        "condition.all[0].op",
    ),
    "preference": (
        "enum",
        LEVELS,
        {
            "type": "preference",
            "pick": "last",
            "source": "orders",
            "field": "category",
            "window": {"last_days": 90},
        },
        {"type": "preference", "pick": "newest", "source": "orders", "field": "category"},
        "pick",
    ),
}


def people(brand, count=12, now=None):
    """People 1..count: member level gold for multiples of 3, OneID % 4 store visits in
    the last days, one old visit each (outside 30 days), and an order for even OneIDs."""
    now = now or timezone.now()
    for oneid in range(1, count + 1):
        customer = Customer.objects.create(
            brand=brand, oneid=oneid, attributes={"member_level": "gold" if oneid % 3 == 0 else "silver"}
        )
        for k in range(oneid % 4):
            Event.objects.create(
                brand=brand,
                customer=customer,
                client_id=f"v{oneid}-{k}",
                type="store_visit",
                time=now - dt.timedelta(days=k + 1),
            )
        Event.objects.create(
            brand=brand,
            customer=customer,
            client_id=f"old{oneid}",
            type="store_visit",
            time=now - dt.timedelta(days=60),
        )
        if oneid % 2 == 0:
            Order.objects.create(
                brand=brand, customer=customer, client_id=f"o{oneid}", time=now, amount=oneid, category="光电"
            )


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_answers_a_valid_rule_with_its_text_and_an_invalid_one_with_messages_at_paths(world, name):
    value_type, values, valid, invalid, path = CASES[name]
    client = client_for(world.operator)
    body = {"brand": world.own_brand.code, "value_type": value_type, "values": values}
    ok = client.post(CHECK, {**body, "definition": valid}, format="json")
    assert ok.status_code == 200, ok.json()
    assert ok.json()["definition"] == valid
    assert ok.json()["text"].startswith(f"{valid['type']}")
    refused = client.post(CHECK, {**body, "definition": invalid}, format="json")
    assert refused.status_code == 400
    assert path in refused.json(), refused.json()
    # the text spelling comes back as the same document
    again = client.post(CHECK, {**body, "text": ok.json()["text"]}, format="json")
    assert again.status_code == 200 and again.json()["definition"] == valid


def test_check_messages_are_in_chinese_for_a_chinese_reader(world):
    client = client_for(world.operator)
    definition = {"type": "metric", "metric": {**VISITS, "window": {"last_days": 0}}}
    response = client.post(
        CHECK,
        {"brand": world.own_brand.code, "value_type": "number", "definition": definition},
        format="json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 400
    assert response.json()["metric.window.last_days"] == ["应为整数天数，且至少为 1"]


@pytest.mark.parametrize(
    "body, key",
    [
        ({"text": 'metric: count(events where type = "x"'}, "text"),
        ({"definition": [1, 2]}, "definition"),
        ({"definition": "not a rule"}, "definition"),
        (
            {"definition": {"type": "condition", "condition": {"not": {"not": {"not": None}}}}},
            "condition.not.not.not",
        ),
        ({"text": "metric: " + "(" * 500}, "text"),
        ({}, "definition"),
    ],
)
def test_malformed_rules_answer_400_never_500(world, body, key):
    client = client_for(world.operator)
    response = client.post(
        CHECK, {"brand": world.own_brand.code, "value_type": "number", **body}, format="json"
    )
    assert response.status_code == 400, response.content
    assert key in response.json()
    sample = client.post(
        SAMPLE, {"brand": world.own_brand.code, "value_type": "number", **body}, format="json"
    )
    assert sample.status_code == 400, sample.content


def test_composite_rule_reads_the_brand_tags_only(world):
    client = client_for(world.operator)
    body = {"brand": world.own_brand.code, "value_type": "boolean", "kind": "composite"}
    own = {"type": "condition", "condition": {"tag": world.own_tag.code, "op": "gte", "value": 2}}
    assert client.post(CHECK, {**body, "definition": own}, format="json").status_code == 200
    other = {"type": "condition", "condition": {"tag": world.other_tag.code, "op": "gte", "value": 2}}
    refused = client.post(CHECK, {**body, "definition": other}, format="json")
    assert refused.status_code == 400 and "condition.tag" in refused.json()
    plain = {"type": "condition", "condition": {"attribute": "age", "op": "gte", "value": 2}}
    refused = client.post(CHECK, {**body, "definition": plain}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"definition": ["A composite tag must read at least one other tag."]}


def test_language_is_made_from_the_rule_definitions(world):
    from tagportal.rules.definitions import AGGREGATIONS, NUMBER_OPS

    response = client_for(world.operator).get(
        LANGUAGE, {"brand": world.own_brand.code, "value_type": "number"}
    )
    assert response.status_code == 200
    data = response.json()
    assert [a["code"] for a in data["aggregations"]] == list(AGGREGATIONS)
    assert data["number_ops"] == list(NUMBER_OPS)
    assert {t["code"] for t in data["types"]} == {"attribute", "metric", "manual"}
    assert "amount" in {f["name"] for s in data["sources"] if s["name"] == "orders" for f in s["fields"]}
    assert [t["code"] for t in data["tags"]] == [world.own_tag.code]
    assert client_for(world.operator).get(LANGUAGE, {"value_type": "colour"}).status_code == 400


def test_another_brand_is_refused(world):
    client = client_for(world.operator)
    body = {
        "brand": world.other_brand.code,
        "value_type": "number",
        "definition": {"type": "metric", "metric": VISITS},
    }
    assert client.post(CHECK, body, format="json").status_code == 404
    assert client.post(SAMPLE, body, format="json").status_code == 404
    assert client.get(LANGUAGE, {"brand": world.other_brand.code}).status_code == 404
    # a tag of another brand named with one's own brand
    mixed = {**body, "brand": world.own_brand.code, "tag": world.other_tag.pk}
    assert client.post(SAMPLE, mixed, format="json").status_code == 404
    assert client_for(None).post(SAMPLE, body, format="json").status_code in (401, 403)


def test_sample_counts_match_a_direct_count(world):
    people(world.own_brand)
    people(world.other_brand, count=5)  # not counted
    client = client_for(world.operator)
    response = client.post(
        SAMPLE,
        {
            "brand": world.own_brand.code,
            "value_type": "number",
            "definition": {"type": "metric", "metric": VISITS},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    data = response.json()
    since = timezone.now() - dt.timedelta(days=29)
    direct = Counter(
        Event.objects.filter(brand=world.own_brand, type="store_visit", time__gte=since).values_list(
            "customer__oneid", flat=True
        )
    )
    visits = [direct.get(oneid, 0) for oneid in range(1, 13)]
    assert data["population"] == 12 and data["sampled"] is False
    assert data["holders"] == 12 and data["coverage"] == 1.0
    assert data["histogram"] == [
        {"low": float(v), "high": float(v), "count": visits.count(v)}
        for v in range(min(visits), max(visits) + 1)
    ]
    assert data["stats"]["max"] == max(visits) == 3
    assert data["stats"]["mean"] == round(sum(visits) / 12, 4)


def test_sample_of_an_enum_rule_counts_each_value_and_the_coverage(world):
    people(world.own_brand)
    client = client_for(world.operator)
    definition = {
        "type": "preference",
        "pick": "last",
        "source": "orders",
        "field": "category",
        "map": {"光电": "gold"},
    }
    response = client.post(
        SAMPLE,
        {"brand": world.own_brand.code, "value_type": "enum", "values": LEVELS, "definition": definition},
        format="json",
    )
    assert response.status_code == 200, response.content
    data = response.json()
    buyers = Order.objects.filter(brand=world.own_brand).values("customer").distinct().count()
    assert data["values"] == [
        {"value": "gold", "label": "金卡", "count": buyers, "share": round(buyers / 12, 4)},
        {"value": "silver", "label": "银卡", "count": 0, "share": 0.0},
    ]
    assert data["coverage"] == round(buyers / 12, 4) and data["holders"] == buyers == 6


def test_sample_is_bounded_and_timed(world, settings):
    people(world.own_brand)
    settings.TAGPORTAL_RULE_SAMPLE_LIMIT = 5
    client = client_for(world.operator)
    body = {
        "brand": world.own_brand.code,
        "value_type": "boolean",
        "definition": {
            "type": "condition",
            "condition": {"attribute": "member_level", "op": "eq", "value": "gold"},
        },
    }
    data = client.post(SAMPLE, body, format="json").json()
    assert data["population"] == 5 and data["sampled"] is True
    assert data["values"][0] == {"value": "true", "label": "Yes", "count": 1, "share": 0.2}  # OneID 3
    settings.TAGPORTAL_RULE_SAMPLE_SECONDS = 0.01
    with mock.patch.object(
        sampling.services, "evaluate_partition", side_effect=lambda *a: __import__("time").sleep(0.5)
    ):
        slow = client.post(SAMPLE, body, format="json")
    assert slow.status_code == 503 and "seconds" in slow.json()["detail"]


def test_sample_refuses_a_manual_rule(world):
    response = client_for(world.operator).post(
        SAMPLE,
        {"brand": world.own_brand.code, "value_type": "boolean", "definition": {"type": "manual"}},
        format="json",
    )
    assert response.status_code == 400 and "type" in response.json()
