"""Webhook intake, processing, recovery command and checks."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import warnings
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
import responses
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from verilock_django import processing
from verilock_django.checks import check_webhook_settings
from verilock_django.models import Session, WebhookEvent, WebhookEventStatus
from verilock_django.processing import ProcessOutcome, claim_event, process_event
from verilock_django.signals import session_finished, session_updated, webhook_received
from verilock_django.signatures import sign_webhook
from verilock_django.testing.factories import signed_webhook, webhook_payload
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.webhooks import parse_envelope, store_delivery

SECRET = "whsec_current"
OLD_SECRET = "whsec_previous"
URL = "/verilock/webhook/"


@pytest.fixture(autouse=True)
def webhook_settings(settings: Any) -> Iterator[None]:
    settings.VERILOCK_WEBHOOK_SECRETS = [SECRET]
    # Inline processing keeps most tests deterministic; the thread pool has its own tests.
    settings.VERILOCK_WEBHOOK_PROCESSOR = "sync"
    yield
    processing.shutdown()


@pytest.fixture
def api(verilock_api: InProcessVerilock) -> InProcessVerilock:
    return verilock_api


class Recorder:
    """Collects the keyword arguments of every signal sent while connected."""

    def __init__(self, *signals: Any) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self._signals = signals

    def __call__(self, signal: Any, **kwargs: Any) -> None:
        self.calls.append((signal, kwargs))

    def of(self, signal: Any) -> list[dict[str, Any]]:
        return [kwargs for sent, kwargs in self.calls if sent is signal]

    def __enter__(self) -> Recorder:
        for signal in self._signals:
            signal.connect(self, dispatch_uid=f"recorder-{id(self)}-{id(signal)}")
        return self

    def __exit__(self, *exc: object) -> None:
        for signal in self._signals:
            signal.disconnect(dispatch_uid=f"recorder-{id(self)}-{id(signal)}")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder(session_updated, session_finished, webhook_received) as rec:
        yield rec


def post(
    client: Client, body: bytes, signature: str | None = None, header: str = "X-Verilock-Signature"
) -> Any:
    headers = {header: signature} if signature is not None else {}
    return client.post(URL, data=body, content_type="application/json", headers=headers)


def deliver(client: Client, payload: dict[str, Any], secret: str = SECRET) -> Any:
    body, headers = signed_webhook(payload, secret)
    return client.post(URL, data=body, content_type="application/json", headers=headers)


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
    payload = webhook_payload(session_id="ses_1", timestamp="2026-03-15T14:30:01Z")
    del payload["webhook_id"]

    assert deliver(client, payload).json() == {"status": "stored"}
    assert deliver(client, payload).json() == {"status": "duplicate"}  # a retry
    later = {**payload, "timestamp": "2026-03-15T14:40:00Z"}
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


# -- processing -----------------------------------------------------------------------


def stored(payload: dict[str, Any]) -> WebhookEvent:
    body = json.dumps(payload).encode()
    event, created = store_delivery(parse_envelope(body))
    assert created
    return event


@pytest.mark.django_db
def test_unknown_event_is_stored_and_ignored(api: InProcessVerilock) -> None:
    event = stored(
        {"event": "credential.created", "data": {"session_id": "ses_1"}, "webhook_id": "w1"}
    )

    assert process_event(event.pk) is ProcessOutcome.IGNORED

    event.refresh_from_db()
    assert event.status == WebhookEventStatus.IGNORED
    assert event.processed_at is not None
    assert api.total_requests == 0


@pytest.mark.django_db
def test_event_for_unknown_session_creates_it_from_the_api_not_the_payload(
    api: InProcessVerilock,
) -> None:
    session = api.add_session(status="approved")
    # The payload claims "declined": the session must reflect what the API says.
    event = stored(webhook_payload("session.declined", session_id=session.id, status="declined"))
    assert not Session.objects.filter(pk=session.id).exists()

    assert process_event(event.pk) is ProcessOutcome.PROCESSED

    stored_session = Session.objects.get(pk=session.id)
    assert stored_session.status == "approved"
    assert stored_session.results.count() == len(session.steps)


@pytest.mark.django_db
def test_failure_is_recorded_and_the_command_reprocesses_it(
    api: InProcessVerilock,
) -> None:
    session = api.add_session(status="approved")
    event = stored(webhook_payload(session_id=session.id))
    api.fail_next(session.id, status=500)

    assert process_event(event.pk) is ProcessOutcome.FAILED
    event.refresh_from_db()
    assert event.status == WebhookEventStatus.FAILED
    assert event.attempts == 1
    assert "ServerError" in event.last_error
    assert not Session.objects.filter(pk=session.id).exists()

    out = StringIO()
    call_command("process_verilock_webhooks", stdout=out)

    event.refresh_from_db()
    assert event.status == WebhookEventStatus.PROCESSED
    assert (event.attempts, event.last_error) == (2, "")
    assert Session.objects.get(pk=session.id).status == "approved"
    assert "1 processed" in out.getvalue()


@pytest.mark.django_db
def test_a_database_error_while_storing_is_recorded_and_retried_by_the_command(
    api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    from verilock_django import store

    session = api.add_session(status="approved")
    event = stored(webhook_payload(session_id=session.id))
    real_store = store.store_session
    failures = iter([OperationalError("database is locked")])

    def locked_once(*args: Any, **kwargs: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_store(*args, **kwargs)

    monkeypatch.setattr("verilock_django.sync.store_session", locked_once)

    # The failure is recorded on the event, not retried in place (which would re-fetch).
    assert process_event(event.pk) is ProcessOutcome.FAILED
    event.refresh_from_db()
    assert event.status == WebhookEventStatus.FAILED
    assert "database is locked" in event.last_error
    assert api.requests_for(session.id) == 1

    call_command("process_verilock_webhooks", stdout=StringIO())
    event.refresh_from_db()
    assert (event.status, event.attempts) == (WebhookEventStatus.PROCESSED, 2)
    assert Session.objects.get(pk=session.id).status == "approved"


@pytest.mark.django_db
def test_command_fails_loudly_when_an_event_keeps_failing(api: InProcessVerilock) -> None:
    event = stored(webhook_payload(session_id="ses_missing_at_verilock"))

    err = StringIO()
    with pytest.raises(CommandError, match="1 event"):
        call_command("process_verilock_webhooks", stdout=StringIO(), stderr=err)

    assert "NotFoundError" in err.getvalue()
    event.refresh_from_db()
    assert (event.status, event.attempts) == (WebhookEventStatus.FAILED, 1)


@pytest.mark.django_db
def test_processed_event_is_not_processed_again(api: InProcessVerilock) -> None:
    session = api.add_session(status="approved")
    event = stored(webhook_payload(session_id=session.id))

    assert process_event(event.pk) is ProcessOutcome.PROCESSED
    assert process_event(event.pk) is ProcessOutcome.SKIPPED
    assert process_event(event.pk, force=True) is ProcessOutcome.PROCESSED
    assert api.requests_for(session.id) == 2


@pytest.mark.django_db
def test_command_limit_and_verbosity(api: InProcessVerilock) -> None:
    sessions = [api.add_session(status="approved") for _ in range(3)]
    for n, session in enumerate(sessions):
        stored(webhook_payload(session_id=session.id, webhook_id=f"wh_{n}"))
    stored({"event": "video.completed", "data": {}, "webhook_id": "wh_video"})

    out = StringIO()
    call_command("process_verilock_webhooks", "--limit", "2", "-v", "2", stdout=out)

    assert out.getvalue().splitlines() == [
        "wh_0: processed",
        "wh_1: processed",
        "2 processed, 0 ignored, 0 failed, 0 skipped",
    ]
    out = StringIO()
    call_command("process_verilock_webhooks", stdout=out)
    assert out.getvalue().strip() == "1 processed, 1 ignored, 0 failed, 0 skipped"
    with pytest.raises(CommandError, match="--limit"):
        call_command("process_verilock_webhooks", "--limit", "0")


@pytest.mark.django_db
def test_claim_happens_once() -> None:
    event = stored(webhook_payload())

    assert claim_event(event.pk) is not None
    assert claim_event(event.pk) is None
    assert claim_event(event.pk, force=True) is None  # being processed: even force waits


@pytest.mark.django_db
def test_command_takes_over_abandoned_processing_but_not_live_processing(
    api: InProcessVerilock,
) -> None:
    abandoned_session = api.add_session(status="approved")
    live_session = api.add_session(status="approved")
    abandoned = stored(webhook_payload(session_id=abandoned_session.id))
    live = stored(webhook_payload(session_id=live_session.id))
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    WebhookEvent.objects.filter(pk=abandoned.pk).update(
        status=WebhookEventStatus.PROCESSING, processing_started_at=an_hour_ago, attempts=1
    )
    WebhookEvent.objects.filter(pk=live.pk).update(
        status=WebhookEventStatus.PROCESSING, processing_started_at=timezone.now(), attempts=1
    )

    call_command("process_verilock_webhooks", stdout=StringIO())

    abandoned.refresh_from_db()
    live.refresh_from_db()
    assert (abandoned.status, abandoned.attempts) == (WebhookEventStatus.PROCESSED, 2)
    assert live.status == WebhookEventStatus.PROCESSING
    assert api.requests_for(live_session.id) == 0


@pytest.mark.django_db
def test_command_selection_options(api: InProcessVerilock) -> None:
    sessions = [api.add_session(status="approved") for _ in range(4)]
    done, failed, exhausted, old = (
        stored(webhook_payload(session_id=s.id, webhook_id=f"wh_{n}"))
        for n, s in enumerate(sessions)
    )
    WebhookEvent.objects.filter(pk=done.pk).update(status=WebhookEventStatus.PROCESSED)
    WebhookEvent.objects.filter(pk=failed.pk).update(status=WebhookEventStatus.FAILED, attempts=2)
    WebhookEvent.objects.filter(pk=exhausted.pk).update(
        status=WebhookEventStatus.FAILED, attempts=10
    )
    WebhookEvent.objects.filter(pk=old.pk).update(
        received_at=timezone.now() - dt.timedelta(days=3)
    )

    def dry_run(*args: str) -> set[str]:
        out = StringIO()
        call_command("process_verilock_webhooks", "--dry-run", *args, stdout=out)
        return {line.split()[1] for line in out.getvalue().splitlines()[:-1]}

    assert dry_run() == {"wh_1", "wh_3"}  # pending + failed below --max-attempts
    assert dry_run("--max-attempts", "20") == {"wh_1", "wh_2", "wh_3"}
    assert dry_run("--failed") == {"wh_1", "wh_2"}
    assert dry_run("--since", "1d") == {"wh_1"}
    assert dry_run("--since", (timezone.now() - dt.timedelta(days=5)).date().isoformat()) == {
        "wh_1",
        "wh_3",
    }
    assert dry_run("--id", "wh_0", "--id", str(failed.pk)) == {"wh_0", "wh_1"}
    assert api.total_requests == 0

    # --id reprocesses even a processed event (a deliberate request).
    call_command("process_verilock_webhooks", "--id", "wh_0", stdout=StringIO())
    done.refresh_from_db()
    assert (done.status, done.attempts) == (WebhookEventStatus.PROCESSED, 1)
    assert api.requests_for(sessions[0].id) == 1

    with pytest.raises(CommandError):
        call_command("process_verilock_webhooks", "--since", "last tuesday")


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


# -- the thread pool ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_answer_does_not_wait_for_the_api(
    client: Client, settings: Any, api: InProcessVerilock
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "thread"
    session = api.add_session(status="approved")
    api_called = threading.Event()
    release = threading.Event()
    (registered,) = [
        r
        for r in api.mock.registered()
        if isinstance(r, responses.CallbackResponse) and r.method == "GET"
    ]
    answer = registered.callback

    def held(request: Any) -> Any:
        # The fake API answers only when the test releases it, however long that takes.
        api_called.set()
        assert release.wait(10), "the test never released the API"
        return answer(request)

    registered.callback = held

    try:
        response = deliver(client, webhook_payload(session_id=session.id))
        assert response.status_code == 200
        # The answer came back while the API call was still held open (or not yet made).
        assert not release.is_set()
        event = WebhookEvent.objects.get()
        assert event.status in (WebhookEventStatus.PENDING, WebhookEventStatus.PROCESSING)
    finally:
        release.set()
        processing.shutdown(wait=True)

    assert api_called.is_set()
    event.refresh_from_db()
    assert event.status == WebhookEventStatus.PROCESSED
    assert Session.objects.get(pk=session.id).status == "approved"


@pytest.mark.django_db
def test_custom_processor_takes_over(
    client: Client, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "tests.test_webhooks.enqueue"
    ENQUEUED.clear()

    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, webhook_payload())

    event = WebhookEvent.objects.get()
    assert [event.pk] == ENQUEUED
    assert event.status == WebhookEventStatus.PENDING


ENQUEUED: list[int] = []


def enqueue(event_id: int) -> None:
    """A stand-in for a task queue's enqueue function."""
    ENQUEUED.append(event_id)


