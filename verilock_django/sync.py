"""Sync chosen sessions: fetch each from Verilock, then store it through :mod:`.store`.

:func:`sync_session` syncs one id; :func:`sync_sessions` many, through
:class:`SyncPipeline` (a bounded thread pool fetches, the calling thread stores in batches).
Every door (command, admin, webhook processing, task) and the batch refresh in :mod:`.refresh` come
through here. HTTP never runs inside a database transaction, and a failed fetch or an
unusable payload leaves the stored session exactly as it was, apart from its
``last_sync_error`` and its next check time.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import ngettext

from . import clock
from .client import VerilockClient, get_client
from .conf import verilock_settings
from .exceptions import (
    AuthenticationError,
    NotFoundError,
    TransportError,
    VerilockError,
    describe_failure,
)
from .store import Outcome, SyncResult, failure, record_failure, store_session
from .store_batch import store_sessions

logger = logging.getLogger(__name__)


@dataclass
class SyncReport:
    """Totals for a batch; failures keep their error message per session id."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    elapsed: float = 0.0
    #: Unfinished sessions whose status the list endpoint showed unchanged (not fetched).
    confirmed: int = 0
    #: Changed sessions left to another run that holds their lease.
    skipped: int = 0
    #: The run stopped claiming work at its time limit (``max_runtime``).
    stopped: bool = False
    #: Why the list endpoint failed, if it did (the run then inferred nothing from the list).
    list_error: str | None = None
    #: Failed sessions whose request never got an HTTP answer (timeout, refused connection).
    unreachable: int = 0
    #: Sessions claimed and handed to a task engine instead of fetched here (``--enqueue``).
    enqueued: int = 0
    #: Sessions whose data is older than ``VERILOCK_MAX_DATA_AGE`` that the run's budget or
    #: window left for the next run (which starts with them: oldest data first).
    stale_left: int = 0

    @property
    def synced(self) -> int:
        """Sessions whose stored data changed (created or updated)."""
        return self.created + self.updated

    @property
    def fetched(self) -> int:
        """Sessions fetched successfully."""
        return self.created + self.updated + self.unchanged + self.stale

    @property
    def settled(self) -> int:
        """Sessions this batch is done with: fetched, failed or confirmed by the list."""
        return self.fetched + len(self.failed) + self.confirmed

    @property
    def ok(self) -> bool:
        """True when nothing failed: no session, and not the list endpoint."""
        return not self.failed and self.list_error is None

    def add(self, result: SyncResult) -> None:
        """Count one session's result."""
        if result.outcome is Outcome.FAILED:
            self.failed[result.session_id] = str(result.error)
            self.unreachable += isinstance(result.error, TransportError)
        else:
            setattr(self, result.outcome.value, getattr(self, result.outcome.value) + 1)

    @property
    def api_unreachable(self) -> bool:
        """True when sessions failed and not one request got an HTTP answer."""
        return (
            bool(self.failed)
            and self.unreachable == len(self.failed)
            and not (self.fetched or self.confirmed)
        )

    def summary(self) -> str:
        """One line for logs: what was fetched, confirmed and failed, at what cost."""
        parts = [
            f"{self.fetched} fetched: {self.synced} changed ({self.created} new), "
            f"{self.unchanged + self.stale} unchanged, {len(self.failed)} failed"
        ]
        if self.confirmed:
            parts.append(f"{self.confirmed} confirmed by the list")
        if self.skipped:
            parts.append(f"{self.skipped} changed but held by another run")
        if self.enqueued:
            parts.append(f"{self.enqueued} enqueued")
        if self.list_error is not None:
            parts.append(f"listing sessions failed: {self.list_error}")
        if self.stale_left:
            parts.append(f"{self.stale_left} with old data left for the next run")
        if self.stopped:
            parts.append("stopped at the time limit")
        requests = ngettext("%d request", "%d requests", self.requests) % self.requests
        parts.append(f"{requests} in {self.elapsed:.1f}s")
        return "; ".join(parts)


OnResult = Callable[[SyncResult], None]
OnProgress = Callable[[SyncReport, int], None]


def sync_session(session_id: str, *, client: VerilockClient | None = None) -> SyncResult:
    """Fetch one session from Verilock and store it (creating it if unknown).

    On failure the error is recorded on the stored row (if any) and raised: a
    :class:`~verilock_django.exceptions.VerilockError` subclass.
    """
    result = store_fetched(fetch(client or get_client(), session_id, clock.now()))
    if result.error is not None:
        raise result.error
    return result


