"""Turn a Verilock session object (JSON) into typed data. Pure: no I/O, no ORM.

Verilock documents two shapes of the session object (see ``docs/payloads.md``):

* **Gen A** (the documented ``GET /sessions/{id}`` example): ``type``, ``reference_id``,
  ``steps``, ``applicant{}``, ``results{step: {status, score, details, …}}``, ``hosted_url``.
* **Gen B** (the SDK's read model): ``external_id``, ``applicant_name``,
  ``applicant_email``, ``decision``, ``risk_score``, ``expires_at``, ``documents[]``,
  ``selfie{}``, ``aml_screening{}``, ``session_url``.

Both map onto the same :class:`SessionData` and :class:`StepData`. The parser reads each
field under either name, keeps unknown statuses and step names as they come, and raises
:class:`~verilock_django.exceptions.PayloadError` naming the field only for what it
cannot use.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import PayloadError

JSONObject = dict[str, Any]

# Gen B keeps a lifecycle status ending in "completed" plus a separate decision; Gen A folds
# the outcome into the status. A completed Gen B session is stored with its decision as
# status, so one vocabulary serves both and FINISHED_STATUSES works for either.
COMPLETED_LIFECYCLE_STATUS = "completed"
DEFAULT_STATUS = "created"


@dataclass(frozen=True)
class StepData:
    """One verification step's outcome."""

    step: str
    status: str
    score: float | None = None
    details: JSONObject = field(default_factory=dict)
    payload: JSONObject = field(default_factory=dict)


@dataclass(frozen=True)
class SessionData:
    """A session as the app stores it, whichever shape it came in."""

    id: str
    type: str = ""
    status: str = DEFAULT_STATUS
    decision: str = ""
    reference_id: str = ""
    steps: list[str] = field(default_factory=list)
    applicant_first_name: str = ""
    applicant_last_name: str = ""
    applicant_email: str = ""
    applicant_date_of_birth: dt.date | None = None
    applicant_nationality: str = ""
    hosted_url: str = ""
    risk_score: float | None = None
    created_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    results: list[StepData] = field(default_factory=list)
    payload: JSONObject = field(default_factory=dict)


#: Longest session id accepted (the ``Session.id`` column holds this many characters).
SESSION_ID_MAX_LENGTH = 128


def parse_session_id(value: object, field_name: str = "id") -> str:
    """A session id as every door must use it: surrounding whitespace removed, then checked.

    Raises :class:`~verilock_django.exceptions.PayloadError` naming ``field_name`` for a
    non-string, an empty id, one longer than :data:`SESSION_ID_MAX_LENGTH`, one holding
    whitespace, control characters, ``/``, ``\\``, ``?``, ``#`` or ``%`` (it would change the
    request path), or a dot segment (``.``, ``..``). The message never quotes the value.
    """
    if not isinstance(value, str):
        raise PayloadError(field_name, f"expected a string, got {_type_name(value)}")
    text = value.strip()
    if not text:
        raise PayloadError(field_name, "missing or empty")
    if len(text) > SESSION_ID_MAX_LENGTH:
        raise PayloadError(field_name, f"longer than {SESSION_ID_MAX_LENGTH} characters")
    if text in (".", "..") or any(
        ch.isspace() or not ch.isprintable() or ch in "/\\?#%" for ch in text
    ):
        raise PayloadError(field_name, "not a usable session id")
    return text


def parse_session(payload: object) -> SessionData:
    """Parse one session object (either documented shape) into :class:`SessionData`."""
    if not isinstance(payload, Mapping):
        raise PayloadError("(body)", f"expected a JSON object, got {_type_name(payload)}")
    session_id = parse_session_id(payload.get("id"))
    reader = _Reader(payload, session_id)

    status = reader.string("status") or DEFAULT_STATUS
    decision = reader.string("decision")
    if status == COMPLETED_LIFECYCLE_STATUS and decision:
        status = decision
    elif not decision and status in ("approved", "declined"):
        decision = status

    first, last, email, dob, nationality = _applicant(reader)
    results = _results(reader)
    steps = reader.string_list("steps")
    if not steps:
        steps = [result.step for result in results]

    return SessionData(
        id=session_id,
        type=reader.string("type"),
        status=status,
        decision=decision,
        reference_id=reader.string("reference_id") or reader.string("external_id"),
        steps=steps,
        applicant_first_name=first,
        applicant_last_name=last,
        applicant_email=email,
        applicant_date_of_birth=dob,
        applicant_nationality=nationality,
        hosted_url=reader.string("hosted_url") or reader.string("session_url"),
        risk_score=reader.number("risk_score"),
        created_at=reader.timestamp("created_at"),
        completed_at=reader.timestamp("completed_at"),
        expires_at=reader.timestamp("expires_at"),
        results=results,
        payload=dict(payload),
    )


def decline_reason(payload: Mapping[str, Any]) -> str:
    """Why a session was declined, as a code: Gen B's ``decline_reason``, else the first
    declined step of Gen A's ``results`` (``"face_match"``…); ``""`` when neither says.

    Never raises: a stored payload of any shape gives a code or ``""``.
    """
    reason = payload.get("decline_reason")
    if isinstance(reason, str) and reason.strip():
        return reason.strip()
    results = payload.get("results")
    if isinstance(results, Mapping):
        for step, result in results.items():
            if isinstance(result, Mapping) and result.get("status") == "declined":
                return str(step)
    return ""