# -- checks ---------------------------------------------------------------------------


#: A URLconf without the app's URLs (this module doubles as one).
urlpatterns: list[Any] = []


def check_ids() -> set[str]:
    return {message.id for message in check_webhook_settings() if message.id}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"VERILOCK_WEBHOOK_SECRETS": []}, {"verilock_django.W010"}),
        ({"VERILOCK_WEBHOOK_SECRETS": "whsec"}, {"verilock_django.E010", "verilock_django.W010"}),
        (
            {"VERILOCK_WEBHOOK_SECRETS": ["whsec", 3]},
            {"verilock_django.E010", "verilock_django.W010"},
        ),
        ({"VERILOCK_WEBHOOK_PROCESSOR": "celery"}, {"verilock_django.E011"}),
        ({"VERILOCK_WEBHOOK_PROCESSOR": "tests.nope.enqueue"}, {"verilock_django.E011"}),
        ({"VERILOCK_WEBHOOK_PROCESSOR": "tests.test_webhooks.enqueue"}, set()),
        ({"VERILOCK_WEBHOOK_THREADS": 0}, {"verilock_django.E012"}),
        ({"VERILOCK_WEBHOOK_MAX_BODY_SIZE": "1MB"}, {"verilock_django.E013"}),
        ({"VERILOCK_WEBHOOK_STALE_AFTER": -1}, {"verilock_django.E014"}),
        ({}, set()),
    ],
)
def test_webhook_checks(settings: Any, overrides: dict[str, Any], expected: set[str]) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert check_ids() == expected


