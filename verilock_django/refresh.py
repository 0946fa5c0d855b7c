"""The batch refresh: bring every unfinished session up to date within the API's limits.

One refresh run:

1. **List** (default). ``GET /sessions?from=<day the oldest unfinished session was
   created>&per_page=100``, pages 1..last_page. Each page is reconciled by id with the
   stored unfinished sessions: a session whose listed status equals the stored one is
   *confirmed* (no request; ``last_synced_at`` is bumped); one whose status changed is
   claimed and fetched by id at once. The walk stops after page 1 when the pages left
   outnumber the unfinished sessions still unaccounted for (a few old unfinished sessions
   among many newer finished ones make the list long: checking them by id is cheaper),
   and at the first page that fails.
2. **By id** for what the list did not account for: sessions never fetched, without a
   ``created_at``, or absent from the listing — only those *due* (``next_check_at``
   passed; the interval doubles after each check that brought nothing new, between
   ``VERILOCK_RECHECK_MIN_INTERVAL`` and ``VERILOCK_RECHECK_MAX_INTERVAL``).
   ``full=True`` skips the list and fetches every unfinished session by id, due or not.

So a cycle over N unfinished sessions of which k changed costs k + ceil(W/100) requests
(W = sessions listed), and the backoff only governs by-id checks: the list checks every
listed session on every run for the price of one request per 100.

Fetches run in a bounded thread pool (one pooled HTTP session per thread); every database
write happens on the calling thread, one transaction per session. Rows are claimed with a
lease before they are fetched — ``SELECT … FOR UPDATE SKIP LOCKED`` where the database
has it, a conditional ``UPDATE`` elsewhere — so overlapping runs never fetch the same
session, and the lease is released in the same statement that stores the session.
Work is pulled in chunks; nothing here holds all ids in memory.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Min, Q, QuerySet
from django.utils import timezone

from .client import VerilockClient, get_client
from .conf import verilock_settings
from .exceptions import ApiError, AuthenticationError, PayloadError, VerilockError
from .models import Session
from .payloads import parse_session
from .sync import Outcome, SyncReport, SyncResult, record_failure, store_session

logger = logging.getLogger(__name__)

#: Items per list page: the API's maximum.
LIST_PAGE_SIZE = 100

OnResult = Callable[[SyncResult], None]
OnProgress = Callable[[SyncReport, int], None]


def refresh_unfinished(
    *,
    full: bool = False,
    limit: int | None = None,
    concurrency: int | None = None,
    max_runtime: float | None = None,
    client: VerilockClient | None = None,
    on_result: OnResult | None = None,
    on_progress: OnProgress | None = None,
) -> SyncReport:
    """Refresh unfinished sessions (see the module docstring) and return the report.

    ``limit`` caps the sessions fetched; ``max_runtime`` (seconds) stops claiming new
    work once passed; ``on_progress(report, total)`` runs after each settled session.
    """
    client = client or get_client()
    report = SyncReport()
    started = time.monotonic()
    requests_before = client.request_count
    run = _Run(
        client=client,
        report=report,
        concurrency=_concurrency(concurrency),
        limit=limit,
        deadline=None if max_runtime is None else started + max_runtime,
        on_result=on_result,
        on_progress=on_progress,
    )
    try:
        with run:
            if not full:
                run.walk_list()
            run.fetch_due(full=full)
    finally:
        report.requests = client.request_count - requests_before
        report.elapsed = time.monotonic() - started
    return report


def fetch_and_store(
    session_ids: Iterable[str],
    *,
    client: VerilockClient | None = None,
    on_result: OnResult | None = None,
    on_progress: OnProgress | None = None,
    concurrency: int | None = None,
) -> SyncReport:
    """Fetch and store the given sessions in parallel (no lease: the caller chose them)."""
    client = client or get_client()
    report = SyncReport()
    started = time.monotonic()
    requests_before = client.request_count
    total = len(session_ids) if isinstance(session_ids, Sized) else 0
    try:
        with _Pipeline(
            client, report, _concurrency(concurrency), on_result, on_progress, leased=False
        ) as pipeline:
            pipeline.total = total
            for session_id in session_ids:
                pipeline.submit(session_id)
    finally:
        report.requests = client.request_count - requests_before
        report.elapsed = time.monotonic() - started
    return report


# -- internals -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Fetched:
    session_id: str
    fetched_at: dt.datetime
    payload: dict[str, Any] | None = None
    error: VerilockError | None = None


def _concurrency(value: int | None) -> int:
    return max(1, int(value if value is not None else verilock_settings.sync_concurrency))


class _Pipeline:
    """Fetch in a bounded thread pool; store each answer on the calling thread.

    Starts with one request in flight and opens up to ``concurrency`` once the API has
    answered without refusing the key, so a bad key costs one request, not a volley.
    """

    def __init__(
        self,
        client: VerilockClient,
        report: SyncReport,
        concurrency: int,
        on_result: OnResult | None,
        on_progress: OnProgress | None,
        *,
        leased: bool,
    ) -> None:
        self.client = client
        self.report = report
        self.concurrency = concurrency
        self.on_result = on_result
        self.on_progress = on_progress
        self.leased = leased
        self.total = 0
        #: Leased ids not stored yet; their leases are released if the run is cut short.
        self.outstanding: set[str] = set()
        self._proven = False
        self._in_flight: dict[Future[_Fetched], str] = {}
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="verilock-sync")

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *args: object) -> None:
        try:
            if exc_type is None:
                self.drain(0)
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def submit(self, session_id: str) -> None:
        """Queue one fetch, first storing answers until there is room for it."""
        # A queue twice the pool's size keeps every thread busy while this thread stores.
        self.drain((2 * self.concurrency if self._proven else 1) - 1)
        future = self._executor.submit(_fetch, self.client, session_id)
        self._in_flight[future] = session_id

    def drain(self, keep: int) -> None:
        """Store answers as they arrive until at most ``keep`` fetches are in flight."""
        while len(self._in_flight) > keep:
            done, _ = wait(self._in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                del self._in_flight[future]
                self._store(future.result())

    def settle(self) -> None:
        """Tell the progress callback that the report moved."""
        if self.on_progress is not None:
            self.on_progress(self.report, self.total)

    def _store(self, fetched: _Fetched) -> None:
        error = fetched.error
        if isinstance(error, AuthenticationError):
            raise error
        self.outstanding.discard(fetched.session_id)
        if error is None or isinstance(error, ApiError):
            self._proven = True  # the API answered and accepted the key
        if error is None:
            assert fetched.payload is not None
            try:
                result = store_session(
                    fetched.payload,
                    requested_id=fetched.session_id,
                    fetched_at=fetched.fetched_at,
                    release_lease=self.leased,
                )
            except VerilockError as exc:
                exc.session_id = exc.session_id or fetched.session_id
                error = exc
        if error is not None:
            logger.warning("Sync of Verilock session %s failed: %s", fetched.session_id, error)
            record_failure(fetched.session_id, error, release_lease=self.leased)
            result = SyncResult(fetched.session_id, Outcome.FAILED, error=error)
        self.report.add(result)
        if self.on_result is not None:
            self.on_result(result)
        self.settle()


def _fetch(client: VerilockClient, session_id: str) -> _Fetched:
    """Runs on a pool thread: HTTP only, never the database."""
    fetched_at = timezone.now()
    try:
        return _Fetched(session_id, fetched_at, payload=client.get_session(session_id))
    except VerilockError as exc:
        exc.session_id = exc.session_id or session_id
        return _Fetched(session_id, fetched_at, error=exc)


class _Run:
    """State of one :func:`refresh_unfinished` run."""

    def __init__(
        self,
        *,
        client: VerilockClient,
        report: SyncReport,
        concurrency: int,
        limit: int | None,
        deadline: float | None,
        on_result: OnResult | None,
        on_progress: OnProgress | None,
    ) -> None:
        self.client = client
        self.report = report
        self.limit = limit
        self.deadline = deadline
        self.started_at = timezone.now()
        self.claimed = 0
        self.pipeline = _Pipeline(client, report, concurrency, on_result, on_progress, leased=True)
        self.chunk_size = 2 * concurrency
        self.unfinished = Session.objects.unfinished().count()
        self.pipeline.total = self.unfinished if limit is None else min(limit, self.unfinished)

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *args: object) -> None:
        try:
            self.pipeline.__exit__(exc_type)
        finally:
            if self.pipeline.outstanding:
                Session.objects.filter(pk__in=self.pipeline.outstanding).update(
                    lease_expires_at=None
                )

    # -- the two phases ---------------------------------------------------------------

    def walk_list(self) -> None:
        """Confirm unchanged sessions from the list; fetch the changed ones by id."""
        oldest = Session.objects.unfinished().aggregate(oldest=Min("created_at"))["oldest"]
        if oldest is None:
            return  # nothing listable: every unfinished session is pending
        created_from = oldest.astimezone(dt.timezone.utc).date().isoformat()
        page, last_page = 1, 1
        while page <= last_page and not self.out_of_time() and not self.limit_reached():
            try:
                body = self.client.list_sessions(
                    page=page, per_page=LIST_PAGE_SIZE, created_from=created_from
                )
                items, last_page = _page_items(body)
            except AuthenticationError:
                raise
            except VerilockError as exc:
                logger.warning("Listing Verilock sessions failed, checking by id: %s", exc)
                return
            self.reconcile(items)
            unaccounted = self.unfinished - self.report.confirmed - self.claimed
            if page == 1 and last_page - 1 > unaccounted:
                logger.info(
                    "Listing %d more pages costs more than checking %d sessions by id.",
                    last_page - 1,
                    unaccounted,
                )
                return
            page += 1
        if self.out_of_time():
            self.report.stopped = True

    def reconcile(self, items: list[tuple[str, str]]) -> None:
        """Compare one page's statuses with the stored ones; fetch what changed."""
        listed = dict(items)
        stored = dict(
            Session.objects.unfinished().filter(pk__in=listed).values_list("id", "status")
        )
        unchanged = [sid for sid, status in stored.items() if listed[sid] == status]
        changed = sorted(sid for sid in stored if listed[sid] != stored[sid])
        if unchanged:
            # Marks them as accounted for, so the by-id phase leaves them alone.
            Session.objects.filter(pk__in=unchanged).update(last_synced_at=timezone.now())
            self.report.confirmed += len(unchanged)
            self.pipeline.settle()
        if changed:
            claimed = self.process(self.claimable().filter(pk__in=changed))
            # The others are leased by another run, which fetches them.
            self.report.skipped += len(changed) - claimed

    def fetch_due(self, *, full: bool) -> None:
        """Fetch by id every due session this run has not accounted for (all, if ``full``)."""
        self.pipeline.drain(0)  # what the list phase fetched is stored, hence accounted for
        queryset = self.claimable()
        if full:
            self.process(queryset)
        else:
            # Never-fetched sessions first, then the overdue ones.
            self.process(queryset.filter(next_check_at__isnull=True))
            self.process(queryset.filter(next_check_at__lte=self.started_at))

    # -- claiming ---------------------------------------------------------------------

    def claimable(self) -> QuerySet[Session]:
        """Unfinished sessions no run holds a live lease on and none checked since we began.

        The second condition keeps an overlapping run that started earlier and already
        stored (and released) a session from being followed by a second fetch here.
        """
        return Session.objects.unfinished().filter(
            Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=timezone.now()),
            Q(last_synced_at__isnull=True) | Q(last_synced_at__lt=self.started_at),
        )

    def process(self, queryset: QuerySet[Session]) -> int:
        """Claim ``queryset``'s rows chunk by chunk (keyset on id), fetch them; count claims."""
        after, claimed = "", 0
        while not self.out_of_time() and not self.limit_reached():
            size = self.chunk_size
            if self.limit is not None:
                size = min(size, self.limit - self.claimed)
            ids, last_seen = _claim(queryset.filter(pk__gt=after).order_by("id"), size)
            if last_seen is None:
                break
            after = last_seen
            self.claimed += len(ids)
            claimed += len(ids)
            self.pipeline.outstanding.update(ids)
            for session_id in ids:
                self.pipeline.submit(session_id)
        if self.out_of_time():
            self.report.stopped = True
        # No drain here: the next list page is fetched while these are in flight.
        return claimed

    def out_of_time(self) -> bool:
        """True once ``max_runtime`` has passed: claim nothing new."""
        return self.deadline is not None and time.monotonic() >= self.deadline

    def limit_reached(self) -> bool:
        """True once ``limit`` sessions were claimed."""
        return self.limit is not None and self.claimed >= self.limit


