"""The batch refresh: list-endpoint reconciliation, request budget, backoff, leases, limits."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from io import StringIO
from typing import Any

import pytest
import responses
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from verilock_django import clock
from verilock_django.client import VerilockClient
from verilock_django.exceptions import AuthenticationError
from verilock_django.models import Session, StepResult
from verilock_django.ratelimit import WINDOW, LocalWindow
from verilock_django.refresh import refresh_unfinished
from verilock_django.schedule import next_check_time
from verilock_django.signals import session_finished
from verilock_django.store import Outcome, store_session
from verilock_django.sync import SyncPipeline, sync_session, sync_sessions
from verilock_django.testing.factories import list_item
from verilock_django.testing.responses_api import InProcessVerilock

from .conftest import API_URL, CONTROL

pytestmark = pytest.mark.django_db

YESTERDAY = timezone.now() - dt.timedelta(days=1)
EMPTY_PAGE = {"data": [], "meta": {"current_page": 1, "last_page": 1, "per_page": 100, "total": 0}}


def mirror(api: InProcessVerilock, count: int, *, status: str = "processing") -> list[str]:
    """Create ``count`` sessions at the fake and store them locally, as a past sync would."""
    ids = [
        api.add_session(status=status, created_at=YESTERDAY + dt.timedelta(seconds=i)).id
        for i in range(count)
    ]
    for session_id in ids:
        store_session(api.payload(session_id), fetched_at=timezone.now())
    api.reset_counters()
    return ids


def detail_requests(api: InProcessVerilock) -> list[str]:
    return [r.session_id for r in api.requests if r.session_id]


def list_requests(api: InProcessVerilock) -> int:
    return sum(1 for r in api.requests if r.session_id is None and r.path == "/sessions")


def test_list_mode_fetches_only_changed_sessions_within_budget(
    verilock_api: InProcessVerilock,
) -> None:
    ids = mirror(verilock_api, 250)
    changed = ids[::25]  # k = 10
    verilock_api.advance_many(ids=changed)

    report = refresh_unfinished()

    assert sorted(detail_requests(verilock_api)) == sorted(changed)
    budget = len(changed) + math.ceil(250 / 100) + 2
    assert verilock_api.total_requests <= budget
    assert report.requests == verilock_api.total_requests
    assert report.synced == len(changed) and report.confirmed == 250 - len(changed)
    for session_id in changed:
        assert Session.objects.get(pk=session_id).status == verilock_api.get(session_id).status
    assert not Session.objects.filter(lease_expires_at__isnull=False).exists()


def test_list_query_starts_on_the_day_of_the_oldest_unfinished_session(
    verilock_api: InProcessVerilock,
) -> None:
    mirror(verilock_api, 3)

    refresh_unfinished()

    (listed,) = [r for r in verilock_api.requests if r.path == "/sessions"]
    assert f"from={YESTERDAY.date().isoformat()}" in listed.query
    assert "per_page=100" in listed.query


def test_sessions_the_list_cannot_account_for_are_fetched_by_id(
    verilock_api: InProcessVerilock,
) -> None:
    mirror(verilock_api, 3)
    pending = verilock_api.add_session(status="created", created_at=YESTERDAY)
    Session.objects.create(id=pending.id)  # registered locally, never fetched: no created_at
    gone = Session.objects.create(id="ses_unlisted", status="processing", created_at=YESTERDAY)

    report = refresh_unfinished()

    assert sorted(detail_requests(verilock_api)) == sorted([pending.id, gone.id])
    assert Session.objects.get(pk=pending.id).status == "created"
    assert "not found" in report.failed[gone.id].lower()


def test_full_fetches_every_unfinished_session_by_id(verilock_api: InProcessVerilock) -> None:
    ids = mirror(verilock_api, 5)
    Session.objects.filter(pk=ids[0]).update(next_check_at=clock.now() + dt.timedelta(days=1))

    report = refresh_unfinished(full=True)

    assert list_requests(verilock_api) == 0
    assert sorted(detail_requests(verilock_api)) == sorted(ids)
    assert report.unchanged == 5


def test_sessions_the_list_leaves_out_unchanged_back_off(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    settings.VERILOCK_RECHECK_MIN_INTERVAL = 10
    settings.VERILOCK_RECHECK_MAX_INTERVAL = 300
    (session_id,) = mirror(verilock_api, 1)

    def run_with_an_empty_list() -> list[str]:
        # A listing that leaves the session out although its status did not change.
        verilock_api.reset_counters()
        verilock_api.respond_next(json=EMPTY_PAGE)  # the list call comes first
        refresh_unfinished()
        return detail_requests(verilock_api)

    assert run_with_an_empty_list() == [session_id]  # left its status, as far as we know
    assert run_with_an_empty_list() == [session_id]  # a second time, still unchanged
    assert run_with_an_empty_list() == []  # the listing never shows it: the backoff applies

    intervals = []
    for _ in range(4):
        Session.objects.filter(pk=session_id).update(next_check_at=clock.now())
        assert run_with_an_empty_list() == [session_id]
        row = Session.objects.get(pk=session_id)
        assert row.next_check_at is not None and row.last_synced_at is not None
        intervals.append(round((row.next_check_at - row.last_synced_at).total_seconds()))
    assert intervals == [80, 160, 300, 300]  # 10 · 2^n, capped at the maximum

    # Listed again, it is accounted for by the list: the day it leaves, it is fetched at once.
    verilock_api.reset_counters()
    assert refresh_unfinished().confirmed == 1
    assert Session.objects.get(pk=session_id).unchanged_checks == 0
    assert run_with_an_empty_list() == [session_id]


def test_next_check_time_doubles_from_min_to_max(settings: Any) -> None:
    settings.VERILOCK_RECHECK_MIN_INTERVAL = 10
    settings.VERILOCK_RECHECK_MAX_INTERVAL = 100
    now = timezone.now()
    assert [(next_check_time(n, now) - now).total_seconds() for n in range(6)] == [
        10,
        20,
        40,
        80,
        100,
        100,
    ]


def test_a_long_list_gives_way_to_by_id_checks(verilock_api: InProcessVerilock) -> None:
    (ours,) = mirror(verilock_api, 1)
    verilock_api.status_filter = False  # a provider that ignores the filter lists them all
    for _ in range(350):  # newer, finished sessions the listing would walk through
        verilock_api.add_session(status="approved")

    refresh_unfinished()

    # Page 1 of 4 shows 3 more pages cost more than the 1 due session: fetch it by id.
    assert list_requests(verilock_api) == 1
    assert detail_requests(verilock_api) == [ours]


def test_a_failed_list_page_never_turns_into_a_by_id_storm(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    ids = mirror(verilock_api, 10)
    verilock_api.advance_many(ids=ids)  # all changed upstream, none of it listed this time
    verilock_api.html_error_next(status=502)

    report = refresh_unfinished()

    # Nothing is inferred from a failed list: the fresh sessions are not fetched.
    assert detail_requests(verilock_api) == [] and report.requests == 1
    assert report.list_error is not None and not report.ok
    assert "listing sessions failed" in report.summary()


#: ``meta.last_page`` values no page of a listing can have: a listing has at least page 1.
UNUSABLE_LAST_PAGES = [0, -1, -100, None, "2", 1.5, True, "missing"]


@pytest.mark.parametrize("last_page", UNUSABLE_LAST_PAGES)
def test_a_page_with_an_unusable_last_page_never_turns_into_a_by_id_storm(
    verilock_api: InProcessVerilock, last_page: object
) -> None:
    ids = mirror(verilock_api, 10)
    verilock_api.advance_many(ids=ids)  # all changed upstream, none of it listed this time
    meta: dict[str, object] = {"current_page": 1, "per_page": 100, "total": 0}
    if last_page != "missing":
        meta["last_page"] = last_page
    verilock_api.respond_next(json={"data": [], "meta": meta})

    report = refresh_unfinished()

    # Such a page says nothing about the listing: nothing inferred, like a failed page.
    assert detail_requests(verilock_api) == [] and report.requests == 1
    assert report.list_error is not None and "meta.last_page" in report.list_error
    assert not report.ok and "listing sessions failed" in report.summary()
    assert set(Session.objects.values_list("status", flat=True)) == {"processing"}


def test_a_list_item_without_a_status_confirms_nothing_and_hides_no_other_listing(
    verilock_api: InProcessVerilock,
) -> None:
    created = verilock_api.add_session(
        status="created", created_at=YESTERDAY - dt.timedelta(hours=1)
    )
    store_session(verilock_api.payload(created.id), fetched_at=timezone.now())
    mirror(verilock_api, 3)  # processing: listed by their own, later walk
    item = list_item(verilock_api.payload(created.id))
    del item["status"]
    verilock_api.respond_next(
        json={
            "data": [item],
            "meta": {"current_page": 1, "last_page": 1, "per_page": 100, "total": 1},
        }
    )

    report = refresh_unfinished()

    # The item does not say its status: it confirms nothing (fetched by id), and it does not
    # show the provider ignoring the filter (the processing listing is still walked).
    assert detail_requests(verilock_api) == [created.id]
    assert list_requests(verilock_api) == 2 and report.confirmed == 3
    assert Session.objects.get(pk=created.id).status == "created"


def test_with_the_list_down_only_old_data_is_fetched_oldest_first_within_budget(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    # A quota of 5 a minute over a 60 s window: 4 requests (80 %), the failed list took 1.
    settings.VERILOCK_RATE_LIMIT_PER_MINUTE = 5
    settings.VERILOCK_RECHECK_MIN_INTERVAL = 60
    ids = mirror(verilock_api, 6)
    hour_ago = clock.now() - dt.timedelta(hours=1)
    for age, session_id in enumerate(ids):
        Session.objects.filter(pk=session_id).update(
            data_fetched_at=hour_ago - dt.timedelta(minutes=age)
        )
    settings.VERILOCK_MAX_RETRIES = 0
    verilock_api.fail_next(status=500)  # the list call comes first

    report = refresh_unfinished()

    assert list_requests(verilock_api) == 1 and report.list_error is not None
    assert sorted(detail_requests(verilock_api)) == sorted(ids[-3:])  # the 3 oldest
    assert report.stale_left == 3 and not report.failed
    assert "3 with old data left for the next run" in report.summary()


def test_sessions_leased_by_another_run_are_left_alone(verilock_api: InProcessVerilock) -> None:
    ids = mirror(verilock_api, 3, status="created")
    mirror(verilock_api, 1)  # a processing one: advanced, the 3 are listed as changed there
    verilock_api.advance_many(ids=ids)
    later = timezone.now() + dt.timedelta(minutes=5)
    Session.objects.filter(pk=ids[0]).update(lease_expires_at=later)
    expired = timezone.now() - dt.timedelta(seconds=1)
    Session.objects.filter(pk=ids[1]).update(lease_expires_at=expired)

    report = refresh_unfinished()

    assert sorted(detail_requests(verilock_api)) == sorted(ids[1:])
    assert report.skipped == 1
    assert Session.objects.get(pk=ids[0]).lease_expires_at == later  # still theirs
    assert Session.objects.get(pk=ids[1]).lease_expires_at is None


def test_max_runtime_stops_claiming_work(verilock_api: InProcessVerilock) -> None:
    ids = mirror(verilock_api, 3)
    verilock_api.advance_many(ids=ids)

    report = refresh_unfinished(max_runtime=0)

    assert detail_requests(verilock_api) == []
    assert report.stopped and "stopped at the time limit" in report.summary()
    assert not Session.objects.filter(lease_expires_at__isnull=False).exists()


def test_limit_caps_fetches_in_list_mode(verilock_api: InProcessVerilock) -> None:
    ids = mirror(verilock_api, 6)
    verilock_api.advance_many(ids=ids)

    report = refresh_unfinished(limit=2)

    assert len(detail_requests(verilock_api)) == 2 and report.synced == 2


def test_leases_are_released_when_the_key_is_refused(verilock_api: InProcessVerilock) -> None:
    ids = mirror(verilock_api, 4)
    verilock_api.advance_many(ids=ids)
    verilock_api.inject("status", session_id=min(ids), status=401)

    with pytest.raises(AuthenticationError):
        refresh_unfinished()

    # The list call, then one fetch: the pool opens up only once the key is accepted.
    assert verilock_api.total_requests == 2
    assert not Session.objects.filter(lease_expires_at__isnull=False).exists()


def test_explicit_ids_are_fetched_in_parallel_and_all_stored(
    verilock_api: InProcessVerilock,
) -> None:
    ids = [verilock_api.add_session(status="processing").id for _ in range(20)]

    report = sync_sessions(ids, concurrency=4)

    assert report.created == 20
    assert sorted(detail_requests(verilock_api)) == sorted(ids)
    assert StepResult.objects.count() == 20 * 5


@pytest.mark.django_db(transaction=True)
def test_at_most_five_queries_per_synced_session(verilock_api: InProcessVerilock) -> None:
    ids = mirror(verilock_api, 120)
    changed = ids[::4]  # k = 30 of 120
    verilock_api.advance_many(ids=changed)

    with CaptureQueriesContext(connection) as captured:
        report = refresh_unfinished()

    assert report.synced == len(changed)
    # Transaction control (SQLite logs BEGIN and COMMIT) is not a query against the data.
    statements = [
        q["sql"] for q in captured.captured_queries if not q["sql"].upper().startswith(CONTROL)
    ]
    # Lock, session, steps, history row(s) (one bulk insert), plus the batch's bookkeeping.
    assert len(statements) <= 5 * report.synced


def test_an_old_response_arriving_after_a_newer_one_is_ignored(
    seed: dict[str, Any], mocked: responses.RequestsMock
) -> None:
    session_id = seed["id"]
    old = dict(seed, status="processing")
    Session.objects.create(id=session_id, status="created")
    served: list[str] = []

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        if not served:
            served.append("old")
            # While this (older) request is in flight, a newer refresh completes — e.g.
            # the admin's "Refresh" button or a webhook-triggered sync.
            assert sync_session(session_id).outcome is Outcome.UPDATED
            return 200, {}, json.dumps(old)
        served.append("new")
        return 200, {}, json.dumps(seed)

    mocked.add_callback(responses.GET, f"{API_URL}/sessions/{session_id}", callback=answer)

    result = sync_session(session_id)

    assert served == ["old", "new"]
    assert result.outcome is Outcome.STALE
    stored = Session.objects.get()
    assert stored.status == "approved" and stored.results.count() == 5


def test_among_unfinished_statuses_the_newest_answer_wins(seed: dict[str, Any]) -> None:
    # A reviewer asked for resubmission: Verilock moved the session back to in_progress.
    store_session(dict(seed, status="review"))

    result = store_session(dict(seed, status="in_progress"))

    assert result.outcome is Outcome.UPDATED
    assert Session.objects.get().status == "in_progress"
    # Statuses the provider never documented are stored as they come.
    assert store_session(dict(seed, status="on_hold")).outcome is Outcome.UPDATED


def test_a_final_status_is_never_left_for_an_unfinished_one(seed: dict[str, Any]) -> None:
    store_session(dict(seed, status="approved"))

    result = store_session(dict(seed, status="processing"))

    assert result.outcome is Outcome.STALE
    assert Session.objects.get().status == "approved"


def test_a_decision_may_be_overturned_and_receivers_are_told(
    seed: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    store_session(dict(seed, status="approved"))
    finished: list[str] = []

    def receiver(sender: object, session: Session, **kwargs: object) -> None:
        finished.append(session.status)

    session_finished.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = store_session(dict(seed, status="declined"))
    finally:
        session_finished.disconnect(receiver)

    assert result.outcome is Outcome.UPDATED
    assert Session.objects.get().status == "declined"
    assert finished == ["declined"]


def test_client_rate_limit_setting_throttles_every_attempt(
    verilock_api: InProcessVerilock, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.VERILOCK_RATE_LIMIT_PER_MINUTE = 2
    clock, waits = [0.0], []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr("verilock_django.ratelimit.time.sleep", sleep)
    ids = [verilock_api.add_session(status="processing").id for _ in range(3)]

    client = VerilockClient(window=LocalWindow(clock=lambda: clock[0]))
    report = sync_sessions(ids, concurrency=1, client=client)

    assert report.created == 3
    assert waits == [WINDOW]  # the third request waited for the first to leave the window


class TTY(StringIO):
    def isatty(self) -> bool:
        return True


def run_command(*args: str, stdout: StringIO | None = None) -> str:
    out = stdout or StringIO()
    call_command("sync_verilock_sessions", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_command_shows_a_progress_bar_on_a_terminal_only(
    verilock_api: InProcessVerilock,
) -> None:
    ids = mirror(verilock_api, 5)
    verilock_api.advance_many(ids=ids)

    out = run_command(stdout=TTY())

    assert "\r[" in out and "/s ETA" in out
    assert out.rstrip().splitlines()[-1].lstrip("\r\x1b[2K").startswith("5 fetched")

    Session.objects.update(next_check_at=None)
    plain = run_command("--full")
    assert "\r" not in plain and plain.count("\n") == 1
    assert "fetched" in plain and "requests in" in plain


def test_command_rejects_a_zero_concurrency() -> None:
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--concurrency"):
        run_command("--concurrency", "0")


class OnePageForever(VerilockClient):
    """A provider that serves page 1 for every page number, with a bare ``meta.last_page``
    of 10**10 and no ``meta.total``: a listing that, as far as its pages say, never ends."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[int] = []

    def list_sessions(self, *, page: int = 1, **kwargs: Any) -> dict[str, Any]:
        self.pages.append(page)
        assert len(self.pages) <= 50, "the walk does not stop"
        body = super().list_sessions(page=1, **kwargs)
        del body["meta"]["total"]
        body["meta"].update(last_page=10**10, current_page=page)
        return body


