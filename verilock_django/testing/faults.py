"""The fake API's fault plan: make the next requests misbehave the way production does.

Kinds: ``status`` (documented error body with ``status``; 429 adds ``Retry-After``),
``timeout`` (no answer), ``reset`` (connection reset), ``malformed_json`` (200 with a
truncated JSON body), ``html`` (an HTML error page with ``status``, as a proxy would send),
``latency`` (answer normally, late), ``answer`` (exactly the given status and body: a
payload the account would never produce). A fault targets one session id or any request, and
fires for its next ``times`` matching requests, first planned first.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Final, Literal

from .replies import REASONS, FakeResponse, error_reply, request_id

__all__ = ["Fault", "FaultKind", "FaultPlan", "fault_reply"]

FaultKind = Literal["status", "timeout", "reset", "malformed_json", "html", "latency", "answer"]

_MESSAGES: Final[dict[int, str]] = {
    401: "Invalid or missing API key.",
    404: "Not found.",
    500: "An unexpected error occurred.",
    503: "The service is temporarily unavailable.",
}


@dataclass
class Fault:
    """One planned fault and how many more requests it applies to."""

    kind: FaultKind
    remaining: int
    session_id: str | None
    status: int = 503
    latency_ms: int = 0
    retry_after: int = 30
    #: The body an ``answer`` fault sends, as bytes.
    body: bytes = b""


class FaultPlan:
    """The pending faults, consumed one request at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def inject(
        self,
        kind: FaultKind,
        *,
        session_id: str | None = None,
        times: int = 1,
        status: int = 503,
        latency_ms: int = 0,
        retry_after: int = 30,
        body: bytes = b"",
    ) -> None:
        """Make the next ``times`` API requests (for ``session_id``, or any) misbehave."""
        with self._lock:
            self._faults.append(
                Fault(kind, times, session_id, status, latency_ms, retry_after, body)
            )

    def take(self, session_id: str | None) -> Fault | None:
        """The fault that applies to a request for ``session_id``, counting it as used."""
        with self._lock:
            for fault in self._faults:
                if fault.session_id is None or fault.session_id == session_id:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
            return None

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)


def fault_reply(fault: Fault, rng: random.Random) -> FakeResponse:
    """The answer a fault produces (every kind but ``latency``, which answers normally)."""
    if fault.kind in ("timeout", "reset"):
        return FakeResponse(0, {}, b"", fault="timeout" if fault.kind == "timeout" else "reset")
    if fault.kind == "answer":
        return FakeResponse(
            fault.status,
            {"Content-Type": "application/json", "X-Request-Id": request_id(rng)},
            fault.body,
        )
    if fault.kind == "malformed_json":
        return FakeResponse(
            200,
            {"Content-Type": "application/json", "X-Request-Id": request_id(rng)},
            b'{"id": "ses_truncated", "status": "appro',
        )
    if fault.kind == "html":
        reason = REASONS.get(fault.status, "Error")
        page = (
            f"<!DOCTYPE html><html><head><title>{fault.status} {reason}</title></head>"
            f"<body><h1>{fault.status} {reason}</h1><hr><p>nginx</p></body></html>"
        )
        return FakeResponse(
            fault.status,
            {"Content-Type": "text/html; charset=utf-8", "X-Request-Id": request_id(rng)},
            page.encode(),
        )
    if fault.status == 429:
        return error_reply(
            rng,
            429,
            f"Too many requests. Please retry after {fault.retry_after} seconds.",
            {"retry_after": fault.retry_after},
            retry_after=fault.retry_after,
        )
    return error_reply(
        rng, fault.status, _MESSAGES.get(fault.status, REASONS.get(fault.status, "Error."))
    )
