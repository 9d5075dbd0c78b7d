"""The API documentation pages, opened in a browser, request nothing from another host
(ReDoc's bundle would fetch its vendor's logo from a CDN; the pages' policy stops it)."""

from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(("address", "ready"), [("/api/redoc/", "h1"), ("/api/docs/", ".swagger-ui .info")])
def test_docs_request_nothing_from_another_host(live_server, page, address, ready):
    here = urlsplit(live_server.url).netloc
    elsewhere = []

    def watch(route):
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != here:
            elsewhere.append(url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", watch)
    page.goto(f"{live_server.url}{address}")
    page.wait_for_selector(ready, timeout=30000)
    assert "TagPortal API" in page.locator(ready).first.inner_text()
    page.wait_for_load_state("networkidle")
    assert elsewhere == []
