"""TagPortal settings, driven by environment variables.

Variables: ``DATABASE_URL``, ``CELERY_BROKER_URL``, ``SECRET_KEY``, ``DEBUG``,
``ALLOWED_HOSTS`` (comma separated), ``CSRF_TRUSTED_ORIGINS`` (comma separated),
``TIME_ZONE`` (display zone, default Asia/Shanghai), ``LANGUAGE_CODE``.

Production (``DEBUG`` off) is secure by default: HTTPS redirect, HSTS, secure cookies,
hashed and compressed static files. Each can be set from the environment:
``SECURE_SSL_REDIRECT``, ``SECURE_HSTS_SECONDS``, ``SECURE_HSTS_INCLUDE_SUBDOMAINS``,
``SECURE_HSTS_PRELOAD``, ``SESSION_COOKIE_SECURE``, ``CSRF_COOKIE_SECURE``,
``SECURE_PROXY_SSL_HEADER`` (``HTTP_X_FORWARDED_PROTO,https`` behind a proxy that ends
TLS), ``TRUSTED_PROXY_COUNT`` (proxies in front that append to X-Forwarded-For).
Logins: ``AXES_FAILURE_LIMIT``, ``AXES_COOLOFF_MINUTES``; API rates: ``THROTTLE_*``.
"""

import json
import os
from datetime import timedelta
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
#: What Django's deployment check (security.W009) asks of a production key.
SECRET_KEY_MIN_LENGTH, SECRET_KEY_MIN_UNIQUE = 50, 5
if not DEBUG and (
    len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH
    or len(set(SECRET_KEY)) < SECRET_KEY_MIN_UNIQUE
    or SECRET_KEY.startswith("django-insecure-")
):
    raise ImproperlyConfigured(
        f"Refusing to start: DEBUG is off and SECRET_KEY is weak ({len(SECRET_KEY)} characters). "
        f"Use at least {SECRET_KEY_MIN_LENGTH} random characters, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(64))'."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
#: A refused form answers with the portal's page, in the visitor's language.
CSRF_FAILURE_VIEW = "tagportal.core.views.csrf_failure"

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
    "axes",
    # TagPortal's apps, lowest layer first (an app imports only apps above it in this
    # list; see docs/architecture.md).
    "tagportal.core",
    "tagportal.usage",
    "tagportal.notifications",
    "tagportal.catalog",
    "tagportal.profiles",
    "tagportal.engine",
    "tagportal.predictive",
    "tagportal.audiences",
    "tagportal.activation",
    "tagportal.journeys",
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
    # a locked database or an out-of-range number: a page that says so, not a 500
    "tagportal.core.middleware.DatabaseErrorPageMiddleware",
    # last: turns a login refused for too many failures into the lockout answer
    "axes.middleware.AxesMiddleware",
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
    # first: refuses a username that failed too often from the same address
    "axes.backends.AxesStandaloneBackend",
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

# Brute-force protection (django-axes) on every login, the admin's and the API token's:
# after AXES_FAILURE_LIMIT failures for one username from one address, that pair is
# refused (429) for AXES_COOLOFF_MINUTES, even with the right password. Attempts are
# kept in the database (shared by every server process; listed in the admin).
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_CALLABLE = "tagportal.core.auth.lockout_response"
# no start-up banner on every manage.py command
AXES_VERBOSE = env_bool("AXES_VERBOSE", False)
AXES_CLIENT_IP_CALLABLE = "tagportal.core.auth.client_ip"
#: Proxies in front of the server that append the client's address to X-Forwarded-For
#: (0: the connection's own address is the client's). Used by login lockouts and throttles.
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))

# Internationalisation: the portal ships in Simplified Chinese and English.
# Times are stored in UTC and shown (and reasoned about as days) in Beijing time.
LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
#: Where ``collectstatic`` gathers the files that WhiteNoise serves.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")


def _plotly_js_dir() -> Path:
    import plotly

    return Path(plotly.__file__).resolve().parent / "package_data"


# plotly.js is served from the installed plotly package (static/plotly/plotly.min.js), never a CDN.
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", _plotly_js_dir())]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # In production the files are collected (``make serve`` does it) with hashed names
    # and gzip/brotli copies, and WhiteNoise serves them with far-future caching.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
