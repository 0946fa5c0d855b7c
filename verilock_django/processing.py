"""Processing of stored webhook events: claim one atomically, re-fetch its session, record.

A ``session.*`` event refreshes its session through :func:`verilock_django.sync.sync_session`
(the payload's own fields are never written to the session), so duplicates, retries and
out-of-order deliveries all converge to the provider's current state. Other events are
marked ``ignored``. A failure marks the event ``failed``; the
``process_verilock_webhooks`` command retries it, and takes over events left
``processing`` by a process that died.

``VERILOCK_WEBHOOK_PROCESSOR`` chooses who runs :func:`process_event` after an event is
stored: ``"thread"`` (a small in-process pool; what the default ``"auto"`` means without a
task engine, see :func:`verilock_django.work.dispatch_event`), ``"sync"`` (inline, before the
HTTP answer: tests and debugging), ``"none"`` (only the command), or the dotted path of a
callable ``f(event_id: int)`` that enqueues it on a task queue.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum

from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from .client import VerilockClient
from .conf import verilock_settings
from .exceptions import VerilockError, describe_failure
from .history import recorded_as
from .models import WebhookEvent, WebhookEventStatus
from .store import ERROR_MAX_LENGTH
from .sync import sync_session

logger = logging.getLogger(__name__)

#: Events queued in the thread pool at most; beyond, they wait for the command.
MAX_BACKLOG = 1000


class ProcessOutcome(str, Enum):
    """What one call to :func:`process_event` did."""

    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"
    SKIPPED = "skipped"  # not claimable: done already, or being processed elsewhere


@dataclass
class ProcessReport:
    """Totals for a batch of events; failures keep their error per event id."""

    processed: int = 0
    ignored: int = 0
    skipped: int = 0
    failed: dict[int, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for logs, the command and the admin."""
        return (
            f"{self.processed} processed, {self.ignored} ignored, "
            f"{len(self.failed)} failed, {self.skipped} skipped"
        )


def stale_before() -> dt.datetime:
    """Events ``processing`` since before this moment are considered abandoned."""
    return timezone.now() - dt.timedelta(seconds=verilock_settings.webhook_stale_after)


def claim_event(event_id: int, *, force: bool = False) -> WebhookEvent | None:
    """Move an event to ``processing`` if nobody else holds it; ``None`` if not claimable.

    One conditional UPDATE decides, so concurrent claimers of one event get one winner.
    Without ``force`` only pending, failed and abandoned events qualify; with ``force``
    processed and ignored ones too (a deliberate reprocess).
    """
    now = timezone.now()
    claimed = (
        WebhookEvent.objects.claimable(stale_before=stale_before(), force=force)
        .filter(pk=event_id)
        .update(
            status=WebhookEventStatus.PROCESSING,
            processing_started_at=now,
            attempts=F("attempts") + 1,
        )
    )
    if not claimed:
        return None
    event: WebhookEvent = WebhookEvent.objects.get(pk=event_id)
    return event


def process_event(
    event_id: int, *, force: bool = False, client: VerilockClient | None = None
) -> ProcessOutcome:
    """Claim one event and apply it; never raises for a failure, which is recorded instead."""
    event = claim_event(event_id, force=force)
    if event is None:
        return ProcessOutcome.SKIPPED
    if not event.event_type.startswith("session.") or not event.session_id:
        _finish(event, WebhookEventStatus.IGNORED)
        return ProcessOutcome.IGNORED
    try:
        with recorded_as(f"webhook:{event.webhook_id}"):
            sync_session(event.session_id, client=client)
    except Exception as exc:  # anything unexpected must still be recorded, never lost
        error = describe_failure(exc)
        if _is_expected(exc):
            error = f"{type(exc).__name__}: {error}"
        logger.warning(
            "Verilock webhook %s (session %s) failed: %s",
            event.webhook_id,
            event.session_id,
            error,
        )
        if not _is_expected(exc):  # a bug: say where, never the message (it may hold data)
            logger.error("".join(traceback.format_tb(exc.__traceback__)))
        _finish(event, WebhookEventStatus.FAILED, error=error)
        return ProcessOutcome.FAILED
    _finish(event, WebhookEventStatus.PROCESSED)
    return ProcessOutcome.PROCESSED


