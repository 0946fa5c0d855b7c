"""Django settings for the benchmarks' standalone processes, written once.

Every benchmark configures Django the same way: the app, one database, a fixed API key and
every ``VERILOCK_*`` default unless the benchmark passes its own. A database is a
``postgres://`` (or ``mysql://``) URL, read by dj-database-url, or a SQLite file path, which
gets the usual production settings for SQLite (WAL, ``synchronous=NORMAL``).
"""

from __future__ import annotations

import datetime as dt
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


def mirror_fake_sessions(state: Any, synced_at: dt.datetime) -> list[str]:
    """Store every session of the fake's ``state`` as a sync at ``synced_at`` left it (the
    app's own column mapping, bulk-inserted: seeding is not what a benchmark measures);
    returns their ids. The database must be migrated."""
    from verilock_django.models import Session, StepResult
    from verilock_django.payloads import parse_session
    from verilock_django.store import session_values, step_rows

    sessions, steps = [], []
    for fake in state.sessions:
        data = parse_session(fake.payload())
        row = Session(
            id=data.id,
            first_synced_at=synced_at,
            last_synced_at=synced_at,
            data_fetched_at=synced_at,
            **session_values(data),
        )
        sessions.append(row)
        steps.extend(step_rows(row, data))
    Session.objects.bulk_create(sessions, batch_size=500)
    StepResult.objects.bulk_create(steps, batch_size=500)
    return [session.id for session in sessions]
