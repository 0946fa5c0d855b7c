"""Benchmark: the cost of the client's guarantees (streamed body with a deadline, size limit,
no redirects, tolerant retries) against a bare ``requests`` call, on loopback.

    .venv/bin/python benchmarks/bench_client.py           # the table (about 10 s)
    .venv/bin/python benchmarks/bench_client.py --quick   # fewer requests

A keep-alive HTTP/1.1 server in this process answers every GET with one JSON object of the
given size. Per body size, each contender fetches it R times on one thread:

* **ours**: ``VerilockClient.get_session`` (settings as shipped, no retries needed);
* **bare**: ``requests.Session().get(url, timeout=10).json()`` — no deadline on the body,
  no size limit, redirects followed.

Both parse the JSON. The contenders alternate in rounds and the best round counts (the
machine may be busy with other work); the table gives milliseconds per fetch and the ratio
to bare.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Body size (bytes) -> fetches per contender.
SIZES = {2_000: 2_000, 100_000: 500, 1_000_000: 100}


def make_body(size: int) -> bytes:
    """A JSON session-like object of about ``size`` bytes."""
    padding = max(0, size - 60)
    return json.dumps({"id": "ses_bench", "status": "approved", "notes": "x" * padding}).encode()


def serve(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: without this, delayed ACKs add ~40 ms to each.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


def timed(fetch: Callable[[], object], repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        fetch()
    return time.perf_counter() - started


def measure(body: bytes, repeats: int, rounds: int) -> dict[str, float]:
    """Best seconds per fetch of ``body`` for each contender, over ``rounds`` interleaved
    rounds of ``repeats`` fetches (the best round is the least disturbed by other load)."""
    import requests

    from verilock_django.client import VerilockClient

    server = serve(body)
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v1"
    try:
        ours = VerilockClient(api_url=url, api_key="bench-key", max_retries=0)
        bare = requests.Session()
        contenders: dict[str, Callable[[], object]] = {
            "bare": lambda: bare.get(f"{url}/sessions/ses_bench", timeout=10).json(),
            "ours": lambda: ours.get_session("ses_bench"),
        }
        best = {name: math.inf for name in contenders}
        for fetch in contenders.values():
            fetch()  # warm up: connection, imports
        for _ in range(rounds):
            for name, fetch in contenders.items():
                best[name] = min(best[name], timed(fetch, repeats) / repeats)
        return best
    finally:
        server.shutdown()
        server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    options = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    rounds = 3 if options.quick else 7
    print(
        "| body (bytes) | contender | fetches per round | best ms per fetch | fetches/s "
        "| vs bare |"
    )
    print("|---|---|---|---|---|---|")
    for size, count in SIZES.items():
        body = make_body(size)
        repeats = max(1, count // 10 if options.quick else count // rounds)
        best = measure(body, repeats, rounds)
        for name, seconds in best.items():
            print(
                f"| {len(body):,} | {name} | {repeats:,} | {seconds * 1000:.2f} "
                f"| {1 / seconds:,.0f} | {seconds / best['bare']:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
