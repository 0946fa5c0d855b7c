"""The units of :mod:`verilock_django.work` as tasks of Django's task framework.

``django.tasks`` on Django 6.0 and later; on 5.2 the ``django-tasks`` backport (the
``tasks`` extra), imported the way its author recommends: the built-in module first. No
backend or queue is fixed at import: each Task is built when it is used (enqueued by
:data:`engine`, or imported by a worker) for the backend and queue that
``VERILOCK_TASK_BACKEND`` and ``VERILOCK_TASK_QUEUE`` name then, so importing this module
never fails in a host whose ``TASKS`` lacks a ``"default"`` backend or queue. Loaded only when
``VERILOCK_TASK_BACKEND`` names a ``TASKS`` alias. A real worker backend runs them, for
example ``django-tasks-db`` (``manage.py db_worker``); see docs/deploying.md.
"""

from __future__ import annotations

from collections.abc import Callable
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

__all__ = ["engine", "process_event", "refresh_batch", "sync_session"]  # noqa: F822


def _sync_session(session_id: str, lease: str | None = None, claimed_at: str | None = None) -> str:
    """Fetch and store one session unless another worker holds it (see :func:`work.sync_one`)."""
    return work.sync_one(session_id, lease, claimed_at)


def _process_event(event_id: int) -> str:
    """Process one stored webhook event (see :func:`work.process_one_event`)."""
    return work.process_one_event(event_id)


def _refresh_batch(limit: int | None = None) -> str:
    """Refresh due sessions on the worker (see :func:`work.refresh_batch`)."""
    return work.refresh_batch(limit)


#: The units by their public names: a worker imports ``verilock_django.tasks.<name>``.
_UNITS: dict[str, Callable[..., str]] = {
    "sync_session": _sync_session,
    "process_event": _process_event,
    "refresh_batch": _refresh_batch,
}
for _name, _func in _UNITS.items():
    _func.__name__ = _func.__qualname__ = _name  # the Task's module_path names the attribute


def __getattr__(name: str) -> Task[..., str]:
    """``sync_session``, ``process_event``, ``refresh_batch`` as Tasks of the configured backend.

    Built on access rather than decorated at import: a Task is validated against its backend
    when it is created, so a decorator naming ``"default"`` would stop the import in a host
    whose ``TASKS`` has no such backend or queue.
    """
    func = _UNITS.get(name)
    if func is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    options: dict[str, Any] = {"backend": verilock_settings.task_backend or "default"}
    if verilock_settings.task_queue is not None:
        options["queue_name"] = verilock_settings.task_queue
    unit: Task[..., str] = task(**options)(func)
    return unit


class DjangoTasksEngine:
    """Sends the tasks to ``VERILOCK_TASK_BACKEND`` / ``VERILOCK_TASK_QUEUE``, on commit."""

    def enqueue_sync(self, session_id: str, lease: Lease | None) -> None:
        args = (
            (session_id,)
            if lease is None
            else (session_id, lease.token.isoformat(), lease.claimed_at.isoformat())
        )
        self._send("sync_session", *args)

    def enqueue_event(self, event_id: int) -> None:
        self._send("process_event", event_id)

    def enqueue_refresh(self, limit: int | None) -> None:
        self._send("refresh_batch", limit)

    def _send(self, name: str, *args: object) -> None:
        # The Task is built now, for the backend and queue the settings name now.
        transaction.on_commit(partial(__getattr__(name).enqueue, *args))


#: The engine :func:`verilock_django.work.engine` loads for a ``TASKS`` alias.
engine = DjangoTasksEngine()
