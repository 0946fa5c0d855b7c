"""End to end over loopback HTTP: the fake Verilock delivers signed webhooks to a project."""

from __future__ import annotations

import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from verilock_django.testing.server import FakeVerilockServer

from .example_site import manage, project_env, runserver

KEY = "qi_test_e2e"
SECRET = "whsec_e2e"


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def fake() -> Iterator[FakeVerilockServer]:
    with FakeVerilockServer(api_key=KEY, webhook_secret=SECRET) as server:
        yield server


@pytest.fixture
def project(tmp_path: Path, fake: FakeVerilockServer) -> Iterator[dict[str, Any]]:
    """The example project served by runserver on a loopback port, configured for the fake."""
    env = project_env(
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        fake.url,
        KEY,
        VERILOCK_WEBHOOK_SECRETS=SECRET,
        ALLOWED_HOSTS="127.0.0.1",
    )
    migrate = manage(env, "migrate", "-v", "0")
    assert migrate.returncode == 0, migrate.stderr
    with runserver(env, tmp_path / "runserver.log") as port:
        yield {"env": env, "port": port, "db": tmp_path / "db.sqlite3", "log": tmp_path}


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def test_fake_api_delivers_signed_webhooks_and_the_project_updates_the_session(
    fake: FakeVerilockServer, project: dict[str, Any]
) -> None:
    session = fake.state.add_session(status="processing")
    synced = manage(project["env"], "sync_verilock_sessions", session.id, timeout=60)
    assert synced.returncode == 0, synced.stderr
    db = project["db"]
    assert query(db, "select status from verilock_django_session") == [("processing",)]

    fake.state.webhook_url = f"http://127.0.0.1:{project['port']}/verilock/webhook/"
    fake.state.complete(session.id, "approved")  # emits session.completed + session.approved

    deliveries = fake.state.wait_for_webhooks(2, timeout=20)
    assert [delivery.status_code for delivery in deliveries] == [200, 200]

    def both_processed() -> bool:
        rows = query(db, "select status from verilock_django_webhookevent")
        return len(rows) == 2 and all(row == ("processed",) for row in rows)

    try:
        wait_until(both_processed, 30, "the project to process both events")
    except AssertionError:
        rows = query(
            db, "select event_type, status, attempts, last_error from verilock_django_webhookevent"
        )
        log = (project["log"] / "runserver.log").read_text()
        raise AssertionError(f"events: {rows}\nrunserver log:\n{log}") from None
    assert query(db, "select id, status from verilock_django_session") == [
        (session.id, "approved")
    ]
    assert query(db, "select count(*) from verilock_django_stepresult") == [(len(session.steps),)]
    events = query(
        db, "select event_type, session_id from verilock_django_webhookevent order by id"
    )
    assert events == [("session.completed", session.id), ("session.approved", session.id)]
    # Processing re-fetched the session from the fake API (after the command's own fetch).
    assert fake.state.requests_for(session.id) >= 2


def test_wrongly_signed_delivery_is_refused_by_the_running_project(
    fake: FakeVerilockServer, project: dict[str, Any]
) -> None:
    url = f"http://127.0.0.1:{project['port']}/verilock/webhook/"
    with pytest.raises(CommandError, match="HTTP 403"):
        call_command(
            "send_verilock_test_webhook",
            url,
            "--session-id",
            "ses_x",
            "--secret",
            "whsec_not_the_one",
            stdout=StringIO(),
        )
    assert query(project["db"], "select count(*) from verilock_django_webhookevent") == [(0,)]


def test_send_test_webhook_command_drives_the_running_project(
    fake: FakeVerilockServer, project: dict[str, Any], settings: Any
) -> None:
    settings.VERILOCK_WEBHOOK_SECRETS = [SECRET, "whsec_older"]  # signs with the first one
    session = fake.state.add_session(status="declined")
    out = StringIO()

    call_command(
        "send_verilock_test_webhook",
        f"http://127.0.0.1:{project['port']}/verilock/webhook/",
        "--session-id",
        session.id,
        "--event",
        "session.declined",
        "--webhook-id",
        "wh_local_1",
        "--legacy-header",
        stdout=out,
    )

    assert "HTTP 200" in out.getvalue()
    assert SECRET not in out.getvalue()
    db = project["db"]
    wait_until(
        lambda: query(db, "select status from verilock_django_session") == [("declined",)],
        30,
        "the project to fetch the session",
    )
    # The event is marked processed just after the session is stored: wait for that too.
    wait_until(
        lambda: (
            query(db, "select webhook_id, event_type, status from verilock_django_webhookevent")
            == [("wh_local_1", "session.declined", "processed")]
        ),
        30,
        "the event to be marked processed",
    )


def test_send_test_webhook_command_needs_a_secret(settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_SECRETS = []
    with pytest.raises(CommandError, match="No secret"):
        call_command("send_verilock_test_webhook", "http://127.0.0.1:9/", "--session-id", "ses_x")


def test_send_test_webhook_command_names_an_unusable_secrets_setting(settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_SECRETS = "whsec_not_a_list"
    with pytest.raises(CommandError, match=r"^VERILOCK_WEBHOOK_SECRETS must be a list") as raised:
        call_command("send_verilock_test_webhook", "http://127.0.0.1:9/", "--session-id", "ses_x")
    assert "whsec_not_a_list" not in str(raised.value)


def test_send_test_webhook_command_says_in_words_that_nothing_listens(settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_SECRETS = [SECRET]
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CommandError) as raised:
        call_command(
            "send_verilock_test_webhook",
            f"http://127.0.0.1:{port}/verilock/webhook/",
            "--session-id",
            "ses_x",
            stdout=StringIO(),
        )
    message = str(raised.value)
    assert "Connection refused on POST /verilock/webhook/" in message
    assert "Is the project running there?" in message
    assert "urllib3" not in message and "HTTPConnectionPool" not in message


def test_send_test_webhook_command_hints_at_the_url_on_a_404_without_echoing_html(
    project: dict[str, Any], settings: Any
) -> None:
    settings.VERILOCK_WEBHOOK_SECRETS = [SECRET]
    out = StringIO()
    with pytest.raises(CommandError, match=r"HTTP 404\. Is the URL right") as raised:
        call_command(
            "send_verilock_test_webhook",
            f"http://127.0.0.1:{project['port']}/no-such-webhook/",
            "--session-id",
            "ses_x",
            stdout=out,
        )
    assert "verilock_django.urls" in str(raised.value)
    assert "<" not in out.getvalue()  # the project's HTML 404 page is not echoed
