"""Benchmark: the retention command blanking N finished sessions with 5 steps each (PostgreSQL).

    .venv/bin/python benchmarks/bench_retention.py                      # 200,000 sessions
    .venv/bin/python benchmarks/bench_retention.py --sessions 20000     # a quicker run
    .venv/bin/python benchmarks/bench_retention.py --database-url postgres://postgres@127.0.0.1:5432/verilock_bench

A throw-away test database (``test_<name>``) is created and migrated, then filled on the
server with ``INSERT … SELECT … FROM generate_series`` (the documented seed payload, with
its applicant, per session; 5 step rows each), so generating a million rows costs the
client no memory. Rows of the table:

``one statement``  the naive baseline: two ``UPDATE`` statements blanking everything in one
                   transaction (every row stays locked until the end).
``chunked``        :func:`verilock_django.privacy.apply_retention`, as the command runs it:
                   chunks of ``--chunk-size`` sessions, one short transaction each.
``second run``     the same again: nothing left to do (idempotence, cost of the check).

Columns: wall time, sessions blanked, step rows blanked, transactions, the longest single
transaction, and the process's peak RSS (``ru_maxrss``) after the row, with the RSS before
the chunked run for reference. Times depend on the machine; the ratio between rows does not.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from benchsetup import configure_django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = ("document", "selfie", "face_match", "liveness", "aml")


def configure(database_url: str) -> None:
    configure_django(
        database_url, VERILOCK_PII_RETENTION_DAYS=365, VERILOCK_WEBHOOK_RETENTION_DAYS=None
    )


def rss_mib() -> float:
    # ru_maxrss is in KiB on Linux: the peak of the process so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(sessions: int) -> None:
    """Fill the tables server-side: ``sessions`` finished sessions 400 days old, 5 steps each."""
    from django.db import connection, transaction

    from verilock_django.models import Session, SessionChange, StepResult

    seed = json.loads((ROOT / "tests" / "fixtures" / "seed-session.json").read_text())
    results = seed["results"]
    with transaction.atomic(), connection.cursor() as cursor:
        tables = (model._meta.db_table for model in (StepResult, SessionChange, Session))
        cursor.execute(f"TRUNCATE {', '.join(tables)}")
        cursor.execute(
            f"""
            INSERT INTO {Session._meta.db_table} (
                id, type, status, decision, reference_id, steps,
                applicant_first_name, applicant_last_name, applicant_email,
                applicant_date_of_birth, applicant_nationality, hosted_url, risk_score,
                created_at, completed_at, expires_at, payload, first_synced_at,
                last_synced_at, last_sync_error, data_fetched_at, next_check_at,
                unchanged_checks, lease_expires_at, personal_data_removed_at,
                failed_checks, finished_signal_pending, decline_reason)
            SELECT 'ses_' || lpad(i::text, 9, '0'), 'kyc', 'approved', 'approved',
                'usr_' || i, %s::jsonb, 'Jean', 'Dupont', 'jean' || i || '@example.com',
                DATE '1990-05-15', 'FR', '', 0.1,
                now() - interval '401 days', now() - interval '400 days', NULL,
                jsonb_set(%s::jsonb, '{{id}}', to_jsonb('ses_' || lpad(i::text, 9, '0'))),
                now() - interval '401 days', now() - interval '400 days', '',
                now() - interval '400 days', NULL, 0, NULL, NULL, 0, false, ''
            FROM generate_series(1, %s) AS i
            """,
            [json.dumps(seed["steps"]), json.dumps(seed), sessions],
        )
        cursor.execute(
            f"""
            INSERT INTO {StepResult._meta.db_table}
                (session_id, step, position, status, outcome, score, score_scale, details,
                 payload)
            SELECT 'ses_' || lpad(i::text, 9, '0'), s.step, s.position, 'approved', 'passed',
                0.9, NULL, s.details, s.payload
            FROM generate_series(1, %s) AS i
            CROSS JOIN jsonb_to_recordset(%s::jsonb)
                AS s(step text, position int, details jsonb, payload jsonb)
            """,
            [
                sessions,
                json.dumps(
                    [
                        {
                            "step": step,
                            "position": position,
                            "details": results[step].get("details", {}),
                            "payload": results[step],
                        }
                        for position, step in enumerate(STEPS)
                    ]
                ),
            ],
        )
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {Session._meta.db_table}")
        cursor.execute(f"VACUUM ANALYZE {StepResult._meta.db_table}")


def one_statement() -> tuple[int, int]:
    """The naive baseline: blank everything in one transaction of two UPDATEs."""
    import datetime as dt

    from django.db import transaction
    from django.utils import timezone

    from verilock_django.models import StepResult
    from verilock_django.privacy import APPLICANT_COLUMNS, sessions_to_blank

    before = timezone.now() - dt.timedelta(days=365)
    with transaction.atomic():
        sessions = sessions_to_blank(before)
        steps = StepResult.objects.filter(session__in=sessions).update(details={}, payload={})
        blanked = sessions.update(
            **APPLICANT_COLUMNS, payload={}, personal_data_removed_at=timezone.now()
        )
    return blanked, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/verilock_bench_retention"
    )
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--chunk-size", type=int, default=None)
    args = parser.parse_args()
    configure(args.database_url)

    from django.db import connection

    from verilock_django.privacy import CHUNK_SIZE, apply_retention

    if connection.vendor != "postgresql":
        sys.exit("This benchmark needs PostgreSQL (--database-url postgres://…).")
    chunk = args.chunk_size or CHUNK_SIZE
    rows: list[tuple[str, float, int, int, int, float, float]] = []
    database_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0)
    try:
        started = time.perf_counter()
        generate(args.sessions)
        print(
            f"generated {args.sessions:,} sessions and {5 * args.sessions:,} steps "
            f"in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        started = time.perf_counter()
        blanked, steps = one_statement()
        elapsed = time.perf_counter() - started
        rows.append(("one statement", elapsed, blanked, steps, 1, elapsed, rss_mib()))

        generate(args.sessions)
        rss_before = rss_mib()
        for name in ("chunked", "second run"):
            started = time.perf_counter()
            report = apply_retention(chunk_size=chunk)
            rows.append(
                (
                    name,
                    time.perf_counter() - started,
                    report.sessions,
                    report.step_results,
                    report.transactions,
                    report.longest_transaction,
                    rss_mib(),
                )
            )
    finally:
        connection.creation.destroy_test_db(database_name, verbosity=0)

    print(
        f"\nRetention on PostgreSQL: {args.sessions:,} sessions x 5 steps, chunk {chunk}; "
        f"RSS before the chunked run {rss_before:.0f} MiB\n"
    )
    print("| run | time (s) | sessions | steps | transactions | longest tx (s) | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, elapsed, sessions, steps, transactions, longest, rss in rows:
        print(
            f"| {name} | {elapsed:.1f} | {sessions:,} | {steps:,} | {transactions:,} "
            f"| {longest:.3f} | {rss:.0f} |"
        )


if __name__ == "__main__":
    main()
