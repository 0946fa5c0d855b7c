"""Where each unfinished session stands for the batch refresh, read from the database alone.

A refresh run (:mod:`.refresh`) fetches some unfinished sessions and confirms others through
the list endpoint. :func:`after_run` accounts for the rest once a run is over; :func:`plan`
answers, before any request, what a run would do. Both sort sessions with one ``CASE``
expression whose first matching branch wins, so each session is counted exactly once, in one
query (``GROUP BY``), whatever the number of rows; :func:`sessions` yields the same
classification row by row (ordered by id, streamed in chunks) for a per-session listing.

Standings after a run that began at ``since`` (this run's failed sessions are left out: the
run reports them itself):

========== ==================================================================================
fetched    fetched since the run began (this run, or one running beside it)
confirmed  the list showed it unchanged since the run began
missing    Verilock answered 404 (``missing_since``); only an explicit sync asks again
held       another run holds its lease right now
not_due    its next by-id check is later (``next_check_at``); ``--full`` fetches it anyway
left       due, but the run stopped first (``--limit``, ``--max-runtime``)
========== ==================================================================================

Standings before a run (:func:`plan`), as a run starting now would treat them: ``missing``
and ``held`` as above; then with ``full`` every other one is ``fetch`` (fetched by id);
without, ``new`` (never fetched: fetched by id), ``listed_due`` and ``listed`` (the list
shows them: confirmed if unchanged, fetched if changed; ``listed_due`` ones are also fetched
by id if the listing leaves them out, and only they if fetches found them unchanged twice while
the list said otherwise), ``due`` (not listable, due: fetched by id) and ``not_due``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

from django.db.models import CharField, Count, Min, Q, Value
from django.db.models.expressions import Case, When

from .conf import verilock_settings
from .listing import list_status
from .models import Session, SessionQuerySet

#: Most ids excluded by one query (SQLite allows 32,766 parameters, PostgreSQL 65,535).
EXCLUDE_CHUNK = 1000

AFTER_RUN = ("fetched", "confirmed", "missing", "held", "not_due", "left")
BEFORE_RUN = ("missing", "held", "fetch", "new", "listed_due", "listed", "due", "not_due")


@dataclass
class Standings:
    """Counts per standing (every standing of its vocabulary present, zero or more)."""

    counts: dict[str, int] = field(default_factory=dict)
    #: The earliest ``next_check_at`` among the ``not_due`` sessions (None when there are none).
    next_check_at: dt.datetime | None = None
    #: Before a run: sessions whose full data is older than ``VERILOCK_MAX_DATA_AGE`` (also
    #: counted under their standing), which the run fetches by id within its budget.
    old_data: int = 0
    #: Before a run (not ``full``): how many listings the ``listed`` and ``listed_due``
    #: sessions need, one per status they are listed under (the refresh lists by status).
    list_walks: int = 0

    def __getitem__(self, standing: str) -> int:
        return self.counts[standing]

    @property
    def total(self) -> int:
        """Sessions counted."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class Row:
    """One session's standing, with the time that explains it (if any)."""

    session_id: str
    standing: str
    next_check_at: dt.datetime | None
    lease_expires_at: dt.datetime | None
    missing_since: dt.datetime | None


def after_run(since: dt.datetime, now: dt.datetime, *, failed: Collection[str] = ()) -> Standings:
    """Count the unfinished sessions by standing after a run that began at ``since``.

    ``since`` and ``now`` are database-clock times (:func:`verilock_django.clock.now`);
    ``failed`` holds the ids this run failed, which are left out. One query, plus one per
    :data:`EXCLUDE_CHUNK` failed ids when more than that many failed (their counts are then
    subtracted, and the earliest next check may be a failed session's).
    """
    cases = _after_run_cases(since, now)
    if len(failed) <= EXCLUDE_CHUNK:
        return _count(_unfinished(failed), cases, AFTER_RUN)
    standings = _count(_unfinished(()), cases, AFTER_RUN)
    ids = sorted(failed)
    for start in range(0, len(ids), EXCLUDE_CHUNK):
        chunk = Session.objects.unfinished().filter(pk__in=ids[start : start + EXCLUDE_CHUNK])
        for standing, number in _count(chunk, cases, AFTER_RUN).counts.items():
            standings.counts[standing] -= number
    return standings