#: Files served at the site's root (``/favicon.ico``).
WHITENOISE_ROOT = BASE_DIR / "static" / "root"
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
#: ... enforced while the file arrives: past it nothing more is stored and the form says so.
FILE_UPLOAD_HANDLERS = [
    "tagportal.core.uploads.MaxUploadSizeHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
#: Caps of an uploaded profile import (rows below the header, columns).
TAGPORTAL_IMPORT_MAX_ROWS = int(os.environ.get("TAGPORTAL_IMPORT_MAX_ROWS", "500000"))
TAGPORTAL_IMPORT_MAX_COLUMNS = int(os.environ.get("TAGPORTAL_IMPORT_MAX_COLUMNS", "200"))

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
        "tagportal.core.filters.FilterBackend",  # numbers bounded to what the database holds
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "tagportal.core.api_permissions.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tagportal.core.api.exception_handler",
    # Per-scope rates (requests per second/minute/hour/day); each can be set from the
    # environment, e.g. THROTTLE_LOOKUP=60/hour.
    # A view with a ``throttle_scope`` is also held to that scope's rate.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
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
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "TagPortal API",
    "DESCRIPTION": "The tag dictionary, its dimensions and versions. Token or session authentication; "
    "every endpoint shows only what the caller's grants allow.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Swagger UI's validator badge would load an image from another host.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
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
        "JourneyStatusEnum": "tagportal.journeys.choices.JourneyStatus",
        "JourneyVersionStateEnum": "tagportal.journeys.choices.VersionState",
        "ImportKindEnum": "tagportal.profiles.choices.ImportKind",
        "ImportStatusEnum": "tagportal.profiles.choices.ImportStatus",
        "AudienceKindEnum": "tagportal.audiences.choices.AudienceKind",
        "AudienceStatusEnum": "tagportal.audiences.choices.AudienceStatus",
        "RefreshTriggerEnum": "tagportal.audiences.choices.RefreshTrigger",
        "ReportTriggerEnum": "tagportal.governance.choices.ReportTrigger",
        "ReportKindEnum": "tagportal.governance.choices.ReportKind",
        "ReportStatusEnum": "tagportal.governance.choices.ReportStatus",
        "ModelKindEnum": "tagportal.predictive.choices.ModelKind",
        "ModelRunStatusEnum": "tagportal.predictive.choices.ModelRunStatus",
        "ChannelKindEnum": "tagportal.activation.choices.ChannelKind",
        "ReceiptStatusEnum": "tagportal.activation.choices.ReceiptStatus",
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
# The broker's redelivery of unacknowledged work after this many seconds is the last resort;
# work a killed worker held is found by its claim's stopped heartbeat (below) within minutes.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("TAGPORTAL_BROKER_VISIBILITY_TIMEOUT", "3600")),
}

#: Seconds between heartbeats of a running task's claim (tagportal.core.claims).
TAGPORTAL_CLAIM_HEARTBEAT_S = float(os.environ.get("TAGPORTAL_CLAIM_HEARTBEAT_S", "30"))
#: A claim whose last heartbeat is older than this many seconds belongs to a dead worker:
#: the reaper (every minute) records its work as abandoned and queues it again.
TAGPORTAL_CLAIM_STALE_AFTER_S = float(os.environ.get("TAGPORTAL_CLAIM_STALE_AFTER_S", "180"))
#: Work abandoned this many times within an hour is not queued again by the reaper (a task
#: that kills its worker); the periodic schedules take it up after their back-off.
TAGPORTAL_CLAIM_MAX_ABANDONED = int(os.environ.get("TAGPORTAL_CLAIM_MAX_ABANDONED", "3"))
#: Test hook: comma-separated pause points (e.g. ``engine.store``) where a task sleeps
#: TAGPORTAL_TEST_PAUSE_SECONDS, so that a test can kill its worker there. Empty in production.
TAGPORTAL_TEST_PAUSE_AT = os.environ.get("TAGPORTAL_TEST_PAUSE_AT", "")
TAGPORTAL_TEST_PAUSE_SECONDS = float(os.environ.get("TAGPORTAL_TEST_PAUSE_SECONDS", "60"))

