"""The fake's REST routes: reading, listing, creating and submitting sessions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from verilock_django.testing import FakeVerilock

from .fakes import BEARER, api, get, post


def test_unknown_session_is_a_documented_404(fake: FakeVerilock) -> None:
    response = get(fake, "/sessions/ses_missing")
    assert response.status == 404
    body = response.json()
    assert body["error"] == "not_found" and body["details"] is None
    assert "ses_missing" in body["message"]


def test_session_is_served_in_its_own_shape(fake: FakeVerilock) -> None:
    a = fake.add_session(status="approved", shape="a")
    b = fake.add_session(status="approved", shape="b")
    assert get(fake, f"/sessions/{a.id}").json()["results"]["face_match"]["score"] == 0.97
    body_b = get(fake, f"/sessions/{b.id}").json()
    assert "results" not in body_b
    assert (body_b["status"], body_b["decision"]) == ("completed", "approved")


def _listing(fake: FakeVerilock, query: str) -> dict[str, Any]:
    response = get(fake, "/sessions", query)
    assert response.status == 200, response.body
    result: dict[str, Any] = response.json()
    return result


def test_list_paginates_with_meta_and_newest_first(fake: FakeVerilock) -> None:
    base = datetime(2026, 3, 1, tzinfo=timezone.utc)
    made = [fake.add_session(created_at=base + timedelta(hours=i)) for i in range(35)]
    page = _listing(fake, "page=2&per_page=10")
    assert page["meta"] == {"current_page": 2, "last_page": 4, "per_page": 10, "total": 35}
    assert [item["id"] for item in page["data"]] == [s.id for s in reversed(made)][10:20]
    assert _listing(fake, "page=4&per_page=10")["data"][-1]["id"] == made[0].id
    assert _listing(fake, "page=9&per_page=10")["data"] == []
    assert _listing(fake, "")["meta"]["per_page"] == 15


def test_list_clamps_per_page_to_100(fake: FakeVerilock) -> None:
    fake.seed(120)
    page = _listing(fake, "per_page=500")
    assert page["meta"]["per_page"] == 100
    assert len(page["data"]) == 100
    assert page["meta"]["last_page"] == 2


def test_list_items_have_no_results_or_hosted_url(fake: FakeVerilock) -> None:
    fake.add_session(status="approved", shape="a")
    item = _listing(fake, "")["data"][0]
    assert "results" not in item and "hosted_url" not in item
    assert set(item["applicant"]) == {"first_name", "last_name", "email"}


def test_list_filters_by_status_and_creation_dates(fake: FakeVerilock) -> None:
    day = datetime(2026, 3, 10, 23, 59, tzinfo=timezone.utc)
    inside = fake.add_session(status="approved", created_at=day)
    fake.add_session(status="processing", created_at=day)
    fake.add_session(status="approved", created_at=day + timedelta(days=2))
    fake.add_session(status="approved", created_at=day - timedelta(days=2))
    found = _listing(fake, "status=approved&from=2026-03-10&to=2026-03-10")
    assert [item["id"] for item in found["data"]] == [inside.id]
    assert found["meta"]["total"] == 1


def test_list_status_filter_understands_gen_b_lifecycle_status(fake: FakeVerilock) -> None:
    b = fake.add_session(status="declined", shape="b")
    fake.add_session(status="processing", shape="b")
    assert [i["id"] for i in _listing(fake, "status=completed")["data"]] == [b.id]
    assert [i["id"] for i in _listing(fake, "status=declined")["data"]] == [b.id]


@pytest.mark.parametrize(
    ("query", "field"),
    [("page=0", "page"), ("per_page=abc", "per_page"), ("from=10-03-2026", "from")],
)
def test_list_rejects_bad_parameters_with_422_details(
    fake: FakeVerilock, query: str, field: str
) -> None:
    response = get(fake, "/sessions", query)
    assert response.status == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert list(body["details"]) == [field]


def test_list_filters_by_decision_and_external_id(fake: FakeVerilock) -> None:
    kept = fake.add_session(status="approved", reference_id="usr_keep")
    fake.add_session(status="declined", reference_id="usr_keep")
    fake.add_session(status="approved", reference_id="usr_other")

    listed = api(fake, "GET", "/sessions", query="decision=approved&external_id=usr_keep")
    assert [item["id"] for item in listed.json()["data"]] == [kept.id]


def test_create_gen_a_echoes_the_session_and_serves_it_in_shape_a(fake: FakeVerilock) -> None:
    response = post(
        fake,
        "/sessions",
        {
            "type": "kyc",
            "reference_id": "usr_1",
            "steps": ["document", "selfie"],
            "applicant": {"first_name": "Ana", "last_name": "Lima", "email": "ana@example.com"},
        },
    )
    assert response.status == 201
    body = response.json()
    assert body["status"] == "created"
    assert body["hosted_url"] == f"https://verilock.io/verify/{body['id']}"
    assert body["steps"] == ["document", "selfie"]
    stored = get(fake, f"/sessions/{body['id']}").json()
    assert stored["reference_id"] == "usr_1"
    assert stored["results"] == {
        "document": {"status": "not_started"},
        "selfie": {"status": "not_started"},
    }


def test_create_gen_b_returns_token_and_url(fake: FakeVerilock) -> None:
    response = post(
        fake,
        "/sessions",
        {
            "profile_id": "0b5d3c8e-7f4a-4e21-9c1d-2f6a8b9e0c13",
            "applicant_name": "Ana Lima",
            "external_id": "u1",
        },
    )
    assert response.status == 201
    body = response.json()
    assert set(body) == {"id", "session_token", "session_url", "status", "expires_at"}
    assert body["session_url"].endswith(body["session_token"])
    stored = get(fake, f"/sessions/{body['id']}").json()
    assert (stored["external_id"], stored["applicant_name"]) == ("u1", "Ana Lima")


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"type": "kyc", "steps": ["dance"], "applicant": {}}, {"steps", "applicant.first_name"}),
        ({"type": "kyc", "applicant": {"first_name": "A", "last_name": "B", "email": "e"}},
         {"steps"}),
        ({"profile_id": "p", "expires_in": 10}, {"profile_id", "expires_in"}),
        ({"profile_id": "p", "redirect_url": "not a url"}, {"redirect_url"}),
        ({"applicant_name": "X"}, {"profile_id"}),
    ],
)  # fmt: skip
def test_create_validation_errors_name_the_fields(
    fake: FakeVerilock, data: dict[str, Any], fields: set[str]
) -> None:
    response = post(fake, "/sessions", data)
    assert response.status == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["message"] == "The given data was invalid."
    assert fields <= set(body["details"])
    assert all(isinstance(messages, list) for messages in body["details"].values())
    assert fake.sessions == []


def test_create_with_a_body_that_is_not_json_is_400(fake: FakeVerilock) -> None:
    response = fake.handle("POST", "/sessions", "", BEARER, b"{nope")
    assert response.status == 400


#: The documented create bodies of each generation (Gen A: type/steps/applicant{};
#: Gen B: profile_id plus flat applicant fields).
VALID_CREATE: dict[str, Any] = {
    "type": "kyc",
    "steps": ["document", "selfie"],
    "applicant": {"first_name": "Jean", "last_name": "Dupont", "email": "jean@example.com"},
}


VALID_CREATE_B: dict[str, Any] = {
    "profile_id": "0b5d3c8e-7f4a-4e21-9c1d-2f6a8b9e0c13",
    "applicant_name": "Jean Dupont",
}


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


def test_submit_moves_a_created_session_to_processing(fake: FakeVerilock) -> None:
    session = fake.add_session(status="created")
    response = fake.handle("POST", f"/sessions/{session.id}/submit", "", BEARER, b"")
    assert response.status == 200
    assert response.json()["status"] == "processing"
    assert fake.get(session.id).status == "processing"
    fake.complete(session.id, "approved")
    again = fake.handle("POST", f"/sessions/{session.id}/submit", "", BEARER, b"")
    assert (again.status, again.json()["error"]) == (409, "conflict")


def test_wrong_method_is_405_with_the_error_body(fake: FakeVerilock) -> None:
    response = fake.handle("DELETE", "/sessions", "", BEARER, b"")
    assert response.status == 405
    assert response.json()["error"] == "method_not_allowed"


def test_submitting_a_finished_session_is_a_conflict(fake: FakeVerilock) -> None:
    session = fake.add_session(status="approved")
    response = api(fake, "POST", f"/sessions/{session.id}/submit")
    assert response.status == 409
    assert api(fake, "PUT", f"/sessions/{session.id}/submit").status == 405
