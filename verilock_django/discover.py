"""Discover sessions created elsewhere: walk ``GET /sessions`` and store the unknown ones.

:func:`discover_sessions` (``sync_verilock_sessions --discover [--since DATE]``) reads every
list page and, for each session this database does not know:

* **unfinished**: stores the list item as it is (:func:`verilock_django.store.store_discovered`,
  no further request); the batch refresh fetches its details like any unfinished session;
* **finished**: fetches it by id (the refresh never looks at finished sessions again, so the
  step results must come now), through :class:`verilock_django.sync.SyncPipeline`.

Known sessions are left to the refresh; sessions erased locally are never brought back (see
:func:`erased_session_ids`). Running it again creates nothing and fetches nothing new.

**Pages shifting during the walk.** The list is paged by offset, newest first. A session
created while the walk runs lands on page 1 and pushes every item one place down: the walk
then sees an item twice (it dedupes by id) and misses none of the older ones, but the new
session sits on a page already read. So, after the last page, the walk reads page 1 again,
and the pages after it while a page holds nothing but new ids; it stops at the first page that
overlaps what it has or brings nothing new (no readable id), and repeats from page 1 until
a pass finds nothing new (at most
:data:`HEAD_PASSES` passes). Should sessions leave the listing mid-walk (``meta.total``
drops below the lowest count the walk has seen), items move up and the first items of the
next page would be skipped: the walk steps back as many pages as the drop spans (a count that
rises and falls back, as counts disagreeing from page to page do, sends it back only once).
``last_page`` is re-read on every page, so sessions appended at the end (were the order
oldest first) are reached too; it is bounded by what the listing holds
(:func:`verilock_django.listing.read_page`: a short page is the last, and an overstated
``meta.last_page`` is ignored), so a provider claiming more pages than it has costs no extra
request. Cost with nothing changing:
``ceil(W / 100) + 1`` list requests for W listed sessions, plus one request per finished
session discovered.

**A listing that does not advance, or does not end.** Two bounds hold whatever the pages
claim:

* **Repetition.** When :data:`STALE_PAGES` pages in a row of the main walk bring no session
  not seen before (pages a step back re-reads on purpose are not counted), the listing is
  not advancing (a provider ignoring ``page`` and serving one page forever, with a
  ``meta.total`` of 10**12): the walk stops there and says so in ``list_error`` (page
  numbers only). One such page is legitimate: a whole page of sessions created between two
  reads pushes the previous page's items onto the next one.
* **Time.** ``max_runtime`` (``--max-runtime``, the refresh's own limit,
  :class:`verilock_django.clock.Deadline`) is checked before every page: once passed, the
  walk stops (``stopped``; not a failure, as for the refresh) and the next run walks again
  from page 1. A provider serving fresh ids forever is bounded only by it.

Either way what the walk took stays stored and the by-id fetches already queued finish.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from . import clock
from .client import VerilockClient, get_client
from .conf import verilock_settings
from .exceptions import AuthenticationError, PayloadError, VerilockError, describe_failure
from .listing import read_page
from .models import Session, Tombstone
from .payloads import parse_session, parse_session_id
from .privacy import session_hash
from .store import Outcome, store_discovered
from .sync import OnResult, SyncPipeline, SyncReport

logger = logging.getLogger(__name__)

#: Items per list page: the API's maximum.
PAGE_SIZE = 100
#: Most re-reads of the list's head looking for sessions created during the walk.
HEAD_PASSES = 3
#: Pages in a row bringing no new session after which the main walk stops as not advancing.
#: A page repeats legitimately only when a whole page of sessions (100) was created between
#: two reads; three in a row takes that pace for three reads running, while the cost of a
#: wrong stop is small (reported; the next run walks again) and that of a loop is unbounded.
STALE_PAGES = 3


def erased_session_ids(session_ids: Collection[str]) -> set[str]:
    """The ids among ``session_ids`` erased on request and not lifted (one query).

    The single place discovery consults the tombstones (:mod:`.privacy`): an erased session
    is neither fetched nor stored again.
    """
    by_hash = {session_hash(session_id): session_id for session_id in session_ids}
    if not by_hash:
        return set()
    found = Tombstone.objects.filter(pk__in=by_hash).values_list("pk", flat=True)
    return {by_hash[key] for key in found}


@dataclass
class DiscoverReport:
    """What one discovery walk did."""

    pages: int = 0
    #: Distinct sessions seen in the listing.
    listed: int = 0
    #: Of those, already stored here (left to the refresh).
    known: int = 0
    #: Of those, erased locally and skipped.
    erased: int = 0
    #: Unknown unfinished sessions stored from their list item.
    stored_from_list: int = 0
    #: Unknown finished sessions fetched by id (created, failed...).
    details: SyncReport = field(default_factory=SyncReport)
    #: Why the walk stopped early, if it did.
    list_error: str | None = None
    #: The walk stopped at its time limit (``max_runtime``); the next run walks again.
    stopped: bool = False
    requests: int = 0
    elapsed: float = 0.0

    @property
    def created(self) -> int:
        """Sessions this walk added to the database."""
        return self.stored_from_list + self.details.created

    @property
    def failed(self) -> dict[str, str]:
        """Unknown sessions that could not be stored, with the reason."""
        return self.details.failed

    @property
    def ok(self) -> bool:
        """True when no page failed and every unknown session taken was stored (a walk
        stopped at its time limit is not a failure, as for the refresh)."""
        return self.list_error is None and not self.failed

    def summary(self) -> str:
        """One line for logs and the command's output."""
        line = (
            f"Discovered {self.created} new session(s) ({self.stored_from_list} from the list, "
            f"{self.details.created} fetched in full) among {self.listed} listed on "
            f"{self.pages} page(s); {self.known} already known, {self.erased} erased, "
            f"{len(self.failed)} failed; {self.requests} requests in {self.elapsed:.1f}s"
        )
        if self.list_error is not None:
            line += f"; listing sessions failed: {self.list_error}"
        if self.stopped:
            line += (
                f"; stopped at the time limit after {self.pages} page(s): "
                "the next run walks the list again from page 1"
            )
        return line


