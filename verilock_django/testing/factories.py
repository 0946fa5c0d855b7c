"""Payload factories: realistic Verilock JSON in either documented shape, without hand-writing it.

Shape ``"a"`` is the documented ``GET /sessions/{id}`` page (``type``, ``steps``,
``applicant{}``, per-step ``results{}``, ``hosted_url``); shape ``"b"`` is the SDK read
model (``external_id``, ``applicant_name``, ``decision``, ``risk_score``, ``documents[]``,
``selfie{}``, ``aml_screening{}``). Every function returns a fresh object that the caller
may mutate freely. Webhook envelopes are built in :mod:`verilock_django.testing.webhooks`.
"""

from __future__ import annotations

import copy
import hashlib
import random
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Literal

from ..payloads import parse_timestamp
from ..statuses import DEFAULT_FINISHED_STATUSES, SessionStatus

__all__ = [
    "DECISIONS",
    "SEED_COMPLETED_AT",
    "SEED_SESSION_ID",
    "STEPS",
    "Shape",
    "applicant",
    "build_session",
    "format_timestamp",
    "list_item",
    "new_session_id",
    "seed_payload",
    "session_payload",
    "step_result",
    "step_results",
]

Shape = Literal["a", "b"]

#: Step names accepted by the documented Gen A create body, in documented order.
STEPS: Final[tuple[str, ...]] = ("document", "selfie", "face_match", "liveness", "aml")
#: The finished statuses that are a decision on the applicant (all but ``expired``): they
#: set ``completed_at`` and Gen B's ``decision``.
DECISIONS: Final[tuple[str, ...]] = tuple(
    str(status) for status in DEFAULT_FINISHED_STATUSES if status != SessionStatus.EXPIRED
)
SEED_SESSION_ID: Final = "ses_a1b2c3d4-e5f6-7890-abcd-ef1234567890"

# The documented GET /sessions/{id} example, embedded so the package never reads files
# outside itself at runtime. Tests compare it with /work/shared/seed-session.json.
_SEED: Final[dict[str, Any]] = {
    "id": SEED_SESSION_ID,
    "type": "kyc",
    "status": "approved",
    "reference_id": "usr_12345",
    "steps": ["document", "selfie", "face_match", "liveness", "aml"],
    "applicant": {
        "first_name": "Jean",
        "last_name": "Dupont",
        "email": "jean.dupont@example.com",
        "date_of_birth": "1990-05-15",
        "nationality": "FR",
    },
    "results": {
        "document": {
            "status": "approved",
            "type": "passport",
            "details": {
                "document_number": "12AB34567",
                "issuing_country": "FR",
                "expiry_date": "2030-08-21",
            },
        },
        "selfie": {"status": "approved"},
        "face_match": {
            "status": "approved",
            "score": 0.97,
            "details": {"similarity": "very_high"},
        },
        "liveness": {"status": "approved", "score": 0.99, "details": {"is_live": True}},
        "aml": {
            "status": "approved",
            "score": 0.02,
            "details": {"pep": False, "sanctions": False, "adverse_media": False},
        },
    },
    "hosted_url": "https://verilock.io/verify/ses_a1b2c3d4-e5f6-7890-abcd-ef1234567890",
    "created_at": "2026-03-15T10:30:00Z",
    "completed_at": "2026-03-15T10:45:22Z",
}

_SEED_CREATED_AT: Final = datetime(2026, 3, 15, 10, 30, tzinfo=timezone.utc)
#: When the documented example session was completed.
SEED_COMPLETED_AT: Final = datetime(2026, 3, 15, 10, 45, 22, tzinfo=timezone.utc)
_HOSTED_BASE: Final = "https://verilock.io/verify/"

