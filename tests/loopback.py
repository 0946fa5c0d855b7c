"""A scripted HTTP server on loopback, for client tests that need a real socket.

Each request gets the next scripted :class:`Answer` (the last one repeats). An answer can
trickle its body one byte at a time, omit ``Content-Length`` (the body then ends when the
connection closes), and carry any header. The server records what it received and how many
body bytes it managed to send, and stops trickling as soon as the client hangs up.

:func:`serving` runs any request handler class the same way, and :func:`free_port` finds a
port for a server the test starts itself.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1 from a background thread inside the
    block; yields the root URL ``http://127.0.0.1:<port>``. Handler threads are daemons."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    # A short poll interval: shutdown() waits for the next poll.
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class Answer:
    """One scripted answer; ``byte_delay`` (seconds) trickles the body byte by byte."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    byte_delay: float = 0.0
    declare_length: bool = True


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    client_port: int


class ScriptedServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 answering from a script; a context manager.

    Connections are kept alive unless an answer has no ``Content-Length``.
    """

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = list(answers)
        #: The server's root URL, ``http://127.0.0.1:<port>`` (once entered).
        self.url = ""
        self.received: list[Received] = []
        self.body_bytes_sent = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                answer = server._next(
                    Received(self.command, self.path, dict(self.headers), self.client_address[1])
                )
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.declare_length:
                    self.send_header("Content-Length", str(len(answer.body)))
                else:
                    # The body ends when the connection closes.
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                step = 1 if answer.byte_delay else len(answer.body) or 1
                try:
                    for start in range(0, len(answer.body), step):
                        self.wfile.write(answer.body[start : start + step])
                        self.wfile.flush()
                        server._sent(len(answer.body[start : start + step]))
                        if answer.byte_delay:
                            time.sleep(answer.byte_delay)
                except OSError:
                    return  # the client hung up: stop sending

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._handler = Handler
        self._running = ExitStack()

    def _next(self, received: Received) -> Answer:
        with self._lock:
            self.received.append(received)
            index = min(len(self.received), len(self.answers)) - 1
            return self.answers[index]

    def _sent(self, count: int) -> None:
        with self._lock:
            self.body_bytes_sent += count

    def __enter__(self) -> ScriptedServer:
        self.url = self._running.enter_context(serving(self._handler))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._running.close()
