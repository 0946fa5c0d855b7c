"""Retention: personal data blanked after VERILOCK_PII_RETENTION_DAYS, the decision kept;
webhook events of every state deleted after VERILOCK_WEBHOOK_RETENTION_DAYS."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from verilock_django.models import Session, StepResult, WebhookEvent, WebhookEventStatus
from verilock_django.privacy import apply_retention
from verilock_django.store import store_session
from verilock_django.testing.factories import new_session_id, session_payload

pytestmark = pytest.mark.django_db

NOW = timezone.now()
APPLICANT_VALUES = ("Jean", "Dupont", "jean.dupont@example.com", "1990-05-15", "12AB34567")


def stored(status: str = "approved", *, days_ago: int | None = 100, **overrides: Any) -> str:
    completed = None if days_ago is None else NOW - dt.timedelta(days=days_ago)
    payload = session_payload(
        id=new_session_id(), status=status, completed_at=completed, **overrides
    )
    store_session(payload)
    return str(payload["id"])


def event(status: str, *, days_ago: int, session_id: str = "ses_x") -> WebhookEvent:
    return WebhookEvent.objects.create(
        webhook_id=f"wh_{status}_{days_ago}_{WebhookEvent.objects.count()}",
        event_type="session.completed",
        session_id=session_id,
        status=status,
        received_at=NOW - dt.timedelta(days=days_ago),
        payload={"data": {"session_id": session_id, "applicant_name": "Jean Dupont"}},
    )


def decision_view(session_id: str) -> tuple[Any, ...]:
    session = Session.objects.get(pk=session_id)
    steps = tuple(session.results.values_list("step", "position", "status", "score"))
    return (
        session.status,
        session.decision,
        session.reference_id,
        session.risk_score,
        session.created_at,
        session.completed_at,
        session.steps,
        steps,
    )


@pytest.fixture
def retention(settings: Any) -> None:
    settings.VERILOCK_PII_RETENTION_DAYS = 90
    settings.VERILOCK_WEBHOOK_RETENTION_DAYS = 30


@pytest.mark.usefixtures("retention")
def test_old_finished_sessions_lose_their_personal_data_and_keep_their_decision() -> None:
    old = stored("declined", declined_step="aml")
    kept_decision = decision_view(old)
    recent = stored("approved", days_ago=10)
    unfinished = stored("processing", days_ago=None)
    Session.objects.filter(pk=unfinished).update(last_synced_at=NOW - dt.timedelta(days=400))

    report = apply_retention()

    assert (report.sessions, report.step_results) == (1, 5)
    session = Session.objects.get(pk=old)
    assert decision_view(old) == kept_decision
    assert (
        session.applicant_first_name,
        session.applicant_last_name,
        session.applicant_email,
        session.applicant_date_of_birth,
        session.applicant_nationality,
    ) == ("", "", "", None, "")
    assert session.personal_data_removed_at is not None
    steps = list(StepResult.objects.filter(session_id=old))
    assert len(steps) == 5
    assert all((row.details, row.payload) == ({}, {}) for row in steps)
    # The payload keeps the decision record only: no value of the applicant is left.
    assert session.payload["status"] == "declined"
    assert session.payload["results"]["aml"]["status"] == "declined"
    assert "applicant" not in session.payload
    assert not any(value in str(session.payload) for value in APPLICANT_VALUES)
    for untouched in (recent, unfinished):
        row = Session.objects.get(pk=untouched)
        assert row.applicant_email == "jean.dupont@example.com"
        assert row.personal_data_removed_at is None
        assert StepResult.objects.filter(session=row).exclude(details={}).exists()


@pytest.mark.usefixtures("retention")
def test_a_gen_b_decline_reason_is_part_of_the_decision_record() -> None:
    session_id = stored("declined", shape="b", decline_reason="document_expired")

    apply_retention()

    payload = Session.objects.get(pk=session_id).payload
    assert payload["decline_reason"] == "document_expired"
    assert "applicant_name" not in payload and "applicant_email" not in payload
    assert all("extracted_data" not in document for document in payload.get("documents", []))


@pytest.mark.usefixtures("retention")
def test_running_twice_changes_nothing_the_second_time() -> None:
    for _ in range(3):
        stored()
    first = apply_retention()
    snapshot = list(Session.objects.order_by("pk").values())

    with CaptureQueriesContext(connection) as queries:
        second = apply_retention()

    assert first.sessions == 3
    assert (second.sessions, second.step_results, second.webhook_events) == (0, 0, 0)
    assert list(Session.objects.order_by("pk").values()) == snapshot
    assert len(queries) == 2  # one empty page of sessions, one of events


@pytest.mark.usefixtures("retention")
def test_a_session_stored_again_after_blanking_is_blanked_again() -> None:
    session_id = stored()
    apply_retention(now=NOW)
    payload = session_payload(
        id=session_id, status="approved", completed_at=NOW - dt.timedelta(days=100)
    )
    store_session(payload, fetched_at=timezone.now())  # an explicit sync brought it back
    assert Session.objects.get(pk=session_id).applicant_email

    report = apply_retention(now=timezone.now())

    assert report.sessions == 1
    assert Session.objects.get(pk=session_id).applicant_email == ""


@pytest.mark.usefixtures("retention")
def test_webhook_events_of_every_state_are_deleted_after_their_retention() -> None:
    for status in WebhookEventStatus.values:
        event(status, days_ago=31)
    recent = event(WebhookEventStatus.PENDING, days_ago=29)

    report = apply_retention()

    assert report.webhook_events == len(WebhookEventStatus.values)
    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [recent.pk]


@pytest.mark.usefixtures("retention")
def test_work_is_done_in_short_chunks() -> None:
    for _ in range(5):
        stored()
    for _ in range(3):
        event(WebhookEventStatus.PROCESSED, days_ago=40)

    report = apply_retention(chunk_size=2)

    assert report.sessions == 5 and report.webhook_events == 3
    assert report.transactions == 3 + 2  # ceil(5 / 2) chunks of sessions, ceil(3 / 2) of events
    assert not Session.objects.exclude(applicant_email="").exists()


@pytest.mark.usefixtures("retention")
def test_dry_run_counts_and_changes_nothing() -> None:
    session_id = stored()
    event(WebhookEventStatus.FAILED, days_ago=100)

    report = apply_retention(dry_run=True)

    assert (report.sessions, report.step_results, report.webhook_events) == (1, 5, 1)
    assert Session.objects.get(pk=session_id).applicant_email
    assert WebhookEvent.objects.count() == 1


def test_unset_periods_keep_everything(settings: Any) -> None:
    settings.VERILOCK_PII_RETENTION_DAYS = None
    settings.VERILOCK_WEBHOOK_RETENTION_DAYS = None
    stored(days_ago=5000)
    event(WebhookEventStatus.PROCESSED, days_ago=5000)

    report = apply_retention()

    assert (report.sessions, report.webhook_events) == (0, 0)
    assert Session.objects.exclude(applicant_email="").count() == 1
    assert WebhookEvent.objects.count() == 1


@pytest.mark.usefixtures("retention")
def test_command_prints_counts_and_honours_dry_run(settings: Any) -> None:
    stored()
    event(WebhookEventStatus.PROCESSED, days_ago=100)
    out = StringIO()
    call_command("apply_verilock_retention", "--dry-run", stdout=out)
    assert out.getvalue() == (
        "Would blank the personal data of 1 session(s) (5 step result(s)); "
        "would delete 1 webhook event(s).\n"
    )
    assert Session.objects.exclude(applicant_email="").count() == 1

    out = StringIO()
    call_command("apply_verilock_retention", stdout=out)
    assert "Blanked the personal data of 1 session(s)" in out.getvalue()
    assert "deleted 1 webhook event(s)" in out.getvalue()

    settings.VERILOCK_PII_RETENTION_DAYS = None
    out = StringIO()
    call_command("apply_verilock_retention", stdout=out)
    assert out.getvalue().startswith("VERILOCK_PII_RETENTION_DAYS is not set: that data is kept.")


@pytest.mark.usefixtures("retention")
def test_the_admin_shows_a_blanked_session(admin_client: Client) -> None:
    session_id = stored()
    apply_retention()

    page = admin_client.get(
        reverse("admin:verilock_django_session_change", args=(quote(session_id),))
    )
    listing = admin_client.get(reverse("admin:verilock_django_session_changelist"))

    assert page.status_code == listing.status_code == 200
    content = page.content.decode()
    assert "usr_12345" in content and "approved" in content.lower()
    assert not any(value in content for value in APPLICANT_VALUES)
