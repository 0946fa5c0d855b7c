"""The fake API's sliding-window rate limit."""

from __future__ import annotations

from verilock_django.testing import FakeVerilock

from .fakes import KEY, get


def test_rate_limit_answers_429_with_retry_after_and_documented_body() -> None:
    fake = FakeVerilock(api_key=KEY, rate_limit_per_minute=3)
    remaining = [get(fake, "/sessions").headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    limited = get(fake, "/sessions")
    assert limited.status == 429
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert limited.json() == {
        "error": "rate_limit_exceeded",
        "message": f"Too many requests. Please retry after {retry_after} seconds.",
        "details": {"retry_after": retry_after},
    }


def test_requests_with_a_wrong_key_do_not_use_up_the_rate_limit() -> None:
    fake = FakeVerilock(api_key=KEY, rate_limit_per_minute=1)
    for _ in range(3):
        assert get(fake, "/sessions", Authorization="Bearer nope").status == 401
    assert get(fake, "/sessions").status == 200
