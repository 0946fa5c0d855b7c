"""``manage.py purge_verilock_sessions``: delete old finished sessions and their events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from ...retention import purge
from ..arguments import MAX_COUNT, bounded_int


class Command(BaseCommand):
    help = (
        "Delete the local copy of finished sessions (with their step results and webhook "
        "events) completed more than DAYS days ago, and processed webhook events as old. "
        "Verilock's own copy is not touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=bounded_int(1, MAX_COUNT),
            required=True,
            metavar="DAYS",
            help="Retention period in days.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days: int = options["older_than"]
        before = timezone.now() - dt.timedelta(days=days)
        report = purge(before, dry_run=options["dry_run"])
        self.stdout.write(report.summary(dry_run=options["dry_run"]))
