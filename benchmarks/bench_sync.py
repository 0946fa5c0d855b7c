"""Benchmark: ``sync_verilock_sessions`` against a naive loop, on the fake API over loopback.

    .venv/bin/python benchmarks/bench_sync.py            # the full table (a few minutes)
    .venv/bin/python benchmarks/bench_sync.py --quick    # smaller N, for a smoke run

This process serves the fake Verilock API (``FakeVerilockServer``, with injected latency)
and prepares, per configuration, a SQLite database mirroring N unfinished sessions; then
it advances k of them at the fake provider and runs each contender in a fresh subprocess
on a copy of that database, so every peak RSS figure is independent of the others:

* **ours**: ``call_command("sync_verilock_sessions")`` with its defaults;
* **naive**: what a user writes without the app — ``requests.get`` per unfinished
  session, one after the other, then ``update_or_create`` per step.

Requests are counted by the fake server; queries by a ``connection.execute_wrapper`` in
the subprocess (DEBUG stays off, so nothing is kept per query).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def configure_django(database: str, api_url: str = "http://127.0.0.1:9/api/v1") -> None:
    """Minimal settings for a standalone process: the app and a SQLite file."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "verilock_django"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": database,
                # The usual production settings for SQLite; both contenders get them.
                "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"},
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        VERILOCK_API_KEY=API_KEY,
        VERILOCK_API_URL=api_url,
        VERILOCK_MAX_RETRIES=0,
        LOGGING_CONFIG=None,
    )
    django.setup()


# -- the contenders (run in a subprocess) ---------------------------------------------


def run_ours() -> int:
    """The app's command with its defaults; returns the number of sessions written."""
    import io

    from django.core.management import call_command

    out = io.StringIO()
    options = {}
    if os.environ.get("BENCH_CONCURRENCY"):
        options["concurrency"] = int(os.environ["BENCH_CONCURRENCY"])
    call_command("sync_verilock_sessions", stdout=out, **options)
    summary = out.getvalue().strip()
    print(summary, file=sys.stderr)
    return int(summary.split(" changed")[0].rsplit(" ", 1)[-1])


def run_naive() -> int:
    """Sequential ``requests.get`` per unfinished session + ``update_or_create`` per step."""
    import requests
    from django.conf import settings

    from verilock_django.models import Session, StepResult

    written = 0
    headers = {"Authorization": f"Bearer {API_KEY}"}
    unfinished = Session.objects.exclude(status__in=["approved", "declined", "expired"])
    for session in unfinished.iterator():
        response = requests.get(
            f"{settings.VERILOCK_API_URL}/sessions/{session.id}", headers=headers, timeout=10
        )
        response.raise_for_status()
        data = response.json()
        session.status = data["status"]
        session.completed_at = data.get("completed_at")
        session.payload = data
        session.save()
        for step, result in (data.get("results") or {}).items():
            StepResult.objects.update_or_create(
                session=session,
                step=step,
                defaults={
                    "status": result.get("status", ""),
                    "score": result.get("score"),
                    "details": result.get("details") or {},
                    "payload": result,
                },
            )
        written += 1
    return written


CONTENDERS: dict[str, Callable[[], int]] = {"ours": run_ours, "naive": run_naive}


def child(contender: str, database: str, api_url: str) -> None:
    """Subprocess entry: run one contender and print its figures as JSON."""
    configure_django(database, api_url)
    from django.db import connection

    queries = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal queries
        # Transaction control (SQLite logs BEGIN/COMMIT) is not a query against the data.
        if not sql.lstrip().upper().startswith(TRANSACTION_CONTROL):
            queries += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        started = time.perf_counter()
        written = CONTENDERS[contender]()
        wall = time.perf_counter() - started
    print(
        json.dumps({"wall": wall, "written": written, "queries": queries, "rss_kb": peak_rss_kb()})
    )


