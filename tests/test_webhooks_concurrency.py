"""Concurrent deliveries and processing of one event: stored once, processed once (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from verilock_django import processing
from verilock_django.models import Session, WebhookEvent, WebhookEventStatus
from verilock_django.processing import ProcessOutcome, process_event
from verilock_django.signals import session_finished, webhook_received
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.webhooks import signed_webhook, webhook_payload
from verilock_django.webhooks import parse_envelope, store_delivery

from .concurrency import run_together

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: concurrent writers (SQLite serialises the whole database)",
    ),
]

SECRET = "whsec_concurrency"
THREADS = 5


@pytest.fixture(autouse=True)
def webhook_settings(settings: Any) -> Iterator[None]:
    settings.VERILOCK_WEBHOOK_SECRETS = [SECRET]
    settings.VERILOCK_WEBHOOK_PROCESSOR = "sync"
    yield
    processing.shutdown()


def test_same_delivery_five_times_at_once_is_stored_and_processed_once(
    verilock_api: InProcessVerilock,
) -> None:
    session = verilock_api.add_session(status="approved")
    body, headers = signed_webhook(
        webhook_payload(session_id=session.id, webhook_id="wh_evt_race"), SECRET
    )
    received: list[Any] = []
    finished: list[Any] = []
    webhook_received.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t-rcv")
    session_finished.connect(lambda **kw: finished.append(kw), weak=False, dispatch_uid="t-fin")
    try:
        answers = run_together(
            lambda: (
                Client()
                .post(
                    "/verilock/webhook/",
                    data=body,
                    content_type="application/json",
                    headers=headers,
                )
                .json()["status"]
            ),
            THREADS,
            timeout=30,
        )
    finally:
        webhook_received.disconnect(dispatch_uid="t-rcv")
        session_finished.disconnect(dispatch_uid="t-fin")

    assert sorted(answers) == ["duplicate"] * (THREADS - 1) + ["stored"]
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == (WebhookEventStatus.PROCESSED, 1)
    assert verilock_api.requests_for(session.id) == 1
    assert len(received) == 1
    assert len(finished) == 1
    assert Session.objects.get(pk=session.id).status == "approved"


def test_one_event_processed_by_five_workers_at_once_is_processed_once(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    session = verilock_api.add_session(status="approved")
    body, _ = signed_webhook(webhook_payload(session_id=session.id), SECRET)
    event, _ = store_delivery(parse_envelope(body))

    outcomes = run_together(lambda: process_event(event.pk), THREADS, timeout=30)

    assert sorted(outcomes) == [ProcessOutcome.PROCESSED] + [ProcessOutcome.SKIPPED] * (
        THREADS - 1
    )
    event.refresh_from_db()
    assert (event.status, event.attempts) == (WebhookEventStatus.PROCESSED, 1)
    assert verilock_api.requests_for(session.id) == 1
