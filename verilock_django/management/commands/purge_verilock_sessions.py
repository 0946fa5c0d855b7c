"""``manage.py purge_verilock_sessions``: delete old finished sessions and their events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ...retention import purge


class Command(BaseCommand):
    help = (
        "Delete the local copy of finished sessions (with their step results and webhook "
        "events) completed more than DAYS days ago, and processed webhook events as old. "
        "Verilock's own copy is not touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            required=True,
            metavar="DAYS",
            help="Retention period in days.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days: int = options["older_than"]
        if days < 1:
            raise CommandError("--older-than must be at least 1 day.")
        before = timezone.now() - dt.timedelta(days=days)
        report = purge(before, dry_run=options["dry_run"])
        self.stdout.write(report.summary(dry_run=options["dry_run"]))
