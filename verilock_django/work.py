"""Units of background work, and the task engine they are sent to.

Three units, each taking JSON-safe ids only, each safe to run twice:

- :func:`sync_one` — fetch and store one session if this worker can lease it (a session
  another worker holds is skipped, not an error);
- :func:`process_one_event` — process one stored webhook event (a claim decides who);
- :func:`refresh_batch` — one batch refresh of due sessions, fetched inline by the worker.

``VERILOCK_TASK_BACKEND`` says where they run: ``None`` (no engine; the default), the alias
of a Django ``TASKS`` backend (:mod:`verilock_django.tasks`), or ``"celery"``
(:mod:`verilock_django.contrib.celery`). The engine module is loaded by its dotted path only
when configured, so neither Django's task framework nor Celery is needed otherwise. Every
``enqueue_*`` function sends on commit of the current transaction (at once outside one) and
returns ``False`` when no engine is configured: the caller then does the work itself.

A worker's lease must outlast the longest fetch it covers (:func:`lease_floor`); system
check ``verilock_django.E060`` (:func:`check_worker_lease`) says so when it does not.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Protocol

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register
from django.utils.module_loading import import_string

from . import clock
from .client import get_client
from .conf import (
    CELERY_BACKEND,
    LEASE_SECONDS,
    MAX_RETRIES,
    TASK_BACKEND,
    TIMEOUT,
    verilock_settings,
)
from .exceptions import (
    PayloadError,
    RateLimitedError,
    ServerError,
    TransportError,
    VerilockConfigurationError,
)
from .models import Session
from .payloads import parse_session_id
from .processing import ProcessOutcome, dispatch, process_event
from .ratelimit import WINDOW
from .refresh import Lease, refresh_unfinished
from .schedule import release_leases, take_lease
from .sync import fetch, store_fetched, sync_session

logger = logging.getLogger(__name__)

#: What :func:`sync_one` returns when another worker holds the session (or it is done).
SKIPPED = "skipped"

#: Failures a task engine may retry (the session was recorded as failed meanwhile).
RETRYABLE = (TransportError, ServerError, RateLimitedError)

#: Where each ``VERILOCK_TASK_BACKEND`` kind of engine lives.
ENGINE_PATHS = {
    CELERY_BACKEND: "verilock_django.contrib.celery.engine",
    "django": "verilock_django.tasks.engine",
}


class Engine(Protocol):
    """A task engine: sends the units to workers (on commit)."""

    def enqueue_sync(self, session_id: str, lease: Lease | None) -> None:
        """Send :func:`sync_one` for one session."""

    def enqueue_event(self, event_id: int) -> None:
        """Send :func:`process_one_event` for one stored event."""

    def enqueue_refresh(self, limit: int | None) -> None:
        """Send :func:`refresh_batch`."""


# -- the units -------------------------------------------------------------------------


def sync_one(session_id: str, lease: str | None = None, claimed_at: str | None = None) -> str:
    """Fetch and store one session; returns the outcome (``"updated"``, ``"failed"``…) or
    :data:`SKIPPED`.

    ``lease``/``claimed_at`` (ISO 8601) come from a fan-out claim (:class:`Lease`); the
    worker takes that claim over. Without them the session is synced if nobody holds it
    (a session not stored yet is fetched and created). A failed fetch is recorded on the
    session; a retryable one (transport, 5xx, 429) is raised again so the engine can retry.
    A ``session_id`` no door accepts, or a ``lease``/``claimed_at`` that is not an ISO 8601
    time, raises :class:`~verilock_django.exceptions.PayloadError` (not retryable) before any
    query.
    """
    # Checked and normalised as every door does, before the lease is looked up by it: a
    # padded id leased nothing and was then fetched (and refused) as another session.
    session_id = parse_session_id(session_id, "session_id")
    token = _claim_time(lease, "lease")
    since = _claim_time(claimed_at, "claimed_at")
    if not take_lease(session_id, token=token, not_checked_since=since):
        if token is not None or since is not None:
            return SKIPPED
        if Session.objects.filter(pk=session_id).exists():
            return SKIPPED
        return sync_session(session_id).outcome.value  # unknown yet: create it
    try:
        fetched = fetch(get_client(), session_id, clock.now())
        result = store_fetched(fetched, release_lease=True)
    except BaseException:
        release_leases([session_id])
        raise
    if isinstance(result.error, RETRYABLE):
        raise result.error
    return result.outcome.value


def _claim_time(value: object, name: str) -> dt.datetime | None:
    """A claim's time from a task message (``Lease.token``/``claimed_at``, ISO 8601) as the
    lease columns hold it (:func:`~verilock_django.clock.stored_datetime`); a naive one is UTC.

    :raises PayloadError: ``value`` is not such a time (a message not made by this app).
    """
    if value is None or value == "":
        return None
    try:
        moment = dt.datetime.fromisoformat(value)  # type: ignore[arg-type]
        if settings.USE_TZ and moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return clock.stored_datetime(moment)
    except (TypeError, ValueError, OverflowError):
        raise PayloadError(name, "not an ISO 8601 time") from None


def process_one_event(event_id: int) -> str:
    """Process one stored webhook event; returns the :class:`ProcessOutcome` value."""
    outcome: ProcessOutcome = process_event(event_id)
    return outcome.value


def refresh_batch(limit: int | None = None) -> str:
    """Refresh due sessions on this worker (at most ``limit``); returns the summary line."""
    return refresh_unfinished(limit=limit).summary()


# -- sending ---------------------------------------------------------------------------


def engine() -> Engine | None:
    """The configured engine, or ``None`` without ``VERILOCK_TASK_BACKEND``.

    :raises VerilockConfigurationError: the engine cannot be loaded (Celery or Django's task
        framework is not installed).
    """
    backend = verilock_settings.task_backend
    if backend is None:
        return None
    path = ENGINE_PATHS[CELERY_BACKEND if backend == CELERY_BACKEND else "django"]
    try:
        loaded: Engine = import_string(path)
    except ImportError as exc:
        raise VerilockConfigurationError(
            f"VERILOCK_TASK_BACKEND needs {path.rsplit('.', 1)[0]}, which cannot be "
            f"imported: {exc}"
        ) from exc
    return loaded


def enqueue_syncs(session_ids: list[str]) -> bool:
    """Send one :func:`sync_one` task per session; ``False`` (nothing sent) without an engine."""
    target = engine()
    if target is None:
        return False
    for session_id in session_ids:
        target.enqueue_sync(session_id, None)
    return True


def enqueue_claimed(session_id: str, lease: Lease) -> None:
    """Send a session claimed by ``sync_verilock_sessions --enqueue`` with its lease.

    :raises VerilockConfigurationError: no engine is configured.
    """
    target = engine()
    if target is None:
        raise VerilockConfigurationError("--enqueue needs VERILOCK_TASK_BACKEND.")
    target.enqueue_sync(session_id, lease)


def dispatch_event(event_id: int) -> None:
    """Hand a stored webhook event on: a task when ``VERILOCK_WEBHOOK_PROCESSOR`` is
    ``"auto"`` and an engine is configured, else :func:`verilock_django.processing.dispatch`."""
    if verilock_settings.webhook_processor == "auto":
        target = engine()
        if target is not None:
            target.enqueue_event(event_id)
            return
    dispatch(event_id)


# -- the lease a worker needs ------------------------------------------------------------


def lease_floor() -> float:
    """The longest a worker may hold a session between taking its lease and storing the
    answer, in seconds: one rate-limit window (:data:`verilock_django.ratelimit.WINDOW`)
    plus ``VERILOCK_TIMEOUT`` for the first attempt and each of ``VERILOCK_MAX_RETRIES``.

    :raises InvalidSetting: one of these settings is unusable (its own check reports it).
    """
    return WINDOW + TIMEOUT.value() * (MAX_RETRIES.value() + 1)


@register(Tags.compatibility)
def check_worker_lease(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``verilock_django.E060``: with a task backend, ``VERILOCK_LEASE_SECONDS`` is shorter
    than :func:`lease_floor`. A lease that runs out while its worker still waits for the
    answer lets another worker fetch the same session again."""
    rows = (TASK_BACKEND, LEASE_SECONDS, TIMEOUT, MAX_RETRIES)
    if any(row.problem() is not None for row in rows) or TASK_BACKEND.value() is None:
        return []
    needed = lease_floor()
    if LEASE_SECONDS.value() >= needed:
        return []
    return [
        Error(
            "VERILOCK_LEASE_SECONDS is shorter than a worker may hold a session before "
            "storing it: one rate-limit window plus every attempt's VERILOCK_TIMEOUT "
            f"({needed:g} s with these settings).",
            hint="Raise VERILOCK_LEASE_SECONDS (default 600), or lower VERILOCK_TIMEOUT or "
            "VERILOCK_MAX_RETRIES.",
            id="verilock_django.E060",
        )
    ]
