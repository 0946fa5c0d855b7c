"""The fake API's fault plan: errors, transport faults and bad bodies on demand."""

from __future__ import annotations

import pytest

from verilock_django.testing import FakeVerilock

from .fakes import get


def test_fail_next_targets_one_session_for_n_requests(fake: FakeVerilock) -> None:
    target, other = fake.add_session(), fake.add_session()
    fake.fail_next(target.id, status=503, times=2)
    assert get(fake, f"/sessions/{other.id}").status == 200
    first = get(fake, f"/sessions/{target.id}")
    assert first.status == 503
    assert first.json()["error"] == "server_error"
    assert get(fake, f"/sessions/{target.id}").status == 503
    assert get(fake, f"/sessions/{target.id}").status == 200
    assert fake.requests_for(target.id) == 3
    assert fake.requests_for(other.id) == 1
    assert fake.total_requests == 4


def test_injected_429_carries_retry_after(fake: FakeVerilock) -> None:
    fake.inject("status", status=429, retry_after=7)
    response = get(fake, "/sessions")
    assert (response.status, response.headers["Retry-After"]) == (429, "7")
    assert response.json()["details"] == {"retry_after": 7}


def test_fault_kinds_produce_their_transport_effect(fake: FakeVerilock) -> None:
    fake.timeout_next()
    fake.reset_next()
    fake.malformed_next()
    fake.html_error_next(status=502)
    assert get(fake, "/sessions").fault == "timeout"
    assert get(fake, "/sessions").fault == "reset"
    malformed = get(fake, "/sessions")
    assert malformed.status == 200
    with pytest.raises(ValueError, match=r"Expecting|Unterminated"):
        malformed.json()
    html = get(fake, "/sessions")
    assert html.status == 502
    assert html.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in html.body
    assert get(fake, "/sessions").status == 200
    assert [r.fault for r in fake.requests] == ["timeout", "reset", "malformed_json", "html", None]


def test_respond_next_answers_exactly_the_given_body(fake: FakeVerilock) -> None:
    remote = fake.add_session()
    fake.respond_next(remote.id, json={"id": "ses_someone_else", "score": float("nan")})
    fake.respond_next(remote.id, body=b"<html>", status=502, times=2)

    first = get(fake, f"/sessions/{remote.id}")
    assert (first.status, first.body) == (200, b'{"id": "ses_someone_else", "score": NaN}')
    assert [get(fake, f"/sessions/{remote.id}").body for _ in range(2)] == [b"<html>"] * 2
    assert get(fake, f"/sessions/{remote.id}").json()["id"] == remote.id  # planned ones used up
