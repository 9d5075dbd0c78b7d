import pytest
from django.core.cache import cache

from tagportal.activation.connectors import base
from tagportal.activation.connectors.base import reset_rate_limits


@pytest.fixture(autouse=True)
def fresh_windows_and_tokens():
    cache.clear()
    reset_rate_limits()
    yield
    cache.clear()


@pytest.fixture
def sleeps(monkeypatch):
    """The pauses the retry policy asked for, without waiting them."""
    slept: list[float] = []
    monkeypatch.setattr(base, "_sleep", slept.append)
    return slept


@pytest.fixture
def platform(settings, httpserver):
    settings.TAGPORTAL_WECOM_API_BASE = httpserver.url_for("/").rstrip("/")
    return httpserver


@pytest.fixture
def wechat_platform(settings, httpserver):
    settings.TAGPORTAL_WECHAT_API_BASE = httpserver.url_for("/").rstrip("/")
    return httpserver
