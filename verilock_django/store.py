"""The only module that writes session rows: one payload in, one upsert out.

:func:`store_session` writes a parsed payload (session and steps, one transaction);
:func:`record_failure` keeps an error on the row and nothing else; :func:`confirm_listed`,
:func:`claim_sessions` and :func:`release_leases` are the batch refresh's bookkeeping. No
HTTP happens here: callers fetch first and store after.

Ordering rule (never go backwards): a payload is *stale*, and nothing is written, when

1. it was requested before the stored payload was (``fetched_at`` < ``data_fetched_at``;
   both are this server's clock, so no trust in the provider's clocks is needed), or
2. it would move the session back in its lifecycle: out of a finished status, or to an
   earlier documented status (see :data:`verilock_django.statuses.UNFINISHED_RANK`).
   Statuses the provider has not documented have no rank and are accepted.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import secrets
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from .conf import verilock_settings
from .exceptions import PayloadError, VerilockError
from .models import Session, SessionChange, SessionQuerySet, StepResult
from .outcomes import Assessment, StepAssessment, assess
from .payloads import SessionData, StepData, parse_session
from .signals import session_finished, session_updated
from .statuses import UNFINISHED_RANK

#: Columns of :class:`Session` filled from the payload.
SESSION_FIELDS = (
    "type",
    "status",
    "decision",
    "decline_reason",
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
STEP_FIELDS = ("position", "status", "outcome", "score", "score_scale", "details", "payload")
#: Session columns whose old and new values the history keeps; applicant fields are
#: recorded as changed, without their values.
HISTORY_FIELDS = ("status", "decision", "decline_reason")
#: Who asked for the stores made inside :func:`recorded_as` (the history's ``trigger``).
_trigger: contextvars.ContextVar[str] = contextvars.ContextVar("verilock_trigger", default="sync")
#: Longest error text kept on a row (``Session.last_sync_error``, ``WebhookEvent.last_error``).
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
    """The result of syncing one session: its outcome, the error if it failed, what changed.

    ``changes`` maps a changed column to ``(old, new)``; ``"results"`` stands for the steps.
    """

    session_id: str
    outcome: Outcome
    error: VerilockError | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def store_session(
    payload: object,
    *,
    requested_id: str | None = None,
    fetched_at: dt.datetime | None = None,
    release_lease: bool = False,
    trigger: str | None = None,
) -> SyncResult:
    """Upsert a session and all its steps from one payload, in one transaction.

    A created or updated session gets :class:`~verilock_django.models.SessionChange` rows
    in the same transaction; ``trigger`` (default: the one set by :func:`recorded_as`, else
    ``"sync"``) says who asked.

    Steps the provider no longer reports are removed. ``fetched_at`` is when the payload
    was requested (default: now); a stale payload (see the module's ordering rule) is
    ignored. ``release_lease`` also ends the batch refresh's claim on the row.
    Raises :class:`~verilock_django.exceptions.PayloadError` for an unusable payload (then
    nothing is written).
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
        old_data = None if created else _stored_data(session)
        old_results = None if old_data is None else old_data.results
        old_steps = {} if old_data is None else assess(old_data).steps
        assessment = assess(data)
        if old_steps != assessment.steps and old_results == data.results:
            old_results = []  # same steps, new outcomes (a new decision): rewrite them
        changes = _apply(session, data, assessment)
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
        if _store_steps(session, data, assessment, created=created, old_results=old_results):
            changes["results"] = (None, None)
        who = (trigger or _trigger.get())[:255]
        _record_history(session, changes, old_steps, assessment, who, now)

        transaction.on_commit(lambda: _send_signals(session, created, changes, was_finished))
    return SyncResult(data.id, Outcome.CREATED if created else Outcome.UPDATED, changes=changes)


def record_failure(session_id: str, error: Exception, *, release_lease: bool = False) -> None:
    """Keep ``error``'s message on the stored session and retry it after the minimum interval.

    Nothing else about the session changes; an unknown ``session_id`` is left unknown.
    """
    now = timezone.now()
    updates: dict[str, Any] = {
        "last_sync_error": str(error)[:ERROR_MAX_LENGTH],
        "next_check_at": next_check_time(0, now),
    }
    if release_lease:
        updates["lease_expires_at"] = None
    Session.objects.filter(pk=session_id).update(**updates)


def confirm_listed(session_ids: Collection[str]) -> int:
    """Mark sessions the list endpoint showed unchanged as checked now; returns the row count.

    Only ``last_synced_at`` moves: the stored payload stays what was last fetched.
    """
    if not session_ids:
        return 0
    return Session.objects.filter(pk__in=session_ids).update(last_synced_at=timezone.now())


def claim_sessions(candidates: SessionQuerySet, size: int) -> tuple[list[str], str | None]:
    """Lease up to ``size`` of ``candidates`` (ordered by id) for ``VERILOCK_LEASE_SECONDS``.

    Returns the ids won and the last candidate id looked at (``None``: no candidates left).
    ``SELECT … FOR UPDATE SKIP LOCKED`` where the database has it, a conditional ``UPDATE``
    elsewhere, so of several runs racing for a row exactly one wins it.
    """
    if size <= 0:
        return [], None
    # Unique per claim: on databases without SKIP LOCKED the expiry doubles as the token
    # that tells which rows this claim won.
    until = timezone.now() + dt.timedelta(
        seconds=verilock_settings.lease_seconds, microseconds=secrets.randbelow(10**6)
    )
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            ids = list(
                candidates.select_for_update(skip_locked=True).values_list("id", flat=True)[:size]
            )
            if ids:
                Session.objects.filter(pk__in=ids).update(lease_expires_at=until)
        return ids, (ids[-1] if ids else None)
    ids = list(candidates.values_list("id", flat=True)[:size])
    if not ids:
        return [], None
    # The conditional UPDATE is atomic: of two runs racing for a row, one matches it.
    if candidates.filter(pk__in=ids).update(lease_expires_at=until) == len(ids):
        return ids, ids[-1]
    won = set(
        Session.objects.filter(pk__in=ids, lease_expires_at=until).values_list("id", flat=True)
    )
    return [sid for sid in ids if sid in won], ids[-1]


def release_leases(session_ids: Collection[str]) -> None:
    """End this run's claim on sessions it leased but did not store (a run cut short)."""
    if session_ids:
        Session.objects.filter(pk__in=session_ids).update(lease_expires_at=None)


def next_check_time(unchanged_checks: int, now: dt.datetime) -> dt.datetime:
    """When a still-unfinished session is due again: the interval doubles per check.

    Starts at ``VERILOCK_RECHECK_MIN_INTERVAL`` and stops growing at
    ``VERILOCK_RECHECK_MAX_INTERVAL`` (seconds).
    """
    low = verilock_settings.recheck_min_interval
    high = verilock_settings.recheck_max_interval
    return now + dt.timedelta(seconds=max(0.0, min(high, low * 2 ** min(unchanged_checks, 32))))


def session_values(data: SessionData, assessment: Assessment | None = None) -> dict[str, Any]:
    """The :data:`SESSION_FIELDS` column values of a parsed payload, by column name."""
    derived = {"decline_reason": (assessment or assess(data)).decline_reason}
    return {name: derived.get(name, getattr(data, name, None)) for name in SESSION_FIELDS}


@contextmanager
def recorded_as(trigger: str) -> Iterator[None]:
    """Record the stores made inside the block with ``trigger`` (e.g. ``"admin:alice"``)."""
    token = _trigger.set(trigger)
    try:
        yield
    finally:
        _trigger.reset(token)


def step_rows(
    session: Session, data: SessionData, assessment: Assessment | None = None
) -> list[StepResult]:
    """Unsaved :class:`StepResult` rows for a session's parsed steps, in provider order."""
    steps = (assessment or assess(data)).steps
    return [
        StepResult(
            session=session,
            step=step.step,
            position=position,
            status=step.status,
            outcome=steps[step.step].outcome,
            score=step.score,
            score_scale=steps[step.step].score_scale,
            details=step.details,
            payload=step.payload,
        )
        for position, step in enumerate(data.results)
    ]


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


def _stored_data(session: Session) -> SessionData | None:
    """The session as stored, read from its last payload (no query).

    ``None`` when that payload cannot be read: the caller then rewrites every step.
    """
    if not session.payload:
        return SessionData(id=session.id)  # a row registered by id only: no step stored
    try:
        return parse_session(session.payload)
    except PayloadError:
        return None


def _apply(
    session: Session, data: SessionData, assessment: Assessment
) -> dict[str, tuple[Any, Any]]:
    changes: dict[str, tuple[Any, Any]] = {}
    for name, new in session_values(data, assessment).items():
        old = getattr(session, name)
        if old != new:
            if name != "payload":
                changes[name] = (old, new)
            setattr(session, name, new)
    return changes


def _store_steps(
    session: Session,
    data: SessionData,
    assessment: Assessment,
    *,
    created: bool,
    old_results: list[StepData] | None,
) -> bool:
    """Upsert the steps in one statement and delete the ones no longer reported.

    Both statements are skipped when the stored steps say they would change nothing, so
    an update usually costs three queries (lock, session, steps).
    """
    if old_results is not None and old_results == data.results:
        return False
    rows = step_rows(session, data, assessment)
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


def _record_history(
    session: Session,
    changes: dict[str, tuple[Any, Any]],
    old_steps: dict[str, StepAssessment],
    assessment: Assessment,
    trigger: str,
    now: dt.datetime,
) -> None:
    """One bulk insert of the session's changed values (none when nothing worth it changed)."""
    rows = [
        SessionChange(
            session=session,
            changed_at=now,
            trigger=trigger,
            field=name,
            # Applicant fields: which changed, never their values.
            old_value="" if name.startswith("applicant_") else str(old or "")[:255],
            new_value="" if name.startswith("applicant_") else str(new or "")[:255],
        )
        for name, (old, new) in changes.items()
        if name in HISTORY_FIELDS or name.startswith("applicant_")
    ]
    for step, new_step in assessment.steps.items():
        old_step = old_steps.get(step)
        old_outcome = "" if old_step is None else old_step.outcome
        if old_outcome != new_step.outcome:
            rows.append(
                SessionChange(
                    session=session,
                    changed_at=now,
                    trigger=trigger,
                    field=f"step:{step}"[:80],
                    old_value=str(old_outcome),
                    new_value=str(new_step.outcome),
                )
            )
    if rows:
        SessionChange.objects.bulk_create(rows)


def _send_signals(
    session: Session, created: bool, changes: dict[str, tuple[Any, Any]], was_finished: bool
) -> None:
    session_updated.send(sender=Session, session=session, created=created, changes=changes)
    if session.is_finished and not was_finished:
        session_finished.send(sender=Session, session=session)
