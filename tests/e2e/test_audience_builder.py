"""An operator builds "skin type = oily AND last-visit days <= 30 AND NOT churn risk = high"
in the browser, mostly from the keyboard, sees the size after each condition (4 → 3 → 2),
an error next to the condition it concerns, saves, and lands on the audience's page."""

import re

import pytest

from tagportal.audiences.models import Audience

from ..audiences.conftest import shop  # noqa: F401  (the brand with 10 people and 4 computed tags)
from .test_review import login

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = "#tp-tree > fieldset.tp-group-root"


def pick_tag(page, condition, typed: str, code: str):
    """Type into the condition's tag picker and pick ``code`` with the arrow keys and Enter."""
    tag_input = condition.locator("input.tp-tag-input")
    tag_input.focus()
    page.keyboard.type(typed)
    condition.locator(f"[role=option][data-code={code}]").wait_for()
    assert tag_input.get_attribute("aria-expanded") == "true"
    options = condition.locator("[role=option]")
    wanted = [options.nth(i).get_attribute("data-code") for i in range(options.count())].index(code)
    for _ in range(wanted):
        page.keyboard.press("ArrowDown")
    assert condition.locator("[role=option][aria-selected=true]").get_attribute("data-code") == code
    page.keyboard.press("Enter")
    assert tag_input.get_attribute("aria-expanded") == "false"
    # the operator select has the focus next
    assert page.evaluate("document.activeElement.classList.contains('tp-op')")


def wait_size(page, size: int):
    page.wait_for_selector(f"#tp-size[data-size='{size}']")


def test_operator_builds_and_saves_an_audience(live_server, page, shop):  # noqa: F811
    login(page, live_server, "op", "pw")
    page.goto(f"{live_server.url}/audiences/new/")
    page.wait_for_selector(f"{ROOT} .tp-condition input.tp-tag-input")
    assert page.input_value("#tp-brand") == "ruiyan"
    assert page.locator("#tp-size").inner_text() == "—"

    # 1. skin type = oily, found by its pinyin
    first = page.locator(f"{ROOT} .tp-condition").nth(0)
    pick_tag(page, first, "fuzhi", "yimei_visit_skin_type")
    assert first.locator(".tp-op").input_value() == "eq"
    page.keyboard.press("Tab")  # to the value select
    value = first.locator(".tp-value select")
    assert page.evaluate("document.activeElement.id") == value.get_attribute("id")
    value.select_option("oily")
    wait_size(page, 4)
    assert "40.0%" in page.locator("#tp-share").inner_text()
    assert 'tag(yimei_visit_skin_type) = "oily"' in page.input_value("#tp-text")
    assert re.search(r"\d+(\.\d+)? (ms|毫秒)", page.locator("#tp-took").inner_text())

    # 2. last-visit days <= 30, found by its Chinese name; first a wrong range shows an error
    page.locator(f"{ROOT} > .tp-group-actions .tp-add-condition").click()
    second = page.locator(f"{ROOT} .tp-condition").nth(1)
    assert page.evaluate("document.activeElement.classList.contains('tp-tag-input')")
    pick_tag(page, second, "最近到店", "yimei_visit_last_visit_days")
    second.locator(".tp-op").select_option("between")
    second.locator(".tp-value input").nth(0).fill("40")
    second.locator(".tp-value input").nth(1).fill("10")
    error = second.locator(".tp-node-error")
    error.wait_for()
    assert re.search("high end|上限", error.inner_text())  # the browser asks for Chinese
    assert second.locator(".tp-value input").nth(0).get_attribute("aria-invalid") == "true"
    second.locator(".tp-op").select_option("lte")
    second.locator(".tp-value input").fill("30")
    wait_size(page, 3)
    assert second.locator(".tp-node-error").inner_text() == ""

    # 3. NOT churn risk = high, found by its English name; Escape closes the list first
    page.locator(f"{ROOT} > .tp-group-actions .tp-add-condition").focus()
    page.keyboard.press("Enter")
    third = page.locator(f"{ROOT} .tp-condition").nth(2)
    third_input = third.locator("input.tp-tag-input")
    page.keyboard.type("chu")
    third.locator("[role=option]").first.wait_for()
    page.keyboard.press("Escape")
    assert third_input.get_attribute("aria-expanded") == "false"
    assert third.locator("[role=listbox]").is_hidden()
    page.keyboard.press("Control+A")
    page.keyboard.press("Backspace")
    pick_tag(page, third, "churn", "yimei_visit_churn_risk")
    third.locator(".tp-value select").select_option("high")
    wait_size(page, 1)  # oily, recent and churning: only 2
    third.locator(".tp-not input[type=checkbox]").check()
    wait_size(page, 2)  # oily, recent and not churning: 1 and 3
    assert "not tag(yimei_visit_churn_risk)" in page.input_value("#tp-text")
    assert page.locator("#tp-estimate").get_attribute("aria-live") == "polite"

    # save
    page.fill("#id_name", "油皮近访客")
    page.fill("#id_description", "近30天到店、流失风险不高的油性肌肤顾客")
    page.click("#tp-save")
    page.wait_for_url(re.compile(r"/audiences/\d+/$"))
    page.wait_for_selector("#tp-audience-name")
    assert page.locator("#tp-audience-name").inner_text() == "油皮近访客"
    assert page.get_attribute("#tp-size", "data-size") == "2"
    assert page.locator("#tp-size").inner_text() == "2"
    audience = Audience.objects.get(name="油皮近访客")
    assert audience.size == 2 and audience.owner.username == "op"
    assert audience.expression == {
        "all": [
            {"tag": "yimei_visit_skin_type", "op": "eq", "value": "oily"},
            {"tag": "yimei_visit_last_visit_days", "op": "lte", "value": 30},
            {"not": {"tag": "yimei_visit_churn_risk", "op": "eq", "value": "high"}},
        ]
    }
    # the history chart is drawn by the locally served plotly.js
    page.wait_for_selector("#tp-history .tp-chart .main-svg")


def test_groups_or_and_not_in_the_browser(live_server, page, shop):  # noqa: F811
    """A sub-group "any of (OR)": dry OR mixed skin → 3 people; NOT on the group → 7."""
    login(page, live_server, "op", "pw")
    page.goto(f"{live_server.url}/audiences/new/")
    page.wait_for_selector(f"{ROOT} .tp-condition input.tp-tag-input")
    page.locator(f"{ROOT} > .tp-children > li > .tp-condition .tp-remove").click()
    page.locator(f"{ROOT} > .tp-group-actions .tp-add-group").click()
    group = page.locator(f"{ROOT} fieldset.tp-group").first
    assert group.locator(".tp-group-op").input_value() == "any"
    first = group.locator(".tp-condition").nth(0)
    pick_tag(page, first, "肤质", "yimei_visit_skin_type")
    first.locator(".tp-value select").select_option("dry")
    wait_size(page, 2)
    group.locator(".tp-group-actions .tp-add-condition").click()
    second = group.locator(".tp-condition").nth(1)
    pick_tag(page, second, "fz", "yimei_visit_skin_type")
    second.locator(".tp-op").select_option("in")
    second.locator(".tp-value input[value=mixed]").check()
    wait_size(page, 3)
    group.locator(".tp-group-head .tp-not input").check()
    wait_size(page, 7)
    assert 'not (tag(yimei_visit_skin_type) = "dry" or' in page.input_value("#tp-text")
