"""Settings for the test suite: SQLite unless ``DATABASE_URL`` is set (CI also runs PostgreSQL)."""

import os

os.environ.setdefault("SECRET_KEY", "tagportal-test-suite-key-" + "0123456789abcdef" * 3)

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
LANGUAGE_CODE = "en"
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["NAME"] = ":memory:"  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": ":memory:"}  # noqa: F405
LOGGING = {"version": 1, "disable_existing_loggers": False}
# The suite speaks plain HTTP to the test client and the browser's live server, and
# reads static files where they lie (no collectstatic).
SECURE_SSL_REDIRECT = False
SECURE_HSTS_SECONDS = 0
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
SECURE_PROXY_SSL_HEADER = None
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
AXES_ENABLED = True
AXES_FAILURE_LIMIT = 5
# Rates far above what a test sends; the throttling tests set their own.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {
        scope: "100000/min"
        for scope in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]  # noqa: F405
    },
}
# Queued tasks run in place, in the test's own transaction and connection.
TAGPORTAL_EAGER_IN_THREAD = False
# The scoring endpoints of the tests are a fake service on 127.0.0.1; the refusal of
# private addresses is tested with this set back to False.
TAGPORTAL_SCORING_ALLOW_PRIVATE = True