#: Days between re-certifications of a published tag, unless its category says otherwise.
TAGPORTAL_RECERTIFICATION_DAYS = int(os.environ.get("TAGPORTAL_RECERTIFICATION_DAYS", "180"))
#: Key of the keyed hash (HMAC-SHA256) under which phone numbers are stored; never the number in clear.
TAGPORTAL_PII_KEY = os.environ.get("TAGPORTAL_PII_KEY") or SECRET_KEY
#: Fernet keys (comma-separated, the first encrypts) for secrets kept at rest: channel
#: credentials, scoring-endpoint keys (see tagportal.core.secrets). Unset: derived from SECRET_KEY.
TAGPORTAL_SECRET_KEYS = os.environ.get("TAGPORTAL_SECRET_KEYS", "")
#: Fernet keys (comma-separated, the first encrypts) of the contact vault, where the phone
#: numbers SMS needs are kept encrypted (tagportal.activation.vault). Never derived from
#: SECRET_KEY nor shared with TAGPORTAL_SECRET_KEYS. Unset: no vault (SMS is unavailable).
TAGPORTAL_VAULT_KEYS = os.environ.get("TAGPORTAL_VAULT_KEYS", "")
#: Who may be contacted on a channel with no consent row: ``opt_out`` (anyone not opted
#: out; service messages) or ``opt_in`` (only who opted in), for every channel, or per
#: channel as ``sms=opt_in,wecom=opt_out,*=opt_out`` (tagportal.activation.consent).
TAGPORTAL_CONSENT_DEFAULT = os.environ.get("TAGPORTAL_CONSENT_DEFAULT", "opt_out")
#: Where links in notification e-mails point.
TAGPORTAL_BASE_URL = os.environ.get("TAGPORTAL_BASE_URL", "http://127.0.0.1:8000")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "tagportal@localhost")
#: Days daily tag-usage counters are kept (never fewer than 400).
TAGPORTAL_USAGE_RETENTION_DAYS = int(os.environ.get("TAGPORTAL_USAGE_RETENTION_DAYS", "730"))
#: Propose deprecating a tag flagged cold by two cold-tag reports in a row.
TAGPORTAL_AUTO_DEPRECATE_COLD = env_bool("TAGPORTAL_AUTO_DEPRECATE_COLD", False)

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

# HTTPS: on by default when DEBUG is off (``manage.py check --deploy`` is clean), each
# setting can be turned off from the environment, e.g. behind a proxy that redirects.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
#: Behind a proxy that ends TLS: ``SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https``
#: (only if the proxy always sets or strips that header).
if os.environ.get("SECURE_PROXY_SSL_HEADER"):
    _header, _, _value = os.environ["SECURE_PROXY_SSL_HEADER"].partition(",")
    if not _header.strip() or not _value.strip():
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER must read HEADER,value, e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    SECURE_PROXY_SSL_HEADER = (_header.strip(), _value.strip())
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

#: Without a broker, run queued background work (profile imports) on a thread of the web
#: process rather than inside the request that queued it (tagportal.core.background).
TAGPORTAL_EAGER_IN_THREAD = env_bool("TAGPORTAL_EAGER_IN_THREAD", True)
#: Memory budget of one OneID range of a tag computation, in MB: a brand is split into as
#: many ranges (a chord's tasks, each reading only its own rows) as keep each within it.
TAGPORTAL_COMPUTE_PARTITION_MB = float(os.environ.get("TAGPORTAL_COMPUTE_PARTITION_MB", "1024"))
#: Processes a computation done in one process (not a chord's task) evaluates in: the
#: people split into OneID ranges, one forked process each (default: the number of cores).
TAGPORTAL_COMPUTE_PROCESSES = int(os.environ.get("TAGPORTAL_COMPUTE_PROCESSES", "0")) or None
#: After a computation of a brand's tags its published models score the new data, unless
#: they ran within this many minutes.
TAGPORTAL_MODEL_SCORE_INTERVAL_MINUTES = int(os.environ.get("TAGPORTAL_MODEL_SCORE_INTERVAL_MINUTES", "10"))
#: Whether a brand's scoring endpoint may resolve to a private, loopback, link-local or
#: otherwise non-public address (refused by default: no requests into the intranet or to
#: a cloud metadata service on a user's behalf).
TAGPORTAL_SCORING_ALLOW_PRIVATE = env_bool("TAGPORTAL_SCORING_ALLOW_PRIVATE", False)

