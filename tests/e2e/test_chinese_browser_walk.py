"""The Chinese walk in a browser: each role opens the portal's main pages in Chinese and
the text a reader sees once the scripts ran (``document.body.innerText``: what the rule
editor, the audience builder and the journey editor write is in it) must hold none of the
project catalogue's English strings, and the page must log no error to the console.
Each page leaves a full-page screenshot (``<role>-<page>.png``) in the screenshot folder."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import translation

from tagportal.catalog.models import Tag
from tests.core.test_chinese_walk import ROLES, Page, clean, english_names, problems_on

from .conftest import demo, screenshot

BROWSER_ROLES = ("steward", "operator")
assert set(BROWSER_ROLES) <= set(ROLES)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

#: The demo tag whose page (and proposal form, with the rule editor) is opened.
TAG = "yimei_skin_skin_type"


def pages(tag: Tag, role: str) -> dict[str, str]:
    """``{name: address}`` of the main pages a role opens."""
    return {
        "workbench": "/",
        "dictionary": "/admin/catalog/tag/",
        "tag": f"/admin/catalog/tag/{tag.pk}/change/",
        "rule-editor": f"/review/propose/{tag.pk}/",
        "audiences": "/audiences/",
        "audience-builder": "/audiences/new/",
        "journeys": "/journeys/",
        "journey-editor": "/journeys/new/",
        "activation-accounts": "/activation/",
        "requests": "/review/" if role in ("admin", "steward") else "/review/mine/",
        "dashboards": "/dashboards/",
        "lineage": "/lineage/",
        "models": "/models/",
    }


def seen_text(body: str) -> Page:
    """The page's visible text as the catalogue checks of the Django walk read it: one
    text per line or table cell."""
    page = Page()
    page.texts = [part for line in body.splitlines() for part in line.split("\t")]
    return page


def signed_in(browser, live_server, username: str):
    """A Chinese browser context with ``username`` signed in (a session of the test client)."""
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}])
    return context


def test_the_main_pages_read_in_chinese_in_a_browser(live_server, browser):
    started = time.perf_counter()
    with override_settings(LANGUAGE_CODE="zh-hans"), translation.override("zh-hans"):
        demo("--people", "30", "--no-models")
    tag = Tag.objects.get(code=TAG)
    demo_seconds = time.perf_counter() - started
    data = english_names()
    found: dict[str, list[str]] = {}
    opened = 0
    # The Django-client walk covers every role's pages; in the browser, the portal's two
    # working roles (an admin sees the steward's pages, an analyst fewer of the operator's).
    for role in BROWSER_ROLES:
        context = signed_in(browser, live_server, role)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda msg, errors=errors: msg.type == "error" and errors.append(msg.text))
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        try:
            for name, path in pages(tag, role).items():
                del errors[:]
                response = page.goto(f"{live_server.url}{path}")
                key = f"{role} {path}"
                if response.status in (403, 404):  # not this role's page
                    continue
                if response.status != 200 or "/admin/login/" in page.url:
                    found[key] = [f"answered {response.status} at {page.url}"]
                    continue
                page.wait_for_load_state("networkidle")
                opened += 1
                body = page.evaluate("() => document.body.innerText")
                problems = problems_on(seen_text(body), {clean(d) for d in data})
                problems += [f"console: {text}" for text in errors]
                if problems:
                    found[key] = problems
                screenshot(page, f"zh-{role}-{name}")
        finally:
            context.close()
    seconds = time.perf_counter() - started
    print(f"demo world in {demo_seconds:.1f} s, {opened} pages in {seconds - demo_seconds:.1f} s")
    assert opened >= len(BROWSER_ROLES) * 10  # each role reached most of the portal
    report = "\n".join(f"{key}\n    " + "\n    ".join(items) for key, items in found.items())
    assert not found, f"{len(found)} pages:\n{report}"


def test_the_text_check_sees_english():
    """The check itself: a catalogue string left in English on a line or in a cell is found."""
    body = "标签字典\nTry on a sample\n名称\tNo tags match this search.\t状态"
    found = problems_on(seen_text(body))
    assert len(found) >= 1 and any("Try on a sample" in f for f in found)
    assert problems_on(seen_text("标签字典\n在样本上试算")) == []
