"""The rate-limit window: a sliding minute, paced by the API's own headers, per process or
shared through Redis."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
import responses
from django.test import override_settings

from verilock_django.client import VerilockClient
from verilock_django.exceptions import RateLimitedError
from verilock_django.ratelimit import (
    DEFAULT_PER_MINUTE,
    MAX_ANNOUNCED,
    WINDOW,
    LocalWindow,
    RedisWindow,
    announced,
)
from verilock_django.refresh import refresh_unfinished

from .conftest import API_URL, SEED_ID
from .test_refresh import mirror

URL = f"{API_URL}/sessions/{SEED_ID}"
REDIS_URL = "redis://127.0.0.1:6379/15"


class FakeClock:
    """A monotonic clock that only moves when the test's own thread sleeps. ``time.sleep``
    is patched process-wide, so another thread's sleep (a retry backoff in a thread an
    earlier test left finishing) sleeps for real instead of moving this clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._thread = threading.current_thread()
        self._real_sleep = time.sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if threading.current_thread() is not self._thread:
            self._real_sleep(seconds)
            return
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("verilock_django.ratelimit.time.sleep", fake.sleep)
    return fake


def test_a_minutes_quota_goes_through_then_the_window_waits(clock: FakeClock) -> None:
    window = LocalWindow(clock=clock)
    assert [window.acquire(3) for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now += 20.0
    # The 4th request waits until the 1st leaves the window (60 s and a 1 s margin).
    assert window.acquire(3) == pytest.approx(WINDOW - 20.0) == pytest.approx(41.0)


def test_the_window_slides_rather_than_refilling_a_bucket(clock: FakeClock) -> None:
    window = LocalWindow(clock=clock)
    sent = []
    for _ in range(12):
        window.acquire(5)
        sent.append(clock.now)
        clock.now += 1.0  # each request takes a second
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 60) <= 5
    assert sent[5] == 1000.0 + WINDOW


def test_a_low_remaining_fills_the_window_so_this_process_waits(clock: FakeClock) -> None:
    window = LocalWindow(clock=clock)
    window.acquire(10)
    # Another process spent the key: the API has 2 left where this window thought 9.
    window.observe(10, 2, None)
    assert [window.acquire(10) for _ in range(2)] == [0.0, 0.0]
    assert window.acquire(10) == pytest.approx(WINDOW)


def test_retry_after_holds_every_thread_for_that_long(clock: FakeClock) -> None:
    window = LocalWindow(clock=clock)
    window.observe(120, None, 7.0)
    assert window.acquire(120) == pytest.approx(7.0)
    assert window.acquire(120) == 0.0  # the hold is over


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "12"}, (600, 12, None)),
        ({"Retry-After": "30"}, (None, None, 30.0)),
        ({"X-RateLimit-Limit": "lots", "X-RateLimit-Remaining": "-3"}, (None, 0, None)),
        ({"X-RateLimit-Remaining": "nan"}, (None, None, None)),
        # Beyond any quota: read as the most a window counts, so arithmetic on it stays finite.
        (
            {"X-RateLimit-Limit": "1e308", "X-RateLimit-Remaining": "9" * 300},
            (MAX_ANNOUNCED, MAX_ANNOUNCED, None),
        ),
        ({}, (None, None, None)),
    ],
)
def test_headers_are_read_tolerantly(
    headers: dict[str, str], expected: tuple[Any, Any, Any]
) -> None:
    assert announced(headers) == expected


def test_without_headers_or_setting_the_client_paces_to_the_documented_quota(
    clock: FakeClock, mocked: responses.RequestsMock
) -> None:
    mocked.get(URL, json={"id": SEED_ID})
    api = VerilockClient(window=LocalWindow(clock=clock))
    with override_settings(VERILOCK_RATE_LIMIT_PER_MINUTE=None):
        assert api.rate_limit == DEFAULT_PER_MINUTE == 120
        for _ in range(121):
            api.get_session(SEED_ID)
    assert clock.slept == [pytest.approx(WINDOW)]  # the 121st waited for the 1st