# Activation channels (tagportal.activation). Platform base URLs are settings so that
# tests and staging point them at fakes.
TAGPORTAL_WECOM_API_BASE = os.environ.get("TAGPORTAL_WECOM_API_BASE", "https://qyapi.weixin.qq.com")
#: SMS endpoints (a host, or ``http://host:port`` for a fake) and the shop platforms' bases.
TAGPORTAL_ALIYUN_SMS_ENDPOINT = os.environ.get("TAGPORTAL_ALIYUN_SMS_ENDPOINT", "dysmsapi.aliyuncs.com")
TAGPORTAL_TENCENT_SMS_ENDPOINT = os.environ.get("TAGPORTAL_TENCENT_SMS_ENDPOINT", "sms.tencentcloudapi.com")
TAGPORTAL_YOUZAN_API_BASE = os.environ.get("TAGPORTAL_YOUZAN_API_BASE", "https://open.youzanyun.com")
TAGPORTAL_WEIMOB_API_BASE = os.environ.get("TAGPORTAL_WEIMOB_API_BASE", "https://dopen.weimob.com")
#: WeChat's server API (公众号 and 小程序).
TAGPORTAL_WECHAT_API_BASE = os.environ.get("TAGPORTAL_WECHAT_API_BASE", "https://api.weixin.qq.com")
#: Where the rate-limit windows of the channel accounts live (the ``limits`` library's
#: storage URI): each process's memory, or Redis shared by every worker.
TAGPORTAL_RATE_LIMIT_STORAGE = os.environ.get("TAGPORTAL_RATE_LIMIT_STORAGE") or (
    CACHE_URL if CACHE_URL.startswith(("redis://", "rediss://")) else "memory://"
)
#: Per-account call rates by channel kind, overriding the defaults of
#: ``activation.connectors.base.DEFAULT_RATES``: a JSON object such as
#: ``{"wecom": "20/second", "wechat_mp": "50/second;100000/day"}``.
TAGPORTAL_CHANNEL_RATES = json.loads(os.environ.get("TAGPORTAL_CHANNEL_RATES") or "{}")
#: An audience sync's queued batches are applied at once (a worker, or a thread without
#: a broker) rather than at the next periodic ``run_syncs``.
TAGPORTAL_SYNC_RUN_AT_ONCE = env_bool("TAGPORTAL_SYNC_RUN_AT_ONCE", True)
#: Messages a WeCom group robot takes (the platform's limit: 20 a minute).
TAGPORTAL_WECOM_ROBOT_RATE = os.environ.get("TAGPORTAL_WECOM_ROBOT_RATE", "20/minute")
#: Tries of a channel call in all (retryable errors only), and the backoff bounds in seconds.
TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = int(os.environ.get("TAGPORTAL_CHANNEL_RETRY_ATTEMPTS", "4"))
TAGPORTAL_CHANNEL_RETRY_INITIAL_SECONDS = float(
    os.environ.get("TAGPORTAL_CHANNEL_RETRY_INITIAL_SECONDS", "0.5")
)
TAGPORTAL_CHANNEL_RETRY_MAX_SECONDS = float(os.environ.get("TAGPORTAL_CHANNEL_RETRY_MAX_SECONDS", "30"))
#: Timeout of one call to a platform, in seconds.
TAGPORTAL_CHANNEL_TIMEOUT_SECONDS = float(os.environ.get("TAGPORTAL_CHANNEL_TIMEOUT_SECONDS", "10"))
#: An access token is dropped this many seconds before the platform says it expires.
TAGPORTAL_TOKEN_MARGIN_SECONDS = int(os.environ.get("TAGPORTAL_TOKEN_MARGIN_SECONDS", "300"))
#: Deliveries: tries in all before a delivery is dead, the backoff between tries (initial
#: and maximum seconds, plus jitter), the lease of a claim (a killed worker's rows come
#: back after it), rows claimed at once, and how long one periodic run keeps claiming.
TAGPORTAL_DELIVERY_MAX_ATTEMPTS = int(os.environ.get("TAGPORTAL_DELIVERY_MAX_ATTEMPTS", "6"))
TAGPORTAL_DELIVERY_BACKOFF_SECONDS = float(os.environ.get("TAGPORTAL_DELIVERY_BACKOFF_SECONDS", "30"))
TAGPORTAL_DELIVERY_BACKOFF_MAX_SECONDS = float(
    os.environ.get("TAGPORTAL_DELIVERY_BACKOFF_MAX_SECONDS", "3600")
)
TAGPORTAL_DELIVERY_LEASE_SECONDS = int(os.environ.get("TAGPORTAL_DELIVERY_LEASE_SECONDS", "300"))
TAGPORTAL_DELIVERY_BATCH = int(os.environ.get("TAGPORTAL_DELIVERY_BATCH", "200"))
TAGPORTAL_DELIVERY_TASK_SECONDS = float(os.environ.get("TAGPORTAL_DELIVERY_TASK_SECONDS", "50"))
