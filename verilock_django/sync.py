"""The one path that writes sessions: fetch from Verilock, parse, store.

Every door (command, admin action, webhook, task) calls these functions. HTTP never runs
inside a database transaction, and a failed fetch or an unusable payload leaves the stored
session exactly as it was, apart from its ``last_sync_error``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from .client import VerilockClient, get_client
from .conf import verilock_settings
from .exceptions import AuthenticationError, PayloadError, VerilockError
from .models import Session, StepResult
from .payloads import SessionData, parse_session
from .signals import session_finished, session_updated

logger = logging.getLogger(__name__)

#: Columns of :class:`Session` filled from the payload.
SESSION_FIELDS = (
    "type",
    "status",
    "decision",
    "reference_id",
    "steps",
    "applicant_first_name",
    "applicant_last_name",
    "applicant_email",
    "applicant_date_of_birth",
    "applicant_nationality",
    "hosted_url",
    "risk_score",
    "created_at",
    "completed_at",
    "expires_at",
    "raw",
)
STEP_FIELDS = ("position", "status", "score", "details", "raw")
ERROR_MAX_LENGTH = 2000


class Outcome(str, Enum):
    """What one sync did to one session."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"  # the payload was older than what is stored; nothing written
    FAILED = "failed"


@dataclass
class SyncResult:
    """The result of syncing one session."""

    session_id: str
    outcome: Outcome
    error: VerilockError | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass
class SyncReport:
    """Totals for a batch; failures keep their error message per session id."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    elapsed: float = 0.0

    @property
    def synced(self) -> int:
        """Sessions whose stored data changed (created or updated)."""
        return self.created + self.updated

    @property
    def fetched(self) -> int:
        """Sessions fetched successfully."""
        return self.created + self.updated + self.unchanged + self.stale

    def add(self, result: SyncResult) -> None:
        """Count one session's result."""
        if result.outcome is Outcome.FAILED:
            self.failed[result.session_id] = str(result.error)
        else:
            setattr(self, result.outcome.value, getattr(self, result.outcome.value) + 1)

    def summary(self) -> str:
        """One line for logs and the command's output."""
        return (
            f"{self.fetched} fetched: {self.synced} changed ({self.created} new), "
            f"{self.unchanged + self.stale} unchanged, {len(self.failed)} failed; "
            f"{self.requests} requests in {self.elapsed:.1f}s"
        )


def store_session(
    payload: object,
    *,
    requested_id: str | None = None,
    fetched_at: dt.datetime | None = None,
) -> SyncResult:
    """Upsert a session and all its steps from one payload, in one transaction.

    Steps the provider no longer reports are removed. ``fetched_at`` is when the payload
    was requested: a payload requested before the stored one is stale and ignored, as is
    one that would move a finished session back to unfinished.
    """
    data = parse_session(payload)
    if requested_id is not None and data.id != requested_id:
        raise PayloadError(
            "id",
            f"the API answered session {data.id!r} for {requested_id!r}",
            session_id=requested_id,
        )
    now = timezone.now()
    fetched_at = fetched_at or now
    with transaction.atomic():
        session = Session.objects.select_for_update().filter(pk=data.id).first()
        created = session is None
        if session is None:
            session = Session(id=data.id, first_synced_at=now)
        elif _is_stale(session, data, fetched_at):
            return SyncResult(data.id, Outcome.STALE)
        elif session.raw == data.raw and session.last_synced_at is not None:
            Session.objects.filter(pk=data.id).update(
                last_synced_at=now, last_sync_error="", data_fetched_at=fetched_at
            )
            return SyncResult(data.id, Outcome.UNCHANGED)

        was_finished = not created and session.is_finished
        changes = _apply(session, data)
        if session.first_synced_at is None:
            session.first_synced_at = now
        session.last_synced_at = now
        session.last_sync_error = ""
        session.data_fetched_at = fetched_at
        session.save(force_insert=created)
        if _store_steps(session, data, replace=not created):
            changes["results"] = (None, None)

        transaction.on_commit(lambda: _send_signals(session, created, changes, was_finished))
    return SyncResult(data.id, Outcome.CREATED if created else Outcome.UPDATED, changes=changes)


def sync_session(session_id: str, *, client: VerilockClient | None = None) -> SyncResult:
    """Fetch one session from Verilock and store it (creating it if unknown).

    On failure the error is recorded on the stored row (if any) and raised.
    """
    client = client or get_client()
    fetched_at = timezone.now()
    try:
        payload = client.get_session(session_id)
        return store_session(payload, requested_id=session_id, fetched_at=fetched_at)
    except VerilockError as exc:
        exc.session_id = exc.session_id or session_id
        record_failure(session_id, exc)
        raise


