"""Settings for the helpdesk CRM, read from the environment or a `.env` file.

Every variable is listed with its default in `.env.example` and the README.
"""

import secrets
from pathlib import Path

from config.env import ConfigurationError, Environment, exit_on_configuration_error
from config.sentry import init_sentry

BASE_DIR = Path(__file__).resolve().parent.parent


def _development_secret_key() -> str:
    # Stable across runserver restarts so that logins survive a code reload.
    key_file = BASE_DIR / "tmp" / "development-secret-key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


try:
    env = Environment(BASE_DIR)

    DEBUG = env.boolean("DEBUG", default=False)
    SECRET_KEY = env.string("SECRET_KEY") or (
        _development_secret_key()
        if DEBUG
        else env.required_string(
            "SECRET_KEY",
            "It is required when DEBUG is off: add SECRET_KEY=<a long random string> to the "
            'environment or to .env (python -c "import secrets; print(secrets.token_urlsafe(50))" '
            "makes one).",
        )
    )
    ALLOWED_HOSTS = env.strings("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
    CSRF_TRUSTED_ORIGINS = env.origins("CSRF_TRUSTED_ORIGINS")
    TIME_ZONE = env.time_zone("TIME_ZONE", "UTC")
    DATABASES = {"default": env.database("DATABASE_URL", "sqlite:///db.sqlite3")}
    CONN_MAX_AGE = env.integer("CONN_MAX_AGE", 0, minimum=0)

    ENABLE_SCHEDULER = env.boolean("ENABLE_SCHEDULER", default=True)
    SCHEDULER_LEASE_SECONDS = env.integer("SCHEDULER_LEASE_SECONDS", 30, minimum=3)
    SCHEDULER_SHUTDOWN_WAIT_SECONDS = env.integer("SCHEDULER_SHUTDOWN_WAIT_SECONDS", 10, minimum=0)
    # How often a running scheduler (active or standby) looks for jobs that
    # became late or failing, or recovered, to mail ADMINS once per change.
    SCHEDULER_ALERT_CHECK_SECONDS = env.integer("SCHEDULER_ALERT_CHECK_SECONDS", 30, minimum=1)
    # An active scheduler whose dispatch loop has not read the job store for
    # this long, or has left a due fire undispatched this long, is "stalled".
    SCHEDULER_STALL_SECONDS = env.integer("SCHEDULER_STALL_SECONDS", 20, minimum=5)
    # A host whose clock is further than this from the database's runs no jobs.
    SCHEDULER_MAX_CLOCK_SKEW_SECONDS = env.integer(
        "SCHEDULER_MAX_CLOCK_SKEW_SECONDS", 60, minimum=1
    )
    # This site's address, for links in mail (e.g. https://crm.example.com).
    SITE_URL = env.string("SITE_URL")
    if SITE_URL and not SITE_URL.startswith(("https://", "http://")):
        raise ConfigurationError(
            f"SITE_URL={SITE_URL!r} is not an address. Use the site's address with "
            "its scheme, e.g. SITE_URL=https://crm.example.com."
        )
    # GET /health/scheduler/: which conditions make it answer 503, and the
    # token that shows the details to a monitor (staff users see them anyway).
    HEALTH_CHECKS = env.strings("HEALTH_CHECKS", "active,stalled,late,failing")
    if not set(HEALTH_CHECKS) <= {"active", "stalled", "late", "failing"}:
        raise ConfigurationError(
            f"HEALTH_CHECKS={','.join(HEALTH_CHECKS)!r} is not valid. Use a comma-separated "
            "list of active, stalled, late and failing (the default is all four)."
        )
    HEALTH_TOKEN = env.string("HEALTH_TOKEN")
    # POST /scheduler/wake/ with this bearer token makes sure a scheduler is
    # active (for hosts that put idle apps to sleep); unset, the URL is a 404.
    SCHEDULER_WAKE_TOKEN = env.string("SCHEDULER_WAKE_TOKEN")
    # Outbound pings (crm/scheduler/pings.py): the active scheduler's heartbeat
    # for a dead-man's switch (healthchecks.io), alerts POSTed as JSON with a
    # Slack-compatible "text", and how long a receiver may take to answer.
    # `manage.py check` reports a malformed URL (crm.E022).
    SCHEDULER_HEARTBEAT_URL = env.string("SCHEDULER_HEARTBEAT_URL")
    SCHEDULER_HEARTBEAT_MINUTES = env.integer("SCHEDULER_HEARTBEAT_MINUTES", 5, minimum=1)
    ALERT_WEBHOOK_URL = env.string("ALERT_WEBHOOK_URL")
    PING_TIMEOUT_SECONDS = env.integer("PING_TIMEOUT_SECONDS", 5, minimum=1)
    # The REST API (crm/api): requests per client before a 429, counted in the
    # default cache (per process with the local-memory cache).
    API_ANON_RATE = env.rate("API_ANON_RATE", "30/minute")
    API_USER_RATE = env.rate("API_USER_RATE", "600/minute")
    # GET /metrics (Prometheus): the bearer token that reads it (staff users
    # may anyway), how far back its histograms look, and their bucket bounds in
    # seconds (malformed bounds: crm.E031 in `manage.py check`).
    METRICS_TOKEN = env.string("METRICS_TOKEN")
    METRICS_WINDOW_MINUTES = env.integer("METRICS_WINDOW_MINUTES", 60, minimum=1)
    METRICS_DURATION_BUCKETS = env.strings("METRICS_DURATION_BUCKETS", "0.1,1,10,60,600,3600")
    METRICS_LATENESS_BUCKETS = env.strings("METRICS_LATENESS_BUCKETS", "0.05,0.5,5,60,600")
    # Sentry (config/sentry.py), when sentry-sdk is installed: errors, and a
    # Crons check-in around each job run unless SENTRY_CRONS is off
    # (crm/scheduler/sentry_crons.py). Set without sentry-sdk: crm.W003.
    SENTRY_DSN = env.sentry_dsn("SENTRY_DSN")
    SENTRY_CRONS = env.boolean("SENTRY_CRONS", default=True)
    if SENTRY_DSN:
        init_sentry(SENTRY_DSN)
    # The built-in jobs (crm/scheduler/declarations.py). A malformed cron
    # expression is reported by `manage.py check` (crm.E006) and keeps the
    # scheduler off; the web app still serves.
    AUTO_CLOSE_CRON = env.string("AUTO_CLOSE_CRON", "0 2 * * *")
    AUTO_CLOSE_ENABLED = env.boolean("AUTO_CLOSE_ENABLED", default=True)
    AUTO_CLOSE_AFTER_HOURS = env.integer("AUTO_CLOSE_AFTER_HOURS", 24, minimum=1)
    EXECUTION_PRUNE_CRON = env.string("EXECUTION_PRUNE_CRON", "0 3 * * 0")
    EXECUTION_PRUNE_ENABLED = env.boolean("EXECUTION_PRUNE_ENABLED", default=True)
    EXECUTION_RETENTION_DAYS = env.integer("EXECUTION_RETENTION_DAYS", 7, minimum=1)
    # The demo job (crm.jobs.count_open_tickets, every minute): for `make run`
    # only, so a new install shows the scheduler at work. Never in production.
    DEMO_JOBS = env.boolean("DEMO_JOBS", default=DEBUG)
    if DEMO_JOBS and not DEBUG:
        raise ConfigurationError(
            "DEMO_JOBS=1 needs DEBUG=1: demo jobs are for development only. "
            "Remove DEMO_JOBS, or set it to 0."
        )

    LOG_DIR = env.path("LOG_DIR", "logs")
    LOG_LEVEL = env.string("LOG_LEVEL", "INFO").upper()
    if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigurationError(
            f"LOG_LEVEL={LOG_LEVEL!r} is not a log level. "
            "Use DEBUG, INFO, WARNING, ERROR or CRITICAL."
        )
    LOG_FORMAT = env.string("LOG_FORMAT", "text").lower()
    if LOG_FORMAT not in {"text", "json"}:
        raise ConfigurationError(
            f"LOG_FORMAT={LOG_FORMAT!r} is not a log format. Use text or json "
            "(one JSON object per line)."
        )
    # django.log is rotated at this size, keeping this many older files.
    LOG_MAX_BYTES = env.integer("LOG_MAX_BYTES", 5 * 1024 * 1024, minimum=1)
    LOG_BACKUP_COUNT = env.integer("LOG_BACKUP_COUNT", 5, minimum=1)

    ADMINS = env.admins("ADMINS")
    EMAIL_BACKEND = env.string(
        "EMAIL_BACKEND",
        "django.core.mail.backends.console.EmailBackend"
        if DEBUG
        else "django.core.mail.backends.smtp.EmailBackend",
    )
    EMAIL_HOST = env.string("EMAIL_HOST", "localhost")
    EMAIL_PORT = env.integer("EMAIL_PORT", 25, minimum=1)
    EMAIL_HOST_USER = env.string("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env.string("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env.boolean("EMAIL_USE_TLS", default=False)
    EMAIL_USE_SSL = env.boolean("EMAIL_USE_SSL", default=False)
    if EMAIL_USE_TLS and EMAIL_USE_SSL:
        raise ConfigurationError(
            "EMAIL_USE_TLS and EMAIL_USE_SSL are both on. Turn one off: "
            "TLS for port 587 (STARTTLS), SSL for port 465."
        )
    DEFAULT_FROM_EMAIL = env.string("DEFAULT_FROM_EMAIL", "crm@localhost")
    SERVER_EMAIL = env.string("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
    EMAIL_SUBJECT_PREFIX = env.string("EMAIL_SUBJECT_PREFIX", "[CRM]") + " "

    # HTTPS: on by default in production, off in development.
    SECURE_SSL_REDIRECT = env.boolean("SECURE_SSL_REDIRECT", default=not DEBUG)
    SESSION_COOKIE_SECURE = env.boolean("SESSION_COOKIE_SECURE", default=not DEBUG)
    CSRF_COOKIE_SECURE = env.boolean("CSRF_COOKIE_SECURE", default=not DEBUG)
    SECURE_HSTS_SECONDS = env.integer("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.boolean(
        "SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
    )
    SECURE_HSTS_PRELOAD = env.boolean("SECURE_HSTS_PRELOAD", default=False)
    if env.boolean("USE_X_FORWARDED_PROTO", default=False):
        # Behind a reverse proxy that terminates TLS (nginx in front of gunicorn);
        # Passenger needs none of this.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
except ConfigurationError as error:
    exit_on_configuration_error(error)

DATABASES["default"]["CONN_MAX_AGE"] = CONN_MAX_AGE
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # Several processes (web workers, the scheduler) share one file: WAL lets
        # readers run beside a writer, IMMEDIATE takes the write lock at BEGIN so
        # that a waiting writer is covered by the busy timeout instead of failing
        # with "database is locked" when it upgrades a read to a write.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    import pymysql

    pymysql.install_as_MySQLdb()
    DATABASES["default"]["OPTIONS"] = {"charset": "utf8mb4"}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_apscheduler",
    "crm",
]

# django-prodserver, when installed: `manage.py server web` and
# `manage.py worker scheduler` (deploy/README.md). Before crm, whose `worker`
# command only says how to install it.
try:
    import django_prodserver  # noqa: F401
except ImportError:
    pass
else:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("crm"), "django_prodserver")
    PRODUCTION_PROCESSES = {
        "web": {
            "BACKEND": "django_prodserver.backends.servers.gunicorn.GunicornServer",
            "ARGS": {"config": str(BASE_DIR / "deploy" / "gunicorn.conf.py")},
        },
        "scheduler": {"BACKEND": "crm.prodserver.SchedulerWorker"},
    }

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-wide overrides of other apps' templates (the admin's base_site.html).
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "public" / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The REST API under /api/v1/ (crm/api, README "API"): JSON only, knox tokens
# (stored hashed; created and revoked in the admin) or the admin's session.
INSTALLED_APPS += ["rest_framework", "knox", "drf_spectacular"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["crm.api.rendering.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "crm.api.throttling.AnonymousRateThrottle",
        "crm.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "crm.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Helpdesk CRM scheduler API",
    "DESCRIPTION": "Scheduled jobs, their run history, and run now, pause and resume.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}
# Tokens made in the admin last until their expiry there (empty: until revoked).
REST_KNOX = {"TOKEN_TTL": None}

try:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
except OSError as error:
    exit_on_configuration_error(
        ConfigurationError(
            f"LOG_DIR={str(LOG_DIR)!r} cannot be created ({error.strerror}). "
            "Point LOG_DIR at a directory this process can write to."
        )
    )

LOG_FORMATTER = "json" if LOG_FORMAT == "json" else "standard"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "standard": {
            "format": "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s",
        },
        "json": {"()": "crm.log_format.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMATTER,
            "filters": ["run_fields"],
        },
        "file": {
            # Every process (web workers, runscheduler) writes this one file:
            # this handler rotates it under a lock file (.__django.lock) that all
            # of them take, so no line lands in a file another one just rotated.
            "class": "concurrent_log_handler.ConcurrentRotatingFileHandler",
            "filename": str(LOG_DIR / "django.log"),
            "maxBytes": LOG_MAX_BYTES,
            "backupCount": LOG_BACKUP_COUNT,
            "encoding": "utf-8",
            "formatter": LOG_FORMATTER,
            "filters": ["run_fields"],
        },
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false", "once_per_database_outage"],
        },
    },
    "filters": {
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        "once_per_database_outage": {"()": "crm.log_filters.OncePerDatabaseOutage"},
        "run_fields": {"()": "crm.log_format.RunFields"},
    },
    "root": {"handlers": ["console", "file"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": LOG_LEVEL},
        "django.request": {"handlers": ["mail_admins"], "level": "ERROR"},
        # "crm.scheduler" and "apscheduler" lines: `grep scheduler logs/django.log`.
        "crm": {"level": LOG_LEVEL},
        "apscheduler": {"level": "WARNING" if LOG_LEVEL == "INFO" else LOG_LEVEL},
    },
}