# Per-step defaults: (score, details) when approved and when declined. Scores are on the
# 0-1 scale of the documented step results; a low AML score means "clean".
_STEP_OUTCOMES: Final[dict[str, dict[str, tuple[float | None, dict[str, Any] | None]]]] = {
    "document": {
        "approved": (
            None,
            {"document_number": "12AB34567", "issuing_country": "FR", "expiry_date": "2030-08-21"},
        ),
        "declined": (
            None,
            {"document_number": "12AB34567", "issuing_country": "FR", "expiry_date": "2021-01-31"},
        ),
    },
    "selfie": {"approved": (None, None), "declined": (None, None)},
    "face_match": {
        "approved": (0.97, {"similarity": "very_high"}),
        "declined": (0.31, {"similarity": "low"}),
    },
    "liveness": {
        "approved": (0.99, {"is_live": True}),
        "declined": (0.12, {"is_live": False}),
    },
    "aml": {
        "approved": (0.02, {"pep": False, "sanctions": False, "adverse_media": False}),
        "declined": (0.91, {"pep": False, "sanctions": True, "adverse_media": True}),
    },
}
_DECLINE_REASONS: Final[dict[str, str]] = {
    "document": "document_expired",
    "selfie": "selfie_rejected",
    "face_match": "face_mismatch",
    "liveness": "liveness_failed",
    "aml": "aml_match",
}
# Gen B folds the outcome into `decision` and ends the lifecycle `status` at "completed".
_GEN_B_STATUS: Final[dict[str, str]] = {"approved": "completed", "declined": "completed"}


def format_timestamp(value: datetime) -> str:
    """Format an aware datetime the way Verilock does: ISO-8601 UTC with a ``Z``."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_session_id(rng: random.Random | None = None) -> str:
    """Return a fresh ``ses_<uuid>`` id; pass a seeded ``rng`` for reproducible ids."""
    if rng is None:
        return f"ses_{uuid.uuid4()}"
    return f"ses_{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def seed_payload() -> dict[str, Any]:
    """Return a deep copy of the documented ``GET /sessions/{id}`` example."""
    return copy.deepcopy(_SEED)


def applicant(**overrides: Any) -> dict[str, Any]:
    """Return the seed's Gen A ``applicant`` object with ``overrides`` applied."""
    data: dict[str, Any] = copy.deepcopy(_SEED["applicant"])
    data.update(overrides)
    return data


def step_result(
    step: str,
    status: str = "approved",
    *,
    score: float | None = None,
    details: Mapping[str, Any] | None = None,
    document_type: str = "passport",
) -> dict[str, Any]:
    """Return one Gen A per-step result, e.g. ``{"status": "approved", "score": 0.97, ...}``.

    ``details`` is merged over the step's realistic defaults; ``score`` replaces the
    default score. Unfinished statuses (``pending``, ``not_started``) carry no score.
    """
    result: dict[str, Any] = {"status": status}
    outcome = _STEP_OUTCOMES.get(step, {}).get(status)
    default_score, default_details = outcome if outcome else (None, None)
    if step == "document" and outcome is not None:
        result["type"] = document_type
    if score is not None or default_score is not None:
        result["score"] = score if score is not None else default_score
    merged = {**(default_details or {}), **(details or {})}
    if merged:
        result["details"] = merged
    return result


def _declined_step(steps: list[str]) -> str | None:
    # Face mismatch is the most common real-world decline, so prefer it when present.
    for candidate in ("face_match", "liveness", "aml", "document"):
        if candidate in steps:
            return candidate
    return steps[-1] if steps else None


def step_results(
    steps: Iterable[str] = STEPS,
    status: str = "approved",
    *,
    declined_step: str | None = None,
    nationality: str = "FR",
) -> dict[str, dict[str, Any]]:
    """Return a coherent Gen A ``results`` block for a session in ``status``.

    ``approved``: every step approved. ``declined``: ``declined_step`` (default: the
    face match) declined, the rest approved. ``processing``: the first half approved, the
    rest ``pending``. ``created``/``expired``: every step ``not_started``.
    """
    names = list(steps)
    per_step: dict[str, str]
    if status == "approved":
        per_step = dict.fromkeys(names, "approved")
    elif status == "declined":
        failing = declined_step or _declined_step(names)
        per_step = {name: "declined" if name == failing else "approved" for name in names}
    elif status == "processing":
        done = (len(names) + 1) // 2
        per_step = {name: "approved" if i < done else "pending" for i, name in enumerate(names)}
    elif status in ("created", "expired"):
        per_step = dict.fromkeys(names, "not_started")
    else:
        per_step = dict.fromkeys(names, "pending")
    return {
        name: step_result(
            name,
            step_status,
            details={"issuing_country": nationality} if name == "document" else None,
        )
        if step_status in ("approved", "declined")
        else step_result(name, step_status)
        for name, step_status in per_step.items()
    }


