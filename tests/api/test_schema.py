"""The OpenAPI document and the API docs pages, which must work offline (no CDN)."""

import json
import re
from html.parser import HTMLParser
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

SIDECAR = "drf_spectacular_sidecar/swagger-ui-dist/"


@pytest.fixture
def schema(db):
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return json.loads(response.content)


def test_schema_is_openapi_3(schema):
    assert re.match(r"^3\.\d+\.\d+$", schema["openapi"])
    assert schema["info"]["title"] == "TagPortal API"
    assert schema["info"]["version"] == "1"


def test_schema_default_format_is_yaml(db):
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.startswith(b"openapi: 3.")


def test_schema_has_the_tag_paths(schema):
    paths = schema["paths"]
    expected = {
        "/api/catalog/tags/": {"get", "post"},
        "/api/catalog/tags/{id}/": {"get", "put", "patch", "delete"},
        "/api/catalog/tags/{id}/history/": {"get"},
        "/api/catalog/tags/{id}/diff/": {"get"},
        "/api/catalog/tags/{id}/versions/": {"get"},
        "/api/catalog/tags/suggest-code/": {"get"},
        "/api/catalog/versions/": {"get"},
        "/api/catalog/versions/{id}/": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, sorted(paths[path]))
    # versions are read-only
    assert not {"post", "put", "patch", "delete"} & set(paths["/api/catalog/versions/{id}/"])


def test_schema_documents_tag_filters_and_parameters(schema):
    listing = {p["name"] for p in schema["paths"]["/api/catalog/tags/"]["get"]["parameters"]}
    assert {
        "business_line",
        "brand",
        "region",
        "category",
        "kind",
        "value_type",
        "status",
        "owner",
    } <= listing
    assert {"search", "ordering", "page", "page_size"} <= listing
    diff = {p["name"] for p in schema["paths"]["/api/catalog/tags/{id}/diff/"]["get"]["parameters"]}
    assert {"from", "to"} <= diff
    suggest = {p["name"]: p for p in schema["paths"]["/api/catalog/tags/suggest-code/"]["get"]["parameters"]}
    assert suggest["name"]["required"] is True


def test_schema_describes_the_tag_component(schema):
    components = schema["components"]["schemas"]
    tag = components["Tag"]["properties"]
    assert {"code", "name", "brand", "category", "definition", "values", "status"} <= set(tag)
    assert tag["status"].get("readOnly") is True or "readOnly" in json.dumps(tag["status"])
    request = components["TagRequest"]
    assert "status" not in request["properties"]
    assert {"name", "brand", "category", "kind", "value_type"} <= set(request["required"])


def test_schema_declares_token_authentication(schema):
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("type") == "apiKey" and s.get("name") == "Authorization" for s in schemes.values()), (
        schemes
    )


class AssetParser(HTMLParser):
    """Collects the URLs of scripts, stylesheets and icons a page loads."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        elif tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        elif tag in ("img", "iframe") and attrs.get("src"):
            self.urls.append(attrs["src"])


def assets(html: str) -> list[str]:
    parser = AssetParser()
    parser.feed(html)
    return parser.urls


def assert_local_static(urls):
    static_url = "/" + settings.STATIC_URL.lstrip("/")
    assert urls
    for url in urls:
        parsed = urlparse(url)
        assert not parsed.scheme and not parsed.netloc, f"{url} is loaded from another host"
        assert url.startswith(static_url), url
        relative = parsed.path[len(static_url) :]
        assert finders.find(relative), f"{relative} is not a static file"


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_need_no_other_host(db, page):
    response = APIClient().get(page)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    urls = assets(html)
    assert_local_static(urls)
    # nor any script or stylesheet URL to another host anywhere in the page (inline config included)
    assert not re.search(r"""(?:src|href|url)\s*[=:(]\s*["']?(?:https?:)?//""", html), html
    assert "/api/schema/" in html


def test_swagger_ui_uses_the_sidecar(db):
    html = APIClient().get("/api/docs/").content.decode()
    urls = assets(html)
    static = "/" + settings.STATIC_URL.lstrip("/")
    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert f"{static}{SIDECAR}{name}" in urls, (name, urls)
        assert finders.find(f"{SIDECAR}{name}")


def test_asset_check_rejects_a_cdn():
    """The check above would notice a CDN."""
    with pytest.raises(AssertionError):
        assert_local_static(["https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"])
    with pytest.raises(AssertionError):
        assert_local_static(["//unpkg.com/swagger-ui-dist/swagger-ui-bundle.js"])
    with pytest.raises(AssertionError):
        assert_local_static(["/static/drf_spectacular_sidecar/no-such-file.js"])
