from __future__ import annotations

from typing import Any

import pytest
import requests
import responses
from django.test import override_settings

from verilock_django.client import VerilockClient, get_client
from verilock_django.exceptions import (
    AuthenticationError,
    FieldValidationError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    VerilockConfigurationError,
    VerilockError,
)

from .conftest import API_URL, SEED_ID

URL = f"{API_URL}/sessions/{SEED_ID}"
KEY = "test-key"


def test_get_session_returns_the_json_object(
    mocked: responses.RequestsMock, seed: dict[str, Any]
) -> None:
    mocked.get(URL, json=seed)
    assert VerilockClient().get_session(SEED_ID) == seed


def test_both_auth_header_styles_are_sent_by_default(mocked: responses.RequestsMock) -> None:
    mocked.get(URL, json={"id": SEED_ID})
    VerilockClient().get_session(SEED_ID)
    headers = mocked.calls[0].request.headers
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["X-API-Key"] == KEY
    assert headers["Accept"] == "application/json"


@pytest.mark.parametrize(
    ("style", "present", "absent"),
    [("bearer", "Authorization", "X-API-Key"), ("x-api-key", "X-API-Key", "Authorization")],
)
def test_auth_header_setting_chooses_one_style(
    mocked: responses.RequestsMock, style: str, present: str, absent: str
) -> None:
    mocked.get(URL, json={"id": SEED_ID})
    with override_settings(VERILOCK_AUTH_HEADER=style):
        VerilockClient().get_session(SEED_ID)
    headers = mocked.calls[0].request.headers
    assert present in headers
    assert absent not in headers


def test_settings_are_read_at_call_time(mocked: responses.RequestsMock) -> None:
    mocked.get("https://other.test/v1/sessions/ses_1", json={"id": "ses_1"})
    client = get_client()
    with override_settings(VERILOCK_API_URL="https://other.test/v1/", VERILOCK_API_KEY="k2"):
        assert client.get_session("ses_1") == {"id": "ses_1"}
    assert mocked.calls[0].request.headers["X-API-Key"] == "k2"


def test_session_id_is_url_quoted(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API_URL}/sessions/ses%2F..%2Fadmin", json={"id": "ses/../admin"})
    VerilockClient().get_session("ses/../admin")
    assert mocked.calls[0].request.url == f"{API_URL}/sessions/ses%2F..%2Fadmin"


