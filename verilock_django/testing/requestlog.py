"""The fake API's request log: what a test's code asked for, and what it was answered.

Control calls (``/_fake/*``) are never logged; every API request is, failed ones included.
A request is counted when it arrives (:meth:`RequestLog.count`, so hung ones count too) and
recorded once its fate is known (:meth:`RequestLog.record`): **answered** when the whole
response was written to a client that was still connected, **abandoned** when the client
had gone away before the answer (a killed worker), or when the fake sent none (a
``timeout`` or ``reset`` fault). "Fetched" means answered: a response nobody received
cannot have been stored.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["AnswerHold", "AuthStyle", "RecordedRequest", "RequestLog"]

AuthStyle = Literal["bearer", "x-api-key"]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake API received, for assertions.

    ``answered``: the response reached a connected client (see the module docstring);
    ``arrived_at``: when the request arrived (aware, UTC, this machine's clock).
    """

    method: str
    path: str
    query: str
    session_id: str | None
    status: int
    auth_style: AuthStyle | None
    fault: str | None
    answered: bool = True
    arrived_at: dt.datetime = field(default_factory=_utcnow)


class RequestLog:
    """Counters (total and per session id) and the list of finished requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._answered: Counter[str] = Counter()
        self._total = 0
        self._requests: list[RecordedRequest] = []

    def count(self, session_id: str | None) -> None:
        """Count one arriving request (before it is answered, so hung ones count too)."""
        with self._lock:
            self._total += 1
            if session_id:
                self._counts[session_id] += 1

    def record(self, request: RecordedRequest) -> None:
        """Log one finished request, answered or abandoned."""
        with self._lock:
            self._requests.append(request)
            if request.answered and request.session_id:
                self._answered[request.session_id] += 1

    def requests_for(self, session_id: str) -> int:
        """How many API requests named this session id (received: failed, hung and
        abandoned ones included)."""
        with self._lock:
            return self._counts[session_id]

    def answered_for(self, session_id: str) -> int:
        """How many API requests naming this session id were answered (any status)."""
        with self._lock:
            return self._answered[session_id]

    @property
    def total(self) -> int:
        """How many API requests were received in total."""
        with self._lock:
            return self._total

    @property
    def by_session(self) -> dict[str, int]:
        """Received request counts per session id."""
        with self._lock:
            return dict(self._counts)

    @property
    def answered_by_session(self) -> dict[str, int]:
        """Answered request counts per session id."""
        with self._lock:
            return dict(self._answered)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every finished API request (answered or abandoned), in the order they finished."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Zero the counters and forget the log."""
        with self._lock:
            self._counts.clear()
            self._answered.clear()
            self._total = 0
            self._requests.clear()


class AnswerHold:
    """Holds answers on their way out while on: tests stop clients in the middle of a fetch.

    While :meth:`hold` is in effect, the loopback server keeps every computed answer in
    :meth:`wait` (:attr:`held` counts them) until :meth:`release`; a client that went away
    meanwhile finds its answer abandoned. The in-process adapter never holds (its caller is
    the thread that would wait).
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._holding = False
        self._held = 0

    @property
    def holding(self) -> bool:
        """Whether answers are being held."""
        with self._changed:
            return self._holding

    @property
    def held(self) -> int:
        """How many answers are waiting to be released now."""
        with self._changed:
            return self._held

    def hold(self) -> None:
        """Hold every answer from now on (those already being written go out)."""
        with self._changed:
            self._holding = True

    def release(self) -> None:
        """Let every held answer go, and stop holding."""
        with self._changed:
            self._holding = False
            self._changed.notify_all()

    def wait(self, stopping: threading.Event) -> None:
        """Block while answers are held (or until ``stopping`` is set: the server stops)."""
        with self._changed:
            if not self._holding:
                return
            self._held += 1
            self._changed.notify_all()
            try:
                while self._holding and not stopping.is_set():
                    self._changed.wait(0.05)
            finally:
                self._held -= 1
                self._changed.notify_all()

    def wait_for_held(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` answers are held; ``False`` after ``timeout`` s."""
        with self._changed:
            return self._changed.wait_for(lambda: self._held >= count, timeout)
