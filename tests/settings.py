"""Settings for the app's own test suite: SQLite in memory, or DATABASE_URL when set."""

from __future__ import annotations

import os
import tempfile

import dj_database_url

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL") or "sqlite://")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not Django's shared-cache in-memory database: tests with worker threads then
    # meet SQLite's real locking (waiting up to the busy timeout), as a host project would,
    # instead of shared-cache "table is locked" errors that no production setup raises.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"verilock-tests-{os.getpid()}.sqlite3")
    }
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "verilock_django",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

VERILOCK_API_KEY = "test-key"
VERILOCK_API_URL = "https://verilock.test/api/v1"
# No sleeping between retries in tests; tests that exercise retries set their own policy.
VERILOCK_MAX_RETRIES = 0
VERILOCK_RETRY_BACKOFF = 0.0
# The start flow's tests create sessions in shape "b" with this profile.
VERILOCK_PROFILE_ID = "0b5d3c8e-7f4a-4e21-9c1d-2f6a8b9e0c13"
LOGIN_URL = "/accounts/login/"

# The suite sends thousands of requests to fakes within minutes: pace only tests that ask.
VERILOCK_RATE_LIMIT_PER_MINUTE: int | None = 1_000_000

try:  # the database worker backend, for the end-to-end test of Django's task framework
    import django.tasks  # noqa: F401
    import django_tasks_db  # noqa: F401
except ImportError:  # pragma: no cover - Django 5.2 without the backport
    pass
else:
    INSTALLED_APPS.append("django_tasks_db")
