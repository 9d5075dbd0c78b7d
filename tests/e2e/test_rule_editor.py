"""An operator writes a rule of each definition type in the propose form's rule editor
(never touching JSON) and proposes it: the change request holds the rule document the
editor built. Also: the text syntax view and the trial on a sample."""

import pytest

from tagportal.catalog.models import Tag
from tagportal.governance.models import ChangeRequest

from .conftest import demo
from .test_review import login

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def count_events(event_type, days):
    """The metric the editor starts with, once its event type and days are chosen."""
    return {
        "agg": "count",
        "source": "events",
        "where": [{"field": "type", "op": "eq", "value": event_type}],
        "window": {"last_days": days},
    }


def open_editor(page, live_server, code):
    tag = Tag.objects.get(code=code)
    page.goto(f"{live_server.url}/review/propose/{tag.pk}/")
    page.wait_for_selector("#tp-rule-editor[data-ready=true]")
    assert not page.is_visible("#id_definition")  # the JSON stays hidden
    return tag


def start_fresh(page, mode, via):
    """Pick another type first, then ``mode``: the editor starts ``mode`` from scratch."""
    page.select_option("#tp-re-type", via)
    page.select_option("#tp-re-type", mode)


def propose(page, title):
    page.wait_for_selector("#tp-re-status.tp-re-ok")
    page.fill("#id_title", title)
    page.click("#tp-propose-submit")
    page.wait_for_selector("#tp-request-header")
    return ChangeRequest.objects.get(title=title).items.get().changes["definition"]


def build_attribute(page, live_server):
    tag = open_editor(page, live_server, "yimei_demo_city_tier")
    first = tag.values[0]["code"]
    start_fresh(page, "attribute", via="cases")
    page.select_option("select[data-path=attribute]", "city")
    page.click(".tp-re-add-map")
    page.fill(".tp-re-map-raw", "深圳")
    return propose(page, "城市等级改为按城市映射"), {
        "type": "attribute",
        "attribute": "city",
        "map": {"深圳": first},
    }


def build_metric(page, live_server):
    open_editor(page, live_server, "yimei_visit_store_visits_90d")
    start_fresh(page, "metric", via="attribute")
    page.select_option("[data-path='metric.agg']", "sum")
    page.select_option("[data-path='metric.source']", "orders")
    page.select_option("[data-path='metric.field']", "amount")
    page.fill("[data-path='metric.window.last_days']", "180")
    # the sample: a distribution of the draft among the brand's people
    page.click("#tp-re-sample")
    page.wait_for_selector("#tp-re-distribution")
    assert "200" in page.inner_text("#tp-re-sample-summary")
    return propose(page, "到院次数改为近180天消费金额"), {
        "type": "metric",
        "metric": {"agg": "sum", "source": "orders", "field": "amount", "window": {"last_days": 180}},
    }


def build_bucket(page, live_server):
    open_editor(page, live_server, "yimei_coupon_coupon_sensitivity")
    start_fresh(page, "bucket", via="cases")
    page.select_option("[data-path='metric.where[0].value']", "coupon_used")
    page.fill("[data-path='metric.window.last_days']", "180")
    bounds = [("none", None, 1), ("low", 1, 2), ("medium", 2, 5), ("high", 5, None)]
    for i, (code, low, high) in enumerate(bounds):
        page.select_option(f"[data-path='buckets[{i}].value']", code)
        if low is not None:
            page.fill(f"[data-path='buckets[{i}].min']", str(low))
        if high is not None:
            page.fill(f"[data-path='buckets[{i}].max']", str(high))
    buckets = []
    for code, low, high in bounds:
        bucket = {"value": code}
        if low is not None:
            bucket["min"] = low
        if high is not None:
            bucket["max"] = high
        buckets.append(bucket)
    metric = count_events("coupon_used", 180)
    return propose(page, "优惠券敏感度按使用次数分段"), {
        "type": "bucket",
        "metric": metric,
        "buckets": buckets,
    }


def build_cases(page, live_server):
    open_editor(page, live_server, "yimei_demo_gender")
    start_fresh(page, "cases", via="attribute")
    page.select_option("[data-path='cases[0].value']", "female")
    page.select_option("[data-path='cases[0].when.attribute']", "gender")
    page.fill("[data-path='cases[0].when.value']", "女")
    page.select_option("[data-path=default]", "unknown")
    return propose(page, "性别按中文取值"), {
        "type": "cases",
        "cases": [{"value": "female", "when": {"attribute": "gender", "op": "eq", "value": "女"}}],
        "default": "unknown",
    }


