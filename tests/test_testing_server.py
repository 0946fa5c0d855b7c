"""The fake API over HTTP on a loopback port, its CLI and control API."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import requests

from verilock_django.testing.server import FakeVerilockServer, main

KEY = "qi_test_server"


@pytest.fixture
def server() -> Any:
    with FakeVerilockServer(api_key=KEY, webhook_retry_delays=()) as running:
        yield running


def test_serves_on_a_loopback_port_and_stops_every_thread() -> None:
    before = set(threading.enumerate())
    with FakeVerilockServer(api_key=KEY) as running:
        assert running.url == f"http://127.0.0.1:{running.port}/api/v1"
        response = requests.get(f"{running.url}/sessions", headers={"X-API-Key": KEY}, timeout=5)
        assert response.status_code == 200
        port = running.port
    assert set(threading.enumerate()) <= before
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/api/v1/sessions", timeout=2)


def test_refuses_to_bind_anything_but_loopback() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        FakeVerilockServer(host="0.0.0.0")  # noqa: S104 - the point of the test


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_wrong_key_is_401_over_http_for_both_header_styles(
    server: FakeVerilockServer, header: str
) -> None:
    value = "Bearer wrong" if header == "Authorization" else "wrong"
    response = requests.get(f"{server.url}/sessions", headers={header: value}, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_error"
    assert response.headers["X-Request-Id"]


def test_over_the_rate_limit_is_429_with_retry_after() -> None:
    with FakeVerilockServer(api_key=KEY, rate_limit_per_minute=2) as running:
        headers = {"Authorization": f"Bearer {KEY}"}
        codes = [
            requests.get(f"{running.url}/sessions", headers=headers, timeout=5).status_code
            for _ in range(2)
        ]
        limited = requests.get(f"{running.url}/sessions", headers=headers, timeout=5)
    assert codes == [200, 200]
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.json()["error"] == "rate_limit_exceeded"


def test_sdk_style_v1_prefix_is_served_too(server: FakeVerilockServer) -> None:
    session = server.state.add_session()
    url = f"{server.root_url}/v1/sessions/{session.id}"
    assert requests.get(url, headers={"X-API-Key": KEY}, timeout=5).json()["id"] == session.id
    assert requests.get(f"{server.root_url}/other", timeout=5).status_code == 404


def test_post_creates_a_session_over_http(server: FakeVerilockServer) -> None:
    response = requests.post(
        f"{server.url}/sessions",
        json={
            "profile_id": "0b5d3c8e-7f4a-4e21-9c1d-2f6a8b9e0c13",
            "applicant_email": "a@example.com",
        },
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=5,
    )
    assert response.status_code == 201
    assert server.state.get(response.json()["id"]).shape == "b"


def test_transport_faults_over_http(server: FakeVerilockServer) -> None:
    session = server.state.add_session()
    url = f"{server.url}/sessions/{session.id}"
    headers = {"X-API-Key": KEY}
    server.state.reset_next(session.id)
    with pytest.raises(requests.ConnectionError):
        requests.get(url, headers=headers, timeout=5)
    server.state.timeout_next(session.id)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, headers=headers, timeout=0.3)
    assert time.monotonic() - started < 5
    server.state.malformed_next(session.id)
    with pytest.raises(requests.JSONDecodeError):
        requests.get(url, headers=headers, timeout=5).json()
    server.state.html_error_next(session.id, status=504)
    html = requests.get(url, headers=headers, timeout=5)
    assert html.status_code == 504
    assert "text/html" in html.headers["Content-Type"]
    assert requests.get(url, headers=headers, timeout=5).status_code == 200
    assert server.state.requests_for(session.id) == 5


def test_a_hung_request_does_not_block_stop() -> None:
    running = FakeVerilockServer(api_key=KEY, hang_seconds=60).start()
    running.state.timeout_next()
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{running.url}/sessions", headers={"X-API-Key": KEY}, timeout=0.2)
    started = time.monotonic()
    running.stop()
    assert time.monotonic() - started < 5


def test_latency_applies_over_http() -> None:
    with FakeVerilockServer(api_key=KEY, latency_ms=150) as running:
        started = time.monotonic()
        requests.get(f"{running.url}/sessions", headers={"X-API-Key": KEY}, timeout=5)
        assert time.monotonic() - started >= 0.15


def test_control_api_needs_no_key(server: FakeVerilockServer) -> None:
    created = requests.post(
        f"{server.root_url}/_fake/sessions", json={"status": "processing"}, timeout=5
    )
    session_id = created.json()["ids"][0]
    done = requests.post(
        f"{server.root_url}/_fake/sessions/{session_id}/complete",
        json={"status": "approved"},
        timeout=5,
    )
    assert done.json()["status"] == "approved"
    requests.get(f"{server.url}/sessions/{session_id}", headers={"X-API-Key": KEY}, timeout=5)
    stats = requests.get(f"{server.root_url}/_fake/stats", timeout=5).json()
    assert stats["requests_by_session"] == {session_id: 1}
    assert stats["total_requests"] == 1


def test_cli_prints_a_parseable_line_serves_seeded_sessions_and_exits_on_sigterm() -> None:
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "verilock_django.testing.server",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--seed",
            "12",
            "--rate-limit-per-minute",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(
            r"Fake Verilock API listening on (http://127\.0\.0\.1:\d+/api/v1)\n", line
        )
        assert match, line
        url = match.group(1)
        listing = requests.get(f"{url}/sessions", headers={"X-API-Key": KEY}, timeout=5)
        assert listing.json()["meta"]["total"] == 12
        assert listing.headers["X-RateLimit-Limit"] == "50"
        assert {item["status"] for item in listing.json()["data"]} >= {"approved", "processing"}
        assert requests.get(f"{url}/sessions", timeout=5).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        errors = process.stderr.read() if process.stderr is not None else ""
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert returncode == 0
    # Run with -m, the module was once imported twice (by its package, then as __main__).
    assert "Warning" not in errors, errors


def test_cli_refuses_a_public_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0"]) == 2  # noqa: S104
    assert "loopback only" in capsys.readouterr().err
