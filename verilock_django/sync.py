"""The one path that writes sessions: fetch from Verilock, parse, store.

Every door (command, admin action, webhook, task) calls these functions. HTTP never runs
inside a database transaction, and a failed fetch or an unusable payload leaves the stored
session exactly as it was, apart from its ``last_sync_error`` and its next check time.

Ordering rule (never go backwards): a payload is *stale*, and nothing is written, when

1. it was requested before the stored payload was (``fetched_at`` < ``data_fetched_at``;
   both are this server's clock, so no trust in the provider's clocks is needed), or
2. it would move the session back in its lifecycle: out of a finished status, or to an
   earlier documented status (``created`` < ``in_progress`` < ``processing`` < ``review``
   < finished). Statuses the provider has not documented have no rank and are accepted.

The batch refresh (many sessions, threads, leases, the list endpoint) lives in
:mod:`verilock_django.refresh`; ``sync_sessions`` and ``sync_unfinished_sessions`` are its
entry points here.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from .client import VerilockClient, get_client
from .conf import verilock_settings
from .exceptions import PayloadError, VerilockError
from .models import Session, StepResult
from .payloads import SessionData, StepData, parse_session
from .signals import session_finished, session_updated
from .statuses import UNFINISHED_RANK

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
    "payload",
)
STEP_FIELDS = ("position", "status", "score", "details", "payload")
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
    #: Unfinished sessions whose status the list endpoint showed unchanged (not fetched).
    confirmed: int = 0
    #: Changed sessions left to another run that holds their lease.
    skipped: int = 0
    #: The run stopped claiming work at its time limit (``max_runtime``).
    stopped: bool = False

    @property
    def synced(self) -> int:
        """Sessions whose stored data changed (created or updated)."""
        return self.created + self.updated

    @property
    def fetched(self) -> int:
        """Sessions fetched successfully."""
        return self.created + self.updated + self.unchanged + self.stale

    @property
    def settled(self) -> int:
        """Sessions this batch is done with: fetched, failed or confirmed by the list."""
        return self.fetched + len(self.failed) + self.confirmed

    def add(self, result: SyncResult) -> None:
        """Count one session's result."""
        if result.outcome is Outcome.FAILED:
            self.failed[result.session_id] = str(result.error)
        else:
            setattr(self, result.outcome.value, getattr(self, result.outcome.value) + 1)

    def summary(self) -> str:
        """One line for logs and the command's output."""
        listed = f"{self.confirmed} unchanged in the list, " if self.confirmed else ""
        skipped = f"{self.skipped} left to another run, " if self.skipped else ""
        stopped = " (stopped at the time limit)" if self.stopped else ""
        return (
            f"{self.fetched} fetched: {self.synced} changed ({self.created} new), "
            f"{self.unchanged + self.stale} unchanged, {len(self.failed)} failed; "
            f"{listed}{skipped}{self.requests} requests in {self.elapsed:.1f}s{stopped}"
        )


def store_session(
    payload: object,
    *,
    requested_id: str | None = None,
    fetched_at: dt.datetime | None = None,
    release_lease: bool = False,
) -> SyncResult:
    """Upsert a session and all its steps from one payload, in one transaction.

    Steps the provider no longer reports are removed. ``fetched_at`` is when the payload
    was requested; a stale payload (see the module's ordering rule) is ignored.
    ``release_lease`` also ends the batch refresh's claim on the row.
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
    lease: dict[str, Any] = {"lease_expires_at": None} if release_lease else {}
    with transaction.atomic():
        session = Session.objects.select_for_update().filter(pk=data.id).first()
        created = session is None
        if session is None:
            session = Session(id=data.id, first_synced_at=now)
        elif _is_stale(session, data, fetched_at):
            if lease:
                Session.objects.filter(pk=data.id).update(**lease)
            return SyncResult(data.id, Outcome.STALE)
        elif session.payload == data.payload and session.last_synced_at is not None:
            checks = session.unchanged_checks + 1
            Session.objects.filter(pk=data.id).update(
                last_synced_at=now,
                last_sync_error="",
                data_fetched_at=fetched_at,
                unchanged_checks=checks,
                next_check_at=None if session.is_finished else next_check_time(checks, now),
                **lease,
            )
            return SyncResult(data.id, Outcome.UNCHANGED)

        was_finished = not created and session.is_finished
        old_results = None if created else _stored_results(session)
        changes = _apply(session, data)
        if session.first_synced_at is None:
            session.first_synced_at = now
        session.last_synced_at = now
        session.last_sync_error = ""
        session.data_fetched_at = fetched_at
        session.unchanged_checks = 0
        session.next_check_at = None if session.is_finished else next_check_time(0, now)
        if release_lease:
            session.lease_expires_at = None
        session.save(force_insert=created)
        if _store_steps(session, data, created=created, old_results=old_results):
            changes["results"] = (None, None)

        transaction.on_commit(lambda: _send_signals(session, created, changes, was_finished))
    return SyncResult(data.id, Outcome.CREATED if created else Outcome.UPDATED, changes=changes)


def next_check_time(unchanged_checks: int, now: dt.datetime) -> dt.datetime:
    """When a still-unfinished session is due again: the interval doubles per check.

    Starts at ``VERILOCK_RECHECK_MIN_INTERVAL`` and stops growing at
    ``VERILOCK_RECHECK_MAX_INTERVAL`` (seconds).
    """
    low = verilock_settings.recheck_min_interval
    high = verilock_settings.recheck_max_interval
    return now + dt.timedelta(seconds=max(0.0, min(high, low * 2 ** min(unchanged_checks, 32))))


def step_rows(session: Session, data: SessionData) -> list[StepResult]:
    """Unsaved :class:`StepResult` rows for a session's parsed steps, in provider order."""
    return [
        StepResult(
            session=session,
            step=step.step,
            position=position,
            status=step.status,
            score=step.score,
            details=step.details,
            payload=step.payload,
        )
        for position, step in enumerate(data.results)
    ]


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
    concurrency: int | None = None,
) -> SyncReport:
    """Sync the given sessions (fetched in parallel threads); one failure never stops the batch.

    A refused API key (401/403) aborts the batch by raising
    :class:`~verilock_django.exceptions.AuthenticationError`: every other call would fail
    the same way.
    """
    # refresh.py builds on this module, so it is imported when first needed.
    from .refresh import fetch_and_store

    return fetch_and_store(
        session_ids, client=client, on_result=on_result, concurrency=concurrency
    )