def sync_sessions(
    session_ids: Iterable[str],
    *,
    client: VerilockClient | None = None,
    on_result: OnResult | None = None,
    on_progress: OnProgress | None = None,
    concurrency: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SyncReport:
    """Sync the given sessions (fetched in parallel threads); one failure never stops the batch.

    No lease is taken: the caller chose these ids. A refused API key aborts the batch by
    raising :class:`~verilock_django.exceptions.AuthenticationError`: every other call would
    fail the same way. That is a 401, or a 403 before the key has read any session (a 403
    after that is one session's lack of permission: it fails alone). ``concurrency``
    defaults to ``VERILOCK_SYNC_CONCURRENCY``. Once ``should_stop()`` is true (SIGTERM), no
    further id is sent; those in flight are stored.
    """
    client = client or get_client()
    report = SyncReport()
    started = time.monotonic()
    requests_before = client.request_count
    try:
        with SyncPipeline(
            client, report, concurrency=concurrency, on_result=on_result, on_progress=on_progress
        ) as pipeline:
            pipeline.total = len(session_ids) if isinstance(session_ids, Sized) else 0
            for session_id in session_ids:
                if should_stop is not None and should_stop():
                    break
                pipeline.submit(session_id)
    finally:
        report.requests = client.request_count - requests_before
        report.elapsed = time.monotonic() - started
    return report


@dataclass(frozen=True)
class Fetched:
    """One fetch's answer: the payload, or the error tagged with the session id."""

    session_id: str
    fetched_at: dt.datetime
    payload: dict[str, Any] | None = None
    error: VerilockError | None = None


def fetch(client: VerilockClient, session_id: str, fetched_at: dt.datetime) -> Fetched:
    """``GET /sessions/{id}`` (HTTP only, never the database: safe on any thread).

    ``fetched_at`` is taken by the caller from :func:`verilock_django.clock.now` just before
    (the database's clock cannot be read from a pool thread).
    """
    try:
        return Fetched(session_id, fetched_at, payload=client.get_session(session_id))
    except VerilockError as exc:
        exc.session_id = exc.session_id or session_id
        return Fetched(session_id, fetched_at, error=exc)
    except ImproperlyConfigured:
        raise  # every session would fail alike: the batch stops with the reason
    except Exception as exc:  # a bug or a library's surprise: this session fails, alone
        error = VerilockError(f"fetching failed: {describe_failure(exc)}", session_id=session_id)
        return Fetched(session_id, fetched_at, error=error)


def store_fetched(fetched: Fetched, *, release_lease: bool = False) -> SyncResult:
    """Store a fetch's payload, or record its failure; a ``FAILED`` result carries the error.

    Any exception while storing (not only a :class:`VerilockError`: a database error, a
    bug) fails this one session only: it becomes a
    :class:`~verilock_django.exceptions.StorageError` whose message holds no payload value
    (:func:`.store.failure`), recorded on the row, and the lease is released.
    """
    if fetched.error is not None:
        failed = SyncResult(fetched.session_id, Outcome.FAILED, error=fetched.error)
        return _failed(failed, release_lease=release_lease)
    try:
        return store_session(
            fetched.payload,
            requested_id=fetched.session_id,
            fetched_at=fetched.fetched_at,
            release_lease=release_lease,
        )
    except Exception as exc:  # one session's failure must never stop a batch
        return _failed(failure(fetched.session_id, exc), release_lease=release_lease)


def store_fetched_batch(
    batch: Sequence[Fetched], *, release_lease: bool = False
) -> list[SyncResult]:
    """:func:`store_fetched` for many fetches, stored in one transaction; results in order.

    The payloads go through :func:`.store_batch.store_sessions` (one set of statements for
    the whole batch, one by one if that fails); every failure, of a fetch or of storing, is
    recorded on its own row as :func:`store_fetched` does.
    """
    answers = [f for f in batch if f.error is None]
    stored = iter(
        store_sessions(
            [(f.session_id, f.payload, f.fetched_at) for f in answers],
            release_lease=release_lease,
        )
    )
    results = []
    for fetched in batch:
        if fetched.error is not None:
            result = SyncResult(fetched.session_id, Outcome.FAILED, error=fetched.error)
        else:
            result = next(stored)
        if result.outcome is Outcome.FAILED:
            _failed(result, release_lease=release_lease)
        results.append(result)
    return results


def _failed(result: SyncResult, *, release_lease: bool = False) -> SyncResult:
    """Log a failed session and keep its error on the row (releasing its lease)."""
    assert result.error is not None
    logger.warning("Sync of Verilock session %s failed: %s", result.session_id, result.error)
    try:
        record_failure(result.session_id, result.error, release_lease=release_lease)
    except Exception as exc:  # the database itself is failing: report, do not stop the batch
        logger.error(
            "Recording the failure of Verilock session %s failed too: %s",
            result.session_id,
            describe_failure(exc),
        )
    return result


class SyncPipeline:
    """Fetch in a bounded thread pool; store the answers in batches on the calling thread.

    Starts with one request in flight and opens up to ``concurrency`` once the key has read
    a session (an answer, or a 404: the API looked the id up for it), so a bad key costs one
    request, not a volley.
    Answers are stored :data:`BATCH_SIZE` at a time (:func:`store_fetched_batch`, one
    transaction each), or as many as arrived once the oldest has waited
    :data:`BATCH_SECONDS` while the pipeline waits for more, and all of them on
    :meth:`drain` ``(0)`` and on the way out: a slow trickle is stored within a second.
    ``leased``: the ids were claimed by :func:`verilock_django.schedule.claim_sessions`; each
    store (or recorded failure) releases its lease.
    """

    #: Most answers stored in one transaction.
    BATCH_SIZE = 100
    #: Longest an answer waits for its batch to fill while the pipeline waits (seconds).
    BATCH_SECONDS = 0.5

    def __init__(
        self,
        client: VerilockClient,
        report: SyncReport,
        *,
        concurrency: int | None = None,
        on_result: OnResult | None = None,
        on_progress: OnProgress | None = None,
        leased: bool = False,
    ) -> None:
        self.client = client
        self.report = report
        self.concurrency = max(
            1, concurrency if concurrency is not None else verilock_settings.sync_concurrency
        )
        self.on_result = on_result
        self.on_progress = on_progress
        self.leased = leased
        #: The batch's size as far as known, for the progress callback.
        self.total = 0
        #: The API has answered a read of sessions with this key (a fetch or a 404 here, or
        #: a list page the caller read): from then on fetches go in parallel (before, one goes
        #: alone, so a refused key costs one request), and a 403 fails its session alone,
        #: while a 401 (the key refused) still stops the batch.
        self.key_reads_sessions = False
        self._in_flight: dict[Future[Fetched], str] = {}
        #: Fetches that finished, in the order they did (each future puts itself here).
        self._done: queue.SimpleQueue[Future[Fetched]] = queue.SimpleQueue()
        self._ready: list[Fetched] = []
        self._ready_since = 0.0
        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="verilock-sync")

    def __enter__(self) -> SyncPipeline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *args: object) -> None:
        try:
            if exc_type is None:
                self.drain(0)
            elif self._ready:  # keep what was fetched; the exception goes on regardless
                try:
                    self.flush()
                except Exception as exc:
                    logger.error("Storing fetched sessions failed: %s", describe_failure(exc))
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def queue_depth(self) -> int:
        """Most fetches in flight: four per thread keep every thread busy while this thread
        stores a batch, and keep what a stop (SIGTERM, ``max_runtime``) still fetches small."""
        return 4 * self.concurrency

    def submit(self, session_id: str) -> None:
        """Queue one fetch, first storing answers until there is room for it."""
        self.drain((self.queue_depth if self.key_reads_sessions else 1) - 1)
        future = self._executor.submit(fetch, self.client, session_id, clock.now())
        self._in_flight[future] = session_id
        future.add_done_callback(self._done.put)

    def drain(self, keep: int) -> None:
        """Collect answers until at most ``keep`` fetches are in flight; store what is due.

        ``keep=0`` stores every answer collected.
        """
        self._harvest(0.0)  # what arrived meanwhile joins its batch, which may be due
        while len(self._in_flight) > keep:
            timeout = None
            if self._ready:
                timeout = max(0.0, self._ready_since + self.BATCH_SECONDS - time.monotonic())
            self._harvest(timeout)
        if keep == 0:
            self.flush()

    def flush(self) -> None:
        """Store every answer collected so far (one transaction) and report the results."""
        batch, self._ready = self._ready, []
        if not batch:
            return
        for result in store_fetched_batch(batch, release_lease=self.leased):
            self.report.add(result)
            if self.on_result is not None:
                self.on_result(result)
        self.settle()

    def settle(self) -> None:
        """Tell the progress callback that the report moved."""
        if self.on_progress is not None:
            self.on_progress(self.report, self.total)

    def _collect(self, fetched: Fetched) -> None:
        error = fetched.error
        if isinstance(error, AuthenticationError) and not (
            # Once the key has read sessions, a 403 (no permission) is about this session.
            error.status_code == 403 and self.key_reads_sessions
        ):
            self.flush()  # what was fetched before is kept
            raise error
        if error is None or isinstance(error, NotFoundError):
            # The key read a session, or had one looked up. Any other answer (a 5xx, a 429,
            # a 400) says nothing of the key: a 403 after it still stops the batch.
            self.key_reads_sessions = True
        if not self._ready:
            self._ready_since = time.monotonic()
        self._ready.append(fetched)
        if len(self._ready) >= self.BATCH_SIZE:
            self.flush()

    def _harvest(self, timeout: float | None) -> None:
        """Collect the answers that arrive within ``timeout`` seconds; store a due batch."""
        if self._in_flight:
            # A queue the fetches put themselves on when done: waiting costs the same with
            # 4 or 64 in flight (concurrent.futures.wait visits every one, each time).
            try:
                done = [self._done.get(timeout != 0.0, timeout)]
            except queue.Empty:
                done = []
            while not self._done.empty():
                done.append(self._done.get_nowait())
            for future in done:
                del self._in_flight[future]
                self._collect(future.result())
        if self._ready and time.monotonic() - self._ready_since >= self.BATCH_SECONDS:
            self.flush()
