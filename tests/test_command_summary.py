"""What ``sync_verilock_sessions`` tells the operator: summary, ``-v 2``, dry run, JSON, exits.

Every summary must account for every unfinished session: fetched, confirmed by the list, not
due (with the earliest next check), held by another run, known missing, or left for the next
run.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from io import StringIO
from typing import Any

import pytest
import requests
import responses
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from verilock_django.models import Session
from verilock_django.store import store_session
from verilock_django.testing.responses_api import InProcessVerilock

from .conftest import API_URL

pytestmark = pytest.mark.django_db

YESTERDAY = timezone.now() - dt.timedelta(days=1)
SOON = timezone.now() + dt.timedelta(minutes=7)
TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def run(*args: str, verbosity: int = 1) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sync_verilock_sessions", *args, stdout=out, stderr=err, verbosity=verbosity)
    return out.getvalue(), err.getvalue()


def run_failing(*args: str) -> tuple[str, str, CommandError]:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("sync_verilock_sessions", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue(), excinfo.value


def mirror(api: InProcessVerilock, count: int) -> list[str]:
    """Sessions at the fake, stored locally as a past sync left them (due in 5 minutes)."""
    ids = [
        api.add_session(status="processing", created_at=YESTERDAY + dt.timedelta(seconds=i)).id
        for i in range(count)
    ]
    for session_id in ids:
        store_session(api.payload(session_id))
    api.reset_counters()
    return ids


def test_a_second_run_with_nothing_due_says_when_and_how_to_fetch_now(
    mocked: responses.RequestsMock,
) -> None:
    # Sessions without a creation date cannot be listed: only by-id checks, with backoff.
    for name in ("ses_1", "ses_2"):
        Session.objects.create(id=name)
        mocked.get(f"{API_URL}/sessions/{name}", json={"id": name, "status": "processing"})
    first, _ = run()
    assert first.startswith("2 fetched: 2 changed (0 new), 0 unchanged, 0 failed; 2 requests")

    second, _ = run()

    assert re.fullmatch(
        rf"0 fetched: 0 changed \(0 new\), 0 unchanged, 0 failed; "
        rf"2 not due, the earliest at {TIME} \(--full fetches them now\); "
        r"0 requests in \d+\.\ds\n",
        second,
    ), second
    assert len(mocked.calls) == 2


def test_a_second_run_confirms_through_the_list_for_one_request(
    verilock_api: InProcessVerilock,
) -> None:
    mirror(verilock_api, 3)

    out, _ = run()

    assert out.startswith("0 fetched: 0 changed (0 new), 0 unchanged, 0 failed; ")
    assert "3 confirmed unchanged by the list; 1 request in " in out


def test_an_empty_database_hints_at_registering_ids(mocked: responses.RequestsMock) -> None:
    out, err = run()
    assert re.fullmatch(
        re.escape(
            "0 fetched: 0 changed (0 new), 0 unchanged, 0 failed; no sessions stored yet: "
            "register sessions by id: manage.py sync_verilock_sessions SESSION_ID "
            "[SESSION_ID ...]; 0 requests in "
        )
        + r"\d+\.\ds\n",
        out,
    ), out
    assert err == ""
    assert len(mocked.calls) == 0


def test_only_finished_sessions_stored_says_so(mocked: responses.RequestsMock) -> None:
    Session.objects.create(id="ses_done", status="approved")
    out, _ = run()
    assert "no unfinished sessions: all 1 stored are finished" in out


def test_a_failed_listing_is_in_the_summary_and_exits_1(verilock_api: InProcessVerilock) -> None:
    mirror(verilock_api, 2)
    verilock_api.html_error_next(status=502)

    out, err, error = run_failing()

    assert error.returncode == 1
    assert "listing sessions failed: " in out
    assert "; nothing was inferred from the list, only sessions with old data" in out
    assert "2 not due, the earliest at " in out  # not due, so not fetched by id either
    assert str(error) == "listing sessions failed."
    assert err == ""  # no session failed: nothing per session on stderr


def test_every_category_is_counted_and_listed_with_verbosity_2(
    verilock_api: InProcessVerilock,
) -> None:
    confirmed, changed = mirror(verilock_api, 2)
    verilock_api.advance_many(ids=[changed])
    # Rows without a creation date: the list cannot speak for them.
    past = timezone.now() - dt.timedelta(minutes=1)
    held, missing = "ses_held", "ses_missing"
    Session.objects.create(id=held, next_check_at=past, lease_expires_at=SOON)
    Session.objects.create(id=missing, next_check_at=past, missing_since=YESTERDAY)
    Session.objects.create(id="ses_not_listable", next_check_at=SOON)

    out, _ = run(verbosity=2)
    lines = out.splitlines()

    assert f"{changed}: updated" in lines
    assert f"{confirmed}: confirmed unchanged by the list" in lines
    assert re.search(rf"^ses_not_listable: not due until {TIME}$", out, re.MULTILINE)
    assert re.search(rf"^{held}: held by another run until {TIME}$", out, re.MULTILINE)
    assert re.search(rf"^{missing}: missing at Verilock since {TIME}$", out, re.MULTILINE)
    assert lines[-1].startswith("1 fetched: 1 changed (0 new), 0 unchanged, 0 failed; ")
    for part in (
        "1 confirmed unchanged by the list",
        "1 not due, the earliest at",
        "1 held by another run",
        "1 known missing at Verilock",
    ):
        assert part in lines[-1], part
    assert len(lines) == 6  # one line per unfinished session, then the summary
    assert verilock_api.requests_for(changed) == 1 and verilock_api.total_requests == 2


def test_sessions_left_by_the_limit_are_counted(mocked: responses.RequestsMock) -> None:
    for name in ("ses_1", "ses_2", "ses_3"):
        Session.objects.create(id=name)
        mocked.get(f"{API_URL}/sessions/{name}", json={"id": name, "status": "processing"})
    out, _ = run("--limit", "1")
    assert out.startswith("1 fetched")
    assert "2 due but left for the next run (--limit)" in out


def test_dry_run_says_what_is_sure_and_what_only_the_list_knows(
    verilock_api: InProcessVerilock,
) -> None:
    listed_due, listed = mirror(verilock_api, 2)
    now = timezone.now()
    Session.objects.filter(pk=listed_due).update(next_check_at=now - dt.timedelta(minutes=1))
    Session.objects.create(id="ses_held", lease_expires_at=SOON)
    Session.objects.create(id="ses_missing", missing_since=YESTERDAY)
    Session.objects.create(id="ses_new")
    Session.objects.create(id="ses_due", next_check_at=now - dt.timedelta(minutes=1))
    Session.objects.create(id="ses_later", next_check_at=SOON)
    Session.objects.create(id="ses_done", status="approved")

    out, _ = run("--dry-run")
    full, _ = run("--dry-run", "--full")
    verbose, _ = run("--dry-run", verbosity=2)

    assert verilock_api.total_requests == 0
    assert re.fullmatch(
        r"Dry run, no request made; 1 never fetched would be fetched by id; "
        r"1 due, not listable, would be fetched by id; "
        r"2 would be checked through the list: each is confirmed if its status is unchanged or "
        r"fetched if it changed, which only the list request can tell "
        r"\(1 of them due: fetched by id if the list leaves them out\); "
        rf"1 not due, the earliest at {TIME} \(--full fetches them now\); "
        r"1 held by another run; 1 known missing at Verilock \(404; a sync by id asks again\); "
        r"at least 3 requests\n",
        out,
    ), out
    assert full == (
        "Dry run, no request made; 5 would be fetched by id (--full); 1 held by another run; "
        "1 known missing at Verilock (404; a sync by id asks again); at least 5 requests\n"
    )
    assert "ses_new: never fetched: would be fetched by id" in verbose
    assert f"{listed}: the list confirms it or it is fetched" in verbose
    assert "ses_done" not in verbose
    assert len(verbose.splitlines()) == 8


def test_dry_run_counts_the_sessions_whose_data_is_too_old(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    old, _fresh = mirror(verilock_api, 2)
    Session.objects.filter(pk=old).update(data_fetched_at=timezone.now() - dt.timedelta(hours=1))

    out, _ = run("--dry-run")
    as_json, _ = run("--dry-run", "--json")
    settings.VERILOCK_MAX_DATA_AGE = None
    off, _ = run("--dry-run")

    assert (
        "; 1 with data older than VERILOCK_MAX_DATA_AGE would be fetched by id too, oldest "
        "first, within the run's request budget; " in out
    )
    assert json.loads(as_json)["old_data"] == 1
    assert "VERILOCK_MAX_DATA_AGE" not in off
    assert verilock_api.total_requests == 0


def test_dry_run_with_ids_says_which_are_new(mocked: responses.RequestsMock) -> None:
    Session.objects.create(id="ses_known")
    out, _ = run("ses_known", "ses_new", "--dry-run", verbosity=2)
    assert out.splitlines() == [
        "ses_known: would be fetched by id (stored)",
        "ses_new: would be fetched by id (not stored yet)",
        "Dry run, no request made; 2 would be fetched by id (1 not stored yet, created if "
        "found); 2 requests",
    ]
    assert len(mocked.calls) == 0


def test_json_is_one_object_with_the_same_summary(mocked: responses.RequestsMock) -> None:
    for name in ("ses_ok", "ses_bad"):
        Session.objects.create(id=name)
    mocked.get(f"{API_URL}/sessions/ses_ok", json={"id": "ses_ok", "status": "processing"})
    mocked.get(f"{API_URL}/sessions/ses_bad", status=503, json={"message": "down"})
    Session.objects.create(id="ses_later", next_check_at=SOON)

    out, err, error = run_failing("--json")

    data = json.loads(out)
    assert data == {
        "mode": "refresh",
        "fetched": 1,
        "changed": 1,
        "new": 0,
        "unchanged": 0,
        "failed": 1,
        "failures": {"ses_bad": data["failures"]["ses_bad"]},
        "confirmed": 0,
        "not_due": 1,
        "next_check_at": data["next_check_at"],
        "held": 0,
        "enqueued": 0,
        "missing": 0,
        "left": 0,
        "list_error": None,
        "stale_left": 0,
        "stopped_at_time_limit": False,
        "requests": 2,
        "elapsed": data["elapsed"],
        "exit_code": 1,
    }
    assert "503" in data["failures"]["ses_bad"]
    assert dt.datetime.fromisoformat(data["next_check_at"]) == SOON.astimezone(dt.timezone.utc)
    assert error.returncode == 1
    assert err.count("\n") == 1 and err.startswith("ses_bad: failed: ")  # once, beside the JSON


def test_json_dry_run(mocked: responses.RequestsMock) -> None:
    Session.objects.create(id="ses_new")
    out, _ = run("--dry-run", "--json")
    assert json.loads(out) == {
        "mode": "dry-run",
        "full": False,
        "unfinished": 1,
        "fetch_by_id": 1,
        "via_list": 0,
        "via_list_due": 0,
        "not_due": 0,
        "next_check_at": None,
        "old_data": 0,
        "held": 0,
        "missing": 0,
        "limit": None,
        "requests_at_least": 1,
        "exit_code": 0,
    }


def test_an_unreachable_api_exits_3(mocked: responses.RequestsMock) -> None:
    for name in ("ses_1", "ses_2"):
        Session.objects.create(id=name)
        mocked.get(f"{API_URL}/sessions/{name}", body=requests.ConnectionError("refused"))

    out, err, error = run_failing()

    assert error.returncode == 3
    assert str(error) == "Verilock could not be reached."
    assert "2 failed" in out
    assert err.count(": failed: ") == 2


def test_a_configuration_error_exits_2_also_in_json(settings: Any) -> None:
    settings.VERILOCK_API_KEY = ""
    Session.objects.create(id="ses_1")
    out, _, error = run_failing("--json")
    assert error.returncode == 2
    assert json.loads(out) == {"error": str(error), "exit_code": 2}


def test_a_bad_setting_is_a_system_check_error_with_exit_status_2(settings: Any) -> None:
    settings.VERILOCK_RETRY_BACKOFF = "fast"
    Session.objects.create(id="ses_1")
    with pytest.raises(SystemCheckError, match=r"verilock_django\.E007") as excinfo:
        call_command("sync_verilock_sessions", skip_checks=False, stdout=StringIO())
    assert excinfo.value.returncode == 2
    # With the checks skipped (--skip-checks), the sync stops at once with the same status.
    out, err, error = run_failing()
    assert error.returncode == 2
    assert "VERILOCK_RETRY_BACKOFF" in str(error) and "fast" not in str(error)
    assert (out, err) == ("", "")
    assert Session.objects.get(pk="ses_1").last_synced_at is None


def test_one_request_is_singular(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API_URL}/sessions/ses_1", json={"id": "ses_1", "status": "processing"})
    out, _ = run("ses_1")
    assert re.search(r"; 1 request in \d+\.\ds\n$", out), out


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_when_ids_are_given(verilock_api: InProcessVerilock) -> None:
    ids = [verilock_api.add_session(status="processing").id for _ in range(3)]
    out = Terminal()
    call_command("sync_verilock_sessions", *ids, stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "/s ETA" in text and "/3 " in text
    assert text.rsplit("\r\x1b[2K", 1)[1].startswith("3 fetched")


def test_a_dry_run_counts_one_listing_per_status_listed(
    verilock_api: InProcessVerilock,
) -> None:
    # Unfinished sessions in three statuses: the refresh walks one filtered listing each.
    ids = [
        verilock_api.add_session(status=status).id
        for status in ("created", "processing", "review", "review")
    ]
    run(*ids)
    verilock_api.reset_counters()

    out, _ = run("--dry-run")
    data = json.loads(run("--dry-run", "--json")[0])
    run()

    assert "4 would be checked through the list" in out
    assert out.endswith("; at least 3 requests\n"), out
    assert data["requests_at_least"] == 3
    # What a run with nothing changed spends: exactly those listings.
    assert verilock_api.total_requests == 3
