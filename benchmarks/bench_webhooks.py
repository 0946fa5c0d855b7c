"""Benchmark: webhook intake throughput against a bare Django view, over loopback HTTP.

    .venv/bin/python benchmarks/bench_webhooks.py                 # SQLite file (WAL)
    .venv/bin/python benchmarks/bench_webhooks.py --quick         # smaller N, smoke run
    .venv/bin/python benchmarks/bench_webhooks.py --database-url postgres://postgres@127.0.0.1:5432/verilock_bench

One process serves a Django project (the app's URLs plus a bare view answering 200) on
a threaded loopback WSGI server; client threads POST pre-signed deliveries over
keep-alive connections. Both contenders go through the same server, middleware and
client, so the ratio isolates what the intake adds: reading the body, checking the
HMAC-SHA256 signature, inserting the ``WebhookEvent`` row (committed before the answer)
and answering. Processing is off (``VERILOCK_WEBHOOK_PROCESSOR = "none"``): it runs
after the answer, so it is not part of the intake's latency.

Rows: ``bare`` (a view returning 200), ``webhook`` (new deliveries: verify + store),
``duplicate`` (the same deliveries again: verify + lookup, nothing stored).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "whsec_bench"
SECRETS = ["whsec_bench_next", SECRET]  # mid-rotation: the signing secret is the second one


def configure(database_url: str | None, directory: Path, conn_max_age: int) -> None:
    """Minimal host-project settings; this module doubles as the URLconf."""
    import django
    from django.conf import settings

    if database_url:
        import dj_database_url

        database = dj_database_url.parse(database_url, conn_max_age=conn_max_age)
    else:
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(directory / "bench.sqlite3"),
            "CONN_MAX_AGE": conn_max_age,
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
                "timeout": 30,
            },
        }
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        ALLOWED_HOSTS=["127.0.0.1"],
        SECRET_KEY="bench-only",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "verilock_django"],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        ROOT_URLCONF=__name__,
        DATABASES={"default": database},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        VERILOCK_API_KEY="bench-key",
        VERILOCK_WEBHOOK_SECRETS=SECRETS,
        VERILOCK_WEBHOOK_PROCESSOR="none",
        LOGGING_CONFIG=None,
    )
    django.setup()


def bare(request: Any) -> Any:
    """The baseline: a view that only answers 200."""
    from django.http import HttpResponse

    return HttpResponse(b'{"status":"ok"}', content_type="application/json")


def _urlpatterns() -> list[Any]:
    from django.urls import include, path
    from django.views.decorators.csrf import csrf_exempt

    return [
        path("bare/", csrf_exempt(bare)),
        path("verilock/", include("verilock_django.urls")),
    ]


urlpatterns: list[Any] = []  # filled in by main() once settings exist


@dataclass
class Row:
    name: str
    clients: int
    count: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Server:
    """The project on a threaded loopback WSGI server (Django's own, as runserver uses)."""

    def __init__(self) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

        class QuietHandler(WSGIRequestHandler):
            # As production servers do: without it, Nagle + delayed ACK add ~40 ms per
            # keep-alive request and hide every other cost.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=True)
        self.httpd.set_app(WSGIHandler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="bench-server")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def deliveries(count: int, prefix: str) -> list[tuple[bytes, dict[str, str]]]:
    """Pre-signed deliveries (signing is the sender's cost, so it is done before timing)."""
    from verilock_django.testing.webhooks import signed_webhook, webhook_payload

    return [
        signed_webhook(
            webhook_payload(
                "session.completed",
                session_id=f"ses_{prefix}_{n:06d}",
                status="approved",
                completed_at="2026-03-15T14:30:00Z",
                timestamp="2026-03-15T14:30:01Z",
                webhook_id=f"wh_{prefix}_{n:06d}",
            ),
            SECRET,
        )
        for n in range(count)
    ]


def run(name: str, url: str, items: list[tuple[bytes, dict[str, str]]], clients: int) -> Row:
    """POST every item, spread over ``clients`` threads with one keep-alive session each."""
    import requests

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    chunks = [items[i::clients] for i in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(chunk: list[tuple[bytes, dict[str, str]]]) -> None:
        http = requests.Session()
        mine: list[float] = []
        codes: dict[int, int] = {}
        barrier.wait()
        for body, headers in chunk:
            started = time.perf_counter()
            response = http.post(url, data=body, headers=headers, timeout=30)
            mine.append(time.perf_counter() - started)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
        http.close()
        with lock:
            latencies.extend(mine)
            for code, seen in codes.items():
                statuses[code] = statuses.get(code, 0) + seen

    threads = [threading.Thread(target=client, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return Row(name, clients, len(items), time.perf_counter() - started, latencies, statuses)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=3000, help="deliveries per row (default 3000)")
    parser.add_argument("--clients", default="1,4", help="client threads, comma-separated")
    parser.add_argument("--quick", action="store_true", help="n=300, for a smoke run")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=60,
        help="CONN_MAX_AGE (default 60: persistent connections, as in production; "
        "0 opens a database connection per request)",
    )
    args = parser.parse_args()
    count = 300 if args.quick else args.n
    client_counts = [int(value) for value in args.clients.split(",")]

    with tempfile.TemporaryDirectory() as directory:
        configure(args.database_url, Path(directory), args.conn_max_age)
        urlpatterns.extend(_urlpatterns())
        from django.core.management import call_command
        from django.db import connection

        from verilock_django.models import WebhookEvent

        if args.database_url:
            # A throwaway test database, never the one the URL names.
            creation = connection.creation
            old_name = creation.create_test_db(verbosity=0, autoclobber=True)
        else:
            call_command("migrate", verbosity=0)
            old_name = None
        rows: list[Row] = []
        try:
            with Server() as server:
                warm = deliveries(50, "warm")
                run("warm-up", f"{server.url}/bare/", warm, 1)
                run("warm-up", f"{server.url}/verilock/webhook/", warm, 1)
                for clients in client_counts:
                    items = deliveries(count, f"c{clients}")
                    for name, path in (
                        ("bare view", "/bare/"),
                        ("webhook (new)", "/verilock/webhook/"),
                        ("webhook (duplicate)", "/verilock/webhook/"),  # same items again
                    ):
                        rows.append(run(name, f"{server.url}{path}", items, clients))
            stored = WebhookEvent.objects.exclude(webhook_id__startswith="wh_warm").count()
        finally:
            if old_name is not None:
                connection.creation.destroy_test_db(old_name, verbosity=0)

    vendor = "PostgreSQL" if args.database_url else "SQLite (file, WAL)"
    print(f"\nWebhook intake on loopback, {vendor}, {count} deliveries per row")
    print(
        "(Django's threaded WSGI server; keep-alive clients; processing off; "
        f"CONN_MAX_AGE={args.conn_max_age})\n"
    )
    header = (
        f"{'contender':<22}{'clients':>8}{'deliv/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'vs bare':>9}  statuses"
    )
    print(header)
    print("-" * len(header))
    baseline: dict[int, float] = {}
    for row in rows:
        if row.name == "bare view":
            baseline[row.clients] = row.rate
        ratio = row.rate / baseline[row.clients]
        codes = ", ".join(f"{code} x{seen}" for code, seen in sorted(row.statuses.items()))
        print(
            f"{row.name:<22}{row.clients:>8}{row.rate:>10.0f}{row.percentile(0.5):>9.2f}"
            f"{row.percentile(0.99):>9.2f}{ratio:>8.2f}x  {codes}"
        )
    expected = count * len(client_counts)
    print(f"\nStored events: {stored} (expected {expected}: each new delivery exactly once)")
    p50 = statistics.median(
        [row.rate / baseline[row.clients] for row in rows if row.name == "webhook (new)"]
    )
    print(f"Intake throughput relative to the bare view (median over client counts): {p50:.2f}")
    return 0 if stored == expected else 1


if __name__ == "__main__":
    sys.exit(main())
