"""What a parsed session says about *why*: step outcomes, score scales, the decline reason.

Pure (no I/O): :func:`assess` reads a :class:`~verilock_django.payloads.SessionData` and
returns an :class:`Assessment` that the store writes beside the provider's raw values. The
mapping is documented in ``docs/payloads.md`` ("Outcomes"); in short:

* a raw status that says it (``approved``, ``clear``, ``declined``, ``failed``, ``pending``…)
  maps directly; Gen B's ``completed`` (the check ran) is *passed* unless the decline
  reason blames that step, then *failed*;
* an AML ``match`` is *failed* under a declined decision, else *needs review*;
* a step the provider's ``decline_reason`` blames (``face_mismatch`` → ``face_match``) is
  *failed* whatever its raw status;
* anything else is *other*, and the raw status stays stored next to it.

Scales: a score above 1 is on 0-100, any other on 0-1 (Verilock uses both; see
``docs/payloads.md``). The risk score is documented as 0-100 (:data:`RISK_SCALE`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .payloads import SessionData, StepData
from .statuses import KNOWN_STEPS, SessionStatus, StepOutcome

#: The scale Verilock documents for ``risk_score`` (0-100; bands in :data:`RISK_BANDS`).
RISK_SCALE = 100
#: Risk bands as Verilock documents them: (name, lowest score, highest score), 0-100.
RISK_BANDS: tuple[tuple[str, float, float], ...] = (
    ("low", 0, 25),
    ("medium", 25, 50),
    ("high", 50, 75),
    ("critical", 75, 100),
)

#: Raw step statuses whose meaning does not depend on the session (lower-cased).
RAW_OUTCOMES: dict[str, StepOutcome] = {
    "approved": StepOutcome.PASSED,
    "passed": StepOutcome.PASSED,
    "clear": StepOutcome.PASSED,
    "verified": StepOutcome.PASSED,
    "false_positive": StepOutcome.PASSED,
    "declined": StepOutcome.FAILED,
    "failed": StepOutcome.FAILED,
    "rejected": StepOutcome.FAILED,
    "confirmed": StepOutcome.FAILED,
    "review": StepOutcome.NEEDS_REVIEW,
    "needs_review": StepOutcome.NEEDS_REVIEW,
    "pending": StepOutcome.PENDING,
    "processing": StepOutcome.PENDING,
    "in_progress": StepOutcome.PENDING,
    "created": StepOutcome.PENDING,
    "not_started": StepOutcome.NOT_STARTED,
    "": StepOutcome.NOT_STARTED,
}
#: Decline reasons that do not start with the name of the step they blame.
REASON_STEPS: dict[str, str] = {"face_mismatch": "face_match", "sanctions_match": "aml"}


@dataclass(frozen=True)
class StepAssessment:
    """One step: its normalised ``outcome`` and its score's scale (1, 100, or None)."""

    outcome: StepOutcome
    score_scale: int | None


@dataclass(frozen=True)
class Assessment:
    """A session's decline reason (provider's text, or ``""``) and its steps by name."""

    decline_reason: str
    steps: dict[str, StepAssessment]


def assess(data: SessionData) -> Assessment:
    """Assess every step of ``data`` and read its decline reason (Gen B ``decline_reason``).

    Gen A sends no reason: ``decline_reason`` stays ``""`` and the failed steps say why.
    """
    reason = decline_reason(data)
    declined = SessionStatus.DECLINED in (data.status, data.decision)
    blamed = blamed_step(reason, [step.step for step in data.results]) if declined else None
    return Assessment(
        decline_reason=reason,
        steps={
            step.step: StepAssessment(
                step_outcome(step, declined=declined, blamed=step.step == blamed),
                score_scale(step.score),
            )
            for step in data.results
        },
    )


def decline_reason(data: SessionData) -> str:
    """The provider's ``decline_reason`` when it is a non-empty string, else ``""``."""
    value = data.payload.get("decline_reason")
    return value.strip()[:128] if isinstance(value, str) else ""


def blamed_step(reason: str, steps: list[str]) -> str | None:
    """The step a decline reason names (``liveness_failed`` → ``liveness``), if any."""
    if not reason:
        return None
    code = reason.lower()
    if code in REASON_STEPS:
        return REASON_STEPS[code]
    candidates = [s for s in (*steps, *KNOWN_STEPS) if s and code.startswith(s.lower())]
    return max(candidates, key=len) if candidates else None


def step_outcome(step: StepData, *, declined: bool, blamed: bool) -> StepOutcome:
    """The normalised outcome of one step (see the module docstring for the rules)."""
    raw = step.status.strip().lower()
    if blamed:
        return StepOutcome.FAILED
    if raw == "match":
        return StepOutcome.FAILED if declined else StepOutcome.NEEDS_REVIEW
    if raw == "completed":
        return StepOutcome.PASSED
    return RAW_OUTCOMES.get(raw, StepOutcome.OTHER)


def score_scale(score: float | None) -> int | None:
    """100 for a score above 1, 1 for any other score, None without a score."""
    if score is None:
        return None
    return 100 if score > 1 else 1


def as_percent(score: float | None, scale: int | None) -> float | None:
    """``score`` on its ``scale`` as a percentage (0-100); None without a score, or for one
    whose percentage no float holds (a score near the float limit, ``1e307``: the admin's
    bar and label then show nothing, the raw score still shows)."""
    if score is None:
        return None
    percent = score * 100 / (scale or score_scale(score) or 1)
    return percent if math.isfinite(percent) else None


def risk_band(score: float | None) -> str:
    """The documented risk band of a 0-100 risk score, ``""`` without one."""
    if score is None:
        return ""
    for name, _low, high in RISK_BANDS:
        if score <= high:
            return name
    return RISK_BANDS[-1][0]
