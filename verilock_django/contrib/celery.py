"""The units of :mod:`verilock_django.work` as Celery tasks (the ``celery`` extra).

Importable only where Celery is installed. Set ``VERILOCK_TASK_BACKEND = "celery"`` and let
the host's Celery app discover this module (``app.autodiscover_tasks(["verilock_django.contrib"],
related_name="celery")`` or ``include=["verilock_django.contrib.celery"]``). Every task:

- is acknowledged late (``acks_late``) and requeued when its worker process dies
  (``reject_on_worker_lost``), so a killed worker loses nothing; running a task twice is
  harmless (the session lease and the event claim decide who works);
- retries a retryable API failure (transport error, 5xx, 429) at most :data:`MAX_RETRIES`
  times with jittered exponential backoff (at most :data:`RETRY_BACKOFF_MAX` seconds);
- is sent on commit of the current transaction, to ``VERILOCK_TASK_QUEUE`` if set.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from celery import shared_task
from django.db import OperationalError, transaction

from .. import work
from ..conf import verilock_settings
from ..refresh import Lease

#: Retries of one task after a retryable failure.
MAX_RETRIES = 3
#: Longest wait between two retries, seconds.
RETRY_BACKOFF_MAX = 60

_POLICY: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (*work.RETRYABLE, OperationalError),
    "max_retries": MAX_RETRIES,
    "retry_backoff": True,
    "retry_backoff_max": RETRY_BACKOFF_MAX,
    "retry_jitter": True,
}


@shared_task(name="verilock_django.sync_session", **_POLICY)
def sync_session(session_id: str, lease: str | None = None, claimed_at: str | None = None) -> str:
    """Fetch and store one session unless another worker holds it (see :func:`work.sync_one`)."""
    return work.sync_one(session_id, lease, claimed_at)


@shared_task(name="verilock_django.process_event", **_POLICY)
def process_event(event_id: int) -> str:
    """Process one stored webhook event (see :func:`work.process_one_event`)."""
    return work.process_one_event(event_id)


@shared_task(name="verilock_django.refresh_batch", **_POLICY)
def refresh_batch(limit: int | None = None) -> str:
    """Refresh due sessions on the worker (see :func:`work.refresh_batch`)."""
    return work.refresh_batch(limit)


class CeleryEngine:
    """Sends the tasks with ``apply_async`` on commit, to ``VERILOCK_TASK_QUEUE`` if set."""

    def enqueue_sync(self, session_id: str, lease: Lease | None) -> None:
        args = (
            [session_id]
            if lease is None
            else [session_id, lease.token.isoformat(), lease.claimed_at.isoformat()]
        )
        self._send(sync_session, args)

    def enqueue_event(self, event_id: int) -> None:
        self._send(process_event, [event_id])

    def enqueue_refresh(self, limit: int | None) -> None:
        self._send(refresh_batch, [limit])

    def _send(self, unit: Any, args: Sequence[object]) -> None:
        options: dict[str, Any] = {}
        if verilock_settings.task_queue is not None:
            options["queue"] = verilock_settings.task_queue
        transaction.on_commit(partial(unit.apply_async, args, **options))


#: The engine :func:`verilock_django.work.engine` loads for ``"celery"``.
engine = CeleryEngine()
