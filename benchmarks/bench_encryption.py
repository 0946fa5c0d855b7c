"""Benchmark: what ``VERILOCK_ENCRYPT_FIELDS`` costs (the ``encryption`` extra).

    .venv/bin/python benchmarks/bench_encryption.py                    # 500 sessions, SQLite
    .venv/bin/python benchmarks/bench_encryption.py --sessions 2000 \\
        --database-url postgres://postgres@127.0.0.1:5432/verilock_bench

A throw-away test database is created and migrated. Rows of the table, each with the
setting off and on:

``store``    :func:`verilock_django.store.store_session` of N documented seed payloads
             (5 steps each), one transaction per session, as a sync stores them.
``read``     every session and its steps read back through the ORM (values decrypted).
``rewrite``  ``encrypt_verilock_data`` (``encrypted_rows.apply_encryption_setting``) over
             the N plaintext sessions written with the setting off, then again (nothing
             left to do).

Also printed: the one-time key derivation (PBKDF2, once per process and key set) and the
stored size of one session's personal data. Times depend on the machine; the ratio between
off and on does not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchsetup import configure_django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def configure(database_url: str) -> None:
    configure_django(database_url, SALT_KEY="bench-only-salt")


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def stored_size(session_id: str) -> int:
    """Characters the database holds for one session's personal data and its steps'."""
    from django.db.models import TextField
    from django.db.models.functions import Cast, Length

    from verilock_django.encrypted_rows import ENCRYPTED_COLUMNS
    from verilock_django.models import Session

    total = 0
    for model, names in ENCRYPTED_COLUMNS.items():
        key = "session_id" if model is not Session else "pk"
        lengths = {name: Length(Cast(name, output_field=TextField())) for name in names}
        for row in model._default_manager.filter(**{key: session_id}).values_list(
            *lengths.values()
        ):
            total += sum(value or 0 for value in row)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--database-url", default="sqlite:///bench-encryption.sqlite3")
    args = parser.parse_args()
    configure(args.database_url)

    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    from verilock_django import encryption
    from verilock_django.encrypted_rows import apply_encryption_setting
    from verilock_django.models import Session, StepResult
    from verilock_django.store import store_session

    setup_test_environment()
    name = connection.creation.create_test_db(verbosity=0)
    seed = json.loads((ROOT / "tests" / "fixtures" / "seed-session.json").read_text())

    def store_all(prefix: str) -> None:
        for index in range(args.sessions):
            store_session({**seed, "id": f"{prefix}{index:06d}"})

    def read_all() -> None:
        for session in Session.objects.prefetch_related("results"):
            _ = (
                session.applicant_name,
                session.payload,
                [r.details for r in session.results.all()],
            )

    try:
        derivation = timed(lambda: encryption.encrypt("warm-up"))
        timings: dict[str, dict[bool, float]] = {"store": {}, "read": {}, "rewrite": {}}
        sizes: dict[bool, int] = {}
        for on in (False, True):
            settings.VERILOCK_ENCRYPT_FIELDS = on
            Session.objects.all().delete()
            timings["store"][on] = timed(lambda: store_all("ses_"))
            timings["read"][on] = timed(read_all)
            sizes[on] = stored_size("ses_000000")
        # The rewrite: plaintext rows (written with the setting off) encrypted by the command.
        settings.VERILOCK_ENCRYPT_FIELDS = False
        Session.objects.all().delete()
        store_all("ses_")
        settings.VERILOCK_ENCRYPT_FIELDS = True
        report: list[Any] = []
        timings["rewrite"][True] = timed(lambda: report.append(apply_encryption_setting()))
        timings["rewrite"][False] = timed(lambda: report.append(apply_encryption_setting()))
        steps = StepResult.objects.count()
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)

    print(f"{connection.vendor}, {args.sessions} sessions ({steps} step rows)")
    print(f"key derivation (once per process and key set): {derivation * 1000:.0f} ms")
    print(f"stored personal data of one session: {sizes[False]} chars off, {sizes[True]} on")
    print()
    print(f"| {'row':<28} | {'off (s)':>8} | {'on (s)':>8} | {'on/off':>6} |")
    print(f"|{'-' * 30}|{'-' * 9}:|{'-' * 9}:|{'-' * 7}:|")
    for label in ("store", "read"):
        off, on = timings[label][False], timings[label][True]
        print(f"| {label:<28} | {off:>8.2f} | {on:>8.2f} | {on / off:>6.2f} |")
    first, second = report
    print(
        f"| {'rewrite: ' + str(first.values) + ' values':<28} | {'':>8} | "
        f"{timings['rewrite'][True]:>8.2f} | {'':>6} |"
    )
    print(
        f"| {'rewrite again: ' + str(second.values) + ' values':<28} | {'':>8} | "
        f"{timings['rewrite'][False]:>8.2f} | {'':>6} |"
    )


if __name__ == "__main__":
    main()
