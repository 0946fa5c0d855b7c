"""Attacks on personal data and secrets, tried as an attacker (or an unlucky operator) would.

Replayed, late and stale webhooks after an erasure; the API key and the webhook secrets in
every output under every error path; applicant data in logs at every level.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command
from django.http import HttpRequest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from django.views.debug import technical_500_response

from verilock_django import processing
from verilock_django.exceptions import ErasedSessionError, VerilockError
from verilock_django.models import Session, WebhookEvent
from verilock_django.privacy import apply_retention, erase_applicant
from verilock_django.refresh import refresh_unfinished
from verilock_django.signatures import sign_webhook
from verilock_django.sync import sync_session, sync_sessions
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.webhooks import signed_webhook, webhook_payload

API_KEY = "qi_live_K3YSECRETVALUE"
WEBHOOK_SECRET = "whsec_S3CRETVALUE"
API_URL = "https://verilock.test/api/v1"
URL = "/verilock/webhook/"
SECRETS = (API_KEY, WEBHOOK_SECRET, "K3YSECRET", "S3CRETVALUE")
APPLICANT_VALUES = ("Jean", "Dupont", "jean.dupont@example.com", "1990-05-15", "12AB34567")


@pytest.fixture(autouse=True)
def attack_settings(settings: Any) -> Iterator[None]:
    settings.VERILOCK_API_KEY = API_KEY
    settings.VERILOCK_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    settings.VERILOCK_WEBHOOK_PROCESSOR = "sync"
    yield
    processing.shutdown()


def post(client: Client, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(URL, data=body, content_type="application/json", headers=headers)


# -- replayed, late and stale webhooks after an erasure --------------------------------


@pytest.mark.django_db
def test_a_replayed_delivery_does_not_undo_an_erasure(
    client: Client, verilock_api: InProcessVerilock, django_capture_on_commit_callbacks: Any
) -> None:
    session = verilock_api.add_session(status="approved", reference_id="usr_forget_me")
    captured = signed_webhook(
        webhook_payload(session_id=session.id, webhook_id="wh_evt_captured"), WEBHOOK_SECRET
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, *captured).status_code == 200
    assert Session.objects.filter(pk=session.id).exists()  # the delivery created it

    erase_applicant("usr_forget_me")
    with django_capture_on_commit_callbacks(execute=True):
        replay = post(client, *captured)

    assert replay.status_code == 200  # acknowledged, so the provider stops retrying
    assert not WebhookEvent.objects.exists()
    assert not Session.objects.exists()


@pytest.mark.django_db
def test_late_deliveries_syncs_and_list_walks_do_not_recreate_an_erased_session(
    client: Client, verilock_api: InProcessVerilock, django_capture_on_commit_callbacks: Any
) -> None:
    session = verilock_api.add_session(status="processing", reference_id="usr_late")
    sync_session(session.id)
    erase_applicant("usr_late")
    verilock_api.complete(session.id, "approved")

    late = webhook_payload(session_id=session.id, webhook_id="wh_evt_late")
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, *signed_webhook(late, WEBHOOK_SECRET)).status_code == 200
    report = refresh_unfinished()
    with pytest.raises(ErasedSessionError):
        sync_session(session.id)
    batch = sync_sessions([session.id])

    assert report.fetched == 0
    assert list(batch.failed) == [session.id]
    assert not Session.objects.exists() and not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_stale_delivery_is_refused_once_its_event_was_deleted_by_retention(
    client: Client, settings: Any
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    settings.VERILOCK_WEBHOOK_RETENTION_DAYS = 3
    sent = timezone.now() - dt.timedelta(days=4)
    captured = signed_webhook(webhook_payload(timestamp=sent), WEBHOOK_SECRET)
    WebhookEvent.objects.all().delete()  # retention ran: the original event is gone
    apply_retention()

    response = post(client, *captured)

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


# -- secrets in every output under every error path -------------------------------------

FAULTS: dict[str, dict[str, Any]] = {
    "401": {"status": 401, "json": {"error": "unauthorized", "message": "Invalid API key"}},
    "403": {"status": 403, "json": {"error": "forbidden", "message": "Not allowed"}},
    "404": {"status": 404, "json": {"error": "not_found", "message": "No such session"}},
    "429": {
        "status": 429,
        "json": {"error": "rate_limit_exceeded", "details": {"retry_after": 0}},
    },
    "500": {"status": 500, "body": "Internal Server Error"},
    "timeout": {"body": requests.exceptions.ReadTimeout("read timed out")},
    "reset": {"body": requests.exceptions.ConnectionError("Connection reset by peer")},
    "malformed": {"status": 200, "body": "{not json"},
}


@pytest.mark.django_db
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_no_secret_reaches_any_output_on_an_error_path(
    fault: str, mocked: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    Session.objects.create(id="ses_fault")
    mocked.get(f"{API_URL}/sessions/ses_fault", **FAULTS[fault])
    out, err = StringIO(), StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("sync_verilock_sessions", "ses_fault", stdout=out, stderr=err)
    with pytest.raises(VerilockError) as error:
        sync_session("ses_fault")

    outputs = [
        caplog.text,
        out.getvalue(),
        err.getvalue(),
        str(raised.value),
        str(error.value),
        repr(error.value),
        Session.objects.get().last_sync_error,
    ]
    assert Session.objects.get().last_sync_error  # the error path was really taken
    for secret in SECRETS:
        assert not any(secret in text for text in outputs), secret


@pytest.mark.django_db
@pytest.mark.parametrize("fault", ["bad signature", "no signature", "not json", "stale", "big"])
def test_no_webhook_secret_or_body_in_any_webhook_answer_or_log(
    fault: str, client: Client, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.VERILOCK_WEBHOOK_MAX_BODY_SIZE = 2000
    payload = webhook_payload(
        timestamp=timezone.now() - dt.timedelta(days=10 if fault == "stale" else 0)
    )
    payload["data"]["applicant_name"] = "Jean Dupont"
    if fault == "big":
        payload["data"]["padding"] = "x" * 2000
    body, headers = signed_webhook(payload, WEBHOOK_SECRET)
    if fault == "bad signature":
        headers = signed_webhook(payload, "whsec_wrong")[1]
    elif fault == "no signature":
        headers = {}
    elif fault == "not json":
        body = b"Jean Dupont"
        headers = {"X-Verilock-Signature": sign_webhook(body, WEBHOOK_SECRET)}

    response = post(client, body, headers)

    assert 400 <= response.status_code < 500
    assert not WebhookEvent.objects.exists()
    outputs = f"{response.content.decode()} {caplog.text}"
    for secret in (*SECRETS, *headers.values(), "Jean", "Dupont"):
        assert secret not in outputs, secret


@pytest.mark.django_db
def test_no_secret_on_django_debug_error_page(settings: Any) -> None:
    settings.DEBUG = True
    body, headers = signed_webhook(webhook_payload(), WEBHOOK_SECRET)
    request = RequestFactory().post(
        URL,
        data=body,
        content_type="application/json",
        headers={**headers, "Authorization": f"Bearer {API_KEY}"},
    )
    page = debug_page(request)

    assert "boom while handling a webhook" in page  # the page did render the report
    for secret in (*SECRETS, headers["X-Verilock-Signature"]):
        assert secret not in page, secret


def debug_page(request: HttpRequest) -> str:
    """Django's DEBUG error page for an error raised while handling ``request``.

    Raised and rendered here, so that no test variable holding a secret is a local of a
    frame the page shows: what it shows of the request and the settings is Django's own.
    """
    try:
        raise RuntimeError("boom while handling a webhook")
    except RuntimeError:
        return str(technical_500_response(request, *sys.exc_info()).content.decode())


QUOTING_ERRORS = {
    "message": ({"error": "validation_failed", "message": "Applicant Jean Dupont "
                 "(jean.dupont@example.com) is already verified"}, {}),
    "code": ({"error": "Applicant Jean Dupont is already verified"}, {}),
    "code is a surname": ({"error": "Dupont"}, {}),
    "field messages": (
        {"error": "validation_failed",
         "details": {"applicant_email": ["jean.dupont@example.com is taken"],
                     "Jean Dupont": ["born 1990-05-15"]}},
        {},
    ),
    "request id": ({"error": "validation_failed"}, {"X-Request-Id": "Jean Dupont 1990-05-15"}),
}  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("where", QUOTING_ERRORS)
def test_a_provider_error_message_quoting_the_applicant_is_not_logged_or_stored(
    mocked: Any, caplog: pytest.LogCaptureFixture, where: str, admin_client: Client
) -> None:
    caplog.set_level(logging.DEBUG)
    Session.objects.create(id="ses_quote")
    body, headers = QUOTING_ERRORS[where]
    mocked.get(f"{API_URL}/sessions/ses_quote", status=422, json=body, headers=headers)

    with pytest.raises(VerilockError) as error:
        sync_session("ses_quote")

    stored = Session.objects.get().last_sync_error
    # Still a useful reason for the admin: the status, and the code when it is a token.
    assert "HTTP 422" in stored
    if not where.startswith("code"):
        assert "error=validation_failed" in stored
    page = admin_client.get(
        reverse("admin:verilock_django_session_change", args=("ses_quote",))
    ).content.decode()
    assert "Unprocessable" in page and "HTTP 422" in page  # the admin shows why
    shown = f"{caplog.text} {stored} {error.value} {error.value!r} {page}"
    assert not any(value in shown for value in APPLICANT_VALUES)


@pytest.mark.django_db
def test_the_key_is_sent_but_never_repeated_in_errors_or_logs(
    mocked: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The app adds no header, no key and no body to an error or a log line."""
    caplog.set_level(logging.DEBUG)
    mocked.get(f"{API_URL}/sessions/ses_x", status=400, json={"error": "bad_request"})
    with pytest.raises(VerilockError) as error:
        sync_session("ses_x")
    request = mocked.calls[0].request
    assert request.headers["X-API-Key"] == API_KEY  # the key was sent…
    assert API_KEY not in f"{error.value} {error.value!r} {caplog.text}"  # …and not repeated


