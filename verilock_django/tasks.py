"""The units of :mod:`verilock_django.work` as tasks of Django's task framework.

``django.tasks`` on Django 6.0 and later; on 5.2 the ``django-tasks`` backport (the
``tasks`` extra), imported the way its author recommends: the built-in module first. The
decorators name no backend and no queue: :data:`engine` picks both from
``VERILOCK_TASK_BACKEND`` and ``VERILOCK_TASK_QUEUE`` at enqueue time with ``.using()``, so a
host whose ``TASKS`` lacks some name can still import this module. Loaded only when
``VERILOCK_TASK_BACKEND`` names a ``TASKS`` alias. A real worker backend runs them, for
example ``django-tasks-db`` (``manage.py db_worker``); see docs/deploying.md.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction

from . import work
from .conf import verilock_settings
from .refresh import Lease

try:
    from django.tasks import Task, task
except ImportError:  # Django 5.2: the backport
    from django_tasks import Task, task  # type: ignore[no-redef,import-not-found,unused-ignore]

__all__ = ["engine", "process_event", "refresh_batch", "sync_session"]


@task
def sync_session(session_id: str, lease: str | None = None, claimed_at: str | None = None) -> str:
    """Fetch and store one session unless another worker holds it (see :func:`work.sync_one`)."""
    return work.sync_one(session_id, lease, claimed_at)


@task
def process_event(event_id: int) -> str:
    """Process one stored webhook event (see :func:`work.process_one_event`)."""
    return work.process_one_event(event_id)


@task
def refresh_batch(limit: int | None = None) -> str:
    """Refresh due sessions on the worker (see :func:`work.refresh_batch`)."""
    return work.refresh_batch(limit)


class DjangoTasksEngine:
    """Sends the tasks to ``VERILOCK_TASK_BACKEND`` / ``VERILOCK_TASK_QUEUE``, on commit."""

    def enqueue_sync(self, session_id: str, lease: Lease | None) -> None:
        args = (
            (session_id,)
            if lease is None
            else (session_id, lease.token.isoformat(), lease.claimed_at.isoformat())
        )
        self._send(sync_session, *args)

    def enqueue_event(self, event_id: int) -> None:
        self._send(process_event, event_id)

    def enqueue_refresh(self, limit: int | None) -> None:
        self._send(refresh_batch, limit)

    def _send(self, unit: Task[..., Any], *args: object) -> None:
        options: dict[str, Any] = {"backend": verilock_settings.task_backend}
        if verilock_settings.task_queue is not None:
            options["queue_name"] = verilock_settings.task_queue
        transaction.on_commit(partial(unit.using(**options).enqueue, *args))


#: The engine :func:`verilock_django.work.engine` loads for a ``TASKS`` alias.
engine = DjangoTasksEngine()
