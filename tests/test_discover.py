"""Discovery: walk the listing, store unknown sessions, survive pages shifting mid-walk."""

from __future__ import annotations

import datetime as dt
import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from verilock_django import clock
from verilock_django.client import VerilockClient
from verilock_django.discover import PAGE_SIZE, STALE_PAGES, discover_sessions
from verilock_django.models import Session
from verilock_django.privacy import erase_sessions
from verilock_django.testing.responses_api import InProcessVerilock

pytestmark = pytest.mark.django_db

FINISHED = {"approved", "declined", "expired"}


class ChangingClient(VerilockClient):
    """A client that runs ``before(page)`` the first time each list page is requested."""

    def __init__(self, before: dict[int, Any]) -> None:
        super().__init__()
        self.before = before
        self.pages: list[int] = []

    def list_sessions(self, *, page: int = 1, **kwargs: Any) -> dict[str, Any]:
        if page in self.before and page not in self.pages:
            self.before[page]()
        self.pages.append(page)
        return super().list_sessions(page=page, **kwargs)


class StuckClient(VerilockClient):
    """A provider that ignores ``page`` and serves page 1, claiming a listing of
    ``meta.total`` = 10**12; ``before()`` runs before each page is requested."""

    def __init__(self, before: Any = None, total: Any = None) -> None:
        super().__init__()
        self.before = before
        self.total = total or (lambda: 10**12)
        self.pages: list[int] = []

    def list_sessions(self, *, page: int = 1, **kwargs: Any) -> dict[str, Any]:
        self.pages.append(page)
        assert len(self.pages) <= 50, "the walk does not stop"
        if self.before is not None:
            self.before()
        body = super().list_sessions(page=1, **kwargs)
        body["meta"].update(total=self.total(), last_page=10**10, current_page=page)
        return body


def list_requests(api: InProcessVerilock) -> int:
    return sum(1 for r in api.requests if r.method == "GET" and r.path.rstrip("/") == "/sessions")


def test_three_pages_with_a_session_created_mid_walk_store_each_session_once(
    verilock_api: InProcessVerilock,
) -> None:
    verilock_api.seed(2 * PAGE_SIZE + 50)
    late: list[str] = []
    client = ChangingClient(
        {2: lambda: late.append(verilock_api.add_session(status="created").id)}
    )

    report = discover_sessions(client=client)

    remote = {s.id: s for s in verilock_api.sessions}
    assert len(remote) == 251
    assert set(Session.objects.values_list("id", flat=True)) == set(remote)  # none missed
    assert report.listed == 251 and report.created == 251  # none twice
    assert late[0] in remote and Session.objects.filter(pk=late[0]).exists()
    assert report.ok, report.summary()
    # Pages 1-3, then page 1 again (finds the late one) and once more (finds nothing).
    assert client.pages == [1, 2, 3, 1, 1]
    # List data first: only finished sessions, which the refresh never revisits, are fetched.
    for session_id, session in remote.items():
        expected = 1 if session.status in FINISHED else 0
        assert verilock_api.requests_for(session_id) == expected, session.status
    finished = [sid for sid, s in remote.items() if s.status in FINISHED]
    assert Session.objects.filter(
        pk__in=finished, results__isnull=False
    ).distinct().count() == len(finished)


def test_a_session_leaving_the_listing_mid_walk_makes_no_other_one_missed(
    verilock_api: InProcessVerilock,
) -> None:
    verilock_api.seed(2 * PAGE_SIZE + 50)
    newest_first = [s.id for s in reversed(verilock_api.sessions)]
    gone = newest_first[0]

    def remove() -> None:
        # Retention at Verilock: a session already listed on page 1 disappears.
        with verilock_api.lock:
            del verilock_api._sessions[gone]

    client = ChangingClient({2: remove})
    report = discover_sessions(client=client)

    stored = set(Session.objects.values_list("id", flat=True))
    assert stored == set(newest_first)  # the one at the top of page 2 moved to page 1: not lost
    assert report.ok
    assert client.pages[:3] == [1, 2, 1]  # the total dropped: step back one page


