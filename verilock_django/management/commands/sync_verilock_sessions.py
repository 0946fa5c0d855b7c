"""``manage.py sync_verilock_sessions``: refresh sessions from Verilock (cron-friendly)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from ...exceptions import AuthenticationError, VerilockConfigurationError
from ...models import Session
from ...refresh import refresh_unfinished
from ...store import Outcome, SyncResult
from ...sync import SyncReport, sync_sessions
from ...work import engine, enqueue_claimed
from ..arguments import MAX_LIMIT, bounded_int, seconds, session_id
from ..interrupt import Interrupted, stop_on_sigterm


class Command(BaseCommand):
    help = (
        "Fetch sessions from Verilock and store them. With session ids, sync those (creating "
        "unknown ones); without, refresh unfinished sessions: the list endpoint tells which "
        "changed, and only those (plus any it cannot account for) are fetched."
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
            type=bounded_int(1, 256),
            metavar="N",
            help="Parallel fetches (default: VERILOCK_SYNC_CONCURRENCY).",
        )
        parser.add_argument(
            "--max-runtime",
            type=seconds,
            metavar="SECONDS",
            help="Stop claiming new work after SECONDS; set it below the cron interval.",
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
            help="List the unfinished sessions a by-id refresh would fetch; make no request.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ids: list[str] = options["session_ids"]
        limit: int | None = options["limit"]
        concurrency: int | None = options["concurrency"]
        verbosity: int = options["verbosity"]

        if options["dry_run"]:
            count = 0
            queryset = Session.objects.unfinished().in_refresh_order()
            unfinished = queryset.values_list("id", flat=True)[:limit].iterator(chunk_size=500)
            for session_id in ids or unfinished:
                self.stdout.write(session_id)
                count += 1
            self.stdout.write(f"Dry run: {count} session(s) would be fetched.")
            return

        if options["enqueue"] and (ids or engine() is None):
            raise CommandError(
                "--enqueue takes no session ids and needs VERILOCK_TASK_BACKEND.", returncode=2
            )
        progress = ProgressBar(self.stdout) if verbosity == 1 and self.stdout.isatty() else None

        def on_result(result: SyncResult) -> None:
            if result.outcome is Outcome.FAILED:
                if progress is not None:
                    progress.clear()
                self.stderr.write(f"{result.session_id}: failed: {result.error}")
            elif verbosity >= 2:
                self.stdout.write(f"{result.session_id}: {result.outcome.value}")

        try:
            with stop_on_sigterm():
                if ids:
                    report = sync_sessions(ids, on_result=on_result, concurrency=concurrency)
                else:
                    report = refresh_unfinished(
                        limit=limit,
                        on_result=on_result,
                        full=options["full"],
                        concurrency=concurrency,
                        max_runtime=options["max_runtime"],
                        on_progress=progress,
                        enqueue=enqueue_claimed if options["enqueue"] else None,
                    )
        except Interrupted:
            raise CommandError(
                "Interrupted by SIGTERM: what was stored stays stored, and the sessions this "
                "run had claimed were released for the next run.",
                returncode=143,
            ) from None
        except VerilockConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        except AuthenticationError as exc:
            raise CommandError(
                f"Aborted: Verilock refused the API key ({exc}). Check VERILOCK_API_KEY."
            ) from exc
        finally:
            if progress is not None:
                progress.clear()

        if verbosity >= 1:
            self.stdout.write(report.summary())
        if report.list_error is not None:
            raise CommandError(
                f"Listing sessions failed ({report.list_error}); the run checked by id only.",
                returncode=1,
            )
        if report.failed:
            raise CommandError(f"{len(report.failed)} session(s) failed to sync.", returncode=1)


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
