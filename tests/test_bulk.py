"""The batch store's prepared statements (``bulk.py``): the same rows as ``bulk_create``,
every value prepared by its field, in as few statements as the parameter limit allows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from verilock_django import bulk
from verilock_django.models import Session, SessionChange, StepResult

pytestmark = pytest.mark.django_db

WHEN = dt.datetime(2026, 3, 15, 10, 45, 22, 123456, tzinfo=dt.timezone.utc)


def session(session_id: str, **fields: Any) -> Session:
    values: dict[str, Any] = {
        "status": "processing",
        "risk_score": 12.5,
        "created_at": WHEN,
        "applicant_date_of_birth": dt.date(1990, 5, 15),
        "payload": {"id": session_id, "nested": [1, "two", None, {"three": 3.0}]},
        "steps": ["document", "selfie"],
        "unchanged_checks": 2,
        "finished_signal_pending": True,
    }
    return Session(id=session_id, **{**values, **fields})


def stored(session_id: str) -> dict[str, Any]:
    return dict(Session.objects.filter(pk=session_id).values().get())


def test_inserted_rows_read_back_as_bulk_create_writes_them() -> None:
    Session.objects.bulk_create([session("ses_django")])
    with CaptureQueriesContext(connection) as queries:
        bulk.insert_rows(Session, [session("ses_bulk_1"), session("ses_bulk_2")])
    assert len(queries) == 1
    expected = stored("ses_django")
    for session_id in ("ses_bulk_1", "ses_bulk_2"):
        row = stored(session_id)
        assert row.pop("id") == session_id
        assert row.pop("payload")["id"] == session_id
        assert row == {k: v for k, v in expected.items() if k not in ("id", "payload")}


def test_rows_are_marked_saved() -> None:
    rows = [session("ses_saved")]
    bulk.insert_rows(Session, rows)
    assert rows[0]._state.adding is False
    assert rows[0]._state.db == "default"


def test_an_auto_primary_key_is_left_to_the_database() -> None:
    parent = session("ses_parent")
    bulk.insert_rows(Session, [parent])
    changes = [
        SessionChange(session=parent, changed_at=WHEN, field="status", new_value=str(n))
        for n in range(3)
    ]
    bulk.insert_rows(SessionChange, changes)
    assert sorted(SessionChange.objects.values_list("new_value", flat=True)) == ["0", "1", "2"]


def test_upsert_updates_the_named_columns_and_inserts_the_rest() -> None:
    bulk.insert_rows(Session, [session("ses_old", status="processing", risk_score=1.0)])
    with CaptureQueriesContext(connection) as queries:
        bulk.upsert_rows(
            Session,
            [session("ses_old", status="approved", risk_score=None), session("ses_new")],
            unique_fields=["id"],
            update_fields=["status"],
        )
    assert len(queries) == 1
    old = stored("ses_old")
    assert (old["status"], old["risk_score"]) == ("approved", 1.0)  # risk_score not named
    assert stored("ses_new")["status"] == "processing"


def test_steps_upsert_by_session_and_step() -> None:
    parent = session("ses_steps")
    bulk.insert_rows(Session, [parent])
    first = StepResult(session=parent, step="document", status="pending", details={"a": 1})
    bulk.insert_rows(StepResult, [first])
    again = StepResult(session=parent, step="document", status="passed", details={"b": [2]})
    selfie = StepResult(session=parent, step="selfie", status="pending", position=1)
    bulk.upsert_rows(
        StepResult,
        [again, selfie],
        unique_fields=["session", "step"],
        update_fields=["status", "details"],
    )
    assert list(
        StepResult.objects.order_by("position").values_list("step", "status", "details")
    ) == [
        ("document", "passed", {"b": [2]}),
        ("selfie", "pending", {}),
    ]


def test_a_duplicate_key_fails_the_insert() -> None:
    bulk.insert_rows(Session, [session("ses_twice")])
    with pytest.raises(IntegrityError):
        bulk.insert_rows(Session, [session("ses_twice")])


def test_rows_beyond_the_parameter_limit_take_more_statements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fields = len(StepResult._meta.concrete_fields) - 1  # the auto primary key is not sent
    parent = session("ses_chunks")
    bulk.insert_rows(Session, [parent])
    steps = [StepResult(session=parent, step=f"step_{n}", position=n) for n in range(10)]
    bulk.insert_rows(StepResult, steps[:1])  # the statement is built and kept here

    # The limit is read at each write, not when the kept statement was built (Django 5.2's
    # tests raise SQLite's assumed 999 at run time, for one).
    monkeypatch.setattr(bulk, "_MAX_PARAMETERS", 2 * fields)  # two rows per statement
    with CaptureQueriesContext(connection) as limited:
        bulk.insert_rows(StepResult, steps[1:6])
    monkeypatch.undo()
    with CaptureQueriesContext(connection) as unlimited:
        bulk.insert_rows(StepResult, steps[6:])

    # PostgreSQL sends one array per column, whatever the number of rows.
    assert len(limited) == (1 if connection.vendor == "postgresql" else 3)
    assert len(unlimited) == 1
    assert StepResult.objects.count() == 10


def test_nothing_to_write_sends_nothing() -> None:
    with CaptureQueriesContext(connection) as queries:
        bulk.insert_rows(Session, [])
        bulk.upsert_rows(Session, [], unique_fields=["id"], update_fields=["status"])
    assert len(queries) == 0


def test_a_value_of_another_type_is_prepared_by_its_field() -> None:
    # Not passed as is: an int for a text column, a bool for an integer, an aware datetime.
    row = session("ses_types", reference_id=123, unchanged_checks=True)
    bulk.insert_rows(Session, [row])
    values = stored("ses_types")
    assert values["reference_id"] == "123"
    assert values["unchanged_checks"] == 1
    assert values["created_at"] == WHEN
