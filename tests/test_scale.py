"""Overlapping refresh runs (cron + cron, cron + worker) on PostgreSQL: no double fetch.

Four runs start at once over the same unfinished sessions, each on its own thread with its
own database connection, against the fake API on a loopback port; the fake's per-session
request counts prove every session was fetched exactly once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from verilock_django.models import Session
from verilock_django.refresh import refresh_unfinished
from verilock_django.store import store_session
from verilock_django.sync import SyncReport
from verilock_django.testing.server import FakeVerilockServer

from .concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = 4
SESSIONS = 80


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "needs PostgreSQL: concurrent claiming by several connections (SQLite "
            "serialises the whole database and has no SKIP LOCKED)"
        )


def mirrored(server: FakeVerilockServer) -> list[str]:
    """Unfinished sessions stored locally; then every one of them changes upstream.

    Half move on to another unfinished status, half finish: both kinds must be fetched once.
    """
    state = server.state
    ids = []
    for index in range(SESSIONS):
        fake = state.add_session(
            status="created" if index % 2 else "processing",
            created_at=timezone.now() - dt.timedelta(hours=2, seconds=index),
        )
        store_session(fake.payload())
        ids.append(fake.id)
    Session.objects.update(next_check_at=None)
    state.advance_many(ids=ids)
    state.reset_counters()
    state.latency_ms = 20  # fetches overlap across the runs
    return ids


def run_at_once(**options: Any) -> list[SyncReport]:
    return run_together(lambda: refresh_unfinished(concurrency=4, **options), RUNS)


@pytest.mark.parametrize("full", [False, True], ids=["list", "full"])
@pytest.mark.parametrize("claiming", ["skip-locked", "conditional-update"])
def test_overlapping_runs_fetch_each_session_once(
    verilock_server: FakeVerilockServer,
    monkeypatch: pytest.MonkeyPatch,
    full: bool,
    claiming: str,
) -> None:
    if claiming == "conditional-update":
        # The claim used on databases without SKIP LOCKED, under real concurrency.
        monkeypatch.setattr(type(connection.features), "has_select_for_update_skip_locked", False)
    ids = mirrored(verilock_server)

    reports = run_at_once(full=full)

    counts = {session_id: verilock_server.state.requests_for(session_id) for session_id in ids}
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    assert sum(report.synced for report in reports) == SESSIONS
    assert not any(report.failed for report in reports)
    for session_id in ids:
        stored = Session.objects.get(pk=session_id)
        assert stored.status == verilock_server.state.get(session_id).status
        assert stored.lease_expires_at is None
