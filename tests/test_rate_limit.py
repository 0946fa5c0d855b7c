"""The client's own rate limit (``VERILOCK_RATE_LIMIT_PER_MINUTE``) and retry give-ups."""

from __future__ import annotations

import email.utils
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.test import override_settings

from verilock_django import client as client_module
from verilock_django.client import RateLimiter, VerilockClient
from verilock_django.exceptions import RateLimitedError, ServerError

from .conftest import API_URL, SEED_ID

URL = f"{API_URL}/sessions/{SEED_ID}"


class FakeClock:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    # The limiter sleeps through the client module's `time`: replace that reference only, so
    # threads other tests left behind keep their real `time.sleep`.
    fake_time = SimpleNamespace(sleep=fake.sleep, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr(client_module, "time", fake_time)
    return fake


def use_fake_clock(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    """Make the limiters the client creates read the fake clock."""
    monkeypatch.setattr(
        client_module, "RateLimiter", lambda per_minute: RateLimiter(per_minute, clock=clock)
    )


def test_limiter_lets_a_minutes_quota_through_then_waits_for_the_window(clock: FakeClock) -> None:
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert clock.slept == []

    clock.now += 20.0
    # The 4th request waits until the 1st leaves the 60 s window: 40 s more.
    assert limiter.acquire() == pytest.approx(40.0)
    assert clock.slept == [pytest.approx(40.0)]


def test_limiter_is_a_sliding_window_not_a_burst_bucket(clock: FakeClock) -> None:
    limiter = RateLimiter(2, clock=clock)
    limiter.acquire()
    clock.now += 59.0
    limiter.acquire()
    clock.now += 2.0  # the first request left the window; the second has not
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(58.0)


def test_client_waits_for_its_rate_limit_between_requests(
    clock: FakeClock, mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_clock(monkeypatch, clock)
    mocked.get(URL, json={"id": SEED_ID})
    api = VerilockClient()
    with override_settings(VERILOCK_RATE_LIMIT_PER_MINUTE=2):
        for _ in range(3):
            api.get_session(SEED_ID)
    assert len(mocked.calls) == 3
    assert clock.slept == [pytest.approx(60.0)]
    assert api.request_count == 3


def test_changing_the_limit_applies_to_the_next_request(
    clock: FakeClock, mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_clock(monkeypatch, clock)
    mocked.get(URL, json={"id": SEED_ID})
    api = VerilockClient()
    with override_settings(VERILOCK_RATE_LIMIT_PER_MINUTE=1):
        api.get_session(SEED_ID)
    with override_settings(VERILOCK_RATE_LIMIT_PER_MINUTE=None):
        api.get_session(SEED_ID)
        api.get_session(SEED_ID)
    assert clock.slept == []


def test_list_sessions_sends_the_upper_date_bound(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API_URL}/sessions", json={"data": [], "meta": {}})
    VerilockClient().list_sessions(created_to="2026-03-31")
    query = parse_qs(urlsplit(str(mocked.calls[0].request.url)).query)
    assert query == {"page": ["1"], "per_page": ["100"], "to": ["2026-03-31"]}


def test_server_errors_past_the_retries_surface_as_server_error(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(URL, status=503, json={"error": "server_error", "message": "down"})
    with (
        override_settings(VERILOCK_MAX_RETRIES=2, VERILOCK_RETRY_BACKOFF=0.0),
        pytest.raises(ServerError) as caught,
    ):
        VerilockClient().get_session(SEED_ID)
    # The last answer is reported as it came, with the provider's error code.
    assert (caught.value.session_id, caught.value.error_code) == (SEED_ID, "server_error")
    assert len(mocked.calls) == 3


def test_unparseable_retry_after_is_ignored(mocked: responses.RequestsMock) -> None:
    mocked.get(
        URL,
        status=429,
        headers={"Retry-After": "soon"},
        json={"error": "rate_limited", "details": {"retry_after": "later"}},
    )
    with pytest.raises(RateLimitedError) as caught:
        VerilockClient().get_session(SEED_ID)
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0.5", 0.5),
        (" 7 ", 7.0),
        ("-1", None),
        ("inf", None),
        ("nan", None),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ],
)
def test_retry_after_forms_are_read_into_the_error(
    mocked: responses.RequestsMock, header: str, expected: float | None
) -> None:
    mocked.get(URL, status=429, headers={"Retry-After": header}, json={"error": "rate_limited"})
    with pytest.raises(RateLimitedError) as caught:
        VerilockClient().get_session(SEED_ID)
    assert caught.value.retry_after == expected


def test_retry_after_as_a_future_date_is_read_as_seconds_from_now(
    mocked: responses.RequestsMock,
) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    mocked.get(URL, status=429, headers={"Retry-After": when}, json={"error": "rate_limited"})
    with pytest.raises(RateLimitedError) as caught:
        VerilockClient().get_session(SEED_ID)
    assert caught.value.retry_after == pytest.approx(120, abs=5)
