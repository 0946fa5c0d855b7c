"""Django's task framework end to end: tasks stored by django-tasks-db, run by its worker.

The test enqueues from this process (``sync_verilock_sessions --enqueue`` and a webhook
delivery) into the database queue, then runs ``manage.py db_worker --batch`` as another
process against the same PostgreSQL database and the fake API on loopback.
"""

from __future__ import annotations

import subprocess
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from verilock_django.models import Session, WebhookEvent, WebhookEventStatus
from verilock_django.testing.server import FakeVerilockServer
from verilock_django.webhooks import Envelope, store_delivery

from .workers import python, require_postgresql, synced, unique_name, worker_env

pytest.importorskip("django.tasks", reason="Django's task framework needs Django 6.0+")
pytest.importorskip("django_tasks_db", reason="django-tasks-db is not installed")

SESSIONS = 40


@pytest.mark.django_db(transaction=True)
def test_the_database_worker_runs_the_enqueued_syncs_and_events(settings: Any) -> None:
    from django_tasks_db.models import DBTaskResult

    require_postgresql()
    queue, api_key = unique_name("verilock-e2e"), unique_name("e2e-key")
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": [queue]}}
    settings.VERILOCK_TASK_BACKEND = "default"
    settings.VERILOCK_TASK_QUEUE = queue
    with FakeVerilockServer(api_key=api_key, latency_ms=50, rate_limit_per_minute=600) as server:
        settings.VERILOCK_API_URL, settings.VERILOCK_API_KEY = server.url, api_key
        ids = [server.state.add_session(status="processing").id for _ in range(SESSIONS)]
        Session.objects.bulk_create(Session(id=session_id) for session_id in ids[:-1])
        decided = ids[-1]
        server.state.complete(decided, "approved")
        out = StringIO()
        call_command("sync_verilock_sessions", "--enqueue", stdout=out)
        assert f"{SESSIONS - 1} enqueued" in out.getvalue()
        event, created = store_delivery(
            Envelope(
                webhook_id="wh_e2e",
                event_type="session.approved",
                session_id=decided,
                occurred_at=None,
                payload={"event": "session.approved", "data": {"session_id": decided}},
            )
        )
        assert created
        assert DBTaskResult.objects.filter(queue_name=queue).count() == SESSIONS
        assert synced() == 0  # nothing ran in this process

        env = worker_env(
            server,
            api_key,
            VERILOCK_E2E_TASK_BACKEND="default",
            VERILOCK_E2E_QUEUE=queue,
        )
        worker = python(
            "-m", "django", "db_worker", "--batch", "--queue-name", queue,
            "--no-startup-delay", "--no-reload",
        )  # fmt: skip
        subprocess.run(worker, env=env, check=True, timeout=180, capture_output=True)  # noqa: S603

        per_session = {sid: server.state.answered_for(sid) for sid in ids}
        log = server.state.requests

    assert synced() == SESSIONS
    assert Session.objects.get(pk=decided).status == "approved"
    assert WebhookEvent.objects.get(pk=event.pk).status == WebhookEventStatus.PROCESSED
    assert set(per_session.values()) == {1}  # each session answered exactly once
    assert all(r.answered and r.status == 200 for r in log)  # nothing abandoned, no 429
    results = DBTaskResult.objects.filter(queue_name=queue)
    assert sorted(set(results.values_list("status", flat=True))) == ["SUCCESSFUL"]