def discover_sessions(
    *,
    since: dt.date | None = None,
    client: VerilockClient | None = None,
    concurrency: int | None = None,
    max_runtime: float | None = None,
    on_result: OnResult | None = None,
) -> DiscoverReport:
    """Walk the listing (sessions created on or after ``since``, if given) and store the
    sessions this database does not know; see the module docstring. Once ``max_runtime``
    (seconds) has passed no further page is requested (``report.stopped``).

    Raises :class:`~verilock_django.exceptions.AuthenticationError` when the key is refused
    (once a list page was read, a 403 on one session's fetch fails that session alone, see
    :func:`~verilock_django.sync.sync_sessions`); any other failed page, one that is not a
    usable page (:func:`verilock_django.listing.read_page`), or a listing that does not
    advance (:data:`STALE_PAGES`) stops the walk and is reported in ``list_error``.
    """
    client = client or get_client()
    report = DiscoverReport()
    started = time.monotonic()
    requests_before = client.request_count
    walk = _Walk(client, report, since, clock.Deadline(max_runtime))
    try:
        with SyncPipeline(
            client, report.details, concurrency=concurrency, on_result=on_result
        ) as walk.pipeline:
            try:
                walk.run()
            except AuthenticationError:
                raise
            except _OutOfTime:  # the fetches already queued are still stored
                logger.info(
                    "Discovery stopped at its time limit after %d page(s); the next run "
                    "walks the list again.",
                    report.pages,
                )
                report.stopped = True
            except VerilockError as exc:  # the fetches already queued are still stored
                logger.warning("Listing Verilock sessions failed: %s", exc)
                report.list_error = str(exc)
    finally:
        report.requests = client.request_count - requests_before
        report.elapsed = time.monotonic() - started
    return report


class _OutOfTime(Exception):
    """The walk's time limit passed before the next page."""


class _NotAdvancing(VerilockError):
    """:data:`STALE_PAGES` pages in a row brought no new session (the message: page numbers)."""


