"""The store's guarantees under faults: isolation, ordering, signals, missing sessions."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from typing import Any

import pytest
from django.db import DataError, connection
from django.utils import timezone

from verilock_django import clock
from verilock_django.client import VerilockClient
from verilock_django.exceptions import NotFoundError, StorageError
from verilock_django.models import Session, SessionChange
from verilock_django.payloads import DEFAULT_STATUS
from verilock_django.refresh import refresh_unfinished
from verilock_django.schedule import confirm_listed
from verilock_django.signals import session_finished, session_updated
from verilock_django.store import Outcome, record_failure, store_session
from verilock_django.sync import sync_session, sync_sessions
from verilock_django.testing.factories import Shape, session_payload
from verilock_django.testing.responses_api import InProcessVerilock

from .concurrency import run_together
from .conftest import SEED_ID

pytestmark = pytest.mark.django_db


def processing(seed: dict[str, Any], **changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(seed)
    payload.update(status="processing", completed_at=None, **changes)
    return payload


# -- isolation -----------------------------------------------------------------------


def test_a_database_error_fails_one_session_with_a_message_free_of_payload_values(
    seed: dict[str, Any], verilock_api: InProcessVerilock
) -> None:
    good, bad = "ses_good", "ses_bad"
    for session_id in (good, bad):
        Session.objects.create(id=session_id)
        verilock_api.respond_next(session_id, times=99, json=processing(seed, id=session_id))
    message = (  # what PostgreSQL says about a value it cannot take
        'invalid input syntax for type json\nCONTEXT: JSON data, line 1: ..."'
        f'{seed["applicant"]["email"]}"...'
    )

    def refuse_bad(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("INSERT") and bad in str(params):
            raise DataError(message)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(refuse_bad):
        report = sync_sessions([good, bad])

    assert report.updated == 1 and list(report.failed) == [bad]
    stored = Session.objects.get(pk=bad)
    assert stored.last_sync_error.startswith("could not store the session: DataError")
    assert stored.status == "" and not stored.results.exists()  # nothing else was written
    for text in (stored.last_sync_error, report.failed[bad]):
        assert seed["applicant"]["email"] not in text
    with connection.execute_wrapper(refuse_bad), pytest.raises(StorageError):
        sync_session(bad)


def test_any_exception_while_fetching_fails_that_session_only(
    seed: dict[str, Any], verilock_api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch
) -> None:
    Session.objects.create(id="ses_ok")
    verilock_api.respond_next("ses_ok", times=99, json=processing(seed, id="ses_ok"))
    real_get = VerilockClient.get_session

    def get_session(self: VerilockClient, session_id: str) -> dict[str, Any]:
        if session_id == "ses_boom":  # a library's surprise, not one of our errors
            raise RecursionError(seed["applicant"]["email"])
        return real_get(self, session_id)

    monkeypatch.setattr(VerilockClient, "get_session", get_session)

    report = sync_sessions(["ses_boom", "ses_ok"])

    assert report.updated == 1
    assert "RecursionError" in report.failed["ses_boom"]
    assert seed["applicant"]["email"] not in report.failed["ses_boom"]


# -- concurrency and ordering --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: concurrent writers (SQLite serialises the whole database)",
)
def test_two_workers_storing_the_same_new_session_at_once_both_succeed(
    seed: dict[str, Any],
) -> None:
    outcomes = run_together(lambda: store_session(copy.deepcopy(seed)).outcome, 4)

    assert sorted(o.value for o in outcomes).count("created") == 1
    assert Session.objects.get().results.count() == 5


def test_a_worker_whose_clock_runs_an_hour_ahead_does_not_make_later_answers_stale(
    seed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ahead = timezone.now() + dt.timedelta(hours=1)
    with monkeypatch.context() as patch:  # the skewed machine stores first
        patch.setattr("django.utils.timezone.now", lambda: ahead)
        store_session(processing(seed))

    result = store_session(dict(processing(seed), status="review"))

    assert result.outcome is Outcome.UPDATED
    assert Session.objects.get().status == "review"


def test_an_answer_requested_earlier_is_stale(seed: dict[str, Any]) -> None:
    requested = clock.now()
    store_session(dict(processing(seed), status="review"))

    result = store_session(processing(seed), fetched_at=requested)

    assert result.outcome is Outcome.STALE
    assert Session.objects.get().status == "review"


# -- signals -------------------------------------------------------------------------


def test_a_failing_receiver_never_stops_a_batch_and_finished_is_sent_again(
    verilock_api: InProcessVerilock, django_capture_on_commit_callbacks: Any
) -> None:
    sessions = [verilock_api.add_session(status="processing") for _ in range(3)]
    for remote in sessions:
        Session.objects.create(id=remote.id)
        verilock_api.complete(remote.id, "approved")
    received: list[str] = []
    failing = {"on": True}

    def activate_account(sender: object, session: Session, **kwargs: object) -> None:
        if failing["on"]:
            raise RuntimeError(f"mail server down for {session.applicant_email}")
        received.append(session.id)

    def broken_listener(**kwargs: object) -> None:
        raise ValueError("receiver bug")

    session_finished.connect(activate_account)
    session_updated.connect(broken_listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            report = sync_sessions([s.id for s in sessions])
        assert report.updated == 3 and not report.failed
        assert received == []
        assert Session.objects.filter(finished_signal_pending=True).count() == 3

        failing["on"] = False
        with django_capture_on_commit_callbacks(execute=True):
            refresh_unfinished()  # the next cron run delivers what is still owed
    finally:
        session_finished.disconnect(activate_account)
        session_updated.disconnect(broken_listener)

    assert sorted(received) == sorted(s.id for s in sessions)
    assert not Session.objects.filter(finished_signal_pending=True).exists()


def test_finished_owed_by_a_process_that_died_is_sent_by_the_next_run(
    seed: dict[str, Any],
) -> None:
    store_session(seed)  # approved; pretend the process died before sending
    Session.objects.update(finished_signal_pending=True)
    received: list[str] = []

    def receiver(sender: object, session: Session, **kwargs: object) -> None:
        received.append(session.id)

    session_finished.connect(receiver)
    try:
        refresh_unfinished()
    finally:
        session_finished.disconnect(receiver)

    assert received == [SEED_ID]
    assert not Session.objects.get().finished_signal_pending


def test_receiver_errors_are_logged_with_the_session_id_only(
    seed: dict[str, Any], caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    def receiver(sender: object, session: Session, **kwargs: object) -> None:
        raise RuntimeError(session.applicant_email)

    session_updated.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            store_session(seed)
    finally:
        session_updated.disconnect(receiver)

    # Django's own ``django.dispatch`` logger reports the receiver's exception as the host's
    # code raised it; this app's records carry the session id and the error's type only.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("verilock_django")]
    assert any(SEED_ID in message and "RuntimeError" in message for message in ours)
    assert not any(seed["applicant"]["email"] in message for message in ours)


# -- missing at Verilock, errors cleared ---------------------------------------------


def test_a_session_verilock_does_not_know_stops_being_refreshed_until_found_again(
    verilock_api: InProcessVerilock,
) -> None:
    Session.objects.create(id="ses_typo")
    assert refresh_unfinished().failed  # 404
    missing = Session.objects.get()
    assert missing.missing_since is not None and "not_found" in missing.last_sync_error

    Session.objects.update(next_check_at=clock.now())
    verilock_api.reset_counters()
    assert refresh_unfinished().fetched == 0 and not refresh_unfinished().failed
    assert verilock_api.requests_for("ses_typo") == 0

    remote = verilock_api.add_session(id="ses_typo", status="processing")
    assert sync_session(remote.id).outcome is Outcome.UPDATED  # an explicit sync finds it
    found = Session.objects.get()
    assert found.missing_since is None and found.last_sync_error == ""


def test_missing_since_keeps_the_first_404(seed: dict[str, Any]) -> None:
    store_session(processing(seed))
    record_failure(SEED_ID, NotFoundError("gone"))
    first = Session.objects.get().missing_since
    record_failure(SEED_ID, NotFoundError("gone"))
    assert Session.objects.get().missing_since == first


def test_a_session_the_list_confirms_loses_its_old_error(seed: dict[str, Any]) -> None:
    store_session(processing(seed))
    Session.objects.update(last_sync_error="timed out")

    assert confirm_listed([SEED_ID]) == 1

    assert Session.objects.get().last_sync_error == ""


def test_the_history_names_what_triggered_each_change(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    from io import StringIO

    from django.core.management import call_command

    from verilock_django.models import SessionChange
    from verilock_django.processing import process_event
    from verilock_django.testing.webhooks import webhook_payload

    from .webhook_helpers import stored

    remote = verilock_api.add_session(status="processing")
    call_command("sync_verilock_sessions", remote.id, stdout=StringIO())
    verilock_api.complete(remote.id, "approved")
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    event = stored(webhook_payload(session_id=remote.id, webhook_id="wh_trigger"))
    process_event(event.pk)

    triggers = set(SessionChange.objects.values_list("trigger", "field"))
    assert ("command:sync_verilock_sessions " + remote.id, "status") in triggers
    assert ("webhook:wh_trigger", "status") in triggers


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's locking only")
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_on_a_default_sqlite_configuration_wait_instead_of_failing(
    seed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # DEFERRED, as a host project's SQLite is by default (the suite's own uses IMMEDIATE).
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "transaction_mode", None)
    ids = [f"ses_concurrent_{index}" for index in range(6)]
    for session_id in ids:
        store_session(dict(copy.deepcopy(seed), id=session_id, status="processing"))
    statuses = itertools.cycle(["review", "processing"])

    def write() -> int:
        for _ in range(4):
            for session_id in ids:
                store_session(dict(copy.deepcopy(seed), id=session_id, status=next(statuses)))
        return 1

    # Each store reads, then writes: begun DEFERRED, one of two overlapping writers would
    # fail at once with "database is locked".
    assert run_together(write, 6) == [1] * 6


# -- an answer that does not say its status ----------------------------------------------

#: The ways a payload can leave its status unsaid.
UNSAID = ("missing", "null", "empty", "blank")


def without_status(payload: dict[str, Any], how: str) -> dict[str, Any]:
    payload = copy.deepcopy(payload)
    if how == "missing":
        del payload["status"]
    else:
        payload["status"] = {"null": None, "empty": "", "blank": "  "}[how]
    return payload


def gen_b_review(**changes: Any) -> dict[str, Any]:
    """A Gen B session in review: ``completed`` with the decision ``review``."""
    return dict(
        session_payload("b", status="processing", **changes), status="completed", decision="review"
    )


@pytest.mark.parametrize("how", UNSAID)
@pytest.mark.parametrize(
    ("stored", "stored_status"),
    [
        (lambda **kw: session_payload("a", status="processing", **kw), "processing"),
        (lambda **kw: session_payload("b", status="processing", **kw), "processing"),
        (lambda **kw: session_payload("a", status="review", **kw), "review"),
        (gen_b_review, "review"),
    ],
    ids=["gen-a-processing", "gen-b-processing", "gen-a-review", "gen-b-review"],
)
def test_an_answer_without_a_status_keeps_the_stored_one_and_updates_the_rest(
    stored: Any, stored_status: str, how: str
) -> None:
    store_session(stored())
    history_before = SessionChange.objects.count()

    result = store_session(without_status(stored(reference_id="usr_999"), how))

    row = Session.objects.get()
    assert result.outcome is Outcome.UPDATED and "status" not in result.changes
    assert row.status == stored_status and row.reference_id == "usr_999"
    assert not row.is_finished and row.next_check_at is not None
    new_history = SessionChange.objects.all()[history_before:]
    assert "status" not in {change.field for change in new_history}


@pytest.mark.parametrize("shape", ["a", "b"])
@pytest.mark.parametrize("how", UNSAID)
def test_an_answer_without_a_status_leaves_a_finished_session_alone(
    shape: Shape, how: str
) -> None:
    store_session(session_payload(shape, status="approved"))
    before = Session.objects.values().get()

    answer = without_status(session_payload(shape, status="approved", reference_id="usr_999"), how)
    answer.pop("decision", None)  # a decision would say the status (see the test below)
    result = store_session(answer)

    # It can neither confirm nor overturn a decision: stale, nothing written.
    assert result.outcome is Outcome.STALE
    assert Session.objects.values().get() == before


@pytest.mark.parametrize("how", UNSAID)
def test_a_decision_without_a_status_is_stored_as_the_status(how: str) -> None:
    store_session(session_payload("b", status="processing"))
    answer = without_status(session_payload("b", status="approved"), how)
    assert answer["decision"] == "approved"

    result = store_session(answer)

    # Not "processing" next to the decision "approved": a decision is given once completed.
    row = Session.objects.get()
    assert result.outcome is Outcome.UPDATED
    assert (row.status, row.decision, row.is_finished) == ("approved", "approved", True)


@pytest.mark.parametrize("shape", ["a", "b"])
@pytest.mark.parametrize("how", UNSAID)
def test_a_new_session_without_a_status_is_stored_as_created(shape: Shape, how: str) -> None:
    result = store_session(without_status(session_payload(shape, status="processing"), how))

    assert result.outcome is Outcome.CREATED
    assert Session.objects.get().status == DEFAULT_STATUS == "created"
    assert list(
        SessionChange.objects.filter(field="status").values_list("old_value", "new_value")
    ) == [("", "created")]


def test_a_row_registered_by_id_only_takes_the_default_status(seed: dict[str, Any]) -> None:
    Session.objects.create(id=SEED_ID)  # no status known yet: nothing to lose

    store_session(without_status(seed, "missing"))

    assert Session.objects.get().status == "created"
