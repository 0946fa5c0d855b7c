"""The fake API's request log: what a test's code asked for, and how often per session.

Control calls (``/_fake/*``) are never logged; every API request is, failed ones included.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Literal

__all__ = ["AuthStyle", "RecordedRequest", "RequestLog"]

AuthStyle = Literal["bearer", "x-api-key"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake API received, for assertions."""

    method: str
    path: str
    query: str
    session_id: str | None
    status: int
    auth_style: AuthStyle | None
    fault: str | None


class RequestLog:
    """Counters (total and per session id) and the list of answered requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._total = 0
        self._requests: list[RecordedRequest] = []

    def count(self, session_id: str | None) -> None:
        """Count one arriving request (before it is answered, so hung ones count too)."""
        with self._lock:
            self._total += 1
            if session_id:
                self._counts[session_id] += 1

    def record(self, request: RecordedRequest) -> None:
        """Log one answered request."""
        with self._lock:
            self._requests.append(request)

    def requests_for(self, session_id: str) -> int:
        """How many API requests named this session id (failed ones included)."""
        with self._lock:
            return self._counts[session_id]

    @property
    def total(self) -> int:
        """How many API requests were received in total."""
        with self._lock:
            return self._total

    @property
    def by_session(self) -> dict[str, int]:
        """Request counts per session id."""
        with self._lock:
            return dict(self._counts)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every answered API request, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Zero the counters and forget the log."""
        with self._lock:
            self._counts.clear()
            self._total = 0
            self._requests.clear()
