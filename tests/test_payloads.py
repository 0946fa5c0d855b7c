from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from verilock_django.exceptions import PayloadError
from verilock_django.payloads import parse_session, parse_timestamp

UTC = dt.timezone.utc


def gen_b_payload() -> dict[str, Any]:
    return {
        "id": "ses_b0000000-0000-0000-0000-000000000001",
        "external_id": "cust_42",
        "status": "completed",
        "decision": "declined",
        "risk_score": 71.5,
        "decline_reason": "document_expired",
        "applicant_name": "Ana María Pérez López",
        "applicant_email": "ana@example.com",
        "session_url": "https://verilock.io/verify/tok_abc",
        "created_at": "2026-03-15T10:30:00Z",
        "completed_at": "2026-03-15T10:40:00+00:00",
        "expires_at": "2026-03-15T11:30:00Z",
        "documents": [
            {
                "id": "doc_1",
                "side": "front",
                "document_type": "passport",
                "ocr_status": "completed",
                "ocr_confidence": 0.91,
                "extracted_data": {"document_number": "X1"},
            },
            {
                "id": "doc_2",
                "side": "back",
                "document_type": "passport",
                "ocr_status": "failed",
                "ocr_confidence": 0.4,
            },
        ],
        "selfie": {
            "id": "sel_1",
            "face_match_score": 96.4,
            "liveness_score": 91.2,
            "liveness_passed": True,
        },
        "aml_screening": {
            "id": "aml_1",
            "status": "match",
            "highest_score": 0.88,
            "matches_found": 1,
            "matches": [{"matched_name": "A. Perez"}],
        },
        "brand_new_field": {"kept": True},
    }


def test_seed_payload_parses_to_every_documented_value(seed: dict[str, Any]) -> None:
    data = parse_session(seed)

    assert data.id == "ses_a1b2c3d4-e5f6-7890-abcd-ef1234567890"
    assert (data.type, data.status, data.decision) == ("kyc", "approved", "approved")
    assert data.reference_id == "usr_12345"
    assert data.steps == ["document", "selfie", "face_match", "liveness", "aml"]
    assert (data.applicant_first_name, data.applicant_last_name) == ("Jean", "Dupont")
    assert data.applicant_email == "jean.dupont@example.com"
    assert data.applicant_date_of_birth == dt.date(1990, 5, 15)
    assert data.applicant_nationality == "FR"
    assert data.hosted_url == seed["hosted_url"]
    assert data.created_at == dt.datetime(2026, 3, 15, 10, 30, tzinfo=UTC)
    assert data.completed_at == dt.datetime(2026, 3, 15, 10, 45, 22, tzinfo=UTC)
    assert data.expires_at is None
    assert data.payload == seed

    by_step = {result.step: result for result in data.results}
    assert [r.step for r in data.results] == data.steps
    assert by_step["document"].status == "approved"
    assert by_step["document"].details == seed["results"]["document"]["details"]
    assert by_step["document"].payload["type"] == "passport"
    assert by_step["selfie"].score is None and by_step["selfie"].details == {}
    assert by_step["face_match"].score == 0.97
    assert by_step["liveness"].details == {"is_live": True}
    assert by_step["aml"].score == 0.02


def test_gen_b_shape_maps_onto_the_same_fields() -> None:
    payload = gen_b_payload()
    data = parse_session(payload)

    assert data.reference_id == "cust_42"
    # A completed Gen B session takes its decision as status.
    assert (data.status, data.decision) == ("declined", "declined")
    assert data.risk_score == 71.5
    assert (data.applicant_first_name, data.applicant_last_name) == ("Ana", "María Pérez López")
    assert data.applicant_email == "ana@example.com"
    assert data.hosted_url == "https://verilock.io/verify/tok_abc"
    assert data.expires_at == dt.datetime(2026, 3, 15, 11, 30, tzinfo=UTC)
    assert data.steps == ["document", "face_match", "liveness", "aml"]
    by_step = {result.step: result for result in data.results}
    assert by_step["document"].status == "failed"  # the least advanced side wins
    assert by_step["document"].score == 0.4
    assert by_step["face_match"].score == 96.4
    assert (by_step["liveness"].status, by_step["liveness"].score) == ("approved", 91.2)
    assert by_step["aml"].status == "match"
    assert by_step["aml"].details["matches_found"] == 1
    assert data.payload["brand_new_field"] == {"kept": True}


def test_gen_b_in_progress_keeps_lifecycle_status() -> None:
    payload = {"id": "ses_x", "status": "in_progress", "decision": None}
    data = parse_session(payload)
    assert (data.status, data.decision, data.results) == ("in_progress", "", [])


