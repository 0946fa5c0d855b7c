"""Odd command-line arguments are usage errors (exit status 2, one line), never tracebacks."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from verilock_django.models import Session, WebhookEvent

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
    # A moment with no UTC time (year 1 at +01:00, 9999-12-31 at -01:00).
    ("process_verilock_webhooks", ["--since", "0001-01-01T00:00:00+01:00"]),
    ("process_verilock_webhooks", ["--since", "9999-12-31T23:59:59-01:00"]),
    # Text no database compares: a NUL, or a command-line byte that is not UTF-8.
    ("process_verilock_webhooks", ["--id", "wh_\x00x"]),
    ("process_verilock_webhooks", ["--id", "wh_\udcff"]),
    ("erase_verilock_applicant", ["usr_\x00x"]),
    ("erase_verilock_applicant", ["usr_\udcff"]),
    ("encrypt_verilock_data", ["--chunk-size", str(10**30)]),
    ("encrypt_verilock_data", ["--chunk-size", "0"]),
    (
        "send_verilock_test_webhook",
        ["http://127.0.0.1:9/", "--session-id=s", "--secret", "\udcff"],
    ),
    *(
        ("send_verilock_test_webhook", ["http://127.0.0.1:9/", "--session-id=s", "--timeout", t])
        for t in ("0", "-1", "nan", "inf")
    ),
    # A URL nothing can be posted to: no scheme, another scheme, no host, a port beyond
    # 65535, a broken IPv6 host (urlsplit's ValueError), a space, a NUL.
    *(
        ("send_verilock_test_webhook", [url, "--session-id=s", "--secret=s"])
        for url in (
            "localhost:8000/verilock/webhook/",
            "ftp://127.0.0.1/",
            "http://",
            "http://127.0.0.1:99999/",
            "http://[::1",
            "http://a b/",
            "http://127.0.0.1:9/\x00",
            "http://x\udcff/",
            # Hosts no connection can resolve: an empty label or one over 63 characters
            # (urllib3's LocationParseError, a traceback), a wildcard, a leading dot, an
            # IPvFuture literal (requests' InvalidURL).
            "http://a..b/",
            f"http://{'a' * 64}.example/",
            f"http://{'a' * 300}/",
            "https://*.example/",
            "http://.example/",
            "http://[v1.x]/",
        )
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
def test_an_id_of_digits_beyond_any_primary_key_is_a_webhook_id_not_a_crash() -> None:
    WebhookEvent.objects.create(webhook_id="9" * 30, event_type="x", payload={})
    out = StringIO()
    call_command("process_verilock_webhooks", "--id", "9" * 30, "--dry-run", stdout=out)
    assert "1 event(s) would be processed" in out.getvalue()


@pytest.mark.django_db
@pytest.mark.parametrize("use_tz", [True, False])
def test_since_with_any_utc_offset_selects_by_the_moment_it_names(
    settings: Any, use_tz: bool
) -> None:
    # PostgreSQL refuses offsets past 15:59 and a USE_TZ = False project any offset at all;
    # the moment is the same one in UTC.
    settings.USE_TZ = use_tz
    settings.TIME_ZONE = "Europe/Paris"
    # Received at 2026-01-01 00:00 UTC (01:00 in Paris, as a USE_TZ = False project stores it).
    received = (
        dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) if use_tz else dt.datetime(2026, 1, 1, 1)
    )
    WebhookEvent.objects.create(webhook_id="old", event_type="x", payload={})
    WebhookEvent.objects.update(received_at=received)

    def selected(since: str) -> str:
        out = StringIO()
        call_command("process_verilock_webhooks", "--since", since, "--dry-run", stdout=out)
        return out.getvalue().splitlines()[-1]

    assert selected("2026-01-01T23:00:00+23:59") == "Dry run: 1 event(s) would be processed."
    assert selected("2026-01-01T02:00:00+01:00") == "Dry run: 0 event(s) would be processed."


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
