"""The fake's REST routes: what Verilock documents under the API base URL.

=========================  ================================================================
``GET /sessions``          page of list items, newest first: 200, or 422 on bad parameters
``POST /sessions``         create (Gen A body with ``type``/``steps``/``applicant``, or Gen B
                           body with ``profile_id``, a UUID): 201, 400 (not JSON) or 422 with
                           the documented ``details`` (field → messages)
``GET /sessions/{id}``     the session in its own shape: 200 or 404
``POST /sessions/{id}/submit``  created → processing: 200, or 409 once past processing
=========================  ================================================================

Any other method on these paths is 405, any other path 404. Authentication, the rate
limit and faults are applied before routing, by :meth:`FakeVerilock.handle`.
"""

from __future__ import annotations

import json
import math
import random
import re
import uuid
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any, Final
from urllib.parse import parse_qs

from .account import FakeAccount
from .factories import STEPS, format_timestamp
from .replies import FakeResponse, error_reply, json_reply
from .requestlog import AuthStyle

__all__ = ["ApiRoutes", "credentials", "session_id_of"]

_SESSION_PATH: Final = re.compile(r"^/sessions/(?P<id>[^/]+)(?P<rest>/.*)?$")
_INVALID: Final = "The given data was invalid."
_URL: Final = re.compile(r"^https?://[^\s/]+")
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COUNTRY: Final = re.compile(r"^[A-Z]{2}$")


def session_id_of(path: str) -> str | None:
    """The session id a request path names, if any (``/sessions/{id}…``)."""
    match = _SESSION_PATH.match(path)
    return match.group("id") if match else None


