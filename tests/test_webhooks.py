"""Webhook intake: signatures, storage, duplicates, limits, the envelope, signals after commit."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
from typing import Any

import pytest
from django.db import DataError, OperationalError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from verilock_django.models import Session, WebhookEvent, WebhookEventStatus
from verilock_django.processing import process_event
from verilock_django.signals import session_finished, session_updated, webhook_received
from verilock_django.signatures import sign_webhook
from verilock_django.testing.factories import format_timestamp
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.webhooks import signed_webhook, webhook_payload
from verilock_django.webhooks import parse_envelope, store_delivery

from .webhook_helpers import OLD_SECRET, SECRET, URL, Recorder, deliver, post, stored

pytestmark = pytest.mark.usefixtures("webhook_settings")


# -- intake ---------------------------------------------------------------------------


def test_url_is_namespaced() -> None:
    assert reverse("verilock_django:webhook") == URL


@pytest.mark.django_db
def test_signed_delivery_is_stored_acknowledged_and_updates_the_session(
    client: Client, api: InProcessVerilock, django_capture_on_commit_callbacks: Any
) -> None:
    session = api.add_session(status="approved")
    payload = webhook_payload("session.completed", session_id=session.id, webhook_id="wh_evt_1")

    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, payload)

    assert response.status_code == 200
    assert response.json() == {"status": "stored"}
    event = WebhookEvent.objects.get()
    assert (event.webhook_id, event.event_type, event.session_id) == (
        "wh_evt_1",
        "session.completed",
        session.id,
    )
    assert event.occurred_at is not None
    assert event.payload == payload
    assert event.status == WebhookEventStatus.PROCESSED
    assert event.attempts == 1
    assert Session.objects.get(pk=session.id).status == "approved"
    assert api.requests_for(session.id) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "case",
    ["wrong secret", "tampered body", "missing header", "base64", "truncated", "empty"],
)
def test_bad_signatures_are_rejected_and_nothing_is_stored(
    client: Client, api: InProcessVerilock, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    body = json.dumps(webhook_payload(session_id="ses_secret_applicant")).encode()
    good = hmac.new(SECRET.encode(), body, hashlib.sha256)
    signature: str | None = {
        "wrong secret": sign_webhook(body, "whsec_wrong"),
        "tampered body": good.hexdigest(),
        "missing header": None,
        "base64": base64.b64encode(good.digest()).decode(),
        "truncated": good.hexdigest()[:-2],
        "empty": "",
    }[case]
    if case == "tampered body":
        body = body.replace(b"approved", b"declined")

    with caplog.at_level(logging.WARNING, logger="verilock_django"):
        response = post(client, body, signature)

    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()
    assert api.total_requests == 0
    (record,) = [r for r in caplog.records if r.name == "verilock_django.webhooks"]
    logged = record.getMessage()
    assert "signature" in logged
    # Neither the body nor the signature reaches the logs.
    assert "ses_secret_applicant" not in logged
    assert good.hexdigest()[:16] not in logged


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("header", "encode"),
    [
        ("X-Verilock-Signature", str.upper),
        ("X-Verilock-Signature", lambda sig: f"sha256={sig}"),
        ("X-Verilock-Signature", lambda sig: f"  SHA256={sig.upper()} "),
        ("X-Webhook-Signature", lambda sig: sig),
    ],
    ids=["upper-hex", "prefixed", "prefixed-upper-padded", "legacy-header"],
)
def test_tolerated_signature_encodings(
    client: Client, header: str, encode: Any, settings: Any
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    body = json.dumps(webhook_payload()).encode()

    response = post(client, body, encode(sign_webhook(body, SECRET)), header=header)

    assert response.status_code == 200
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db
def test_the_fake_apis_signature_is_accepted(client: Client, settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    body, headers = signed_webhook(webhook_payload(), SECRET)
    assert post(client, body, headers["X-Verilock-Signature"]).status_code == 200


@pytest.mark.django_db
def test_rotation_accepts_old_and_new_secret_only(client: Client, settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_SECRETS = [SECRET, OLD_SECRET]
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"

    assert deliver(client, webhook_payload(webhook_id="wh_new"), SECRET).status_code == 200
    assert deliver(client, webhook_payload(webhook_id="wh_old"), OLD_SECRET).status_code == 200
    assert deliver(client, webhook_payload(webhook_id="wh_bad"), "whsec_other").status_code == 403

    settings.VERILOCK_WEBHOOK_SECRETS = [SECRET]  # rotation finished: the old one is dropped
    assert deliver(client, webhook_payload(webhook_id="wh_late"), OLD_SECRET).status_code == 403
    assert set(WebhookEvent.objects.values_list("webhook_id", flat=True)) == {"wh_new", "wh_old"}


@pytest.mark.django_db
def test_a_secret_pasted_with_a_trailing_newline_verifies(client: Client, settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_SECRETS = [f"{SECRET}\n"]
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    assert deliver(client, webhook_payload(), SECRET).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("secrets", [[], "whsec_as_a_string", [""], ["whsec_a b"]])
def test_unconfigured_endpoint_refuses(client: Client, settings: Any, secrets: Any) -> None:
    settings.VERILOCK_WEBHOOK_SECRETS = secrets
    body = json.dumps(webhook_payload()).encode()

    response = post(client, body, sign_webhook(body, "whsec_as_a_string"))

    assert response.status_code == 503
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_duplicate_webhook_id_is_acknowledged_and_does_nothing(
    client: Client,
    api: InProcessVerilock,
    recorder: Recorder,
    django_capture_on_commit_callbacks: Any,
) -> None:
    session = api.add_session(status="approved")
    payload = webhook_payload(session_id=session.id, webhook_id="wh_evt_dup")

    with django_capture_on_commit_callbacks(execute=True):
        first = deliver(client, payload)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = deliver(client, payload)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"status": "duplicate"}
    assert callbacks == []
    assert WebhookEvent.objects.count() == 1
    assert api.requests_for(session.id) == 1
    assert len(recorder.of(webhook_received)) == 1


@pytest.mark.django_db
def test_missing_webhook_id_falls_back_to_event_session_and_timestamp(
    client: Client, settings: Any
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    occurred = timezone.now() - dt.timedelta(minutes=20)
    payload = webhook_payload(session_id="ses_1", timestamp=occurred)
    del payload["webhook_id"]

    assert deliver(client, payload).json() == {"status": "stored"}
    assert deliver(client, payload).json() == {"status": "duplicate"}  # a retry
    later = {**payload, "timestamp": format_timestamp(occurred + dt.timedelta(minutes=10))}
    assert deliver(client, later).json() == {"status": "stored"}  # a new occurrence
    ids = list(WebhookEvent.objects.values_list("webhook_id", flat=True))
    assert len(ids) == 2
    assert all(value.startswith("derived:") for value in ids)


@pytest.mark.django_db
def test_body_over_the_limit_is_refused(client: Client, settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_MAX_BODY_SIZE = 1000
    payload = webhook_payload()
    payload["data"]["padding"] = "x" * 1000
    body, headers = signed_webhook(payload, SECRET)

    response = client.post(URL, data=body, content_type="application/json", headers=headers)

    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b"\xff\xfe",
        b'{"event": "session.completed", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"event": "session.completed", "data": ' + b"[" * 40 + b"]" * 40 + b"}",  # > 31
    ],
)
def test_signed_body_that_is_not_a_json_object_is_a_400(client: Client, body: bytes) -> None:
    response = post(client, body, sign_webhook(body, SECRET))

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_the_depth_limit_for_bodies_is_a_setting(client: Client, settings: Any) -> None:
    body = b'{"event": "session.completed", "data": {"session_id": "ses_1", "tags": ["a"]}}'
    settings.VERILOCK_MAX_JSON_DEPTH = 2
    assert post(client, body, sign_webhook(body, SECRET)).status_code == 400
    settings.VERILOCK_MAX_JSON_DEPTH = 3
    assert post(client, body, sign_webhook(body, SECRET)).status_code == 200


@pytest.mark.django_db
def test_only_post_and_no_csrf_token_needed(settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    client = Client(enforce_csrf_checks=True)

    assert client.get(URL).status_code == 405
    assert deliver(client, webhook_payload()).status_code == 200


@pytest.mark.django_db
def test_envelope_is_read_tolerantly() -> None:
    body = json.dumps(
        {"event": "session.approved", "data": {"id": "ses_9"}, "webhook_id": 12345}
    ).encode()
    envelope = parse_envelope(body)
    assert (envelope.webhook_id, envelope.session_id, envelope.occurred_at) == (
        "12345",
        "ses_9",
        None,
    )
    odd = parse_envelope(b'{"event": 3, "data": [], "timestamp": "yesterday"}')
    assert (odd.event_type, odd.session_id, odd.occurred_at) == ("", "", None)
    assert odd.webhook_id.startswith("derived:")
    # Over the column's length: hashed, still stable across retries.
    long_id = json.dumps({"event": "session.completed", "webhook_id": "w" * 300}).encode()
    assert parse_envelope(long_id).webhook_id == parse_envelope(long_id).webhook_id
    assert parse_envelope(long_id).webhook_id.startswith("sha256:")
    # Neither id nor timestamp: the body itself identifies the delivery.
    bare = b'{"event": "session.completed", "data": {"session_id": "ses_1"}}'
    assert parse_envelope(bare).webhook_id == ("derived:" + hashlib.sha256(bare).hexdigest())


def test_an_ordinary_envelope_is_stored_as_read_and_an_odd_one_cleaned_first() -> None:
    payload = webhook_payload(risk_score=0.25)
    payload["data"]["applicant"] = {"name": "Zoë"}  # escaped as \\u00eb: nothing to clean
    assert parse_envelope(json.dumps(payload).encode()).storable
    # Hex ids hold exponent-like runs ("9e635"): not numbers, so nothing to clean either.
    payload["webhook_id"], payload["data"]["session_id"] = "wh_b099e6355df8", "ses_1e400x"
    assert parse_envelope(json.dumps(payload).encode()).storable
    for odd in (
        b'{"n": NaN}',
        b'{"n": 123456789012345678901}',
        b'{"t": "\\u0000"}',
        b'{"n": 1e400}',
        b'{"n": [2E+308]}',
    ):
        assert not parse_envelope(odd).storable


def test_signatures_agree_with_hmac_whatever_the_number_and_order_of_secrets() -> None:
    body = b'{"event": "session.completed"}'
    secrets = [f"whsec_{n}" for n in range(20)]  # more than are kept keyed
    for secret in secrets + secrets[::-1]:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert sign_webhook(body, secret) == expected


# -- signals --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_signals_fire_once_after_commit(
    client: Client, api: InProcessVerilock, recorder: Recorder
) -> None:
    session = api.add_session(status="approved")
    # The provider may send both session.completed and session.approved for one outcome.
    for event in ("session.completed", "session.approved"):
        assert deliver(client, webhook_payload(event, session_id=session.id)).status_code == 200

    assert len(recorder.of(webhook_received)) == 2
    (updated,) = recorder.of(session_updated)
    assert updated["created"] is True
    (finished,) = recorder.of(session_finished)
    assert finished["session"].pk == session.id
    assert WebhookEvent.objects.filter(status=WebhookEventStatus.PROCESSED).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_is_logged_and_the_others_and_processing_still_run(
    client: Client, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "tests.test_webhooks.enqueue"
    QUEUE.clear()
    received: list[int | None] = []

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("a host receiver bug")

    def working(event: WebhookEvent, **kwargs: Any) -> None:
        received.append(event.pk)

    webhook_received.connect(broken, dispatch_uid="broken-receiver")
    webhook_received.connect(working, dispatch_uid="working-receiver")
    try:
        with caplog.at_level(logging.ERROR):
            response = deliver(client, webhook_payload(webhook_id="wh_receivers"))
    finally:
        webhook_received.disconnect(dispatch_uid="broken-receiver")
        webhook_received.disconnect(dispatch_uid="working-receiver")

    assert response.json() == {"status": "stored"}
    event = WebhookEvent.objects.get(webhook_id="wh_receivers")
    assert received == QUEUE == [event.pk]
    assert "a host receiver bug" in caplog.text


QUEUE: list[int] = []


def enqueue(event_id: int) -> None:
    """A stand-in task queue for ``VERILOCK_WEBHOOK_PROCESSOR``."""
    QUEUE.append(event_id)


@pytest.mark.django_db(transaction=True)
def test_no_signal_and_no_processing_on_rollback(
    api: InProcessVerilock, recorder: Recorder, settings: Any
) -> None:
    session = api.add_session(status="approved")
    body = json.dumps(webhook_payload(session_id=session.id)).encode()

    def store_then_fail() -> None:
        with transaction.atomic():
            store_delivery(parse_envelope(body))
            raise RuntimeError("the host's transaction failed")

    with pytest.raises(RuntimeError):
        store_then_fail()

    assert recorder.calls == []
    assert not WebhookEvent.objects.exists()
    assert api.total_requests == 0

    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    event = stored(json.loads(body))

    def process_then_fail() -> None:
        with transaction.atomic():
            process_event(event.pk)
            raise RuntimeError("rolled back after the session was stored")

    with pytest.raises(RuntimeError):
        process_then_fail()
    assert recorder.of(session_updated) == []
    assert recorder.of(session_finished) == []
    assert not Session.objects.exists()
    event.refresh_from_db()
    assert (event.status, event.attempts) == (WebhookEventStatus.PENDING, 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (DataError('invalid input syntax for type json CONTEXT: "jean@example.com"'), 422),
        (OperationalError("the database system is starting up"), 503),
    ],
)
def test_a_body_that_cannot_be_stored_gets_a_4xx_and_a_database_away_a_503(
    client: Client, monkeypatch: pytest.MonkeyPatch, failure: Exception, status: int
) -> None:
    def store(envelope: object) -> None:
        raise failure

    monkeypatch.setattr("verilock_django.webhooks.store_delivery", store)

    response = deliver(client, webhook_payload(session_id="ses_1"))

    # 4xx: the provider stops retrying a body that can never be stored; a 500 would not.
    assert response.status_code == status
    assert "jean@example.com" not in response.content.decode()