def peak_rss_kb() -> int:
    """This process's peak resident set size, in KiB.

    Not ``getrusage().ru_maxrss``: Linux carries it across ``execve``, so a subprocess
    would report the peak of the (large) parent it was forked from.
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; other Unixes


# -- orchestration (this process) ------------------------------------------------------


@dataclass
class Row:
    label: str
    n: int
    k: int
    wall: float
    requests: int
    queries: int
    written: int
    rss_mb: float

    @property
    def per_second(self) -> float:
        return self.n / self.wall if self.wall else math.inf


def prepare(n: int, latency_ms: int, workdir: Path, server: Any) -> Path:
    """Seed N unfinished sessions at the fake and mirror them in a fresh database."""
    from django.core.management import call_command
    from django.db import connections

    from verilock_django.models import Session, StepResult
    from verilock_django.payloads import parse_session
    from verilock_django.store import session_values, step_rows

    state = server.state
    state.latency_ms = 0  # seeding goes through the state directly; latency is for the runs
    now = dt.datetime.now(dt.timezone.utc)
    for index in range(n):
        state.add_session(
            status="processing", created_at=now - dt.timedelta(days=3, seconds=index)
        )

    database = workdir / f"mirror-{n}.sqlite3"
    database.unlink(missing_ok=True)
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = str(database)
    call_command("migrate", verbosity=0)
    synced_at = now - dt.timedelta(hours=1)
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
    connections["default"].close()
    state.latency_ms = latency_ms
    return database


def measure(contender: str, database: Path, server: Any, n: int, k: int) -> Row:
    """Run one contender in a subprocess on a copy of ``database``."""
    copy = database.with_suffix(f".{contender}.sqlite3")
    shutil.copyfile(database, copy)
    server.state.reset_counters()
    done = subprocess.run(
        [sys.executable, __file__, "--child", contender, str(copy), server.url],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"{contender} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    copy.unlink()
    return Row(
        label=contender,
        n=n,
        k=k,
        wall=figures["wall"],
        requests=server.state.total_requests,
        queries=figures["queries"],
        written=figures["written"],
        rss_mb=figures["rss_kb"] / 1024,
    )


def changed(server: Any, k: int) -> None:
    """Advance k sessions at the fake: processing → approved/declined, new step results."""
    server.state.advance_many(k)


@contextlib.contextmanager
def fake_server() -> Iterator[Any]:
    from verilock_django.testing.server import FakeVerilockServer

    with FakeVerilockServer(api_key=API_KEY) as server:
        yield server


def table(rows: list[Row], naive_by_config: dict[tuple[int, int], Row]) -> str:
    """A Markdown table; throughput is unfinished sessions brought up to date per second."""
    lines = [
        "| run | N | k | wall (s) | sessions/s | vs naive | HTTP requests "
        "| budget k+ceil(N/100)+2 | DB queries / written session | peak RSS (MB) |",
        "|" + "---|" * 10,
    ]
    for row in rows:
        naive = naive_by_config.get((row.n, row.k))
        speedup = f"{row.per_second / naive.per_second:.1f}x" if naive else "-"
        budget = row.k + math.ceil(row.n / 100) + 2
        per_written = f"{row.queries / row.written:.2f}" if row.written else "-"
        lines.append(
            f"| {row.label} | {row.n:,} | {row.k:,} | {row.wall:.1f} | {row.per_second:.0f} "
            f"| {speedup} | {row.requests:,} | {budget:,} | {per_written} | {row.rss_mb:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small N (smoke run)")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument(
        "--sections", default="speed,memory", help="comma-separated: speed, memory"
    )
    parser.add_argument("--child", nargs=3, metavar=("CONTENDER", "DATABASE", "API_URL"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    n_speed, n_small, n_large = (200, 100, 2_000) if args.quick else (2_000, 1_000, 20_000)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        configure_django(str(workdir / "setup.sqlite3"))
        rows: list[Row] = []
        naive: dict[tuple[int, int], Row] = {}
        sections = set(args.sections.split(","))
        for k_share in (0.10, 1.0) if "speed" in sections else ():
            k = round(n_speed * k_share)
            with fake_server() as server:  # a fresh account per configuration
                database = prepare(n_speed, args.latency_ms, workdir, server)
                changed(server, k)
                for contender in ("ours", "naive"):
                    row = measure(contender, database, server, n_speed, k)
                    print(f"  {contender} N={n_speed} k={k}: {row.wall:.1f}s", file=sys.stderr)
                    rows.append(row)
                    if contender == "naive":
                        naive[(n_speed, k)] = row
        memory: list[Row] = []
        for n in (n_small, n_large) if "memory" in sections else ():
            k = n // 10
            with fake_server() as server:
                database = prepare(n, args.latency_ms, workdir, server)
                changed(server, k)
                row = measure("ours", database, server, n, k)
            print(f"  ours N={n} k={k}: {row.wall:.1f}s", file=sys.stderr)
            memory.append(row)
    print(f"\nLatency {args.latency_ms} ms per request; SQLite file database.\n")
    if rows:
        print(table(rows, naive))
    if memory:
        print()
        print(table(memory, {}))
        growth = memory[1].rss_mb - memory[0].rss_mb
        print(f"\nPeak RSS growth N={n_small:,} → N={n_large:,}: {growth:+.1f} MB")


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    main()
