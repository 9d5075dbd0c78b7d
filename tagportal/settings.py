"""TagPortal settings, driven by environment variables.

Variables: ``DATABASE_URL``, ``CELERY_BROKER_URL``, ``SECRET_KEY``, ``DEBUG``,
``ALLOWED_HOSTS`` (comma separated), ``CSRF_TRUSTED_ORIGINS`` (comma separated),
``TIME_ZONE`` (display zone, default Asia/Shanghai), ``LANGUAGE_CODE``.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

#: The key used when ``SECRET_KEY`` is not set. Only for development: settings
#: refuse to start with it when DEBUG is off.
DEVELOPMENT_SECRET_KEY = "tagportal-development-key-not-for-production"


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "Refusing to start: DEBUG is off and SECRET_KEY is the development key. "
        "Set SECRET_KEY to a long random value (or DEBUG=true for local development)."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "simple_history",
    "django_celery_beat",
    # TagPortal's apps, lowest layer first (an app imports only apps above it in this
    # list; see docs/architecture.md).
    "tagportal.core",
    "tagportal.usage",
    "tagportal.notifications",
    "tagportal.catalog",
    "tagportal.profiles",
    "tagportal.engine",
    "tagportal.audiences",
    "tagportal.lineage",
    "tagportal.governance",
    "tagportal.dashboards",
    "tagportal.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "tagportal.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

WSGI_APPLICATION = "tagportal.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Writers wait for each other (up to 20 s) instead of failing with "database is
    # locked", and a transaction takes the write lock when it begins, so of two
    # simultaneous approvals the second one sees the first and gets a 409, as on
    # PostgreSQL. WAL lets readers go on while one request writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

AUTH_USER_MODEL = "core.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# Internationalisation: the portal ships in Simplified Chinese and English.
# Times are stored in UTC and shown (and reasoned about as days) in Beijing time.
LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"


def _plotly_js_dir() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data"


# plotly.js is served from the installed plotly package (static/plotly/plotly.min.js), never a CDN.
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", _plotly_js_dir())]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = BASE_DIR / "media"
MEDIA_URL = "media/"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATA_UPLOAD_MAX_NUMBER_FIELDS = 20000
#: A request body that is not a file upload (JSON, a form) may be at most this big.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DATA_UPLOAD_MAX_MEMORY_SIZE", str(5 * 1024 * 1024)))
#: Uploaded files bigger than this go to a temporary file, not memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
#: The largest file a user may upload (an import, a bulk change file), in bytes.
TAGPORTAL_MAX_UPLOAD_BYTES = int(os.environ.get("TAGPORTAL_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024)))

# One cache for throttling, brute-force counters and tokens: Redis when CACHE_URL is
# set (several server processes share it), else this process's memory.
CACHE_URL = os.environ.get("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tagportal"}
    )
}

# django-guardian: no anonymous user object, direct foreign-key permission tables.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

# django-simple-history
SIMPLE_HISTORY_HISTORY_CHANGE_REASON_USE_TEXT_FIELD = True
SIMPLE_HISTORY_REVERT_DISABLED = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["tagportal.core.api_permissions.RestrictedObjectPermissions"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "tagportal.core.api_permissions.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tagportal.core.api.exception_handler",
    # Per-scope rates (requests per second/minute/hour/day); each can be set from the
    # environment, e.g. THROTTLE_LOOKUP=60/hour.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": os.environ.get("THROTTLE_ANON", "60/min"),
        "user": os.environ.get("THROTTLE_USER", "1200/min"),
        # finding a person by a raw identity value (phone, openid …)
        "lookup": os.environ.get("THROTTLE_LOOKUP", "120/hour"),
        # audience size estimates and impact previews (they compute)
        "estimate": os.environ.get("THROTTLE_ESTIMATE", "120/min"),
        # file imports and bulk uploads
        "import": os.environ.get("THROTTLE_IMPORT", "30/hour"),
    },
    "UNICODE_JSON": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "TagPortal API",
    "DESCRIPTION": "The tag dictionary, its dimensions and versions. Token or session authentication; "
    "every endpoint shows only what the caller's grants allow.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # the standard 4xx answers of every operation (tagportal/core/api_schema.py)
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tagportal.core.api_schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "TagKindEnum": "tagportal.catalog.choices.TagKind",
        "TagStatusEnum": "tagportal.catalog.choices.TagStatus",
        "ChangeKindEnum": "tagportal.governance.choices.ChangeKind",
        "SourceKindEnum": "tagportal.lineage.choices.SourceKind",
        "RunStatusEnum": "tagportal.engine.choices.RunStatus",
        "ImportKindEnum": "tagportal.profiles.choices.ImportKind",
        "ImportStatusEnum": "tagportal.profiles.choices.ImportStatus",
        "AudienceKindEnum": "tagportal.audiences.choices.AudienceKind",
        "AudienceStatusEnum": "tagportal.audiences.choices.AudienceStatus",
        "RefreshTriggerEnum": "tagportal.audiences.choices.RefreshTrigger",
        "ReportTriggerEnum": "tagportal.governance.choices.ReportTrigger",
        "ReportKindEnum": "tagportal.governance.choices.ReportKind",
        "ReportStatusEnum": "tagportal.governance.choices.ReportStatus",
    },
}

# Celery: an in-process default (tasks run eagerly) unless a broker is configured.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ROUTES = {"tagportal.engine.tasks.*": {"queue": "compute"}}
CELERY_TASK_DEFAULT_QUEUE = "default"

#: Days between re-certifications of a published tag, unless its category says otherwise.
TAGPORTAL_RECERTIFICATION_DAYS = int(os.environ.get("TAGPORTAL_RECERTIFICATION_DAYS", "180"))
#: Key of the keyed hash (HMAC-SHA256) under which phone numbers are stored; never the number in clear.
TAGPORTAL_PII_KEY = os.environ.get("TAGPORTAL_PII_KEY") or SECRET_KEY
#: Where links in notification e-mails point.
TAGPORTAL_BASE_URL = os.environ.get("TAGPORTAL_BASE_URL", "http://127.0.0.1:8000")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "tagportal@localhost")
#: Days daily tag-usage counters are kept (never fewer than 400).
TAGPORTAL_USAGE_RETENTION_DAYS = int(os.environ.get("TAGPORTAL_USAGE_RETENTION_DAYS", "730"))
#: Propose deprecating a tag flagged cold by two cold-tag reports in a row.
TAGPORTAL_AUTO_DEPRECATE_COLD = env_bool("TAGPORTAL_AUTO_DEPRECATE_COLD", False)

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

if not DEBUG:
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
