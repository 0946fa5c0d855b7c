"""``manage.py erase_verilock_applicant``: erase everything stored about one applicant."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...exceptions import ErasureRefused
from ...privacy import erase_applicant
from ..arguments import text


class Command(BaseCommand):
    help = (
        "Erase the local copy of every session with this reference (your user id): sessions, "
        "step results, webhook events and admin log entries. A tombstone (a hash of each "
        "session id) keeps them from being stored again. Verilock's own copy is not touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "reference_id", type=text, help="The reference_id / external_id to erase."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be erased; erase nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        try:
            report = erase_applicant(options["reference_id"], dry_run=dry_run)
        except ValueError as exc:
            raise CommandError(f"Nothing erased: {exc}.") from None
        except ErasureRefused as exc:
            raise CommandError(f"Erasure refused: {exc}") from None
        if not report.session_ids:
            self.stdout.write("No session has that reference; nothing erased.")
            return
        self.stdout.write(report.summary(dry_run=dry_run))
        self.stdout.write("Sessions: " + ", ".join(report.session_ids))
