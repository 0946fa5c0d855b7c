"""The store's rules for one answer: what storing a payload writes over the stored row.

:func:`prepare` does everything that needs no database (minimise, parse, assess, check the
id); :func:`plan_write` decides, from the locked row, what the answer writes: a
:class:`Write` (the row, its steps, its history, its signals). No statement runs here.
:func:`verilock_django.store.store_session` executes one write in its own transaction,
:func:`verilock_django.store_batch.store_sessions` many in one: the rules (the ordering
rule of :mod:`.store`, history, user link, hosted URL, the pending ``session_finished``
mark) are the same code for both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from . import clock
from .clock import stored_datetime
from .conf import verilock_settings
from .exceptions import PayloadError, VerilockError
from .history import current_trigger, history_entries
from .models import Session, SessionChange, StepResult
from .outcomes import Assessment, assess
from .payloads import DEFAULT_STATUS, SessionData, parse_session, parse_steps
from .privacy import minimise_payload
from .schedule import next_check_time
from .signals import session_finished
from .users import resolve_user

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


@dataclass(frozen=True)
class Answer:
    """One payload ready to store: parsed, minimised, checked against the id asked for."""

    data: SessionData
    assessment: Assessment
    #: When the payload was requested, and when it is stored (both the database's clock).
    fetched_at: dt.datetime
    now: dt.datetime
    trigger: str
    release_lease: bool


def prepare(
    payload: object,
    *,
    requested_id: str | None = None,
    fetched_at: dt.datetime | None = None,
    release_lease: bool = False,
    trigger: str | None = None,
) -> Answer:
    """The part of storing ``payload`` that needs no database (see :func:`.store.store_session`).

    Raises :class:`~verilock_django.exceptions.PayloadError` for an unusable payload or one
    that answers for another id than ``requested_id``.
    """
    data = _parse(payload)
    if requested_id is not None and data.id != requested_id:
        raise PayloadError(
            "id",
            f"the API answered session {data.id!r} for {requested_id!r}",
            session_id=requested_id,
        )
    now = clock.now()
    return Answer(
        data=data,
        assessment=assess(data),
        fetched_at=fetched_at or now,
        now=now,
        trigger=(trigger or current_trigger())[:255],
        release_lease=release_lease,
    )


@dataclass
class Write:
    """What storing one answer writes, decided from the locked row before any statement."""

    result: SyncResult
    #: The row to write (``None``: nothing to write); ``created``: it is a new row.
    session: Session | None = None
    created: bool = False
    #: The bookkeeping columns that changed (empty: the whole row is written).
    columns: tuple[str, ...] = ()
    #: Step rows to upsert (``None``: the stored steps stay as they are).
    steps: list[StepResult] | None = None
    #: Delete the session's steps not named here (``None``: delete none).
    keep_steps: set[str] | None = None
    history: list[SessionChange] = field(default_factory=list)
    #: Send ``session_updated`` after commit; ``session_finished`` follows the row's mark.
    notify: bool = False
    #: Send only the ``session_finished`` an earlier change still owes (an unchanged answer).
    owed_finished: bool = False


#: What an unchanged answer writes: the check's bookkeeping only.
CHECKED_COLUMNS = (
    "last_synced_at",
    "last_sync_error",
    "missing_since",
    "data_fetched_at",
    "unchanged_checks",
    "failed_checks",
    "next_check_at",
)


def plan_write(answer: Answer, stored: Session | None) -> Write:
    """Decide what ``answer`` writes over ``stored`` (locked; ``None``: not stored yet).

    The one place the store's rules are applied, whether one session is stored or a batch:
    the ordering rule (stale answers write nothing but the lease), history, user link,
    hosted URL, the pending ``session_finished`` mark. Changes ``stored`` in memory only.
    An answer that does not say its status keeps the stored one (:func:`known_status`).
    """
    data, assessment, now = answer.data, answer.assessment, answer.now
    if stored is None:
        return plan_creation(answer, Session(id=data.id, first_synced_at=now))

    lease = ("lease_expires_at",) if answer.release_lease else ()
    if answer.release_lease:
        stored.lease_expires_at = None
    if _is_stale(stored, data, answer.fetched_at):
        return Write(SyncResult(data.id, Outcome.STALE), stored if lease else None, columns=lease)
    if data.status is None:
        data = known_status(data, stored.status)
        assessment = assess(data)
    if stored.payload == data.payload and stored.last_synced_at is not None:
        stored.unchanged_checks += 1
        stored.failed_checks = 0
        stored.last_synced_at = now
        stored.last_sync_error = ""
        stored.missing_since = None
        stored.data_fetched_at = answer.fetched_at
        stored.next_check_at = (
            None if stored.is_finished else next_check_time(stored.unchanged_checks, now)
        )
        return Write(
            SyncResult(data.id, Outcome.UNCHANGED),
            stored,
            columns=CHECKED_COLUMNS + lease,
            owed_finished=stored.finished_signal_pending,
        )

    old_data = _stored_data(stored)
    old_results = None if old_data is None else old_data.results
    old_steps = {} if old_data is None else assess(old_data).steps
    if old_steps != assessment.steps and old_results == data.results:
        old_results = []  # same steps, new outcomes (a new decision): rewrite them
    changes = _write(stored, data, assessment, now, answer.fetched_at, created=False)
    write = Write(SyncResult(data.id, Outcome.UPDATED, changes=changes), stored, notify=True)
    if old_results is None or old_results != data.results:
        # Steps the stored ones say would change: upsert them all, delete the dropped ones.
        write.steps = step_rows(stored, data, assessment)
        new_steps = {step.step for step in data.results}
        if old_results is None or any(step.step not in new_steps for step in old_results):
            write.keep_steps = new_steps
        changes["results"] = (None, None)
    write.history = history_entries(stored, changes, old_steps, assessment, answer.trigger, now)
    return write


def plan_creation(answer: Answer, new: Session) -> Write:
    """The write that inserts ``new`` (unsaved, id set) from ``answer``; an answer that does
    not say its status creates the row with :data:`~verilock_django.payloads.DEFAULT_STATUS`."""
    data, assessment, now = answer.data, answer.assessment, answer.now
    if data.status is None:
        data = known_status(data, new.status)
        assessment = assess(data)
    changes = _write(new, data, assessment, now, answer.fetched_at, created=True)
    return Write(
        SyncResult(data.id, Outcome.CREATED, changes=changes),
        new,
        created=True,
        steps=step_rows(new, data, assessment),
        history=history_entries(new, changes, {}, assessment, answer.trigger, now),
        notify=True,
    )


def known_status(data: SessionData, stored_status: str) -> SessionData:
    """``data`` with the status it stands for: its own when it says one; else
    ``stored_status``, since an answer that does not say its status never changes it; else,
    for a row without one (new, or registered by id only),
    :data:`~verilock_django.payloads.DEFAULT_STATUS`."""
    if data.status is not None:
        return data
    return dataclasses.replace(data, status=stored_status or DEFAULT_STATUS)


def session_values(data: SessionData, assessment: Assessment | None = None) -> dict[str, Any]:
    """The :data:`SESSION_FIELDS` column values of a parsed payload, by column name, as a new
    row takes them (a payload that does not say its status: ``DEFAULT_STATUS``)."""
    data = known_status(data, "")
    derived = {"decline_reason": (assessment or assess(data)).decline_reason}
    return {name: derived.get(name, getattr(data, name, None)) for name in SESSION_FIELDS}


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


def _parse(payload: object) -> SessionData:
    """A payload as it may be stored: minimised (privacy), cleaned, datetimes as Django's."""
    if not isinstance(payload, Mapping):
        return parse_session(payload)  # refused, with the parser's message
    return parse_session(minimise_payload(payload), storable=True).with_datetimes(stored_datetime)


