"""Production settings: with DEBUG off, ``manage.py check --deploy`` finds nothing to
warn about, a weak SECRET_KEY is refused at start, and each HTTPS setting can be set
from the environment."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = secrets.token_urlsafe(64)


def run(args, **env):
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECRET_KEY", "DEBUG", "DJANGO_", "SECURE_", "SESSION_", "CSRF_", "ALLOWED_"))
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="tagportal.settings", DEBUG="false", ALLOWED_HOSTS="tags.example.cn"
    )
    environment.update(env)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def deploy_check(**env):
    return run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **env)


@pytest.mark.slow
def test_deploy_check_is_clean_in_production():
    result = deploy_check(SECRET_KEY=GOOD_KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_deploy_check_warns_when_https_is_turned_off():
    """The clean check above is not vacuous: turning the defaults off is reported."""
    result = deploy_check(SECRET_KEY=GOOD_KEY, SECURE_SSL_REDIRECT="false", SESSION_COOKIE_SECURE="0")
    assert result.returncode != 0
    assert "security.W008" in result.stderr and "security.W012" in result.stderr


@pytest.mark.parametrize(
    "key",
    [
        "a-short-key-of-thirty-two-chars!",
        "ab" * 40,  # long, but two different characters
        "django-insecure-" + secrets.token_urlsafe(50),
    ],
    ids=["short", "few-characters", "django-insecure"],  # the same names in every xdist worker
)
def test_weak_secret_key_is_refused_when_debug_is_off(key):
    result = deploy_check(SECRET_KEY=key)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY is weak" in result.stderr


@pytest.mark.slow
def test_secure_defaults_and_their_environment_overrides():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
        "s.SECURE_HSTS_PRELOAD, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER, "
        "s.STORAGES['staticfiles']['BACKEND'].rsplit('.', 1)[1])"
    )
    production = run(["-c", code], SECRET_KEY=GOOD_KEY)
    assert production.stdout.split() == [
        "True", "31536000", "True", "True", "True", "True", "None", "CompressedManifestStaticFilesStorage"
    ]  # fmt: skip
    behind_proxy = run(
        ["-c", code],
        SECRET_KEY=GOOD_KEY,
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_PRELOAD="no",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
    )
    assert behind_proxy.stdout.split()[:4] == ["False", "3600", "True", "False"]
    assert "('HTTP_X_FORWARDED_PROTO', 'https')" in behind_proxy.stdout
    development = run(["-c", code], DEBUG="true")
    assert development.stdout.split() == [
        "False", "0", "False", "False", "False", "False", "None", "StaticFilesStorage"
    ]  # fmt: skip


def test_malformed_proxy_header_is_refused():
    result = run(
        ["manage.py", "check"], SECRET_KEY=GOOD_KEY, SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO"
    )
    assert result.returncode != 0 and "SECURE_PROXY_SSL_HEADER must read" in result.stderr
