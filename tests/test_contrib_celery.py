"""Celery: the tasks' policy, on-commit sending, and real workers against the fake API.

The end-to-end test starts two ``celery worker`` processes on loopback (Redis broker, the
fake API with 50 ms latency and a 600 requests/min limit, the rate-limit window shared in
Redis), one of them with its clock an hour ahead (libfaketime). Mid-run the fake holds its
answers until every worker thread waits in a fetch; the other worker is then killed with
SIGKILL (its whole process group) and the answers released: the killed worker's are
abandoned (its sockets are gone), never answered. The fake API's request log must then show
every session answered exactly once, the killed worker's sessions asked for again only
after their lease ran out, and no minute over the limit.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
from collections import Counter
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from verilock_django import clock, work
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
PER_MINUTE = 600
THREADS = 8  # per worker; two workers
# A worker's lease outlasts the longest fetch it covers (system check E060): one rate-limit
# window plus every attempt's timeout. One attempt (Celery retries the task instead) with a
# timeout far above how long the test holds answers, so no held request times out.
TIMEOUT, MAX_RETRIES = 20.0, 0
LEASE_SECONDS = 85.0


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
def test_two_workers_one_killed_mid_fetch_one_an_hour_ahead_answer_each_session_once(
    settings: Any,
) -> None:
    require_postgresql()
    require_redis()
    if shutil.which("faketime") is None:
        pytest.skip("needs libfaketime (apt-get install faketime)")
    # This process claims and lists too: same lease, same shared window, same timeouts.
    settings.VERILOCK_LEASE_SECONDS = LEASE_SECONDS
    settings.VERILOCK_TIMEOUT, settings.VERILOCK_MAX_RETRIES = TIMEOUT, MAX_RETRIES
    settings.VERILOCK_RATE_LIMIT_REDIS_URL = RATE_LIMIT_REDIS_URL
    settings.VERILOCK_RATE_LIMIT_PER_MINUTE = None
    settings.VERILOCK_TASK_BACKEND = "celery"
    assert work.check_worker_lease() == []  # no E060: the lease outlasts a fetch
    api_key, queue = unique_name("e2e-key"), unique_name("verilock-e2e")
    fake = FakeVerilockServer(api_key=api_key, latency_ms=50, rate_limit_per_minute=PER_MINUTE)
    with fake as server:
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
            VERILOCK_E2E_TIMEOUT=str(TIMEOUT),
            VERILOCK_E2E_MAX_RETRIES=str(MAX_RETRIES),
        )
        worker = python(
            "-m", "celery", "-A", "tests.celery_app", "worker", "-Q", queue,
            "--pool", "threads", "-c", str(THREADS), "--without-gossip",
            "--without-mingle", "--without-heartbeat", "-l", "WARNING",
        )  # fmt: skip
        with processes(
            [[*worker, "-n", "killed@%h"], ["faketime", "-f", "+1h", *worker, "-n", "ahead@%h"]],
            env,
        ) as (killed, ahead):
            app = _sender(settings, queue)
            try:
                call_command("sync_verilock_sessions", "--enqueue", stdout=StringIO())
                wait_until(lambda: synced() >= SESSIONS // 3, timeout=120, what="a third synced")
                # Mid-run, mid-fetch: every thread of both workers waits for a held answer.
                server.state.hold_answers()
                wait_until(
                    lambda: server.state.held_answers == 2 * THREADS,
                    timeout=60,
                    what="every worker thread to wait in a fetch",
                )
                os.killpg(killed.pid, signal.SIGKILL)  # the worker and anything it started
                killed.wait(timeout=10)
                server.state.release_answers()
                wait_until(
                    lambda: sum(not r.answered for r in server.state.requests) >= THREADS,
                    timeout=10,
                    what="the killed worker's answers to be abandoned",
                )
                abandoned = {r.session_id or "" for r in server.state.requests if not r.answered}
                # The killed worker's leases: nobody may ask for these sessions before.
                lease_ends = dict(
                    Session.objects.filter(pk__in=abandoned).values_list("id", "lease_expires_at")
                )
                # The other worker goes on; the killed one's sessions wait for their lease.
                wait_until(
                    lambda: synced() >= SESSIONS - 2 * THREADS,
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
        log = server.state.requests

    statuses = dict(Session.objects.values_list("id", "status"))
    assert statuses == dict.fromkeys(ids, "processing")  # every session synced, none lost
    assert not Session.objects.exclude(last_sync_error="").exists()
    assert len(abandoned) == THREADS and "" not in abandoned
    # Zero sessions fetched twice: each one answered exactly once.
    answered = Counter(r.session_id for r in log if r.answered and r.session_id)
    assert {sid: n for sid, n in answered.items() if n != 1} == {}
    assert set(answered) == set(ids)
    # The killed worker's sessions were asked for again only once their lease had run out.
    for sid in abandoned:
        lost, *again = [r for r in log if r.session_id == sid]
        assert not lost.answered and [r.answered for r in again] == [True], sid
        lease_end = lease_ends[sid]
        assert lease_end is not None and again[0].arrived_at > lease_end, sid
    # Zero minutes over the limit: no 429, and no 60 s with more requests than allowed.
    assert [r for r in log if r.status == 429] == []
    assert _busiest_minute([r.arrived_at for r in log]) <= PER_MINUTE


def _busiest_minute(times: list[dt.datetime]) -> int:
    """The most of ``times`` that fall within any 60 s."""
    ordered, busiest, first = sorted(times), 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= dt.timedelta(seconds=60):
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest


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
