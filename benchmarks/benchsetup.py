"""Django settings for the benchmarks' standalone processes, written once.

Every benchmark configures Django the same way: the app, one database, a fixed API key and
every ``VERILOCK_*`` default unless the benchmark passes its own. A database is a
``postgres://`` (or ``mysql://``) URL, read by dj-database-url, or a SQLite file path, which
gets the usual production settings for SQLite (WAL, ``synchronous=NORMAL``).
"""

from __future__ import annotations

from typing import Any

API_KEY = "bench-key"
#: What a benchmark's fake account announces when it measures throughput, not the quota:
#: the client paces to the announced limit (else the documented 120 a minute).
ACCOUNT_LIMIT_PER_MINUTE = 1_000_000


def database_settings(database: str) -> dict[str, Any]:
    """Django's ``DATABASES["default"]`` for a database URL or a SQLite file path."""
    if "://" in database:
        import dj_database_url

        return dict(dj_database_url.parse(database))
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": database,
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"},
    }


def configure_django(database: str, **extra: Any) -> None:
    """Configure settings for ``database`` (see :func:`database_settings`) and set Django up.

    ``extra`` adds or overrides settings (``VERILOCK_API_URL``, ``SALT_KEY`` …).
    """
    import django
    from django.conf import settings

    settings.configure(
        **{
            "DEBUG": False,
            "USE_TZ": True,
            "TIME_ZONE": "UTC",
            "SECRET_KEY": "bench-only",
            "INSTALLED_APPS": [
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "verilock_django",
            ],
            "DATABASES": {"default": database_settings(database)},
            "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
            "VERILOCK_API_KEY": API_KEY,
            "LOGGING_CONFIG": None,
            **extra,
        }
    )
    django.setup()
