"""What the fake API answers: :class:`FakeResponse` and the documented error body.

Every answer carries a fresh ``X-Request-Id``; every error is
``{"error": <code>, "message": ..., "details": ...}`` with the code Verilock uses for that
HTTP status.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = ["REASONS", "FakeResponse", "error_reply", "json_reply", "request_id"]

_ERROR_CODES: Final[dict[int, str]] = {
    400: "bad_request",
    401: "authentication_error",
    402: "insufficient_balance",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "rate_limit_exceeded",
}
#: HTTP reason phrases of the statuses the fake sends.
REASONS: Final[dict[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class FakeResponse:
    """What the fake answers; ``fault`` asks the transport to time out or reset instead."""

    status: int
    headers: dict[str, str]
    body: bytes
    fault: Literal["timeout", "reset"] | None = None

    def json(self) -> Any:
        """Decode the body as JSON (raises on the malformed-JSON fault, on purpose)."""
        return json.loads(self.body)


def request_id(rng: random.Random) -> str:
    """A fresh ``req_…`` id drawn from ``rng`` (reproducible with a seeded fake)."""
    return f"req_{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}"


def json_reply(
    rng: random.Random, status: int, data: Any, headers: Mapping[str, str] | None = None
) -> FakeResponse:
    """A JSON answer with a request id and any extra ``headers``."""
    return FakeResponse(
        status,
        {"Content-Type": "application/json", "X-Request-Id": request_id(rng), **(headers or {})},
        json.dumps(data).encode(),
    )


def error_reply(
    rng: random.Random,
    status: int,
    message: str,
    details: Any = None,
    *,
    retry_after: int | None = None,
) -> FakeResponse:
    """The documented error body for ``status``; ``retry_after`` adds ``Retry-After``."""
    code = _ERROR_CODES.get(status, "server_error" if status >= 500 else "error")
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    body = {"error": code, "message": message, "details": details}
    return json_reply(rng, status, body, headers)
