"""Retry give-ups and the list endpoint's parameters (the rate limit: ``test_ratelimit.py``)."""

from __future__ import annotations

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