# -- applicant data in logs at every level ---------------------------------------------


@pytest.mark.django_db
def test_no_applicant_data_in_logs_through_a_whole_sync_with_failures(
    mocked: Any,
    seed: dict[str, Any],
    client: Client,
    caplog: pytest.LogCaptureFixture,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings.VERILOCK_PII_RETENTION_DAYS = 1
    bad_date = {**seed, "id": "ses_bad", "applicant": {**seed["applicant"], "date_of_birth": 7}}
    mocked.get(f"{API_URL}/sessions/{seed['id']}", json=seed)
    mocked.get(f"{API_URL}/sessions/ses_bad", json=bad_date)
    mocked.get(f"{API_URL}/sessions/ses_down", status=503, body="Jean Dupont is unavailable")
    mocked.get(f"{API_URL}/sessions/ses_html", status=200, body="<p>Jean Dupont</p>")
    mocked.get(f"{API_URL}/sessions/ses_wrong", json={**seed, "id": "ses_other"})

    report = sync_sessions([seed["id"], "ses_bad", "ses_down", "ses_html", "ses_wrong"])
    body = webhook_payload(session_id=seed["id"])
    body["data"]["applicant_name"] = "Jean Dupont"
    with django_capture_on_commit_callbacks(execute=True):
        post(client, *signed_webhook(body, WEBHOOK_SECRET))
    apply_retention(now=timezone.now() + dt.timedelta(days=3650))
    erase_applicant("usr_12345")

    assert report.created == 1 and len(report.failed) == 4
    assert caplog.records  # the run did log, at several levels
    logged = caplog.text + " ".join(str(record.args) for record in caplog.records)
    assert [value for value in APPLICANT_VALUES if value in logged] == []


def _only_provider_text(caplog: pytest.LogCaptureFixture) -> bool:
    """Applicant names appear only where the provider's own error text is quoted."""
    return all(
        "Jean" not in record.getMessage() or "is unavailable" in record.getMessage()
        for record in caplog.records
    )