def test_a_listing_that_never_ends_costs_no_more_pages_than_checking_by_id(
    verilock_api: InProcessVerilock,
) -> None:
    ids = mirror(verilock_api, 105)  # page 1 shows the newest 100; 5 are never listed
    client = OnePageForever()

    report = refresh_unfinished(client=client)

    # Page 1 leaves 5 sessions unaccounted for: after 5 more pages, by id is cheaper.
    assert client.pages == [1, 2, 3, 4, 5, 6]
    unlisted = sorted(ids[:5])  # the oldest: the listing is newest first
    assert sorted(detail_requests(verilock_api)) == unlisted
    # Each session counted once, however many times the pages showed it.
    assert report.confirmed == 100 and report.unchanged == 5
    assert report.ok and not report.stopped
    assert report.requests == 6 + 5


def test_a_session_the_key_may_not_read_fails_alone(verilock_api: InProcessVerilock) -> None:
    ids = mirror(verilock_api, 4)
    verilock_api.advance_many(ids=ids)
    forbidden = min(ids)  # the first one fetched: no other fetch has succeeded yet
    verilock_api.respond_next(
        forbidden, times=99, status=403, json={"error": "forbidden", "message": "Not allowed"}
    )

    report = refresh_unfinished()  # the list page showed that the key reads sessions

    assert list(report.failed) == [forbidden] and "HTTP 403" in report.failed[forbidden]
    assert report.updated == 3
    row = Session.objects.get(pk=forbidden)
    assert row.failed_checks == 1 and "HTTP 403" in row.last_sync_error
    assert row.status == "processing"  # as it was
    assert not Session.objects.filter(lease_expires_at__isnull=False).exists()


