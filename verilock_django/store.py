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
   Verilock never reopens a decided session), or does not say its status at all (it can
   neither confirm nor overturn a decision).

An answer that does not say its status (null, missing, empty; ``SessionData.status`` is
``None``) never changes a stored status: an unfinished session keeps its own while the
other fields are updated; only a row with no status yet (new, or registered by id only)
takes :data:`~verilock_django.payloads.DEFAULT_STATUS` (see ``docs/payloads.md``).

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
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce

from . import clock
from .bulk import insert_rows, upsert_rows
from .exceptions import NotFoundError, StorageError, VerilockError, describe_failure
from .models import Session, SessionChange, StepResult
from .notify import after_commit
from .payloads import parse_session
from .privacy import ensure_not_erased
from .schedule import next_check_time
from .store_rules import (
    STEP_FIELDS,
    Answer,
    Outcome,
    SyncResult,
    Write,
    plan_creation,
    plan_write,
    prepare,
    session_values,
    step_rows,
)

# The store's vocabulary, defined with its rules in :mod:`.store_rules`.
__all__ = [
    "ERROR_MAX_LENGTH",
    "Outcome",
    "SyncResult",
    "failure",
    "record_failure",
    "session_values",
    "step_rows",
    "store_created",
    "store_discovered",
    "store_prepared",
    "store_session",
]

logger = logging.getLogger(__name__)

