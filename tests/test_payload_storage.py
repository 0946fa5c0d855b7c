"""Odd values from the API are stored and read back on every database, or refused by name.

Each test is one example of a kind the storage rules handle (``docs/payloads.md``, "Storage
rules"); the property-based test in ``test_payload_properties.py`` covers the kinds at large.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from verilock_django.exceptions import PayloadError
from verilock_django.models import Session, StepResult, WebhookEvent
from verilock_django.payloads import parse_timestamp
from verilock_django.storable import NATIONALITY_MAX_LENGTH, STEP_MAX_LENGTH
from verilock_django.store import store_session
from verilock_django.webhooks import parse_envelope, store_delivery

from .conftest import SEED_ID

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc


def stored(payload: dict[str, Any]) -> Session:
    """Store ``payload``, then read it back the ways the app and the admin do."""
    store_session(payload)
    assert len(list(Session.objects.all())) == 1
    session = Session.objects.get(pk=payload["id"])
    list(session.results.all())
    return session


def snapshot(session_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    row = dict(Session.objects.filter(pk=session_id).values().get())
    steps = [
        dict(s) for s in StepResult.objects.filter(session_id=session_id).order_by("step").values()
    ]
    return row, steps


def nested(depth: int) -> dict[str, Any]:
    """``{"a": {"a": … {}}}`` with ``depth`` objects, built without recursion."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_a_nul_character_in_a_name_is_dropped_from_column_and_payload(
    seed: dict[str, Any],
) -> None:
    seed["applicant"]["last_name"] = "Marchet\u0000ti"  # OCR'd text can hold NUL
    session = stored(seed)
    assert session.applicant_last_name == "Marchetti"
    assert session.payload["applicant"]["last_name"] == "Marchetti"


def test_a_nationality_spelt_out_fits_the_column(seed: dict[str, Any]) -> None:
    seed["applicant"]["nationality"] = "United Kingdom of Great Britain."  # 32 characters
    session = stored(seed)
    assert session.applicant_nationality == "United Kingdom of Great Britain."


def test_a_value_longer_than_its_column_is_cut_there_and_kept_whole_in_the_payload(
    seed: dict[str, Any],
) -> None:
    seed["applicant"]["nationality"] = "N" * 100
    session = stored(seed)
    assert session.applicant_nationality == "N" * NATIONALITY_MAX_LENGTH
    assert session.payload["applicant"]["nationality"] == "N" * 100


def test_an_over_long_link_or_reference_leaves_its_column_empty(seed: dict[str, Any]) -> None:
    # A cut link or reference would point at something else: better none at all.
    seed["hosted_url"] = "https://verilock.io/verify/" + "x" * 3000
    seed["reference_id"] = "usr_" + "9" * 300
    session = stored(seed)
    assert (session.hosted_url, session.reference_id) == ("", "")
    assert session.payload["reference_id"] == seed["reference_id"]


def test_nan_in_a_field_the_app_never_reads_is_stored_as_text(seed: dict[str, Any]) -> None:
    seed["metadata"] = {"image_quality": math.nan, "gain": math.inf}
    session = stored(seed)
    assert session.payload["metadata"] == {"image_quality": "NaN", "gain": "Infinity"}


def test_a_nan_score_is_null_in_the_column_and_text_in_the_payload(seed: dict[str, Any]) -> None:
    seed["results"]["face_match"]["score"] = math.nan
    session = stored(seed)
    step = session.results.get(step="face_match")
    assert step.score is None
    assert step.payload["score"] == "NaN"


def test_a_score_of_400_digits_is_null_in_the_column_and_kept_in_the_payload(
    seed: dict[str, Any],
) -> None:
    seed["results"]["face_match"]["score"] = json.loads("9" * 400)
    session = stored(seed)
    step = session.results.get(step="face_match")
    assert step.score is None
    assert session.payload["results"]["face_match"]["score"] == "9" * 400


