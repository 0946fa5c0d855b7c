"""Store many fetched payloads in one transaction, with set-based statements.

:func:`store_sessions` applies the same rules as :func:`.store.store_session` (they are
decided by :func:`.store_rules.plan_write` for both) but writes a whole batch at once:

=============================  ===============================================================
statement                      what
=============================  ===============================================================
``SELECT … FOR UPDATE``        the stored rows of the batch (a plain ``SELECT`` on SQLite,
                               whose ``BEGIN IMMEDIATE`` already holds the write lock)
``SELECT`` (tombstones)        one per session not stored yet (rare: the refresh fetches rows
                               it has), as :func:`.store.store_session` does
``INSERT``                     the new sessions, if any
``INSERT … ON CONFLICT``       every other session row written (updated, checked, lease
                               released), one upsert
``INSERT … ON CONFLICT``       the steps of every session whose steps changed, one upsert
``DELETE``                     the steps the provider no longer reports, if any
``INSERT``                     the history rows, if any
=============================  ===============================================================

So a batch of any size costs at most seven statements plus its transaction (the driver may
split a statement that exceeds the database's parameter limit). Isolation is kept: a payload
that cannot be prepared fails alone before the transaction; when a statement of the batch
fails, the transaction is rolled back and its sessions are stored one by one with
:func:`.store.store_prepared`, so only the poisoned session fails (with a
:class:`~verilock_django.exceptions.StorageError`) and its stored row stays as it was.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Q

from .bulk import insert_rows, upsert_rows
from .exceptions import ErasedSessionError, describe_failure
from .models import Session, SessionChange, StepResult
from .privacy import ensure_not_erased
from .store import failure, notify, store_prepared, upsert_steps, writing
from .store_rules import Answer, Outcome, SyncResult, Write, plan_write, prepare

logger = logging.getLogger(__name__)

#: ``(requested id, payload, fetched_at)``: one answer of ``GET /sessions/{id}`` to store;
#: ``fetched_at`` is when it was requested, on the database's clock.
Fetched = tuple[str, object, dt.datetime | None]

#: The session columns a batch writes for a row it updates (all but the primary key).
_UPDATED_COLUMNS = [field.name for field in Session._meta.concrete_fields if not field.primary_key]


def store_sessions(
    answers: Sequence[Fetched], *, release_lease: bool = False, trigger: str | None = None
) -> list[SyncResult]:
    """Store fetched payloads (see the module docstring); one result per answer, in order.

    Each result is what :func:`.store.store_session` would have returned, or ``FAILED``
    with the error it would have raised (a
    :class:`~verilock_django.exceptions.VerilockError`; any other exception is turned into a
    :class:`~verilock_django.exceptions.StorageError`): this function raises only for a
    misconfiguration. ``release_lease`` and ``trigger`` are those of
    :func:`.store.store_session`. Signals are sent after the commit. An id that appears twice
    is stored in a second transaction, after the first, so the later answer is applied last.
    """
    results: list[SyncResult | None] = [None] * len(answers)
    batch: list[tuple[int, Answer]] = []
    later: list[int] = []
    ids: set[str] = set()
    for index, (session_id, payload, fetched_at) in enumerate(answers):
        if session_id in ids:
            later.append(index)
            continue
        ids.add(session_id)
        try:
            answer = prepare(
                payload,
                requested_id=session_id,
                fetched_at=fetched_at,
                release_lease=release_lease,
                trigger=trigger,
            )
        except Exception as exc:  # an unusable payload fails alone, before the transaction
            results[index] = failure(session_id, exc)
            continue
        batch.append((index, answer))
    stored = _store_batch([answer for _, answer in batch])
    for (index, _), result in zip(batch, stored, strict=True):
        results[index] = result
    if later:
        again = store_sessions(
            [answers[i] for i in later], release_lease=release_lease, trigger=trigger
        )
        for index, result in zip(later, again, strict=True):
            results[index] = result
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


def _store_batch(answers: list[Answer]) -> list[SyncResult]:
    """Store distinct sessions' answers in one transaction; one by one if that fails."""
    if len(answers) <= 1:
        return [_store_one(answer) for answer in answers]
    try:
        with writing():
            writes = _plan(answers)
            _save_all([write for write in writes if write.result.outcome is not Outcome.FAILED])
    except ImproperlyConfigured:
        raise
    except Exception as exc:
        logger.warning(
            "Storing a batch of %d Verilock sessions failed (%s); storing them one by one.",
            len(answers),
            describe_failure(exc),
        )
        return [_store_one(answer) for answer in answers]
    return [write.result for write in writes]


def _store_one(answer: Answer) -> SyncResult:
    try:
        return store_prepared(answer)
    except Exception as exc:
        return failure(answer.data.id, exc)


def _plan(answers: list[Answer]) -> list[Write]:
    """Lock the batch's stored rows (one query) and decide each answer's write."""
    ids = [answer.data.id for answer in answers]
    stored = {row.pk: row for row in Session.objects.select_for_update().filter(pk__in=ids)}
    writes = []
    for answer in answers:
        session = stored.get(answer.data.id)
        if session is None:
            try:
                ensure_not_erased(answer.data.id)
            except ErasedSessionError as exc:
                writes.append(Write(failure(answer.data.id, exc)))
                continue
        writes.append(plan_write(answer, session))
    return writes


def _save_all(writes: list[Write]) -> None:
    """Execute planned writes with one statement per kind (see the module docstring)."""
    new = [write.session for write in writes if write.created and write.session is not None]
    updated = [write.session for write in writes if not write.created and write.session]
    # A plain insert: a concurrent writer that inserted the same id first makes the batch
    # fail, and the one-by-one fallback takes that row over as an update.
    insert_rows(Session, new)
    if updated:
        _upsert_sessions(updated)
    steps = [row for write in writes for row in write.steps or ()]
    if steps:
        upsert_steps(steps)
    dropped = Q()
    for write in writes:
        if write.keep_steps is not None and write.session is not None:
            dropped |= Q(session=write.session.pk) & ~Q(step__in=write.keep_steps)
    if dropped:
        StepResult.objects.filter(dropped).delete()
    insert_rows(SessionChange, [row for write in writes for row in write.history])
    for write in writes:
        notify(write)


def _upsert_sessions(rows: list[Session]) -> None:
    """Write whole locked rows back in one statement (each was read in this transaction)."""
    if not connection.features.supports_update_conflicts:
        for row in rows:
            row.save()
        return
    upsert_rows(Session, rows, unique_fields=["id"], update_fields=_UPDATED_COLUMNS)
