"""Less travelled paths of the sync service: stale payloads under a lease, unreadable stored
payloads, and databases without an upsert statement."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from verilock_django.models import Session, StepResult
from verilock_django.store import Outcome, store_session

pytestmark = pytest.mark.django_db


def steps_of(session_id: str) -> list[tuple[str, str]]:
    return list(
        StepResult.objects.filter(session_id=session_id)
        .order_by("position")
        .values_list("step", "status")
    )


def test_a_stale_payload_changes_nothing_but_still_releases_the_lease(
    seed: dict[str, Any],
) -> None:
    store_session(seed)
    leased_until = timezone.now() + dt.timedelta(minutes=10)
    Session.objects.filter(pk=seed["id"]).update(lease_expires_at=leased_until)
    older = {**seed, "status": "processing"}

    result = store_session(older, release_lease=True)

    session = Session.objects.get(pk=seed["id"])
    assert result.outcome is Outcome.STALE
    assert session.status == "approved"
    assert session.lease_expires_at is None


def test_stale_payload_without_a_lease_leaves_the_lease_alone(seed: dict[str, Any]) -> None:
    store_session(seed)
    leased_until = timezone.now() + dt.timedelta(minutes=10)
    Session.objects.filter(pk=seed["id"]).update(lease_expires_at=leased_until)

    store_session({**seed, "status": "processing"})

    assert Session.objects.get(pk=seed["id"]).lease_expires_at == leased_until


def test_an_unreadable_stored_payload_is_replaced_with_every_step_rewritten(
    seed: dict[str, Any],
) -> None:
    store_session(seed)
    # A row written by an older release, or by hand: its raw JSON no longer parses.
    Session.objects.filter(pk=seed["id"]).update(payload={"id": seed["id"], "results": []})
    StepResult.objects.filter(session_id=seed["id"], step="aml").update(status="tampered")
    StepResult.objects.create(session_id=seed["id"], step="legacy", status="x", position=9)

    result = store_session(seed)

    assert result.outcome is Outcome.UPDATED
    assert steps_of(seed["id"]) == [
        (step, seed["results"][step]["status"]) for step in seed["steps"]
    ]


def test_steps_are_stored_on_a_database_without_upsert_support(
    seed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store_session({**seed, "status": "processing"})
    monkeypatch.setattr(connection.features, "supports_update_conflicts", False)
    updated = {**seed, "results": {**seed["results"], "aml": {"status": "review"}}}
    updated["steps"] = [s for s in seed["steps"] if s != "selfie"]
    del updated["results"]["selfie"]

    assert store_session(updated).outcome is Outcome.UPDATED

    assert steps_of(seed["id"]) == [
        (step, updated["results"][step]["status"]) for step in updated["steps"]
    ]
    assert StepResult.objects.filter(session_id=seed["id"]).count() == len(updated["steps"])


def test_refresh_order_puts_never_checked_sessions_first_then_the_most_overdue() -> None:
    now = timezone.now()
    Session.objects.create(id="ses_later", next_check_at=now + dt.timedelta(hours=1))
    Session.objects.create(id="ses_overdue", next_check_at=now - dt.timedelta(hours=1))
    Session.objects.create(id="ses_new")
    Session.objects.create(id="ses_done", status="approved")
    ordered = Session.objects.unfinished().in_refresh_order()
    assert list(ordered.values_list("id", flat=True)) == ["ses_new", "ses_overdue", "ses_later"]
