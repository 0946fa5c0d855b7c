"""Outcome semantics: why a session failed, per step, in both payload shapes."""

from __future__ import annotations

from typing import Any

import pytest

from verilock_django.outcomes import as_percent, assess, blamed_step, risk_band, score_scale
from verilock_django.payloads import parse_session
from verilock_django.statuses import StepOutcome
from verilock_django.testing.factories import session_payload


def outcomes(payload: dict[str, Any]) -> dict[str, str]:
    return {step: a.outcome for step, a in assess(parse_session(payload)).steps.items()}


def test_gen_b_declined_face_match_is_failed_with_the_providers_reason() -> None:
    payload = session_payload("b", status="declined", declined_step="face_match")
    assert payload["selfie"]["face_match_score"] == 0.31  # raw status "completed"

    assessment = assess(parse_session(payload))

    assert assessment.decline_reason == "face_mismatch"
    assert assessment.steps["face_match"].outcome == StepOutcome.FAILED
    assert assessment.steps["document"].outcome == StepOutcome.PASSED
    assert assessment.steps["aml"].outcome == StepOutcome.PASSED  # "clear"


def test_gen_b_aml_match_fails_a_declined_session_and_needs_review_otherwise() -> None:
    declined = session_payload("b", status="declined", declined_step="aml")
    in_review = dict(declined, decision="review", status="processing", decline_reason=None)

    assert outcomes(declined)["aml"] == StepOutcome.FAILED
    assert outcomes(in_review)["aml"] == StepOutcome.NEEDS_REVIEW


def test_gen_a_declined_step_is_failed_and_no_reason_is_invented() -> None:
    payload = session_payload("a", status="declined", declined_step="liveness")

    assessment = assess(parse_session(payload))

    assert assessment.decline_reason == ""
    assert assessment.steps["liveness"].outcome == StepOutcome.FAILED
    assert assessment.steps["face_match"].outcome == StepOutcome.PASSED


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("approved", StepOutcome.PASSED),
        ("declined", StepOutcome.FAILED),
        ("pending", StepOutcome.PENDING),
        ("not_started", StepOutcome.NOT_STARTED),
        ("needs_human", StepOutcome.OTHER),
    ],
)
def test_gen_a_raw_statuses_map_to_outcomes(raw: str, expected: str) -> None:
    payload = session_payload("a", status="processing")
    payload["results"]["aml"] = {"status": raw}

    assert outcomes(payload)["aml"] == expected


def test_a_reason_blames_a_step_only_when_the_session_is_declined() -> None:
    payload = session_payload("b", status="approved")
    payload["decline_reason"] = "liveness_failed"  # stale text on an approved session

    assert outcomes(payload)["liveness"] == StepOutcome.PASSED


@pytest.mark.parametrize(
    ("reason", "step"),
    [
        ("face_mismatch", "face_match"),
        ("liveness_failed", "liveness"),
        ("document_expired", "document"),
        ("aml_match", "aml"),
        ("risk_too_high", None),
        ("", None),
    ],
)
def test_blamed_step(reason: str, step: str | None) -> None:
    assert blamed_step(reason, ["document", "face_match", "liveness", "aml"]) == step


def test_scales_and_percentages() -> None:
    assert (score_scale(0.31), score_scale(81.0), score_scale(None)) == (1, 100, None)
    assert as_percent(0.31, 1) == pytest.approx(31)
    assert as_percent(81.0, 100) == pytest.approx(81)
    assert as_percent(None, None) is None
    # A finite score whose percentage overflows a float has none (was inf: a 500 in the
    # admin's review, found by the property test on MariaDB).
    assert as_percent(1e307, 100) is None
    assert as_percent(-1e307, None) is None


@pytest.mark.parametrize(
    ("score", "band"),
    [(None, ""), (0, "low"), (25, "low"), (25.5, "medium"), (75, "high"), (81, "critical")],
)
def test_risk_bands(score: float | None, band: str) -> None:
    assert risk_band(score) == band
