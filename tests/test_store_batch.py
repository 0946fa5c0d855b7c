"""Batched writes: the store's guarantees hold for a batch, at a constant statement count."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from django.db import DataError, connection
from django.utils import timezone

from verilock_django import clock
from verilock_django.exceptions import ErasedSessionError, PayloadError, StorageError
from verilock_django.models import Session, SessionChange, StepResult
from verilock_django.privacy import erase_sessions
from verilock_django.signals import session_finished, session_updated
from verilock_django.store import Outcome, store_session
from verilock_django.store_batch import store_sessions

from .conftest import statements

pytestmark = pytest.mark.django_db


def payload(seed: dict[str, Any], session_id: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(seed)
    data.update({"id": session_id, "status": "processing", "completed_at": None, **changes})
    return data


def answers(payloads: list[dict[str, Any]], fetched_at: Any = None) -> list[Any]:
    return [(p["id"], p, fetched_at) for p in payloads]


def snapshot(session_id: str) -> tuple[Any, ...]:
    session = Session.objects.get(pk=session_id)
    steps = list(
        StepResult.objects.filter(session=session)
        .order_by("position")
        .values_list("step", "status", "outcome", "score", "details")
    )
    return (session.status, session.decision, session.payload, session.data_fetched_at, steps)


# -- cost ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [5, 50])
def test_a_batch_of_changed_sessions_costs_the_same_statements_whatever_its_size(
    seed: dict[str, Any], size: int, whole_statements: None
) -> None:
    ids = [f"ses_batch_{n:03}" for n in range(size)]
    for session_id in ids:
        store_session(payload(seed, session_id))
    changed = [
        payload(seed, session_id, status="approved", results={"document": {"status": "approved"}})
        for session_id in ids
    ]

    with statements() as sql:
        results = store_sessions(answers(changed))

    assert [r.outcome for r in results] == [Outcome.UPDATED] * size
    # Lock, session upsert, step upsert, dropped steps, history: whatever the size.
    assert len(sql) == 5, sql
    assert sql[0].upper().startswith("SELECT")
    assert Session.objects.filter(status="approved").count() == size
    assert StepResult.objects.count() == size  # the four steps no longer reported are gone
    assert SessionChange.objects.filter(field="status", new_value="approved").count() == size


def test_a_batch_of_unchanged_sessions_is_one_lock_and_one_upsert(
    seed: dict[str, Any], whole_statements: None
) -> None:
    ids = [f"ses_same_{n}" for n in range(20)]
    for session_id in ids:
        store_session(payload(seed, session_id))

    with statements() as sql:
        results = store_sessions(answers([payload(seed, sid) for sid in ids]))

    assert {r.outcome for r in results} == {Outcome.UNCHANGED}
    assert len(sql) == 2, sql
    assert set(Session.objects.values_list("unchanged_checks", flat=True)) == {1}


# -- the same rules as one by one ------------------------------------------------------


def test_a_batch_stores_exactly_what_storing_one_by_one_stores(seed: dict[str, Any]) -> None:
    def scenario(prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        before = [
            payload(seed, f"{prefix}upd"),
            payload(seed, f"{prefix}same"),
            payload(seed, f"{prefix}drop"),
            payload(seed, f"{prefix}fin", status="approved", completed_at="2026-03-15T10:45:22Z"),
        ]
        after = [
            payload(seed, f"{prefix}upd", status="review"),
            payload(seed, f"{prefix}same"),
            payload(seed, f"{prefix}drop", results={"aml": {"status": "declined"}}),
            payload(seed, f"{prefix}fin"),  # a final status never goes back: stale
            payload(seed, f"{prefix}new", status="declined"),
        ]
        return before, after

    before, after = scenario("ses_one_")
    for p in before:
        store_session(p)
    one_by_one = [store_session(p) for p in after]
    before, after = scenario("ses_bat_")
    for p in before:
        store_session(p)
    batched = store_sessions(answers(after))

    assert [r.outcome for r in batched] == [r.outcome for r in one_by_one]
    assert [r.changes for r in batched] == [r.changes for r in one_by_one]
    for suffix in ("upd", "same", "drop", "fin", "new"):
        one, bat = snapshot(f"ses_one_{suffix}"), snapshot(f"ses_bat_{suffix}")
        assert one[:2] == bat[:2] and one[4] == bat[4], suffix
        history = [
            list(
                SessionChange.objects.filter(session_id=f"ses_{kind}_{suffix}")
                .order_by("field", "pk")
                .values_list("field", "old_value", "new_value", "trigger")
            )
            for kind in ("one", "bat")
        ]
        assert history[0] == history[1], suffix


def test_answers_without_a_status_keep_the_stored_one_in_a_batch_as_one_by_one(
    seed: dict[str, Any],
) -> None:
    def without_status(p: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in p.items() if key != "status"}

    def scenario(prefix: str) -> list[dict[str, Any]]:
        before = [
            payload(seed, f"{prefix}proc"),
            payload(seed, f"{prefix}rev", status="review"),
            payload(seed, f"{prefix}fin", status="approved", completed_at="2026-03-15T10:45:22Z"),
        ]
        for p in before:
            store_session(p)
        return [
            without_status(payload(seed, f"{prefix}proc", reference_id="usr_999")),
            dict(payload(seed, f"{prefix}rev", reference_id="usr_999"), status=None),
            without_status(payload(seed, f"{prefix}fin", reference_id="usr_999")),
            without_status(payload(seed, f"{prefix}new")),
        ]

    one_by_one = [store_session(p) for p in scenario("ses_one_")]
    batched = store_sessions(answers(scenario("ses_bat_")))

    expected = [Outcome.UPDATED, Outcome.UPDATED, Outcome.STALE, Outcome.CREATED]
    assert [r.outcome for r in batched] == [r.outcome for r in one_by_one] == expected
    assert [r.changes for r in batched] == [r.changes for r in one_by_one]
    for kind in ("one", "bat"):
        rows = dict(
            Session.objects.filter(pk__startswith=f"ses_{kind}_").values_list("pk", "status")
        )
        refs = dict(
            Session.objects.filter(pk__startswith=f"ses_{kind}_").values_list("pk", "reference_id")
        )
        assert rows == {
            f"ses_{kind}_proc": "processing",
            f"ses_{kind}_rev": "review",
            f"ses_{kind}_fin": "approved",
            f"ses_{kind}_new": "created",
        }, kind
        assert refs[f"ses_{kind}_proc"] == refs[f"ses_{kind}_rev"] == "usr_999"
        assert refs[f"ses_{kind}_fin"] == "usr_12345"  # stale: nothing written
        status_history = SessionChange.objects.filter(
            session__id__startswith=f"ses_{kind}_", field="status"
        ).exclude(old_value="")
        assert not status_history.exists(), kind  # no status changed after creation


def test_an_answer_requested_before_the_stored_one_is_stale_in_a_batch(
    seed: dict[str, Any],
) -> None:
    requested = clock.now()
    store_session(payload(seed, "ses_newer", status="review"))
    store_session(payload(seed, "ses_other"))
    leased = timezone.now() + dt.timedelta(minutes=5)
    Session.objects.update(lease_expires_at=leased)
    before = snapshot("ses_newer")

    results = store_sessions(
        [
            ("ses_newer", payload(seed, "ses_newer"), requested),
            ("ses_other", payload(seed, "ses_other", status="review"), None),
        ],
        release_lease=True,
    )

    assert [r.outcome for r in results] == [Outcome.STALE, Outcome.UPDATED]
    assert snapshot("ses_newer") == before
    assert not Session.objects.filter(lease_expires_at__isnull=False).exists()


def test_the_later_of_two_answers_for_one_session_in_a_batch_wins(seed: dict[str, Any]) -> None:
    store_session(payload(seed, "ses_twice"))

    results = store_sessions(
        answers(
            [
                payload(seed, "ses_twice", status="review"),
                payload(seed, "ses_twice", status="approved"),
            ]
        )
    )

    assert [r.outcome for r in results] == [Outcome.UPDATED, Outcome.UPDATED]
    assert Session.objects.get().status == "approved"


def test_an_erased_session_in_a_batch_is_not_stored_again(seed: dict[str, Any]) -> None:
    store_session(payload(seed, "ses_erased"))
    erase_sessions(["ses_erased"])

    results = store_sessions(
        answers([payload(seed, "ses_erased", status="review"), payload(seed, "ses_kept")])
    )

    assert results[0].outcome is Outcome.FAILED
    assert isinstance(results[0].error, ErasedSessionError)
    assert results[1].outcome is Outcome.CREATED
    assert list(Session.objects.values_list("id", flat=True)) == ["ses_kept"]


def test_an_unusable_payload_fails_alone_before_the_batch(seed: dict[str, Any]) -> None:
    results = store_sessions(
        [
            ("ses_fine", payload(seed, "ses_fine"), None),
            ("ses_broken", [1, 2, 3], None),
            ("ses_asked", payload(seed, "ses_someone_else"), None),
        ]
    )

    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.FAILED, Outcome.FAILED]
    assert all(isinstance(r.error, PayloadError) for r in results[1:])
    assert list(Session.objects.values_list("id", flat=True)) == ["ses_fine"]


def test_a_step_respelled_in_a_batch_takes_the_new_spelling(seed: dict[str, Any]) -> None:
    store_session(payload(seed, "ses_a", results={"document": {"status": "pending"}}))
    store_session(payload(seed, "ses_b"))

    store_sessions(
        answers(
            [
                payload(seed, "ses_a", results={"DOCUMENT": {"status": "approved"}}),
                payload(seed, "ses_b", status="review"),
            ]
        )
    )

    rows = list(StepResult.objects.filter(session="ses_a").values_list("step", "status"))
    assert rows == [("DOCUMENT", "approved")]


# -- isolation -----------------------------------------------------------------------


def test_a_poisoned_session_fails_alone_and_its_stored_row_stays_as_it_was(
    seed: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    ids = [f"ses_iso_{n}" for n in range(6)]
    poisoned = ids[3]
    for session_id in ids:
        store_session(payload(seed, session_id))
    before = snapshot(poisoned)
    email = seed["applicant"]["email"]

    def refuse(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().upper().startswith("INSERT") and poisoned in str(params):
            raise DataError(f'invalid input syntax for type json: "{email}"')
        return execute(sql, params, many, context)

    updated: list[str] = []

    def receiver(sender: object, session: Session, **kwargs: object) -> None:
        updated.append(session.id)

    session_updated.connect(receiver)
    try:
        with (
            django_capture_on_commit_callbacks(execute=True),
            connection.execute_wrapper(refuse),
        ):
            results = store_sessions(
                answers([payload(seed, sid, status="approved") for sid in ids])
            )
    finally:
        session_updated.disconnect(receiver)

    outcomes = {r.session_id: r.outcome for r in results}
    assert outcomes.pop(poisoned) is Outcome.FAILED
    assert set(outcomes.values()) == {Outcome.UPDATED}
    failed = results[3].error
    assert isinstance(failed, StorageError) and email not in str(failed)
    assert snapshot(poisoned) == before
    assert Session.objects.filter(status="approved").count() == len(ids) - 1
    # The rolled-back batch sent nothing: each stored session is announced once.
    assert sorted(updated) == sorted(set(ids) - {poisoned})


# -- history and signals -------------------------------------------------------------


def test_a_batch_records_history_and_signals_after_commit(
    seed: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    ids = ["ses_h1", "ses_h2", "ses_h3"]
    for session_id in ids:
        store_session(payload(seed, session_id))
    finished: list[str] = []

    def receiver(sender: object, session: Session, **kwargs: object) -> None:
        finished.append(session.id)

    session_finished.connect(receiver)
    try:
        with django_capture_on_commit_callbacks() as callbacks:
            store_sessions(
                answers([payload(seed, sid, status="approved") for sid in ids]),
                trigger="command",
            )
            assert finished == []  # nothing before the commit
            pending = Session.objects.filter(finished_signal_pending=True).count()
        for callback in callbacks:
            callback()
    finally:
        session_finished.disconnect(receiver)

    assert pending == 3
    assert sorted(finished) == ids
    assert not Session.objects.filter(finished_signal_pending=True).exists()
    history = SessionChange.objects.filter(field="status", trigger="command")
    assert sorted(history.values_list("session_id", "old_value", "new_value")) == [
        (sid, "processing", "approved") for sid in ids
    ]


def test_a_stale_answer_in_a_batch_sends_nothing(
    seed: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    store_session(payload(seed, "ses_done", status="approved"))
    store_session(payload(seed, "ses_open"))
    Session.objects.update(finished_signal_pending=True)
    sent: list[str] = []

    def receiver(sender: object, session: Session, **kwargs: object) -> None:
        sent.append(session.id)

    session_finished.connect(receiver)
    session_updated.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            results = store_sessions(
                answers([payload(seed, "ses_done"), payload(seed, "ses_open")]),
                release_lease=True,
            )
    finally:
        session_finished.disconnect(receiver)
        session_updated.disconnect(receiver)

    assert [r.outcome for r in results] == [Outcome.STALE, Outcome.UNCHANGED]
    assert sent == ["ses_open"]  # only what an unchanged answer's row still owes
