"""Settings of the example host project: everything comes from the environment or `.env`.

Copy `.env.example` to `.env` and edit it, or export the variables. With nothing set, the
project runs on SQLite in this folder and has no Verilock key (the system check warns).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]),
    VERILOCK_API_KEY=(str, ""),
    VERILOCK_API_URL=(str, "https://verilock.io/api/v1"),
    VERILOCK_WEBHOOK_SECRETS=(list, []),
    VERILOCK_PROFILE_ID=(str, ""),
)
environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env("SECRET_KEY", default="example-project-not-secret-change-me")
DEBUG = env("DEBUG")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "verilock_django",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Take the write lock when a transaction starts, so the webhook worker threads and
    # the request threads queue up instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"

# verilock-django
VERILOCK_API_KEY = env("VERILOCK_API_KEY")
VERILOCK_API_URL = env("VERILOCK_API_URL")
VERILOCK_WEBHOOK_SECRETS = env("VERILOCK_WEBHOOK_SECRETS")
VERILOCK_PROFILE_ID = env("VERILOCK_PROFILE_ID")
# The start flow's pages need a signed-in user: the admin's login page serves here.
LOGIN_URL = "admin:login"

# The app's log, on stderr and labelled as such: the sync command prints its own summary and
# failure lines (the operator's view); these records are the machine's view of the same run.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"labelled": {"format": "[log] %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "labelled"}},
    "loggers": {
        "verilock_django": {
            "handlers": ["console"],
            "level": env("VERILOCK_LOG_LEVEL", default="WARNING"),
        }
    },
}
