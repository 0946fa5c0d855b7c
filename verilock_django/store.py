"""The store layer's core: one payload in, one upsert out.

:func:`store_session` writes a parsed payload (session and steps, one transaction);
:func:`store_created` stores a session this app has just created, linked to its user;
:func:`store_discovered` inserts a session first seen in a list page (never overwrites);
:func:`record_failure` keeps an error on the row and nothing else. The rest of the store
layer: :mod:`.schedule` (the batch refresh's bookkeeping: due times, leases),
:mod:`.history` (the change history, same transaction) and :mod:`.notify` (signals after
commit). Nothing above this layer writes session rows. No HTTP happens here: callers fetch
first and store after.

Ordering rule (never go backwards): a payload is *stale*, and nothing is written, when

1. it was requested before the stored payload was (``fetched_at`` < ``data_fetched_at``;
   both read from the database's clock, so no trust in any other clock is needed), or
2. it would take the session out of a final status into an unfinished one (a stale read:
   Verilock never reopens a decided session).

Otherwise the newest answer wins: among unfinished statuses any move is accepted (a
reviewer asking for resubmission moves ``review`` back to ``in_progress``), and a final
status may change to another final status (a decision overturned; receivers are told).
``hosted_url`` is the exception: the link is issued once, and a payload that does not carry
it (the SDK's read model) keeps the stored one.
"Requested before" compares times from :func:`verilock_django.clock.now`, the database
server's clock, so machines whose own clocks disagree still agree on the order.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Value
from django.db.models.functions import Coalesce

from . import clock
from .clock import stored_datetime
from .conf import verilock_settings
from .exceptions import NotFoundError, PayloadError, VerilockError, describe_failure
from .history import current_trigger, record_history
from .models import Session, StepResult
from .notify import after_commit
from .outcomes import Assessment, assess
from .payloads import SessionData, StepData, parse_session
from .privacy import ensure_not_erased, minimise_payload
from .schedule import next_check_time
from .signals import session_finished
from .users import resolve_user

logger = logging.getLogger(__name__)

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
    was requested, on the database's clock (:func:`verilock_django.clock.now`; default:
    now); a stale payload (see the module's ordering rule) is ignored. ``release_lease``
    also ends the batch refresh's claim on the row. Two writers storing the same new session
    at once are safe: the second one's insert loses in a savepoint and it goes on as an
    update. Only what ``VERILOCK_STORED_DATA`` allows is stored
    (:func:`.privacy.minimise_payload`). Raises
    :class:`~verilock_django.exceptions.PayloadError` for an unusable payload, and
    :class:`~verilock_django.exceptions.ErasedSessionError` for a session erased on request
    that is not stored yet (then nothing is written); a database error propagates with the
    transaction rolled back.
    """
    data = _parse(payload)
    if requested_id is not None and data.id != requested_id:
        raise PayloadError(
            "id",
            f"the API answered session {data.id!r} for {requested_id!r}",
            session_id=requested_id,
        )
    now = clock.now()
    fetched_at = fetched_at or now
    lease: dict[str, Any] = {"lease_expires_at": None} if release_lease else {}
    assessment = assess(data)
    who = (trigger or current_trigger())[:255]
    with _writing():
        session = _locked(data.id)
        if session is None:
            ensure_not_erased(data.id)  # one query, only for a session not stored yet
            new = Session(id=data.id, first_synced_at=now)
            changes = _write(new, data, assessment, now, fetched_at, created=True)
            if _insert(new, data, assessment, changes, who, now):
                return SyncResult(data.id, Outcome.CREATED, changes=changes)
            session = _locked(data.id)  # the concurrent writer's row, now committed
            assert session is not None  # _insert re-raises when no row holds the id

        if _is_stale(session, data, fetched_at):
            if lease:
                Session.objects.filter(pk=data.id).update(**lease)
            return SyncResult(data.id, Outcome.STALE)
        if session.payload == data.payload and session.last_synced_at is not None:
            checks = session.unchanged_checks + 1
            Session.objects.filter(pk=data.id).update(
                last_synced_at=now,
                last_sync_error="",
                missing_since=None,
                data_fetched_at=fetched_at,
                unchanged_checks=checks,
                next_check_at=None if session.is_finished else next_check_time(checks, now),
                **lease,
            )
            if session.finished_signal_pending:
                after_commit(session, created=False, changes={}, updated=False)
            return SyncResult(data.id, Outcome.UNCHANGED)

        old_data = _stored_data(session)
        old_results = None if old_data is None else old_data.results
        old_steps = {} if old_data is None else assess(old_data).steps
        if old_steps != assessment.steps and old_results == data.results:
            old_results = []  # same steps, new outcomes (a new decision): rewrite them
        changes = _write(session, data, assessment, now, fetched_at, created=False)
        if release_lease:
            session.lease_expires_at = None
        session.save()
        if _store_steps(session, data, assessment, old_results=old_results):
            changes["results"] = (None, None)
        record_history(session, changes, old_steps, assessment, who, now)
        after_commit(session, created=False, changes=changes)
    return SyncResult(data.id, Outcome.UPDATED, changes=changes)