def test_a_step_name_with_a_lone_surrogate_is_stored_with_a_replacement_character(
    seed: dict[str, Any],
) -> None:
    seed["results"]["video\ud800"] = {"status": "pend\udfffing"}
    session = stored(seed)
    step = session.results.get(step="video\ufffd")
    assert step.status == "pend\ufffding"


def test_over_long_step_names_sharing_a_prefix_stay_distinct_steps(seed: dict[str, Any]) -> None:
    long = "x" * 100
    seed["results"] = {long + "1": {"status": "a"}, long + "2": {"status": "b"}}
    session = stored(seed)
    names = sorted(session.results.values_list("step", flat=True))
    assert len(set(names)) == 2
    assert all(len(name) == STEP_MAX_LENGTH and name.startswith("x" * 50) for name in names)


def test_step_names_differing_in_case_accent_or_trailing_space_are_distinct_steps(
    seed: dict[str, Any],
) -> None:
    # MySQL's and MariaDB's default collations ignore case, accents and trailing spaces;
    # the step column compares exactly there too (fields.ExactCharField).
    seed["results"] = {"document": {}, "Document": {}, "docúment ": {}, "docúment": {}}
    session = stored(seed)
    names = list(session.results.values_list("step", flat=True))
    assert names == ["document", "Document", "docúment ", "docúment"]


def test_a_step_the_provider_respells_takes_the_new_spelling(seed: dict[str, Any]) -> None:
    # The stored "document" is gone once the provider sends "DOCUMENT" instead.
    seed["results"] = {"document": {"status": "pending"}}
    stored(seed)
    seed["results"] = {"": None, "DOCUMENT": {"status": "approved"}}
    session = stored(seed)
    rows = list(session.results.values_list("step", "status"))
    assert rows == [("", ""), ("DOCUMENT", "approved")]


def test_a_timestamp_past_year_9999_in_utc_is_null_and_the_admin_still_loads(
    seed: dict[str, Any], admin_client: Client
) -> None:
    seed["completed_at"] = "9999-12-31T23:59:59-14:00"
    session = stored(seed)
    assert session.completed_at is None
    assert session.payload["completed_at"] == "9999-12-31T23:59:59-14:00"
    changelist = admin_client.get(reverse("admin:verilock_django_session_changelist"))
    assert changelist.status_code == 200
    change = admin_client.get(
        reverse("admin:verilock_django_session_change", args=[quote(SEED_ID)])
    )
    assert change.status_code == 200


@pytest.mark.parametrize(
    "text", ["0001-01-01T00:00:00Z", "0999-12-31T23:59:59Z", "10000-01-01T00:00:00Z"]
)
def test_timestamps_outside_every_databases_range_are_null(
    seed: dict[str, Any], text: str
) -> None:
    seed["created_at"] = text
    assert stored(seed).created_at is None


def test_a_timestamp_with_seven_fractional_digits_is_read_on_every_python(
    seed: dict[str, Any],
) -> None:
    # Python 3.10's datetime.fromisoformat refuses this form; the parser is our own.
    seed["completed_at"] = "2026-03-15T10:45:22.1234567Z"
    session = stored(seed)
    assert session.completed_at == dt.datetime(2026, 3, 15, 10, 45, 22, 123456, tzinfo=UTC)


def test_nesting_5000_levels_deep_is_refused_by_name_and_leaves_the_row_unchanged(
    seed: dict[str, Any],
) -> None:
    store_session(seed)
    before = snapshot(SEED_ID)
    poisoned = json.loads(json.dumps(seed))
    poisoned["status"] = "review"
    poisoned["results"]["document"]["details"] = nested(5000)
    with pytest.raises(PayloadError) as caught:
        store_session(poisoned)
    assert caught.value.field.startswith("results.document.details.a.a")
    assert caught.value.problem == "nested deeper than 31 levels"
    assert caught.value.session_id == SEED_ID
    assert snapshot(SEED_ID) == before