def _is_stale(session: Session, data: SessionData, fetched_at: dt.datetime) -> bool:
    # See the ordering rule in the module docstring of .store. An answer that does not say
    # its status (None) is not in a final status: it cannot touch a finished session.
    if session.data_fetched_at is not None and fetched_at < session.data_fetched_at:
        return True
    finished = verilock_settings.finished_statuses
    return session.status in finished and data.status not in finished


def _write(
    session: Session,
    data: SessionData,
    assessment: Assessment,
    now: dt.datetime,
    fetched_at: dt.datetime,
    *,
    created: bool,
) -> dict[str, tuple[Any, Any]]:
    """Copy the payload's fields and the bookkeeping onto ``session`` (unsaved)."""
    status_before = session.status
    was_finished = not created and session.is_finished
    changes = _apply(session, data, assessment)
    if session.user_id is None and session.reference_id and (created or "reference_id" in changes):
        session.user = resolve_user(session.id, session.reference_id)
    if session.first_synced_at is None:
        session.first_synced_at = now
    session.last_synced_at = now
    session.last_sync_error = ""
    session.missing_since = None
    session.data_fetched_at = fetched_at
    session.unchanged_checks = 0
    session.failed_checks = 0
    session.next_check_at = None if session.is_finished else next_check_time(0, now)
    if session.is_finished:
        session.hosted_url = ""  # the link to an open flow is kept only while it is open
    # Entering a final status, or a decision overturned (one final status to another).
    # With no receiver connected there is nothing to deliver, and no mark to clear later.
    if (
        session.is_finished
        and (not was_finished or session.status != status_before)
        and session_finished.has_listeners(Session)
    ):
        session.finished_signal_pending = True
    return changes


def _stored_data(session: Session) -> SessionData | None:
    """What the store's rules compare an answer with: the stored row's status, decision and
    payload, and the steps read from that payload (no query; the rest is not read).

    ``None`` when those steps cannot be read: the caller then rewrites every step.
    """
    try:
        # Stored, so storable already: read as it is.
        results = parse_steps(session.payload, session.id) if session.payload else []
    except PayloadError:
        return None
    return SessionData(
        id=session.id,
        status=session.status or None,
        decision=session.decision,
        payload=session.payload,
        results=results,
    )


def _apply(
    session: Session, data: SessionData, assessment: Assessment
) -> dict[str, tuple[Any, Any]]:
    changes: dict[str, tuple[Any, Any]] = {}
    for name, new in session_values(data, assessment).items():
        old = getattr(session, name)
        if name == "hosted_url" and not new:
            continue  # issued once; the SDK's read model does not repeat it
        if old != new:
            if name != "payload":
                changes[name] = (old, new)
            setattr(session, name, new)
    return changes
