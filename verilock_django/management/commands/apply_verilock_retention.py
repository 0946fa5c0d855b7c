"""``manage.py apply_verilock_retention``: blank old personal data, delete old webhook events."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...conf import verilock_settings
from ...privacy import apply_retention


class Command(BaseCommand):
    help = (
        "Blank the applicant fields, step details and raw payloads of sessions finished more "
        "than VERILOCK_PII_RETENTION_DAYS ago (the decision record stays), and delete webhook "
        "events received more than VERILOCK_WEBHOOK_RETENTION_DAYS ago. Safe to run again; "
        "Verilock's own copy is not touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would change; change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        for name, days in (
            ("VERILOCK_PII_RETENTION_DAYS", verilock_settings.pii_retention_days),
            ("VERILOCK_WEBHOOK_RETENTION_DAYS", verilock_settings.webhook_retention_days),
        ):
            if days is None:
                self.stdout.write(f"{name} is not set: that data is kept.")
        report = apply_retention(dry_run=dry_run)
        self.stdout.write(report.summary(dry_run=dry_run))