def test_an_aware_timestamp_is_stored_naive_when_the_project_has_use_tz_off(
    seed: dict[str, Any], settings: Any
) -> None:
    settings.USE_TZ = False
    settings.TIME_ZONE = "Europe/Paris"
    seed["completed_at"] = "2026-03-15T10:45:22Z"
    session = stored(seed)
    assert session.completed_at == dt.datetime(2026, 3, 15, 11, 45, 22)  # Paris, naive
    assert session.created_at == dt.datetime(2026, 3, 15, 11, 30)


def test_a_webhook_with_an_aware_timestamp_is_stored_when_use_tz_is_off(
    settings: Any,
) -> None:
    settings.USE_TZ = False
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    body = json.dumps(
        {
            "event": "session.completed",
            "data": {"session_id": "ses_1"},
            "timestamp": "2026-03-15T10:45:22Z",
        }
    ).encode()
    event, created = store_delivery(parse_envelope(body))
    assert created
    assert WebhookEvent.objects.get(pk=event.pk).occurred_at == dt.datetime(
        2026, 3, 15, 10, 45, 22
    )


def test_a_webhook_body_with_nul_nan_and_huge_numbers_is_stored_cleaned(settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    body = (
        b'{"event": "session.completed\\u0000", "webhook_id": "wh_\\ud800",'
        b' "data": {"session_id": "ses_1", "quality": NaN, "n": 1' + b"0" * 30 + b"}}"
    )
    event, _ = store_delivery(parse_envelope(body))
    event = WebhookEvent.objects.get(pk=event.pk)
    assert (event.event_type, event.webhook_id) == ("session.completed", "wh_\ufffd")
    assert event.payload["data"] == {"session_id": "ses_1", "quality": "NaN", "n": "1" + "0" * 30}


def test_a_webhook_body_with_numbers_beyond_a_float_is_stored_as_their_text(
    settings: Any,
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    body = b'{"event": "session.completed", "data": {"a": 1e999, "b": -2E+308, "c": 1.5e3}}'
    envelope = parse_envelope(body)
    assert not envelope.storable  # read as sent, cleaned when stored
    event, _ = store_delivery(envelope)
    stored_payload = WebhookEvent.objects.get(pk=event.pk).payload
    assert stored_payload["data"] == {"a": "Infinity", "b": "-Infinity", "c": 1500.0}


@pytest.mark.parametrize("session_id", ["ses_\\u0000x", "ses_\\ud800x"])
def test_a_webhook_session_id_is_checked_as_sent_not_cleaned_into_another(
    session_id: str,
) -> None:
    # Found by the break-test: cleaned first, the id became "ses_x" (another session),
    # which was then fetched; every other door refuses such an id.
    body = b'{"event": "session.completed", "data": {"session_id": "%s"}}' % session_id.encode()
    assert parse_envelope(body).session_id == ""


def test_the_timestamp_parser_reads_the_same_forms_on_every_python() -> None:
    expected = dt.datetime(2026, 3, 15, 10, 45, 22, 123456, tzinfo=UTC)
    for text in (
        "2026-03-15T10:45:22.1234567Z",
        "2026-03-15t10:45:22.123456789z",
        "2026-03-15T12:45:22.123456+02:00",
        "2026-03-15T12:45:22,123456+0200",
        "2026-03-15T12:45:22.123456+02",
        "2026-03-15 10:45:22.123456",
    ):
        assert parse_timestamp(text, "completed_at") == expected, text
    assert parse_timestamp("2026-03-15", "x") == dt.datetime(2026, 3, 15, tzinfo=UTC)
    assert parse_timestamp("2026-03-15T10:45", "x") == dt.datetime(2026, 3, 15, 10, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    ["2026-03-15T10:45:22.Z", "2026-02-30T00:00:00Z", "2026-03-15T10:45:22+24:00", "15/03/2026"],
)
def test_the_timestamp_parser_refuses_what_is_not_a_timestamp(text: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_timestamp(text, "completed_at")
    assert caught.value.field == "completed_at"
