"""The fake API's request log and counters: received, answered and abandoned requests."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from verilock_django.testing import FakeVerilock
from verilock_django.testing.server import FakeVerilockServer

from .fakes import KEY, control, get


def test_reset_counters(fake: FakeVerilock) -> None:
    session = fake.add_session()
    get(fake, f"/sessions/{session.id}")
    fake.reset_counters()
    assert (fake.total_requests, fake.requests_for(session.id), fake.requests) == (0, 0, [])
    assert fake.answered_for(session.id) == 0
    assert fake.stats()["answered_by_session"] == {}


def test_answers_are_counted_apart_from_requests_no_answer_went_out_for(
    fake: FakeVerilock,
) -> None:
    session = fake.add_session()
    fake.timeout_next(session.id)
    fake.reset_next(session.id)
    fake.fail_next(session.id, status=503)
    for _ in range(4):
        get(fake, f"/sessions/{session.id}")
    assert fake.requests_for(session.id) == 4  # received
    assert fake.answered_for(session.id) == 2  # the 503 and the 200 went out
    assert [(r.fault, r.answered) for r in fake.requests] == [
        ("timeout", False),
        ("reset", False),
        ("status", True),
        (None, True),
    ]
    stats = fake.stats()
    assert stats["answered_by_session"] == {session.id: 2}
    assert stats["abandoned_requests"] == 2
    times = [r.arrived_at for r in fake.requests]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)


def test_the_control_api_holds_and_releases_answers(fake: FakeVerilock) -> None:
    assert control(fake, "GET", "/hold").json() == {"holding": False, "held": 0}
    assert control(fake, "POST", "/hold").json() == {"holding": True, "held": 0}
    assert fake.answer_hold.holding
    assert control(fake, "DELETE", "/hold").json() == {"holding": False, "held": 0}
    assert control(fake, "PUT", "/hold").status == 404
    assert fake.stats()["held_answers"] == 0


def _send_request(server: FakeVerilockServer, session_id: str) -> socket.socket:
    """A client that sent ``GET /sessions/{id}`` and reads nothing yet."""
    client = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    client.sendall(
        f"GET /api/v1/sessions/{session_id} HTTP/1.0\r\nX-API-Key: {KEY}\r\n\r\n".encode()
    )
    return client


def _read_all(client: socket.socket) -> bytes:
    chunks = []
    while chunk := client.recv(65536):
        chunks.append(chunk)
    client.close()
    return b"".join(chunks)


def test_a_held_answer_whose_client_went_away_is_logged_abandoned_not_answered() -> None:
    with FakeVerilockServer(api_key=KEY) as server:
        fake = server.state
        gone, stays = fake.add_session(), fake.add_session()
        fake.hold_answers()
        leaving = _send_request(server, gone.id)
        waiting = _send_request(server, stays.id)
        assert fake.wait_for_held(2, timeout=10)
        assert fake.held_answers == 2 and fake.stats()["held_answers"] == 2
        assert fake.requests == []  # nothing finished while held
        leaving.close()  # the client goes away, as a killed worker's sockets do
        fake.release_answers()
        answer = _read_all(waiting)
    assert answer.startswith(b"HTTP/1.1 200") and stays.id.encode() in answer
    assert (fake.requests_for(gone.id), fake.answered_for(gone.id)) == (1, 0)
    assert (fake.requests_for(stays.id), fake.answered_for(stays.id)) == (1, 1)
    assert {r.session_id: r.answered for r in fake.requests} == {gone.id: False, stays.id: True}
    assert fake.held_answers == 0


def test_a_client_that_gave_up_waiting_for_a_held_answer_was_not_answered() -> None:
    with FakeVerilockServer(api_key=KEY) as server:
        session = server.state.add_session()
        server.state.hold_answers()
        with pytest.raises(requests.Timeout):
            requests.get(
                f"{server.url}/sessions/{session.id}", headers={"X-API-Key": KEY}, timeout=0.5
            )
        assert server.state.held_answers == 1
        server.state.release_answers()
        answered = requests.get(
            f"{server.url}/sessions/{session.id}", headers={"X-API-Key": KEY}, timeout=5
        )
    assert answered.status_code == 200
    assert sorted(r.answered for r in server.state.requests) == [False, True]
    assert server.state.answered_for(session.id) == 1


def test_stopping_the_server_lets_held_answers_go() -> None:
    server = FakeVerilockServer(api_key=KEY).start()
    session = server.state.add_session()
    server.state.hold_answers()
    client = _send_request(server, session.id)
    assert server.state.wait_for_held(1, timeout=10)
    stopper = threading.Thread(target=server.stop)
    stopper.start()
    stopper.join(timeout=10)
    assert not stopper.is_alive()
    client.close()
    assert server.state.held_answers == 0
    assert not server.state.wait_for_held(1, timeout=0.01)