def process_events(
    event_ids: Iterable[int],
    *,
    force: bool = False,
    client: VerilockClient | None = None,
    on_result: Callable[[int, ProcessOutcome], None] | None = None,
) -> ProcessReport:
    """Process events one by one (the command and the admin action); one failure never stops it."""
    report = ProcessReport()
    for event_id in event_ids:
        try:
            outcome = process_event(event_id, force=force, client=client)
        except Exception as exc:  # e.g. the database went away while recording the result
            report.failed[event_id] = describe_failure(exc)
            outcome = ProcessOutcome.FAILED
        else:
            if outcome is ProcessOutcome.FAILED:
                error = WebhookEvent.objects.filter(pk=event_id).values_list(
                    "last_error", flat=True
                )
                report.failed[event_id] = error.first() or ""
        if outcome is not ProcessOutcome.FAILED:
            setattr(report, outcome.value, getattr(report, outcome.value) + 1)
        if on_result is not None:
            on_result(event_id, outcome)
    return report


def dispatch(event_id: int) -> None:
    """Hand a stored event to ``VERILOCK_WEBHOOK_PROCESSOR`` (called after commit)."""
    processor = verilock_settings.webhook_processor
    if processor in ("auto", "thread"):
        _submit(event_id)
    elif processor == "sync":
        process_event(event_id)
    elif processor == "none":
        return
    else:
        # A task queue's enqueue function; if it raises, the event stays pending.
        import_string(processor)(event_id)


def shutdown(*, wait: bool = True) -> None:
    """Stop the thread pool (it is recreated on the next event); for tests and shutdown hooks."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.shutdown(wait=wait)


# -- internals -----------------------------------------------------------------------

_executor: ThreadPoolExecutor | None = None
_executor_pid: int | None = None
_backlog = 0
_lock = threading.Lock()


def _submit(event_id: int) -> None:
    global _executor, _executor_pid, _backlog
    with _lock:
        if _backlog >= MAX_BACKLOG:
            logger.warning(
                "Verilock webhook backlog full; event %s waits for process_verilock_webhooks.",
                event_id,
            )
            return
        # A pool inherited through fork has no threads behind it: start a new one.
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(
                max_workers=verilock_settings.webhook_threads,
                thread_name_prefix="verilock-webhook",
            )
            _executor_pid = os.getpid()
        _backlog += 1
        executor = _executor
    executor.submit(_run, event_id)


def _run(event_id: int) -> None:
    global _backlog
    # Same connection hygiene as a request: drop broken or expired connections around the job.
    close_old_connections()
    try:
        process_event(event_id)
    except Exception:  # pragma: no cover - process_event records failures itself
        logger.exception("Processing Verilock webhook event %s crashed.", event_id)
    finally:
        close_old_connections()
        with _lock:
            _backlog -= 1


def _finish(event: WebhookEvent, status: str, *, error: str = "") -> None:
    # Only the claim that is still current may record its result: if the event was taken
    # over as abandoned meanwhile, the newer attempt owns it.
    WebhookEvent.objects.filter(
        pk=event.pk,
        status=WebhookEventStatus.PROCESSING,
        processing_started_at=event.processing_started_at,
    ).update(
        status=status,
        last_error=error[:ERROR_MAX_LENGTH],
        processed_at=None if status == WebhookEventStatus.FAILED else timezone.now(),
    )


def _is_expected(exc: Exception) -> bool:
    # API failures and a missing API key need no traceback; anything else is a bug to see.
    return isinstance(exc, (VerilockError, ImproperlyConfigured))
