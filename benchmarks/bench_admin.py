"""Benchmark: the review desk's pages at 1,000 vs 100,000 sessions (5 steps each).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/verilock_bench \\
        .venv/bin/python benchmarks/bench_admin.py            # 1k vs 100k
    .venv/bin/python benchmarks/bench_admin.py --quick        # 1k vs 10k (a smoke run)

The database named by ``DATABASE_URL`` is emptied and filled (it should be a scratch one);
without it, a SQLite file in a temporary directory is used, which says little about
PostgreSQL's estimated count and trigram search. Sessions arrive at a steady 100 a day
(1,000 sessions span 10 days, 100,000 span ~3 years), a mix of both payload shapes and of
approved, declined and unfinished sessions, each with its steps, outcomes and history.

Each page is requested in-process with Django's test client as a superuser, once to warm
up and then :data:`REPEAT` times; the table shows the median time and the query count
(the same for every request of a page). A page passes when its large-table time is
within 2x of its small-table time, measured in the same run.
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
REPEAT = 7
PER_DAY = 100
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
        created = now - dt.timedelta(days=index / PER_DAY, minutes=5)
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


def measure() -> dict[str, tuple[float, int]]:
    """Median milliseconds and query count of each page."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.com", "bench"
    )
    client = Client()
    client.force_login(user)
    results = {}
    for name, (url, params) in pages().items():
        assert client.get(url, params).status_code == 200, name
        times = []
        queries = 0
        for _ in range(REPEAT):
            with CaptureQueriesContext(connection) as captured:
                start = time.perf_counter()
                response = client.get(url, params)
                times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, name
            queries = len(captured)
        results[name] = (statistics.median(times), queries)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k vs 10k sessions")
    args = parser.parse_args()
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    small, large = 1_000, 10_000 if args.quick else 100_000
    figures = {}
    for n in (small, large):
        started = time.perf_counter()
        fill(n)
        print(f"filled {n:,} sessions in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        figures[n] = measure()
    print(f"database: {connection.vendor}; median of {REPEAT} requests; ratio = large / small")
    header = f"| page | {small:,}: ms | queries | {large:,}: ms | queries | ratio | within 2x |"
    print(header)
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