def store_created(
    payload: object, *, user_id: int | str | None = None, reference_id: str = ""
) -> SyncResult:
    """Store a session this app has just created at Verilock, linked to ``user_id``.

    ``payload`` is the create response (Gen B's is short: id, token, URL, status, expiry).
    The ``reference_id`` sent is kept while the response carries none, and ``created_at`` is
    now until a fetch brings Verilock's own. If a row for the id already exists (a webhook or
    a discovery stored it first), only its missing user link is filled in (``UNCHANGED``):
    the short response must not replace a fuller payload. Raises
    :class:`~verilock_django.exceptions.PayloadError` when the response has no usable id.
    """
    data = _parse(payload)
    # The one place a hosted URL is kept: the start flow sends its user back to it while the
    # session is open (minimising keeps it out of every stored payload; it is cleared when
    # the session finishes).
    hosted_url = parse_session(payload).hosted_url
    assessment = assess(data)
    now = clock.now()
    with transaction.atomic():
        if _locked(data.id) is None:
            new = Session(id=data.id, first_synced_at=now, user_id=user_id)
            changes = _write(new, data, assessment, now, now, created=True)
            new.hosted_url = "" if new.is_finished else hosted_url
            new.reference_id = new.reference_id or reference_id[:255]
            new.created_at = new.created_at or now
            if _insert(new, data, assessment, changes, "create", now):
                return SyncResult(data.id, Outcome.CREATED, changes=changes)
        if user_id is not None:
            Session.objects.filter(pk=data.id, user__isnull=True).update(user_id=user_id)
    return SyncResult(data.id, Outcome.UNCHANGED)


def store_discovered(payload: object, *, fetched_at: dt.datetime | None = None) -> SyncResult:
    """Insert a session first seen in a ``GET /sessions`` page; a stored one is left alone.

    Returns ``CREATED``, or ``UNCHANGED`` when the id is already stored (then nothing is
    written: a list item is poorer than what a fetch stored). ``fetched_at`` is when the page
    was requested (database clock; default now). The batch refresh later fetches the
    details of an unfinished session like any other. Raises
    :class:`~verilock_django.exceptions.PayloadError` for an unusable item.
    """
    data = _parse(payload)
    assessment = assess(data)
    now = clock.now()
    with transaction.atomic():
        if _locked(data.id) is not None:
            return SyncResult(data.id, Outcome.UNCHANGED)
        ensure_not_erased(data.id)
        new = Session(id=data.id, first_synced_at=now)
        changes = _write(new, data, assessment, now, fetched_at or now, created=True)
        if not _insert(new, data, assessment, changes, "discover", now):
            return SyncResult(data.id, Outcome.UNCHANGED)
    return SyncResult(data.id, Outcome.CREATED, changes=changes)


def record_failure(session_id: str, error: BaseException, *, release_lease: bool = False) -> None:
    """Keep a safe description of ``error`` on the stored session; retry after the minimum.

    Nothing else about the session changes; an unknown ``session_id`` is left unknown. A
    :class:`~verilock_django.exceptions.NotFoundError` also marks the session missing at
    Verilock (``missing_since``), which the batch refresh then skips.
    """
    now = clock.now()
    updates: dict[str, Any] = {
        "last_sync_error": describe_failure(error)[:ERROR_MAX_LENGTH],
        "next_check_at": next_check_time(0, now),
    }
    if isinstance(error, NotFoundError):
        updates["missing_since"] = Coalesce("missing_since", Value(now))
    if release_lease:
        updates["lease_expires_at"] = None
    Session.objects.filter(pk=session_id).update(**updates)


