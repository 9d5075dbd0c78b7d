"""Settings refuse to start in production mode with the development secret key."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start(**env):
    environment = {
        k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE")
    }
    environment.update(env, DJANGO_SETTINGS_MODULE="tagportal.settings")
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_debug_off_with_development_key():
    result = start(DEBUG="false")
    assert result.returncode != 0
    assert "Refusing to start" in result.stderr and "SECRET_KEY" in result.stderr


@pytest.mark.slow
def test_starts_with_a_real_key_or_in_debug():
    assert (
        start(
            DEBUG="false", SECRET_KEY="a-real-production-secret-key-0123456789-abcdefghijklmnopq"
        ).stdout.strip()
        == "False"
    )
    assert start(DEBUG="true").stdout.strip() == "True"


@pytest.mark.slow
def test_configuration_by_environment():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.ALLOWED_HOSTS, s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER)"
    )
    environment = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    environment.update(
        DJANGO_SETTINGS_MODULE="tagportal.settings",
        DEBUG="false",
        SECRET_KEY="another-real-secret-key-abcdefghijklmnop-0123456789abcdef",
        DATABASE_URL="postgres://u@127.0.0.1:5432/x",
        ALLOWED_HOSTS="tags.example.cn,api.example.cn",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "postgresql" in result.stdout
    assert "['tags.example.cn', 'api.example.cn']" in result.stdout
    assert "redis://127.0.0.1:6379/0 False" in result.stdout
