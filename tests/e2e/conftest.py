"""Browser tests: Debian's Chromium driven by Playwright (never a downloaded browser)."""

import os
import shutil
import sqlite3
from io import StringIO
from pathlib import Path

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.utils import translation

CHROMIUM = os.environ.get("TAGPORTAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    # Playwright's sync API runs an event loop in this thread; the live server's ORM calls
    # happen in the server thread, the test's own ORM set-up is synchronous code.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    page = context.new_page()
    yield page
    context.close()


#: Where the browser tests leave a full-page screenshot of each page they check, for a
#: person to look at after a run (``build/`` is not committed).
SCREENSHOT_DIR = Path(
    os.environ.get("E2E_SCREENSHOT_DIR") or Path(__file__).resolve().parents[2] / "build" / "screenshots"
)


def screenshot(page, name: str) -> Path:
    """A full-page screenshot of ``page`` as ``<SCREENSHOT_DIR>/<name>.png``."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


#: The demo worlds built in this process, on SQLite: ``{(arguments, language): copy}``.
_DEMOS: dict[tuple, sqlite3.Connection] = {}


def demo(*args: str) -> None:
    """``manage.py bootstrap_demo *args`` (in the active language) for a browser test.

    The browser tests run on a fresh database each (real transactions, a live server) and
    building the demo takes ~20 s. On SQLite the first build in this process is copied
    aside with SQLite's backup API and later tests get that copy back in milliseconds:
    the same rows, ids and sequences the build made, whatever the test before changed."""
    key = (args, translation.get_language())
    if connection.vendor != "sqlite":
        call_command("bootstrap_demo", *args, stdout=StringIO())
        return
    connection.ensure_connection()
    if key in _DEMOS:
        _DEMOS[key].backup(connection.connection)
        # what the process remembered of the database it replaced
        from django.contrib.contenttypes.models import ContentType

        ContentType.objects.clear_cache()
        for cache in caches.all():
            cache.clear()
        return
    call_command("bootstrap_demo", *args, stdout=StringIO())
    copy = sqlite3.connect(":memory:", check_same_thread=False)
    connection.connection.backup(copy)
    _DEMOS[key] = copy
