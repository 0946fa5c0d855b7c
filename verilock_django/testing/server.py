"""The fake Verilock API over HTTP on a loopback port (stdlib ``http.server``).

Run it::

    python -m verilock_django.testing.server --port 0 --api-key test-key --seed 30

It prints one line ``Fake Verilock API listening on http://127.0.0.1:PORT/api/v1`` and
serves until SIGINT/SIGTERM. API routes live under ``/api/v1`` (and ``/v1``, the SDK's
spelling); control routes under ``/_fake`` need no key (see
:mod:`verilock_django.testing.control`).

In tests::

    with FakeVerilockServer(api_key="k") as server:
        server.state.add_session(status="processing")
        requests.get(f"{server.url}/sessions", headers={"X-API-Key": "k"})
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import select
import signal
import socket
import struct
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

from .fake import FakeVerilock
from .replies import FakeResponse

__all__ = ["FakeVerilockServer", "WebhookReceiver", "main"]

logger = logging.getLogger(__name__)

API_PREFIXES: Final = ("/api/v1", "/v1")
CONTROL_PREFIX: Final = "/_fake"


def _check_loopback(host: str) -> None:
    """Refuse anything but a loopback address: this server has no real security."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"Refusing to bind {host!r}: the fake Verilock API serves loopback only.")


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads that server_close() joins: stopping the server really
    # stops every thread it started.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    # socketserver's default backlog (5) drops connects from a parallel client (SYN retries).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: FakeVerilock) -> None:
        self.state = state
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_idle_connections(self) -> None:
        """Wake every handler waiting for a keep-alive client's next request (or sending),
        so that ``server_close()``, which joins them, returns at once."""
        with self._open_lock:
            open_now = list(self._open)
        for connection in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Keep-alive, like the real API: a client's pooled connection serves many requests (a
    # new connection and handler thread per request would cost more than the app measured).
    protocol_version = "HTTP/1.1"
    # An idle connection (or a client that connects and sends nothing) is closed after this;
    # stop() wakes such handlers at once.
    timeout = 10
    # Headers and body go out as two writes: with Nagle's algorithm the second waits for
    # the client's delayed ACK of the first (40 ms on Linux) on a reused connection.
    disable_nagle_algorithm = True
    server_version = "FakeVerilock/1"

    def do_GET(self) -> None:
        """Serve GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Serve POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Serve PUT."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Serve PATCH."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Serve DELETE."""
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = dict(self.headers.items())
        state = self.server.state
        path = parts.path
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            response = state.handle_control(
                self.command, path[len(CONTROL_PREFIX) :], parts.query, headers, body
            )
        else:
            for prefix in API_PREFIXES:
                if path.startswith(prefix + "/") or path == prefix:
                    state.handle(
                        self.command,
                        path[len(prefix) :] or "/",
                        parts.query,
                        headers,
                        body,
                        deliver=self._deliver,
                    )
                    return
            response = state.error_response(404, f"No route for {self.command} {path}.")
        self._send(response)

    def _deliver(self, response: FakeResponse) -> bool:
        """Send an API answer, after holding it while the fake holds answers; ``True`` when
        all of it was written to a client still connected (see :mod:`.requestlog`)."""
        self.server.state.answer_hold.wait(self.server.stopping)
        if not self._client_connected():
            self.close_connection = True
            return False
        try:
            self._send(response)
        except OSError:  # the client went away while it was written
            self.close_connection = True
            return False
        return response.fault not in ("timeout", "reset")

    def _client_connected(self) -> bool:
        # A client sends nothing more while it waits for its answer (no pipelining): a
        # readable socket means end of stream or a reset, i.e. the client went away.
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return not readable or self.connection.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def _send(self, response: FakeResponse) -> None:
        if response.fault == "timeout":
            # Stay silent until the client gives up, or until the server stops.
            self.server.stopping.wait(self.server.state.hang_seconds)
            self.close_connection = True
            return
        if response.fault == "reset":
            # SO_LINGER 0 turns close() into a TCP RST: the client sees "connection reset".
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Route the access log to ``logging`` instead of stderr."""
        logger.debug("%s - %s", self.address_string(), format % args)


class FakeVerilockServer:
    """The fake API on a loopback port, served from a background thread.

    Pass a ready :class:`FakeVerilock` as ``state`` or keyword arguments to build one.
    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        state: FakeVerilock | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **state_options: Any,
    ) -> None:
        _check_loopback(host)
        if state is not None and state_options:
            raise TypeError("Pass either a state or options to build one, not both.")
        self._owns_state = state is None
        self.state = state if state is not None else FakeVerilock(**state_options)
        self._address = (host, port)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeVerilockServer:
        """Bind and start serving; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("The fake Verilock server is already running.")
        self._httpd = _Server(self._address, self.state)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-verilock-server",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wait for every handler thread, and flush webhook deliveries."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.stopping.set()
            httpd.shutdown()
            httpd.close_idle_connections()
            httpd.server_close()
        if thread is not None:
            thread.join()
        if self._owns_state:
            self.state.close()

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._httpd is None:
            raise RuntimeError("The fake Verilock server is not running.")
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` — the control API lives under ``/_fake``."""
        host = str(self._httpd.server_address[0]) if self._httpd else self._address[0]
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL to put in ``VERILOCK_API_URL``."""
        return f"{self.root_url}/api/v1"

    def __enter__(self) -> FakeVerilockServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class WebhookReceiver:
    """A loopback HTTP endpoint that records every POST it gets (for webhook tests).

    ``receiver.url`` is the address to configure; ``receiver.wait_for(n)`` returns the
    received ``(path, headers, raw_body)`` tuples. ``status`` is what it answers.
    """

    def __init__(self, *, status: int = 200, host: str = "127.0.0.1") -> None:
        _check_loopback(host)
        self.status = status
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            timeout = 10

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._changed:
                    receiver.received.append((self.path, dict(self.headers.items()), body))
                    receiver._changed.notify_all()
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug(format, *args)

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._httpd.daemon_threads = False
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where to send webhooks."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/webhooks/verilock/"

    def wait_for(
        self, count: int, timeout: float = 5.0
    ) -> list[tuple[str, dict[str, str], bytes]]:
        """Block until ``count`` POSTs arrived (or ``timeout``) and return all received."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def __enter__(self) -> WebhookReceiver:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m verilock_django.testing.server",
        description="Serve a fake Verilock API on a loopback port.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--api-key", default=None, help="required key (default: accept any)")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay added to each answer")
    parser.add_argument(
        "--rate-limit-per-minute",
        type=int,
        default=120,
        help="requests per minute per key before 429 (documented default 120; 0 disables)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="pre-create N sessions in mixed states"
    )
    parser.add_argument(
        "--shape", choices=("a", "b", "mixed"), default="a", help="payload shape of new sessions"
    )
    parser.add_argument("--random-seed", type=int, default=0, help="seed for ids and names")
    parser.add_argument(
        "--auto-advance-seconds",
        type=float,
        default=None,
        help="move unfinished sessions one status forward every N seconds",
    )
    parser.add_argument("--webhook-url", default=None, help="POST signed webhooks here")
    parser.add_argument("--webhook-secret", default=None, help="HMAC-SHA256 key for signatures")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        _check_loopback(args.host)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    state = FakeVerilock(
        api_key=args.api_key,
        default_shape=args.shape,
        latency_ms=args.latency_ms,
        rate_limit_per_minute=args.rate_limit_per_minute or None,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        auto_advance_seconds=args.auto_advance_seconds,
        random_seed=args.random_seed,
    )
    state.seed(args.seed)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    server = FakeVerilockServer(state, host=args.host, port=args.port)
    try:
        server.start()
    except OSError as exc:
        print(f"Cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        # The first line is the contract scripts parse; keep it stable.
        print(f"Fake Verilock API listening on {server.url}", flush=True)
        print(f"Control API (no key): {server.root_url}{CONTROL_PREFIX}/stats", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        state.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