def test_discovery_is_idempotent_and_leaves_known_sessions_to_the_refresh(
    verilock_api: InProcessVerilock,
) -> None:
    verilock_api.seed(30)
    known = verilock_api.sessions[0]
    Session.objects.create(id=known.id)  # registered by id, never fetched

    first = discover_sessions()
    verilock_api.reset_counters()
    second = discover_sessions()

    assert (first.created, first.known) == (29, 1)
    assert (second.created, second.known) == (0, 30)
    assert verilock_api.total_requests == list_requests(verilock_api) == 2  # page 1, twice
    assert Session.objects.get(pk=known.id).last_synced_at is None  # left alone
    assert Session.objects.count() == 30


def test_since_lists_only_sessions_created_from_that_day(verilock_api: InProcessVerilock) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    old = verilock_api.add_session(status="created", created_at=now - dt.timedelta(days=40))
    new = verilock_api.add_session(status="created", created_at=now - dt.timedelta(days=1))

    discover_sessions(since=(now - dt.timedelta(days=7)).date())

    assert list(Session.objects.values_list("id", flat=True)) == [new.id]
    assert not Session.objects.filter(pk=old.id).exists()


def test_erased_sessions_are_not_brought_back(verilock_api: InProcessVerilock) -> None:
    # Found by the break-test: the tombstone look-up was a stub that found nothing, so every
    # discovery fetched the erased applicant again and failed.
    erased = verilock_api.add_session(status="approved")
    kept = verilock_api.add_session(status="created")
    erase_sessions([erased.id])

    report = discover_sessions()

    assert list(Session.objects.values_list("id", flat=True)) == [kept.id]
    assert report.erased == 1
    assert verilock_api.requests_for(erased.id) == 0


def test_a_failed_page_stops_the_walk_and_is_reported(verilock_api: InProcessVerilock) -> None:
    verilock_api.seed(5)
    verilock_api.fail_next(status=503)
    report = discover_sessions()
    assert not report.ok and report.list_error is not None
    assert "503" in report.summary()


@pytest.mark.parametrize("last_page", [0, -1, None, "3"])
def test_a_page_with_an_unusable_last_page_stops_the_walk_and_is_reported(
    verilock_api: InProcessVerilock, last_page: object
) -> None:
    verilock_api.seed(5)
    page = VerilockClient().list_sessions(page=1, per_page=PAGE_SIZE)
    page["meta"]["last_page"] = last_page
    verilock_api.reset_counters()
    verilock_api.respond_next(json=page)

    report = discover_sessions()

    # Nothing is taken from a page that cannot say where the listing ends.
    assert not report.ok and report.list_error is not None
    assert "meta.last_page" in report.summary()
    assert report.created == 0 and not Session.objects.exists()


def test_a_finished_session_the_key_may_not_read_fails_alone(
    verilock_api: InProcessVerilock,
) -> None:
    verilock_api.seed(30)
    newest_first = sorted(verilock_api.sessions, key=lambda s: s.created_at, reverse=True)
    finished = [s.id for s in newest_first if s.status in FINISHED]
    forbidden = finished[0]  # the first fetched: the list page is all the key has read
    verilock_api.respond_next(forbidden, times=99, status=403, json={"error": "forbidden"})

    report = discover_sessions(concurrency=1)

    assert list(report.failed) == [forbidden] and "HTTP 403" in report.failed[forbidden]
    assert report.created == 29 and not Session.objects.filter(pk=forbidden).exists()
    assert verilock_api.requests_for(forbidden) == 1


def test_the_command_discovers_and_reports(verilock_api: InProcessVerilock) -> None:
    verilock_api.seed(12)
    out = StringIO()
    call_command("sync_verilock_sessions", "--discover", "--since", "2000-01-01", stdout=out)
    assert "Discovered 12 new session(s)" in out.getvalue()
    assert Session.objects.count() == 12
    query = [r.query for r in verilock_api.requests if r.path.rstrip("/") == "/sessions"]
    assert all("from=2000-01-01" in q for q in query)


def test_the_command_fails_when_discovery_fails(verilock_api: InProcessVerilock) -> None:
    verilock_api.fail_next(status=503)
    with pytest.raises(CommandError, match="Discovery did not complete"):
        call_command("sync_verilock_sessions", "--discover", stdout=StringIO())


