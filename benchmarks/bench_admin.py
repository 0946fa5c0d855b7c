"""Benchmark: the review desk's pages at 1,000 vs 100,000 sessions (5 steps each).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/verilock_bench \\
        .venv/bin/python benchmarks/bench_admin.py            # 1k vs 100k
    .venv/bin/python benchmarks/bench_admin.py --quick        # 1k vs 10k (a smoke run)

The database named by ``DATABASE_URL`` holds the small set and one named ``<name>_large``
(created on PostgreSQL when missing) the large one; both are emptied and filled, so they
should be scratch databases. Without ``DATABASE_URL``, two SQLite files in a temporary
directory are used, which says little about PostgreSQL's estimated count and indexes.

Both sets have the same traffic, ~33 sessions a day, so the small one spans 30 days and
the large one ~8 years: the large one is the same site with more history. Sessions are a
mix of both payload shapes and of approved, declined, expired and (in their first week)
unfinished sessions, each with its steps, outcomes and a history row.

Each page is requested in-process with Django's test client as a superuser: once per set
to warm up, then :data:`REPEAT` rounds alternating between the two databases, so a busy
machine slows both alike. The table shows the median time and the query count (the same
for every request of a page). A page passes when its large-set time is within 2x of its
small-set time and its query count is the same.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPEAT = 9
PER_DAY = 1000 / 30
STATUSES = ("approved", "approved", "approved", "declined", "declined", "processing", "expired")
DECLINED_STEPS = ("face_match", "liveness", "aml", "document")


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    if not os.environ.get("DATABASE_URL"):
        path = Path(tempfile.gettempdir()) / "verilock-bench-admin.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()


def fill(n: int) -> None:
    """Replace every session with ``n`` generated ones (steps, outcomes, history included)."""
    from django.db import connection

    from verilock_django.models import Session, SessionChange, StepResult
    from verilock_django.payloads import parse_session
    from verilock_django.store import session_values, step_rows
    from verilock_django.testing.factories import format_timestamp, session_payload

    SessionChange.objects.all().delete()
    StepResult.objects.all().delete()
    Session.objects.all().delete()
    now = dt.datetime.now(dt.timezone.utc)
    sessions: list[Session] = []
    steps: list[StepResult] = []
    changes: list[SessionChange] = []
    for index in range(n):
        status = STATUSES[index % len(STATUSES)]
        age = dt.timedelta(days=index / PER_DAY, minutes=5)
        if status == "processing" and age > dt.timedelta(days=7):
            status = "expired"  # nobody finishes a verification after a week
        created = now - age
        payload = session_payload(
            "ab"[index % 2],  # type: ignore[arg-type]
            id=f"ses_{index:08d}-bench",
            status=status,
            reference_id=f"usr_{index:08d}",
            applicant={"email": f"applicant{index}@example.com", "last_name": f"Name{index}"},
            declined_step=DECLINED_STEPS[index % len(DECLINED_STEPS)],
            created_at=format_timestamp(created),
        )
        data = parse_session(payload)
        row = Session(id=data.id, first_synced_at=now, last_synced_at=now, **session_values(data))
        if index % 97 == 0:
            row.last_sync_error = "GET /sessions/x: unavailable (HTTP 503)"
        sessions.append(row)
        steps.extend(step_rows(row, data))
        changes.append(
            SessionChange(
                session=row,
                changed_at=now,
                trigger="sync",
                field="status",
                old_value="created",
                new_value=data.status,
            )
        )
        if len(sessions) >= 5000:
            _flush(sessions, steps, changes)
    _flush(sessions, steps, changes)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def _flush(sessions: list[Any], steps: list[Any], changes: list[Any]) -> None:
    from verilock_django.models import Session, SessionChange, StepResult

    Session.objects.bulk_create(sessions, batch_size=2000)
    StepResult.objects.bulk_create(steps, batch_size=5000)
    SessionChange.objects.bulk_create(changes, batch_size=5000)
    sessions.clear()
    steps.clear()
    changes.clear()


def pages() -> dict[str, tuple[str, dict[str, str]]]:
    from django.urls import reverse

    changelist = reverse("admin:verilock_django_session_changelist")
    return {
        "list, unfiltered": (changelist, {}),
        "list, declined + failed face_match": (
            changelist,
            {"status": "declined", "failed_step": "face_match"},
        ),
        "list, search by email": (changelist, {"q": "applicant777@example.com"}),
        "session page": (
            reverse("admin:verilock_django_session_change", args=("ses_00000003-bench",)),
            {},
        ),
        "overview": (reverse("admin:verilock_django_session_overview"), {}),
    }


def use_database(name: str) -> None:
    """Point the default connection at database ``name`` (connected, outside any timing)."""
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name
    connection.ensure_connection()


def prepare(names: dict[int, str]) -> None:
    """Create (PostgreSQL), migrate and fill each database; n sessions in ``names[n]``."""
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            existing = {row[0] for row in cursor.fetchall()}
        for name in names.values():
            if name not in existing:
                with connection.cursor() as cursor:
                    cursor.execute(f'CREATE DATABASE "{name}"')
    for n, name in names.items():
        use_database(name)
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        fill(n)
        print(f"filled {n:,} sessions in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def measure(names: dict[int, str]) -> dict[int, dict[str, tuple[float, int]]]:
    """Median milliseconds and query count of each page, per set, rounds interleaved."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    clients = {}
    for n, name in names.items():
        use_database(name)
        user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
            "bench", "bench@example.com", "bench"
        )
        clients[n] = Client()
        clients[n].force_login(user)
    times: dict[tuple[int, str], list[float]] = {}
    queries: dict[tuple[int, str], int] = {}
    for round_number in range(REPEAT + 1):
        for name, (url, params) in pages().items():
            for n, database in names.items():
                use_database(database)
                with CaptureQueriesContext(connection) as captured:
                    start = time.perf_counter()
                    response = clients[n].get(url, params)
                    elapsed = (time.perf_counter() - start) * 1000
                assert response.status_code == 200, (name, response.status_code)
                if round_number:  # round 0 warms up
                    times.setdefault((n, name), []).append(elapsed)
                    queries[n, name] = len(captured)
    return {
        n: {name: (statistics.median(times[n, name]), queries[n, name]) for name in pages()}
        for n in names
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k vs 10k sessions")
    parser.add_argument(
        "--no-fill", action="store_true", help="measure the databases as a previous run left them"
    )
    args = parser.parse_args()
    setup_django()
    from django.db import connection

    base = connection.settings_dict["NAME"]
    small, large = 1_000, 10_000 if args.quick else 100_000
    if connection.vendor == "sqlite":
        names = {small: base, large: base.replace(".sqlite3", "-large.sqlite3")}
    else:
        names = {small: base, large: f"{base}_large"}
    if not args.no_fill:
        prepare(names)
    figures = measure(names)
    print(f"database: {connection.vendor}; median of {REPEAT} interleaved requests")
    print(f"| page | {small:,}: ms | queries | {large:,}: ms | queries | ratio | within 2x |")
    print("|---|---:|---:|---:|---:|---:|:---:|")
    failed = False
    for name in pages():
        (t1, q1), (t2, q2) = figures[small][name], figures[large][name]
        ok = t2 <= 2 * t1 and q1 == q2
        failed |= not ok
        verdict = "yes" if ok else "NO"
        print(f"| {name} | {t1:.1f} | {q1} | {t2:.1f} | {q2} | {t2 / t1:.2f} | {verdict} |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
