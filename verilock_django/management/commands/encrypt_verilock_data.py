"""``manage.py encrypt_verilock_data``: rewrite stored personal data as
``VERILOCK_ENCRYPT_FIELDS`` asks (encrypt, re-encrypt with the first key, or decrypt)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import verilock_settings
from ...encrypted_rows import CHUNK_SIZE, apply_encryption_setting
from ...exceptions import VerilockConfigurationError
from ..arguments import MAX_LIMIT, bounded_int


class Command(BaseCommand):
    help = (
        "Bring the applicant columns and the stored payloads in line with "
        "VERILOCK_ENCRYPT_FIELDS: when on, encrypt plaintext values and re-encrypt values "
        "made with an older key with the first key (run after turning encryption on or "
        "adding a key); when off, write encrypted values back as plaintext. In chunks, "
        "one short transaction each; a second run changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would change; change nothing."
        )
        parser.add_argument(
            "--chunk-size",
            type=bounded_int(1, MAX_LIMIT),
            default=CHUNK_SIZE,
            metavar="N",
            help=f"Rows per transaction (default {CHUNK_SIZE}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        state = "on" if verilock_settings.encrypt_fields else "off"
        self.stdout.write(f"VERILOCK_ENCRYPT_FIELDS is {state}.")
        try:
            report = apply_encryption_setting(dry_run=dry_run, chunk_size=options["chunk_size"])
        except VerilockConfigurationError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.summary(dry_run=dry_run))
        if report.unreadable:
            raise CommandError(
                "Some values could not be decrypted: add the key they were written with to "
                "SALT_KEY (or SECRET_KEY_FALLBACKS) and run again."
            )
