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

This module only *chooses* ids; fetching and storing go through
:class:`verilock_django.sync.SyncPipeline` (a bounded thread pool fetches; every database
write happens on the calling thread, through the store layer, one transaction per batch of
up to 100 answers). Rows are claimed with a lease before they are fetched (see
:func:`verilock_django.schedule.claim_sessions`), so overlapping runs never fetch the same
session, and the lease is released in the same statement that stores the session.
Work is pulled in chunks; nothing here holds all ids in memory.

With ``enqueue`` (``sync_verilock_sessions --enqueue``) the run fetches nothing by id: each
session it claims is handed to ``enqueue(session_id, lease)`` (a task engine, see
:mod:`verilock_django.tasks`) with the claim's :class:`Lease`; the worker that runs the task
takes the lease over (:func:`verilock_django.store.take_lease`), so one session is still
fetched by one worker at a time, and the list walk is all this run spends on the API.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Min

from . import clock
from .client import VerilockClient, get_client
from .exceptions import AuthenticationError, PayloadError, VerilockError
from .models import Session, SessionQuerySet
from .notify import deliver_pending_finished
from .payloads import parse_session
from .schedule import claim_sessions, confirm_listed, new_lease, release_claims
from .sync import OnProgress, OnResult, SyncPipeline, SyncReport

logger = logging.getLogger(__name__)

#: Items per list page: the API's maximum.
LIST_PAGE_SIZE = 100


@dataclass(frozen=True)
class Lease:
    """A fan-out claim: the lease's expiry (its token) and when the claiming run began."""

    token: dt.datetime
    claimed_at: dt.datetime


#: ``enqueue(session_id, lease)``: hand one claimed session to a worker.
Enqueue = Callable[[str, Lease], None]


def refresh_unfinished(
    *,
    full: bool = False,
    limit: int | None = None,
    concurrency: int | None = None,
    max_runtime: float | None = None,
    client: VerilockClient | None = None,
    on_result: OnResult | None = None,
    on_progress: OnProgress | None = None,
    enqueue: Enqueue | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SyncReport:
    """Refresh unfinished sessions (see the module docstring) and return the report.

    ``limit`` caps the sessions fetched; ``max_runtime`` (seconds) stops claiming new
    work once passed; ``on_progress(report, total)`` runs after each stored batch;
    ``enqueue`` hands claimed sessions to workers instead of fetching them here
    (``report.enqueued`` counts them); once ``should_stop()`` is true (SIGTERM) nothing new
    is claimed, what is in flight is stored, and the rest of the claims are released.
    """
    client = client or get_client()
    report = SyncReport()
    started = time.monotonic()
    requests_before = client.request_count
    run = _Run(
        client=client,
        report=report,
        concurrency=concurrency,
        limit=limit,
        deadline=None if max_runtime is None else started + max_runtime,
        on_result=on_result,
        on_progress=on_progress,
        enqueue=enqueue,
        should_stop=should_stop,
    )
    deliver_pending_finished()
    try:
        with run:
            if not full:
                run.walk_list()
            run.fetch_due(full=full)
    finally:
        report.requests = client.request_count - requests_before
        report.elapsed = time.monotonic() - started
    return report


# -- internals -----------------------------------------------------------------------


class _Run:
    """State of one :func:`refresh_unfinished` run."""

    def __init__(
        self,
        *,
        client: VerilockClient,
        report: SyncReport,
        concurrency: int | None,
        limit: int | None,
        deadline: float | None,
        on_result: OnResult | None,
        on_progress: OnProgress | None,
        enqueue: Enqueue | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.client = client
        self.enqueue = enqueue
        self.should_stop = should_stop
        self.report = report
        self.limit = limit
        self.deadline = deadline
        self.started_at = clock.now()
        self.claimed = 0
        #: Every lease token this run claimed under: released on the way out.
        self.lease_tokens: list[dt.datetime] = []
        self.pipeline = SyncPipeline(
            client,
            report,
            concurrency=concurrency,
            on_result=on_result,
            on_progress=on_progress,
            leased=True,
        )
        self.chunk_size = 2 * self.pipeline.concurrency
        self.unfinished = Session.objects.unfinished().count()
        self.pipeline.total = self.unfinished if limit is None else min(limit, self.unfinished)

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *args: object) -> None:
        try:
            self.pipeline.__exit__(exc_type)
        finally:
            release_claims(self.lease_tokens)

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
                self.report.list_error = str(exc)
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
            self.report.confirmed += confirm_listed(unchanged)
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
            self.process(queryset.due(self.started_at))

    # -- claiming ---------------------------------------------------------------------

    def claimable(self) -> SessionQuerySet:
        """Unfinished sessions this run may lease (see :meth:`SessionQuerySet.claimable`)."""
        return Session.objects.claimable(not_checked_since=self.started_at, now=clock.now())

    def process(self, queryset: SessionQuerySet) -> int:
        """Claim ``queryset``'s rows chunk by chunk (keyset on id), fetch them; count claims."""
        after, claimed = "", 0
        while not self.out_of_time() and not self.limit_reached():
            size = self.chunk_size
            if self.limit is not None:
                size = min(size, self.limit - self.claimed)
            until = new_lease()
            candidates = queryset.filter(pk__gt=after).order_by("id")
            # Enqueued claims belong to the workers that take them over: not released here.
            tokens = None if self.enqueue is not None else self.lease_tokens
            ids, last_seen = claim_sessions(candidates, size, until=until, tokens=tokens)
            if last_seen is None:
                break
            after = last_seen
            self.claimed += len(ids)
            claimed += len(ids)
            if self.enqueue is not None:
                lease = Lease(until, self.started_at)
                for session_id in ids:
                    self.enqueue(session_id, lease)
                self.report.enqueued += len(ids)
                continue
            for session_id in ids:
                self.pipeline.submit(session_id)
        if self.out_of_time():
            self.report.stopped = True
        # No drain here: the next list page is fetched while these are in flight.
        return claimed

    def out_of_time(self) -> bool:
        """True once ``max_runtime`` has passed or a stop was asked for: claim nothing new."""
        if self.should_stop is not None and self.should_stop():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def limit_reached(self) -> bool:
        """True once ``limit`` sessions were claimed."""
        return self.limit is not None and self.claimed >= self.limit


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
