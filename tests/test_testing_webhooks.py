"""Webhooks of the fake: the envelope, its signature, and delivery by the sender."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import requests

from verilock_django.signatures import sign_webhook
from verilock_django.testing import FakeVerilock, FakeVerilockServer, WebhookReceiver, factories
from verilock_django.testing.webhooks import signed_webhook, webhook_payload

from .fakes import KEY

SECRET = "whsec_demo_secret"


def test_webhook_payload_and_signature() -> None:
    payload = webhook_payload(status="declined", webhook_id="wh_evt_1")
    assert payload["event"] == "session.completed"
    assert payload["webhook_id"] == "wh_evt_1"
    assert payload["data"] == {
        "session_id": factories.SEED_SESSION_ID,
        "status": "declined",
        "decision": "declined",
        "completed_at": "2026-03-15T10:45:22Z",
    }
    assert webhook_payload(status="expired")["event"] == "session.expired"
    body, headers = signed_webhook(payload, "whsec_x")
    assert json.loads(body) == payload
    # Known-answer HMAC so a change of algorithm or encoding cannot go unnoticed.
    # (value from `printf '{}' | openssl dgst -sha256 -hmac whsec_x`)
    assert sign_webhook(b"{}", "whsec_x") == (
        "3b099d0eddf3b9c6f3a6aa28a95120c7f1f1c054121f2f85d5738f1344748b3b"
    )
    assert headers["X-Verilock-Signature"] == sign_webhook(body, "whsec_x")


def test_complete_sets_results_and_emits_webhook_events(fake: FakeVerilock) -> None:
    session = fake.add_session(status="processing")
    fake.complete(session.id, "approved")
    body = fake.payload(session.id)
    assert {r["status"] for r in body["results"].values()} == {"approved"}
    assert [e["event"] for e in fake.webhook_events] == ["session.completed", "session.approved"]
    assert fake.webhook_events[0]["data"]["session_id"] == session.id
    fake.expire(fake.add_session(status="created").id)
    assert fake.webhook_events[-1]["event"] == "session.expired"


def _openssl_hmac(body: bytes, secret: str) -> str:
    completed = subprocess.run(  # noqa: S603
        ["openssl", "dgst", "-sha256", "-hmac", secret],  # noqa: S607
        input=body,
        capture_output=True,
        check=True,
    )
    # OpenSSL prints "HMAC-SHA2-256(stdin)= <hex>" or "(stdin)= <hex>" depending on version.
    return completed.stdout.decode().strip().rsplit("= ", 1)[-1]


def test_webhooks_are_delivered_signed_and_verify_with_openssl() -> None:
    with (
        WebhookReceiver() as receiver,
        FakeVerilockServer(
            api_key=KEY, webhook_url=receiver.url, webhook_secret=SECRET, webhook_retry_delays=()
        ) as running,
    ):
        session = running.state.add_session(status="processing", shape="b")
        running.state.complete(session.id, "approved")
        received = receiver.wait_for(2)
        deliveries = running.state.wait_for_webhooks(2)
    assert [json.loads(body)["event"] for _, _, body in received] == [
        "session.completed",
        "session.approved",
    ]
    for path, headers, body in received:
        assert path == "/webhooks/verilock/"
        assert headers["X-Verilock-Signature"] == _openssl_hmac(body, SECRET)
        envelope = json.loads(body)
        assert set(envelope) == {"event", "data", "timestamp", "webhook_id"}
        assert envelope["webhook_id"].startswith("wh_evt_")
        assert envelope["data"]["session_id"] == session.id
        assert envelope["data"]["status"] == "approved"
        assert envelope["data"]["decision"] == "approved"
        assert envelope["data"]["completed_at"]
    assert [d.ok for d in deliveries] == [True, True]


def test_webhook_delivery_never_blocks_the_api_and_retries_failures() -> None:
    with (
        WebhookReceiver(status=500) as receiver,
        FakeVerilockServer(
            api_key=KEY,
            webhook_url=receiver.url,
            webhook_secret=SECRET,
            webhook_retry_delays=(0.05,),
        ) as running,
    ):
        session = running.state.add_session(status="processing")
        started = time.monotonic()
        response = requests.post(
            f"{running.root_url}/_fake/sessions/{session.id}/complete",
            json={"status": "declined"},
            timeout=5,
        )
        assert response.status_code == 200
        assert time.monotonic() - started < 1
        deliveries = running.state.wait_for_webhooks(4)
    # First attempts go out in order; a retry waits its delay without holding them up.
    assert [(d.event_type, d.attempt, d.status_code) for d in deliveries] == [
        ("session.completed", 1, 500),
        ("session.declined", 1, 500),
        ("session.completed", 2, 500),
        ("session.declined", 2, 500),
    ]
    # The same event keeps its webhook_id across retries, so receivers can dedupe.
    assert deliveries[0].webhook_id == deliveries[2].webhook_id
    assert deliveries[0].webhook_id != deliveries[1].webhook_id


def test_unreachable_webhook_url_is_recorded_as_an_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    with FakeVerilockServer(
        webhook_url=f"http://127.0.0.1:{dead_port}/hook", webhook_retry_delays=()
    ) as running:
        running.state.complete(running.state.add_session().id, "expired")
        (delivery,) = running.state.wait_for_webhooks(1)
    assert delivery.status_code is None
    assert delivery.error is not None and "Connection" in delivery.error


def test_gen_a_create_with_webhook_url_gets_its_own_signed_deliveries() -> None:
    with (
        WebhookReceiver() as receiver,
        FakeVerilockServer(api_key=KEY, webhook_secret=SECRET, webhook_retry_delays=()) as running,
    ):
        created = requests.post(
            f"{running.url}/sessions",
            json={
                "type": "kyc",
                "steps": ["document", "selfie"],
                "applicant": {"first_name": "A", "last_name": "B", "email": "a@example.com"},
                "webhook_url": receiver.url,
            },
            headers={"X-API-Key": KEY},
            timeout=5,
        ).json()
        running.state.expire(created["id"])
        ((_, headers, body),) = receiver.wait_for(1)
    assert json.loads(body)["event"] == "session.expired"
    assert headers["X-Verilock-Signature"] == _openssl_hmac(body, SECRET)
