from __future__ import annotations

import re
from typing import Any

import pytest
import requests
import responses
from django.test import override_settings

from verilock_django.client import VerilockClient, get_client
from verilock_django.exceptions import (
    ApiError,
    AuthenticationError,
    FieldValidationError,
    InvalidResponseError,
    NotFoundError,
    PayloadError,
    RateLimitedError,
    ServerError,
    TransportError,
    VerilockConfigurationError,
    VerilockError,
)
from verilock_django.models import Session
from verilock_django.sync import sync_session
from verilock_django.testing.responses_api import InProcessVerilock

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


def test_a_netrc_entry_for_the_api_host_does_not_replace_the_key(
    mocked: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # requests, trusting the environment, would put the .netrc login in Authorization.
    netrc = tmp_path / "netrc"
    host = API_URL.split("/")[2].split(":")[0]
    netrc.write_text(f"machine {host} login someone password elsewhere\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    mocked.get(URL, json={"id": SEED_ID})
    VerilockClient().get_session(SEED_ID)
    assert requests.utils.get_netrc_auth(URL) == ("someone", "elsewhere")  # it is read
    assert mocked.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"


def test_the_auth_hooks_repr_hides_the_key() -> None:
    assert KEY not in repr(VerilockClient()._auth())


def test_settings_are_read_at_call_time(mocked: responses.RequestsMock) -> None:
    mocked.get("https://other.test/v1/sessions/ses_1", json={"id": "ses_1"})
    client = get_client()
    with override_settings(VERILOCK_API_URL="https://other.test/v1/", VERILOCK_API_KEY="k2"):
        assert client.get_session("ses_1") == {"id": "ses_1"}
    assert mocked.calls[0].request.headers["X-API-Key"] == "k2"


def test_session_id_is_stripped_before_the_request(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API_URL}/sessions/ses_x", json={"id": "ses_x"})
    assert VerilockClient().get_session(" ses_x \n") == {"id": "ses_x"}
    assert mocked.calls[0].request.url == f"{API_URL}/sessions/ses_x"


@pytest.mark.parametrize("session_id", [".", "..", " .. ", "ses/../admin", "a/b", "ses?x=1", ""])
def test_session_ids_that_change_the_path_are_refused_before_any_request(
    mocked: responses.RequestsMock, session_id: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        VerilockClient().get_session(session_id)
    assert caught.value.field == "session_id"
    assert len(mocked.calls) == 0


def test_timeout_bounds_each_attempt_in_total(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def fake_request(self: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        raise requests.exceptions.ConnectTimeout("boom")

    monkeypatch.setattr(requests.Session, "request", fake_request)
    with override_settings(VERILOCK_TIMEOUT=3.5), pytest.raises(TransportError):
        VerilockClient().get_session(SEED_ID)
    # One budget for connecting and waiting for the answer (the body is bounded separately).
    assert [timeout.total for timeout in seen] == [3.5]


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
    # The status and the code, never the provider's free text (it may quote the applicant).
    assert f"HTTP {status}, error={code}" in str(error)
    assert body["message"] not in str(error)
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


@pytest.mark.parametrize("depth", [5_000, 200_000])
def test_json_nested_too_deep_is_an_invalid_response_not_a_recursion_error(
    mocked: responses.RequestsMock, depth: int
) -> None:
    deep = '{"id": "ses_1", "details": ' + "[" * depth + "]" * depth + "}"
    mocked.get(URL, status=200, body=deep)
    with pytest.raises(InvalidResponseError, match="nested too deeply"):
        VerilockClient().get_session(SEED_ID)


def test_an_error_answer_nested_too_deep_keeps_its_status(mocked: responses.RequestsMock) -> None:
    mocked.get(URL, status=404, body="[" * 100_000 + "]" * 100_000)
    with pytest.raises(NotFoundError):
        VerilockClient().get_session(SEED_ID)


def test_json_that_is_not_an_object_is_invalid_response(mocked: responses.RequestsMock) -> None:
    mocked.get(URL, json=[{"id": SEED_ID}])
    with pytest.raises(InvalidResponseError, match="expected an object"):
        VerilockClient().get_session(SEED_ID)


@pytest.mark.parametrize(
    ("exc", "problem"),
    [
        (
            requests.exceptions.ConnectionError(ConnectionResetError(104, "reset")),
            "Connection lost",
        ),
        (requests.exceptions.ReadTimeout("read timed out"), "Timed out after 10s"),
        (requests.exceptions.SSLError("bad handshake"), "TLS error"),
        (requests.exceptions.ProxyError("proxy said no"), "Proxy error"),
        (requests.exceptions.InvalidURL("bad url"), "InvalidURL"),
        (RuntimeError("a bug below"), "RuntimeError"),
    ],
)
def test_transport_errors_say_what_happened_and_chain_nothing(
    mocked: responses.RequestsMock, exc: Exception, problem: str
) -> None:
    mocked.get(URL, body=exc)
    with pytest.raises(TransportError) as excinfo:
        VerilockClient().get_session(SEED_ID)
    assert str(excinfo.value) == f"{problem} on GET /sessions/{SEED_ID}"
    # requests' exceptions hold the request and its headers: none is chained.
    assert excinfo.value.__cause__ is None and excinfo.value.__context__ is None
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


SECRET = "qi_live_supersecret_123"


def chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and every exception chained to it (causes and contexts)."""
    found: list[BaseException] = []
    while exc is not None and exc not in found:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def assert_holds_no_key(exc: BaseException) -> None:
    for link in chain(exc):
        assert SECRET not in str(link)
        assert SECRET not in repr(link)
        assert SECRET not in repr(link.args)


def test_key_never_appears_in_errors_or_repr(mocked: responses.RequestsMock) -> None:
    mocked.get(URL, status=401, json={"error": "authentication_error", "message": "Invalid key."})
    client = VerilockClient(api_key=SECRET)
    with pytest.raises(AuthenticationError) as excinfo:
        client.get_session(SEED_ID)
    assert_holds_no_key(excinfo.value)
    assert SECRET not in repr(client)


@pytest.mark.parametrize(
    "library_error",
    [
        # What requests raises for a header value it refuses: the value is in the message.
        requests.exceptions.InvalidHeader(f"Invalid return character in header value: {SECRET}"),
        requests.exceptions.ConnectionError(OSError(f"proxy rejected X-API-Key {SECRET}")),
        ValueError(f"header {SECRET}"),
    ],
)
def test_no_error_from_the_transport_carries_the_key_in_its_chain(
    mocked: responses.RequestsMock, library_error: Exception
) -> None:
    mocked.get(URL, body=library_error)
    with pytest.raises(TransportError) as excinfo:
        VerilockClient(api_key=SECRET).get_session(SEED_ID)
    assert chain(excinfo.value) == [excinfo.value]
    assert_holds_no_key(excinfo.value)


@pytest.mark.parametrize("configured", ["qi_test_abc\n", "  qi_test_abc\t", "\r\nqi_test_abc\r\n"])
def test_a_key_pasted_with_surrounding_whitespace_works_end_to_end(configured: str) -> None:
    with (
        override_settings(VERILOCK_API_KEY=configured),
        InProcessVerilock(base_url=API_URL, api_key="qi_test_abc") as api,
    ):
        session = api.add_session(status="processing")
        assert VerilockClient().get_session(session.id)["id"] == session.id
        assert VerilockClient(api_key=configured).get_session(session.id)["id"] == session.id
        assert api.requests_for(session.id) == 2


def test_a_key_with_whitespace_inside_is_a_configuration_error_without_the_key(
    mocked: responses.RequestsMock,
) -> None:
    broken = "qi_test_abc\ndef"
    with pytest.raises(VerilockConfigurationError) as excinfo:
        VerilockClient(api_key=broken).get_session(SEED_ID)
    assert broken not in str(excinfo.value) and "qi_test_abc" not in str(excinfo.value)
    assert len(mocked.calls) == 0


@pytest.mark.parametrize(
    ("location", "named"),
    [
        ("https://evil.test/steal?key=1", "evil.test"),
        ("http://verilock.test/api/v1/sessions/x", "verilock.test"),  # a downgrade to http
        ("/api/v2/sessions/x", "a path on the same host"),
    ],
)
def test_a_redirect_is_an_error_and_is_never_followed(
    mocked: responses.RequestsMock, location: str, named: str
) -> None:
    mocked.get(URL, status=302, headers={"Location": location})
    elsewhere = mocked.get(re.compile(r"^(?!" + re.escape(URL) + ").*"), json={"id": SEED_ID})
    with pytest.raises(ApiError) as excinfo:
        VerilockClient().get_session(SEED_ID)
    assert type(excinfo.value) is ApiError and excinfo.value.status_code == 302
    assert f"redirected to {named};" in str(excinfo.value)
    assert "steal" not in str(excinfo.value)
    assert elsewhere.call_count == 0
    assert len(mocked.calls) == 1


@pytest.mark.django_db
def test_a_redirect_to_another_host_sends_nothing_there_and_stores_nothing(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(URL, status=302, headers={"Location": f"https://evil.test/sessions/{SEED_ID}"})
    evil = mocked.get(f"https://evil.test/sessions/{SEED_ID}", json={"id": SEED_ID})
    with pytest.raises(ApiError):
        sync_session(SEED_ID)
    assert evil.call_count == 0
    assert not Session.objects.exists()


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


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"error": "validation_error"}, "validation_error"),
        ({"error": 4012}, "4012"),
        ({"error": True}, None),
        ({"error": {"code": "Dupont"}}, None),  # not the documented shape: not read
        ({"error": "Jean Dupont is not allowed"}, None),  # free text: never kept
        ({"error": "x" * 81}, None),
    ],
)
def test_only_a_short_identifier_is_kept_as_the_error_code(
    mocked: responses.RequestsMock, body: dict[str, Any], code: str | None
) -> None:
    mocked.get(URL, json=body, status=409)
    with pytest.raises(ApiError) as excinfo:
        VerilockClient().get_session(SEED_ID)
    assert excinfo.value.error_code == code
    assert "Conflict (HTTP 409" in str(excinfo.value)


@pytest.mark.parametrize(
    ("code", "kept"),
    [
        # Machine codes: documented ones, their styles, and one-word HTTP status names.
        ("rate_limit_exceeded", True),
        ("session_not_found", True),
        ("RATE_LIMIT_EXCEEDED", True),
        ("session.not_found", True),
        ("insufficient_balance", True),
        ("conflict", True),
        ("Unauthorized", True),  # Gen A's 401 code
        ("NOT_FOUND", True),
        ("4012", True),
        # What could be applicant data: a name however written, an email's local part, a
        # document number, a date.
        ("Dupont", False),
        ("dupont", False),
        ("DUPONT", False),
        ("Jean_Dupont", False),
        ("Jean-Dupont", False),
        ("jean.dupont", False),
        ("12AB34567", False),
        ("19900515", False),
        ("dupont_1990_05_15", False),
        ("DE_123456789", False),
        ("FR_12AB34567", False),
        # Digits split by "_" are still a date, a phone or a document number.
        ("dupont_15_05_90", False),
        ("TEL_06_12_34_56_78", False),
        ("ssn_123_45_678", False),
        ("oauth2_error", True),
        ("error_404", True),
    ],
)
def test_an_error_code_is_kept_only_when_it_cannot_be_a_name(
    mocked: responses.RequestsMock, code: str, kept: bool
) -> None:
    mocked.get(URL, json={"error": code, "message": "x"}, status=409)
    with pytest.raises(ApiError) as excinfo:
        VerilockClient().get_session(SEED_ID)
    assert excinfo.value.error_code == (code if kept else None)
    assert (code in str(excinfo.value)) is kept


def test_a_status_without_a_standard_phrase_still_names_its_number(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(URL, body=b"<html>Jean Dupont</html>", status=599)
    with pytest.raises(ServerError) as excinfo:
        VerilockClient().get_session(SEED_ID)
    assert str(excinfo.value).endswith(": error (HTTP 599)")
