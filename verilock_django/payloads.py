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

Every value the parser returns can be stored and read back on every supported database
(rules in ``storable.py``; the per-field table in ``docs/payloads.md``): the payload is made
storable first (:func:`~verilock_django.storable.storable_json`) and then read, text is cut
to its column's width, numbers no float column holds and timestamps outside
:data:`~verilock_django.storable.STORABLE_DATETIMES` become ``None``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import PayloadError
from .storable import (
    EMAIL_MAX_LENGTH,
    MAX_STEPS,
    MAX_STORED_DEPTH,
    NAME_MAX_LENGTH,
    NATIONALITY_MAX_LENGTH,
    REFERENCE_MAX_LENGTH,
    SESSION_ID_MAX_LENGTH,
    STATUS_MAX_LENGTH,
    STORABLE_DATETIMES,
    STORABLE_YEARS,
    TYPE_MAX_LENGTH,
    URL_MAX_LENGTH,
    field_label,
    number_from_text,
    step_columns,
    storable_json,
)

JSONObject = dict[str, Any]

# Gen B keeps a lifecycle status ending in "completed" plus a separate decision; Gen A folds
# the outcome into the status. A completed Gen B session is stored with its decision as
# status, so one vocabulary serves both and FINISHED_STATUSES works for either.
COMPLETED_LIFECYCLE_STATUS = "completed"
#: The status a *new* row takes from a payload that does not say its status (null, missing,
#: empty or blank): a session Verilock has just created. A stored row keeps its own status
#: instead (the store's rule, :mod:`verilock_django.store`), so it is never applied here.
DEFAULT_STATUS = "created"
# What a session id may not hold besides unprintable characters: whitespace (str.isspace's,
# as re's \s), or a character that changes the request path.
_PATH_CHANGING = re.compile(r"[\s/\\?#%]")


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
    #: ``None`` when the payload does not say (``status`` null, missing, empty or blank): the
    #: store then keeps the stored status, and a new row takes :data:`DEFAULT_STATUS`.
    status: str | None = None
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

    def with_datetimes(
        self, convert: Callable[[dt.datetime | None], dt.datetime | None]
    ) -> SessionData:
        """A copy with ``convert`` applied to each datetime (e.g. the store's time zone rule)."""
        return dataclasses.replace(
            self,
            created_at=convert(self.created_at),
            completed_at=convert(self.completed_at),
            expires_at=convert(self.expires_at),
        )


_DATE = r"(?P<year>[0-9]{4,})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
_TIMESTAMP = re.compile(
    _DATE + r"(?:[Tt ](?P<hour>[0-9]{2})(?::(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})"
    r"(?:[.,](?P<fraction>[0-9]{1,9}))?)?)?"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2})(?::?(?P<om>[0-9]{2}))?)?)?"
)
_DATE_ONLY = re.compile(_DATE)
#: The width to read a text with when it is split before it is stored.
_UNCUT = sys.maxsize


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
    if text in (".", "..") or not text.isprintable() or _PATH_CHANGING.search(text):
        raise PayloadError(field_name, "not a usable session id")
    return text


