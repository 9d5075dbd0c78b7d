"""An operator logs in, finds tags in the dictionary, and a steward compares two versions."""

import re

import pytest

from tagportal.catalog.models import Tag
from tagportal.catalog.services import apply_changes

from .conftest import demo, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def login(page, live_server, username, password):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#content")


def test_operator_searches_the_dictionary_in_chinese(live_server, page):
    demo("--people", "200", "--no-models")
    login(page, live_server, "operator", "tagportal-operator")
    page.goto(f"{live_server.url}/admin/catalog/tag/")
    rows = page.locator("#result_list tbody tr")
    own = Tag.objects.filter(brand__code="ruiyan").count()
    assert rows.count() == min(own, 50)
    # Only the operator's business line (医美) is there.
    assert page.locator("#result_list").inner_text().count("yimei_") >= 1
    assert "jiankang_" not in page.content()
    page.fill("#searchbar", "肤质")
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()
    text = page.locator("#result_list").inner_text()
    assert "肤质类型" in text
    expected = (
        Tag.objects.filter(brand__code="ruiyan", name__contains="肤质").count()
        + Tag.objects.filter(brand__code="ruiyan", description__contains="肤质")
        .exclude(name__contains="肤质")
        .count()
    )
    assert page.locator("#result_list tbody tr").count() == expected
    # The code of a new tag is suggested live from its Chinese name.
    page.goto(f"{live_server.url}/admin/catalog/tag/add/")
    page.select_option("#id_brand", label="瑞颜医美")
    page.select_option("#id_category", label="行为偏好 › 到店行为")
    page.fill("#id_name", "到店偏好时段")
    page.wait_for_function("document.getElementById('id_code').placeholder.startsWith('yimei_')")
    assert page.get_attribute("#id_code", "placeholder") == "yimei_visit_dao_dian_pian_hao_shi_duan"


def test_steward_compares_two_versions(live_server, page):
    demo("--people", "200", "--no-models")
    tag = Tag.objects.get(code="yimei_skin_skin_type")
    apply_changes(tag, {"description": "按皮肤检测仪结果与问卷综合判定的肤质"}, reason="完善描述")
    login(page, live_server, "steward", "tagportal-steward")
    page.goto(f"{live_server.url}/admin/catalog/tag/{tag.pk}/history/")
    # one row per published version; the comparison opens on the newest and the one before
    assert page.locator("#tp-versions tbody tr").count() == tag.versions.count() >= 2
    assert page.locator("#tp-versions input[name=to]").nth(0).is_checked()
    assert page.locator("#tp-versions input[name=from]").nth(1).is_checked()
    page.click("#content-main input[type=submit]")
    page.wait_for_selector("#tp-diff")
    diff = page.locator("#tp-diff").inner_text()
    assert "按皮肤检测仪结果与问卷综合判定的肤质" in diff
    assert re.search(r"description|描述", diff, re.IGNORECASE)
    screenshot(page, "history-compare")


@pytest.mark.parametrize("width", [1280, 1440])
def test_dictionary_fits_the_screen(live_server, browser, width):
    """At 1280 px the dictionary needs no horizontal scroll: state, version, coverage, owner
    and last update are in view."""
    demo("--people", "200", "--no-models")
    context = browser.new_context(locale="zh-CN", viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        login(page, live_server, "admin", "tagportal-admin")
        page.goto(f"{live_server.url}/admin/catalog/tag/")
        widths = page.evaluate(
            "() => { const t = document.querySelector('#result_list');"
            " return [t.scrollWidth, t.parentElement.clientWidth]; }"
        )
        assert widths[0] <= widths[1]
        for column in ("status", "version_label", "coverage", "owner", "updated"):
            box = page.locator(f"#result_list th.column-{column}").bounding_box()
            assert box["x"] + box["width"] <= width
        assert page.locator("#result_list tbody tr").count() == 50
        screenshot(page, f"dictionary-{width}")
    finally:
        context.close()
