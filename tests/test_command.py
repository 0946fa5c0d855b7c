from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import responses
from django.core.management import CommandError, call_command
from django.test import override_settings

from verilock_django.models import Session, StepResult

from .conftest import API_URL, SEED_ID

pytestmark = pytest.mark.django_db


def run(*args: str, verbosity: int = 1) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sync_verilock_sessions", *args, stdout=out, stderr=err, verbosity=verbosity)
    return out.getvalue(), err.getvalue()


def test_sync_by_id_creates_the_seed_session_and_second_run_changes_nothing(
    seed: dict[str, Any], mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API_URL}/sessions/{SEED_ID}", json=seed)

    out, err = run(SEED_ID)
    assert (Session.objects.count(), StepResult.objects.count()) == (1, 5)
    assert "1 changed (1 new)" in out
    assert err == ""
    rows_before = list(StepResult.objects.order_by("pk").values())

    out, _ = run(SEED_ID)
    assert "0 changed" in out and "1 unchanged" in out
    assert list(StepResult.objects.order_by("pk").values()) == rows_before


def test_prints_one_summary_line_by_default(mocked: responses.RequestsMock) -> None:
    Session.objects.create(id="ses_1")
    mocked.get(f"{API_URL}/sessions/ses_1", json={"id": "ses_1", "status": "processing"})
    out, _ = run()
    assert out.strip().count("\n") == 0
    assert out.startswith("1 fetched")


def test_verbosity_two_prints_a_line_per_session(mocked: responses.RequestsMock) -> None:
    for name in ("ses_1", "ses_2"):
        Session.objects.create(id=name)
        mocked.get(f"{API_URL}/sessions/{name}", json={"id": name, "status": "processing"})
    out, _ = run(verbosity=2)
    assert "ses_1: updated" in out and "ses_2: updated" in out


def test_failures_go_to_stderr_and_exit_non_zero(mocked: responses.RequestsMock) -> None:
    Session.objects.create(id="ses_ok")
    Session.objects.create(id="ses_bad")
    mocked.get(f"{API_URL}/sessions/ses_ok", json={"id": "ses_ok", "status": "processing"})
    mocked.get(
        f"{API_URL}/sessions/ses_bad",
        status=503,
        json={"error": "server_error", "message": "down"},
    )
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError, match="1 session") as excinfo:
        call_command("sync_verilock_sessions", stdout=out, stderr=err)

    assert excinfo.value.returncode == 1
    assert "ses_bad: failed:" in err.getvalue() and "HTTP 503" in err.getvalue()
    assert "1 failed" in out.getvalue()
    assert Session.objects.get(pk="ses_ok").status == "processing"


def test_refused_key_aborts_at_once_with_one_message(mocked: responses.RequestsMock) -> None:
    for index in range(5):
        Session.objects.create(id=f"ses_{index}")
    mocked.get(
        f"{API_URL}/sessions/ses_0",
        status=401,
        json={"error": "authentication_error", "message": "Invalid or missing API key."},
    )
    with pytest.raises(CommandError, match="refused the API key"):
        run()
    assert len(mocked.calls) == 1


def test_missing_key_aborts_without_any_request(mocked: responses.RequestsMock) -> None:
    Session.objects.create(id="ses_1")
    with (
        override_settings(VERILOCK_API_KEY=""),
        pytest.raises(CommandError, match="VERILOCK_API_KEY is not set"),
    ):
        run()
    assert len(mocked.calls) == 0


def test_limit(mocked: responses.RequestsMock) -> None:
    for index in range(4):
        Session.objects.create(id=f"ses_{index}")
        mocked.get(
            f"{API_URL}/sessions/ses_{index}", json={"id": f"ses_{index}", "status": "processing"}
        )
    out, _ = run("--limit", "2")
    assert out.startswith("2 fetched")
    with pytest.raises(CommandError, match="--limit"):
        run("--limit", "0")
