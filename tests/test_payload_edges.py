"""Edge cases of the payload parser: odd values are either read sensibly or named precisely."""

from __future__ import annotations

from typing import Any

import pytest

from verilock_django.exceptions import PayloadError
from verilock_django.payloads import parse_session

SID = "ses_edge"


def gen_b(**fields: Any) -> dict[str, Any]:
    return {"id": SID, "status": "processing", **fields}


@pytest.mark.parametrize(
    ("payload", "field", "problem"),
    [
        (None, "(body)", "expected a JSON object, got null"),
        (
            gen_b(selfie={"liveness_passed": "yes"}),
            "selfie.liveness_passed",
            "expected true or false, got a string",
        ),
        (
            {"id": SID, "applicant": {"date_of_birth": 19900515}},
            "applicant.date_of_birth",
            "expected a YYYY-MM-DD date, got a number",
        ),
        (gen_b(documents={"side": "front"}), "documents", "expected a list of objects"),
        (
            gen_b(documents=[{"ocr_status": "completed", "ocr_confidence": "high"}]),
            "documents[0].ocr_confidence",
            "expected a number, got a string",
        ),
    ],
)
def test_unusable_values_raise_an_error_naming_the_field(
    payload: Any, field: str, problem: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_session(payload)
    assert (caught.value.field, caught.value.problem) == (field, problem)


def test_a_step_reported_as_null_is_kept_as_a_step_without_status() -> None:
    data = parse_session({"id": SID, "results": {"document": None, "selfie": {"status": "ok"}}})
    assert [(step.step, step.status) for step in data.results] == [
        ("document", ""),
        ("selfie", "ok"),
    ]


def test_an_empty_document_list_adds_no_document_step() -> None:
    data = parse_session(gen_b(documents=[], aml_screening={"status": "clear"}))
    assert [step.step for step in data.results] == ["aml"]


def test_documents_without_confidence_have_no_score_and_unknown_statuses_pass_through() -> None:
    data = parse_session(
        gen_b(documents=[{"side": "front", "ocr_status": "queued"}, {"side": "back"}])
    )
    (document,) = data.results
    assert (document.step, document.status, document.score) == ("document", "queued", None)
    assert document.details == {"documents": [{"side": "front"}, {"side": "back"}]}


def test_a_selfie_without_results_yet_is_pending_on_both_steps() -> None:
    data = parse_session(gen_b(selfie={}))
    assert [(s.step, s.status, s.score) for s in data.results] == [
        ("face_match", "pending", None),
        ("liveness", "pending", None),
    ]
