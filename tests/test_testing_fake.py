"""The facade's request pipeline: the key, request ids and latency, called directly."""

from __future__ import annotations

import time

import pytest

from verilock_django.testing import FakeVerilock

from .fakes import KEY, get


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}, {"x-api-key": KEY}],
    ids=["bearer", "x-api-key", "lowercase"],
)
def test_accepts_either_documented_auth_header(
    fake: FakeVerilock, headers: dict[str, str]
) -> None:
    session = fake.add_session()
    response = fake.handle("GET", f"/sessions/{session.id}", "", headers, b"")
    assert response.status == 200
    assert response.json()["id"] == session.id


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": KEY}, {}],
    ids=["bearer", "x-api-key", "no-bearer-prefix", "missing"],
)
def test_rejects_a_wrong_or_missing_key_with_documented_401(
    fake: FakeVerilock, headers: dict[str, str]
) -> None:
    response = fake.handle("GET", "/sessions", "", headers, b"")
    assert response.status == 401
    assert response.json() == {
        "error": "authentication_error",
        "message": "Invalid or missing API key.",
        "details": None,
    }
    assert response.headers["X-Request-Id"].startswith("req_")


def test_auth_styles_can_be_restricted_to_bearer() -> None:
    fake = FakeVerilock(api_key=KEY, auth_styles=("bearer",))
    assert get(fake, "/sessions", **{"X-API-Key": KEY}).status == 401
    assert get(fake, "/sessions").status == 200


def test_every_response_has_a_distinct_request_id(fake: FakeVerilock) -> None:
    ids = {get(fake, "/sessions").headers["X-Request-Id"] for _ in range(5)}
    ids.add(get(fake, "/sessions/nope").headers["X-Request-Id"])
    assert len(ids) == 6


def test_latency_delays_the_answer(fake: FakeVerilock) -> None:

    fake.latency_ms = 120
    started = time.monotonic()
    assert get(fake, "/sessions").status == 200
    assert time.monotonic() - started >= 0.12