class _Walk:
    """State of one :func:`discover_sessions` walk."""

    pipeline: SyncPipeline

    def __init__(
        self,
        client: VerilockClient,
        report: DiscoverReport,
        since: dt.date | None,
        deadline: clock.Deadline,
    ):
        self.client = client
        self.report = report
        self.deadline = deadline
        self.created_from = since.isoformat() if since is not None else None
        self.seen: set[str] = set()
        #: The listing's page size once page 1 showed it (a provider may ignore per_page).
        self.size: int | None = None
        #: When the page being taken was requested (database clock), for the store's ordering.
        self.fetched_at = clock.now()

    def run(self) -> None:
        # The lowest count seen: the walk is in step with the listing at that count. A count
        # that rises (new sessions push items down: seen twice, none missed) and falls back
        # to it has not moved the items up, so only a drop below it is stepped back over;
        # counts that disagree from page to page then cannot send the walk back forever.
        page, last_page, lowest = 1, 1, None
        # Pages in a row that brought nothing new, less the pages a step back re-reads on
        # purpose (credited when it steps back: the page it discards counts, so a count
        # that keeps dropping cannot step the walk back and forth for ever).
        stale = 0
        while page <= last_page:
            items, last_page, total = self.read(page)
            if lowest is not None and total is not None and total < lowest and page > 1:
                # Sessions left the listing: the rest moved up; step back over the gap
                # (whole-number division: a count may be beyond what a float holds).
                back = -(-(lowest - total) // (self.size or PAGE_SIZE))
                lowest, to = total, max(1, page - back)
                stale += 1 - (page - to)
                page = to
                continue
            if total is not None and (lowest is None or total < lowest):
                lowest = total
            stale = 0 if self.take(items) else stale + 1
            if stale >= STALE_PAGES and page < last_page:  # the last page ends it anyway
                raise _NotAdvancing(
                    f"the listing is not advancing: {STALE_PAGES} pages in a row, up to page "
                    f"{page}, brought no session not seen before; the walk stopped there"
                )
            page += 1
        for _ in range(HEAD_PASSES):
            if not self.read_head():
                break

    def read_head(self) -> bool:
        """Read from page 1 until a page overlaps what was seen, or brings no new session
        (a page without one readable id cannot say the head moved); True if anything was
        new."""
        page, found = 1, False
        while True:
            items, last_page, _ = self.read(page)
            fresh = self.take(items)
            found = found or bool(fresh)
            if not fresh or fresh < len(items) or page >= last_page:
                return found
            page += 1

    def read(self, page: int) -> tuple[list[tuple[str, Any]], int, int | None]:
        """One page: its ``(id, item)`` pairs, the last page to read and ``total`` (``None``
        when the page gives no usable count), see :func:`verilock_django.listing.read_page`.
        Raises :class:`_OutOfTime` instead once the walk's time limit has passed."""
        if self.deadline.passed():
            raise _OutOfTime
        self.fetched_at = clock.now()
        body = self.client.list_sessions(
            page=page, per_page=PAGE_SIZE, created_from=self.created_from
        )
        self.report.pages += 1
        # The key reads sessions: a 403 on a fetch from now on is that session's alone.
        self.pipeline.key_reads_sessions = True
        # Raises for a page that cannot say where the list ends.
        listed = read_page(body, page=page, per_page=PAGE_SIZE, size=self.size)
        self.size = listed.size
        items = []
        for item in listed.data:
            try:
                session_id = parse_session_id(item.get("id") if isinstance(item, dict) else None)
            except PayloadError:
                logger.warning("A listed session has no usable id; skipped.")
                continue
            items.append((session_id, item))
        return items, listed.last_page, listed.total

    def take(self, items: list[tuple[str, Any]]) -> int:
        """Store the page's sessions not seen before; returns how many were not seen before."""
        fresh = {sid: item for sid, item in items if sid not in self.seen}
        self.seen.update(fresh)
        self.report.listed += len(fresh)
        if not fresh:
            return 0
        known = set(Session.objects.filter(pk__in=fresh).values_list("id", flat=True))
        erased = erased_session_ids(set(fresh) - known)
        self.report.known += len(known)
        self.report.erased += len(erased)
        finished = verilock_settings.finished_statuses
        for session_id, item in fresh.items():
            if session_id in known or session_id in erased:
                continue
            try:
                data = parse_session(item)
            except PayloadError:
                data = None  # the list item is unreadable: the details may not be
            if data is None or data.status in finished:
                self.pipeline.submit(session_id)
            else:
                self.store(session_id, item)
        return len(fresh)

    def store(self, session_id: str, item: Any) -> None:
        try:
            result = store_discovered(item, fetched_at=self.fetched_at)
        except Exception as exc:  # one session's failure never stops the walk
            self.report.details.failed[session_id] = describe_failure(exc)
            logger.warning(
                "Storing discovered session %s failed: %s", session_id, describe_failure(exc)
            )
            return
        if result.outcome is Outcome.CREATED:
            self.report.stored_from_list += 1
