"""Retry give-ups and the list endpoint's parameters (the rate limit: ``test_ratelimit.py``)."""

from __future__ import annotations

import email.utils
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.test import override_settings

from verilock_django.client import VerilockClient
from verilock_django.exceptions import RateLimitedError, ServerError

from .conftest import API_URL, SEED_ID

URL = f"{API_URL}/sessions/{SEED_ID}"


def test_list_sessions_sends_the_upper_date_bound(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API_URL}/sessions", json={"data": [], "meta": {}})
    VerilockClient().list_sessions(created_to="2026-03-31")
    query = parse_qs(urlsplit(str(mocked.calls[0].request.url)).query)
    assert query == {"page": ["1"], "per_page": ["100"], "to": ["2026-03-31"]}


def test_server_errors_past_the_retries_surface_as_server_error(
    mocked: responses.RequestsMock,
) -> None:
    mocked.get(URL, status=503, json={"error": "server_error", "message": "down"})
    with (
        override_settings(VERILOCK_MAX_RETRIES=2, VERILOCK_RETRY_BACKOFF=0.0),
        pytest.raises(ServerError) as caught,
    ):
        VerilockClient().get_session(SEED_ID)
    # The last answer is reported as it came, with the provider's error code.
    assert (caught.value.session_id, caught.value.error_code) == (SEED_ID, "server_error")
    assert len(mocked.calls) == 3


def test_unparseable_retry_after_is_ignored(mocked: responses.RequestsMock) -> None:
    mocked.get(
        URL,
        status=429,
        headers={"Retry-After": "soon"},
        json={"error": "rate_limited", "details": {"retry_after": "later"}},
    )
    with pytest.raises(RateLimitedError) as caught:
        VerilockClient().get_session(SEED_ID)
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0.5", 0.5),
        (" 7 ", 7.0),
        ("-1", None),
        ("inf", None),
        ("nan", None),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ],
)
def test_retry_after_forms_are_read_into_the_error(
    mocked: responses.RequestsMock, header: str, expected: float | None
) -> None:
    mocked.get(URL, status=429, headers={"Retry-After": header}, json={"error": "rate_limited"})
    with pytest.raises(RateLimitedError) as caught:
        VerilockClient().get_session(SEED_ID)
    assert caught.value.retry_after == expected


def test_retry_after_as_a_future_date_is_read_as_seconds_from_now(
    mocked: responses.RequestsMock,
) -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    mocked.get(URL, status=429, headers={"Retry-After": when}, json={"error": "rate_limited"})
    with pytest.raises(RateLimitedError) as caught:
        VerilockClient().get_session(SEED_ID)
    assert caught.value.retry_after == pytest.approx(120, abs=5)
