"""Processing of stored webhook events: claiming, failures, the command, the thread pool."""

from __future__ import annotations

import datetime as dt
import threading
from io import StringIO
from typing import Any

import pytest
import responses
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from verilock_django import processing
from verilock_django.models import Session, WebhookEvent, WebhookEventStatus
from verilock_django.processing import ProcessOutcome, claim_event, process_event
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.webhooks import webhook_payload

from .webhook_helpers import deliver, stored

pytestmark = pytest.mark.usefixtures("webhook_settings")


# -- processing -----------------------------------------------------------------------


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
    settings.VERILOCK_WEBHOOK_PROCESSOR = "tests.test_processing.enqueue"
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
