"""Benchmark: one refresh run with DEFAULT settings against the documented quota (120/min).

    .venv/bin/python benchmarks/bench_quota.py                      # U = 10,000 (~10 min)
    .venv/bin/python benchmarks/bench_quota.py --data-age 60        # their data 1 h old
    .venv/bin/python benchmarks/bench_quota.py --unfinished 1000    # U = 1,000 (~1.5 min)

This process serves the fake Verilock API on loopback, rate-limited like the real one: at
most 120 requests in any 60 s, a 429 with ``Retry-After`` beyond (``FakeVerilock(
rate_limit_per_minute=120)``), 50 ms latency. It mirrors U unfinished sessions in a fresh
SQLite database as the previous run left them ``--data-age`` minutes ago (default 0: just
now; half ``created``, half ``processing``, created over the last 3 days; with
``--data-age 60`` every one of them is also due for the by-age refresh, which then spends
what the run's budget allows: see docs/scaling.md), then moves k = 10 % of them one status
forward upstream
(``created`` → ``processing``, ``processing`` → a decision). Then
``sync_verilock_sessions --json`` runs once, in a subprocess, with the app's default
settings: no ``VERILOCK_RATE_LIMIT_PER_MINUTE``, the default retries, concurrency and
``VERILOCK_MAX_DATA_AGE``.

Nothing is scaled: the run takes the real minutes the quota imposes (about
(k + U/100) / 2 seconds beyond the first minute's 120 requests). Requests and 429s are
counted by the fake server; the bound is k + ceil(U/100) + 2 (plus retries).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchsetup import API_KEY, configure_django, mirror_fake_sessions

ROOT = Path(__file__).resolve().parent.parent
QUOTA = 120


def configure(database: str, api_url: str) -> None:
    """Every VERILOCK default but the API's URL (the point of this benchmark)."""
    configure_django(database, VERILOCK_API_URL=api_url)


def child(database: str, api_url: str) -> None:
    """Subprocess entry: one run of the command, its JSON summary on stdout."""
    import io

    from django.core.management import CommandError, call_command

    configure(database, api_url)
    out = io.StringIO()
    started = time.perf_counter()
    # Exit status 1 (some sessions failed) raises CommandError: the summary says which.
    with contextlib.suppress(CommandError):
        call_command("sync_verilock_sessions", "--json", stdout=out, stderr=io.StringIO())
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    summary["wall"] = time.perf_counter() - started
    print(json.dumps(summary))


def prepare(unfinished: int, data_age: float, state: Any) -> list[str]:
    """Seed the fake and mirror it, as a sync ``data_age`` minutes ago left it; returns ids."""
    from django.core.management import call_command

    now = dt.datetime.now(dt.timezone.utc)
    for index in range(unfinished):
        state.add_session(
            status="created" if index % 2 else "processing",
            created_at=now - dt.timedelta(days=3) + dt.timedelta(seconds=20 * index),
        )
    call_command("migrate", verbosity=0)
    synced_at = now - dt.timedelta(minutes=data_age)
    return mirror_fake_sessions(state, synced_at)


def mismatches(state: Any) -> int:
    """Stored unfinished-or-not sessions whose status differs from the fake's."""
    from verilock_django.models import Session

    stored = dict(Session.objects.values_list("id", "status"))
    return sum(1 for fake in state.sessions if stored.get(fake.id) != fake.status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--unfinished", type=int, default=10_000, metavar="U")
    parser.add_argument("--changed", type=float, default=0.10, metavar="SHARE")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--data-age", type=float, default=0.0, metavar="MINUTES")
    parser.add_argument(
        "--child", nargs=2, metavar=("DATABASE", "API_URL"), help=argparse.SUPPRESS
    )
    options = parser.parse_args()
    if options.child:
        child(*options.child)
        return

    from verilock_django.testing.fake import FakeVerilock
    from verilock_django.testing.server import FakeVerilockServer

    workdir = Path(tempfile.mkdtemp(prefix="bench-quota-"))
    database = workdir / "mirror.sqlite3"
    state = FakeVerilock(api_key=API_KEY, random_seed=16)
    with FakeVerilockServer(state) as server:
        configure(str(database), server.url)
        ids = prepare(options.unfinished, options.data_age, state)
        rng = random.Random(16)  # reproducible: which sessions change
        changed = rng.sample(ids, round(options.changed * len(ids)))
        state.advance_many(ids=changed)
        from django.db import connections

        connections.close_all()
        state.reset_counters()
        state.latency_ms = options.latency_ms
        state.rate_limit_per_minute = QUOTA
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(database), server.url],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        if done.returncode != 0:
            raise SystemExit(f"the run failed:\n{done.stderr}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        answered = state.requests
        wrong = mismatches(state)

    unfinished, k = len(ids), len(changed)
    total = len(answered)
    limited = sum(1 for r in answered if r.status == 429)
    pages = sum(1 for r in answered if r.session_id is None and r.status != 429)
    by_id = sum(1 for r in answered if r.session_id is not None and r.status != 429)
    bound = k + math.ceil(unfinished / 100) + 2
    rows = [
        ("unfinished U", f"{unfinished:,}"),
        ("changed k", f"{k:,}"),
        ("failed sessions", f"{summary['failed']}"),
        ("stored status != upstream after the run", f"{wrong}"),
        ("requests (server)", f"{total:,}"),
        ("  list pages / by-id fetches answered", f"{pages} / {by_id:,}"),
        ("  answered 429", f"{limited} ({100 * limited / max(total, 1):.2f} %)"),
        ("requests (client, retries included)", f"{summary['requests']:,}"),
        ("bound k + ceil(U/100) + 2", f"{bound:,}"),
        ("within the bound (+ retries)", "yes" if total - limited <= bound else "NO"),
        ("confirmed by the list", f"{summary['confirmed']:,}"),
        ("old data left for the next runs", f"{summary['stale_left']:,}"),
        ("wall time", f"{summary['wall']:.0f} s"),
    ]
    width = max(len(label) for label, _ in rows)
    print(
        f"bench_quota: default settings, fake API at {QUOTA} requests/min, one run, "
        f"stored data {options.data_age:g} min old"
    )
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
