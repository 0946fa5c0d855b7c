"""Benchmark: webhook intake against a bare Django view, through a real HTTP server.

    .venv/bin/python benchmarks/bench_webhooks.py                 # SQLite file (WAL)
    .venv/bin/python benchmarks/bench_webhooks.py --quick         # smaller N, one round
    .venv/bin/python benchmarks/bench_webhooks.py --database-url postgres://postgres@127.0.0.1:5432/verilock_bench
    .venv/bin/python benchmarks/bench_webhooks.py --database-url "$URL" --relaxed-intake-commit

The server is gunicorn (``gthread`` worker: 1 process, 4 threads, keep-alive) in its own
process, serving one Django project: the app's URLs and a bare view under the same URLconf,
settings and middleware (security, common, CSRF), with persistent database connections.
The bare view reads the body and answers ``{"status": "ok"}`` (``csrf_exempt`` and
``require_POST``, as the webhook view), so only the view differs between the rows. The
client, in this process, POSTs pre-signed deliveries over keep-alive connections
(``http.client``, one connection per client thread).

Rows: ``bare`` (the baseline), ``insert`` (the bare view plus one ``INSERT`` of the raw
body into a two-column table through Django's cursor, in autocommit: the least any receiver
that stores its deliveries pays, so the floor of a storing intake on this database),
``new`` (new deliveries: verify, store, answer), ``duplicate`` (the same deliveries again:
verify, find them stored, answer). Stored events
are handed to a stand-in task queue (``VERILOCK_WEBHOOK_PROCESSOR`` set to
:func:`enqueue`, which only records the id): the after-commit dispatch is timed, the
processing itself runs elsewhere in production and is not the intake's latency. Each round
sends the deliveries at each client count in blocks (200 by default), every contender taking
its turn on each block (the duplicates right after their new deliveries), so that the load
of a shared machine weighs on all rows alike; the table gives the median of the rounds (3 by
default) and the ratios of those medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "whsec_bench"
SECRETS = ["whsec_bench_next", SECRET]  # mid-rotation: the signing secret is the second one
SERVER_THREADS = 4
CONFIG_ENV = "BENCH_WEBHOOKS_DATABASE"  # the server's DATABASES["default"], as JSON
RELAXED_ENV = "BENCH_WEBHOOKS_RELAXED"  # "1": VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT = False
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]


# -- the served project (imported by gunicorn in the server process) --------------------


def configure(database: dict[str, Any], relaxed: bool = False) -> None:
    """Minimal host-project settings; this module doubles as the URLconf. ``relaxed``: the
    intake commits without waiting for the WAL flush (PostgreSQL; the app's own setting)."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        ALLOWED_HOSTS=["127.0.0.1"],
        SECRET_KEY="bench-only",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "verilock_django"],
        MIDDLEWARE=MIDDLEWARE,
        ROOT_URLCONF=__name__,
        DATABASES={"default": database},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        VERILOCK_API_KEY="bench-key",
        VERILOCK_WEBHOOK_SECRETS=SECRETS,
        VERILOCK_WEBHOOK_PROCESSOR=f"{__name__}.enqueue",
        VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT=not relaxed,
        LOGGING_CONFIG=None,
    )
    django.setup()


QUEUE: list[int] = []


def enqueue(event_id: int) -> None:
    """The stand-in task queue: records the id (a real one would send it to a broker)."""
    QUEUE.append(event_id)


def bare(request: Any) -> Any:
    """The baseline: reads the body and answers 200, as a minimal webhook receiver would."""
    from django.http import JsonResponse

    request.body  # noqa: B018 - read it, as the webhook view does
    return JsonResponse({"status": "ok"})


FLOOR_TABLE = "bench_webhooks_floor"


def insert(request: Any) -> Any:
    """The floor of a storing receiver: the bare view plus one ``INSERT`` of the raw body."""
    from django.db import connection
    from django.http import JsonResponse

    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {FLOOR_TABLE} (body) VALUES (%s)", [request.body])
    return JsonResponse({"status": "ok"})


def create_floor_table() -> None:
    from django.db import connection

    key = {
        "sqlite": "INTEGER PRIMARY KEY",
        "postgresql": "BIGSERIAL PRIMARY KEY",
        "mysql": "BIGINT AUTO_INCREMENT PRIMARY KEY",
    }[connection.vendor]
    body = "BYTEA" if connection.vendor == "postgresql" else "BLOB"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {FLOOR_TABLE} (id {key}, body {body} NOT NULL)")


