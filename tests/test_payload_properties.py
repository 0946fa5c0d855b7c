"""Property: any payload of either documented shape is stored and read back, or refused by name.

Hypothesis builds Gen A and Gen B session objects whose fields hold arbitrary values: text
with NUL and lone surrogates, long text, huge and non-finite numbers, extreme and malformed
timestamps, deep nesting, many steps, and wrong types. Each one is stored over a good row of
the same session, then either it reads back through the ORM and the admin exactly as the
parser promised, or ``store_session`` raised a ``PayloadError`` naming a field, quoting no
applicant data, and the stored row is unchanged. Examples: 100 locally, 500 with ``CI`` set
(the profiles are in ``conftest.py``); run under SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.db import transaction
from django.test import Client
from django.urls import reverse
from hypothesis import event, given
from hypothesis import strategies as st

from verilock_django.clock import stored_datetime
from verilock_django.exceptions import PayloadError
from verilock_django.models import Session, StepResult
from verilock_django.payloads import SessionData, parse_session
from verilock_django.privacy import minimise_payload
from verilock_django.storable import storable_json
from verilock_django.store import session_values, store_session

pytestmark = pytest.mark.django_db

SID = "ses_property"
#: Applicant data planted in values; no error message may quote it.
CANARY = "Dupont"

# -- strategies --------------------------------------------------------------------------

ODD_CHARACTERS = st.one_of(
    st.characters(exclude_categories=()),  # surrogates and controls included
    st.sampled_from(["\x00", "\ud800", "\udfff", "\U0001f600", "é", " "]),
)
keys = st.one_of(st.text(max_size=12), st.text(ODD_CHARACTERS, max_size=12)).filter(
    lambda key: CANARY not in key
)
plain_text = st.text(st.characters(max_codepoint=127), max_size=12)  # ASCII, controls too
odd_text = st.text(ODD_CHARACTERS, max_size=12)
poisoned_text = st.builds(
    lambda before, bad, after: before + bad + after,
    st.one_of(plain_text, odd_text),
    st.sampled_from(["\x00", "\ud800", "\udfff", "\udc00\x00"]),
    st.one_of(plain_text, odd_text),
)
short_text = st.one_of(
    plain_text,
    odd_text,
    poisoned_text,
    st.sampled_from([f"Jean {CANARY}", f"jean.{CANARY.lower()}@example.com", "approved"]),
)
long_text = st.builds(
    lambda piece, times: piece * times,
    st.text(ODD_CHARACTERS, min_size=1, max_size=3),
    st.integers(1, 3000),
)
texts = st.one_of(short_text, short_text, long_text)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**63 + 1),
    st.builds(lambda digits: int("9" * digits), st.integers(19, 400)),
    st.floats(),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)


def wrap(value: Any, levels: int) -> Any:
    """``value`` inside ``levels`` alternating lists and objects."""
    for level in range(levels):
        value = [value] if level % 2 else {"deeper": value}
    return value


anything = st.one_of(json_values, st.builds(wrap, json_values, st.integers(1, 26)))
# Beyond the stored limit (31 levels), up to where Python's own JSON code would recurse deep.
too_deep = st.builds(wrap, json_values, st.integers(30, 300))


def sometimes(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``strategy`` nine times in ten, else any JSON value at all (usually a wrong type)."""
    return st.integers(0, 9).flatmap(lambda n: anything if n == 0 else strategy)


def format_timestamp(moment: dt.datetime, offset: int, digits: int, style: int) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06d}{moment.microsecond % 1000:03d}"[:digits]
    sign, minutes = ("-" if offset < 0 else "+"), abs(offset)
    zone = (
        "Z",
        "z",
        "",
        f"{sign}{minutes // 60:02d}:{minutes % 60:02d}",
        f"{sign}{minutes // 60:02d}{minutes % 60:02d}",
    )[style]
    return text + zone


timestamps = st.one_of(
    st.builds(
        format_timestamp,
        st.datetimes(min_value=dt.datetime(1, 1, 1)),
        st.integers(-(23 * 60 + 59), 23 * 60 + 59),
        st.integers(0, 9),
        st.integers(0, 4),
    ),
    st.sampled_from(
        [
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "10000-01-01T00:00:00Z",
            "2026-03-15T10:45:22.1234567Z",
            "2026-03-15",
        ]
    ),
    st.none(),
)
timestamps = sometimes(timestamps)
dates = sometimes(st.dates().map(lambda day: f"{day.year:04d}-{day:%m-%d}"))
statuses = sometimes(
    st.one_of(
        st.sampled_from(["created", "in_progress", "review", "approved", "declined", "completed"]),
        texts,
    )
)


