"""What one delivery costs the database, and that processing never runs on the request thread.

Counts are per delivery through the view, in autocommit as in production (``transaction=True``
tests), with transaction control left out (Django 5.2 and 6.x differ there). On PostgreSQL a
delivery costs one statement, new or duplicate (the tombstone check and the insert together).
Elsewhere a new delivery costs two (one read: erased? stored already?, then the insert) and a
duplicate only the read.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from verilock_django import encryption, processing
from verilock_django.models import Tombstone, WebhookEvent, WebhookEventStatus
from verilock_django.privacy import erase_sessions
from verilock_django.signals import webhook_received
from verilock_django.testing.webhooks import webhook_payload
from verilock_django.webhooks import parse_envelope, store_delivery

from .conftest import CONTROL
from .webhook_helpers import deliver

pytestmark = [pytest.mark.usefixtures("webhook_settings"), pytest.mark.django_db(transaction=True)]

POSTGRESQL = connection.vendor == "postgresql"


def statements(captured: CaptureQueriesContext) -> list[str]:
    sqls = [query["sql"].upper() for query in captured.captured_queries]
    return [sql for sql in sqls if not sql.startswith(CONTROL)]


def delivered(client: Client, payload: dict[str, Any]) -> tuple[str, list[str]]:
    """The answer's status and the statements the delivery ran."""
    with CaptureQueriesContext(connection) as captured:
        response = deliver(client, payload)
    assert response.status_code == 200
    return response.json()["status"], statements(captured)


@pytest.fixture
def warm(client: Client, settings: Any, webhook_settings: None) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    # Outside the count: the backend's one-time probes (Django 5.2 on SQLite checks its JSON
    # support on first use) are not the intake's cost.
    assert delivered(client, webhook_payload(session_id="ses_warm"))[0] == "stored"


@pytest.mark.usefixtures("warm")
def test_a_duplicate_costs_no_more_statements_than_a_new_delivery(client: Client) -> None:
    payload = webhook_payload(session_id="ses_cost", webhook_id="wh_cost")

    first, new = delivered(client, payload)
    again, duplicate = delivered(client, payload)

    assert (first, again) == ("stored", "duplicate")
    table, tombstones = WebhookEvent._meta.db_table.upper(), Tombstone._meta.db_table.upper()
    if POSTGRESQL:
        # One statement: tombstone check and INSERT … ON CONFLICT DO NOTHING RETURNING.
        assert [len(new), len(duplicate)] == [1, 1]
        for (sql,) in (new, duplicate):
            assert sql.startswith("WITH") and "ON CONFLICT" in sql and tombstones in sql
    else:
        # One read (erased? stored already?); the insert only for a new delivery.
        assert [len(new), len(duplicate)] == [2, 1]
        for read in (new[0], duplicate[0]):
            assert read.startswith("SELECT") and tombstones in read and table in read
        assert new[1].startswith("INSERT") and table in new[1]
    assert not any("SAVEPOINT" in sql for sql in new + duplicate)
    assert WebhookEvent.objects.filter(webhook_id="wh_cost").count() == 1


@pytest.mark.usefixtures("warm")
def test_without_a_session_id_there_is_no_tombstone_to_check(client: Client) -> None:
    payload = {"event": "account.updated", "data": {}, "webhook_id": "wh_account"}

    assert [len(delivered(client, payload)[1]) for _ in range(2)] == [1, 1]
    assert WebhookEvent.objects.filter(webhook_id="wh_account").count() == 1


@pytest.mark.usefixtures("warm")
def test_a_delivery_for_an_erased_session_costs_one_statement_and_stores_nothing(
    client: Client,
) -> None:
    erase_sessions(["ses_erased"])

    status, run = delivered(client, webhook_payload(session_id="ses_erased"))

    assert status == "ignored"
    assert len(run) == 1 and Tombstone._meta.db_table.upper() in run[0]
    assert not WebhookEvent.objects.filter(session_id="ses_erased").exists()


@pytest.mark.usefixtures("warm")
def test_a_duplicate_is_answered_with_the_delivery_and_no_signal_or_processing(
    settings: Any,
) -> None:
    sent: list[int | None] = []
    settings.VERILOCK_WEBHOOK_PROCESSOR = "tests.test_webhooks_cost.enqueue"
    QUEUE.clear()
    body = json.dumps(webhook_payload(session_id="ses_once", webhook_id="wh_once")).encode()

    def receiver(event: WebhookEvent, **kwargs: Any) -> None:
        sent.append(event.pk)

    webhook_received.connect(receiver, dispatch_uid="test-cost")
    try:
        event, created = store_delivery(parse_envelope(body))
        duplicate, created_again = store_delivery(parse_envelope(body))
    finally:
        webhook_received.disconnect(dispatch_uid="test-cost")

    assert created and event.pk is not None and not event._state.adding
    assert not created_again and duplicate._state.adding and duplicate.webhook_id == "wh_once"
    assert not WebhookEvent.objects.exclude(pk=event.pk).filter(webhook_id="wh_once").exists()
    assert QUEUE == sent == [event.pk]


QUEUE: list[int] = []


def enqueue(event_id: int) -> None:
    """A stand-in task queue for ``VERILOCK_WEBHOOK_PROCESSOR``."""
    QUEUE.append(event_id)


def test_the_default_processor_never_processes_on_the_request_thread(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "auto"  # the default, with no task engine
    started, release = threading.Event(), threading.Event()
    ran_on: list[threading.Thread] = []

    def held(event_id: int) -> processing.ProcessOutcome:
        ran_on.append(threading.current_thread())
        started.set()
        assert release.wait(10), "the test never released the processor"
        return processing.ProcessOutcome.PROCESSED

    monkeypatch.setattr(processing, "process_event", held)

    # The answer comes while processing is still held: it cannot have run inline.
    response = deliver(client, webhook_payload(session_id="ses_pool"))
    assert response.json() == {"status": "stored"}
    assert started.wait(10)
    release.set()
    processing.shutdown(wait=True)

    (thread,) = ran_on
    assert thread is not threading.current_thread()
    assert thread.name.startswith("verilock-webhook")
    assert WebhookEvent.objects.get().status == WebhookEventStatus.PENDING


@pytest.mark.skipif(
    encryption.library_missing(),
    reason="the encryption extra (django-fernet-encrypted-fields) is not installed",
)
@pytest.mark.usefixtures("warm")
def test_the_prepared_insert_encrypts_the_payload_as_the_field_does(
    client: Client, settings: Any
) -> None:
    settings.SALT_KEY = "salt-for-the-intake-test"
    settings.VERILOCK_ENCRYPT_FIELDS = True
    payload = webhook_payload(session_id="ses_sealed", webhook_id="wh_sealed")

    assert delivered(client, payload)[0] == "stored"

    meta = WebhookEvent._meta
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {meta.get_field('payload').column} FROM {meta.db_table} "  # noqa: S608
            "WHERE webhook_id = %s",
            ["wh_sealed"],
        )
        (raw,) = cursor.fetchone()
    # Stored as the field stores it: one token, nothing of the delivery readable.
    assert "ses_sealed" not in (raw if isinstance(raw, str) else json.dumps(raw))
    assert WebhookEvent.objects.get(webhook_id="wh_sealed").payload == payload