def _urlpatterns() -> list[Any]:
    from django.urls import include, path
    from django.views.decorators.csrf import csrf_exempt
    from django.views.decorators.http import require_POST

    return [
        path("bare/", csrf_exempt(require_POST(bare))),
        path("insert/", csrf_exempt(require_POST(insert))),
        path("verilock/", include("verilock_django.urls")),
    ]


urlpatterns: list[Any] = []  # filled once settings exist


def server_application() -> Any:
    """The WSGI application gunicorn serves (``bench_webhooks:server_application()``)."""
    configure(json.loads(os.environ[CONFIG_ENV]), relaxed=os.environ.get(RELAXED_ENV) == "1")
    urlpatterns.extend(_urlpatterns())
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


# -- the client -------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    clients: int
    count: int
    seconds: float
    latencies: list[float]
    answers: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000


def deliveries(count: int, prefix: str) -> list[tuple[bytes, dict[str, str]]]:
    """Pre-signed, fresh deliveries (signing is the sender's cost: done before timing)."""
    from verilock_django.testing.webhooks import signed_webhook, webhook_payload

    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        signed_webhook(
            webhook_payload(
                "session.completed",
                session_id=f"ses_{prefix}_{n:06d}",
                status="approved",
                completed_at=now,
                timestamp=now,
                webhook_id=f"wh_{prefix}_{n:06d}",
            ),
            SECRET,
        )
        for n in range(count)
    ]


