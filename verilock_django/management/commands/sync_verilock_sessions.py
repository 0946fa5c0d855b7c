"""``manage.py sync_verilock_sessions``: refresh sessions from Verilock (cron-friendly).

Prints one summary line (or ``--json``: one JSON object) accounting for every unfinished
session; the exit statuses are listed in :mod:`verilock_django.management.summary`.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any, NoReturn

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    OutputWrapper,
    SystemCheckError,
)

from ... import backlog, clock, work
from ...conf.fields import MAX_CONCURRENCY
from ...discover import discover_sessions
from ...exceptions import AuthenticationError, VerilockConfigurationError
from ...history import recorded_as
from ...models import Session
from ...refresh import refresh_unfinished
from ...store import Outcome, SyncResult
from ...sync import SyncReport, sync_sessions
from .. import summary
from ..arguments import MAX_LIMIT, bounded_int, seconds, session_id
from ..interrupt import stop_on_sigterm


class Command(BaseCommand):
    help = (
        "Fetch sessions from Verilock and store them. With session ids, sync those (creating "
        "unknown ones); without, refresh unfinished sessions: the list endpoint tells which "
        "changed, and only those (plus any it cannot account for) are fetched. Exit status: "
        "0 all good, 1 some sessions failed, 2 usage or configuration error, 3 the API could "
        "not be reached at all, 143 stopped by SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("session_ids", nargs="*", metavar="SESSION_ID", type=session_id)
        parser.add_argument(
            "--limit",
            type=bounded_int(1, MAX_LIMIT),
            metavar="N",
            help="Fetch at most N unfinished sessions.",
        )
        parser.add_argument(
            "--full",
            action="store_true",
            help="Fetch every unfinished session by id, due or not (catches step changes "
            "that leave the status alone; costs one request per session).",
        )
        parser.add_argument(
            "--concurrency",
            type=bounded_int(1, MAX_CONCURRENCY),
            metavar="N",
            help="Parallel fetches (default: VERILOCK_SYNC_CONCURRENCY).",
        )
        parser.add_argument(
            "--max-runtime",
            type=seconds,
            metavar="SECONDS",
            help="Stop claiming new work (with --discover: requesting list pages) after "
            "SECONDS; set it below the cron interval.",
        )
        parser.add_argument(
            "--discover",
            action="store_true",
            help="Walk Verilock's session list and store the sessions this database does "
            "not know (created elsewhere, or whose create timed out).",
        )
        parser.add_argument(
            "--since",
            type=dt.date.fromisoformat,
            metavar="YYYY-MM-DD",
            help="With --discover: only sessions created on or after this day.",
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help="Claim the sessions to fetch and send them to workers "
            "(VERILOCK_TASK_BACKEND) instead of fetching them here.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Say what a run would fetch, confirm through the list or leave; no request.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the summary as one JSON object (for monitoring).",
        )

    def check(self, *args: Any, **kwargs: Any) -> None:
        """Django's system checks; an error among them (a bad setting) exits with status 2."""
        try:
            super().check(*args, **kwargs)
        except SystemCheckError as exc:
            raise SystemCheckError(str(exc), returncode=summary.USAGE) from None

    def handle(self, *args: Any, **options: Any) -> None:
        ids: list[str] = options["session_ids"]
        self.verbosity: int = options["verbosity"]
        self.as_json: bool = options["json"]
        if options["since"] is not None and not options["discover"]:
            raise CommandError("--since goes with --discover.", returncode=summary.USAGE)
        if options["discover"]:
            # What --discover cannot honour is refused, never silently ignored.
            ignored = [
                name
                for name, given in (
                    ("session ids", ids),
                    ("--limit", options["limit"] is not None),
                    ("--full", options["full"]),
                    ("--enqueue", options["enqueue"]),
                    ("--dry-run", options["dry_run"]),
                )
                if given
            ]
            if ignored:
                raise CommandError(
                    f"--discover does not take {' or '.join(ignored)}: it only stores the "
                    "sessions Verilock lists and this database does not know.",
                    returncode=summary.USAGE,
                )
            self.discover(
                options["since"], options["concurrency"], options["max_runtime"], self.verbosity
            )
            return
        if options["enqueue"] and (ids or work.engine() is None):
            raise CommandError(
                "--enqueue takes no session ids and needs VERILOCK_TASK_BACKEND.", returncode=2
            )
        if options["dry_run"]:
            self.finish(self.dry_run(ids, full=options["full"], limit=options["limit"]))
            return
        progress = None
        if self.verbosity == 1 and not self.as_json and self.stdout.isatty():
            progress = ProgressBar(self.stdout)

        def on_result(result: SyncResult) -> None:
            if result.outcome is Outcome.FAILED:
                if progress is not None:
                    progress.clear()
                self.stderr.write(f"{result.session_id}: failed: {result.error}")
            elif self.verbosity >= 2 and not self.as_json:
                self.stdout.write(f"{result.session_id}: {result.outcome.value}")

        since = clock.now()
        try:
            with stop_on_sigterm() as stop, recorded_as(self.trigger(ids)):
                if ids:
                    report = sync_sessions(
                        ids,
                        on_result=on_result,
                        on_progress=progress,
                        concurrency=options["concurrency"],
                        should_stop=stop.is_set,
                    )
                else:
                    report = refresh_unfinished(
                        limit=options["limit"],
                        on_result=on_result,
                        full=options["full"],
                        concurrency=options["concurrency"],
                        max_runtime=options["max_runtime"],
                        on_progress=progress,
                        enqueue=work.enqueue_claimed if options["enqueue"] else None,
                        should_stop=stop.is_set,
                    )
            if stop.is_set():
                raise CommandError(
                    "Interrupted by SIGTERM: what was stored stays stored, and the sessions "
                    "this run had claimed were released for the next run.",
                    returncode=summary.INTERRUPTED,
                )
        except VerilockConfigurationError as exc:
            self.abort(str(exc))
        except AuthenticationError as exc:
            self.abort(f"Aborted: Verilock refused the API key ({exc}). Check VERILOCK_API_KEY.")
        finally:
            if progress is not None:
                progress.clear()
        self.finish(self.after(report, ids, since, limited=options["limit"] is not None))

    @staticmethod
    def trigger(ids: list[str]) -> str:
        """What the change history records for this run (the first id and how many more)."""
        if not ids:
            return "command:sync_verilock_sessions"
        more = f" +{len(ids) - 1} more" if len(ids) > 1 else ""
        return f"command:sync_verilock_sessions {ids[0]}{more}"

    def after(
        self, report: SyncReport, ids: list[str], since: dt.datetime, *, limited: bool
    ) -> summary.Summary:
        """The summary of a real run; with ``-v 2``, a line per session not fetched."""
        if ids:
            return summary.of_ids(report)
        now = clock.now()
        left = backlog.after_run(since, now, failed=report.failed)
        if self.verbosity >= 2 and not self.as_json:
            for row in backlog.sessions(since, now, failed=report.failed):
                if row.standing != "fetched":
                    self.stdout.write(summary.describe(row))
        stored = 0 if left.total else Session.objects.count()
        return summary.of_refresh(report, left, stored=stored, limited=limited)

    def dry_run(self, ids: list[str], *, full: bool, limit: int | None) -> summary.Summary:
        """What a run would do, from the database alone."""
        if ids:
            known = set(Session.objects.filter(pk__in=ids).values_list("id", flat=True))
            if self.verbosity >= 2 and not self.as_json:
                for sid in ids:
                    state = "stored" if sid in known else "not stored yet"
                    self.stdout.write(f"{sid}: would be fetched by id ({state})")
            return summary.of_planned_ids(ids, len(known))
        now = clock.now()
        if self.verbosity >= 2 and not self.as_json:
            for row in backlog.sessions(now, now, before_run=True, full=full):
                self.stdout.write(summary.describe(row))
        return summary.of_plan(backlog.plan(now, full=full), full=full, limit=limit)

    def finish(self, result: summary.Summary) -> None:
        """Print the summary (line or JSON); exit with its status."""
        if self.as_json:
            self.stdout.write(json.dumps(result.as_json(), sort_keys=True))
        elif self.verbosity >= 1:
            self.stdout.write(result.line)
        if result.exit_code == summary.UNREACHABLE:
            raise CommandError("Verilock could not be reached.", returncode=result.exit_code)
        if result.exit_code != summary.OK:
            failed = result.data.get("failed", 0)
            reason = f"{failed} session(s) failed to sync" if failed else "listing sessions failed"
            raise CommandError(reason + ".", returncode=result.exit_code)

    def abort(self, message: str) -> NoReturn:
        """Stop with a configuration error (exit status 2), as JSON too when asked."""
        if self.as_json:
            self.stdout.write(
                json.dumps({"error": message, "exit_code": summary.USAGE}, sort_keys=True)
            )
        raise CommandError(message, returncode=summary.USAGE)

    def discover(
        self,
        since: dt.date | None,
        concurrency: int | None,
        max_runtime: float | None,
        verbosity: int,
    ) -> None:
        """``--discover``: store the sessions Verilock lists and this database lacks. A walk
        stopped by ``--max-runtime`` exits 0, as a refresh stopped by it does (the summary
        says so). A missing or refused key exits 2, as for a refresh."""
        try:
            report = discover_sessions(
                since=since, concurrency=concurrency, max_runtime=max_runtime
            )
        except VerilockConfigurationError as exc:
            self.abort(str(exc))
        except AuthenticationError as exc:
            self.abort(f"Aborted: Verilock refused the API key ({exc}). Check VERILOCK_API_KEY.")
        for failed_id, reason in report.failed.items():
            self.stderr.write(f"{failed_id}: failed: {reason}")
        if self.as_json:
            self.stdout.write(json.dumps(summary.of_discover(report), sort_keys=True))
        elif verbosity >= 1:
            self.stdout.write(report.summary())
        if not report.ok:
            raise CommandError("Discovery did not complete (see above).", returncode=1)


class ProgressBar:
    """A one-line progress bar with rate and ETA, redrawn in place (terminals only)."""

    WIDTH = 30

    def __init__(self, out: OutputWrapper, *, interval: float = 0.2) -> None:
        self.out = out
        self.interval = interval
        self.started = time.monotonic()
        self._drawn_at = 0.0

    def __call__(self, report: SyncReport, total: int) -> None:
        now = time.monotonic()
        if now - self._drawn_at < self.interval:
            return  # redrawing on every session would cost more than the sync
        self._drawn_at = now
        done = report.settled
        total = max(total, done)
        rate = done / max(now - self.started, 1e-6)
        filled = int(self.WIDTH * done / total) if total else 0
        eta = f"{(total - done) / rate:.0f}s" if rate > 0 else "?"
        self.out.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} "
            f"{rate:.1f}/s ETA {eta} ({len(report.failed)} failed)",
            ending="",
        )
        self.out.flush()

    def clear(self) -> None:
        """Erase the bar so the next line starts clean."""
        if self._drawn_at:
            self.out.write("\r\x1b[2K", ending="")
            self.out.flush()
