"""The fake Verilock account's control API and its validation of what a client sends.

These behaviours are what demos and users' tests rely on: a malformed control call or
API request gets the error the real service would give, never a silent success.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from verilock_django.testing import FakeResponse, FakeVerilock

KEY = {"X-API-Key": "qi_test_fake"}


def control(fake: FakeVerilock, method: str, path: str, body: Any = None) -> FakeResponse:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return fake.handle_control(method, path, "", {}, raw)


def api(
    fake: FakeVerilock, method: str, path: str, body: Any = None, query: str = ""
) -> FakeResponse:
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return fake.handle(method, path, query, KEY, raw)


@pytest.fixture
def fake() -> Any:
    account = FakeVerilock()
    yield account
    account.close()


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


def test_adding_a_session_twice_with_one_id_is_refused(fake: FakeVerilock) -> None:
    fake.add_session(id="ses_once")
    with pytest.raises(ValueError, match="already exists"):
        fake.add_session(id="ses_once")


def test_submitting_a_finished_session_is_a_conflict(fake: FakeVerilock) -> None:
    session = fake.add_session(status="approved")
    response = api(fake, "POST", f"/sessions/{session.id}/submit")
    assert response.status == 409
    assert api(fake, "PUT", f"/sessions/{session.id}/submit").status == 405


def test_list_filters_by_decision_and_external_id(fake: FakeVerilock) -> None:
    kept = fake.add_session(status="approved", reference_id="usr_keep")
    fake.add_session(status="declined", reference_id="usr_keep")
    fake.add_session(status="approved", reference_id="usr_other")

    listed = api(fake, "GET", "/sessions", query="decision=approved&external_id=usr_keep")
    assert [item["id"] for item in listed.json()["data"]] == [kept.id]


#: The documented create bodies of each generation (Gen A: type/steps/applicant{};
#: Gen B: profile_id plus flat applicant fields).
VALID_CREATE: dict[str, Any] = {
    "type": "kyc",
    "steps": ["document", "selfie"],
    "applicant": {"first_name": "Jean", "last_name": "Dupont", "email": "jean@example.com"},
}
VALID_CREATE_B: dict[str, Any] = {"profile_id": "prof_1", "applicant_name": "Jean Dupont"}


@pytest.mark.parametrize(
    ("valid", "changes", "field"),
    [
        (VALID_CREATE, {"type": "kyb"}, "type"),
        (VALID_CREATE, {"applicant": None}, "applicant"),
        (VALID_CREATE_B, {"metadata": ["a"]}, "metadata"),
        (VALID_CREATE_B, {"external_id": 42}, "external_id"),
        (VALID_CREATE_B, {"expires_in": 60}, "expires_in"),
    ],
)
def test_creating_a_session_validates_the_body_like_the_api(
    fake: FakeVerilock, valid: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    assert api(fake, "POST", "/sessions", valid).status == 201
    response = api(fake, "POST", "/sessions", {**valid, **changes})
    assert response.status == 422
    assert field in response.json()["details"]
    assert len(fake.sessions) == 1


def test_creating_a_session_needs_a_json_object(fake: FakeVerilock) -> None:
    assert api(fake, "POST", "/sessions", b"[]").status == 422
    assert api(fake, "POST", "/sessions", b"{oops").status == 400
    assert api(fake, "POST", "/sessions", VALID_CREATE).status == 201