def test_unknown_status_and_step_names_are_kept() -> None:
    data = parse_session(
        {
            "id": "ses_x",
            "status": "on_hold_by_compliance",
            "results": {"video": {"status": "needs_review", "score": 12}},
        }
    )
    assert data.status == "on_hold_by_compliance"
    assert [(r.step, r.status, r.score) for r in data.results] == [("video", "needs_review", 12.0)]
    assert data.steps == ["video"]


@pytest.mark.parametrize("shape", ["a", "b"])
@pytest.mark.parametrize("status", ["missing", None, "", "   "])
def test_a_status_not_given_is_none_never_a_default(shape: str, status: object) -> None:
    payload: dict[str, Any] = (
        gen_b_payload() if shape == "b" else {"id": "ses_x", "type": "kyc", "results": {}}
    )
    payload.pop("status", None)
    payload.pop("decision", None)
    if status != "missing":
        payload["status"] = status
    data = parse_session(payload)
    # What it means depends on the stored row: the store decides (see store_rules.known_status).
    assert (data.status, data.decision) == (None, "")


@pytest.mark.parametrize("status", ["missing", None, "", "   "])
@pytest.mark.parametrize("decision", ["approved", "declined", "review"])
def test_a_decision_without_a_status_is_the_status_too(status: object, decision: str) -> None:
    payload: dict[str, Any] = gen_b_payload()
    payload.pop("status", None)
    if status != "missing":
        payload["status"] = status
    payload["decision"] = decision
    data = parse_session(payload)
    # As a completed Gen B session: a decision is given only once the session is completed.
    assert (data.status, data.decision) == (decision, decision)


def test_a_created_session_without_results_parses() -> None:
    data = parse_session({"id": "ses_new", "status": "created", "completed_at": None})
    assert data.status == "created"
    assert data.completed_at is None
    assert data.results == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "id"),
        ({"id": ""}, "id"),
        ({"id": "   "}, "id"),
        ({"id": 12}, "id"),
        ({"id": "ses_x", "results": []}, "results"),
        ({"id": "ses_x", "results": {"aml": {"score": "0.2"}}}, "results.aml.score"),
        ({"id": "ses_x", "results": {"aml": {"score": True}}}, "results.aml.score"),
        ({"id": "ses_x", "results": {"aml": "approved"}}, "results.aml"),
        ({"id": "ses_x", "created_at": "yesterday"}, "created_at"),
        ({"id": "ses_x", "completed_at": 1710500000}, "completed_at"),
        ({"id": "ses_x", "applicant": {"date_of_birth": "15/05/1990"}}, "applicant.date_of_birth"),
        ({"id": "ses_x", "applicant": "Jean"}, "applicant"),
        ({"id": "ses_x", "steps": "document"}, "steps"),
        ({"id": "ses_x", "risk_score": "high"}, "risk_score"),
        ({"id": "ses_x", "selfie": {"face_match_score": "97"}}, "selfie.face_match_score"),
        ({"id": "ses_x", "documents": [{"ocr_confidence": "x"}]}, "documents[0].ocr_confidence"),
        ({"id": "ses_x", "documents": {"front": {}}}, "documents"),
        ({"id": "ses_x", "status": ["approved"]}, "status"),
    ],
)
def test_unusable_payload_names_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(PayloadError) as excinfo:
        parse_session(payload)
    assert excinfo.value.field == field
    assert field in str(excinfo.value)


def test_non_object_body_is_rejected() -> None:
    with pytest.raises(PayloadError, match="expected a JSON object"):
        parse_session(["ses_x"])


def test_payload_error_never_echoes_applicant_data() -> None:
    with pytest.raises(PayloadError) as excinfo:
        parse_session({"id": "ses_x", "applicant": {"date_of_birth": "Jean Dupont 1990"}})
    assert "Jean" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-15T10:30:00Z", dt.datetime(2026, 3, 15, 10, 30, tzinfo=UTC)),
        ("2026-03-15T12:30:00+02:00", dt.datetime(2026, 3, 15, 10, 30, tzinfo=UTC)),
        ("2026-03-15T10:30:00.123456Z", dt.datetime(2026, 3, 15, 10, 30, 0, 123456, tzinfo=UTC)),
        ("2026-03-15T10:30:00", dt.datetime(2026, 3, 15, 10, 30, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_timestamps(text: str | None, expected: dt.datetime | None) -> None:
    assert parse_timestamp(text, "created_at") == expected
