"""The client against real sockets: Retry-After forms, the whole-request deadline, response
size, and what connection failures are called. Servers run on loopback in a thread."""

from __future__ import annotations

import email.utils
import gzip
import socket
import time
from types import SimpleNamespace
from typing import Any

import pytest
import urllib3.util.retry
from django.test import override_settings

from verilock_django import ratelimit
from verilock_django.client import VerilockClient
from verilock_django.exceptions import InvalidResponseError, RateLimitedError, TransportError

from .loopback import Answer, ScriptedServer, free_port

OK = Answer(body=b'{"id": "ses_1"}', headers={"Content-Type": "application/json"})
CAP = 5.0


def client_for(server: ScriptedServer) -> VerilockClient:
    return VerilockClient(api_url=f"{server.url}/api/v1")


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Waits urllib3's Retry asked for, recorded instead of slept.

    Only urllib3's retry module sees the fake: patching ``time.sleep`` itself would also
    record the sleeps of server threads that other tests left behind.
    """
    waits: list[float] = []
    fake_time = SimpleNamespace(sleep=waits.append, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr(urllib3.util.retry, "time", fake_time)
    # A usable Retry-After is waited out in the rate-limit window (it holds every process
    # sharing the window), not again by urllib3.
    monkeypatch.setattr(ratelimit, "time", fake_time)
    return waits


def http_date(offset: float) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    ("retry_after", "expected_waits"),
    [
        pytest.param("0.5", [0.5], id="decimal"),
        pytest.param("2", [2.0], id="integer"),
        pytest.param("  3 ", [3.0], id="padded"),
        pytest.param("86400", [CAP], id="huge"),
        pytest.param("1e999", [], id="infinite"),
        pytest.param("-5", [], id="negative"),
        pytest.param("soon", [], id="garbage"),
        pytest.param("nan", [], id="nan"),
        pytest.param("Wed, 32 Foo 2026 99:99:99 GMT", [], id="broken-date"),
    ],
)
def test_retry_after_in_any_form_leads_to_a_retry_with_a_bounded_wait(
    status: int, retry_after: str, expected_waits: list[float], slept: list[float]
) -> None:
    busy = Answer(status=status, body=b"{}", headers={"Retry-After": retry_after})
    with (
        ScriptedServer([busy, OK]) as server,
        override_settings(
            VERILOCK_MAX_RETRIES=1, VERILOCK_RETRY_BACKOFF=0.0, VERILOCK_RETRY_AFTER_MAX=CAP
        ),
    ):
        assert client_for(server).get_session("ses_1") == {"id": "ses_1"}
    assert len(server.received) == 2
    assert slept == pytest.approx(expected_waits, abs=0.1)


@pytest.mark.parametrize(
    ("offset", "expected_waits"),
    [pytest.param(3600.0, [CAP], id="future"), pytest.param(-3600.0, [], id="past")],
)
def test_retry_after_as_an_http_date_waits_until_then_within_the_cap(
    offset: float, expected_waits: list[float], slept: list[float]
) -> None:
    busy = Answer(status=503, body=b"{}", headers={"Retry-After": http_date(offset)})
    with (
        ScriptedServer([busy, OK]) as server,
        override_settings(
            VERILOCK_MAX_RETRIES=1, VERILOCK_RETRY_BACKOFF=0.0, VERILOCK_RETRY_AFTER_MAX=CAP
        ),
    ):
        assert client_for(server).get_session("ses_1") == {"id": "ses_1"}
    assert slept == pytest.approx(expected_waits, abs=0.1)


def test_unusable_retry_after_falls_back_to_the_backoff(slept: list[float]) -> None:
    busy = Answer(status=429, body=b"{}", headers={"Retry-After": "0.5s"})
    with (
        ScriptedServer([busy, busy, OK]) as server,
        override_settings(VERILOCK_MAX_RETRIES=2, VERILOCK_RETRY_BACKOFF=0.25),
    ):
        assert client_for(server).get_session("ses_1") == {"id": "ses_1"}
    # urllib3's backoff: nothing before the first retry, then factor x 2 (+ <= 0.5 s jitter).
    assert len(slept) == 1 and 0.5 <= slept[0] <= 1.0


def test_decimal_retry_after_is_reported_once_retries_are_used_up(slept: list[float]) -> None:
    busy = Answer(status=429, body=b"{}", headers={"Retry-After": "0.5"})
    with ScriptedServer([busy]) as server, pytest.raises(RateLimitedError) as caught:
        client_for(server).get_session("ses_1")
    assert caught.value.retry_after == 0.5


def test_timeout_bounds_the_whole_request_when_the_body_trickles() -> None:
    # One byte every 0.2 s: 40 bytes would take 8 s; each byte alone beats any read timeout.
    body = b'{"id": "ses_1", "padding": "xxxxxxxxx"}'
    trickle = Answer(body=body, byte_delay=0.2)
    with (
        ScriptedServer([trickle]) as server,
        override_settings(VERILOCK_TIMEOUT=1.0),
        pytest.raises(TransportError, match="Timed out after 1s") as caught,
    ):
        client_for(server).get_session("ses_1")
    assert server.body_bytes_sent < len(body) // 2
    assert caught.value.session_id == "ses_1"


def test_the_body_of_an_answer_that_is_retried_is_not_read() -> None:
    # A 503 whose body trickles for 5 s: retrying must not wait for it.
    trickled_503 = Answer(status=503, body=b"x" * 100, byte_delay=0.05)
    with (
        ScriptedServer([trickled_503, OK]) as server,
        override_settings(VERILOCK_MAX_RETRIES=1, VERILOCK_RETRY_BACKOFF=0.0),
    ):
        assert client_for(server).get_session("ses_1") == {"id": "ses_1"}
    assert server.body_bytes_sent < 50


def test_timeout_bounds_a_server_that_goes_silent_after_the_headers() -> None:
    # Headers at once, then the first body byte only after 3 s.
    silent = Answer(body=b"{}" + b" " * 5, byte_delay=3.0)
    with (
        ScriptedServer([silent]) as server,
        override_settings(VERILOCK_TIMEOUT=0.5),
        pytest.raises(TransportError, match=r"Timed out after 0\.5s"),
    ):
        client_for(server).get_session("ses_1")
    assert server.body_bytes_sent <= 1


@pytest.mark.parametrize("declare_length", [True, False], ids=["declared", "undeclared"])
def test_a_body_over_the_size_limit_is_an_invalid_response(declare_length: bool) -> None:
    big = Answer(
        body=b'{"id": "ses_1", "x": "' + b"a" * 5000 + b'"}', declare_length=declare_length
    )
    with (
        ScriptedServer([big]) as server,
        override_settings(VERILOCK_MAX_RESPONSE_BYTES=1000),
        pytest.raises(InvalidResponseError, match="VERILOCK_MAX_RESPONSE_BYTES"),
    ):
        client_for(server).get_session("ses_1")


def test_the_size_limit_applies_after_decompression() -> None:
    inflated = b'{"id": "ses_1", "x": "' + b"a" * 200_000 + b'"}'
    bomb = Answer(body=gzip.compress(inflated), headers={"Content-Encoding": "gzip"})
    assert len(bomb.body) < 1000
    with ScriptedServer([bomb]) as server:
        with (
            override_settings(VERILOCK_MAX_RESPONSE_BYTES=10_000),
            pytest.raises(InvalidResponseError, match="VERILOCK_MAX_RESPONSE_BYTES"),
        ):
            client_for(server).get_session("ses_1")
        # Below the limit, the same compressed answer is read and decoded as usual.
        assert client_for(server).get_session("ses_1")["id"] == "ses_1"


def test_a_body_within_the_limit_without_length_is_read_to_the_end() -> None:
    answer = Answer(body=b'{"id": "ses_1"}', declare_length=False)
    with ScriptedServer([answer]) as server:
        assert client_for(server).get_session("ses_1") == {"id": "ses_1"}


def test_a_connection_kept_alive_is_reused_after_a_full_read() -> None:
    with ScriptedServer([OK]) as server:
        api = client_for(server)
        for _ in range(3):
            assert api.get_session("ses_1") == {"id": "ses_1"}
    assert len(server.received) == 3
    assert len({request.client_port for request in server.received}) == 1


def test_connection_refused_is_reported_as_such() -> None:
    api = VerilockClient(api_url=f"http://127.0.0.1:{free_port()}/api/v1")
    with pytest.raises(TransportError) as caught:
        api.get_session("ses_1")
    assert str(caught.value) == "Connection refused on GET /sessions/ses_1"


def test_an_unresolvable_host_is_reported_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    api = VerilockClient(api_url="http://verilock.invalid/api/v1")
    with pytest.raises(TransportError) as caught:
        api.get_session("ses_1")
    assert str(caught.value) == "Could not resolve the API host on GET /sessions/ses_1"


def test_a_server_that_never_answers_is_a_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        api = VerilockClient(api_url=f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1")
        with override_settings(VERILOCK_TIMEOUT=0.3), pytest.raises(TransportError) as caught:
            api.get_session("ses_1")
    assert str(caught.value) == "Timed out after 0.3s on GET /sessions/ses_1"
