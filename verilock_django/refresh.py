"""The batch refresh: bring every unfinished session up to date within the API's limits.

One refresh run (``full=True`` skips all this and fetches every unfinished session by id):

1. **List, filtered by status.** For each status the stored unfinished sessions hold, one
   listing ``GET /sessions?status=<it>&from=<day the oldest of them was created>&per_page=100``
   (see :mod:`verilock_django.listing`), pages 1..last_page, where the last page is what the
   listing's items and ``meta.total`` justify: a short page ends the walk and an
   overstated ``meta.last_page`` is ignored (logged). Each page is reconciled by id
   with the stored unfinished sessions: one whose listed status (and decision, when the
   item carries one) equals the stored one is *confirmed* (no request; ``last_synced_at``
   is bumped); one that changed is claimed and fetched by id at once (unless fetches
   found it unchanged twice while the list said otherwise, or its last fetch failed: then
   its backoff applies, as to an unlisted one). An item without a
   decision is compared by the word the stored session is listed under (a Gen B session
   stored as ``review`` is listed ``completed``), so a decision such an item hides is
   seen by the by-age refresh (4), not by the list. Items of other
   statuses (a provider that ignores the filter) reconcile the same way, and then that
   listing also accounts for every status left to walk.
2. **Unlisted.** Once a listing was walked to its last page, a stored session of its status
   that it did not show has left that status: it is fetched by id — unless the list left it
   out twice while fetches found it unchanged, then the by-id backoff applies
   (``next_check_at``; the interval doubles per unchanged check between
   ``VERILOCK_RECHECK_MIN_INTERVAL`` and ``VERILOCK_RECHECK_MAX_INTERVAL``), and one whose
   last fetch failed waits for the failure's backoff (see 4), as in 1. A listing
   whose pages left (as ``meta.total`` counts them: a bare ``last_page`` is not trusted
   for this) outnumber its sessions still unaccounted for gives way after page 1:
   fetching those by id is cheaper. Without a count, the walk gives way once the pages it
   read after page 1 are as many as the sessions page 1 left unaccounted for, so a listing
   that never ends (full pages forever, one page served for every page number) costs at
   most that many pages, not a run that never ends. **A failed page stops the list
   phase** (so does an unusable one: no ``data`` list, a ``meta.last_page`` that is not a
   whole number of at least 1, or a short page before the claimed last one while
   ``meta.total`` counts more items after it, see
   :func:`verilock_django.listing.read_page`): nothing is
   inferred from the listings and the run goes on to 3 and 4 only, so a failing list never
   turns into a by-id storm (the summary says the list failed).
3. **Never fetched.** Rows registered by id and never fetched have no data at all: each is
   fetched, unless its first fetch failed lately (``next_check_at``, the backoff).
4. **By age.** The list shows statuses, not steps: every unfinished session whose full data
   was fetched more than ``VERILOCK_MAX_DATA_AGE`` minutes ago is fetched by id, oldest
   first, within the run's request budget: :data:`AGE_BUDGET_SHARE` of the quota
   (``client.rate_limit`` per minute) over the run's window (``max_runtime``, else
   ``VERILOCK_RECHECK_MIN_INTERVAL``, which is set a little below the cron period), less
   what 1 to 3 spent (or enqueued). A session whose last fetch failed waits for the
   failure's backoff (``failed_checks``, ``next_check_at``: doubling per failure in a row
   between the two ``VERILOCK_RECHECK_*`` intervals), so sessions that keep failing cannot
   take the budget from the others run after run. What the budget or the window leaves is counted
   (``report.stale_left``) and is the oldest data of the next run, which therefore
   continues where this one stopped.

So a run over U unfinished sessions of which k changed costs k + ceil(U/100) + (one per
extra status listed) requests, plus one per never-fetched row and the budgeted by-age
fetches of sessions whose data is older than ``VERILOCK_MAX_DATA_AGE``. docs/scaling.md
derives the worst-case age of each kind of change.

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
import enum
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic

from django.db.models import BooleanField, ExpressionWrapper, Q

from . import clock
from .client import VerilockClient, get_client
from .conf import verilock_settings
from .exceptions import AuthenticationError, VerilockError
from .listing import (
    LIST_PAGE_SIZE,
    Item,
    Walk,
    list_status,
    listed_as,
    page_items,
    plan_walks,
)
from .models import Session, SessionQuerySet
from .notify import deliver_pending_finished
from .schedule import claim_sessions, confirm_listed, new_lease, release_claims
from .sync import OnProgress, OnResult, SyncPipeline, SyncReport

logger = logging.getLogger(__name__)

#: Share of the quota over a run's window that its by-age fetches may use, whatever the list
#: phase left: the rest stays free for webhook-triggered syncs, the admin and session
#: creation, and keeps a run inside its window so cron runs do not pile up.
AGE_BUDGET_SHARE = 0.8

__all__ = ["AGE_BUDGET_SHARE", "LIST_PAGE_SIZE", "Enqueue", "Lease", "refresh_unfinished"]


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
    work once passed and sizes the by-age budget; ``on_progress(report, total)`` runs after
    each stored batch; ``enqueue`` hands claimed sessions to workers instead of fetching
    them here (``report.enqueued`` counts them); once ``should_stop()`` is true (SIGTERM)
    nothing new is claimed, what is in flight is stored, and the rest of the claims are
    released. Raises :class:`~verilock_django.exceptions.AuthenticationError` when the API
    refuses the key (every claim released first); once a list page was read, a 403 on one
    session's fetch fails that session alone (see :func:`~verilock_django.sync.sync_sessions`).
    """
    client = client or get_client()
    report = SyncReport()
    started = monotonic()
    requests_before = client.request_count
    run = _Run(
        client=client,
        report=report,
        concurrency=concurrency,
        limit=limit,
        max_runtime=max_runtime,
        on_result=on_result,
        on_progress=on_progress,
        enqueue=enqueue,
        should_stop=should_stop,
    )
    deliver_pending_finished()
    try:
        with run:
            if full:
                run.process(run.claimable())
            else:
                run.walk_lists()
                run.fetch_never_fetched()
                run.fetch_old()
    finally:
        report.requests = client.request_count - requests_before
        report.elapsed = monotonic() - started
    return report