def credentials(headers: Mapping[str, str]) -> tuple[AuthStyle | None, str | None]:
    """The auth style and key a request presents (``Authorization: Bearer`` or ``X-API-Key``)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    authorization = lowered.get("authorization", "")
    if authorization[:7].lower() == "bearer " and authorization[7:].strip():
        return "bearer", authorization[7:].strip()
    if lowered.get("x-api-key", "").strip():
        return "x-api-key", lowered["x-api-key"].strip()
    return None, None


class ApiRoutes:
    """Answers authenticated API requests from the sessions of ``account``."""

    def __init__(self, account: FakeAccount, rng: random.Random) -> None:
        self.account = account
        self.rng = rng

    def _json(self, status: int, data: Any) -> FakeResponse:
        return json_reply(self.rng, status, data)

    def _error(self, status: int, message: str, details: Any = None) -> FakeResponse:
        return error_reply(self.rng, status, message, details)

    def route(self, method: str, path: str, query: str, body: bytes) -> FakeResponse:
        """Answer one request; ``path`` is relative to the API base (``/sessions/…``)."""
        with self.account.lock:
            if path.rstrip("/") == "/sessions":
                if method == "GET":
                    return self._list(query)
                if method == "POST":
                    return self._create(body)
                return self._error(405, f"Method {method} is not allowed on /sessions.")
            match = _SESSION_PATH.match(path)
            if match is not None:
                session = self.account.find(match.group("id"))
                rest = match.group("rest") or ""
                if session is None:
                    return self._error(404, f"Session {match.group('id')} not found.")
                if rest in ("", "/") and method == "GET":
                    return self._json(200, session.payload())
                if rest == "/submit" and method == "POST":
                    if not self.account.submit(session):
                        return self._error(
                            409, f"Session {session.id} is already {session.status}."
                        )
                    return self._json(
                        200,
                        {
                            "id": session.id,
                            "status": session.status,
                            "message": "Session submitted. The result will be sent by webhook.",
                        },
                    )
                if rest in ("", "/", "/submit"):
                    return self._error(405, f"Method {method} is not allowed on {path}.")
            return self._error(404, f"No route for {method} {path}.")

    def _list(self, query: str) -> FakeResponse:
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        errors: dict[str, list[str]] = {}
        page = _int_param(params, "page", 1, errors)
        per_page = _int_param(params, "per_page", 15, errors)
        bounds: dict[str, date] = {}
        for name in ("from", "to"):
            if name in params:
                try:
                    bounds[name] = date.fromisoformat(params[name])
                except ValueError:
                    errors[name] = [f"The {name} does not match the format Y-m-d."]
        if errors:
            return self._error(422, _INVALID, errors)
        # The docs say "max 100" without saying whether larger values are rejected; the
        # fake clamps, like most Laravel-style APIs.
        per_page = min(per_page, 100)
        wanted = params.get("status") if self.account.status_filter else None
        found = []
        # Only the page's items are rendered: a listing costs what its page holds, not the
        # account's size (Gen B renders its own status words, so it is rendered to filter).
        for session in reversed(self.account.sessions):
            created = session.created_at.date()
            if "from" in bounds and created < bounds["from"]:
                continue
            if "to" in bounds and created > bounds["to"]:
                continue
            if "external_id" in params and params["external_id"] != session.reference_id:
                continue
            item = None
            if "decision" in params or (wanted and session.shape != "a"):
                item = session.payload("list")
            if wanted and wanted not in (session.status, (item or {}).get("status")):
                continue
            if "decision" in params:
                assert item is not None
                if params["decision"] != item.get("decision", session.status):
                    continue
            found.append((session, item))
        total = len(found)
        start = (page - 1) * per_page
        return self._json(
            200,
            {
                "data": [
                    item if item is not None else session.payload("list")
                    for session, item in found[start : start + per_page]
                ],
                "meta": {
                    "current_page": page,
                    "last_page": max(1, math.ceil(total / per_page)),
                    "per_page": per_page,
                    "total": total,
                },
            },
        )

    def _create(self, body: bytes) -> FakeResponse:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "The request body is not valid JSON.")
        if not isinstance(data, dict):
            return self._error(422, _INVALID, {"body": ["Must be an object."]})
        if any(key in data for key in ("type", "steps", "applicant")):
            return self._create_gen_a(data)
        return self._create_gen_b(data)

    def _create_gen_a(self, data: dict[str, Any]) -> FakeResponse:
        errors: dict[str, list[str]] = {}
        if data.get("type") != "kyc":
            errors["type"] = ["The selected type is invalid."]
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            errors["steps"] = ["The steps field is required."]
        elif any(step not in STEPS for step in steps):
            errors["steps"] = ["The selected steps are invalid."]
        person = data.get("applicant")
        if not isinstance(person, dict):
            errors["applicant"] = ["The applicant field is required."]
        else:
            for key in ("first_name", "last_name", "email"):
                if not isinstance(person.get(key), str) or not person.get(key):
                    errors[f"applicant.{key}"] = [f"The applicant.{key} field is required."]
            if "applicant.email" not in errors:
                _check_email(person, "email", errors, "applicant.email")
            birth = person.get("date_of_birth")
            if birth is not None and not _is_date(birth):
                errors["applicant.date_of_birth"] = [
                    "The applicant.date of birth does not match the format Y-m-d."
                ]
            country = person.get("nationality")
            if country is not None and not (isinstance(country, str) and _COUNTRY.match(country)):
                errors["applicant.nationality"] = [
                    "The applicant.nationality must be an ISO 3166-1 alpha-2 code."
                ]
        if "reference_id" in data and not isinstance(data["reference_id"], str):
            errors["reference_id"] = ["The reference id must be a string."]
        _check_url(data, "redirect_url", errors)
        _check_url(data, "webhook_url", errors)
        if errors:
            return self._error(422, _INVALID, errors)
        assert isinstance(steps, list) and isinstance(person, dict)  # narrowed by validation
        session = self.account.add_session(
            status="created",
            shape="a",
            reference_id=data.get("reference_id"),
            steps=steps,
            applicant=person,
            webhook_url=data.get("webhook_url"),
        )
        echo = {
            key: session.payload()[key]
            for key in ("id", "type", "status", "reference_id", "steps", "applicant", "hosted_url")
        }
        echo["created_at"] = format_timestamp(session.created_at)
        return self._json(201, echo)

    def _create_gen_b(self, data: dict[str, Any]) -> FakeResponse:
        errors: dict[str, list[str]] = {}
        profile = data.get("profile_id")
        if not isinstance(profile, str) or not profile:
            errors["profile_id"] = ["The profile id field is required."]
        elif not _is_uuid(profile):
            errors["profile_id"] = ["The profile id must be a valid UUID."]
        for key in ("applicant_email", "applicant_name", "external_id"):
            if key in data and not isinstance(data[key], str):
                errors[key] = [f"The {key.replace('_', ' ')} must be a string."]
        if "applicant_email" not in errors:
            _check_email(data, "applicant_email", errors, "applicant_email")
        expires_in = data.get("expires_in", 3600)
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, int)
            or not 300 <= expires_in <= 86400
        ):
            errors["expires_in"] = ["The expires in must be between 300 and 86400."]
        if "metadata" in data and not isinstance(data["metadata"], dict):
            errors["metadata"] = ["The metadata must be an object."]
        _check_url(data, "redirect_url", errors)
        if errors:
            return self._error(422, _INVALID, errors)
        first, _, last = str(data.get("applicant_name") or "").partition(" ")
        person: dict[str, Any] = {}
        if first:
            person.update(first_name=first, last_name=last)
        if data.get("applicant_email"):
            person["email"] = data["applicant_email"]
        expires_at = self.account.clock() + timedelta(seconds=expires_in)
        session = self.account.add_session(
            status="created",
            shape="b",
            # No external_id sent: the session has no reference (the fake invents none).
            reference_id=data.get("external_id") or "",
            applicant=person,
            expires_at=expires_at,
        )
        token = f"tok_{uuid.UUID(int=self.rng.getrandbits(128)).hex}"
        return self._json(
            201,
            {
                "id": session.id,
                "session_token": token,
                "session_url": f"https://verilock.io/verify/{token}",
                "status": "created",
                "expires_at": format_timestamp(expires_at),
            },
        )


def _int_param(
    params: Mapping[str, str], name: str, default: int, errors: dict[str, list[str]]
) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        errors[name] = [f"The {name} must be an integer."]
        return default
    if value < 1:
        errors[name] = [f"The {name} must be at least 1."]
        return default
    return value


def _check_url(data: Mapping[str, Any], key: str, errors: dict[str, list[str]]) -> None:
    value = data.get(key)
    if value is not None and not (isinstance(value, str) and _URL.match(value)):
        errors[key] = [f"The {key.replace('_', ' ')} must be a valid URL."]


def _check_email(
    data: Mapping[str, Any], key: str, errors: dict[str, list[str]], field: str
) -> None:
    value = data.get(key)
    if value and not (isinstance(value, str) and _EMAIL.match(value)):
        errors[field] = [f"The {field.replace('_', ' ')} must be a valid email address."]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