# Names MySQL's and MariaDB's case- and accent-insensitive collations take for one.
step_names = st.one_of(keys, st.sampled_from(["document", "Document", "DOCUMENT ", "docúment"]))
step_object = sometimes(
    st.fixed_dictionaries(
        {},
        optional={
            "status": sometimes(texts),
            "score": sometimes(numbers),
            "details": sometimes(st.dictionaries(keys, anything, max_size=4)),
            "type": texts,
        },
    )
)
common = {
    "status": statuses,
    "created_at": timestamps,
    "completed_at": timestamps,
    "expires_at": timestamps,
}
gen_a = st.fixed_dictionaries(
    {"id": st.just(SID)},
    optional={
        **common,
        "type": sometimes(texts),
        "reference_id": sometimes(texts),
        "steps": sometimes(st.lists(texts, max_size=6)),
        "hosted_url": sometimes(texts),
        "applicant": sometimes(
            st.fixed_dictionaries(
                {},
                optional={
                    "first_name": sometimes(texts),
                    "last_name": sometimes(texts),
                    "email": sometimes(texts),
                    "date_of_birth": dates,
                    "nationality": sometimes(texts),
                },
            )
        ),
        "results": sometimes(
            st.one_of(
                st.dictionaries(step_names, step_object, max_size=8),
                st.dictionaries(keys, step_object, min_size=30, max_size=200),  # many steps
            )
        ),
        "metadata": anything,
    },
)
document = st.fixed_dictionaries(
    {},
    optional={
        "side": texts,
        "document_type": texts,
        "ocr_status": sometimes(texts),
        "ocr_confidence": sometimes(numbers),
        "extracted_data": anything,
    },
)
gen_b = st.fixed_dictionaries(
    {"id": st.just(SID)},
    optional={
        **common,
        "decision": statuses,
        "external_id": sometimes(texts),
        "applicant_name": sometimes(texts),
        "applicant_email": sometimes(texts),
        "risk_score": sometimes(numbers),
        "session_url": sometimes(texts),
        "documents": sometimes(st.lists(document, max_size=6)),
        "selfie": sometimes(
            st.fixed_dictionaries(
                {},
                optional={
                    "face_match_score": sometimes(numbers),
                    "liveness_score": sometimes(numbers),
                    "liveness_passed": sometimes(st.booleans()),
                },
            )
        ),
        "aml_screening": sometimes(
            st.fixed_dictionaries(
                {},
                optional={
                    "status": sometimes(texts),
                    "highest_score": sometimes(numbers),
                    "matches_found": numbers,
                    "matches": anything,
                },
            )
        ),
    },
)
extra_fields = st.builds(
    lambda extra, nested: {**extra, **nested},
    st.dictionaries(keys, anything, max_size=3),
    st.integers(0, 9).flatmap(
        lambda n: too_deep.map(lambda value: {"nested": value}) if n == 0 else st.just({})
    ),
)
payloads = st.builds(
    lambda extra, known: {**extra, **known}, extra_fields, st.one_of(gen_a, gen_b)
)

GOOD = {
    "id": SID,
    "status": "created",
    "applicant": {"first_name": "Ana", "last_name": "Pérez"},
    "results": {"document": {"status": "pending", "score": 0.5}},
}


# -- helpers -----------------------------------------------------------------------------


def same_json(a: Any, b: Any) -> bool:
    """JSON equality up to how a database writes numbers back (``1e16`` may return as an int)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def snapshot() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    row = dict(Session.objects.filter(pk=SID).values().get())
    steps = [dict(s) for s in StepResult.objects.filter(session_id=SID).order_by("step").values()]
    return row, steps


def assert_stored_as_parsed(expected: SessionData, admin_client: Client) -> None:
    session = Session.objects.get(pk=SID)
    assert list(Session.objects.all()) == [session]
    for name, value in session_values(expected).items():
        if name == "hosted_url":
            continue  # never stored from a fetched payload (see docs/data-protection.md)
        assert same_json(getattr(session, name), value), name
    rows = list(session.results.all())
    assert [(r.step, r.status) for r in rows] == [(s.step, s.status) for s in expected.results]
    for row, step in zip(rows, expected.results, strict=True):
        assert row.score == step.score or (row.score is None and step.score is None)
        assert same_json(row.details, step.details) and same_json(row.payload, step.payload)
    for url in (
        reverse("admin:verilock_django_session_changelist"),
        reverse("admin:verilock_django_session_change", args=[quote(SID)]),
    ):
        assert admin_client.get(url).status_code == 200


# -- the property ------------------------------------------------------------------------


@given(payload=payloads)
def test_any_payload_is_stored_and_read_back_or_refused_by_name(
    payload: dict[str, Any], admin_client: Client
) -> None:
    with transaction.atomic():
        store_session(GOOD)
        before = snapshot()
        try:
            expected = parse_session(minimise_payload(payload)).with_datetimes(stored_datetime)
        except PayloadError:
            # The store refuses exactly what the parser refuses, by name, writing nothing.
            event("refused")
            with pytest.raises(PayloadError) as caught:
                store_session(payload)
            assert caught.value.field and caught.value.session_id == SID
            assert CANARY not in str(caught.value)
            assert snapshot() == before
        else:
            event("stored")
            store_session(payload)
            assert same_json(expected.payload, storable_json(minimise_payload(payload)))
            assert_stored_as_parsed(expected, admin_client)
        transaction.set_rollback(True)


@given(payload=payloads)
def test_the_stored_payload_reads_as_the_original(payload: dict[str, Any]) -> None:
    # The store re-reads a stored payload to compare steps: it must read as the original did.
    try:
        first = parse_session(payload)
    except PayloadError:
        return
    assert storable_json(first.payload) == first.payload
    assert parse_session(first.payload) == first
