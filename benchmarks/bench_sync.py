"""Benchmark: the sync against the HTTP-only floor, a naive loop and the official SDK.

    .venv/bin/python benchmarks/bench_sync.py                       # SQLite, 2,000 changed
    .venv/bin/python benchmarks/bench_sync.py --database postgres   # PostgreSQL
    .venv/bin/python benchmarks/bench_sync.py --quick               # a smoke run
    .venv/bin/python benchmarks/bench_sync.py --sections memory     # peak RSS, 1k vs 20k

This process serves the fake Verilock API (``FakeVerilockServer``, with injected latency),
seeds N unfinished sessions there and mirrors them in a database; then it advances k of them
at the fake and runs each contender in a fresh subprocess on its own copy of that database
(a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on PostgreSQL), ``--repeat`` times
in turn, and reports the median run of each:

* **floor**: the same requests the app sends (the list walk, then ``GET /sessions/{id}``
  for every changed session, ``--concurrency`` in flight) through the app's own client,
  and no database write: what the sync would cost if storing were free;
* **app**: ``call_command("sync_verilock_sessions", concurrency=C)``;
* **naive**: one ``GET /sessions/{id}`` per unfinished session, then ``store_session`` of
  the answer, one after the other (the app's client and store, none of its pipeline);
* **sdk**: what a user writes with the official SDK (``pip install verilock httpx``):
  ``AsyncVerilock.sessions.retrieve`` for every unfinished session, C in flight, each
  answer written with ``save()`` and ``update_or_create`` per step through
  ``sync_to_async``. Left out (and said so) when the SDK is not installed.

Requests are counted by the fake server. Database round trips are counted in the
subprocess (``sync_contenders.py``, which holds the contenders): every statement plus, per
transaction, its ``BEGIN`` (where the driver sends it implicitly) and its ``COMMIT``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchsetup import (
    ACCOUNT_LIMIT_PER_MINUTE,
    API_KEY,
    database_settings,
    mirror_fake_sessions,
)
from sync_contenders import CONTENDERS, configure

ROOT = Path(__file__).resolve().parent.parent
CONTENDERS_SCRIPT = Path(__file__).resolve().parent / "sync_contenders.py"
UNFINISHED = "processing"
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"


# -- orchestration (this process) ------------------------------------------------------


@dataclass
class Row:
    label: str
    n: int
    k: int
    wall: float
    requests: int
    round_trips: int
    written: int
    rss_mb: float
    walls: tuple[float, ...] = ()
    #: Sessions the contender was run on (the naive loop may run on a sample).
    sample: int = 0

    @property
    def per_second(self) -> float:
        """Changed sessions brought up to date per second (extrapolated for a sample)."""
        return (self.sample or self.k) / self.wall if self.wall else math.inf

    @property
    def full_wall(self) -> float:
        """The wall time for all k changed sessions (scaled up from a sample)."""
        return self.wall * self.k / self.sample if self.sample else self.wall


class Databases:
    """One prepared database per configuration and a fresh copy of it per run."""

    def __init__(self, kind: str, workdir: Path, postgres_url: str) -> None:
        self.kind, self.workdir, self.postgres_url = kind, workdir, postgres_url
        self.copies: list[str] = []

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.postgres_url, autocommit=True)

    def url(self, name: str) -> str:
        if self.kind == "postgres":
            return f"{self.postgres_url.rsplit('/', 1)[0]}/{name}"
        return str(self.workdir / f"{name}.sqlite3")

    def create(self, name: str) -> str:
        """An empty database ``name`` (dropped first if it exists); returns its address."""
        if self.kind == "postgres":
            with self._admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{name}"')
        else:
            Path(self.url(name)).unlink(missing_ok=True)
        self.copies.append(name)
        return self.url(name)

    def copy(self, source: str) -> str:
        name = f"{source}_{uuid.uuid4().hex[:8]}"
        if self.kind == "postgres":
            with self._admin() as admin:
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        else:
            shutil.copyfile(self.url(source), self.url(name))
        self.copies.append(name)
        return self.url(name)

    def drop(self, address: str) -> None:
        name = address.rsplit("/", 1)[-1].removesuffix(".sqlite3")
        if self.kind == "postgres":
            with self._admin() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(address + suffix).unlink(missing_ok=True)
        with contextlib.suppress(ValueError):
            self.copies.remove(name)

    def drop_all(self) -> None:
        for name in list(self.copies):
            self.drop(self.url(name))


def prepare(n: int, latency_ms: int, databases: Databases, server: Any) -> str:
    """Seed N unfinished sessions at the fake and mirror them in a fresh database."""
    from django.core.management import call_command
    from django.db import connections

    state = server.state
    state.latency_ms = 0  # seeding goes through the state directly; latency is for the runs
    now = dt.datetime.now(dt.timezone.utc)
    for index in range(n):
        state.add_session(status=UNFINISHED, created_at=now - dt.timedelta(days=3, seconds=index))

    name = f"bench_sync_{n}"
    address = databases.create(name)
    connections["default"].close()
    connections["default"].settings_dict["NAME"] = database_settings(address)["NAME"]
    call_command("migrate", verbosity=0)
    synced_at = now - dt.timedelta(hours=1)
    mirror_fake_sessions(state, synced_at)
    connections["default"].close()
    state.latency_ms = latency_ms
    state.rate_limit_per_minute = ACCOUNT_LIMIT_PER_MINUTE
    return name


def measure(
    contender: str, source: str, databases: Databases, server: Any, n: int, k: int, args: Any
) -> Row:
    """Run one contender in a subprocess on a fresh copy of ``source``."""
    copy = databases.copy(source)
    server.state.reset_counters()
    env = {**os.environ, "BENCH_CONCURRENCY": str(args.concurrency)}
    sample = 0
    if contender == "naive" and args.naive_sessions:
        sample = min(args.naive_sessions, n)
        env["BENCH_NAIVE_SESSIONS"] = str(sample)
    try:
        done = subprocess.run(
            [sys.executable, str(CONTENDERS_SCRIPT), contender, copy, server.url],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env=env,
        )
    finally:
        databases.drop(copy)
    if done.returncode != 0:
        raise SystemExit(f"{contender} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"    {contender}: {figures['cpu']:.1f}s CPU in {figures['wall']:.1f}s", file=sys.stderr)
    return Row(
        label=contender,
        n=n,
        k=k,
        wall=figures["wall"],
        requests=server.state.total_requests,
        round_trips=figures["round_trips"],
        written=figures["written"],
        rss_mb=figures["rss_kb"] / 1024,
        sample=sample if sample and sample < k else 0,
    )


@contextlib.contextmanager
def fake_server() -> Iterator[Any]:
    from verilock_django.testing.server import FakeVerilockServer

    with FakeVerilockServer(api_key=API_KEY) as server:
        yield server


def median_row(rows: list[Row]) -> Row:
    """The run with the median wall time, with every run's wall time attached."""
    ordered = sorted(rows, key=lambda row: row.wall)
    row = ordered[len(ordered) // 2]
    row.walls = tuple(r.wall for r in rows)
    return row


def speed_table(rows: dict[str, Row]) -> str:
    """Markdown: median wall, throughput, ratios to the floor and to the naive loop."""
    floor, naive = rows.get("floor"), rows.get("naive")
    lines = [
        "| contender | changed | wall (s), median | runs (s) | sessions/s | vs floor (wall) "
        "| vs naive (speed) | HTTP requests | DB round trips | round trips / written "
        "| peak RSS (MB) |",
        "|" + "---|" * 11,
    ]
    for label, row in rows.items():
        ratio_floor = f"{row.full_wall / floor.wall:.2f}x" if floor and label != "floor" else "-"
        speedup = f"{row.per_second / naive.per_second:.1f}x" if naive else "-"
        written = row.written or 0
        per = f"{row.round_trips / written:.2f}" if written else "-"
        runs = " / ".join(f"{wall:.1f}" for wall in row.walls)
        note = f" (sample of {row.sample:,}, scaled)" if row.sample else ""
        lines.append(
            f"| {label}{note} | {row.k:,} | {row.full_wall:.1f} | {runs} | {row.per_second:.0f} "
            f"| {ratio_floor} | {speedup} | {row.requests:,} | {row.round_trips:,} | {per} "
            f"| {row.rss_mb:.0f} |"
        )
    return "\n".join(lines)


def sdk_installed() -> bool:
    try:
        import httpx  # noqa: F401
        import verilock  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 sessions, one run each")
    parser.add_argument("--sessions", type=int, default=2_000, help="changed sessions")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="an admin connection")
    parser.add_argument(
        "--naive-sessions",
        type=int,
        default=0,
        help="run the naive loop on this many sessions and scale (it is sequential)",
    )
    parser.add_argument(
        "--contenders", default="floor,app,naive,sdk", help="comma-separated subset"
    )
    parser.add_argument("--sections", default="speed", help="comma-separated: speed, memory")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.repeat = 200, 1

    contenders = [c for c in args.contenders.split(",") if c in CONTENDERS]
    if "sdk" in contenders and not sdk_installed():
        print("The official SDK is not installed (pip install verilock httpx): no sdk row.")
        contenders.remove("sdk")
    sections = set(args.sections.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        databases = Databases(args.database, Path(tmp), args.postgres_url)
        configure(databases.create("bench_sync_setup"))
        try:
            if "speed" in sections:
                speed(args, contenders, databases)
            if "memory" in sections:
                memory(args, databases)
        finally:
            databases.drop_all()


def speed(args: Any, contenders: list[str], databases: Databases) -> None:
    n = k = args.sessions
    runs: dict[str, list[Row]] = {c: [] for c in contenders}
    with fake_server() as server:
        source = prepare(n, args.latency_ms, databases, server)
        server.state.advance_many(k)
        for attempt in range(args.repeat):
            for contender in contenders:  # interleaved: a slow moment hits every contender
                row = measure(contender, source, databases, server, n, k, args)
                print(f"  run {attempt + 1}: {contender} {row.wall:.1f}s", file=sys.stderr)
                runs[contender].append(row)
    rows = {label: median_row(found) for label, found in runs.items()}
    print(
        f"\n{k:,} changed sessions of {n:,} unfinished; {args.latency_ms} ms latency; "
        f"concurrency {args.concurrency}; {args.database}; median of {args.repeat}.\n"
    )
    print(speed_table(rows))


def memory(args: Any, databases: Databases) -> None:
    """Peak RSS of the app from 1k to 20k unfinished sessions (10 % changed)."""
    small, large = (100, 2_000) if args.quick else (1_000, 20_000)
    found = []
    for n in (small, large):
        k = n // 10
        with fake_server() as server:
            source = prepare(n, args.latency_ms, databases, server)
            server.state.advance_many(k)
            row = measure("app", source, databases, server, n, k, args)
        print(f"  app N={n} k={k}: {row.wall:.1f}s", file=sys.stderr)
        found.append(row)
    print("\n| N | k | wall (s) | HTTP requests | peak RSS (MB) |\n|---|---|---|---|---|")
    for row in found:
        print(f"| {row.n:,} | {row.k:,} | {row.wall:.1f} | {row.requests:,} | {row.rss_mb:.0f} |")
    print(
        f"\nPeak RSS growth N={small:,} → N={large:,}: {found[1].rss_mb - found[0].rss_mb:+.1f} MB"
    )


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    main()
