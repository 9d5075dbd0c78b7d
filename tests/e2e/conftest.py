"""Browser tests: Debian's Chromium driven by Playwright (never a downloaded browser)."""

import os
import shutil
from pathlib import Path

import pytest

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
