"""The sync pipeline stores its answers in batches: by count, by age, and all on the way out."""

from __future__ import annotations

from concurrent.futures import wait
from typing import Any

import pytest

from verilock_django.client import get_client
from verilock_django.models import Session
from verilock_django.refresh import refresh_unfinished
from verilock_django.sync import SyncPipeline, SyncReport, sync_sessions
from verilock_django.testing.responses_api import InProcessVerilock

from .conftest import statements

pytestmark = pytest.mark.django_db


def changed_sessions(api: InProcessVerilock, count: int) -> list[str]:
    """``count`` sessions stored as processing, each finished at the fake since."""
    ids = [api.add_session(status="processing").id for _ in range(count)]
    sync_sessions(ids)
    for session_id in ids:
        api.complete(session_id, "approved")
    return ids


def test_many_answers_are_stored_in_one_transaction(
    verilock_api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch, whole_statements: None
) -> None:
    ids = changed_sessions(verilock_api, 40)
    monkeypatch.setattr(SyncPipeline, "BATCH_SECONDS", 3600.0)  # batches close by count

    with statements() as sql:
        report = sync_sessions(ids, concurrency=4)

    assert report.updated == 40 and not report.failed
    assert Session.objects.filter(status="approved").count() == 40
    # The first answer is stored alone (it proves the key), the other 39 in one batch;
    # one by one would be at least three statements per session.
    assert len(sql) <= 10, [statement[:60] for statement in sql]


def test_a_batch_closes_at_its_size(
    verilock_api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = changed_sessions(verilock_api, 10)
    monkeypatch.setattr(SyncPipeline, "BATCH_SIZE", 3)
    monkeypatch.setattr(SyncPipeline, "BATCH_SECONDS", 3600.0)
    stored: list[int] = []

    report = sync_sessions(
        ids, concurrency=2, on_progress=lambda report, total: stored.append(report.fetched)
    )

    assert report.updated == 10
    # The first alone, then three batches of three: progress is told after each.
    assert stored == [1, 4, 7, 10]


def test_answers_wait_for_their_batch_only_until_it_is_due(
    verilock_api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = changed_sessions(verilock_api, 6)
    monkeypatch.setattr(SyncPipeline, "BATCH_SECONDS", 3600.0)
    report = SyncReport()
    with SyncPipeline(get_client(), report, concurrency=2) as pipeline:
        for session_id in ids:
            pipeline.submit(session_id)
        wait(list(pipeline._in_flight))  # every answer has arrived
        pipeline.drain(keep=100)
        assert report.fetched == 1  # only the first, which proved the key; the rest wait

        monkeypatch.setattr(SyncPipeline, "BATCH_SECONDS", 0.0)  # ... until the batch is due
        pipeline.drain(keep=100)
        assert report.fetched == 6
    assert report.updated == 6


def test_answers_collected_before_an_error_are_stored_on_the_way_out(
    verilock_api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = changed_sessions(verilock_api, 5)
    monkeypatch.setattr(SyncPipeline, "BATCH_SECONDS", 3600.0)
    report = SyncReport()

    def interrupted() -> None:
        with SyncPipeline(get_client(), report) as pipeline:
            for session_id in ids:
                pipeline.submit(session_id)
            wait(list(pipeline._in_flight))
            pipeline.drain(keep=100)
            raise KeyboardInterrupt  # Ctrl-C while the batch waits

    with pytest.raises(KeyboardInterrupt):
        interrupted()

    assert report.updated == 5
    assert Session.objects.filter(status="approved").count() == 5


def test_a_refresh_stores_in_batches_and_releases_every_lease(
    verilock_api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = changed_sessions(verilock_api, 30)
    monkeypatch.setattr(SyncPipeline, "BATCH_SECONDS", 3600.0)

    with statements() as sql:
        report = refresh_unfinished(concurrency=4)

    assert report.updated == 30 and not report.failed
    assert not Session.objects.filter(lease_expires_at__isnull=False).exists()
    assert set(Session.objects.values_list("status", flat=True)) == {"approved"}
    writes = [statement for statement in sql if statement.upper().startswith(("INSERT", "UPDATE"))]
    # Claims (one UPDATE per chunk of 16 claimed) and a few batches, not 3 writes a session.
    assert len(writes) < len(ids), [statement[:60] for statement in writes]


def test_an_unstored_answer_is_never_lost_with_its_lease(
    verilock_api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = changed_sessions(verilock_api, 4)
    verilock_api.fail_next(ids[2], status=500)
    monkeypatch.setattr(SyncPipeline, "BATCH_SECONDS", 3600.0)

    report = refresh_unfinished(concurrency=2)

    assert report.updated == 3 and list(report.failed) == [ids[2]]
    failed: Any = Session.objects.get(pk=ids[2])
    assert failed.status == "processing" and failed.last_sync_error
    assert not Session.objects.filter(lease_expires_at__isnull=False).exists()
