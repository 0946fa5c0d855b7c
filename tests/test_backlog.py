"""Standings of unfinished sessions: one query whatever the number of rows, first case wins."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from verilock_django import backlog
from verilock_django.models import Session

pytestmark = pytest.mark.django_db

NOW = timezone.now()
BEFORE = NOW - dt.timedelta(minutes=10)  # when the run began
EARLIER = NOW - dt.timedelta(hours=1)
LATER = NOW + dt.timedelta(minutes=5)


def make(session_id: str, **fields: Any) -> None:
    Session.objects.create(id=session_id, **fields)


def test_after_a_run_each_unfinished_session_has_exactly_one_standing(
    django_assert_num_queries: Any,
) -> None:
    make("ses_fetched", last_synced_at=NOW, data_fetched_at=NOW, next_check_at=LATER)
    make("ses_confirmed", last_synced_at=NOW, data_fetched_at=EARLIER, next_check_at=LATER)
    # Missing wins over a live lease and a later check.
    make("ses_missing", missing_since=EARLIER, lease_expires_at=LATER, next_check_at=LATER)
    make("ses_held", lease_expires_at=LATER, next_check_at=EARLIER)
    make("ses_not_due", last_synced_at=EARLIER, next_check_at=LATER)
    make("ses_not_due_2", next_check_at=LATER + dt.timedelta(hours=1))
    make("ses_left", next_check_at=EARLIER)
    make("ses_never", lease_expires_at=EARLIER)  # an expired lease holds nothing
    make("ses_failed", next_check_at=LATER)  # this run failed it: the run reports it
    make("ses_done", status="approved", next_check_at=EARLIER)

    with django_assert_num_queries(1):
        standings = backlog.after_run(BEFORE, NOW, failed={"ses_failed": "boom"})

    assert standings.counts == {
        "fetched": 1, "confirmed": 1, "missing": 1, "held": 1, "not_due": 2, "left": 2,
    }  # fmt: skip
    assert standings.next_check_at == LATER
    rows = {
        row.session_id: row.standing
        for row in backlog.sessions(BEFORE, NOW, failed={"ses_failed"})
    }
    assert rows == {
        "ses_fetched": "fetched",
        "ses_confirmed": "confirmed",
        "ses_missing": "missing",
        "ses_held": "held",
        "ses_not_due": "not_due",
        "ses_not_due_2": "not_due",
        "ses_left": "left",
        "ses_never": "left",
    }


def test_the_query_count_does_not_grow_with_the_rows(django_assert_num_queries: Any) -> None:
    Session.objects.bulk_create(
        [Session(id=f"ses_{n:04}", next_check_at=LATER if n % 2 else None) for n in range(300)]
    )
    with django_assert_num_queries(1):
        standings = backlog.plan(NOW, full=False)
    assert (standings["new"], standings["not_due"], standings.total) == (150, 150, 300)


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        (True, {"missing": 1, "held": 1, "fetch": 5}),
        (False, {"missing": 1, "held": 1, "new": 1, "listed_due": 1, "listed": 1, "due": 1,
                 "not_due": 1}),
    ],
)  # fmt: skip
def test_a_plan_sorts_what_is_sure_from_what_the_list_decides(
    full: bool, expected: dict[str, int]
) -> None:
    make("ses_missing", missing_since=EARLIER, created_at=EARLIER)
    make("ses_held", lease_expires_at=LATER, created_at=EARLIER)
    make("ses_new")
    make("ses_listed_due", created_at=EARLIER, next_check_at=EARLIER)
    make("ses_listed", created_at=EARLIER, next_check_at=LATER)
    make("ses_due", next_check_at=EARLIER)
    make("ses_not_due", next_check_at=LATER)

    standings = backlog.plan(NOW, full=full)

    assert {k: v for k, v in standings.counts.items() if v} == expected
    assert set(standings.counts) == set(backlog.BEFORE_RUN)


def test_many_failed_sessions_are_subtracted_chunk_by_chunk(
    monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    failed = {f"ses_failed_{n}": "timeout" for n in range(5)}
    for session_id in failed:
        make(session_id, next_check_at=LATER)  # where a failure leaves a session
    make("ses_not_due", next_check_at=LATER)
    make("ses_left", next_check_at=EARLIER)
    expected = backlog.after_run(BEFORE, NOW, failed=failed).counts

    monkeypatch.setattr(backlog, "EXCLUDE_CHUNK", 2)
    with django_assert_num_queries(1 + 3):  # everything, then 3 chunks of failed ids
        standings = backlog.after_run(BEFORE, NOW, failed=failed)

    assert standings.counts == expected
    assert (expected["not_due"], expected["left"]) == (1, 1)
    listed = [row.session_id for row in backlog.sessions(BEFORE, NOW, failed=failed)]
    assert listed == ["ses_left", "ses_not_due"]