@pytest.mark.parametrize("status", [403, 500])
def test_a_changed_session_whose_fetch_fails_waits_for_its_backoff_whatever_the_list_says(
    verilock_api: InProcessVerilock, settings: Any, status: int
) -> None:
    settings.VERILOCK_RECHECK_MIN_INTERVAL = 600
    settings.VERILOCK_MAX_RETRIES = 0
    ids = mirror(verilock_api, 4)
    failing = ids[0]
    verilock_api.advance_many(ids=[failing])  # it leaves the listing of its stored status
    verilock_api.fail_next(failing, status=status, times=99)

    fetches = []
    for _ in range(3):
        verilock_api.reset_counters()
        report = refresh_unfinished()
        fetches.append(verilock_api.requests_for(failing))
        assert list(report.failed) == ([failing] if len(fetches) == 1 else [])

    assert fetches == [1, 0, 0]  # not one request per run for as long as it fails
    row = Session.objects.get(pk=failing)
    assert row.failed_checks == 1 and row.status == "processing"

    # Its backoff passes: the next run fetches it again.
    Session.objects.filter(pk=failing).update(next_check_at=clock.now())
    verilock_api.clear_faults()
    verilock_api.reset_counters()
    refresh_unfinished()
    assert verilock_api.requests_for(failing) == 1
    assert Session.objects.get(pk=failing).status == verilock_api.get(failing).status