def test_no_warning_when_the_urls_are_not_included(settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_SECRETS = []
    settings.ROOT_URLCONF = "tests.test_webhooks"
    assert "verilock_django.W010" not in check_ids()


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_does_not_stop_processing(
    client: Client, api: InProcessVerilock
) -> None:
    session = api.add_session(status="approved")

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("a host receiver bug")

    webhook_received.connect(broken, dispatch_uid="broken-receiver")
    try:
        response = deliver(client, webhook_payload(session_id=session.id))
    finally:
        webhook_received.disconnect(dispatch_uid="broken-receiver")

    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEventStatus.PROCESSED
    assert Session.objects.get(pk=session.id).status == "approved"


@pytest.mark.django_db(transaction=True)
def test_full_backlog_leaves_events_pending_for_the_command(
    client: Client,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "thread"
    monkeypatch.setattr(processing, "MAX_BACKLOG", 0)

    with caplog.at_level(logging.WARNING, logger="verilock_django.processing"):
        assert deliver(client, webhook_payload()).status_code == 200

    assert WebhookEvent.objects.get().status == WebhookEventStatus.PENDING
    assert "backlog full" in caplog.text


@pytest.mark.parametrize(
    ("engine", "options", "processor", "warned"),
    [
        ("django.db.backends.sqlite3", {}, "thread", True),
        ("django.db.backends.sqlite3", {"transaction_mode": "DEFERRED"}, "thread", True),
        ("django.db.backends.sqlite3", {"transaction_mode": "IMMEDIATE"}, "thread", False),
        ("django.db.backends.sqlite3", {}, "none", False),
        ("django.db.backends.postgresql", {}, "thread", False),
    ],
)
def test_threaded_processing_on_sqlite_wants_immediate_transactions(
    engine: str, options: dict[str, str], processor: str, warned: bool
) -> None:
    from django.test import override_settings

    databases = {"default": {"ENGINE": engine, "NAME": "x", "OPTIONS": options}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Django warns about overriding DATABASES
        with override_settings(DATABASES=databases, VERILOCK_WEBHOOK_PROCESSOR=processor):
            assert ("verilock_django.W011" in check_ids()) is warned