def sync_unfinished_sessions(
    *,
    limit: int | None = None,
    client: VerilockClient | None = None,
    on_result: Callable[[SyncResult], None] | None = None,
    full: bool = False,
    concurrency: int | None = None,
    max_runtime: float | None = None,
    on_progress: Callable[[SyncReport, int], None] | None = None,
) -> SyncReport:
    """Refresh unfinished sessions: the changed ones via the list endpoint, or all (``full``).

    See :func:`verilock_django.refresh.refresh_unfinished` for the options.
    """
    from .refresh import refresh_unfinished

    return refresh_unfinished(
        limit=limit,
        client=client,
        on_result=on_result,
        full=full,
        concurrency=concurrency,
        max_runtime=max_runtime,
        on_progress=on_progress,
    )


def unfinished_session_ids(*, limit: int | None = None) -> Iterable[str]:
    """Ids of unfinished sessions, in the order a by-id refresh takes them (streamed)."""
    queryset = (
        Session.objects.unfinished()
        .order_by(
            F("next_check_at").asc(nulls_first=True),
            F("last_synced_at").asc(nulls_first=True),
            "id",
        )
        .values_list("id", flat=True)
    )
    if limit is not None:
        queryset = queryset[:limit]
    return queryset.iterator(chunk_size=500)


def record_failure(session_id: str, error: VerilockError, *, release_lease: bool = False) -> None:
    """Keep the error on the stored session and retry it after the minimum interval.

    Nothing else about the session changes.
    """
    now = timezone.now()
    updates: dict[str, Any] = {
        "last_sync_error": str(error)[:ERROR_MAX_LENGTH],
        "next_check_at": next_check_time(0, now),
    }
    if release_lease:
        updates["lease_expires_at"] = None
    Session.objects.filter(pk=session_id).update(**updates)


# -- internals -----------------------------------------------------------------------


def _is_stale(session: Session, data: SessionData, fetched_at: dt.datetime) -> bool:
    # See the ordering rule in the module docstring.
    if session.data_fetched_at is not None and fetched_at < session.data_fetched_at:
        return True
    stored, incoming = _rank(session.status), _rank(data.status)
    return stored is not None and incoming is not None and incoming < stored


def _rank(status: str) -> int | None:
    if status in verilock_settings.finished_statuses:
        return len(UNFINISHED_RANK)
    return UNFINISHED_RANK.get(status)


def _stored_results(session: Session) -> list[StepData] | None:
    """The step results stored for a session, read from its last payload (no query).

    ``None`` when that payload cannot be read: the caller then rewrites every step.
    """
    if not session.payload:
        return []  # a pending row: no step was ever stored
    try:
        return parse_session(session.payload).results
    except PayloadError:
        return None


def _apply(session: Session, data: SessionData) -> dict[str, tuple[Any, Any]]:
    changes: dict[str, tuple[Any, Any]] = {}
    for name in SESSION_FIELDS:
        old, new = getattr(session, name), getattr(data, name)
        if old != new:
            if name != "payload":
                changes[name] = (old, new)
            setattr(session, name, new)
    return changes


def _store_steps(
    session: Session, data: SessionData, *, created: bool, old_results: list[StepData] | None
) -> bool:
    """Upsert the steps in one statement and delete the ones no longer reported.

    Both statements are skipped when the stored steps say they would change nothing, so
    an update usually costs three queries (lock, session, steps).
    """
    if old_results is not None and old_results == data.results:
        return False
    rows = step_rows(session, data)
    if rows:
        features = connection.features
        if created:
            StepResult.objects.bulk_create(rows)
        elif features.supports_update_conflicts:
            StepResult.objects.bulk_create(
                rows,
                update_conflicts=True,
                update_fields=list(STEP_FIELDS),
                unique_fields=(
                    ["session", "step"] if features.supports_update_conflicts_with_target else None
                ),
            )
        else:
            for row in rows:
                StepResult.objects.update_or_create(
                    session=session,
                    step=row.step,
                    defaults={name: getattr(row, name) for name in STEP_FIELDS},
                )
    new_steps = {step.step for step in data.results}
    gone = old_results is None or any(step.step not in new_steps for step in old_results)
    if not created and gone:
        StepResult.objects.filter(session=session).exclude(step__in=new_steps).delete()
    return True


def _send_signals(
    session: Session, created: bool, changes: dict[str, tuple[Any, Any]], was_finished: bool
) -> None:
    session_updated.send(sender=Session, session=session, created=created, changes=changes)
    if session.is_finished and not was_finished:
        session_finished.send(sender=Session, session=session)