def test_timeout_is_set_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def fake_request(self: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        raise requests.exceptions.ConnectTimeout("boom")

    monkeypatch.setattr(requests.Session, "request", fake_request)
    with override_settings(VERILOCK_TIMEOUT=3.5), pytest.raises(TransportError):
        VerilockClient().get_session(SEED_ID)
    assert seen == [3.5]


@pytest.mark.parametrize(
    ("status", "body", "error_class", "code"),
    [
        (
            401,
            {
                "error": "authentication_error",
                "message": "Invalid or missing API key.",
                "details": None,
            },
            AuthenticationError,
            "authentication_error",
        ),
        (
            401,
            {"error": "Unauthorized", "message": "Invalid or missing API key."},
            AuthenticationError,
            "Unauthorized",
        ),
        (
            403,
            {"error": "forbidden", "message": "Plan does not allow this."},
            AuthenticationError,
            "forbidden",
        ),
        (
            404,
            {"error": "not_found", "message": "Session not found.", "details": None},
            NotFoundError,
            "not_found",
        ),
        (
            422,
            {"error": "validation_error", "message": "The given data was invalid.", "details": {}},
            FieldValidationError,
            "validation_error",
        ),
        (
            500,
            {"error": "server_error", "message": "Internal error."},
            ServerError,
            "server_error",
        ),
        (503, {"error": "server_error", "message": "Try later."}, ServerError, "server_error"),
    ],
)
def test_error_statuses_map_to_typed_exceptions(
    mocked: responses.RequestsMock,
    status: int,
    body: dict[str, Any],
    error_class: type[VerilockError],
    code: str,
) -> None:
    mocked.get(URL, json=body, status=status, headers={"X-Request-Id": "req_123"})
    with pytest.raises(error_class) as excinfo:
        VerilockClient().get_session(SEED_ID)
    error = excinfo.value
    assert type(error) is error_class
    assert error.status_code == status
    assert error.error_code == code
    assert error.request_id == "req_123"
    assert error.session_id == SEED_ID
    assert body["message"] in str(error)
    assert "req_123" in str(error)


def test_rate_limit_keeps_retry_after(mocked: responses.RequestsMock) -> None:
    mocked.get(
        URL,
        status=429,
        json={
            "error": "rate_limit_exceeded",
            "message": "Too many requests.",
            "details": {"retry_after": 30},
        },
        headers={"Retry-After": "12"},
    )
    with pytest.raises(RateLimitedError) as excinfo:
        VerilockClient().get_session(SEED_ID)
    assert excinfo.value.retry_after == 12.0


def test_rate_limit_falls_back_to_body_retry_after(mocked: responses.RequestsMock) -> None:
    mocked.get(
        URL, status=429, json={"error": "rate_limit_exceeded", "details": {"retry_after": 30}}
    )
    with pytest.raises(RateLimitedError) as excinfo:
        VerilockClient().get_session(SEED_ID)
    assert excinfo.value.retry_after == 30.0


def test_html_error_page_is_a_server_error_with_the_reason(mocked: responses.RequestsMock) -> None:
    mocked.get(
        URL, status=502, body="<html><body>Bad gateway</body></html>", content_type="text/html"
    )
    with pytest.raises(ServerError) as excinfo:
        VerilockClient().get_session(SEED_ID)
    assert excinfo.value.status_code == 502
    assert "Bad Gateway" in str(excinfo.value)


@pytest.mark.parametrize("body", ["<html>maintenance</html>", "{not json", ""])
def test_non_json_success_body_is_invalid_response(
    mocked: responses.RequestsMock, body: str
) -> None:
    mocked.get(URL, status=200, body=body)
    with pytest.raises(InvalidResponseError, match="not JSON"):
        VerilockClient().get_session(SEED_ID)


def test_json_that_is_not_an_object_is_invalid_response(mocked: responses.RequestsMock) -> None:
    mocked.get(URL, json=[{"id": SEED_ID}])
    with pytest.raises(InvalidResponseError, match="expected an object"):
        VerilockClient().get_session(SEED_ID)


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError("Connection reset by peer"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.SSLError("bad handshake"),
    ],
)
def test_transport_errors_are_wrapped(mocked: responses.RequestsMock, exc: Exception) -> None:
    mocked.get(URL, body=exc)
    with pytest.raises(TransportError) as excinfo:
        VerilockClient().get_session(SEED_ID)
    assert excinfo.value.__cause__ is exc
    assert excinfo.value.session_id == SEED_ID


def test_missing_key_is_a_configuration_error_not_a_runtime_one(
    mocked: responses.RequestsMock,
) -> None:
    with (
        override_settings(VERILOCK_API_KEY=""),
        pytest.raises(VerilockConfigurationError) as excinfo,
    ):
        VerilockClient().get_session(SEED_ID)
    assert not isinstance(excinfo.value, VerilockError)
    assert len(mocked.calls) == 0


def test_key_never_appears_in_errors_or_repr(mocked: responses.RequestsMock) -> None:
    secret = "qi_live_supersecret_123"
    mocked.get(URL, status=401, json={"error": "authentication_error", "message": "Invalid key."})
    client = VerilockClient(api_key=secret)
    with pytest.raises(AuthenticationError) as excinfo:
        client.get_session(SEED_ID)
    assert secret not in str(excinfo.value)
    assert secret not in repr(excinfo.value)
    assert secret not in repr(client)


def test_list_sessions_sends_documented_query(mocked: responses.RequestsMock) -> None:
    body = {"data": [], "meta": {"current_page": 2, "last_page": 2, "per_page": 100, "total": 100}}
    mocked.get(f"{API_URL}/sessions", json=body)
    result = VerilockClient().list_sessions(page=2, status="processing", created_from="2026-03-01")
    assert result == body
    assert mocked.calls[0].request.params == {  # type: ignore[attr-defined]  # added by responses
        "page": "2",
        "per_page": "100",
        "status": "processing",
        "from": "2026-03-01",
    }


def test_get_is_retried_on_503_then_succeeds(mocked: responses.RequestsMock) -> None:
    mocked.get(URL, status=503, json={"error": "server_error"})
    mocked.get(URL, json={"id": SEED_ID})
    with override_settings(VERILOCK_MAX_RETRIES=2, VERILOCK_RETRY_BACKOFF=0.0):
        assert VerilockClient().get_session(SEED_ID) == {"id": SEED_ID}
    assert len(mocked.calls) == 2