def run(name: str, port: int, path: str, items: list[Any], clients: int) -> Run:
    """POST every item, spread over ``clients`` threads with one keep-alive connection each."""
    latencies: list[float] = []
    answers: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(chunk: list[tuple[bytes, dict[str, str]]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        seen: dict[str, int] = {}
        barrier.wait()
        for body, headers in chunk:
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            mine.append(time.perf_counter() - started)
            key = f"{response.status} {json.loads(answer).get('status')}"
            seen[key] = seen.get(key, 0) + 1
        connection.close()
        with lock:
            latencies.extend(mine)
            for key, times in seen.items():
                answers[key] = answers.get(key, 0) + times

    threads = [threading.Thread(target=client, args=(items[i::clients],)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return Run(name, clients, len(items), time.perf_counter() - started, latencies, answers)


def interleaved(port: int, items: list[Any], clients: int, block: int) -> list[Run]:
    """One round: every contender on each block of ``items`` in turn, so that a change of
    the machine's load meets all of them alike; each row adds up its blocks."""
    rows = {name: Run(name, clients, 0, 0.0, []) for name, _, _ in CONTENDERS}
    for start in range(0, len(items), block):
        for name, path, _ in CONTENDERS:
            part = run(name, port, path, items[start : start + block], clients)
            row = rows[name]
            row.count += part.count
            row.seconds += part.seconds
            row.latencies += part.latencies
            for key, times in part.answers.items():
                row.answers[key] = row.answers.get(key, 0) + times
    return list(rows.values())


# -- the run ----------------------------------------------------------------------------

CONTENDERS = (
    ("bare", "/bare/", "200 ok"),
    ("insert", "/insert/", "200 ok"),
    ("new", "/verilock/webhook/", "200 stored"),
    ("duplicate", "/verilock/webhook/", "200 duplicate"),  # the same items again
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(database: dict[str, Any], relaxed: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        CONFIG_ENV: json.dumps(database),
        RELAXED_ENV: "1" if relaxed else "0",
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable, "-m", "gunicorn",
        "--chdir", str(Path(__file__).parent),
        "--bind", f"127.0.0.1:{port}",
        "--worker-class", "gthread", "--workers", "1", "--threads", str(SERVER_THREADS),
        "--keep-alive", "60", "--log-level", "warning",
        "bench_webhooks:server_application()",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            probe.request("POST", "/bare/", body=b"{}")
            if probe.getresponse().status == 200:
                probe.close()
                return server, port
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not start (is it installed? `pip install gunicorn`)")


def database_settings(url: str | None, directory: Path, async_commit: bool) -> dict[str, Any]:
    """SQLite as in production (WAL, ``synchronous=NORMAL``: no flush per commit), or the
    PostgreSQL of ``url`` with its own commit settings unless ``async_commit``."""
    if url:
        import dj_database_url

        database = dict(dj_database_url.parse(url, conn_max_age=600))
        if async_commit:
            database["OPTIONS"] = {"options": "-c synchronous_commit=off"}
        return database
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(directory / "bench.sqlite3"),
        "CONN_MAX_AGE": 600,
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            "timeout": 30,
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="deliveries per row (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is shown")
    parser.add_argument("--clients", default="1,4", help="client threads, comma-separated")
    parser.add_argument(
        "--block", type=int, default=200, help="deliveries per turn of each contender"
    )
    parser.add_argument("--quick", action="store_true", help="n=300, one round: a smoke run")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="PostgreSQL: the project's connections set synchronous_commit=off (a host "
        "setting: commits stop waiting for the WAL flush, like SQLite's synchronous=NORMAL)",
    )
    parser.add_argument(
        "--relaxed-intake-commit",
        action="store_true",
        help="PostgreSQL: VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT = False (only the intake's own "
        "transaction skips the WAL flush wait; the connections keep the server's setting)",
    )
    args = parser.parse_args()
    if args.relaxed_intake_commit and not args.database_url:
        parser.error("--relaxed-intake-commit needs --database-url (PostgreSQL)")
    count, rounds = (300, 1) if args.quick else (args.n, args.rounds)
    block = max(args.block, 1)
    client_counts = [int(value) for value in args.clients.split(",")]

    with tempfile.TemporaryDirectory() as directory:
        database = database_settings(args.database_url, Path(directory), args.async_commit)
        configure(dict(database))
        from django.core.management import call_command
        from django.db import connection

        from verilock_django.models import WebhookEvent

        old_name = None
        if args.database_url:
            # A throwaway test database, never the one the URL names.
            old_name = connection.settings_dict["NAME"]
            database["NAME"] = connection.creation.create_test_db(verbosity=0, autoclobber=True)
        else:
            call_command("migrate", verbosity=0)
        create_floor_table()
        connection.close()
        runs: list[Run] = []
        server, port = start_server(database, args.relaxed_intake_commit)
        try:
            warm = deliveries(100, "warm")
            for path in ("/bare/", "/verilock/webhook/"):
                for clients in client_counts:
                    run("warm-up", port, path, warm, clients)
            for round_ in range(rounds):
                for clients in client_counts:
                    items = deliveries(count, f"r{round_}c{clients}")
                    runs.extend(interleaved(port, items, clients, block))
        finally:
            server.terminate()
            server.wait(30)
        stored = WebhookEvent.objects.exclude(webhook_id__startswith="wh_warm").count()
        commit_setting = ""
        if args.database_url:
            with connection.cursor() as cursor:
                cursor.execute("SHOW synchronous_commit")
                commit_setting = cursor.fetchone()[0]
        connection.close()
        if old_name is not None:
            connection.creation.destroy_test_db(old_name, verbosity=0)

    if not args.database_url:
        vendor = "SQLite (file, WAL, synchronous=NORMAL)"
    elif args.async_commit:
        vendor = "PostgreSQL (synchronous_commit=off)"
    elif args.relaxed_intake_commit:
        vendor = (
            f"PostgreSQL (synchronous_commit={commit_setting}, intake's own transaction: off "
            "through VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT = False)"
        )
    else:
        vendor = f"PostgreSQL (synchronous_commit={commit_setting})"
    return report(vendor, runs, count, rounds, client_counts, stored)


def report(
    vendor: str, runs: list[Run], count: int, rounds: int, clients: list[int], stored: int
) -> int:
    print(f"\nWebhook intake, {vendor}: {count} deliveries per row, median of {rounds} rounds")
    print(
        f"(gunicorn gthread, 1 worker x {SERVER_THREADS} threads, keep-alive; the same project, "
        "middleware and server for every row; persistent DB connections)\n"
    )
    header = (
        f"{'clients':>7}  {'contender':<10}{'deliv/s':>9}{'p50 ms':>8}"
        f"{'vs bare':>9}{'vs insert':>10}{'vs new':>8}  answers"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for n in clients:
        median: dict[str, float] = {}
        for name, _, expected in CONTENDERS:
            mine = [r for r in runs if r.clients == n and r.name == name]
            median[name] = statistics.median(r.rate for r in mine)
            p50 = statistics.median(r.p50_ms for r in mine)
            answers: dict[str, int] = {}
            for r in mine:
                for key, times in r.answers.items():
                    answers[key] = answers.get(key, 0) + times
            ok &= set(answers) == {expected}
            vs_bare = median[name] / median["bare"]
            app = name in ("new", "duplicate")
            vs_insert = f"{median[name] / median['insert']:.2f}x" if app else ""
            vs_new = f"{median[name] / median['new']:.2f}x" if name == "duplicate" else ""
            seen = ", ".join(f"{key} x{times}" for key, times in sorted(answers.items()))
            print(
                f"{n:>7}  {name:<10}{median[name]:>9.0f}{p50:>8.2f}"
                f"{vs_bare:>8.2f}x{vs_insert:>10}{vs_new:>8}  {seen}"
            )
    expected_rows = count * rounds * len(clients)
    print(f"\nStored events: {stored} (expected {expected_rows}: each new delivery exactly once)")
    ok &= stored == expected_rows
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
