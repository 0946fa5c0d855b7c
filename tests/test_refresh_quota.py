"""The batch refresh's cost: listings filtered by status, a provider that ignores the filter,
and a run that stops at its window and the next one that continues where it stopped."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from verilock_django import clock
from verilock_django.client import VerilockClient
from verilock_django.listing import Walk, plan_walks
from verilock_django.models import Session
from verilock_django.refresh import refresh_unfinished
from verilock_django.store import store_session
from verilock_django.testing.responses_api import InProcessVerilock

pytestmark = pytest.mark.django_db

LAST_WEEK = timezone.now() - dt.timedelta(days=7)


def mirror(api: InProcessVerilock, count: int, status: str, *, offset: int = 0) -> list[str]:
    """``count`` sessions in ``status`` at the fake, stored as a past sync left them."""
    ids = [
        api.add_session(status=status, created_at=LAST_WEEK + dt.timedelta(minutes=offset + i)).id
        for i in range(count)
    ]
    for session_id in ids:
        store_session(api.payload(session_id))
    api.reset_counters()
    return ids


def listings(api: InProcessVerilock) -> list[dict[str, str]]:
    """The query of every list request, in order."""
    return [
        {key: values[-1] for key, values in parse_qs(r.query).items()}
        for r in api.requests
        if r.session_id is None and r.path == "/sessions"
    ]


def fetched(api: InProcessVerilock) -> list[str]:
    return [r.session_id for r in api.requests if r.session_id]


def assert_mirrored(api: InProcessVerilock, ids: list[str]) -> None:
    for session_id in ids:
        assert Session.objects.get(pk=session_id).status == api.get(session_id).status


def test_the_list_walk_costs_what_the_unfinished_sessions_need(
    verilock_api: InProcessVerilock,
) -> None:
    ids = mirror(verilock_api, 250, "processing")
    for _ in range(1000):  # the account's history: newer sessions, all finished
        verilock_api.add_session(status="approved")
    changed = ids[::25]  # k = 10, all finished now: they leave the listing
    verilock_api.advance_many(ids=changed)

    report = refresh_unfinished()

    pages = listings(verilock_api)
    assert [(q["status"], q["page"]) for q in pages] == [("processing", str(n)) for n in (1, 2, 3)]
    assert all(q["from"] == LAST_WEEK.date().isoformat() for q in pages)
    assert sorted(fetched(verilock_api)) == sorted(changed)
    assert report.requests <= len(changed) + math.ceil(250 / 100) + 2
    assert report.synced == 10 and report.confirmed == 240 and not report.failed
    assert_mirrored(verilock_api, ids)


def test_each_unfinished_status_has_its_own_listing(verilock_api: InProcessVerilock) -> None:
    created = mirror(verilock_api, 120, "created")
    processing = mirror(verilock_api, 130, "processing", offset=200)
    moved, finished = created[:10], processing[:10]
    verilock_api.advance_many(ids=moved + finished)  # created → processing → approved

    report = refresh_unfinished()

    pages = listings(verilock_api)
    # The oldest "from" first; one listing per status, each as long as its sessions need.
    assert [(q["status"], q["page"]) for q in pages] == [
        ("created", "1"),
        ("created", "2"),
        ("processing", "1"),
        ("processing", "2"),
    ]
    assert sorted(fetched(verilock_api)) == sorted(moved + finished)
    k = len(moved) + len(finished)
    assert report.requests <= k + math.ceil(250 / 100) + 2
    assert report.confirmed == 230 and report.synced == k
    assert_mirrored(verilock_api, created + processing)


def test_a_provider_that_ignores_the_filter_still_reconciles_every_session(
    verilock_api: InProcessVerilock,
) -> None:
    verilock_api.status_filter = False
    created = mirror(verilock_api, 5, "created")
    processing = mirror(verilock_api, 5, "processing", offset=10)
    for _ in range(20):
        verilock_api.add_session(status="declined")
    changed = [created[0], created[1], processing[0], processing[1]]
    verilock_api.advance_many(ids=changed)

    report = refresh_unfinished()

    # The first listing showed every status: no second listing, no session fetched twice.
    assert [q["status"] for q in listings(verilock_api)] == ["created"]
    assert sorted(fetched(verilock_api)) == sorted(changed)
    assert report.confirmed == 6 and report.synced == 4
    assert_mirrored(verilock_api, created + processing)


def test_sessions_of_a_completed_gen_b_lifecycle_are_listed_as_completed() -> None:
    # A Gen B "completed" session with a decision is stored under its decision as status.
    base = {"created_at": LAST_WEEK, "data_fetched_at": LAST_WEEK}
    Session.objects.create(id="ses_review", status="review", decision="review", **base)
    Session.objects.create(id="ses_open", status="in_progress", **base)
    Session.objects.create(id="ses_never")  # no creation date: not listable
    Session.objects.create(id="ses_done", status="approved", decision="approved", **base)

    day = LAST_WEEK.astimezone(dt.timezone.utc).date().isoformat()
    assert sorted(plan_walks(), key=lambda w: w.status) == [
        Walk("completed", day),
        Walk("in_progress", day),
    ]


def test_a_run_stopped_by_its_window_is_continued_by_the_next_oldest_data_first(
    verilock_api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = mirror(verilock_api, 12, "processing")
    hour_ago = clock.now() - dt.timedelta(hours=1)
    oldest_first = list(reversed(ids))
    for minutes, session_id in enumerate(oldest_first):  # ids[-1] has the oldest data
        Session.objects.filter(pk=session_id).update(
            data_fetched_at=hour_ago - dt.timedelta(minutes=12 - minutes)
        )
    for session_id in ids:  # a step-only change: only a fetch by id can see it
        verilock_api.get(session_id).results["aml"] = {"status": "approved", "score": 0.01}
    # Each fetch takes 10 s of this run's (simulated) window. (Per fetch, not per stored
    # session: answers are stored in batches, after several fetches.)
    now = [0.0]
    monkeypatch.setattr(clock, "seconds", lambda: now[0])
    get_session = VerilockClient.get_session

    def slow_get_session(client: VerilockClient, session_id: str) -> Any:
        now[0] += 10.0
        return get_session(client, session_id)

    monkeypatch.setattr(VerilockClient, "get_session", slow_get_session)

    first = refresh_unfinished(max_runtime=35, concurrency=1)

    done = fetched(verilock_api)
    assert first.stopped and "stopped at the time limit" in first.summary()
    assert 0 < len(done) < len(ids) and first.synced == len(done)
    assert sorted(done) == sorted(oldest_first[: len(done)])  # the oldest data first
    assert first.stale_left == len(ids) - len(done)
    assert f"{first.stale_left} with old data left for the next run" in first.summary()

    verilock_api.reset_counters()
    second = refresh_unfinished()

    rest = fetched(verilock_api)
    assert sorted(rest) == sorted(oldest_first[len(done) :])  # where the first one stopped
    assert not second.stopped and second.stale_left == 0
    for session_id in ids:
        step = Session.objects.get(pk=session_id).results.get(step="aml")
        assert (step.status, step.score) == ("approved", 0.01)


def test_the_budget_sizes_on_the_window_and_leaves_a_share_of_the_quota(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    # 120 a minute over a 60 s window: 80 % is 96 requests, less the 1 list request.
    settings.VERILOCK_RATE_LIMIT_PER_MINUTE = 120  # the documented quota (tests raise it)
    settings.VERILOCK_RECHECK_MIN_INTERVAL = 60
    ids = mirror(verilock_api, 100, "processing")
    Session.objects.update(data_fetched_at=clock.now() - dt.timedelta(hours=1))

    report = refresh_unfinished()

    assert len(fetched(verilock_api)) == 95 and report.requests == 96
    assert report.stale_left == 5 and report.confirmed == len(ids)


def test_a_limit_announced_beyond_any_quota_still_sizes_a_budget(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    settings.VERILOCK_RATE_LIMIT_PER_MINUTE = None  # the default: the API's own limit
    ids = mirror(verilock_api, 5, "processing")
    Session.objects.update(data_fetched_at=clock.now() - dt.timedelta(hours=1))
    verilock_api.state.rate_limit_per_minute = 10**308  # "X-RateLimit-Limit: 1000…0"
    client = VerilockClient()

    report = refresh_unfinished(client=client)  # the list page announces it

    assert client.rate_limit > 10**6
    assert report.ok and report.confirmed == len(ids) and report.stale_left == 0
    assert sorted(fetched(verilock_api)) == sorted(ids)  # by age, all within the budget
    assert_mirrored(verilock_api, ids)


def test_a_session_refreshed_by_age_that_then_finishes_is_fetched_by_the_next_run(
    verilock_api: InProcessVerilock,
) -> None:
    (session_id,) = mirror(verilock_api, 1, "processing")
    Session.objects.update(data_fetched_at=clock.now() - dt.timedelta(hours=1))
    refresh_unfinished()  # confirmed by the list, then fetched by age: unchanged
    assert fetched(verilock_api) == [session_id]
    row = Session.objects.get()
    assert row.unchanged_checks == 1 and row.next_check_at > clock.now()  # type: ignore[operator]

    verilock_api.advance(session_id)  # decided: it leaves the "processing" listing
    verilock_api.reset_counters()
    refresh_unfinished()

    assert fetched(verilock_api) == [session_id]  # at once, the backoff notwithstanding
    assert_mirrored(verilock_api, [session_id])


def test_rows_never_fetched_are_all_fetched_whatever_the_by_age_budget(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    # 5 a minute over a 60 s window: a by-age budget of 4; the 5 rows have no data at all.
    settings.VERILOCK_RATE_LIMIT_PER_MINUTE = 5
    settings.VERILOCK_RECHECK_MIN_INTERVAL = 60
    ids = [verilock_api.add_session(status="processing").id for _ in range(5)]
    for session_id in ids:
        Session.objects.create(id=session_id)  # registered by id, never fetched

    report = refresh_unfinished()

    assert sorted(fetched(verilock_api)) == sorted(ids) and report.created + report.updated == 5
    assert listings(verilock_api) == []  # nothing listable yet
    assert_mirrored(verilock_api, ids)


def test_sessions_that_keep_failing_wait_for_their_backoff_and_leave_the_budget_to_others(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    # 60 a minute over a 5 s window: 4 requests, 1 list page, so 3 by-age fetches a run.
    settings.VERILOCK_RATE_LIMIT_PER_MINUTE = 60
    settings.VERILOCK_RECHECK_MIN_INTERVAL = 600  # the first failure's backoff: 10 min
    settings.VERILOCK_RECHECK_MAX_INTERVAL = 3600
    settings.VERILOCK_MAX_RETRIES = 0
    ids = mirror(verilock_api, 8, "processing")
    hour_ago = clock.now() - dt.timedelta(hours=1)
    for minutes, session_id in enumerate(ids):  # ids[-1] has the oldest data
        Session.objects.filter(pk=session_id).update(
            data_fetched_at=hour_ago - dt.timedelta(minutes=minutes)
        )
    failing, healthy = ids[-3:], ids[:-3]
    for session_id in failing:
        verilock_api.fail_next(session_id, status=500, times=100)

    runs = []
    for _ in range(3):
        verilock_api.reset_counters()
        report = refresh_unfinished(max_runtime=5)
        runs.append(sorted(fetched(verilock_api)))
        assert report.confirmed == len(ids)  # the list shows all of them, unchanged

    assert runs[0] == sorted(failing)  # the oldest data first: they fail
    assert runs[1] == sorted(healthy[-3:]) and runs[2] == sorted(healthy[:2])
    for row in Session.objects.filter(pk__in=failing):
        # The listing cleared the error text, not the failure's backoff.
        assert row.last_sync_error == "" and row.failed_checks == 1
        assert row.next_check_at > clock.now() + dt.timedelta(minutes=9)  # type: ignore[operator]
    assert set(Session.objects.filter(pk__in=healthy).values_list("failed_checks", flat=True)) == {
        0
    }

    # Their backoff passes: the next run retries them (the oldest data), and the next
    # failure doubles the backoff.
    Session.objects.filter(pk__in=failing).update(next_check_at=clock.now())
    verilock_api.reset_counters()
    refresh_unfinished(max_runtime=5)
    assert sorted(fetched(verilock_api)) == sorted(failing)
    for row in Session.objects.filter(pk__in=failing):
        assert row.failed_checks == 2
        assert row.next_check_at > clock.now() + dt.timedelta(minutes=19)  # type: ignore[operator]

    # Fetched fine after the backoff: the count starts again.
    verilock_api.clear_faults()
    Session.objects.filter(pk__in=failing).update(next_check_at=clock.now())
    verilock_api.reset_counters()
    refresh_unfinished(max_runtime=5)
    assert sorted(fetched(verilock_api)) == sorted(failing)
    assert set(Session.objects.filter(pk__in=failing).values_list("failed_checks", flat=True)) == {
        0
    }


def test_a_gen_b_session_in_review_listed_without_a_decision_is_not_fetched_every_run(
    verilock_api: InProcessVerilock,
) -> None:
    remote = verilock_api.add_session(status="completed", shape="b", decision="review")
    store_session(verilock_api.payload(remote.id))
    assert Session.objects.get().status == "review"
    verilock_api.reset_counters()

    for _ in range(4):
        report = refresh_unfinished()
        assert report.confirmed == 1

    assert fetched(verilock_api) == []  # listed "completed" as it was: confirmed, not fetched
    assert [q["status"] for q in listings(verilock_api)] == ["completed"] * 4

    # Still unchanged, it gets its by-age refresh like any session.
    Session.objects.update(data_fetched_at=clock.now() - dt.timedelta(hours=1))
    refresh_unfinished()
    assert fetched(verilock_api) == [remote.id]

    assert Session.objects.get().status == "review"


@pytest.mark.parametrize(
    "listed",
    [
        {},  # no status at all: the item confirms nothing
        {"status": "PROCESSING"},  # another vocabulary than the session's own
    ],
)
def test_a_list_that_disagrees_with_the_sessions_costs_no_fetch_each_run(
    verilock_api: InProcessVerilock, listed: dict[str, str]
) -> None:
    ids = mirror(verilock_api, 30, "processing")
    fetches = []
    for _ in range(4):
        verilock_api.reset_counters()
        items = [{"id": session_id, **listed} for session_id in ids]
        meta = {"current_page": 1, "last_page": 1, "per_page": 100, "total": len(ids)}
        verilock_api.respond_next(json={"data": items, "meta": meta})
        report = refresh_unfinished()
        assert report.ok and report.confirmed == 0 and not report.skipped
        fetches.append(len(fetched(verilock_api)))

    # Fetched until found unchanged twice, then the by-id backoff applies, as to sessions
    # the list leaves out (each was taken for a change: all fetched again on every run).
    assert fetches == [30, 30, 0, 0]
    assert_mirrored(verilock_api, ids)

    # Its backoff over, a session is fetched again, and a real change is seen.
    verilock_api.advance(ids[0])
    Session.objects.filter(pk=ids[0]).update(next_check_at=clock.now())
    verilock_api.reset_counters()
    meta.update(total=1)
    verilock_api.respond_next(json={"data": [{"id": ids[0], **listed}], "meta": meta})
    refresh_unfinished()
    assert fetched(verilock_api) == [ids[0]]
    assert_mirrored(verilock_api, ids)
