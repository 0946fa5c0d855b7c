"""Payload factories: the seed example, both shapes, coherent statuses, webhooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from verilock_django.payloads import parse_session
from verilock_django.testing import factories

SEED_FILE = Path(__file__).parent / "fixtures" / "seed-session.json"


def test_default_payload_is_exactly_the_documented_seed_example() -> None:
    seed = json.loads(SEED_FILE.read_text())
    assert factories.session_payload() == seed
    assert factories.seed_payload() == seed


def test_seed_payload_is_a_fresh_copy_each_time() -> None:
    first = factories.seed_payload()
    first["results"]["document"]["details"]["issuing_country"] = "XX"
    assert factories.seed_payload()["results"]["document"]["details"]["issuing_country"] == "FR"


def test_declined_session_has_one_declined_step_and_a_completion_time() -> None:
    payload = factories.session_payload(status="declined", declined_step="aml")
    statuses = {step: result["status"] for step, result in payload["results"].items()}
    assert statuses == {
        "document": "approved",
        "selfie": "approved",
        "face_match": "approved",
        "liveness": "approved",
        "aml": "declined",
    }
    assert payload["results"]["aml"]["details"]["sanctions"] is True
    assert payload["completed_at"] is not None


def test_processing_session_has_pending_steps_and_no_completion_time() -> None:
    payload = factories.session_payload(status="processing", steps=["document", "liveness"])
    assert payload["completed_at"] is None
    assert payload["steps"] == ["document", "liveness"]
    assert [r["status"] for r in payload["results"].values()] == ["approved", "pending"]
    assert "score" not in payload["results"]["liveness"]


def test_overrides_merge_applicant_and_replace_top_level_keys() -> None:
    payload = factories.session_payload(
        id="ses_custom",
        applicant={"first_name": "Ana"},
        results={"selfie": {"status": "declined"}},
        hosted_url=None,
    )
    assert payload["id"] == "ses_custom"
    assert payload["applicant"]["first_name"] == "Ana"
    assert payload["applicant"]["last_name"] == "Dupont"
    assert payload["results"]["selfie"] == {"status": "declined"}
    assert payload["hosted_url"] is None


def test_shape_b_is_the_sdk_read_model() -> None:
    payload = factories.session_payload("b", status="declined", declined_step="face_match")
    assert {"results", "steps", "applicant", "hosted_url", "type"}.isdisjoint(payload)
    assert payload["status"] == "completed"
    assert payload["decision"] == "declined"
    assert payload["decline_reason"] == "face_mismatch"
    assert payload["external_id"] == "usr_12345"
    assert payload["applicant_name"] == "Jean Dupont"
    assert payload["selfie"]["face_match_score"] == pytest.approx(0.31)
    assert payload["documents"][0]["ocr_status"] == "completed"
    assert payload["aml_screening"]["status"] == "clear"


def test_shape_b_created_session_has_no_sub_objects_yet() -> None:
    payload = factories.session_payload("b", status="created")
    assert payload["status"] == "created"
    assert payload["decision"] is None
    assert payload["documents"] == []
    assert payload["selfie"] is None
    assert payload["aml_screening"] is None


def test_the_apps_own_parser_reads_both_shapes_the_same_way() -> None:
    a = parse_session(factories.session_payload("a", status="approved"))
    b = parse_session(factories.session_payload("b", status="approved"))
    assert a.id == b.id == factories.SEED_SESSION_ID
    for name in ("status", "decision", "reference_id", "applicant_email", "completed_at"):
        assert getattr(a, name) == getattr(b, name), name
    assert (b.applicant_first_name, b.applicant_last_name) == ("Jean", "Dupont")


def test_list_item_drops_results_and_hosted_url() -> None:
    item = factories.list_item(factories.seed_payload())
    assert "results" not in item and "hosted_url" not in item
    assert item["applicant"] == {
        "first_name": "Jean",
        "last_name": "Dupont",
        "email": "jean.dupont@example.com",
    }
    item_b = factories.list_item(factories.session_payload("b"))
    assert set(item_b) == {
        "id",
        "external_id",
        "status",
        "decision",
        "risk_score",
        "applicant_name",
        "created_at",
        "completed_at",
        "expires_at",
    }


def test_step_result_merges_details_over_defaults() -> None:
    result = factories.step_result("document", details={"issuing_country": "DE"})
    assert result["type"] == "passport"
    assert result["details"]["issuing_country"] == "DE"
    assert result["details"]["document_number"] == "12AB34567"
    assert factories.step_result("liveness", "pending") == {"status": "pending"}
    assert factories.step_result("video", "approved") == {"status": "approved"}