# -- internals -----------------------------------------------------------------------


class _Walked(enum.Enum):
    COMPLETE = "complete"  # every page read: what it did not show has left the status
    GAVE_WAY = "gave way"  # cheaper to fetch its unaccounted sessions by id
    STOPPED = "stopped"  # the time limit, --limit or a stop: nothing inferred
    FAILED = "failed"  # a page failed or was unusable: the list phase ends, nothing inferred


class _Run:
    """State of one :func:`refresh_unfinished` run."""

    def __init__(
        self,
        *,
        client: VerilockClient,
        report: SyncReport,
        concurrency: int | None,
        limit: int | None,
        max_runtime: float | None,
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
        self.deadline = clock.Deadline(max_runtime)
        #: The run's window, seconds: what the by-age budget is sized on.
        self.window = max_runtime or verilock_settings.recheck_min_interval
        self.requests_before = client.request_count
        self.started_at = clock.now()
        self.claimed = 0
        #: Every lease token this run claimed under: released on the way out.
        self.lease_tokens: list[dt.datetime] = []
        #: The same tokens, enqueued claims' included: a row leased under one is this run's.
        self.claims: set[dt.datetime] = set()
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

    # -- phases 1 and 2: the filtered listings ------------------------------------------

    def walk_lists(self) -> None:
        """Walk one listing per stored unfinished status; then fetch what they left out."""
        walks = plan_walks()
        accounted: list[str] = []  # statuses whose unlisted sessions have changed
        for index, walk in enumerate(walks):
            outcome, covers = self.walk(walk, [w.status for w in walks[index:]])
            if outcome is _Walked.FAILED:
                return  # no inference from any listing: the by-age phase only
            if outcome is _Walked.STOPPED:
                break
            accounted.extend(covers)
            if len(covers) > 1:
                break  # the filter was ignored: this listing showed every status left
        if accounted:
            self.fetch_unlisted(accounted)

    def walk(self, walk: Walk, left: list[str]) -> tuple[_Walked, list[str]]:
        """Read one listing page by page, reconciling each; returns how it ended and the
        statuses it accounts for (``left``, this one first, when the filter was ignored)."""
        page, last_page, covers = 1, 1, [walk.status]
        size: int | None = None  # the listing's page size, once page 1 shows it
        # What fetching by id would still cost, counted after page 1 when more pages follow.
        unaccounted: int | None = None
        while page <= last_page:
            if self.out_of_time() or self.limit_reached():
                return _Walked.STOPPED, covers
            if unaccounted is not None and page - 1 > unaccounted:
                # Only a bare meta.last_page kept the walk going this far (a count would
                # have bounded it on page 1): its pages after the first now equal the sessions
                # it had left to account for, so no further page can be cheaper
                # than fetching those by id (a listing that never ends, or serves one page
                # for every page number, stops here too).
                logger.info(
                    "Listing read %d pages without reaching its end; checking the %d "
                    "sessions it had left by id.",
                    page - 1,
                    unaccounted,
                )
                return _Walked.GAVE_WAY, covers
            try:
                body = self.client.list_sessions(
                    page=page,
                    per_page=LIST_PAGE_SIZE,
                    status=walk.status,
                    created_from=walk.created_from,
                )
                self.pipeline.key_reads_sessions = True
                items, answer = page_items(body, page=page, size=size)
            except AuthenticationError:
                raise
            except VerilockError as exc:
                logger.warning("Listing Verilock sessions failed; by age only this run: %s", exc)
                self.report.list_error = str(exc)
                return _Walked.FAILED, covers
            if any(i.status is not None and i.listed_status != walk.status for i in items):
                covers = left  # the provider ignores the status filter (an item says so)
            self.reconcile(items)
            last_page, size = answer.last_page, answer.size
            if page == 1 and last_page > 1:
                unaccounted = listed_as(self.claimable(), covers).count()
                # Only pages a count vouches for: a bare meta.last_page may overstate them
                # (it bounds the walk above instead, once its pages have cost that much).
                if answer.total is not None and last_page - 1 > unaccounted:
                    logger.info(
                        "Listing %d more pages costs more than checking %d sessions by id.",
                        last_page - 1,
                        unaccounted,
                    )
                    return _Walked.GAVE_WAY, covers
            page += 1
        return _Walked.COMPLETE, covers

    def reconcile(self, items: list[Item]) -> None:
        """Compare one page's statuses with the stored ones; fetch what changed. A session
        this run already fetched, confirmed or claimed (a listing showing it twice) is left
        alone: it is neither confirmed again nor counted as held by another run.

        A session the list shows changed (or without a status: it confirms nothing) while
        fetches found it unchanged twice in a row, with no listing confirming it in between,
        is not fetched again before its by-id backoff (:meth:`due`): the list and the
        session disagree (another status vocabulary, no status at all), and fetching it on
        every run would cost a request per session per run.
        """
        listed = {item.id: item for item in items}
        stored = {
            sid: (status, decision, listed_word, due)
            for sid, status, decision, listed_word, due, lease in Session.objects.unfinished()
            .not_checked_since(self.started_at)
            .filter(pk__in=listed)
            .annotate(list_status=list_status(), due=self.due())
            .values_list("id", "status", "decision", "list_status", "due", "lease_expires_at")
            if lease not in self.claims  # this run is fetching it (or a worker, enqueued)
        }
        unchanged: list[str] = []
        changed: list[str] = []
        for sid, (status, decision, listed_word, due) in sorted(stored.items()):
            item = listed[sid]
            if item.decision is None:
                # No decision to fold in: compare the word the provider lists it under (a
                # Gen B session stored as "review" is listed "completed"). A decision that
                # such an item hides waits for the by-age refresh.
                same = item.status == status or item.listed_status == listed_word
            else:
                same = item.status == status and item.decision == decision
            if same:
                unchanged.append(sid)
            elif due:
                changed.append(sid)
        if unchanged:
            # Marks them as accounted for, so the later phases leave them alone.
            self.report.confirmed += confirm_listed(unchanged)
            self.pipeline.settle()
        if changed:
            claimed = self.process(self.claimable().filter(pk__in=changed))
            # The others are leased by another run, which fetches them.
            self.report.skipped += len(changed) - claimed

    def fetch_unlisted(self, statuses: list[str]) -> None:
        """Fetch the sessions of fully listed ``statuses`` that no page showed: changed.

        Those the list left out before while fetches found them unchanged (a listing that
        never shows them) wait for their by-id backoff instead (:meth:`due`).
        """
        self.process(listed_as(self.claimable(), statuses).filter(self.due()))

    @staticmethod
    def due() -> ExpressionWrapper[Q]:
        """Whether the list's word may make a session be fetched now (an SQL expression):
        unless fetches found it unchanged twice in a row while the list said otherwise, or
        its last fetch failed, until that backoff (``next_check_at``) is over. A listing that
        confirms a session resets ``unchanged_checks``; the by-age refresh of a listed
        session adds one, so only a second unchanged fetch without a listing in between
        starts the backoff. A failure's backoff holds whatever the list says: a session the
        key may not read (403), or that the API fails on, is fetched again once its backoff
        is over, not on every run, nor again in the run that saw it fail."""
        free = Q(unchanged_checks__lt=2) & Q(failed_checks=0)
        over = free | Q(next_check_at__lte=clock.now())
        return ExpressionWrapper(over, output_field=BooleanField())

    # -- phase 3: by age ----------------------------------------------------------------

    def fetch_never_fetched(self) -> None:
        """Fetch the rows registered by id and never fetched (no data at all): every one,
        like a changed session, unless its first fetch failed lately (the backoff)."""
        due = Q(next_check_at__isnull=True) | Q(next_check_at__lte=clock.now())
        self.process(self.claimable().filter(due, data_fetched_at__isnull=True))

    def fetch_old(self) -> None:
        """Fetch sessions whose full data is older than ``VERILOCK_MAX_DATA_AGE``, oldest
        first, within the budget; count what is left for the next run."""
        self.pipeline.drain(0)  # what the phases before fetched is stored, its cost known
        max_age = verilock_settings.max_data_age
        if max_age is None:
            return
        now = clock.now()
        stale = (
            Session.objects.claimable(not_checked_since=None, now=now)
            .filter(data_fetched_at__lt=self.started_at - dt.timedelta(minutes=max_age))
            # A session whose last fetch failed waits for its failure's backoff: never
            # renewed, its data stays the oldest and would take the budget every run.
            .exclude(failed_checks__gt=0, next_check_at__gt=now)
            .in_age_order()
        )
        quota = self.client.rate_limit * self.window / 60 * AGE_BUDGET_SHARE
        spent = self.client.request_count - self.requests_before + self.report.enqueued
        budget = max(0, math.floor(quota) - spent)
        claimed = 0
        while claimed < budget and not self.out_of_time() and not self.limit_reached():
            size = min(self.chunk_size, budget - claimed, self.room())
            # Failed ones are released and still stale: not again in this run.
            candidates = stale.exclude(pk__in=list(self.report.failed))
            won, last_seen = self.claim(candidates, size)
            if last_seen is None:
                return  # nothing stale is left
            claimed += won
        self.pipeline.drain(0)
        left = stale.exclude(pk__in=list(self.report.failed)).count()
        self.report.stale_left = left
        if left:
            logger.info("%d sessions with old data left for the next run", left)

    # -- claiming ---------------------------------------------------------------------

    def claimable(self) -> SessionQuerySet:
        """Unfinished sessions this run may lease (see :meth:`SessionQuerySet.claimable`)."""
        return Session.objects.claimable(not_checked_since=self.started_at, now=clock.now())

    def process(self, queryset: SessionQuerySet) -> int:
        """Claim ``queryset``'s rows chunk by chunk (keyset on id), fetch them; count claims."""
        after, claimed = "", 0
        while not self.out_of_time() and not self.limit_reached():
            candidates = queryset.filter(pk__gt=after).order_by("id")
            won, last_seen = self.claim(candidates, min(self.chunk_size, self.room()))
            if last_seen is None:
                break
            after = last_seen
            claimed += won
        # No drain here: the next list page is fetched while these are in flight.
        return claimed

    def claim(self, candidates: SessionQuerySet, size: int) -> tuple[int, str | None]:
        """Lease up to ``size`` of ``candidates`` (in their order) and fetch or enqueue them;
        returns how many were won and the last id looked at (``None``: none left)."""
        until = new_lease()
        # Enqueued claims belong to the workers that take them over: not released here.
        tokens = None if self.enqueue is not None else self.lease_tokens
        self.claims.add(until)
        ids, last_seen = claim_sessions(candidates, size, until=until, tokens=tokens)
        self.claimed += len(ids)
        if self.enqueue is not None:
            lease = Lease(until, self.started_at)
            for session_id in ids:
                self.enqueue(session_id, lease)
            self.report.enqueued += len(ids)
        else:
            for session_id in ids:
                self.pipeline.submit(session_id)
        return len(ids), last_seen

    def room(self) -> int:
        """How many more sessions ``limit`` lets this run claim (no limit: a chunk)."""
        return self.chunk_size if self.limit is None else self.limit - self.claimed

    def out_of_time(self) -> bool:
        """True once ``max_runtime`` has passed or a stop was asked for: claim nothing new."""
        stop = (self.should_stop is not None and self.should_stop()) or self.deadline.passed()
        if stop:
            self.report.stopped = True
        return stop

    def limit_reached(self) -> bool:
        """True once ``limit`` sessions were claimed."""
        return self.limit is not None and self.claimed >= self.limit
