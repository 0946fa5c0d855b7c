from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from verilock_django.exceptions import (
    AuthenticationError,
    PayloadError,
    VerilockError,
)
from verilock_django.models import Session, StepResult
from verilock_django.refresh import refresh_unfinished
from verilock_django.store import Outcome, store_session
from verilock_django.sync import sync_session, sync_sessions
from verilock_django.testing.responses_api import InProcessVerilock

from .conftest import SEED_ID

pytestmark = pytest.mark.django_db


def snapshot(session_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Everything stored about a session except the sync bookkeeping."""
    row: dict[str, Any] = dict(Session.objects.filter(pk=session_id).values().get())
    for name in (
        "last_synced_at",
        "last_sync_error",
        "data_fetched_at",
        "next_check_at",
        "unchanged_checks",
        "failed_checks",
        "lease_expires_at",
        "missing_since",
    ):
        row.pop(name)
    steps = [
        dict(step)
        for step in StepResult.objects.filter(session_id=session_id).order_by("step").values()
    ]
    return row, steps


def test_store_seed_creates_session_and_five_steps(seed: dict[str, Any]) -> None:
    result = store_session(seed)

    assert result.outcome is Outcome.CREATED
    session = Session.objects.get(pk=SEED_ID)
    assert session.status == "approved"
    assert session.is_finished
    assert session.reference_id == "usr_12345"
    assert session.applicant_email == "jean.dupont@example.com"
    assert session.applicant_date_of_birth == dt.date(1990, 5, 15)
    assert session.completed_at == dt.datetime(2026, 3, 15, 10, 45, 22, tzinfo=dt.timezone.utc)
    # As received, less the hosted URL: it opens the applicant's flow (see privacy.py).
    assert session.payload == {k: v for k, v in seed.items() if k != "hosted_url"}
    assert session.hosted_url == ""
    assert session.first_synced_at is not None and session.last_synced_at is not None
    assert str(session) == SEED_ID
    steps = list(session.results.values_list("step", "status", "score"))
    assert steps == [
        ("document", "approved", None),
        ("selfie", "approved", None),
        ("face_match", "approved", 0.97),
        ("liveness", "approved", 0.99),
        ("aml", "approved", 0.02),
    ]
    assert session.results.get(step="document").details["document_number"] == "12AB34567"
    assert session.results.get(step="document").payload == seed["results"]["document"]


def test_storing_the_same_payload_again_changes_nothing(seed: dict[str, Any]) -> None:
    store_session(seed)
    before = snapshot(SEED_ID)
    step_ids = set(StepResult.objects.values_list("pk", flat=True))

    result = store_session(copy.deepcopy(seed))

    assert result.outcome is Outcome.UNCHANGED
    assert snapshot(SEED_ID) == before
    assert set(StepResult.objects.values_list("pk", flat=True)) == step_ids
    assert (Session.objects.count(), StepResult.objects.count()) == (1, 5)


def test_update_changes_steps_and_removes_steps_no_longer_reported(seed: dict[str, Any]) -> None:
    store_session(seed)
    changed = copy.deepcopy(seed)
    changed["results"]["aml"] = {"status": "declined", "score": 0.91, "details": {"pep": True}}
    del changed["results"]["selfie"]
    changed["steps"].remove("selfie")
    changed["status"] = "declined"

    result = store_session(changed)

    assert result.outcome is Outcome.UPDATED
    assert result.changes["status"] == ("approved", "declined")
    assert set(StepResult.objects.values_list("step", flat=True)) == {
        "document",
        "face_match",
        "liveness",
        "aml",
    }
    aml = StepResult.objects.get(step="aml")
    assert (aml.status, aml.score, aml.details) == ("declined", 0.91, {"pep": True})


def test_pending_row_is_filled_in(seed: dict[str, Any], verilock_api: InProcessVerilock) -> None:
    Session.objects.create(id=SEED_ID)
    assert Session.objects.get().never_synced
    verilock_api.respond_next(SEED_ID, times=99, json=seed)

    result = sync_session(SEED_ID)

    assert result.outcome is Outcome.UPDATED
    session = Session.objects.get()
    assert not session.never_synced
    assert session.first_synced_at is not None
    assert session.results.count() == 5


def test_payload_for_another_id_is_rejected(
    seed: dict[str, Any], verilock_api: InProcessVerilock
) -> None:
    Session.objects.create(id="ses_other")
    verilock_api.respond_next("ses_other", times=99, json=seed)

    with pytest.raises(PayloadError, match="answered session"):
        sync_session("ses_other")

    assert not Session.objects.filter(pk=SEED_ID).exists()
    assert "ses_a1b2" in Session.objects.get(pk="ses_other").last_sync_error


@pytest.mark.parametrize(
    "bad",
    [
        {"status": 503, "json": {"error": "server_error", "message": "down"}},
        {"status": 200, "body": b"<html>oops</html>"},
        {"status": 200, "json": {"id": SEED_ID, "results": ["not", "an", "object"]}},
        {"status": 200, "json": {"id": SEED_ID, "created_at": "not a date"}},
        {"status": 200, "json": {"id": SEED_ID, "results": {"aml": {"score": "high"}}}},
        {"status": 404, "json": {"error": "not_found", "message": "gone"}},
    ],
)
def test_failed_or_malformed_fetch_leaves_stored_data_untouched(
    seed: dict[str, Any], verilock_api: InProcessVerilock, bad: dict[str, Any]
) -> None:
    pending = copy.deepcopy(seed)
    pending["status"] = "processing"
    store_session(pending)
    before = snapshot(SEED_ID)
    verilock_api.respond_next(SEED_ID, times=99, **bad)

    with pytest.raises(VerilockError):
        sync_session(SEED_ID)

    assert snapshot(SEED_ID) == before
    assert Session.objects.get().last_sync_error  # the reason is kept


def test_sync_error_is_cleared_by_the_next_success(
    seed: dict[str, Any], verilock_api: InProcessVerilock
) -> None:
    Session.objects.create(id=SEED_ID, last_sync_error="boom")
    verilock_api.respond_next(SEED_ID, times=99, json=seed)
    sync_session(SEED_ID)
    assert Session.objects.get().last_sync_error == ""


def test_batch_isolates_failures(verilock_api: InProcessVerilock) -> None:
    for name in ("ses_1", "ses_2", "ses_3"):
        Session.objects.create(id=name)
    verilock_api.respond_next("ses_1", times=99, json={"id": "ses_1", "status": "processing"})
    verilock_api.respond_next(
        "ses_2", times=99, status=500, json={"error": "server_error", "message": "down"}
    )
    verilock_api.respond_next("ses_3", times=99, json={"id": "ses_3", "status": "approved"})

    report = refresh_unfinished()

    assert report.synced == 2
    assert list(report.failed) == ["ses_2"]
    assert "HTTP 500, error=server_error" in report.failed["ses_2"]
    assert report.requests == 3
    assert Session.objects.get(pk="ses_3").status == "approved"
    failed = Session.objects.get(pk="ses_2")
    assert failed.status == "" and failed.payload == {} and "HTTP 500" in failed.last_sync_error


def test_batch_aborts_on_refused_key(verilock_api: InProcessVerilock) -> None:
    for name in ("ses_1", "ses_2", "ses_3"):
        Session.objects.create(id=name)
    verilock_api.respond_next(
        "ses_1", times=99, status=401, json={"error": "authentication_error", "message": "no"}
    )

    with pytest.raises(AuthenticationError):
        refresh_unfinished()

    assert verilock_api.total_requests == 1


@pytest.mark.parametrize("first", [404, 500, 503, 429, 400])
def test_a_403_stops_the_batch_until_the_key_has_read_a_session(
    verilock_api: InProcessVerilock, settings: Any, first: int
) -> None:
    # The first answer is an error that is not a refusal; every later one is a 403.
    settings.VERILOCK_MAX_RETRIES = 0
    ids = [f"ses_{index}" for index in range(10)]
    verilock_api.respond_next(None, status=first, json={"error": "e", "message": "no"})
    verilock_api.respond_next(None, times=99, status=403, json={"error": "forbidden"})

    if first == 404:  # the API looked the id up for this key: it reads sessions
        report = sync_sessions(ids, concurrency=1)
        assert len(report.failed) == 10 and verilock_api.total_requests == 10
        return
    # A 5xx, a 429 or a 400 says nothing of the key: the key refused on the next request
    # costs that request, not one per session.
    with pytest.raises(AuthenticationError):
        sync_sessions(ids, concurrency=1)
    assert verilock_api.total_requests == 2


def test_unfinished_refresh_skips_finished_sessions(
    seed: dict[str, Any], verilock_api: InProcessVerilock
) -> None:
    store_session(seed)  # approved: finished
    Session.objects.create(id="ses_2", status="processing")
    verilock_api.respond_next("ses_2", times=99, json={"id": "ses_2", "status": "processing"})

    report = refresh_unfinished()

    assert report.fetched == 1
    assert [r.path for r in verilock_api.requests] == ["/sessions/ses_2"]


def test_finished_statuses_are_configurable(verilock_api: InProcessVerilock) -> None:
    Session.objects.create(id="ses_r", status="review")
    with override_settings(
        VERILOCK_FINISHED_STATUSES=["approved", "declined", "expired", "review"]
    ):
        assert Session.objects.get().is_finished
        assert refresh_unfinished().fetched == 0
    assert not Session.objects.get().is_finished


def test_limit_caps_the_batch(verilock_api: InProcessVerilock) -> None:
    for index in range(5):
        Session.objects.create(id=f"ses_{index}")
        verilock_api.respond_next(
            f"ses_{index}", times=99, json={"id": f"ses_{index}", "status": "processing"}
        )
    assert refresh_unfinished(limit=2).fetched == 2


def test_unknown_ids_are_created_on_success_only(verilock_api: InProcessVerilock) -> None:
    verilock_api.respond_next("ses_new", times=99, json={"id": "ses_new", "status": "created"})
    verilock_api.respond_next(
        "ses_missing", times=99, status=404, json={"error": "not_found", "message": "nope"}
    )

    report = sync_sessions(["ses_new", "ses_missing"])

    assert report.created == 1 and list(report.failed) == ["ses_missing"]
    assert list(Session.objects.values_list("id", flat=True)) == ["ses_new"]


def test_stale_payload_never_overwrites_newer_data(seed: dict[str, Any]) -> None:
    newer = copy.deepcopy(seed)
    older = copy.deepcopy(seed)
    older["status"] = "processing"
    t0 = timezone.now()
    store_session(newer, fetched_at=t0)

    result = store_session(older, fetched_at=t0 - dt.timedelta(seconds=5))

    assert result.outcome is Outcome.STALE
    assert Session.objects.get().status == "approved"


def test_finished_session_never_returns_to_unfinished(seed: dict[str, Any]) -> None:
    store_session(seed)
    regressed = copy.deepcopy(seed)
    regressed["status"] = "processing"
    assert store_session(regressed).outcome is Outcome.STALE
    assert Session.objects.get().status == "approved"


def test_store_runs_in_one_transaction(
    seed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store_session({"id": SEED_ID, "status": "processing"})

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("verilock_django.store.upsert_rows", explode)  # the steps' upsert
    monkeypatch.setattr(StepResult.objects, "update_or_create", explode)
    with pytest.raises(RuntimeError):
        store_session(seed)

    session = Session.objects.get()
    assert session.status == "processing"
    assert session.results.count() == 0


def test_signals_are_sent_after_commit(
    seed: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    from verilock_django.signals import session_finished, session_updated

    updated: list[dict[str, Any]] = []
    finished: list[str] = []

    def on_updated(
        sender: Any, session: Session, created: bool, changes: dict[str, Any], **kw: Any
    ) -> None:
        updated.append({"id": session.id, "created": created, "changes": set(changes)})

    def on_finished(sender: Any, session: Session, **kw: Any) -> None:
        finished.append(session.id)

    session_updated.connect(on_updated)
    session_finished.connect(on_finished)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            processing = copy.deepcopy(seed)
            processing["status"] = "processing"
            store_session(processing)
        with django_capture_on_commit_callbacks(execute=True):
            store_session(seed)
        with django_capture_on_commit_callbacks(execute=True):
            store_session(copy.deepcopy(seed))  # unchanged: no signal
    finally:
        session_updated.disconnect(on_updated)
        session_finished.disconnect(on_finished)

    assert [(u["created"], "status" in u["changes"]) for u in updated] == [
        (True, True),
        (False, True),
    ]
    assert finished == [SEED_ID]


def test_no_signal_on_rollback(
    seed: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    from verilock_django.signals import session_updated

    calls: list[str] = []

    def receiver(sender: Any, session: Session, **kwargs: Any) -> None:
        calls.append(session.id)

    session_updated.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            try:
                with transaction.atomic():
                    store_session(seed)
                    raise RuntimeError("caller failed after storing")
            except RuntimeError:
                pass
    finally:
        session_updated.disconnect(receiver)
    assert calls == []
    assert not Session.objects.exists()
