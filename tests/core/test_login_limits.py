"""Brute force and floods: a username guessed too often from one address is locked out
on both ways in (the admin's login form and the API's token endpoint), even for the
right password, and the API answers floods with 429 and ``Retry-After``."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from tests.conftest import client_for

TOKEN = "/api/token/"
LOGIN = "/admin/login/"
CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def admin_login(client, username, password, **extra):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_thirty_wrong_passwords_then_the_right_one_is_refused_on_the_admin(world):
    client = Client()
    codes = [admin_login(client, "op", f"guess-{n}").status_code for n in range(30)]
    assert codes[:4] == [200] * 4  # the form again, with its error
    assert set(codes[4:]) == {429}  # the fifth failure locks the pair out
    response = admin_login(client, "op", "pw", **CHINESE)
    assert response.status_code == 429
    assert not logged_in(client)
    page = response.content.decode()
    assert "登录失败次数过多" in page and "15 分钟" in page
    assert response["Retry-After"] == str(15 * 60)
    assert AccessAttempt.objects.get(username="op").failures_since_start >= 30


def test_thirty_wrong_passwords_then_the_right_one_is_refused_on_the_api(world):
    api = APIClient()
    codes = [
        api.post(TOKEN, {"username": "op", "password": f"guess-{n}"}, format="json").status_code
        for n in range(30)
    ]
    assert codes[:4] == [400] * 4
    assert set(codes[4:]) == {429}
    response = api.post(TOKEN, {"username": "op", "password": "pw"}, format="json", **CHINESE)
    assert response.status_code == 429
    body = response.json()
    assert "token" not in body and "登录失败次数过多" in body["detail"]
    assert body["retry_after"] == 15 * 60 and response["Retry-After"] == str(15 * 60)
    assert not Token.objects.filter(user=world.operator).exists()


def test_lockout_is_per_username_and_address_and_shared_by_both_ways_in(world):
    api = APIClient()
    for n in range(5):
        api.post(TOKEN, {"username": "op", "password": f"guess-{n}"}, format="json")
    # the admin's form from the same address: locked out too
    assert admin_login(Client(), "op", "pw").status_code == 429
    # the same user from another address, and another user from this one, may log in
    elsewhere = APIClient(REMOTE_ADDR="203.0.113.9")
    assert elsewhere.post(TOKEN, {"username": "op", "password": "pw"}, format="json").status_code == 200
    assert api.post(TOKEN, {"username": "st", "password": "pw"}, format="json").status_code == 200
    client = Client()
    assert admin_login(client, "st", "pw").status_code == 302 and logged_in(client)


def test_fewer_failures_than_the_limit_then_the_right_password_logs_in_and_resets(world):
    api = APIClient()
    for n in range(4):
        assert api.post(TOKEN, {"username": "op", "password": f"x{n}"}, format="json").status_code == 400
    assert api.post(TOKEN, {"username": "op", "password": "pw"}, format="json").status_code == 200
    # the count starts again: four more failures still do not lock
    for n in range(4):
        assert api.post(TOKEN, {"username": "op", "password": f"y{n}"}, format="json").status_code == 400
    assert api.post(TOKEN, {"username": "op", "password": "pw"}, format="json").status_code == 200


def test_the_lockout_ends_after_the_cool_off(world):
    client = Client()
    for n in range(5):
        admin_login(client, "op", f"guess-{n}")
    assert admin_login(client, "op", "pw").status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert admin_login(client, "op", "pw").status_code == 302
    assert logged_in(client)


@pytest.fixture
def rates(monkeypatch):
    """Small rates for one test (DRF reads them when a throttle is made), an empty cache."""

    def use(**scopes):
        monkeypatch.setattr(
            SimpleRateThrottle, "THROTTLE_RATES", {**SimpleRateThrottle.THROTTLE_RATES, **scopes}
        )

    cache.clear()
    yield use
    cache.clear()


def test_three_hundred_rapid_calls_meet_the_user_rate(world, rates):
    rates(user="100/min")
    api = client_for(world.operator)
    codes = [api.get("/api/catalog/business-lines/").status_code for _ in range(300)]
    assert codes.count(200) == 100 and codes[:100] == [200] * 100
    assert codes.count(429) == 200
    refused = api.get("/api/catalog/business-lines/")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "detail" in refused.json()
    # each user has their own allowance
    assert client_for(world.steward).get("/api/catalog/business-lines/").status_code == 200


def test_anonymous_rate_holds_on_the_token_endpoint(world, rates):
    """Guessing across many usernames (no single lockout) meets the anonymous rate."""
    rates(anon="3/min")
    api = APIClient()
    codes = [
        api.post(TOKEN, {"username": f"someone{n}", "password": "x"}, format="json").status_code
        for n in range(5)
    ]
    assert codes == [400, 400, 400, 429, 429]
    assert int(api.post(TOKEN, {"username": "op", "password": "pw"}, format="json")["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("scope", "method", "path"),
    [
        ("estimate", "post", "/api/audiences/estimate/"),
        ("estimate", "get", "/api/governance/change-requests/999999/impact/"),
        ("estimate", "post", "/api/governance/reports/999999/cleanup/"),
        ("import", "post", "/api/profiles/import/"),
        ("import", "post", "/api/governance/change-requests/bulk/"),
    ],
)
def test_estimates_and_imports_have_their_own_rates(world, rates, scope, method, path):
    rates(**{scope: "2/min"})
    api = client_for(world.admin)
    first = [getattr(api, method)(path, {}).status_code for _ in range(2)]
    assert 429 not in first
    refused = getattr(api, method)(path, {})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    # the rest of the API is not held to that scope's rate
    assert api.get("/api/catalog/business-lines/").status_code == 200


def test_an_administrator_sees_the_lockout_and_lifts_it(world):
    for n in range(5):
        admin_login(Client(), "op", f"guess-{n}")
    attempt = AccessAttempt.objects.get(username="op")
    admin = Client()
    admin.force_login(world.admin)
    listing = admin.get("/admin/axes/accessattempt/", **CHINESE)
    assert listing.status_code == 200
    assert "登录尝试" in listing.content.decode() and ">op<" in listing.content.decode()
    deleted = admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not AccessAttempt.objects.exists()
    client = Client()
    assert admin_login(client, "op", "pw").status_code == 302 and logged_in(client)
