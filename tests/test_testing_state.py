"""The fake account's request handler, called directly (no network)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from verilock_django.testing.state import FakeResponse, FakeVerilock

KEY = "qi_test_key"
BEARER = {"Authorization": f"Bearer {KEY}"}


def get(fake: FakeVerilock, path: str, query: str = "", **headers: str) -> FakeResponse:
    return fake.handle("GET", path, query, headers or BEARER, b"")


def post(fake: FakeVerilock, path: str, data: Any) -> FakeResponse:
    return fake.handle("POST", path, "", BEARER, json.dumps(data).encode())


@pytest.fixture
def fake() -> Any:
    account = FakeVerilock(api_key=KEY)
    yield account
    account.close()


# --- authentication ---------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}, {"x-api-key": KEY}],
    ids=["bearer", "x-api-key", "lowercase"],
)
def test_accepts_either_documented_auth_header(
    fake: FakeVerilock, headers: dict[str, str]
) -> None:
    session = fake.add_session()
    response = fake.handle("GET", f"/sessions/{session.id}", "", headers, b"")
    assert response.status == 200
    assert response.json()["id"] == session.id


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": KEY}, {}],
    ids=["bearer", "x-api-key", "no-bearer-prefix", "missing"],
)
def test_rejects_a_wrong_or_missing_key_with_documented_401(
    fake: FakeVerilock, headers: dict[str, str]
) -> None:
    response = fake.handle("GET", "/sessions", "", headers, b"")
    assert response.status == 401
    assert response.json() == {
        "error": "authentication_error",
        "message": "Invalid or missing API key.",
        "details": None,
    }
    assert response.headers["X-Request-Id"].startswith("req_")


def test_auth_styles_can_be_restricted_to_bearer() -> None:
    fake = FakeVerilock(api_key=KEY, auth_styles=("bearer",))
    assert get(fake, "/sessions", **{"X-API-Key": KEY}).status == 401
    assert get(fake, "/sessions").status == 200


def test_every_response_has_a_distinct_request_id(fake: FakeVerilock) -> None:
    ids = {get(fake, "/sessions").headers["X-Request-Id"] for _ in range(5)}
    ids.add(get(fake, "/sessions/nope").headers["X-Request-Id"])
    assert len(ids) == 6


# --- rate limit -------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after_and_documented_body() -> None:
    fake = FakeVerilock(api_key=KEY, rate_limit_per_minute=3)
    remaining = [get(fake, "/sessions").headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    limited = get(fake, "/sessions")
    assert limited.status == 429
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert limited.json() == {
        "error": "rate_limit_exceeded",
        "message": f"Too many requests. Please retry after {retry_after} seconds.",
        "details": {"retry_after": retry_after},
    }


def test_requests_with_a_wrong_key_do_not_use_up_the_rate_limit() -> None:
    fake = FakeVerilock(api_key=KEY, rate_limit_per_minute=1)
    for _ in range(3):
        assert get(fake, "/sessions", Authorization="Bearer nope").status == 401
    assert get(fake, "/sessions").status == 200


# --- GET /sessions/{id} -----------------------------------------------------------


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


def test_mixed_default_shape_serves_both_shapes() -> None:
    fake = FakeVerilock(default_shape="mixed")
    shapes = {s.shape for s in fake.seed(20)}
    assert shapes == {"a", "b"}


def test_extra_keywords_are_added_to_the_payload(fake: FakeVerilock) -> None:
    session = fake.add_session(status="approved", risk_score=3, type="identity")
    body = get(fake, f"/sessions/{session.id}").json()
    assert (body["risk_score"], body["type"]) == (3, "identity")


# --- progression ------------------------------------------------------------------


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


def test_complete_sets_results_and_emits_webhook_events(fake: FakeVerilock) -> None:
    session = fake.add_session(status="processing")
    fake.complete(session.id, "approved")
    body = fake.payload(session.id)
    assert {r["status"] for r in body["results"].values()} == {"approved"}
    assert [e["event"] for e in fake.webhook_events] == ["session.completed", "session.approved"]
    assert fake.webhook_events[0]["data"]["session_id"] == session.id
    fake.expire(fake.add_session(status="created").id)
    assert fake.webhook_events[-1]["event"] == "session.expired"


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


# --- GET /sessions ----------------------------------------------------------------


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


# --- POST /sessions ---------------------------------------------------------------


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
        {"profile_id": "prof_1", "applicant_name": "Ana Lima", "external_id": "u1"},
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
        ({"profile_id": "p", "expires_in": 10}, {"expires_in"}),
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


# --- faults and counters ----------------------------------------------------------


def test_fail_next_targets_one_session_for_n_requests(fake: FakeVerilock) -> None:
    target, other = fake.add_session(), fake.add_session()
    fake.fail_next(target.id, status=503, times=2)
    assert get(fake, f"/sessions/{other.id}").status == 200
    first = get(fake, f"/sessions/{target.id}")
    assert first.status == 503
    assert first.json()["error"] == "server_error"
    assert get(fake, f"/sessions/{target.id}").status == 503
    assert get(fake, f"/sessions/{target.id}").status == 200
    assert fake.requests_for(target.id) == 3
    assert fake.requests_for(other.id) == 1
    assert fake.total_requests == 4


def test_injected_429_carries_retry_after(fake: FakeVerilock) -> None:
    fake.inject("status", status=429, retry_after=7)
    response = get(fake, "/sessions")
    assert (response.status, response.headers["Retry-After"]) == (429, "7")
    assert response.json()["details"] == {"retry_after": 7}


def test_fault_kinds_produce_their_transport_effect(fake: FakeVerilock) -> None:
    fake.timeout_next()
    fake.reset_next()
    fake.malformed_next()
    fake.html_error_next(status=502)
    assert get(fake, "/sessions").fault == "timeout"
    assert get(fake, "/sessions").fault == "reset"
    malformed = get(fake, "/sessions")
    assert malformed.status == 200
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        malformed.json()
    html = get(fake, "/sessions")
    assert html.status == 502
    assert html.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in html.body
    assert get(fake, "/sessions").status == 200
    assert [r.fault for r in fake.requests] == ["timeout", "reset", "malformed_json", "html", None]


def test_latency_delays_the_answer(fake: FakeVerilock) -> None:

    fake.latency_ms = 120
    started = time.monotonic()
    assert get(fake, "/sessions").status == 200
    assert time.monotonic() - started >= 0.12


def test_reset_counters(fake: FakeVerilock) -> None:
    session = fake.add_session()
    get(fake, f"/sessions/{session.id}")
    fake.reset_counters()
    assert (fake.total_requests, fake.requests_for(session.id), fake.requests) == (0, 0, [])


# --- control API ------------------------------------------------------------------


def control(fake: FakeVerilock, method: str, path: str, data: Any = None) -> FakeResponse:
    body = json.dumps(data).encode() if data is not None else b""
    return fake.handle_control(method, path, "", {}, body)


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