class EveryStatusForever(VerilockClient):
    """A provider that ignores the status filter and serves page 1 for every page number,
    with a bare ``meta.last_page`` of 10**10."""

    def list_sessions(self, *, page: int = 1, **kwargs: Any) -> dict[str, Any]:
        kwargs.pop("status", None)
        body = super().list_sessions(page=1, **kwargs)
        del body["meta"]["total"]
        body["meta"].update(last_page=10**10, current_page=page)
        return body


def test_a_session_that_failed_is_not_fetched_again_when_a_page_shows_it_again(
    verilock_api: InProcessVerilock, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.VERILOCK_MAX_RETRIES = 0
    monkeypatch.setattr(SyncPipeline, "BATCH_SECONDS", 0.0)  # failures stored at once
    ids = mirror(verilock_api, 110)
    failing = ids[-10:]  # the newest: on page 1, which repeats
    verilock_api.advance_many(ids=failing)
    for session_id in failing:
        verilock_api.fail_next(session_id, status=500, times=99)

    report = refresh_unfinished(client=EveryStatusForever())

    assert sorted(report.failed) == sorted(failing)
    assert all(verilock_api.requests_for(session_id) == 1 for session_id in failing)


def test_a_changed_session_shown_again_while_this_run_fetches_it_is_not_held_by_another(
    verilock_api: InProcessVerilock,
) -> None:
    ids = mirror(verilock_api, 110)
    changed = ids[-5:]  # the newest: on page 1, which repeats
    verilock_api.advance_many(ids=changed)
    third_page = threading.Event()

    class AnswersAfterPageTwo(EveryStatusForever):
        """The fetches answer once page 3 is asked for: pages 1 and 2 show them in flight."""

        def list_sessions(self, *, page: int = 1, **kwargs: Any) -> dict[str, Any]:
            if page >= 3:
                third_page.set()
            return super().list_sessions(page=page, **kwargs)

        def get_session(self, session_id: str) -> dict[str, Any]:
            assert third_page.wait(10)
            return super().get_session(session_id)

    report = refresh_unfinished(client=AnswersAfterPageTwo())

    assert sorted(detail_requests(verilock_api)) == sorted(changed + ids[:10])
    assert report.updated == 5 and report.skipped == 0  # no other run holds anything
    assert "held by another run" not in report.summary()


@pytest.mark.parametrize("status", [401, 403])
def test_a_key_refused_before_it_read_any_session_stops_the_batch(
    verilock_api: InProcessVerilock, status: int
) -> None:
    for name in ("ses_1", "ses_2", "ses_3"):
        Session.objects.create(id=name)  # never fetched: no list page to read first
    verilock_api.respond_next(None, times=99, status=status, json={"error": "forbidden"})

    with pytest.raises(AuthenticationError):
        refresh_unfinished()

    assert verilock_api.total_requests == 1
