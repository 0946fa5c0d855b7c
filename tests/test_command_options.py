"""The sync command's option checks, configuration errors and terminal progress bar."""

from __future__ import annotations

from io import StringIO
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper
from django.test import override_settings

from verilock_django.management.commands import sync_verilock_sessions as command_module
from verilock_django.management.commands.sync_verilock_sessions import ProgressBar
from verilock_django.models import Session
from verilock_django.sync import SyncReport

pytestmark = pytest.mark.django_db


class Terminal(StringIO):
    """Captured output that claims to be a terminal, as an operator's shell is."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--limit", "0"], "argument --limit: must be between 1 and"),
        (["--concurrency", "0"], "argument --concurrency: must be between 1 and"),
    ],
)
def test_out_of_range_options_are_refused_before_any_request(
    option: list[str], message: str
) -> None:
    Session.objects.create(id="ses_pending")
    with pytest.raises(CommandError, match=message):
        call_command("sync_verilock_sessions", *option, stdout=StringIO(), stderr=StringIO())


@override_settings(VERILOCK_API_KEY="")
def test_missing_api_key_aborts_with_one_clear_message() -> None:
    Session.objects.create(id="ses_one")
    Session.objects.create(id="ses_two")
    err = StringIO()
    with pytest.raises(CommandError, match="VERILOCK_API_KEY is not set"):
        call_command("sync_verilock_sessions", stdout=StringIO(), stderr=err)
    # One abort, not one failure line per session; nothing recorded on the rows.
    assert err.getvalue() == ""
    assert set(Session.objects.values_list("last_sync_error", flat=True)) == {""}


def test_progress_bar_is_drawn_on_a_terminal_and_erased_before_the_summary(
    verilock_api: Any,
) -> None:
    for index in range(3):
        fake = verilock_api.add_session(status="processing", id=f"ses_tty_{index}")
        Session.objects.create(id=fake.id)
    out = Terminal()

    call_command("sync_verilock_sessions", stdout=out, stderr=StringIO())

    text = out.getvalue()
    assert "/s ETA" in text
    assert "\r\x1b[2K" in text
    summary = text.rsplit("\r\x1b[2K", 1)[1]
    assert summary.startswith("3 fetched")


def test_progress_bar_is_not_drawn_when_output_is_not_a_terminal(verilock_api: Any) -> None:
    fake = verilock_api.add_session(status="processing")
    Session.objects.create(id=fake.id)
    out = StringIO()
    call_command("sync_verilock_sessions", stdout=out, stderr=StringIO())
    assert "\r" not in out.getvalue()
    assert "ETA" not in out.getvalue()


def test_progress_bar_shows_counts_failures_and_is_throttled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [5000.0]
    monkeypatch.setattr(command_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    stream = Terminal()
    bar = ProgressBar(OutputWrapper(stream), interval=1.0)
    report = SyncReport(updated=1, unchanged=1, failed={"ses_x": "boom"})

    now[0] += 2.0
    bar(report, 6)
    now[0] += 0.5
    bar(SyncReport(updated=5), 6)  # within the interval: not redrawn

    drawn = stream.getvalue()
    assert drawn.startswith("\r[")
    assert "3/6" in drawn
    assert "(1 failed)" in drawn
    assert drawn.count("\r[") == 1
    assert "#" * (ProgressBar.WIDTH // 2) in drawn
    assert "1.5/s ETA 2s" in drawn  # 3 done in 2 s; 3 left


def test_progress_bar_clear_writes_nothing_if_never_drawn() -> None:
    stream = Terminal()
    ProgressBar(OutputWrapper(stream)).clear()
    assert stream.getvalue() == ""
