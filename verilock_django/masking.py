"""Masked forms of applicants' personal data, for staff without ``view_applicant_pii``.

Pure (no I/O, no models). What is masked and how:

* names: the first letter of each word, the rest as ``*`` (``Jean Dupont`` → ``J*** D*****``);
* email: the first character of the local part and the domain (``j***@example.com``);
* document numbers: the last 3 characters (``******567``);
* dates of birth: the year only (``1990``);
* nationality and any other personal value: ``***``.

:func:`mask_json` applies the same rules to a payload by key name (:data:`PII_KEYS`), at any
depth, so the raw JSON shown in the admin is masked like the fields. Outcomes, statuses,
scores, ids, references and times are not personal data here and stay visible.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

#: Payload keys holding personal data, with the mask applied to their values.
PII_KEYS: dict[str, str] = {
    "first_name": "name",
    "last_name": "name",
    "applicant_name": "name",
    "full_name": "name",
    "name": "name",
    "matched_name": "name",
    "email": "email",
    "applicant_email": "email",
    "document_number": "document",
    "personal_number": "document",
    "date_of_birth": "date",
    "dob": "date",
    "nationality": "other",
    "address": "other",
    "phone": "other",
}
HIDDEN = "***"


def mask_name(value: str) -> str:
    """``Jean Dupont`` → ``J*** D*****`` (each word keeps its first letter and length)."""
    return " ".join(word[:1] + "*" * (len(word) - 1) for word in value.split())


def mask_email(value: str) -> str:
    """``jean@example.com`` → ``j***@example.com``; a value without ``@`` is hidden."""
    local, at, domain = value.rpartition("@")
    if not at or not local:
        return HIDDEN if value else ""
    return f"{local[:1]}***@{domain}"


def mask_document(value: str) -> str:
    """A document number with only its last 3 characters shown."""
    if len(value) <= 3:
        return "*" * len(value)
    return "*" * (len(value) - 3) + value[-3:]


def mask_date(value: dt.date | str | None) -> str:
    """A date of birth as its year only (``1990``); ``""`` for no date."""
    if value is None or value == "":
        return ""
    if isinstance(value, dt.date):
        return str(value.year)
    match = re.match(r"\s*(\d{4})", value)
    return match.group(1) if match else HIDDEN


def mask_value(kind: str, value: Any) -> Any:
    """``value`` masked as ``kind`` (name, email, document, date, other); non-strings hidden.

    ``None`` and empty strings stay as they are, so "not given" remains visible.
    """
    if value is None or value == "":
        return value
    if kind == "date":
        return mask_date(value if isinstance(value, (str, dt.date)) else None) or HIDDEN
    if not isinstance(value, str):
        return HIDDEN
    if kind == "name":
        return mask_name(value)
    if kind == "email":
        return mask_email(value)
    if kind == "document":
        return mask_document(value)
    return HIDDEN


def mask_json(value: Any) -> Any:
    """A copy of a JSON value with every :data:`PII_KEYS` value masked, at any depth."""
    if isinstance(value, dict):
        return {
            key: mask_value(PII_KEYS[key], item)
            if key in PII_KEYS and not isinstance(item, (dict, list))
            else mask_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_json(item) for item in value]
    return value