def session_values(data: SessionData, assessment: Assessment | None = None) -> dict[str, Any]:
    """The :data:`SESSION_FIELDS` column values of a parsed payload, by column name."""
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


# -- internals -----------------------------------------------------------------------


def _parse(payload: object) -> SessionData:
    """A payload as it may be stored: minimised (privacy), cleaned, datetimes as Django's."""
    return parse_session(minimise_payload(payload)).with_datetimes(stored_datetime)


@contextmanager
def _writing() -> Iterator[None]:
    """``transaction.atomic()`` that takes SQLite's write lock when it begins.

    A SQLite transaction begun ``DEFERRED`` (the default) that reads first and writes later
    fails at once with "database is locked" when another connection is writing: no busy
    wait. Begun ``IMMEDIATE`` it waits for the lock up to the busy timeout like any writer.
    So concurrent writers (webhook threads, workers, cron) are safe on a default SQLite
    configuration. Other databases lock rows with ``SELECT … FOR UPDATE`` instead.
    """
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    connection.ensure_connection()
    mode = connection.transaction_mode  # type: ignore[attr-defined]
    connection.transaction_mode = "IMMEDIATE"  # type: ignore[attr-defined]
    try:
        with transaction.atomic():  # BEGIN IMMEDIATE is sent here
            connection.transaction_mode = mode  # type: ignore[attr-defined]
            yield
    finally:
        connection.transaction_mode = mode  # type: ignore[attr-defined]


def _locked(session_id: str) -> Session | None:
    return Session.objects.select_for_update().filter(pk=session_id).first()


def _insert(
    session: Session,
    data: SessionData,
    assessment: Assessment,
    changes: dict[str, tuple[Any, Any]],
    trigger: str,
    now: dt.datetime,
) -> bool:
    """Insert a new session and its steps in a savepoint; False if the id exists already.

    Two writers storing the same new session at once: the second one's insert loses here,
    and the caller goes on with the row the first one committed. Signals follow the commit.
    """
    try:
        with transaction.atomic():
            session.save(force_insert=True)
            StepResult.objects.bulk_create(step_rows(session, data, assessment))
            record_history(session, changes, {}, assessment, trigger, now)
    except IntegrityError:
        if not Session.objects.filter(pk=session.pk).exists():
            raise  # not a concurrent insert of the same id
        return False
    after_commit(session, created=True, changes=changes)
    return True


def _is_stale(session: Session, data: SessionData, fetched_at: dt.datetime) -> bool:
    # See the ordering rule in the module docstring.
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
        if name == "hosted_url" and not new:
            continue  # issued once; the SDK's read model does not repeat it
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
    old_results: list[StepData] | None,
) -> bool:
    """Upsert an existing session's steps in one statement; delete the ones no longer reported.

    Both statements are skipped when the stored steps say they would change nothing, so
    an update usually costs three queries (lock, session, steps).
    """
    if old_results is not None and old_results == data.results:
        return False
    rows = step_rows(session, data, assessment)
    if rows:
        features = connection.features
        if features.supports_update_conflicts:
            StepResult.objects.bulk_create(
                rows,
                update_conflicts=True,
                # "step" too: under a case-insensitive collation (MySQL, MariaDB) the key
                # "DOCUMENT" meets a stored "document", and the row takes the new spelling.
                update_fields=["step", *STEP_FIELDS],
                unique_fields=(
                    ["session", "step"] if features.supports_update_conflicts_with_target else None
                ),
            )
        else:
            for row in rows:
                StepResult.objects.update_or_create(
                    session=session,
                    step=row.step,
                    defaults={name: getattr(row, name) for name in ("step", *STEP_FIELDS)},
                )
    new_steps = {step.step for step in data.results}
    if old_results is None or any(step.step not in new_steps for step in old_results):
        StepResult.objects.filter(session=session).exclude(step__in=new_steps).delete()
    return True
