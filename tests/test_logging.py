"""The app's log records compose with the host's logging and never print on their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )


def test_a_warning_without_logging_configured_prints_nothing() -> None:
    # Python's last-resort handler would print this to stderr if no handler were found.
    completed = run(
        "import logging, verilock_django; "
        "logging.getLogger('verilock_django.sync').warning('Sync of ses_1 failed')"
    )
    assert completed.stderr == ""


def test_a_configured_handler_still_receives_the_records() -> None:
    completed = run(
        "import logging, verilock_django; logging.basicConfig(format='%(name)s %(message)s'); "
        "logging.getLogger('verilock_django.sync').warning('Sync of ses_1 failed')"
    )
    assert completed.stderr == "verilock_django.sync Sync of ses_1 failed\n"
