"""Odd command-line arguments are usage errors (exit status 2, one line), never tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from verilock_django.models import Session

ROOT = Path(__file__).resolve().parent.parent

ODD_ARGUMENTS = [
    ("process_verilock_webhooks", ["--since", "9999999999d"]),
    ("process_verilock_webhooks", ["--since", "99999-01-01"]),
    ("process_verilock_webhooks", ["--max-attempts", "1e3"]),
    ("process_verilock_webhooks", ["--limit", "²"]),
    ("sync_verilock_sessions", ["--limit", "99999999999999999999999"]),
    ("sync_verilock_sessions", ["--concurrency", "100000"]),
    ("sync_verilock_sessions", ["--max-runtime", "nan"]),
    ("sync_verilock_sessions", ["--max-runtime", "inf"]),
    ("sync_verilock_sessions", [".."]),
    ("sync_verilock_sessions", ["ses/../other"]),
    *(
        ("send_verilock_test_webhook", ["http://127.0.0.1:9/", "--session-id=s", "--timeout", t])
        for t in ("0", "-1", "nan", "inf")
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("command", "arguments"), ODD_ARGUMENTS)
def test_odd_arguments_are_usage_errors(command: str, arguments: list[str]) -> None:
    with pytest.raises(CommandError, match=r"^Error: argument"):
        call_command(command, *arguments, stdout=StringIO(), stderr=StringIO())


@pytest.mark.django_db
def test_a_non_ascii_digit_id_is_a_webhook_id_not_a_crash() -> None:
    out = StringIO()
    call_command("process_verilock_webhooks", "--id", "²", "--dry-run", stdout=out)
    assert "0 event(s) would be processed" in out.getvalue()


@pytest.mark.django_db
def test_session_ids_are_normalised_at_the_command_door(settings: object) -> None:
    out = StringIO()
    call_command("sync_verilock_sessions", " ses_x ", "--dry-run", stdout=out, verbosity=2)
    assert out.getvalue().splitlines()[0] == "ses_x: would be fetched by id (not stored yet)"


def test_the_real_command_exits_2_without_a_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "process_verilock_webhooks", "--since", "9999999999d"],
        cwd=ROOT / "example_project",
        env={**os.environ, "VERILOCK_API_KEY": "qi_test_x"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--since" in result.stderr


@pytest.mark.django_db
def test_a_dry_run_of_discover_is_refused_before_any_request() -> None:
    with pytest.raises(CommandError, match="--discover does not take --dry-run") as caught:
        call_command("sync_verilock_sessions", "--discover", "--dry-run", stdout=StringIO())
    assert caught.value.returncode == 2


@pytest.mark.django_db
def test_a_duration_setting_beyond_any_date_stops_the_run_with_its_name(
    settings: Any, verilock_api: object
) -> None:
    Session.objects.create(id="ses_open", status="processing")  # never fetched: claimed
    settings.VERILOCK_LEASE_SECONDS = float("inf")
    with pytest.raises(CommandError, match=r"^VERILOCK_LEASE_SECONDS must be") as raised:
        call_command("sync_verilock_sessions", stdout=StringIO(), stderr=StringIO())
    assert raised.value.returncode == 2
    assert Session.objects.get().lease_expires_at is None  # nothing claimed, nothing held