def parse_session(
    payload: object, *, max_depth: int = MAX_STORED_DEPTH, storable: bool = False
) -> SessionData:
    """Parse one session object (either documented shape) into :class:`SessionData`.

    The payload is first made storable (:func:`~verilock_django.storable.storable_json`,
    nesting bounded by ``max_depth``), then read; every value returned fits its column.
    ``storable=True`` says it already is (what ``storable_json`` returned: a stored payload,
    :func:`~verilock_django.privacy.minimise_payload`'s result), so it is read as it is.
    A ``status`` that is null, missing, empty or blank is ``None`` ("not given"), never a
    default: what it means depends on the stored row (see :class:`SessionData`). Raises
    :class:`PayloadError` naming the field for what cannot be used (a ``status`` that is not
    a string or an integer, for one).
    """
    if not isinstance(payload, Mapping):
        raise PayloadError("(body)", f"expected a JSON object, got {_type_name(payload)}")
    session_id = parse_session_id(payload.get("id"))
    try:
        clean: JSONObject = (
            dict(payload) if storable else storable_json(payload, max_depth=max_depth)
        )
    except PayloadError as exc:
        exc.session_id = session_id
        raise
    reader = _Reader(clean, session_id)

    given = reader.string("status", STATUS_MAX_LENGTH)
    status = given if given.strip() else None
    decision = reader.string("decision", STATUS_MAX_LENGTH)
    if (status == COMPLETED_LIFECYCLE_STATUS or status is None) and decision.strip():
        # A decision is given only once a session is completed: without a status, it is
        # the status too (else a stored "processing" would stand next to "approved").
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
        type=reader.string("type", TYPE_MAX_LENGTH),
        status=status,
        decision=decision,
        reference_id=reader.string("reference_id", REFERENCE_MAX_LENGTH, whole=True)
        or reader.string("external_id", REFERENCE_MAX_LENGTH, whole=True),
        steps=steps,
        applicant_first_name=first,
        applicant_last_name=last,
        applicant_email=email,
        applicant_date_of_birth=dob,
        applicant_nationality=nationality,
        hosted_url=reader.string("hosted_url", URL_MAX_LENGTH, whole=True)
        or reader.string("session_url", URL_MAX_LENGTH, whole=True),
        risk_score=reader.number("risk_score"),
        created_at=reader.timestamp("created_at"),
        completed_at=reader.timestamp("completed_at"),
        expires_at=reader.timestamp("expires_at"),
        results=results,
        payload=clean,
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
    """An ISO-8601 timestamp as an aware UTC datetime; ``None`` for null, ``""`` and out of range.

    Accepts the same forms on Python 3.10-3.13: ``YYYY-MM-DD``, optionally ``T`` (or a space)
    and ``HH``, ``HH:MM`` or ``HH:MM:SS`` with 1-9 fractional digits (cut to microseconds),
    then ``Z``/``z``, ``±HH``, ``±HH:MM`` or ``±HHMM``; without an offset it means UTC. A value
    outside :data:`STORABLE_DATETIMES` is ``None`` (the payload keeps the text). Raises
    :class:`~verilock_django.exceptions.PayloadError` naming ``field_name`` for anything else.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(field_name, f"expected an ISO-8601 timestamp, got {_type_name(value)}")
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        raise PayloadError(field_name, "not an ISO-8601 timestamp")
    part = match.groupdict()
    offset = None
    if part["sign"]:
        hours, minutes = int(part["oh"]), int(part["om"] or 0)
        if hours > 23 or minutes > 59:
            raise PayloadError(field_name, "not an ISO-8601 timestamp")
        offset = dt.timedelta(hours=hours, minutes=minutes) * (-1 if part["sign"] == "-" else 1)
    if len(part["year"]) > 4 or int(part["year"]) < 1:
        return None  # a year Python cannot hold: outside the storable range too
    try:
        # Read as UTC, then moved by the offset: the local time of a UTC timestamp as is.
        utc = dt.datetime(
            int(part["year"]),
            int(part["month"]),
            int(part["day"]),
            int(part["hour"] or 0),
            int(part["minute"] or 0),
            int(part["second"] or 0),
            int((part["fraction"] or "0")[:6].ljust(6, "0")),
            tzinfo=dt.timezone.utc,
        )
    except ValueError:
        raise PayloadError(field_name, "not an ISO-8601 timestamp") from None
    if offset:
        try:
            utc -= offset
        except OverflowError:
            return None
    low, high = STORABLE_DATETIMES
    return utc if low <= utc <= high else None


def parse_date(value: object, field_name: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` date; ``None`` for null, ``""`` and years outside
    :data:`STORABLE_YEARS`. Raises :class:`PayloadError` naming ``field_name`` otherwise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PayloadError(field_name, f"expected a YYYY-MM-DD date, got {_type_name(value)}")
    match = _DATE_ONLY.fullmatch(value.strip())
    if match is None:
        raise PayloadError(field_name, "not a YYYY-MM-DD date")
    year, month, day = match.group("year", "month", "day")
    if len(year) > 4 or int(year) not in STORABLE_YEARS:
        return None
    try:
        return dt.date(int(year), int(month), int(day))
    except ValueError:
        raise PayloadError(field_name, "not a YYYY-MM-DD date") from None


def parse_steps(payload: Mapping[str, Any], session_id: str) -> list[StepData]:
    """Only the steps of a payload already storable (a stored one), as :func:`parse_session`
    reads them; ``session_id`` names the session in errors. Raises :class:`PayloadError`
    naming the field when the steps cannot be read."""
    return _results(_Reader(payload, session_id))


class _Reader:
    """Typed reads from one payload object, raising errors that name the field."""

    def __init__(self, data: Mapping[str, Any], session_id: str, prefix: str = "") -> None:
        self.data = data
        self.session_id = session_id
        self.prefix = prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}{field_label(key)}"

    def fail(self, key: str, problem: str) -> PayloadError:
        return PayloadError(self.name(key), problem, session_id=self.session_id)

    def child(self, key: str) -> _Reader | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected an object, got {_type_name(value)}")
        return _Reader(value, self.session_id, f"{self.name(key)}.")

    def string(self, key: str, width: int, *, whole: bool = False) -> str:
        """The text cut to ``width``; or ``""`` when ``whole`` and it is longer (a cut link
        or reference would point elsewhere)."""
        value = self.data.get(key)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail(key, f"expected a string, got {_type_name(value)}")
        text = str(value)
        if len(text) > width:
            return "" if whole else text[:width]
        return text

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        written = number_from_text(value)  # a number storable_json had to write as text
        if written is not None:
            value = written
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, got {_type_name(value)}")
        try:
            number = float(value)
        except OverflowError:
            return None
        return number if math.isfinite(number) else None  # a float column holds neither

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
        try:
            return parse_date(self.data.get(key), self.name(key))
        except PayloadError as exc:
            exc.session_id = self.session_id
            raise

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
            applicant.string("first_name", NAME_MAX_LENGTH),
            applicant.string("last_name", NAME_MAX_LENGTH),
            applicant.string("email", EMAIL_MAX_LENGTH, whole=True)
            or reader.string("applicant_email", EMAIL_MAX_LENGTH, whole=True),
            applicant.date("date_of_birth"),
            applicant.string("nationality", NATIONALITY_MAX_LENGTH),
        )
    # Gen B has one full-name string: the first word is taken as the first name and the
    # rest as the last name; the payload keeps the string exactly as sent.
    first, _, last = reader.string("applicant_name", _UNCUT).strip().partition(" ")
    email = reader.string("applicant_email", EMAIL_MAX_LENGTH, whole=True)
    return first[:NAME_MAX_LENGTH], last.strip()[:NAME_MAX_LENGTH], email, None, ""


def _results(reader: _Reader) -> list[StepData]:
    results = reader.child("results")  # raises, naming the field, when not an object
    if results is None:
        return _gen_b_steps(reader)
    if len(results.data) > MAX_STEPS:
        raise reader.fail("results", f"more than {MAX_STEPS} steps")
    names = list(results.data)
    return [_step_result(results, *pair) for pair in zip(names, step_columns(names), strict=True)]


def _step_result(results: _Reader, step: str, column: str) -> StepData:
    item = results.child(step)
    if item is None:
        return StepData(step=column, status="")
    return StepData(
        step=column,
        status=item.string("status", STATUS_MAX_LENGTH),
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
                status=aml.string("status", STATUS_MAX_LENGTH),
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
        statuses.append(item.string("ocr_status", STATUS_MAX_LENGTH))
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
