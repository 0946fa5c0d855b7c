"""Celery: the tasks' policy, on-commit sending, and real workers against the fake API.

The end-to-end test starts two ``celery worker`` processes on loopback (Redis broker, the
fake API with 50 ms latency and a 600 requests/min limit, the rate-limit window shared in
Redis), one of them with its clock an hour ahead (libfaketime), kills the other with SIGKILL
mid-run, and checks the fake API's request log: every session fetched once (at most the
killed worker's in-flight ones twice, after their lease ran out), and no 429 ever.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from verilock_django import clock
from verilock_django.models import Session
from verilock_django.refresh import Lease
from verilock_django.testing.server import FakeVerilockServer

from .workers import (
    processes,
    python,
    require_postgresql,
    require_redis,
    synced,
    unique_name,
    wait_until,
    worker_env,
)

celery = pytest.importorskip("celery", reason="the celery extra is not installed")

from verilock_django.contrib import celery as contrib  # noqa: E402

BROKER_URL = "redis://127.0.0.1:6379/13"
RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:6379/14"
SESSIONS = int(os.environ.get("E2E_SESSIONS", "1000"))
LEASE_SECONDS = 15
THREADS = 8


def test_every_task_is_acknowledged_late_and_retried_a_bounded_number_of_times() -> None:
    for task in (contrib.sync_session, contrib.process_event, contrib.refresh_batch):
        assert task.acks_late and task.reject_on_worker_lost
        assert task.max_retries == contrib.MAX_RETRIES == 3
        assert task.retry_backoff_max == contrib.RETRY_BACKOFF_MAX


@pytest.mark.django_db
def test_tasks_are_sent_on_commit_to_the_configured_queue(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    settings.VERILOCK_TASK_QUEUE = "verilock"
    sent: list[tuple[str, list[object], dict[str, Any]]] = []
    for task in (contrib.sync_session, contrib.process_event, contrib.refresh_batch):
        monkeypatch.setattr(
            task,
            "apply_async",
            lambda args, _name=task.name, **options: sent.append((_name, args, options)),
        )
    lease = Lease(timezone.now() + dt.timedelta(minutes=10), timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        contrib.engine.enqueue_sync("ses_1", None)
        contrib.engine.enqueue_sync("ses_2", lease)
        contrib.engine.enqueue_event(5)
        contrib.engine.enqueue_refresh(None)
        assert sent == []  # nothing leaves before the commit
    assert [name for name, _, _ in sent] == [
        "verilock_django.sync_session",
        "verilock_django.sync_session",
        "verilock_django.process_event",
        "verilock_django.refresh_batch",
    ]
    assert sent[1][1] == ["ses_2", lease.token.isoformat(), lease.claimed_at.isoformat()]
    assert all(options == {"queue": "verilock"} for _, _, options in sent)


@pytest.mark.django_db(transaction=True)
def test_two_workers_one_killed_one_an_hour_ahead_fetch_each_session_once_within_the_limit(
    settings: Any,
) -> None:
    require_postgresql()
    require_redis()
    if shutil.which("faketime") is None:
        pytest.skip("needs libfaketime (apt-get install faketime)")
    # This process claims and lists too: same lease length, same shared window.
    settings.VERILOCK_LEASE_SECONDS = LEASE_SECONDS
    settings.VERILOCK_RATE_LIMIT_REDIS_URL = RATE_LIMIT_REDIS_URL
    settings.VERILOCK_RATE_LIMIT_PER_MINUTE = None
    api_key, queue = unique_name("e2e-key"), unique_name("verilock-e2e")
    with FakeVerilockServer(api_key=api_key, latency_ms=50, rate_limit_per_minute=600) as server:
        settings.VERILOCK_API_URL, settings.VERILOCK_API_KEY = server.url, api_key
        ids = [server.state.add_session(status="processing").id for _ in range(SESSIONS)]
        Session.objects.bulk_create(Session(id=session_id) for session_id in ids)
        env = worker_env(
            server,
            api_key,
            VERILOCK_E2E_TASK_BACKEND="celery",
            VERILOCK_E2E_QUEUE=queue,
            VERILOCK_E2E_BROKER_URL=BROKER_URL,
            VERILOCK_E2E_REDIS_URL=RATE_LIMIT_REDIS_URL,
            VERILOCK_E2E_LEASE_SECONDS=str(LEASE_SECONDS),
        )
        worker = python(
            "-m", "celery", "-A", "tests.celery_app", "worker", "-Q", queue,
            "--pool", "threads", "-c", str(THREADS), "--without-gossip",
            "--without-mingle", "--without-heartbeat", "-l", "WARNING",
        )  # fmt: skip
        with processes(
            [[*worker, "-n", "normal@%h"], ["faketime", "-f", "+1h", *worker, "-n", "ahead@%h"]],
            env,
        ) as (normal, ahead):
            app = _sender(settings, queue)
            try:
                call_command("sync_verilock_sessions", "--enqueue", stdout=StringIO())
                wait_until(lambda: synced() >= SESSIONS // 3, timeout=120, what="a third synced")
                os.killpg(normal.pid, signal.SIGKILL)  # mid-run, tasks in hand
                normal.wait(timeout=10)
                # The other worker goes on; the killed one's sessions wait for their lease.
                wait_until(
                    lambda: synced() >= SESSIONS - THREADS * 2,
                    timeout=240,
                    what="the surviving worker to finish the queue",
                )
                wait_until(_leases_expired, timeout=LEASE_SECONDS + 30, what="leases to expire")
                # Cron, the safety net: claims what the killed worker left, enqueues it.
                call_command("sync_verilock_sessions", "--enqueue", stdout=StringIO())
                wait_until(lambda: synced() == SESSIONS, timeout=60, what="every session synced")
                assert ahead.poll() is None, "the worker an hour ahead must still be running"
            finally:
                app.close()
        answered = server.state.requests
        per_session = {sid: server.state.requests_for(sid) for sid in ids}

    statuses = dict(Session.objects.values_list("id", "status"))
    assert statuses == dict.fromkeys(ids, "processing")
    assert not Session.objects.exclude(last_sync_error="").exists()
    twice = [sid for sid, count in per_session.items() if count > 1]
    # Only what the killed worker had in flight may be fetched again, once, after its lease.
    assert all(per_session[sid] == 2 for sid in twice)
    answers = {sid: [r.status for r in answered if r.session_id == sid] for sid in twice}
    assert len(twice) <= THREADS, answers
    assert [r for r in answered if r.status == 429] == []  # the limit was never exceeded


def _leases_expired() -> bool:
    return not Session.objects.filter(lease_expires_at__gte=clock.now()).exists()


def _sender(settings: Any, queue: str) -> Any:
    """This process's Celery app, sending to the test's broker and queue."""
    settings.VERILOCK_TASK_BACKEND = "celery"
    settings.VERILOCK_TASK_QUEUE = queue
    app = celery.Celery("verilock_e2e_sender", broker=BROKER_URL)
    app.conf.task_ignore_result = True
    app.set_current()
    app.set_default()
    return app