def parse_timestamp(value: object, field_name: str) -> dt.datetime | None:
    """Parse an ISO-8601 timestamp (``Z`` or an offset; naive means UTC); ``None`` passes."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(field_name, f"expected an ISO-8601 timestamp, got {_type_name(value)}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(field_name, "not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


class _Reader:
    """Typed reads from one payload object, raising errors that name the field."""

    def __init__(self, data: Mapping[str, Any], session_id: str, prefix: str = "") -> None:
        self.data = data
        self.session_id = session_id
        self.prefix = prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, problem: str) -> PayloadError:
        return PayloadError(self.name(key), problem, session_id=self.session_id)

    def child(self, key: str) -> _Reader | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected an object, got {_type_name(value)}")
        return _Reader(value, self.session_id, f"{self.name(key)}.")

    def string(self, key: str) -> str:
        value = self.data.get(key)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail(key, f"expected a string, got {_type_name(value)}")
        return str(value)

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, got {_type_name(value)}")
        if not math.isfinite(value):
            raise self.fail(key, "expected a finite number")
        return float(value)

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None or isinstance(value, bool):
            return value
        raise self.fail(key, f"expected true or false, got {_type_name(value)}")

    def timestamp(self, key: str) -> dt.datetime | None:
        try:
            return parse_timestamp(self.data.get(key), self.name(key))
        except PayloadError as exc:
            exc.session_id = self.session_id
            raise

    def date(self, key: str) -> dt.date | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"expected a YYYY-MM-DD date, got {_type_name(value)}")
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise self.fail(key, "not a YYYY-MM-DD date") from None

    def string_list(self, key: str) -> list[str]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(key, "expected a list of strings")
        return list(value)

    def object(self, key: str) -> JSONObject:
        child = self.child(key)
        return dict(child.data) if child is not None else {}


def _applicant(reader: _Reader) -> tuple[str, str, str, dt.date | None, str]:
    applicant = reader.child("applicant")
    if applicant is not None:
        return (
            applicant.string("first_name"),
            applicant.string("last_name"),
            applicant.string("email") or reader.string("applicant_email"),
            applicant.date("date_of_birth"),
            applicant.string("nationality"),
        )
    # Gen B has one full-name string: the first word is taken as the first name and the
    # rest as the last name; the payload keeps the string exactly as sent.
    first, _, last = reader.string("applicant_name").strip().partition(" ")
    return first, last.strip(), reader.string("applicant_email"), None, ""


def _results(reader: _Reader) -> list[StepData]:
    results = reader.child("results")  # raises, naming the field, when not an object
    if results is None:
        return _gen_b_steps(reader)
    return [_step_result(results, str(step)) for step in results.data]


def _step_result(results: _Reader, step: str) -> StepData:
    item = results.child(step)
    if item is None:
        return StepData(step=step, status="")
    return StepData(
        step=step,
        status=item.string("status"),
        score=item.number("score"),
        details=item.object("details"),
        payload=dict(item.data),
    )


def _gen_b_steps(reader: _Reader) -> list[StepData]:
    """Map Gen B's ``documents[]``, ``selfie{}`` and ``aml_screening{}`` onto steps."""
    steps: list[StepData] = []

    documents = reader.data.get("documents")
    if documents is not None:
        if not isinstance(documents, list) or not all(isinstance(d, Mapping) for d in documents):
            raise reader.fail("documents", "expected a list of objects")
        if documents:
            steps.append(_document_step(reader, documents))

    selfie = reader.child("selfie")
    if selfie is not None:
        face_score = selfie.number("face_match_score")
        steps.append(
            StepData(
                step="face_match",
                status="completed" if face_score is not None else "pending",
                score=face_score,
                payload=dict(selfie.data),
            )
        )
        passed = selfie.boolean("liveness_passed")
        steps.append(
            StepData(
                step="liveness",
                status={True: "approved", False: "declined", None: "pending"}[passed],
                score=selfie.number("liveness_score"),
                details={} if passed is None else {"is_live": passed},
                payload=dict(selfie.data),
            )
        )

    aml = reader.child("aml_screening")
    if aml is not None:
        matches = aml.data.get("matches")
        steps.append(
            StepData(
                step="aml",
                status=aml.string("status"),
                score=aml.number("highest_score"),
                details={
                    "matches_found": aml.data.get("matches_found"),
                    "matches": matches if isinstance(matches, list) else [],
                },
                payload=dict(aml.data),
            )
        )
    return steps


def _document_step(reader: _Reader, documents: list[Mapping[str, Any]]) -> StepData:
    # One "document" step for all uploaded sides: its status is the least advanced OCR
    # status among them and its score the lowest OCR confidence.
    order = ("failed", "pending", "processing", "completed")
    statuses: list[str] = []
    confidences: list[float] = []
    for index, document in enumerate(documents):
        item = _Reader(document, reader.session_id, f"documents[{index}].")
        statuses.append(item.string("ocr_status"))
        confidence = item.number("ocr_confidence")
        if confidence is not None:
            confidences.append(confidence)
    known = [s for s in statuses if s in order]
    status = min(known, key=order.index) if known else next((s for s in statuses if s), "")
    return StepData(
        step="document",
        status=status,
        score=min(confidences) if confidences else None,
        details={
            "documents": [
                {k: d.get(k) for k in ("side", "document_type", "extracted_data") if k in d}
                for d in documents
            ]
        },
        payload={"documents": [dict(d) for d in documents]},
    )


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)
