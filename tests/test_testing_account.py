"""The fake account: creating sessions and moving them through their lifecycle."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from verilock_django.testing import FakeVerilock

from .fakes import get


def test_mixed_default_shape_serves_both_shapes() -> None:
    fake = FakeVerilock(default_shape="mixed")
    shapes = {s.shape for s in fake.seed(20)}
    assert shapes == {"a", "b"}


def test_extra_keywords_are_added_to_the_payload(fake: FakeVerilock) -> None:
    session = fake.add_session(status="approved", risk_score=3, type="identity")
    body = get(fake, f"/sessions/{session.id}").json()
    assert (body["risk_score"], body["type"]) == (3, "identity")


def test_advance_moves_created_to_processing_to_outcome_and_stops(fake: FakeVerilock) -> None:
    session = fake.add_session(status="created", outcome="declined")
    assert [fake.advance(session.id).status for _ in range(3)] == [
        "processing",
        "declined",
        "declined",
    ]
    body = get(fake, f"/sessions/{session.id}").json()
    assert body["status"] == "declined"
    assert body["completed_at"] is not None
    assert "declined" in {r["status"] for r in body["results"].values()}


def test_time_based_progression_follows_the_clock() -> None:
    now = [datetime(2026, 3, 15, 12, 0, tzinfo=timezone.utc)]
    fake = FakeVerilock(auto_advance_seconds=60, clock=lambda: now[0])
    session = fake.add_session(status="created", outcome="approved")
    assert get(fake, f"/sessions/{session.id}").json()["status"] == "created"
    now[0] += timedelta(seconds=61)
    assert get(fake, f"/sessions/{session.id}").json()["status"] == "processing"
    now[0] += timedelta(seconds=600)
    assert get(fake, f"/sessions/{session.id}").json()["status"] == "approved"


def test_advance_many_only_touches_unfinished_sessions(fake: FakeVerilock) -> None:
    done = fake.add_session(status="approved")
    todo = [fake.add_session(status="processing") for _ in range(3)]
    moved = fake.advance_many(2)
    assert [s.id for s in moved] == [todo[0].id, todo[1].id]
    assert fake.get(done.id).status == "approved"
    assert fake.get(todo[2].id).status == "processing"


def test_adding_a_session_twice_with_one_id_is_refused(fake: FakeVerilock) -> None:
    fake.add_session(id="ses_once")
    with pytest.raises(ValueError, match="already exists"):
        fake.add_session(id="ses_once")


@pytest.mark.parametrize(
    ("status", "after"),
    [("created", "processing"), ("in_progress", "processing"), ("review", "declined")],
)
def test_advance_follows_the_documented_lifecycle_order(
    fake: FakeVerilock, status: str, after: str
) -> None:
    # Statuses ranked before "processing" in statuses.py move to it; later ones to the outcome.
    session = fake.add_session(status=status, outcome="declined")
    assert fake.advance(session.id).status == after


def test_sessions_in_a_finished_status_never_move(fake: FakeVerilock) -> None:
    for status in ("approved", "declined", "expired"):
        session = fake.add_session(status=status, outcome="approved")
        assert session.is_finished
        assert fake.advance(session.id).status == status
    assert fake.webhook_events == []
