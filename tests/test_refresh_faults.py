"""Every fault the network and the provider can produce, over a real loopback socket.

Each test runs a batch refresh of three sessions while one of them (or the list call)
misbehaves, and checks that the stored data is right and the batch finished.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests
from django.utils import timezone

from verilock_django.client import VerilockClient, get_client
from verilock_django.models import Session
from verilock_django.refresh import refresh_unfinished
from verilock_django.store import store_session
from verilock_django.testing.server import FakeVerilockServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def retrying(settings: Any, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Two retries per request; urllib3's sleeps are recorded instead of slept."""
    settings.VERILOCK_MAX_RETRIES = 2
    settings.VERILOCK_RETRY_BACKOFF = 0.5
    settings.VERILOCK_TIMEOUT = 0.5
    slept: list[float] = []
    monkeypatch.setattr("urllib3.util.retry.time.sleep", slept.append)
    return slept


def batch(server: FakeVerilockServer) -> list[str]:
    """Three unfinished sessions, stored as they were; then all three advance upstream."""
    ids = []
    for index in range(3):
        fake = server.state.add_session(
            status="processing", created_at=timezone.now() - dt.timedelta(hours=index + 1)
        )
        store_session(fake.payload())
        ids.append(fake.id)
    # Checked by id (not through the list), so each fault hits the session it names.
    Session.objects.update(next_check_at=None)
    for session_id in ids:
        server.state.advance(session_id)
    server.state.reset_counters()
    return ids


def refresh_by_id() -> Any:
    return refresh_unfinished(full=True, concurrency=2)


def assert_upstream_state_stored(server: FakeVerilockServer, ids: list[str]) -> None:
    for session_id in ids:
        stored = Session.objects.get(pk=session_id)
        assert stored.status == server.state.get(session_id).status
        assert stored.results.count() == 5
        assert stored.lease_expires_at is None


def test_429_with_retry_after_is_waited_out_then_retried(
    verilock_server: FakeVerilockServer, retrying: list[float], settings: Any
) -> None:
    settings.VERILOCK_RETRY_AFTER_MAX = 5.0
    ids = batch(verilock_server)
    verilock_server.state.inject("status", session_id=ids[1], status=429, retry_after=2)

    report = refresh_by_id()

    assert report.synced == 3 and not report.failed
    assert verilock_server.state.requests_for(ids[1]) == 2
    assert any(s == pytest.approx(2.0, abs=0.05) for s in retrying)  # Retry-After honoured
    assert_upstream_state_stored(verilock_server, ids)


def test_a_huge_retry_after_is_capped(
    verilock_server: FakeVerilockServer, retrying: list[float], settings: Any
) -> None:
    settings.VERILOCK_RETRY_AFTER_MAX = 5.0
    ids = batch(verilock_server)
    verilock_server.state.inject("status", session_id=ids[0], status=429, retry_after=86_400)

    report = refresh_by_id()

    assert report.synced == 3
    # A day-long Retry-After would have stalled the run.
    assert max(retrying) == pytest.approx(5.0, abs=0.05)
    assert_upstream_state_stored(verilock_server, ids)


def test_503_then_success(verilock_server: FakeVerilockServer, retrying: list[float]) -> None:
    ids = batch(verilock_server)
    verilock_server.state.fail_next(ids[2], status=503)

    report = refresh_by_id()

    assert report.synced == 3 and not report.failed
    assert verilock_server.state.requests_for(ids[2]) == 2
    assert_upstream_state_stored(verilock_server, ids)


def test_persistent_5xx_fails_that_session_only(
    verilock_server: FakeVerilockServer, retrying: list[float]
) -> None:
    ids = batch(verilock_server)
    before = Session.objects.get(pk=ids[0])
    verilock_server.state.fail_next(ids[0], status=503, times=10)

    report = refresh_by_id()

    assert list(report.failed) == [ids[0]]
    assert verilock_server.state.requests_for(ids[0]) == 3  # 1 + 2 retries
    after = Session.objects.get(pk=ids[0])
    assert (after.status, after.payload) == (before.status, before.payload)
    assert "503" in after.last_sync_error or "retries" in after.last_sync_error
    assert after.lease_expires_at is None
    assert_upstream_state_stored(verilock_server, ids[1:])