def _derived_id(session_id: str, prefix: str) -> str:
    # Stable sub-object ids, so rendering the same session twice gives identical JSON.
    return prefix + hashlib.sha256(f"{session_id}:{prefix}".encode()).hexdigest()[:12]


def _risk_score(status: str) -> float | None:
    return {"approved": 12.0, "declined": 81.0}.get(status)


def _gen_b_parts(session_id: str, results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Translate Gen A per-step results into the SDK's documents/selfie/aml_screening."""
    parts: dict[str, Any] = {"documents": [], "selfie": None, "aml_screening": None}
    document = results.get("document")
    if document is not None and document.get("status") != "not_started":
        ocr_status = {"approved": "completed", "declined": "failed"}.get(
            str(document.get("status")), "processing"
        )
        parts["documents"] = [
            {
                "id": _derived_id(session_id, "doc_"),
                "side": "front",
                "document_type": document.get("type", "passport"),
                "ocr_status": ocr_status,
                "ocr_confidence": 0.98 if ocr_status == "completed" else None,
                "extracted_data": dict(document.get("details") or {}),
            }
        ]
    face, live = results.get("face_match"), results.get("liveness")
    if (face or live) and any(r and r.get("status") != "not_started" for r in (face, live)):
        parts["selfie"] = {
            "id": _derived_id(session_id, "sel_"),
            "face_match_score": (face or {}).get("score"),
            "liveness_score": (live or {}).get("score"),
            "liveness_passed": ((live or {}).get("details") or {}).get("is_live"),
        }
    aml = results.get("aml")
    if aml is not None and aml.get("status") != "not_started":
        aml_status = {"approved": "clear", "declined": "match"}.get(
            str(aml.get("status")), "pending"
        )
        matches = (
            [
                {
                    "matched_name": "Sanctioned Person",
                    "match_score": aml.get("score"),
                    "datasets": ["sanctions"],
                    "topics": ["sanction"],
                }
            ]
            if aml_status == "match"
            else []
        )
        parts["aml_screening"] = {
            "id": _derived_id(session_id, "aml_"),
            "status": aml_status,
            "highest_score": aml.get("score"),
            "matches_found": len(matches),
            "matches": matches,
        }
    return parts


def build_session(
    shape: Shape,
    *,
    id: str,
    status: str,
    reference_id: str | None,
    steps: list[str],
    applicant: Mapping[str, Any],
    results: Mapping[str, Mapping[str, Any]],
    created_at: datetime,
    completed_at: datetime | None,
    expires_at: datetime | None = None,
    view: Literal["detail", "list"] = "detail",
) -> dict[str, Any]:
    """Render one session from its parts in the given shape, as detail or list item.

    This is the single renderer used by the factories and by the fake API, so both always
    agree on what a session looks like.
    """
    finished_at = format_timestamp(completed_at) if completed_at else None
    if shape == "a":
        if view == "list":
            return {
                "id": id,
                "type": "kyc",
                "status": status,
                "reference_id": reference_id,
                "steps": list(steps),
                "applicant": {
                    key: applicant.get(key) for key in ("first_name", "last_name", "email")
                },
                "created_at": format_timestamp(created_at),
                "completed_at": finished_at,
            }
        return {
            "id": id,
            "type": "kyc",
            "status": status,
            "reference_id": reference_id,
            "steps": list(steps),
            "applicant": copy.deepcopy(dict(applicant)),
            "results": copy.deepcopy({k: dict(v) for k, v in results.items()}),
            "hosted_url": _HOSTED_BASE + id,
            "created_at": format_timestamp(created_at),
            "completed_at": finished_at,
        }
    name = " ".join(
        str(part) for part in (applicant.get("first_name"), applicant.get("last_name")) if part
    )
    decision = status if status in DECISIONS else None
    expires = format_timestamp(expires_at or created_at + timedelta(hours=1))
    if view == "list":
        return {
            "id": id,
            "external_id": reference_id,
            "status": _GEN_B_STATUS.get(status, status),
            "decision": decision,
            "risk_score": _risk_score(status),
            "applicant_name": name or None,
            "created_at": format_timestamp(created_at),
            "completed_at": finished_at,
            "expires_at": expires,
        }
    declined = [step for step, result in results.items() if result.get("status") == "declined"]
    document_details = dict((results.get("document") or {}).get("details") or {})
    extracted = (
        {
            key: applicant.get(key)
            for key in ("first_name", "last_name", "date_of_birth", "nationality")
        }
        | document_details
        if document_details
        else {}
    )
    return {
        "id": id,
        "external_id": reference_id,
        "status": _GEN_B_STATUS.get(status, status),
        "decision": decision,
        "risk_score": _risk_score(status),
        "decline_reason": _DECLINE_REASONS.get(declined[0], "declined")
        if status == "declined" and declined
        else None,
        "applicant_name": name or None,
        "applicant_email": applicant.get("email"),
        "extracted_data": extracted,
        "created_at": format_timestamp(created_at),
        "completed_at": finished_at,
        "expires_at": expires,
        **_gen_b_parts(id, results),
    }


def _as_datetime(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value
    parsed = parse_timestamp(value, "timestamp")
    if parsed is None:
        raise ValueError("an empty timestamp")
    return parsed


_UNSET: Any = object()


def session_payload(
    shape: Shape = "a",
    *,
    id: str = SEED_SESSION_ID,
    status: str = "approved",
    reference_id: str | None = "usr_12345",
    steps: Iterable[str] = STEPS,
    applicant: Mapping[str, Any] | None = None,
    results: Mapping[str, Mapping[str, Any]] | None = None,
    declined_step: str | None = None,
    created_at: datetime | str = _SEED_CREATED_AT,
    completed_at: datetime | str | None = _UNSET,
    expires_at: datetime | str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Build a ``GET /sessions/{id}`` payload; with no arguments, exactly the seed example.

    ``status`` drives coherent per-step results and ``completed_at`` (``None`` for
    unfinished sessions). ``applicant`` is merged over the seed applicant, ``results`` over
    the derived results (per step). Any other keyword replaces that top-level key of the
    rendered payload as-is, e.g. ``session_payload(status="weird", hosted_url=None)``.
    """
    step_list = list(steps)
    person = {**_SEED["applicant"], **(applicant or {})}
    derived = step_results(
        step_list, status, declined_step=declined_step, nationality=person["nationality"]
    )
    derived.update({step: dict(result) for step, result in (results or {}).items()})
    created = _as_datetime(created_at)
    finished: datetime | None
    if completed_at is _UNSET:
        # Keep the seed's timestamps when the seed's creation time is kept.
        finished = (
            (SEED_COMPLETED_AT if created == _SEED_CREATED_AT else created + timedelta(minutes=15))
            if status in DECISIONS
            else None
        )
    else:
        finished = _as_datetime(completed_at) if completed_at is not None else None
    payload = build_session(
        shape,
        id=id,
        status=status,
        reference_id=reference_id,
        steps=step_list,
        applicant=person,
        results=derived,
        created_at=created,
        completed_at=finished,
        expires_at=_as_datetime(expires_at) if expires_at is not None else None,
    )
    payload.update(copy.deepcopy(overrides))
    return payload


def list_item(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Reduce a detail payload (either shape) to the documented ``GET /sessions`` item."""
    if "results" in payload or "applicant" in payload or "hosted_url" in payload:
        keep = ("id", "type", "status", "reference_id", "steps", "created_at", "completed_at")
        item = {key: copy.deepcopy(payload.get(key)) for key in keep}
        person = payload.get("applicant") or {}
        item["applicant"] = {key: person.get(key) for key in ("first_name", "last_name", "email")}
        return item
    keep_b = (
        "id",
        "external_id",
        "status",
        "decision",
        "risk_score",
        "applicant_name",
        "created_at",
        "completed_at",
        "expires_at",
    )
    return {key: copy.deepcopy(payload.get(key)) for key in keep_b}