#: Longest error text kept on a row (``Session.last_sync_error``, ``WebhookEvent.last_error``).
ERROR_MAX_LENGTH = 2000


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
    transaction rolled back. Many payloads at once: :func:`.store_batch.store_sessions`.
    """
    answer = prepare(
        payload,
        requested_id=requested_id,
        fetched_at=fetched_at,
        release_lease=release_lease,
        trigger=trigger,
    )
    return store_prepared(answer)


def store_prepared(answer: Answer) -> SyncResult:
    """Store one prepared answer in its own transaction (the body of :func:`store_session`)."""
    with writing():
        session = _locked(answer.data.id)
        if session is None:
            ensure_not_erased(answer.data.id)  # one query, only for a session not stored yet
            write = plan_write(answer, None)
            if _insert(write):
                return write.result
            session = _locked(answer.data.id)  # the concurrent writer's row, now committed
            assert session is not None  # _insert re-raises when no row holds the id
        write = plan_write(answer, session)
        _save(write)
    return write.result


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
    answer = prepare(payload, trigger="create")
    # The one place a hosted URL is kept: the start flow sends its user back to it while the
    # session is open (minimising keeps it out of every stored payload; it is cleared when
    # the session finishes).
    hosted_url = parse_session(payload).hosted_url
    with transaction.atomic():
        if _locked(answer.data.id) is None:
            new = Session(id=answer.data.id, first_synced_at=answer.now, user_id=user_id)
            write = plan_creation(answer, new)
            new.hosted_url = "" if new.is_finished else hosted_url
            new.reference_id = new.reference_id or reference_id[:255]
            new.created_at = new.created_at or answer.now
            if _insert(write):
                return write.result
        if user_id is not None:
            Session.objects.filter(pk=answer.data.id, user__isnull=True).update(user_id=user_id)
    return SyncResult(answer.data.id, Outcome.UNCHANGED)


def store_discovered(payload: object, *, fetched_at: dt.datetime | None = None) -> SyncResult:
    """Insert a session first seen in a ``GET /sessions`` page; a stored one is left alone.

    Returns ``CREATED``, or ``UNCHANGED`` when the id is already stored (then nothing is
    written: a list item is poorer than what a fetch stored). ``fetched_at`` is when the page
    was requested (database clock; default now). The batch refresh later fetches the
    details of an unfinished session like any other. Raises
    :class:`~verilock_django.exceptions.PayloadError` for an unusable item.
    """
    answer = prepare(payload, fetched_at=fetched_at, trigger="discover")
    with transaction.atomic():
        if _locked(answer.data.id) is not None:
            return SyncResult(answer.data.id, Outcome.UNCHANGED)
        ensure_not_erased(answer.data.id)
        write = plan_write(answer, None)
        if not _insert(write):
            return SyncResult(answer.data.id, Outcome.UNCHANGED)
    return write.result


def record_failure(session_id: str, error: BaseException, *, release_lease: bool = False) -> None:
    """Keep a safe description of ``error`` on the stored session; retry after a backoff.

    Nothing else about the session changes; an unknown ``session_id`` is left unknown.
    ``failed_checks`` counts the failures in a row, and ``next_check_at`` becomes the
    failure's backoff: ``VERILOCK_RECHECK_MIN_INTERVAL`` after the first, doubling per
    failure up to ``VERILOCK_RECHECK_MAX_INTERVAL`` (a listing that confirms the session
    clears the error text but not this). A
    :class:`~verilock_django.exceptions.NotFoundError` also marks the session missing at
    Verilock (``missing_since``), which the batch refresh then skips.
    """
    now = clock.now()
    failed_before = (
        Session.objects.filter(pk=session_id).values_list("failed_checks", flat=True).first()
    )
    if failed_before is None:
        return
    updates: dict[str, Any] = {
        "last_sync_error": describe_failure(error)[:ERROR_MAX_LENGTH],
        "failed_checks": F("failed_checks") + 1,
        "next_check_at": next_check_time(failed_before, now),
    }
    if isinstance(error, NotFoundError):
        updates["missing_since"] = Coalesce("missing_since", Value(now))
    if release_lease:
        updates["lease_expires_at"] = None
    Session.objects.filter(pk=session_id).update(**updates)


def failure(session_id: str, error: Exception) -> SyncResult:
    """The ``FAILED`` result of an exception raised while storing ``session_id``.

    A :class:`~verilock_django.exceptions.VerilockError` is kept (tagged with the id); any
    other exception (a database error, a bug) becomes a
    :class:`~verilock_django.exceptions.StorageError` whose message holds no payload value,
    and where it happened is logged (never the values). A configuration error is re-raised:
    every session would fail alike.
    """
    if isinstance(error, ImproperlyConfigured):
        raise error
    if isinstance(error, VerilockError):
        error.session_id = error.session_id or session_id
        return SyncResult(session_id, Outcome.FAILED, error=error)
    logger.error(
        "Storing Verilock session %s failed:\n%s",
        session_id,
        "".join(traceback.format_tb(error.__traceback__)),  # where, never the values
    )
    storage_error = StorageError(
        f"could not store the session: {describe_failure(error)}", session_id=session_id
    )
    return SyncResult(session_id, Outcome.FAILED, error=storage_error)


# -- internals -----------------------------------------------------------------------


@contextmanager
def writing() -> Iterator[None]:
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


def _insert(write: Write) -> bool:
    """Insert a new session and its steps in a savepoint; False if the id exists already.

    Two writers storing the same new session at once: the second one's insert loses here,
    and the caller goes on with the row the first one committed. Signals follow the commit.
    """
    assert write.session is not None and write.steps is not None
    try:
        with transaction.atomic():
            write.session.save(force_insert=True)
            insert_rows(StepResult, write.steps)
            insert_rows(SessionChange, write.history)
    except IntegrityError:
        if not Session.objects.filter(pk=write.session.pk).exists():
            raise  # not a concurrent insert of the same id
        return False
    notify(write)
    return True


def _save(write: Write) -> None:
    """Write one planned change of a stored session: a few statements, each skipped if idle."""
    session = write.session
    if session is None:
        return
    if write.columns:
        Session.objects.filter(pk=session.pk).update(
            **{name: getattr(session, name) for name in write.columns}
        )
    else:
        session.save()
    if write.steps:
        upsert_steps(write.steps)
    if write.keep_steps is not None:
        StepResult.objects.filter(session=session).exclude(step__in=write.keep_steps).delete()
    insert_rows(SessionChange, write.history)
    notify(write)


def notify(write: Write) -> None:
    """Queue a planned change's signals for after the commit (nothing on rollback)."""
    session = write.session
    if session is None:
        return
    if write.notify:
        after_commit(session, created=write.created, changes=write.result.changes)
    elif write.owed_finished:
        after_commit(session, created=False, changes={}, updated=False)


def upsert_steps(rows: list[StepResult]) -> None:
    """Insert or update step rows (of any sessions) by ``(session, step)``, one statement."""
    if connection.features.supports_update_conflicts:
        upsert_rows(
            StepResult, rows, unique_fields=["session", "step"], update_fields=list(STEP_FIELDS)
        )
        return
    for row in rows:
        StepResult.objects.update_or_create(
            session=row.session,
            step=row.step,
            defaults={name: getattr(row, name) for name in STEP_FIELDS},
        )