def test_since_needs_discover() -> None:
    with pytest.raises(CommandError, match="--since goes with --discover") as caught:
        call_command("sync_verilock_sessions", "--since", "2026-01-01", stdout=StringIO())
    assert caught.value.returncode == 2  # a usage error, as the README's table says


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["ses_x"], "session ids"),
        (["--limit", "3"], "--limit"),
        (["--full"], "--full"),
        (["--enqueue"], "--enqueue"),
    ],
)
def test_options_discover_cannot_honour_are_refused_not_ignored(
    verilock_api: InProcessVerilock, args: list[str], named: str
) -> None:
    with pytest.raises(CommandError, match=f"--discover does not take {named}") as caught:
        call_command("sync_verilock_sessions", "--discover", *args, stdout=StringIO())
    assert caught.value.returncode == 2
    assert verilock_api.total_requests == 0


@pytest.mark.parametrize("key", ["", "qi_test_wrong"])
def test_discover_with_a_missing_or_refused_key_is_a_configuration_error(
    settings: Any, verilock_api: InProcessVerilock, key: str
) -> None:
    settings.VERILOCK_API_KEY = key
    with pytest.raises(CommandError, match="VERILOCK_API_KEY") as caught:
        call_command("sync_verilock_sessions", "--discover", stdout=StringIO())
    assert caught.value.returncode == 2


