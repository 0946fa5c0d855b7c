"""What ``sync_verilock_sessions`` tells the operator: one summary, as a line or as JSON.

A summary accounts for every unfinished session (see :mod:`verilock_django.backlog` for the
standings) and carries the command's exit status:

==== ==========================================================================
0    all good (also: nothing was due)
1    some sessions failed, or listing sessions failed
2    usage or configuration error (bad option, missing or refused API key, bad setting)
3    the API could not be reached at all: every fetch failed without an HTTP answer
143  stopped by SIGTERM (what was stored stays stored; claimed sessions are released)
==== ==========================================================================
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from django.utils.translation import ngettext

from ..backlog import Row, Standings
from ..discover import DiscoverReport
from ..sync import SyncReport

OK, FAILED, USAGE, UNREACHABLE, INTERRUPTED = 0, 1, 2, 3, 143

#: What ``-v 2`` says about a session the run did not fetch.
STANDING_LINES = {
    "confirmed": "confirmed unchanged by the list",
    "not_due": "not due until {next_check}",
    "held": "held by another run until {lease}",
    "missing": "missing at Verilock since {missing}",
    "left": "due, left for the next run",
    "fetch": "would be fetched by id",
    "new": "never fetched: would be fetched by id",
    "due": "due: would be fetched by id",
    "listed_due": "due: the list confirms it or it is fetched",
    "listed": "the list confirms it or it is fetched",
}

REGISTER_HINT = (
    "register sessions by id: manage.py sync_verilock_sessions SESSION_ID [SESSION_ID ...]"
)


def count(number: int, singular: str, plural: str) -> str:
    """``"1 request"``, ``"2 requests"``."""
    return ngettext(singular, plural, number) % {"n": number}


def when(moment: dt.datetime | None) -> str:
    """A database time for people: UTC when time zones are on, to the second."""
    if moment is None:
        return "?"
    if timezone.is_aware(moment):
        return f"{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
    return f"{moment:%Y-%m-%d %H:%M:%S}"


def iso(moment: dt.datetime | None) -> str | None:
    """An ISO 8601 time for JSON (UTC when aware)."""
    if moment is None:
        return None
    if timezone.is_aware(moment):
        moment = moment.astimezone(dt.timezone.utc)
    return moment.isoformat()


@dataclass
class Summary:
    """One run's (or dry run's) summary: ``line`` for people, ``data`` for machines."""

    parts: list[str]
    data: dict[str, Any] = field(default_factory=dict)
    exit_code: int = OK

    @property
    def line(self) -> str:
        """The parts as one line (cron logs keep one line per run)."""
        return "; ".join(self.parts)

    def as_json(self) -> dict[str, Any]:
        """The JSON object printed by ``--json``."""
        return {**self.data, "exit_code": self.exit_code}


def _fetched(report: SyncReport) -> tuple[str, dict[str, Any]]:
    text = (
        f"{report.fetched} fetched: {report.synced} changed ({report.created} new), "
        f"{report.unchanged + report.stale} unchanged, {len(report.failed)} failed"
    )
    data = {
        "fetched": report.fetched,
        "changed": report.synced,
        "new": report.created,
        "unchanged": report.unchanged + report.stale,
        "failed": len(report.failed),
        "failures": dict(report.failed),
    }
    return text, data


def _cost(report: SyncReport) -> str:
    requests = count(report.requests, "%(n)d request", "%(n)d requests")
    return f"{requests} in {report.elapsed:.1f}s"


def _exit_code(report: SyncReport) -> int:
    if report.api_unreachable:
        return UNREACHABLE
    return OK if report.ok else FAILED


def of_ids(report: SyncReport) -> Summary:
    """The summary of a sync of explicit ids."""
    fetched, data = _fetched(report)
    data = {"mode": "ids", **data, "requests": report.requests, "elapsed": report.elapsed}
    return Summary([fetched, _cost(report)], data, _exit_code(report))


def of_refresh(
    report: SyncReport, left: Standings, *, stored: int, limited: bool = False
) -> Summary:
    """The summary of a batch refresh: ``left`` holds the standings after the run
    (:func:`verilock_django.backlog.after_run`), ``stored`` the number of stored sessions,
    ``limited`` whether ``--limit`` was given."""
    fetched, data = _fetched(report)
    parts = [fetched]
    if report.confirmed:
        parts.append(f"{report.confirmed} confirmed unchanged by the list")
    if left["not_due"]:
        parts.append(
            f"{left['not_due']} not due, the earliest at {when(left.next_check_at)} "
            "(--full fetches them now)"
        )
    # Sessions this run enqueued are leased for the workers that take them over.
    held = max(0, left["held"] - report.enqueued)
    if report.enqueued:
        parts.append(f"{report.enqueued} enqueued")
    if held:
        parts.append(f"{held} held by another run")
    if left["missing"]:
        parts.append(f"{left['missing']} known missing at Verilock (404; a sync by id asks again)")
    if left["left"]:
        reason = (
            " (time limit)"
            if report.stopped
            else " (--limit)"
            if limited
            else " (the list failed)"
            if report.list_error is not None
            else ""
        )
        parts.append(f"{left['left']} due but left for the next run{reason}")
    if report.stale_left:
        parts.append(
            f"{report.stale_left} with data older than VERILOCK_MAX_DATA_AGE left for the next "
            "run, which starts with them (request budget or time limit)"
        )
    if report.list_error is not None:
        parts.append(
            f"listing sessions failed: {report.list_error}; nothing was inferred from the "
            "list, only sessions with old data were fetched by id"
        )
    if report.stopped:
        parts.append("stopped at the time limit: the next run continues with the oldest data")
    if not report.settled and not left.total:
        if stored:
            parts.append(f"no unfinished sessions: all {stored} stored are finished")
        else:
            parts.append("no sessions stored yet: " + REGISTER_HINT)
    parts.append(_cost(report))
    data = {
        "mode": "refresh",
        **data,
        "confirmed": report.confirmed,
        "not_due": left["not_due"],
        "next_check_at": iso(left.next_check_at),
        "held": held,
        "enqueued": report.enqueued,
        "missing": left["missing"],
        "left": left["left"],
        "list_error": report.list_error,
        "stale_left": report.stale_left,
        "stopped_at_time_limit": report.stopped,
        "requests": report.requests,
        "elapsed": report.elapsed,
    }
    return Summary(parts, data, _exit_code(report))


def of_plan(plan: Standings, *, full: bool, limit: int | None) -> Summary:
    """The summary of ``--dry-run`` without ids (``plan`` from
    :func:`verilock_django.backlog.plan`): what a run would do, and what only the list knows."""
    parts = ["Dry run, no request made"]
    if full:
        sure, listed, listed_due = plan["fetch"], 0, 0
        parts.append(f"{sure} would be fetched by id (--full)")
    else:
        sure = plan["new"] + plan["due"]
        listed, listed_due = plan["listed"] + plan["listed_due"], plan["listed_due"]
        parts.append(f"{plan['new']} never fetched would be fetched by id")
        if plan["due"]:
            parts.append(f"{plan['due']} due, not listable, would be fetched by id")
        if listed:
            parts.append(
                f"{listed} would be checked through the list: each is confirmed if its status "
                "is unchanged or fetched if it changed, which only the list request can tell"
                + (
                    f" ({listed_due} of them due: fetched by id if the list leaves them out)"
                    if listed_due
                    else ""
                )
            )
        if plan["not_due"]:
            parts.append(
                f"{plan['not_due']} not due, the earliest at {when(plan.next_check_at)} "
                "(--full fetches them now)"
            )
    if plan.old_data:
        parts.append(
            f"{plan.old_data} with data older than VERILOCK_MAX_DATA_AGE would be fetched by id "
            "too, oldest first, within the run's request budget"
        )
    if plan["held"]:
        parts.append(f"{plan['held']} held by another run")
    if plan["missing"]:
        parts.append(f"{plan['missing']} known missing at Verilock (404; a sync by id asks again)")
    if limit is not None:
        parts.append(f"at most {limit} fetched (--limit)")
    if not plan.total:
        parts.append("no unfinished sessions; " + REGISTER_HINT)
    # One listing per status the listable sessions hold (a provider that ignores the
    # status filter may need only one, but the documented API filters).
    walks = plan.list_walks if listed else 0
    least = (min(sure, limit) if limit is not None else sure) + walks
    parts.append("at least " + count(least, "%(n)d request", "%(n)d requests"))
    data = {
        "mode": "dry-run",
        "full": full,
        "unfinished": plan.total,
        "fetch_by_id": sure,
        "via_list": listed,
        "via_list_due": listed_due,
        "not_due": plan.counts.get("not_due", 0),
        "next_check_at": iso(plan.next_check_at),
        "old_data": plan.old_data,
        "held": plan["held"],
        "missing": plan["missing"],
        "limit": limit,
        "requests_at_least": least,
    }
    return Summary(parts, data)


def of_planned_ids(ids: list[str], stored: int) -> Summary:
    """The summary of ``--dry-run`` with ids: each is one request; ``stored`` of them exist."""
    new = len(ids) - stored
    parts = [
        "Dry run, no request made",
        f"{len(ids)} would be fetched by id ({new} not stored yet, created if found)",
        count(len(ids), "%(n)d request", "%(n)d requests"),
    ]
    data = {"mode": "dry-run", "ids": len(ids), "new": new, "requests_at_least": len(ids)}
    return Summary(parts, data)


def of_discover(report: DiscoverReport) -> dict[str, object]:
    """``--discover --json``: the walk's counts, as its summary line gives them."""
    return {
        "mode": "discover",
        "new": report.created,
        "from_list": report.stored_from_list,
        "fetched": report.details.created,
        "listed": report.listed,
        "pages": report.pages,
        "known": report.known,
        "erased": report.erased,
        "failed": len(report.failed),
        "failures": dict(report.failed),
        "list_error": report.list_error,
        "stopped_at_time_limit": report.stopped,
        "requests": report.requests,
        "elapsed": report.elapsed,
        "exit_code": OK if report.ok else FAILED,
    }


def describe(row: Row) -> str:
    """One ``-v 2`` line for a session the run did not fetch (or would not)."""
    text = STANDING_LINES[row.standing].format(
        next_check=when(row.next_check_at),
        lease=when(row.lease_expires_at),
        missing=when(row.missing_since),
    )
    return f"{row.session_id}: {text}"
