"""Benchmark: ``sync_verilock_sessions --discover`` against a naive import, on the fake API.

    .venv/bin/python benchmarks/bench_discover.py           # N = 1,000 and 5,000
    .venv/bin/python benchmarks/bench_discover.py --quick   # N = 300, for a smoke run

This process serves the fake Verilock API (``FakeVerilockServer`` on loopback, 50 ms latency
per request) with N sessions, half of them finished, and imports them into an empty SQLite
database twice, emptied in between:

* **ours**: :func:`verilock_django.discover.discover_sessions` (list data for unfinished
  sessions, a fetch only for finished ones, fetched in parallel);
* **naive**: what a user writes without it: walk the list, then ``GET /sessions/{id}`` for
  every session, one after the other, stored with the same ``store_session``.

Both end with the same sessions stored; the table shows what that costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from benchsetup import ACCOUNT_LIMIT_PER_MINUTE, API_KEY, configure_django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LATENCY_MS = 50


def configure(database: str, api_url: str) -> None:
    configure_django(database, VERILOCK_API_URL=api_url, VERILOCK_MAX_RETRIES=0)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def naive() -> int:
    """Walk the list, fetch every listed session by id, store it; returns sessions stored."""
    from verilock_django.client import VerilockClient
    from verilock_django.store import store_session

    client = VerilockClient()
    page, last_page, ids = 1, 1, []
    while page <= last_page:
        body = client.list_sessions(page=page, per_page=100)
        ids += [item["id"] for item in body["data"]]
        last_page = body["meta"]["last_page"]
        page += 1
    for session_id in ids:
        store_session(client.get_session(session_id), requested_id=session_id)
    return len(ids)


def ours() -> int:
    from verilock_django.discover import discover_sessions

    report = discover_sessions()
    assert report.ok, report.summary()
    return report.created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 300 only")
    args = parser.parse_args()
    sizes = (300,) if args.quick else (1_000, 5_000)

    from verilock_django.testing.server import FakeVerilockServer

    folder = tempfile.mkdtemp(prefix="bench-discover-")
    with FakeVerilockServer(api_key=API_KEY, latency_ms=LATENCY_MS) as server:
        server.state.rate_limit_per_minute = ACCOUNT_LIMIT_PER_MINUTE  # walks, not the quota
        configure(os.path.join(folder, "db.sqlite3"), server.url)
        from verilock_django.models import Session

        rows = []
        created = 0
        for size in sizes:
            server.state.seed(size - created)  # half of the seed plan is finished
            created = size
            finished = sum(1 for s in server.state.sessions if s.is_finished)
            for name, run in (("ours", ours), ("naive", naive)):
                Session.objects.all().delete()
                server.state.reset_counters()
                started = time.perf_counter()
                stored = run()
                wall = time.perf_counter() - started
                assert stored == size == Session.objects.count(), (name, stored, size)
                rows.append((name, size, finished, wall, server.state.total_requests))
    print(f"Fake API on loopback, {LATENCY_MS} ms latency per request; SQLite file database.\n")
    print("| run | N | finished | wall (s) | sessions/s | vs naive | HTTP requests |")
    print("|---|---|---|---|---|---|---|")
    naive_wall = {size: wall for name, size, _, wall, _ in rows if name == "naive"}
    for name, size, finished, wall, requests in rows:
        print(
            f"| {name} | {size:,} | {finished:,} | {wall:.1f} | {size / wall:,.0f} | "
            f"{naive_wall[size] / wall:.1f}x | {requests:,} |"
        )


if __name__ == "__main__":
    main()
