"""Creating sessions: both request shapes, field errors, no retries, nothing half-stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses
from django.contrib.auth import get_user_model
from django.test import override_settings

from verilock_django.create import build_body, create_session, session_for_user
from verilock_django.exceptions import (
    CreateOutcomeUnknownError,
    FieldValidationError,
    StorageError,
    VerilockConfigurationError,
)
from verilock_django.models import Session
from verilock_django.testing.responses_api import InProcessVerilock

from .conftest import API_URL

pytestmark = pytest.mark.django_db

PROFILE = "0b5d3c8e-7f4a-4e21-9c1d-2f6a8b9e0c13"


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create_user(
        "ana", email="ana@example.com", first_name="Ana", last_name="Lima"
    )


def sent_bodies(api: InProcessVerilock) -> list[dict[str, Any]]:
    """The JSON bodies of every POST the fake received (read from the `responses` log)."""
    return [
        json.loads(call.request.body)
        for call in api.mock.calls
        if call.request.method == "POST" and call.request.body
    ]


def test_shape_b_sends_the_profile_and_stores_the_session_with_its_url(
    verilock_api: InProcessVerilock, user: Any
) -> None:
    created = create_session(user=user, redirect_url="https://app.example/verify/return/")

    (body,) = sent_bodies(verilock_api)
    assert body == {
        "profile_id": PROFILE,
        "external_id": str(user.pk),
        "redirect_url": "https://app.example/verify/return/",
    }  # no name or email: in shape "b" personal data is sent only when given
    session = Session.objects.get(pk=created.session.pk)
    assert session.user == user
    assert session.reference_id == str(user.pk)
    assert session.status == "created"
    assert created.url == session.hosted_url
    assert created.url.startswith("https://verilock.io/verify/tok_")
    assert created.session.created_at is not None  # Gen B's answer has none; "now" until fetched
    remote = verilock_api.payload(session.pk)
    assert remote["external_id"] == str(user.pk)


@override_settings(VERILOCK_CREATE_SHAPE="a", VERILOCK_CREATE_STEPS=["document", "selfie"])
def test_shape_a_sends_type_steps_and_the_users_name(
    verilock_api: InProcessVerilock, user: Any
) -> None:
    created = create_session(user=user)

    (body,) = sent_bodies(verilock_api)
    assert body == {
        "type": "kyc",
        "steps": ["document", "selfie"],
        "applicant": {"first_name": "Ana", "last_name": "Lima", "email": "ana@example.com"},
        "reference_id": str(user.pk),
    }
    assert created.url == f"https://verilock.io/verify/{created.session.pk}"
    session = Session.objects.get(pk=created.session.pk)
    assert (session.user, session.type, session.steps) == (user, "kyc", ["document", "selfie"])
    assert session.applicant_first_name == "Ana"


def test_a_later_fetch_in_the_sdk_shape_keeps_the_hosted_url(
    verilock_api: InProcessVerilock, user: Any
) -> None:
    from verilock_django.sync import sync_session

    created = create_session(user=user)
    sync_session(created.session.pk)  # Gen B's read model has no session_url

    session = Session.objects.get(pk=created.session.pk)
    assert session.hosted_url == created.url
    assert session.user == user


def test_an_idempotency_key_is_sent_as_a_header(
    verilock_api: InProcessVerilock, user: Any
) -> None:
    create_session(user=user, idempotency_key="signup-42")
    (call,) = [c for c in verilock_api.mock.calls if c.request.method == "POST"]
    assert call.request.headers["Idempotency-Key"] == "signup-42"


def test_without_a_profile_shape_b_refuses_before_sending(
    verilock_api: InProcessVerilock, user: Any
) -> None:
    with (
        override_settings(VERILOCK_PROFILE_ID=""),
        pytest.raises(VerilockConfigurationError, match="VERILOCK_PROFILE_ID"),
    ):
        create_session(user=user)
    assert verilock_api.total_requests == 0


def test_a_422_names_each_field_with_the_providers_messages(
    verilock_api: InProcessVerilock, user: Any
) -> None:
    with pytest.raises(FieldValidationError) as excinfo:
        create_session(user=user, redirect_url="not a url", expires_in=30)
    error = excinfo.value
    assert error.status_code == 422
    assert error.field_errors == {
        "expires_in": ["The expires in must be between 300 and 86400."],
        "redirect_url": ["The redirect url must be a valid URL."],
    }
    # The refused fields by name; their messages stay on field_errors, out of the text.
    assert "fields refused: expires_in, redirect_url" in str(error)
    assert "must be a valid URL" not in str(error)
    assert not Session.objects.exists()


def test_a_422_with_the_sdks_errors_key_is_read_too(
    mocked: responses.RequestsMock, user: Any
) -> None:
    body = {"error": "validation_error", "message": "Invalid.", "errors": {"profile_id": "bad"}}
    mocked.post(f"{API_URL}/sessions", json=body, status=422)
    with pytest.raises(FieldValidationError) as excinfo:
        create_session(user=user)
    assert excinfo.value.field_errors == {"profile_id": ["bad"]}


@override_settings(VERILOCK_MAX_RETRIES=3)
@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_is_not_retried_and_says_the_outcome_is_unknown(
    verilock_api: InProcessVerilock, user: Any, status: int
) -> None:
    verilock_api.fail_next(status=status, times=3)
    with pytest.raises(CreateOutcomeUnknownError) as excinfo:
        create_session(user=user)
    assert verilock_api.total_requests == 1  # GETs would have been retried three times
    message = str(excinfo.value)
    assert "not retried" in message and "may or may not" in message
    assert "--discover" in message
    assert excinfo.value.status_code == status
    assert not Session.objects.exists()


@override_settings(VERILOCK_MAX_RETRIES=3)
def test_a_timeout_is_not_retried_stores_nothing_and_says_how_to_reconcile(
    verilock_api: InProcessVerilock, user: Any
) -> None:
    verilock_api.timeout_next(times=3)
    with pytest.raises(CreateOutcomeUnknownError) as excinfo:
        create_session(user=user)
    assert verilock_api.total_requests == 1
    assert "Timed out" in str(excinfo.value)
    assert "sync_verilock_sessions --discover" in str(excinfo.value)
    assert not Session.objects.exists()


def test_a_session_verilock_created_but_this_database_could_not_store_names_its_id(
    verilock_api: InProcessVerilock, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("verilock_django.create.store_created", broken)
    with pytest.raises(StorageError) as excinfo:
        create_session(user=user)
    (remote,) = verilock_api.sessions
    assert remote.id in str(excinfo.value)
    assert f"sync_verilock_sessions {remote.id}" in str(excinfo.value)


def test_session_for_user_reuses_the_open_session_instead_of_creating_one_per_click(
    verilock_api: InProcessVerilock, user: Any
) -> None:
    first = session_for_user(user)
    second = session_for_user(user)
    assert (first.created, second.created) == (True, False)
    assert second.session.pk == first.session.pk and second.url == first.url
    assert len(verilock_api.sessions) == 1

    verilock_api.complete(first.session.pk, "declined")
    from verilock_django.sync import sync_session

    sync_session(first.session.pk)
    third = session_for_user(user)  # a declined session cannot be resumed: a new one
    assert third.created and third.session.pk != first.session.pk


def test_build_body_leaves_out_what_is_empty() -> None:
    assert build_body(shape="b", profile_id="p", reference_id="", expires_in=None) == {
        "profile_id": "p"
    }
    assert build_body(shape="b", profile_id="p", applicant_first_name="Ana") == {
        "profile_id": "p",
        "applicant_name": "Ana",
    }
    with pytest.raises(ValueError, match="shape"):
        build_body(shape="c")