def test_discover_json_prints_one_json_object(verilock_api: InProcessVerilock) -> None:
    verilock_api.seed(3)
    out = StringIO()
    call_command("sync_verilock_sessions", "--discover", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["mode"] == "discover"
    assert data["new"] == 3 and data["listed"] == 3 and data["failed"] == 0
    assert data["exit_code"] == 0


# -- a listing that does not advance, or does not end ----------------------------------


def test_a_provider_serving_one_full_page_forever_stops_after_a_few_pages(
    verilock_api: InProcessVerilock,
) -> None:
    verilock_api.seed(PAGE_SIZE)
    client = StuckClient()

    report = discover_sessions(client=client)

    # Page 1 is new; then STALE_PAGES pages in a row bring nothing new: stop, no head pass.
    assert client.pages == list(range(1, STALE_PAGES + 2))
    assert list_requests(verilock_api) == STALE_PAGES + 1
    assert not report.ok and report.list_error is not None
    assert "not advancing" in report.list_error and f"page {STALE_PAGES + 1}" in report.list_error
    assert not any(s.id in report.summary() for s in verilock_api.sessions)  # page numbers only
    # What page 1 brought is stored, its finished sessions fetched in full.
    assert report.created == PAGE_SIZE == Session.objects.count()
    finished = [s.id for s in verilock_api.sessions if s.status in FINISHED]
    assert finished and report.details.created == len(finished)
    assert all(verilock_api.requests_for(session_id) == 1 for session_id in finished)


def test_a_count_dropping_on_every_page_cannot_step_the_walk_back_for_ever(
    verilock_api: InProcessVerilock,
) -> None:
    # Each page's count is below the last one: sessions leaving, as far as the walk can tell,
    # so it steps back; the pages it re-reads bring nothing new, and it stops.
    verilock_api.seed(PAGE_SIZE)
    counts = iter(range(10**12, 0, -1))
    client = StuckClient(total=lambda: next(counts))

    report = discover_sessions(client=client)

    assert client.pages == [1, 2, 1, 2, 1, 2, 1]
    assert report.list_error is not None and "not advancing" in report.list_error
    assert report.created == PAGE_SIZE


@pytest.mark.parametrize("repeats", range(1, STALE_PAGES))
def test_whole_pages_of_sessions_created_between_reads_are_still_all_discovered(
    verilock_api: InProcessVerilock, repeats: int
) -> None:
    # A page of new sessions before each of the next reads pushes page 1's items onto them:
    # each such page repeats one already read; fewer than STALE_PAGES in a row is not a stop.
    verilock_api.seed(2 * PAGE_SIZE + 50)

    def create_a_page() -> None:
        for _ in range(PAGE_SIZE):
            verilock_api.add_session(status="created")

    client = ChangingClient({page: create_a_page for page in range(2, repeats + 2)})

    report = discover_sessions(client=client)

    assert report.ok, report.summary()
    assert set(Session.objects.values_list("id", flat=True)) == {
        s.id for s in verilock_api.sessions
    }
    assert report.created == 2 * PAGE_SIZE + 50 + repeats * PAGE_SIZE


def test_sessions_leaving_the_end_of_the_listing_step_the_walk_back_without_stopping_it(
    verilock_api: InProcessVerilock,
) -> None:
    # Retention at Verilock removes the oldest 250 (not listed yet) before page 4: the count
    # drops by 250, so the walk steps back three pages and reads them again, on purpose.
    verilock_api.seed(6 * PAGE_SIZE)
    oldest = [s.id for s in verilock_api.sessions[: 2 * PAGE_SIZE + 50]]

    def remove() -> None:
        with verilock_api.lock:
            for session_id in oldest:
                del verilock_api._sessions[session_id]

    client = ChangingClient({4: remove})
    report = discover_sessions(client=client)

    assert client.pages[:8] == [1, 2, 3, 4, 1, 2, 3, 4]
    assert report.ok, report.summary()
    assert set(Session.objects.values_list("id", flat=True)) == {
        s.id for s in verilock_api.sessions
    }


def test_a_head_pass_ends_at_a_page_without_one_readable_id(
    verilock_api: InProcessVerilock,
) -> None:
    verilock_api.seed(2 * PAGE_SIZE)
    head: list[int] = []  # pages of the head pass

    class UnreadableAfterTheHead(VerilockClient):
        """An honest walk; then a page of new sessions, and pages of items without an id
        whose bare ``meta.last_page`` is 10**10."""

        def list_sessions(self, *, page: int = 1, **kwargs: Any) -> dict[str, Any]:
            if head or (page == 1 and verilock_api.total_requests > 0):
                head.append(page)
                assert len(head) <= 10, "the head pass does not stop"
                if page > 1:
                    meta = {"current_page": page, "last_page": 10**10, "per_page": PAGE_SIZE}
                    return {"data": [{"id": None, "status": "created"}] * PAGE_SIZE, "meta": meta}
                if head == [1]:
                    for _ in range(PAGE_SIZE):
                        verilock_api.add_session(status="created")
            return super().list_sessions(page=page, **kwargs)

    report = discover_sessions(client=UnreadableAfterTheHead())

    # Page 1 of the head pass is all new; page 2 brings no readable id: the pass ends. The
    # next pass finds nothing new on page 1.
    assert head == [1, 2, 1]
    assert report.ok, report.summary()
    assert Session.objects.count() == 3 * PAGE_SIZE


@pytest.fixture
def seconds(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The run time limits' clock, simulated: moves only when a test moves it."""
    now = [0.0]
    monkeypatch.setattr(clock, "seconds", lambda: now[0])
    return now


def test_endless_fresh_pages_stop_at_max_runtime(
    verilock_api: InProcessVerilock, seconds: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    def a_new_page_taking_ten_seconds() -> None:
        seconds[0] += 10.0
        for _ in range(PAGE_SIZE):
            verilock_api.add_session(status="created")

    client = StuckClient(before=a_new_page_taking_ten_seconds)
    monkeypatch.setattr("verilock_django.client._default_client", client)
    out = StringIO()

    # Exits 0, as a refresh stopped by --max-runtime does.
    call_command("sync_verilock_sessions", "--discover", "--max-runtime", "35", stdout=out)

    # Pages requested at 0, 10, 20 and 30 s; at 40 s the limit (35 s) has passed.
    assert client.pages == [1, 2, 3, 4]
    assert Session.objects.count() == 4 * PAGE_SIZE
    assert (
        "stopped at the time limit after 4 page(s): the next run walks the list again"
        in out.getvalue()
    )


@pytest.mark.parametrize("discover", [True, False], ids=["discover", "refresh"])
def test_a_run_stopped_by_max_runtime_says_so_and_exits_0(
    verilock_api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch, discover: bool
) -> None:
    verilock_api.seed(5)
    for session in verilock_api.sessions:
        Session.objects.create(id=session.id)
    readings = iter(range(0, 10**6, 100))  # each reading 100 s after the one before
    monkeypatch.setattr(clock, "seconds", lambda: float(next(readings)))
    out = StringIO()
    args = ["--discover"] if discover else []

    call_command("sync_verilock_sessions", *args, "--max-runtime", "1", stdout=out)

    assert verilock_api.total_requests == 0
    assert "stopped at the time limit" in out.getvalue()