def _claim(candidates: QuerySet[Session], size: int) -> tuple[list[str], str | None]:
    """Lease up to ``size`` of ``candidates`` (ordered by id) for this run.

    Returns the ids won and the last candidate id looked at (``None``: no candidates left).
    """
    if size <= 0:
        return [], None
    # Unique per claim: on databases without SKIP LOCKED the expiry doubles as the token
    # that tells which rows this claim won.
    until = timezone.now() + dt.timedelta(
        seconds=verilock_settings.lease_seconds, microseconds=secrets.randbelow(10**6)
    )
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


def _page_items(body: dict[str, Any]) -> tuple[list[tuple[str, str]], int]:
    """``(id, status)`` of a list page's readable items, and the last page number."""
    data, meta = body.get("data"), body.get("meta")
    if not isinstance(data, list) or not isinstance(meta, dict):
        raise PayloadError("(list body)", "expected 'data' (a list) and 'meta' (an object)")
    last_page = meta.get("last_page")
    if isinstance(last_page, bool) or not isinstance(last_page, int):
        raise PayloadError("meta.last_page", "expected a number")
    items = []
    for item in data:
        try:
            parsed = parse_session(item)
        except PayloadError:
            # Unreadable: if it is one of ours, the by-id phase fetches it.
            continue
        items.append((parsed.id, parsed.status))
    return items, last_page
