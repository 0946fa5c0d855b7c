"""Identifiers are equal only when they are the same string, on every database: MySQL's and
MariaDB's default collations fold case and accents, so there one applicant's session was
stored over another's and a delivery was dropped as another's duplicate."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import connection
from django.test import Client
from django.urls import reverse

from verilock_django.fields import ExactCharField, exact_collation
from verilock_django.models import Session, StepResult, WebhookEvent
from verilock_django.privacy import erase_applicant, erase_sessions, is_erased
from verilock_django.store import Outcome, store_session
from verilock_django.testing.factories import session_payload
from verilock_django.testing.webhooks import webhook_payload

from .webhook_helpers import deliver

pytestmark = pytest.mark.django_db


def test_session_ids_differing_only_in_case_are_two_sessions() -> None:
    first = store_session(session_payload(id="ses_ABC", reference_id="alice"))
    second = store_session(session_payload(id="ses_abc", reference_id="bob"))
    third = store_session(session_payload(id="ses_abç", reference_id="carol"))

    assert {first.outcome, second.outcome, third.outcome} == {Outcome.CREATED}
    assert dict(Session.objects.values_list("id", "reference_id")) == {
        "ses_ABC": "alice",
        "ses_abc": "bob",
        "ses_abç": "carol",
    }
    assert StepResult.objects.filter(session_id="ses_abc").count() == len(
        session_payload()["results"]
    )
    assert Session.objects.filter(pk="ses_ABC").get().reference_id == "alice"


@pytest.mark.usefixtures("webhook_settings")
def test_deliveries_whose_ids_differ_only_in_case_or_accent_are_all_stored(
    client: Client,
) -> None:
    answers = [
        deliver(client, webhook_payload(session_id="ses_x", webhook_id=webhook_id)).json()
        for webhook_id in ("wh_A", "wh_a", "wh_é", "wh_e")
    ]

    assert [answer["status"] for answer in answers] == ["stored"] * 4
    assert WebhookEvent.objects.count() == 4
    assert WebhookEvent.objects.filter(webhook_id="wh_e").count() == 1


def test_an_erasure_by_reference_erases_that_reference_only() -> None:
    store_session(session_payload(id="ses_1", reference_id="Alice"))
    store_session(session_payload(id="ses_2", reference_id="alice"))

    report = erase_applicant("alice")

    assert report.session_ids == ["ses_2"]
    assert Session.objects.get(pk="ses_1").applicant_first_name != ""


def test_an_exact_collation_is_asked_of_mysql_and_mariadb_only() -> None:
    expected = exact_collation(connection)
    assert (expected is None) == (connection.vendor != "mysql")
    assert ExactCharField(max_length=8).db_parameters(connection)["collation"] == expected
    # A collation the project names is its own choice, on every database.
    named = ExactCharField(max_length=8, db_collation="utf8mb4_0900_as_cs")
    assert named.db_parameters(connection)["collation"] == "utf8mb4_0900_as_cs"


@pytest.mark.skipif(connection.vendor != "mysql", reason="the collation is MySQL's")
def test_the_identifier_columns_and_their_foreign_keys_are_binary_on_mysql() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name LIKE %s",
            ["verilock_django_%"],
        )
        found = {(table, column): collation for table, column, collation in cursor.fetchall()}
    for column in [
        ("verilock_django_session", "id"),
        ("verilock_django_session", "reference_id"),
        ("verilock_django_stepresult", "session_id"),
        ("verilock_django_stepresult", "step"),
        ("verilock_django_sessionchange", "session_id"),
        ("verilock_django_webhookevent", "webhook_id"),
        ("verilock_django_webhookevent", "session_id"),
    ]:
        assert found[column] == exact_collation(connection), column


def test_an_erasure_by_reference_takes_the_reference_as_stored_spaces_included() -> None:
    # A reference is stored as sent, surrounding spaces included: erasing "alice " must
    # erase that applicant, not "alice" (another reference on every database now).
    store_session(session_payload(id="ses_1", reference_id="alice "))
    store_session(session_payload(id="ses_2", reference_id="alice"))
    store_session(session_payload(id="ses_3", reference_id=" alice"))

    report = erase_applicant("alice ")

    assert report.session_ids == ["ses_1"]
    assert sorted(Session.objects.values_list("id", flat=True)) == ["ses_2", "ses_3"]
    assert erase_applicant(" alice").session_ids == ["ses_3"]
    assert list(Session.objects.values_list("id", flat=True)) == ["ses_2"]


def test_the_admin_erases_the_selected_applicants_whatever_their_references(
    admin_client: Client,
) -> None:
    store_session(session_payload(id="ses_1", reference_id="alice "))
    store_session(session_payload(id="ses_2", reference_id="alice"))
    store_session(session_payload(id="ses_3", reference_id=" "))
    changelist = reverse("admin:verilock_django_session_changelist")

    response = admin_client.post(
        changelist,
        {"action": "erase_applicants", "_selected_action": ["ses_1", "ses_3"]},
        follow=True,
    )

    assert response.status_code == 200
    assert list(Session.objects.values_list("id", flat=True)) == ["ses_2"]
    assert is_erased("ses_1") and is_erased("ses_3") and not is_erased("ses_2")


def test_an_erasure_leaves_the_admin_history_of_a_session_differing_only_in_case(
    admin_user: Any,
) -> None:
    # The admin's LogEntry.object_id is Django's text column, in the database's default
    # collation: on MySQL and MariaDB 'ses_abc' there matched the entries of 'ses_ABC'.
    for session_id in ("ses_ABC", "ses_abc"):
        store_session(session_payload(id=session_id))
        session = Session.objects.get(pk=session_id)
        LogEntry.objects.log_actions(
            admin_user.pk, [session], CHANGE, change_message="Refreshed from Verilock."
        )

    report = erase_sessions(["ses_abc"])

    assert report.log_entries == 1
    assert list(LogEntry.objects.values_list("object_id", flat=True)) == ["ses_ABC"]
