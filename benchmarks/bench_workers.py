"""Benchmark: throughput of 1, 2 and 4 Celery workers, with and without the shared rate limit.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/verilock_bench \\
        .venv/bin/python benchmarks/bench_workers.py [--sessions 1000] [--threads 8]

Needs PostgreSQL (the workers' coordination point; the database named in ``DATABASE_URL`` is
dropped and created) and Redis on 127.0.0.1:6379 (broker and shared window). This process
serves the fake Verilock API on loopback with 50 ms latency; per row it mirrors N pending
sessions, starts W ``celery worker`` processes (thread pool, ``--threads`` slots each), and
times ``sync_verilock_sessions --enqueue`` until every session is stored. Requests are
counted by the fake API; "answered twice" counts sessions whose answer reached a worker
more than once (the fake's log: answered, not merely received).

* **no limit** rows: the fake API has no quota; the client's own pacing is set far above.
* **shared limit** rows: the fake API allows ``--limit`` requests/min; the workers pace to
  it through one window in Redis (``VERILOCK_RATE_LIMIT_REDIS_URL``) and must get no 429.

The 1-worker row of each kind (no limit, shared limit) is the baseline its speed-up column
compares to.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BROKER_URL = "redis://127.0.0.1:6379/12"
WINDOW_URL = "redis://127.0.0.1:6379/11"


def setup_django(url: str) -> None:
    """Recreate the benchmark database and migrate it (the suite's settings otherwise)."""
    import dj_database_url
    import psycopg

    config = dj_database_url.parse(url)
    name = config["NAME"]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def run_row(
    server: Any, workers: int, threads: int, sessions: int, limited: bool, api_key: str
) -> dict[str, Any]:
    """One configuration: mirror, start workers, enqueue, wait; the measured figures."""
    from django.conf import settings
    from django.db import connection

    from verilock_django.models import Session
    from verilock_django.refresh import refresh_unfinished
    from verilock_django.work import enqueue_claimed

    Session.objects.all().delete()
    server.state.reset_counters()
    ids = [server.state.add_session(status="processing").id for _ in range(sessions)]
    Session.objects.bulk_create(Session(id=session_id) for session_id in ids)
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.worker_settings",
        PYTHONPATH=str(ROOT),
        VERILOCK_E2E_DATABASE_NAME=str(connection.settings_dict["NAME"]),
        VERILOCK_E2E_API_URL=server.url,
        VERILOCK_E2E_API_KEY=api_key,
        VERILOCK_E2E_TASK_BACKEND="celery",
        VERILOCK_E2E_QUEUE=queue,
        VERILOCK_E2E_BROKER_URL=BROKER_URL,
        VERILOCK_E2E_REDIS_URL=WINDOW_URL if limited else "",
        VERILOCK_E2E_RATE_LIMIT="" if limited else "1000000",
    )
    command = [
        sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "-Q", queue,
        "--pool", "threads", "-c", str(threads), "--without-gossip", "--without-mingle",
        "--without-heartbeat", "-l", "ERROR",
    ]  # fmt: skip
    processes = [
        subprocess.Popen(
            [*command, "-n", f"w{index}-{queue}@%h"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for index in range(workers)
    ]
    try:
        time.sleep(4)  # the workers connect to the broker
        from celery import Celery

        app = Celery("bench_sender", broker=BROKER_URL)
        app.conf.task_ignore_result = True
        app.set_default()
        settings.VERILOCK_TASK_BACKEND = "celery"
        settings.VERILOCK_TASK_QUEUE = queue
        started = time.monotonic()
        report = refresh_unfinished(enqueue=enqueue_claimed)
        assert report.enqueued == sessions, report.summary()
        stored = Session.objects.filter(first_synced_at__isnull=False)
        while stored.count() < sessions:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        app.close()
    finally:
        for process in processes:
            process.kill()
            process.wait()
    answered = server.state.requests
    return {
        "workers": workers,
        "limit": "shared" if limited else "none",
        "sessions": sessions,
        "elapsed": elapsed,
        "sessions_per_s": sessions / elapsed,
        "requests_per_s": len(answered) / elapsed,
        "too_many": sum(1 for request in answered if request.status == 429),
        "twice": sum(1 for sid in ids if server.state.answered_for(sid) > 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument(
        "--limited-sessions", type=int, default=600, help="0: skip the shared-limit rows"
    )
    parser.add_argument("--threads", type=int, default=8, help="slots per worker")
    parser.add_argument("--limit", type=int, default=300, help="requests/min (shared rows)")
    parser.add_argument("--latency-ms", type=int, default=50)
    args = parser.parse_args()
    setup_django(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/verilock_bench")
    )
    from verilock_django.testing.server import FakeVerilockServer

    rows = []
    for limited in (False, True) if args.limited_sessions else (False,):
        for workers in (1, 2, 4):
            api_key = f"bench-{uuid.uuid4().hex[:8]}"  # a fresh quota and window per row
            with FakeVerilockServer(
                api_key=api_key,
                latency_ms=args.latency_ms,
                rate_limit_per_minute=args.limit if limited else 0,
            ) as server:
                sessions = args.limited_sessions if limited else args.sessions
                rows.append(run_row(server, workers, args.threads, sessions, limited, api_key))
            print(f"  done: {workers} worker(s), limit {rows[-1]['limit']}", flush=True)
    print()
    print(
        f"Celery workers ({args.threads} thread slots each), fake API at {args.latency_ms} ms; "
        f"shared limit = {args.limit} requests/min through Redis"
    )
    print()
    print(
        "| workers x slots | rate limit | sessions | time (s) | sessions/s | requests/s "
        "| vs 1 worker | 429s | answered twice |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    base = {row["limit"]: row["sessions_per_s"] for row in reversed(rows)}  # 1-worker rows
    for row in rows:
        limit = "none" if row["limit"] == "none" else f"{args.limit}/min shared (Redis)"
        print(
            f"| {row['workers']} x {args.threads} | {limit} | {row['sessions']:,} | "
            f"{row['elapsed']:.1f} | {row['sessions_per_s']:.1f} | {row['requests_per_s']:.1f} | "
            f"{row['sessions_per_s'] / base[row['limit']]:.2f}x | {row['too_many']} | "
            f"{row['twice']} |"
        )


if __name__ == "__main__":
    main()