def sync_sessions(
    session_ids: Iterable[str],
    *,
    client: VerilockClient | None = None,
    on_result: Callable[[SyncResult], None] | None = None,
) -> SyncReport:
    """Sync the given sessions one by one; one failure never stops the batch.

    A refused API key (401/403) aborts the batch by raising
    :class:`~verilock_django.exceptions.AuthenticationError`: every other call would fail
    the same way.
    """
    client = client or get_client()
    report = SyncReport()
    started = time.monotonic()
    requests_before = client.request_count
    try:
        for session_id in session_ids:
            try:
                result = sync_session(session_id, client=client)
            except AuthenticationError:
                raise
            except VerilockError as exc:
                logger.warning("Sync of Verilock session %s failed: %s", session_id, exc)
                result = SyncResult(session_id, Outcome.FAILED, error=exc)
            report.add(result)
            if on_result is not None:
                on_result(result)
    finally:
        report.requests = client.request_count - requests_before
        report.elapsed = time.monotonic() - started
    return report


def sync_unfinished_sessions(
    *,
    limit: int | None = None,
    client: VerilockClient | None = None,
    on_result: Callable[[SyncResult], None] | None = None,
) -> SyncReport:
    """Refresh every session that is not finished (the oldest-synced first)."""
    return sync_sessions(unfinished_session_ids(limit=limit), client=client, on_result=on_result)


def unfinished_session_ids(*, limit: int | None = None) -> Iterable[str]:
    """Ids of unfinished sessions, never-synced and least recently synced first."""
    queryset = (
        Session.objects.unfinished()
        .order_by(F("last_synced_at").asc(nulls_first=True), "id")
        .values_list("id", flat=True)
    )
    if limit is not None:
        queryset = queryset[:limit]
    return queryset.iterator(chunk_size=500)


def record_failure(session_id: str, error: VerilockError) -> None:
    """Keep the error on the stored session; nothing else about it changes."""
    Session.objects.filter(pk=session_id).update(last_sync_error=str(error)[:ERROR_MAX_LENGTH])


# -- internals -----------------------------------------------------------------------


def _is_stale(session: Session, data: SessionData, fetched_at: dt.datetime) -> bool:
    # A response to an older request must not overwrite one to a newer request, and a
    # finished session never returns to unfinished (Verilock has no such transition).
    if session.data_fetched_at is not None and fetched_at < session.data_fetched_at:
        return True
    finished = verilock_settings.finished_statuses
    return session.status in finished and data.status not in finished


def _apply(session: Session, data: SessionData) -> dict[str, tuple[Any, Any]]:
    changes: dict[str, tuple[Any, Any]] = {}
    for name in SESSION_FIELDS:
        old, new = getattr(session, name), getattr(data, name)
        if old != new:
            if name != "raw":
                changes[name] = (old, new)
            setattr(session, name, new)
    return changes


def _store_steps(session: Session, data: SessionData, *, replace: bool) -> bool:
    """Upsert the steps in one statement and delete the ones no longer reported."""
    rows = [
        StepResult(
            session=session,
            step=step.step,
            position=position,
            status=step.status,
            score=step.score,
            details=step.details,
            raw=step.raw,
        )
        for position, step in enumerate(data.results)
    ]
    changed = bool(rows)
    if rows:
        features = connection.features
        if replace and features.supports_update_conflicts:
            StepResult.objects.bulk_create(
                rows,
                update_conflicts=True,
                update_fields=list(STEP_FIELDS),
                unique_fields=(
                    ["session", "step"] if features.supports_update_conflicts_with_target else None
                ),
            )
        elif replace:
            for row in rows:
                StepResult.objects.update_or_create(
                    session=session,
                    step=row.step,
                    defaults={name: getattr(row, name) for name in STEP_FIELDS},
                )
        else:
            StepResult.objects.bulk_create(rows)
    if replace:
        deleted, _ = (
            StepResult.objects.filter(session=session)
            .exclude(step__in=[step.step for step in data.results])
            .delete()
        )
        changed = changed or bool(deleted)
    return changed


def _send_signals(
    session: Session, created: bool, changes: dict[str, tuple[Any, Any]], was_finished: bool
) -> None:
    session_updated.send(sender=Session, session=session, created=created, changes=changes)
    if session.is_finished and not was_finished:
        session_finished.send(sender=Session, session=session)
