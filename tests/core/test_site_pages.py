"""The pages around the portal: error pages in the visitor's language inside the portal's
frame, the favicon, and API documentation that loads nothing from another host."""

import re

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client, override_settings
from django.urls import include, path

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def boom(request):
    raise RuntimeError("a bug")


def forbidden(request):
    raise PermissionDenied


urlpatterns = [
    path("boom/", boom),
    path("forbidden/", forbidden),
    path("", include("tagportal.urls")),
]


def test_unknown_address_is_a_404_page_in_chinese(world):
    client = Client()
    client.force_login(world.operator)
    response = client.get("/no/such/page/", **CHINESE)
    assert response.status_code == 404
    page = response.content.decode()
    assert "页面不存在" in page and "返回首页" in page
    assert 'id="tp-portal-nav"' in page  # the portal's frame, with its navigation
    assert "标签中台" in page and "Django" not in page


def test_unknown_address_is_a_404_page_in_english_too(db):
    page = Client().get("/no/such/page/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Page not found" in page and "页面不存在" not in page


def test_admin_page_without_the_permission_is_a_403_page_in_chinese(world):
    client = Client()
    client.force_login(world.nobody)  # staff, no permissions
    response = client.get("/admin/catalog/tag/add/", **CHINESE)
    assert response.status_code == 403
    page = response.content.decode()
    assert "无权访问" in page and "403 Forbidden" not in page


@override_settings(ROOT_URLCONF=__name__)
def test_permission_denied_anywhere_is_the_same_page(db):
    response = Client().get("/forbidden/", **CHINESE)
    assert response.status_code == 403 and "无权访问" in response.content.decode()


@override_settings(ROOT_URLCONF=__name__)
def test_server_error_is_a_500_page_in_chinese(db):
    client = Client(raise_request_exception=False)
    response = client.get("/boom/", **CHINESE)
    assert response.status_code == 500
    page = response.content.decode()
    assert "服务器错误" in page and "a bug" not in page and "Traceback" not in page


def test_favicon(db):
    response = Client().get("/favicon.ico")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body[:4] == b"\x00\x00\x01\x00"  # an icon file
    login = Client().get("/admin/login/").content.decode()
    assert 'rel="icon"' in login and "favicon.svg" in login


EXTERNAL = re.compile(r"""(?:https?:)?//([a-z0-9.-]+)""", re.IGNORECASE)


@pytest.mark.parametrize("address", ["/api/redoc/", "/api/docs/"])
def test_api_docs_load_nothing_from_another_host(db, address):
    response = Client().get(address)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<script" in page
    hosts = set(EXTERNAL.findall(page)) - {"testserver"}
    assert not hosts, hosts
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "http" not in policy


def test_a_refused_form_is_the_portals_403_page_not_djangos(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.operator)
    response = client.post("/review/bulk/", {}, **CHINESE)
    assert response.status_code == 403
    page = response.content.decode()
    assert "403 Forbidden" not in page and "CSRF" not in page
    assert 'id="tp-error"' in page and "tp-error-csrf" in page
    assert 'id="tp-portal-nav"' in page and 'lang="zh-hans"' in page and "返回首页" in page


def test_another_business_lines_tag_in_the_admin_is_a_404(world):
    client = Client()
    client.force_login(world.operator)
    base = f"/admin/catalog/tag/{world.other_tag.pk}"
    for url in (f"{base}/change/", f"{base}/history/", f"{base}/change/?_changelist_filters=x"):
        response = client.get(url, **CHINESE)
        assert response.status_code == 404, url
        assert "页面不存在" in response.content.decode()
    assert client.get(f"/admin/catalog/tag/{world.own_tag.pk}/change/").status_code == 200
    # no such tag at all: the same answer
    assert client.get("/admin/catalog/tag/999999/change/").status_code == 404
