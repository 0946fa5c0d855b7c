"""Calling the fake Verilock directly (no network): the key and request helpers tests share."""

from __future__ import annotations

import json
from typing import Any

from verilock_django.testing import FakeResponse, FakeVerilock

KEY = "qi_test_key"
BEARER = {"Authorization": f"Bearer {KEY}"}


def _raw(body: Any) -> bytes:
    if body is None:
        return b""
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def get(fake: FakeVerilock, path: str, query: str = "", **headers: str) -> FakeResponse:
    """``GET`` an API path with the test key (or with ``headers`` instead)."""
    return fake.handle("GET", path, query, headers or BEARER, b"")


def post(fake: FakeVerilock, path: str, data: Any) -> FakeResponse:
    """``POST`` ``data`` as JSON to an API path with the test key."""
    return fake.handle("POST", path, "", BEARER, json.dumps(data).encode())


def api(
    fake: FakeVerilock, method: str, path: str, body: Any = None, query: str = ""
) -> FakeResponse:
    """Any API request with the test key; ``body`` is JSON-encoded unless it is bytes."""
    return fake.handle(method, path, query, {"X-API-Key": KEY}, _raw(body))


def control(fake: FakeVerilock, method: str, path: str, body: Any = None) -> FakeResponse:
    """A control request (``path`` relative to ``/_fake``); no key needed."""
    return fake.handle_control(method, path, "", {}, _raw(body))
