"""The screenshots of the Chinese guides (README.zh-CN.md, docs/zh/), taken from the demo
at 1280 px so they never go stale: each run writes docs/zh/img/*.png again. Every page
shown must fit the 1280 px window (no horizontal scroll)."""

from pathlib import Path

import pytest

from tagportal.catalog.models import BusinessLine, Tag
from tagportal.governance.models import ChangeRequest

from .conftest import demo
from .test_review import login

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "zh" / "img"
WIDTH, HEIGHT = 1280, 720


def shoot(page, name: str, clip_height: int = HEIGHT) -> None:
    """A viewport shot of the page as docs/zh/img/<name>.png, after checking it fits."""
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate(
        "() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
    )
    assert overflow <= 0, f"{name}: {overflow} px of horizontal scroll at {WIDTH} px"
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    path = DOCS_IMG / f"{name}.png"
    page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": WIDTH, "height": clip_height})
    assert path.stat().st_size > 0


def test_the_guides_screenshots(live_server, browser, settings):
    settings.LANGUAGE_CODE = "zh-hans"  # the demo's own texts in Chinese, as with make run
    demo("--people", "200", "--no-models")
    tag = Tag.objects.get(code="yimei_skin_skin_type")
    line = BusinessLine.objects.get(code="yimei")
    context = browser.new_context(locale="zh-CN", viewport={"width": WIDTH, "height": HEIGHT})
    page = context.new_page()
    url = live_server.url
    try:
        login(page, live_server, "operator", "tagportal-operator")
        assert page.get_attribute("#content-main", "data-roles") == "operator"
        shoot(page, "home-operator")
        page.goto(f"{url}/admin/catalog/tag/")
        assert page.locator("#result_list tbody tr").count() > 0
        shoot(page, "dictionary")
        page.goto(f"{url}/admin/catalog/tag/{tag.pk}/change/")
        assert tag.name in page.locator("#content").inner_text()
        shoot(page, "tag")
        page.goto(f"{url}/review/propose/{tag.pk}/")
        page.fill("#id_description", "按皮肤检测仪结果与问卷综合判定的肤质（干性、油性、混合、敏感）")
        shoot(page, "propose")
        page.goto(f"{url}/audiences/new/")
        assert page.locator("#tp-tree").count() == 1
        shoot(page, "audience-builder")

        login(page, live_server, "steward", "tagportal-steward")
        assert page.get_attribute("#content-main", "data-roles") == "steward"
        shoot(page, "home-steward")
        page.goto(f"{url}/review/")
        waiting = ChangeRequest.objects.filter(state="submitted", business_line=line).order_by("pk").first()
        assert waiting is not None and f"/review/{waiting.pk}/" in page.content()
        shoot(page, "review-queue")
        page.goto(f"{url}/review/{waiting.pk}/")
        page.wait_for_selector("#tp-request-header")
        shoot(page, "review-request")
        page.goto(f"{url}/dashboards/cold/?business_line={line.pk}")
        assert page.locator("input[name=finding]").count() > 0
        shoot(page, "cleanup-cold")
    finally:
        context.close()
    assert {p.stem for p in DOCS_IMG.glob("*.png")} >= {
        "home-operator",
        "dictionary",
        "tag",
        "propose",
        "audience-builder",
        "home-steward",
        "review-queue",
        "review-request",
        "cleanup-cold",
    }