def test_the_client_follows_the_announced_limit_and_the_lower_setting(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(URL, json={"id": SEED_ID}, headers={"X-RateLimit-Limit": "600"})
    api = VerilockClient()
    with override_settings(VERILOCK_RATE_LIMIT_PER_MINUTE=None):
        api.get_session(SEED_ID)
        assert api.rate_limit == 600
    with override_settings(VERILOCK_RATE_LIMIT_PER_MINUTE=100):
        assert api.rate_limit == 100


def test_a_new_client_starts_from_the_limit_others_sharing_its_window_heard(
    mocked: responses.RequestsMock, settings: Any
) -> None:
    settings.VERILOCK_RATE_LIMIT_PER_MINUTE = None
    mocked.get(URL, json={"id": SEED_ID}, headers={"X-RateLimit-Limit": "900"})
    shared = LocalWindow()
    VerilockClient(window=shared).get_session(SEED_ID)
    # Not 120: a worker that starts late must not wait for a window others filled to 900.
    assert VerilockClient(window=shared).rate_limit == 900
    assert VerilockClient().rate_limit == DEFAULT_PER_MINUTE


def test_a_429_holds_the_next_request_for_retry_after_capped(
    clock: FakeClock, mocked: responses.RequestsMock, settings: Any
) -> None:
    settings.VERILOCK_RETRY_AFTER_MAX = 20.0
    mocked.get(
        URL, status=429, json={"error": "rate_limit_exceeded"}, headers={"Retry-After": "90"}
    )
    api = VerilockClient(window=LocalWindow(clock=clock))
    with pytest.raises(RateLimitedError):
        api.get_session(SEED_ID)
    with pytest.raises(RateLimitedError):
        api.get_session(SEED_ID)
    assert clock.slept == [pytest.approx(20.0)]


def test_a_retried_429_waits_once_not_twice(
    mocked: responses.RequestsMock, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.VERILOCK_MAX_RETRIES = 1
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    mocked.get(
        URL, status=429, json={"error": "rate_limit_exceeded"}, headers={"Retry-After": "3"}
    )
    mocked.get(URL, json={"id": SEED_ID})
    VerilockClient().get_session(SEED_ID)
    assert len(mocked.calls) == 2
    assert slept == [pytest.approx(3.0, abs=0.05)]


# -- shared through Redis ----------------------------------------------------------------


@pytest.fixture
def redis_window() -> Any:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.RedisError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    window = RedisWindow(REDIS_URL, f"test-{uuid.uuid4().hex}")
    yield window
    window._redis.delete(*window._keys)


def test_the_redis_window_is_one_budget_for_every_client(redis_window: RedisWindow) -> None:
    other = RedisWindow(REDIS_URL, redis_window.key.rpartition(":")[2])
    # Without waiting: count the admissions the script grants to two clients together.
    granted = [
        int(w._acquire(keys=redis_window._keys, args=[6, w._member()]) == 0)
        for w in (redis_window, other) * 5
    ]
    assert sum(granted) == 6


def test_the_redis_window_pads_for_remaining_and_holds_for_retry_after(
    redis_window: RedisWindow,
) -> None:
    assert redis_window.acquire(10) == 0.0
    redis_window.observe(10, 3, None)
    redis_window.observe(10, None, 0.2)
    assert 0 < redis_window._redis.pttl(redis_window.key + ":hold") <= 200
    assert redis_window.acquire(10) >= 0.001  # held, then admitted
    assert admitted(redis_window, 10) == 2  # 1 sent, 6 padded, 1 after the hold


def admitted(window: RedisWindow, limit: int) -> int:
    """How many more requests the window admits now (each admission taken, never waited)."""
    count = 0
    while int(window._acquire(keys=window._keys, args=[limit, window._member()])) == 0:
        count += 1
    return count


def test_padding_for_a_huge_announced_limit_costs_redis_one_entry(
    redis_window: RedisWindow,
) -> None:
    # "X-RateLimit-Limit: 1000000, X-RateLimit-Remaining: 0": one member per padded request
    # blocked the shared Redis for seconds (for the 10**9 a header may announce: an hour).
    limit = 10**6
    assert redis_window.acquire(limit) == 0.0
    redis_window.observe(limit, 0, None)
    assert redis_window._redis.zcard(redis_window.key) <= 2
    assert admitted(redis_window, limit) == 0  # full, as the API says
    # A minute later (their times moved back) both leave the window, the padding whole.
    for member in redis_window._redis.zrange(redis_window.key, 0, -1):
        redis_window._redis.zadd(redis_window.key, {member: 0}, xx=True)
    assert admitted(redis_window, 3) == 3
    assert not redis_window._redis.exists(redis_window.key + ":padded")


def test_the_redis_window_shares_the_announced_limit(redis_window: RedisWindow) -> None:
    assert redis_window.known_limit() is None
    redis_window.remember_limit(900)
    other = RedisWindow(REDIS_URL, redis_window.key.rpartition(":")[2])
    assert other.known_limit() == 900
    redis_window._redis.delete(redis_window.key + ":limit")


def test_the_client_uses_redis_when_configured(
    redis_window: RedisWindow, mocked: responses.RequestsMock, settings: Any
) -> None:
    settings.VERILOCK_RATE_LIMIT_REDIS_URL = REDIS_URL
    mocked.get(URL, json={"id": SEED_ID})
    api = VerilockClient()
    api.get_session(SEED_ID)
    assert api._shared_window() is VerilockClient()._shared_window()
    assert isinstance(api._shared_window(), RedisWindow)


# -- the documented quota, default settings ------------------------------------------------


class VirtualTime:
    """One clock for the client's window and the fake's limit; sleeping advances it."""

    def __init__(self) -> None:
        self.now = 5000.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(seconds, 0.0)


@pytest.mark.django_db
@pytest.mark.verilock(rate_limit_per_minute=120)
def test_a_default_run_against_the_documented_quota_fails_nothing(
    verilock_api: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The library's defaults, not the suite's: no configured limit, 3 retries with backoff.
    for name in ("RATE_LIMIT_PER_MINUTE", "MAX_RETRIES", "RETRY_BACKOFF"):
        delattr(settings, f"VERILOCK_{name}")
    virtual = VirtualTime()
    monkeypatch.setattr("verilock_django.ratelimit.time", virtual)
    monkeypatch.setattr("verilock_django.testing.ratelimit.time", virtual)
    monkeypatch.setattr("urllib3.util.retry.time", virtual)
    ids = mirror(verilock_api, 1500)
    verilock_api.advance_many(ids=ids[::5])  # 300 changed: 15 list pages + 300 fetches

    report = refresh_unfinished(client=VerilockClient(window=LocalWindow(clock=virtual.monotonic)))

    answered = verilock_api.requests
    assert report.failed == {} and report.list_error is None
    assert report.synced == 300
    too_many = sum(1 for request in answered if request.status == 429)
    assert too_many <= 0.02 * len(answered)
    assert virtual.now - 5000.0 >= 60 * (len(answered) // 120 - 1)  # it was paced, not lucky