def plan(now: dt.datetime, *, full: bool) -> Standings:
    """Count the unfinished sessions by what a run starting at ``now`` would do, and (not
    ``full``) those with data older than ``VERILOCK_MAX_DATA_AGE`` and the listings the
    listable ones need (``list_walks``). One query."""
    max_age = verilock_settings.max_data_age
    old = None
    if not full and max_age is not None:
        cutoff = now - dt.timedelta(minutes=max_age)
        old = Q(missing_since__isnull=True, data_fetched_at__lt=cutoff)
    return _count(
        _unfinished(()), _plan_cases(now, full=full), BEFORE_RUN, old_data=old, walks=not full
    )


def sessions(
    since: dt.datetime,
    now: dt.datetime,
    *,
    failed: Collection[str] = (),
    before_run: bool = False,
    full: bool = False,
) -> Iterator[Row]:
    """Each unfinished session's standing, ordered by id (after a run, or before with
    ``before_run``; ``full`` only matters before a run)."""
    cases = _plan_cases(now, full=full) if before_run else _after_run_cases(since, now)
    rows = (
        Session.objects.unfinished()
        .annotate(standing=_standing(cases))
        .order_by("id")
        .values_list("id", "standing", "next_check_at", "lease_expires_at", "missing_since")
    )
    for session_id, standing, next_check_at, lease, missing in rows.iterator(chunk_size=500):
        if session_id not in failed:
            yield Row(session_id, standing, next_check_at, lease, missing)


# -- internals -----------------------------------------------------------------------


def _unfinished(failed: Collection[str]) -> SessionQuerySet:
    queryset = Session.objects.unfinished()
    return queryset.exclude(pk__in=list(failed)) if failed else queryset


def _standing(cases: list[tuple[str, Q]]) -> Case:
    """The first standing whose condition holds (the last condition always does)."""
    return Case(
        *(When(condition, then=Value(name)) for name, condition in cases),
        output_field=CharField(),
    )


def _after_run_cases(since: dt.datetime, now: dt.datetime) -> list[tuple[str, Q]]:
    checked = Q(last_synced_at__gte=since)
    return [
        ("fetched", checked & Q(data_fetched_at__gte=since)),
        ("confirmed", checked),
        ("missing", Q(missing_since__isnull=False)),
        ("held", Q(lease_expires_at__gt=now)),
        ("not_due", Q(next_check_at__gt=since)),
        ("left", Q(pk__isnull=False)),
    ]


def _plan_cases(now: dt.datetime, *, full: bool) -> list[tuple[str, Q]]:
    cases = [
        ("missing", Q(missing_since__isnull=False)),
        ("held", Q(lease_expires_at__gt=now)),
    ]
    if full:
        return [*cases, ("fetch", Q(pk__isnull=False))]
    due = Q(next_check_at__lte=now)
    listable = Q(created_at__isnull=False)
    return [
        *cases,
        ("new", Q(next_check_at__isnull=True)),
        ("listed_due", listable & due),
        ("listed", listable),
        ("due", due),
        ("not_due", Q(pk__isnull=False)),
    ]


def _count(
    queryset: SessionQuerySet,
    cases: list[tuple[str, Q]],
    vocabulary: tuple[str, ...],
    *,
    old_data: Q | None = None,
    walks: bool = False,
) -> Standings:
    """Count ``queryset`` by standing; with ``walks``, also by listed status (grouped by
    both), to count the listings the ``listed`` and ``listed_due`` rows need."""
    standings = Standings(counts=dict.fromkeys(vocabulary, 0))
    annotated = queryset.annotate(standing=_standing(cases))
    keys = ["standing"]
    if walks:
        annotated, keys = annotated.annotate(list_status=list_status()), [*keys, "list_status"]
    grouped = (
        annotated.order_by()
        .values(*keys)
        .annotate(
            count=Count("pk"),
            earliest=Min("next_check_at"),
            old=Count("pk", filter=old_data if old_data is not None else Q(pk__isnull=True)),
        )
    )
    listed_statuses = set()
    for row in grouped:
        standing = row["standing"]
        standings.counts[standing] += row["count"]
        standings.old_data += row["old"]
        if standing == "not_due":
            earliest = standings.next_check_at
            if earliest is None or (row["earliest"] is not None and row["earliest"] < earliest):
                standings.next_check_at = row["earliest"]
        if walks and standing in ("listed", "listed_due"):
            listed_statuses.add(row["list_status"])
    standings.list_walks = len(listed_statuses)
    return standings
