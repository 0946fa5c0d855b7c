"""Units of background work, leases taken over by workers, and the engine choice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from verilock_django import clock, work
from verilock_django.exceptions import (
    PayloadError,
    TransportError,
    VerilockConfigurationError,
)
from verilock_django.models import Session, WebhookEvent, WebhookEventStatus
from verilock_django.refresh import Lease, refresh_unfinished
from verilock_django.schedule import claim_sessions, new_lease, take_lease
from verilock_django.store import store_session
from verilock_django.testing.responses_api import InProcessVerilock

from .test_refresh import detail_requests, mirror

pytestmark = pytest.mark.django_db

needs_django_tasks = pytest.mark.skipif(
    find_spec("django.tasks") is None, reason="Django's task framework needs Django 6.0+"
)
IMMEDIATE = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


class Recorder:
    """An engine that keeps what it was sent."""

    def __init__(self) -> None:
        self.syncs: list[tuple[str, Lease | None]] = []
        self.events: list[int] = []
        self.refreshes: list[int | None] = []

    def enqueue_sync(self, session_id: str, lease: Lease | None) -> None:
        self.syncs.append((session_id, lease))

    def enqueue_event(self, event_id: int) -> None:
        self.events.append(event_id)

    def enqueue_refresh(self, limit: int | None) -> None:
        self.refreshes.append(limit)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Recorder:
    settings.VERILOCK_TASK_BACKEND = "recorder"
    engine = Recorder()
    monkeypatch.setattr(work, "engine", lambda: engine)
    return engine


def claim(session_id: str) -> Lease:
    """Claim one session as ``--enqueue`` does."""
    started, until = clock.now(), new_lease()
    ids, _ = claim_sessions(Session.objects.filter(pk=session_id), 1, until=until)
    assert ids == [session_id]
    return Lease(until, started)


def held_by_a_worker(api: InProcessVerilock) -> tuple[str, Lease]:
    """One stored session, claimed by a run and taken over by a worker (its lease held)."""
    [session_id] = mirror(api, 1)
    lease = claim(session_id)
    assert take_lease(session_id, token=lease.token, not_checked_since=lease.claimed_at)
    return session_id, lease


def run(session_id: str, lease: Lease | None) -> str:
    if lease is None:
        return work.sync_one(session_id)
    return work.sync_one(session_id, lease.token.isoformat(), lease.claimed_at.isoformat())


# -- the sync unit and its lease ----------------------------------------------------------


def test_a_claimed_session_is_fetched_once_by_the_task_that_holds_its_claim(
    verilock_api: InProcessVerilock,
) -> None:
    [session_id] = mirror(verilock_api, 1)
    verilock_api.advance_many(ids=[session_id])
    lease = claim(session_id)

    assert run(session_id, lease) == "updated"
    assert run(session_id, lease) == work.SKIPPED  # a second delivery of the same task
    assert detail_requests(verilock_api) == [session_id]
    assert Session.objects.get().lease_expires_at is None


def test_a_task_for_a_session_another_worker_holds_is_a_no_op(
    verilock_api: InProcessVerilock,
) -> None:
    session_id, lease = held_by_a_worker(verilock_api)

    assert run(session_id, lease) == work.SKIPPED  # the first worker took the claim over
    assert run(session_id, None) == work.SKIPPED
    assert detail_requests(verilock_api) == []


def test_a_task_checks_its_session_id_as_every_door_does(
    verilock_api: InProcessVerilock,
) -> None:
    session_id, _ = held_by_a_worker(verilock_api)

    # Padded, it is the same session: held by the first worker, so not fetched again.
    assert run(f" {session_id} ", None) == work.SKIPPED
    assert detail_requests(verilock_api) == []
    # No id at all: refused by name before any query (a NUL made PostgreSQL's DataError).
    with pytest.raises(PayloadError, match="session_id: not a usable session id"):
        run("ses_\x00x", None)


def test_a_claim_given_in_another_offset_is_the_same_claim(
    verilock_api: InProcessVerilock,
) -> None:
    [session_id] = mirror(verilock_api, 1)
    verilock_api.advance_many(ids=[session_id])
    lease = claim(session_id)
    # The same moments at +23:59, an offset PostgreSQL refuses to compare with.
    far = dt.timezone(dt.timedelta(hours=23, minutes=59))
    token, since = (when.astimezone(far).isoformat() for when in (lease.token, lease.claimed_at))

    assert work.sync_one(session_id, token, since) == "updated"
    assert detail_requests(verilock_api) == [session_id]


@pytest.mark.parametrize(
    ("lease", "claimed_at", "field"),
    [
        ("soon", None, "lease"),
        (None, "2026-13-01T00:00:00", "claimed_at"),
        ("0001-01-01T00:00:00+01:00", None, "lease"),  # no UTC time
        (12, None, "lease"),
    ],
)
def test_a_claim_that_is_no_time_is_refused_by_name_before_any_query(
    verilock_api: InProcessVerilock, lease: Any, claimed_at: Any, field: str
) -> None:
    [session_id] = mirror(verilock_api, 1)

    with pytest.raises(PayloadError, match=f"{field}: not an ISO 8601 time"):
        work.sync_one(session_id, lease, claimed_at)
    assert detail_requests(verilock_api) == []


def test_a_task_redelivered_after_its_worker_died_runs_once_the_lease_ran_out(
    verilock_api: InProcessVerilock, settings: Any
) -> None:
    session_id, lease = held_by_a_worker(verilock_api)
    # The worker was killed; its lease runs out.
    Session.objects.update(lease_expires_at=clock.now() - dt.timedelta(seconds=1))

    assert run(session_id, lease) == "unchanged"
    assert detail_requests(verilock_api) == [session_id]


def test_a_task_arriving_after_someone_else_stored_its_session_is_a_no_op(
    verilock_api: InProcessVerilock,
) -> None:
    [session_id] = mirror(verilock_api, 1)
    lease = Lease(new_lease(), clock.now() - dt.timedelta(minutes=5))
    Session.objects.update(lease_expires_at=None, last_synced_at=timezone.now())

    assert run(session_id, lease) == work.SKIPPED
    assert detail_requests(verilock_api) == []


def test_an_unknown_session_is_fetched_and_created(verilock_api: InProcessVerilock) -> None:
    session_id = verilock_api.add_session(status="processing").id
    assert run(session_id, None) == "created"
    assert Session.objects.get().status == "processing"


def test_a_retryable_failure_is_recorded_then_raised_for_the_engine_to_retry(
    verilock_api: InProcessVerilock,
) -> None:
    [session_id] = mirror(verilock_api, 1)
    verilock_api.state.inject("status", session_id=session_id, status=503)
    with pytest.raises(work.RETRYABLE):
        run(session_id, None)
    session = Session.objects.get()
    assert session.last_sync_error and session.lease_expires_at is None


def test_the_lease_is_released_when_the_unit_crashes(
    verilock_api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch
) -> None:
    [session_id] = mirror(verilock_api, 1)

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(work, "store_fetched", crash)
    with pytest.raises(KeyboardInterrupt):
        run(session_id, None)
    assert Session.objects.get().lease_expires_at is None


# -- fan-out ----------------------------------------------------------------------------


def test_enqueue_claims_due_sessions_and_fetches_none_itself(
    verilock_api: InProcessVerilock, recorder: Recorder
) -> None:
    ids = mirror(verilock_api, 30)
    changed = ids[::3]
    verilock_api.advance_many(ids=changed)

    report = refresh_unfinished(enqueue=work.enqueue_claimed)

    assert report.enqueued == len(changed) and report.fetched == 0
    assert detail_requests(verilock_api) == []  # the list walk only
    assert sorted(sid for sid, _ in recorder.syncs) == sorted(changed)
    assert "10 enqueued" in report.summary()
    # Each worker then takes its claim over and fetches once.
    for session_id, lease in recorder.syncs:
        assert run(session_id, lease) == "updated"
    assert sorted(detail_requests(verilock_api)) == sorted(changed)


def test_a_second_enqueue_run_leaves_claimed_sessions_alone(
    verilock_api: InProcessVerilock, recorder: Recorder
) -> None:
    mirror(verilock_api, 5)
    Session.objects.update(next_check_at=timezone.now() - dt.timedelta(minutes=1))
    first = refresh_unfinished(enqueue=work.enqueue_claimed, full=True)
    second = refresh_unfinished(enqueue=work.enqueue_claimed, full=True)
    assert (first.enqueued, second.enqueued) == (5, 0)


@needs_django_tasks
def test_the_command_enqueues_with_a_backend(
    verilock_api: InProcessVerilock, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    mirror(verilock_api, 3)
    call_command("sync_verilock_sessions", "--enqueue", "--full")
    assert len(recorder.syncs) == 3
    assert "3 enqueued" in capsys.readouterr().out


def test_the_command_refuses_enqueue_without_a_backend(settings: Any) -> None:
    settings.VERILOCK_TASK_BACKEND = None
    with pytest.raises(CommandError, match="VERILOCK_TASK_BACKEND") as caught:
        call_command("sync_verilock_sessions", "--enqueue")
    assert caught.value.returncode == 2


def test_without_an_engine_nothing_is_enqueued(settings: Any) -> None:
    settings.VERILOCK_TASK_BACKEND = None
    assert work.engine() is None
    assert work.enqueue_syncs(["ses_1"]) is False
    with pytest.raises(VerilockConfigurationError):
        work.enqueue_claimed("ses_1", Lease(timezone.now(), timezone.now()))


def test_an_engine_that_cannot_be_imported_names_the_module(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.VERILOCK_TASK_BACKEND = "celery"
    monkeypatch.setitem(work.ENGINE_PATHS, "celery", "verilock_django.contrib.nothing.engine")
    with pytest.raises(VerilockConfigurationError, match=r"verilock_django\.contrib\.nothing"):
        work.engine()


# -- webhook events -----------------------------------------------------------------------


def make_event(session_id: str) -> WebhookEvent:
    return WebhookEvent.objects.create(
        webhook_id=f"wh_{session_id}",
        event_type="session.completed",
        session_id=session_id,
        payload={},
    )


def test_events_are_enqueued_when_an_engine_is_configured(recorder: Recorder) -> None:
    event = make_event("ses_1")
    work.dispatch_event(event.pk)
    assert recorder.events == [event.pk]


@pytest.mark.parametrize("processor", ["sync", "none"])
def test_an_explicit_processor_wins_over_the_engine(
    recorder: Recorder, settings: Any, verilock_api: InProcessVerilock, processor: str
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = processor
    session_id = verilock_api.add_session(status="approved").id
    event = make_event(session_id)
    work.dispatch_event(event.pk)
    assert recorder.events == []
    event.refresh_from_db()
    expected = WebhookEventStatus.PROCESSED if processor == "sync" else WebhookEventStatus.PENDING
    assert event.status == expected


def test_the_event_unit_processes_the_event(verilock_api: InProcessVerilock) -> None:
    session_id = verilock_api.add_session(status="approved").id
    event = make_event(session_id)
    assert work.process_one_event(event.pk) == "processed"
    assert work.process_one_event(event.pk) == "skipped"
    assert Session.objects.get().status == "approved"


def test_the_batch_unit_refreshes_due_sessions(verilock_api: InProcessVerilock) -> None:
    ids = mirror(verilock_api, 4)
    verilock_api.advance_many(ids=ids[:2])
    assert work.refresh_batch().startswith("2 fetched: 2 changed")


# -- Django's task framework ----------------------------------------------------------------


@needs_django_tasks
def test_django_tasks_run_the_units_on_the_configured_backend(
    verilock_api: InProcessVerilock,
    settings: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    settings.TASKS = IMMEDIATE
    settings.VERILOCK_TASK_BACKEND = "default"
    session_id = verilock_api.add_session(status="approved").id
    Session.objects.create(id=session_id)
    with django_capture_on_commit_callbacks(execute=True):
        assert work.enqueue_syncs([session_id])
        assert Session.objects.get().status == ""  # nothing runs before the commit
    assert Session.objects.get().status == "approved"


@needs_django_tasks
def test_django_tasks_honour_the_queue_setting(
    settings: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    from django.tasks import Task

    from verilock_django import tasks

    settings.TASKS = {
        "default": {
            "BACKEND": "django.tasks.backends.dummy.DummyBackend",
            "QUEUES": ["verilock"],
        }
    }
    settings.VERILOCK_TASK_BACKEND = "default"
    settings.VERILOCK_TASK_QUEUE = "verilock"
    seen: list[Any] = []
    original = Task.enqueue

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((self.queue_name, self.backend, args))
        return original(self, *args, **kwargs)

    with (
        pytest.MonkeyPatch.context() as patch,
        django_capture_on_commit_callbacks(execute=True),
    ):
        patch.setattr(Task, "enqueue", spy)
        tasks.engine.enqueue_sync("ses_1", Lease(timezone.now(), timezone.now()))
        tasks.engine.enqueue_event(7)
        tasks.engine.enqueue_refresh(50)
    assert [(queue, backend) for queue, backend, _ in seen] == [("verilock", "default")] * 3
    assert seen[1][2] == (7,)


def test_an_unknown_task_error_type_is_not_retryable() -> None:
    assert issubclass(TransportError, work.RETRYABLE)
    assert not issubclass(VerilockConfigurationError, work.RETRYABLE)


def test_store_session_still_works_inside_a_transaction() -> None:
    # The IMMEDIATE begin only applies to an outermost transaction (tests run inside one).
    result = store_session({"id": "ses_x", "status": "created"})
    assert result.outcome.value == "created"


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"VERILOCK_TASK_BACKEND": None, "VERILOCK_LEASE_SECONDS": 5}, []),  # no workers
        ({"VERILOCK_LEASE_SECONDS": 600}, []),  # the default covers 61 + 10 x 4
        ({"VERILOCK_LEASE_SECONDS": 100}, ["verilock_django.E060"]),  # < 61 + 10 x 4
        ({"VERILOCK_LEASE_SECONDS": 100, "VERILOCK_MAX_RETRIES": 1}, []),  # 61 + 10 x 2
        ({"VERILOCK_LEASE_SECONDS": 70, "VERILOCK_TIMEOUT": 2.0}, []),  # 61 + 2 x 4
        ({"VERILOCK_LEASE_SECONDS": 100, "VERILOCK_TIMEOUT": -1}, []),  # E004's business
    ],
)
def test_a_workers_lease_must_outlast_the_rate_limit_wait_and_every_attempt(
    settings: Any, overrides: dict[str, Any], errors: list[str]
) -> None:
    settings.VERILOCK_TASK_BACKEND = "celery"
    settings.VERILOCK_TIMEOUT, settings.VERILOCK_MAX_RETRIES = 10.0, 3
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert [message.id for message in work.check_worker_lease()] == errors
