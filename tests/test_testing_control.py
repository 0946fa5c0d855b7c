"""The fake account's control API (``/_fake``), called directly.

These behaviours are what demos and users' tests rely on: a malformed control call gets
the error the real service would give, never a silent success.
"""

from __future__ import annotations

from typing import Any

import pytest

from verilock_django.testing import FakeVerilock

from .fakes import api, control, get


def test_control_api_drives_the_account_without_a_key(fake: FakeVerilock) -> None:
    created = control(fake, "POST", "/sessions", {"status": "processing", "count": 2}).json()
    first, second = created["ids"]
    completed = control(fake, "POST", f"/sessions/{first}/complete", {"status": "declined"})
    assert completed.json()["status"] == "declined"
    assert control(fake, "POST", "/advance", {"ids": [second]}).json()["sessions"] == [
        {"id": second, "status": "approved"}
    ]
    control(fake, "POST", "/faults", {"kind": "status", "status": 500, "session_id": first})
    assert get(fake, f"/sessions/{first}").status == 500
    stats = control(fake, "GET", "/stats").json()
    assert stats["total_requests"] == 1
    assert stats["requests_by_session"] == {first: 1}
    assert stats["by_status"] == {"declined": 1, "approved": 1}


def test_control_api_errors(fake: FakeVerilock) -> None:
    assert control(fake, "POST", "/sessions/ses_nope/complete", {}).status == 404
    assert control(fake, "POST", "/sessions", {"colour": "red"}).status == 422
    assert control(fake, "GET", "/nothing").status == 404


def test_control_seeds_lists_and_moves_sessions(fake: FakeVerilock) -> None:
    seeded = control(fake, "POST", "/seed", {"count": 3})
    assert seeded.status == 201
    ids = seeded.json()["ids"]
    assert [s["id"] for s in control(fake, "GET", "/sessions").json()["data"]] == sorted(
        ids, key=lambda i: (fake.get(i).created_at, i)
    )

    fresh = control(fake, "POST", "/sessions", {"status": "created"}).json()["ids"][0]
    assert control(fake, "POST", f"/sessions/{fresh}/advance").json()["status"] == "processing"
    assert control(fake, "POST", f"/sessions/{fresh}/expire").json()["status"] == "expired"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/seed", b"{not json", 400),
        ("POST", "/seed", [1, 2], 400),
        ("POST", "/sessions/ses_missing/advance", None, 404),
        ("POST", "/sessions", {"colour": "blue"}, 422),
        ("GET", "/nowhere", None, 404),
    ],
)
def test_control_refuses_bad_calls_with_the_matching_status(
    fake: FakeVerilock, method: str, path: str, body: Any, status: int
) -> None:
    assert control(fake, method, path, body).status == status


def test_unknown_action_on_a_session_is_not_found(fake: FakeVerilock) -> None:
    session = fake.add_session()
    response = control(fake, "POST", f"/sessions/{session.id}/approve")
    assert response.status == 404
    assert "Unknown action approve" in response.json()["message"]


def test_faults_can_be_cleared_before_they_fire(fake: FakeVerilock) -> None:
    session = fake.add_session()
    assert control(fake, "POST", "/faults", {"status": 500, "times": 2}).json() == {"pending": 1}
    assert control(fake, "DELETE", "/faults").json() == {"pending": 0}
    assert api(fake, "GET", f"/sessions/{session.id}").status == 200


def test_control_lists_webhook_events_and_deliveries(fake: FakeVerilock) -> None:
    listing = control(fake, "GET", "/webhooks").json()
    assert listing == {"events": [], "deliveries": []}
