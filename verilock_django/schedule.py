"""The batch refresh's bookkeeping on session rows: when a session is due, and who holds it.

Part of the store layer (with :mod:`.store`, :mod:`.history` and :mod:`.notify`): these are
the only writes to session rows besides storing a payload. Times come from the database's
clock (:func:`verilock_django.clock.now`), so machines whose clocks disagree still agree.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Collection

from django.db import connection, transaction
from django.db.models import Q

from . import clock
from .conf import verilock_settings
from .models import Session, SessionQuerySet


def confirm_listed(session_ids: Collection[str]) -> int:
    """Mark sessions the list endpoint showed unchanged as checked now; returns the row count.

    The stored payload (and ``data_fetched_at``, the age of its steps) stays what was last
    fetched; an earlier sync error and a "missing at Verilock" mark are cleared (the list
    shows the session exists and answers), and so is the by-id backoff (``unchanged_checks``:
    the list accounts for the session, so the day it leaves the list it is fetched at once).
    A failed fetch's backoff (``failed_checks``, ``next_check_at``) stays: the list shows
    the session exists, not that fetching it works.
    """
    if not session_ids:
        return 0
    return Session.objects.filter(pk__in=session_ids).update(
        last_synced_at=clock.now(), last_sync_error="", missing_since=None, unchanged_checks=0
    )


def new_lease() -> dt.datetime:
    """A lease expiry ``VERILOCK_LEASE_SECONDS`` from now (database clock), unique per claim.

    The expiry doubles as the claim's token: whoever knows it may take the lease over
    (:func:`take_lease`), and on databases without SKIP LOCKED it tells which rows a claim won.
    """
    return clock.now() + dt.timedelta(
        seconds=verilock_settings.lease_seconds, microseconds=secrets.randbelow(10**6)
    )


def claim_sessions(
    candidates: SessionQuerySet,
    size: int,
    *,
    until: dt.datetime | None = None,
    tokens: list[dt.datetime] | None = None,
) -> tuple[list[str], str | None]:
    """Lease up to ``size`` of ``candidates`` (ordered by id) until ``until`` (default:
    :func:`new_lease`).

    Returns the ids won and the last candidate id looked at (``None``: no candidates left).
    ``SELECT … FOR UPDATE SKIP LOCKED`` where the database has it, a conditional ``UPDATE``
    elsewhere, so of several runs racing for a row exactly one wins it. The lease's expiry
    is unique to this claim (its token); it is appended to ``tokens`` *before* any row is
    leased, so :func:`release_claims` can give back whatever a run still holds even when
    the run is interrupted in the middle of a claim.
    """
    if size <= 0:
        return [], None
    until = until or new_lease()
    if tokens is not None:
        tokens.append(until)
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
    """End the lease on these sessions (a worker's task that stops before storing them)."""
    if session_ids:
        Session.objects.filter(pk__in=session_ids).update(lease_expires_at=None)


def release_claims(tokens: Collection[dt.datetime]) -> int:
    """Release every lease still held under these claim tokens; returns the rows released.

    Rows already stored or failed were released one by one; what is left is the work an
    interrupted run claimed and never finished.
    """
    if not tokens:
        return 0
    return Session.objects.filter(lease_expires_at__in=list(tokens)).update(lease_expires_at=None)


def take_lease(
    session_id: str, *, token: dt.datetime | None, not_checked_since: dt.datetime | None
) -> bool:
    """Lease one session for this worker; ``False`` when another holds it or it is done.

    ``token`` is the expiry a fan-out claim set (:func:`claim_sessions` with ``until``): the
    task it enqueued takes that claim over. Without a token, or once the claim ran out, the
    lease is taken only if nobody holds one. ``not_checked_since`` (the claim's time) makes a
    task that arrives after its session was stored by someone else a no-op. A session not
    stored yet (no row) cannot be leased: ``False``. One conditional ``UPDATE`` decides.
    """
    now = clock.now()
    held = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    if token is not None:
        held |= Q(lease_expires_at=token)
    rows = Session.objects.filter(held, pk=session_id)
    if not_checked_since is not None:
        rows = rows.filter(
            Q(last_synced_at__isnull=True) | Q(last_synced_at__lt=not_checked_since)
        )
    return rows.update(lease_expires_at=new_lease()) == 1


def next_check_time(unchanged_checks: int, now: dt.datetime) -> dt.datetime:
    """When a still-unfinished session is due again: the interval doubles per check.

    Starts at ``VERILOCK_RECHECK_MIN_INTERVAL`` and stops growing at
    ``VERILOCK_RECHECK_MAX_INTERVAL`` (seconds).
    """
    low = verilock_settings.recheck_min_interval
    high = verilock_settings.recheck_max_interval
    return now + dt.timedelta(seconds=max(0.0, min(high, low * 2 ** min(unchanged_checks, 32))))
