"""``manage.py sync_verilock_sessions``: refresh sessions from Verilock (cron-friendly)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...exceptions import AuthenticationError, VerilockConfigurationError
from ...sync import (
    Outcome,
    SyncResult,
    sync_sessions,
    sync_unfinished_sessions,
    unfinished_session_ids,
)


class Command(BaseCommand):
    help = (
        "Fetch sessions from Verilock and store them. With session ids, sync those (creating "
        "unknown ones); without, refresh every unfinished session."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("session_ids", nargs="*", metavar="SESSION_ID")
        parser.add_argument(
            "--limit", type=int, metavar="N", help="Refresh at most N unfinished sessions."
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List the sessions that would be fetched; make no request.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ids: list[str] = options["session_ids"]
        limit: int | None = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        verbosity: int = options["verbosity"]

        if options["dry_run"]:
            targets = ids or list(unfinished_session_ids(limit=limit))
            for session_id in targets:
                self.stdout.write(session_id)
            self.stdout.write(f"Dry run: {len(targets)} session(s) would be fetched.")
            return

        def on_result(result: SyncResult) -> None:
            if result.outcome is Outcome.FAILED:
                self.stderr.write(f"{result.session_id}: failed: {result.error}")
            elif verbosity >= 2:
                self.stdout.write(f"{result.session_id}: {result.outcome.value}")

        try:
            if ids:
                report = sync_sessions(ids, on_result=on_result)
            else:
                report = sync_unfinished_sessions(limit=limit, on_result=on_result)
        except VerilockConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        except AuthenticationError as exc:
            raise CommandError(
                f"Aborted: Verilock refused the API key ({exc}). Check VERILOCK_API_KEY."
            ) from exc

        if verbosity >= 1:
            self.stdout.write(report.summary())
        if report.failed:
            raise CommandError(f"{len(report.failed)} session(s) failed to sync.", returncode=1)
