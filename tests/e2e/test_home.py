"""The workbench after login, as each role sees it: an operator's own tags, requests and
audiences; a data steward's review queue with its count; an analyst's search. The header
leads to the portal's pages, never to the admin index for them."""

import pytest
from django.contrib.auth import get_user_model

from tagportal.catalog.models import Tag
from tagportal.governance import services as governance

from .conftest import demo, screenshot
from .test_review import login

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def count(page, key: str) -> int:
    return int(page.get_attribute(f"#tp-panel-{key} .tp-count", "data-count"))


def test_each_role_lands_on_its_workbench(live_server, page):
    demo("--people", "200", "--no-models")
    waiting = governance.review_queue(get_user_model().objects.get(username="steward")).count()

    login(page, live_server, "operator", "tagportal-operator")
    assert page.url == f"{live_server.url}/"  # the login lands on the workbench
    assert page.get_attribute("#content-main", "data-roles") == "operator"
    for key in ("my-tags", "my-requests", "my-audiences", "needs-care"):
        assert page.locator(f"#tp-panel-{key}").is_visible()
    assert page.locator("#tp-panel-review-queue").count() == 0
    nav = page.locator("#tp-portal-nav")
    assert nav.locator("a", has_text="工作台").get_attribute("href") == "/"
    assert nav.locator("#tp-nav-dictionary").inner_text() == "标签字典"
    assert nav.locator("#tp-nav-review").count() == 0  # nothing to review for an operator
    assert nav.locator("a[href='/admin/']").count() == 0
    screenshot(page, "home-operator")
    page.set_viewport_size({"width": 1440, "height": 900})
    screenshot(page, "home-operator-1440")
    page.set_viewport_size({"width": 1280, "height": 800})
    assert page.evaluate("() => document.scrollingElement.scrollWidth <= window.innerWidth")
    # the dictionary link opens the tags, not the admin index
    nav.locator("#tp-nav-dictionary").click()
    page.wait_for_selector("#result_list")
    assert "/admin/catalog/tag/" in page.url

    login(page, live_server, "steward", "tagportal-steward")
    assert page.get_attribute("#content-main", "data-roles") == "steward"
    assert count(page, "review-queue") == waiting
    assert page.locator("#tp-panel-review-queue li").count() == min(waiting, 5)
    for key in ("recertify", "stale-sources", "cleanup"):
        assert page.locator(f"#tp-panel-{key}").is_visible()
    # the demo's POS source is past its SLA: named, with its last load
    stale = page.locator("#tp-panel-stale-sources li").first
    assert stale.locator("a").inner_text() == "门店 POS" and stale.locator("a").bounding_box()["width"] > 40
    assert "加载" in stale.locator(".tp-note").inner_text()
    assert page.locator("#tp-portal-nav #tp-nav-review").is_visible()
    screenshot(page, "home-steward")

    login(page, live_server, "analyst", "tagportal-analyst")
    assert page.get_attribute("#content-main", "data-roles") == "analyst"
    assert page.locator(".tp-panel").count() == 0
    page.fill("#tp-home-q", "肤质")
    page.press("#tp-home-q", "Enter")
    page.wait_for_selector("#result_list")
    found = page.locator("#result_list").inner_text()
    assert "肤质" in found and Tag.objects.filter(name__contains="肤质").exists()
    screenshot(page, "home-analyst-search")
