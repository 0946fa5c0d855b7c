from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from verilock_django.models import Session, StepResult, WebhookEvent, WebhookEventStatus
from verilock_django.retention import purge
from verilock_django.store import store_session
from verilock_django.testing.factories import new_session_id, session_payload

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def stored(status: str, *, completed_days_ago: int | None, **overrides: Any) -> str:
    completed = None if completed_days_ago is None else NOW - dt.timedelta(days=completed_days_ago)
    payload = session_payload(
        id=new_session_id(), status=status, completed_at=completed, **overrides
    )
    store_session(payload)
    return str(payload["id"])


def event(session_id: str, status: str, *, days_ago: int) -> None:
    WebhookEvent.objects.create(
        webhook_id=f"wh_{session_id}_{status}_{days_ago}",
        event_type="session.completed",
        session_id=session_id,
        status=status,
        received_at=NOW - dt.timedelta(days=days_ago),
        payload={},
    )


def test_purges_old_finished_sessions_with_their_steps_and_events() -> None:
    old = stored("approved", completed_days_ago=100)
    recent = stored("declined", completed_days_ago=10)
    unfinished = stored("processing", completed_days_ago=None)
    event(old, WebhookEventStatus.PROCESSED, days_ago=100)
    event(unfinished, WebhookEventStatus.FAILED, days_ago=100)  # still needs processing
    event("ses_gone", WebhookEventStatus.IGNORED, days_ago=100)
    event("ses_gone", WebhookEventStatus.PROCESSED, days_ago=5)
    steps_before = StepResult.objects.count()
    old_steps = StepResult.objects.filter(session_id=old).count()

    report = purge(NOW - dt.timedelta(days=90))

    assert set(Session.objects.values_list("id", flat=True)) == {recent, unfinished}
    assert StepResult.objects.count() == steps_before - old_steps
    assert (report.sessions, report.step_results, report.webhook_events) == (1, old_steps, 2)
    assert set(WebhookEvent.objects.values_list("session_id", "status")) == {
        ("ses_gone", WebhookEventStatus.PROCESSED),  # recent
        (unfinished, WebhookEventStatus.FAILED),  # still to be processed
    }


def test_dry_run_counts_and_deletes_nothing() -> None:
    old = stored("expired", completed_days_ago=None)
    Session.objects.filter(pk=old).update(last_synced_at=NOW - dt.timedelta(days=400))
    event(old, WebhookEventStatus.PROCESSED, days_ago=1)

    report = purge(NOW - dt.timedelta(days=365), dry_run=True)

    assert (report.sessions, report.webhook_events) == (1, 1)
    assert Session.objects.filter(pk=old).exists()
    assert WebhookEvent.objects.count() == 1


def test_command() -> None:
    stored("approved", completed_days_ago=40)
    out = StringIO()
    call_command("purge_verilock_sessions", "--older-than", "30", "--dry-run", stdout=out)
    assert out.getvalue().startswith("Would delete 1 session(s)")
    assert Session.objects.count() == 1

    out = StringIO()
    call_command("purge_verilock_sessions", "--older-than", "30", stdout=out)
    assert out.getvalue().startswith("Deleted 1 session(s)")
    assert Session.objects.count() == 0

    with pytest.raises(CommandError, match="must be between 1 and"):
        call_command("purge_verilock_sessions", "--older-than", "0")