def test_timeout_is_retried(verilock_server: FakeVerilockServer, retrying: list[float]) -> None:
    ids = batch(verilock_server)
    verilock_server.state.hang_seconds = 5.0
    verilock_server.state.timeout_next(ids[1])

    report = refresh_by_id()

    assert report.synced == 3 and not report.failed
    assert verilock_server.state.requests_for(ids[1]) == 2
    assert_upstream_state_stored(verilock_server, ids)


def test_timeouts_without_retries_fail_that_session_only(
    verilock_server: FakeVerilockServer, settings: Any
) -> None:
    settings.VERILOCK_TIMEOUT = 0.3
    ids = batch(verilock_server)
    verilock_server.state.hang_seconds = 5.0
    verilock_server.state.timeout_next(ids[1])

    report = refresh_by_id()

    assert list(report.failed) == [ids[1]]
    assert "Timed out" in report.failed[ids[1]]
    assert Session.objects.get(pk=ids[1]).status == "processing"  # unchanged
    assert_upstream_state_stored(verilock_server, [ids[0], ids[2]])


def test_connection_reset_is_retried(
    verilock_server: FakeVerilockServer, retrying: list[float]
) -> None:
    ids = batch(verilock_server)
    verilock_server.state.reset_next(ids[0])

    report = refresh_by_id()

    assert report.synced == 3 and not report.failed
    assert verilock_server.state.requests_for(ids[0]) == 2
    assert_upstream_state_stored(verilock_server, ids)


@pytest.mark.parametrize("fault", ["malformed_json", "html"])
def test_unusable_bodies_leave_stored_data_untouched(
    verilock_server: FakeVerilockServer, fault: str
) -> None:
    ids = batch(verilock_server)
    before = Session.objects.get(pk=ids[1])
    verilock_server.state.inject(fault, session_id=ids[1], status=502)  # type: ignore[arg-type]

    report = refresh_by_id()

    assert list(report.failed) == [ids[1]]
    after = Session.objects.get(pk=ids[1])
    assert (after.status, after.payload) == (before.status, before.payload)
    assert after.results.count() == 5
    assert after.last_sync_error
    assert_upstream_state_stored(verilock_server, [ids[0], ids[2]])


def test_faulty_list_page_falls_back_to_fetching_old_data_by_id(
    verilock_server: FakeVerilockServer,
) -> None:
    ids = batch(verilock_server)
    Session.objects.update(data_fetched_at=timezone.now() - dt.timedelta(hours=1))
    verilock_server.state.malformed_next()  # the list call is the first request

    report = refresh_unfinished()

    assert report.list_error is not None
    assert report.synced == 3 and not report.failed
    assert_upstream_state_stored(verilock_server, ids)


def test_a_post_is_never_sent_twice(
    verilock_server: FakeVerilockServer, retrying: list[float]
) -> None:
    http = VerilockClient(max_retries=3)._http()
    verilock_server.state.fail_next(status=503)

    response = http.post(f"{verilock_server.url}/sessions", json={}, timeout=2)

    assert response.status_code == 503
    assert verilock_server.state.total_requests == 1

    verilock_server.state.reset_next()
    with pytest.raises(requests.exceptions.ConnectionError):
        http.post(f"{verilock_server.url}/sessions", json={}, timeout=2)
    assert verilock_server.state.total_requests == 2


def test_requests_used_counts_retries(
    verilock_server: FakeVerilockServer, retrying: list[float]
) -> None:
    ids = batch(verilock_server)
    verilock_server.state.fail_next(ids[0], status=503)
    client = get_client()

    report = refresh_unfinished(full=True, client=client)

    assert report.requests == verilock_server.state.total_requests == 4