def build_condition(page, live_server):
    open_editor(page, live_server, "yimei_member_new_member_30d")
    start_fresh(page, "condition", via="cases")
    page.select_option(".tp-re-leaf-kind", "metric")
    leaf = "condition.all[0]"
    page.select_option(f"[data-path='{leaf}.metric.where[0].value']", "store_visit")
    page.fill(f"[data-path='{leaf}.metric.window.last_days']", "30")
    page.fill(f"[data-path='{leaf}.value']", "2")
    page.click(".tp-re-group-add .tp-re-add-cond")
    second = "condition.all[1]"
    page.select_option(f"[data-path='{second}.attribute']", "city")
    page.select_option(f"[data-path='{second}.op']", "in")
    page.fill(f"[data-path='{second}.value']", "深圳，广州")
    metric = count_events("store_visit", 30)
    return propose(page, "新会员改为近30天到院两次的深广客户"), {
        "type": "condition",
        "condition": {
            "all": [
                {"metric": metric, "op": "gte", "value": 2},
                {"attribute": "city", "op": "in", "value": ["深圳", "广州"]},
            ]
        },
    }


def build_preference(page, live_server):
    open_editor(page, live_server, "yimei_pref_channel_pref")
    start_fresh(page, "preference", via="cases")
    page.select_option("[data-path=pick]", "last")
    page.select_option("[data-path=field]", "channel")
    page.click(".tp-re-add-map")
    page.fill(".tp-re-map-raw >> nth=0", "tmall")
    page.select_option(".tp-re-map-code >> nth=0", "tmall")
    page.click(".tp-re-add-map-row")
    page.fill(".tp-re-map-raw >> nth=1", "jd")
    page.select_option(".tp-re-map-code >> nth=1", "jd")
    return propose(page, "渠道偏好改为最近一次下单渠道"), {
        "type": "preference",
        "pick": "last",
        "source": "orders",
        "field": "channel",
        "window": {"last_days": 365},
        "map": {"tmall": "tmall", "jd": "jd"},
    }


def build_composite(page, live_server):
    open_editor(page, live_server, "yimei_churn_high_value_at_risk")
    start_fresh(page, "composite", via="cases")
    leaf = "condition.all[0]"
    page.select_option(f"[data-path='{leaf}.tag']", "yimei_churn_churn_risk")
    page.select_option(f"[data-path='{leaf}.op']", "in")
    page.check(f"[data-path='{leaf}.value'] input[value=high]")
    return propose(page, "高价值流失预警只看高流失风险"), {
        "type": "condition",
        "condition": {"all": [{"tag": "yimei_churn_churn_risk", "op": "in", "value": ["high"]}]},
    }


BUILDERS = [
    build_attribute,
    build_metric,
    build_bucket,
    build_cases,
    build_condition,
    build_preference,
    build_composite,
]


def test_the_rule_editor_creates_each_definition_type(live_server, page):
    demo("--people", "200", "--no-models")
    login(page, live_server, "operator", "tagportal-operator")
    for build in BUILDERS:
        stored, expected = build(page, live_server)
        assert stored == expected, build.__name__


def test_text_syntax_round_trip_and_messages_beside_inputs(live_server, page):
    demo("--people", "200", "--no-models")
    login(page, live_server, "operator", "tagportal-operator")
    open_editor(page, live_server, "yimei_visit_store_visits_90d")
    page.wait_for_selector("#tp-re-status.tp-re-ok")
    # a mistake is named next to the input at fault
    page.fill("[data-path='metric.window.last_days']", "0")
    page.wait_for_selector(".tp-re-error[data-for='metric.window.last_days']")
    assert page.get_attribute("#tp-rule-editor", "data-valid") == "false"
    page.fill("[data-path='metric.window.last_days']", "90")
    page.wait_for_selector("#tp-re-status.tp-re-ok")
    # the text syntax, edited, drives the document
    page.click("#tp-re-advanced")
    page.wait_for_function(
        "document.querySelector('#tp-re-text-input').value.indexOf('metric: count(') === 0"
    )
    page.fill("#tp-re-text-input", 'metric: count(events where type = "treatment" during last 30 days)')
    page.wait_for_selector("#tp-re-status.tp-re-ok")
    page.fill("#tp-re-text-input", "metric: count(events where type = ")
    page.wait_for_selector("#tp-re-status.tp-re-bad")
    assert page.is_visible(".tp-re-error[data-for=text]")
    page.fill("#tp-re-text-input", 'metric: count(events where type = "treatment" during last 30 days)')
    page.wait_for_selector("#tp-re-status.tp-re-ok")
    page.click("#tp-re-advanced")  # back to the form, which shows the text's rule
    assert page.input_value("[data-path='metric.window.last_days']") == "30"
    stored = propose(page, "到院次数改为近30天治疗次数")
    assert stored == {"type": "metric", "metric": count_events("treatment", 30)}
