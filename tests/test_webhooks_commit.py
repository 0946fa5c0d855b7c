"""``VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT``: on PostgreSQL, ``False`` turns
``synchronous_commit`` off for the transaction storing a delivery, and for nothing else.

What the transaction runs with is read inside it: a ``BEFORE INSERT`` trigger (these tests'
own) writes ``current_setting('synchronous_commit')`` into the row's ``event_type``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from verilock_django.models import WebhookEvent
from verilock_django.testing.webhooks import webhook_payload
from verilock_django.webhooks import parse_envelope, store_delivery

from .conftest import CONTROL
from .webhook_helpers import deliver

pytestmark = [pytest.mark.usefixtures("webhook_settings"), pytest.mark.django_db(transaction=True)]

POSTGRESQL = connection.vendor == "postgresql"
only_postgresql = pytest.mark.skipif(
    not POSTGRESQL, reason="synchronous_commit is a PostgreSQL setting"
)


def server_setting() -> str:
    """``synchronous_commit`` of the connection, outside any intake transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        value: str = cursor.fetchone()[0]
    return value


@pytest.fixture
def recorded_commit_setting(settings: Any, webhook_settings: None) -> Iterator[None]:
    """Every inserted event's ``event_type`` becomes the inserting transaction's setting."""
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    table = connection.ops.quote_name(WebhookEvent._meta.db_table)
    column = WebhookEvent._meta.get_field("event_type").column
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION verilock_test_commit_setting() RETURNS trigger AS $$ BEGIN "
            f"NEW.{column} := current_setting('synchronous_commit'); RETURN NEW; END $$ "
            "LANGUAGE plpgsql"
        )
        cursor.execute(
            f"CREATE TRIGGER verilock_test_commit_setting BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION verilock_test_commit_setting()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER verilock_test_commit_setting ON {table}")
            cursor.execute("DROP FUNCTION verilock_test_commit_setting()")


def delivered(client: Client, webhook_id: str) -> tuple[str, list[str]]:
    """The commit setting the delivery's transaction ran with, and its statements."""
    payload = webhook_payload(session_id="ses_commit", webhook_id=webhook_id)
    with CaptureQueriesContext(connection) as captured:
        response = deliver(client, payload)
    assert response.json() == {"status": "stored"}
    sqls = [query["sql"] for query in captured.captured_queries]
    event = WebhookEvent.objects.get(webhook_id=webhook_id)
    return event.event_type, [sql for sql in sqls if not sql.upper().startswith(CONTROL)]


@only_postgresql
@pytest.mark.usefixtures("recorded_commit_setting")
def test_by_default_a_delivery_commits_as_the_server_says(client: Client) -> None:
    default = server_setting()
    if default == "off":
        pytest.skip("this server already commits without waiting for the WAL flush")

    setting, run = delivered(client, "wh_default")

    assert setting == default
    assert len(run) == 1 and "set_config" not in run[0]


@only_postgresql
@pytest.mark.usefixtures("recorded_commit_setting")
def test_relaxed_the_delivery_commits_without_waiting_for_the_flush_in_the_same_statement(
    client: Client, settings: Any
) -> None:
    default = server_setting()
    settings.VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT = False

    setting, run = delivered(client, "wh_relaxed")

    assert setting == "off"
    assert len(run) == 1  # no extra round trip: the insert itself sets it
    # Local to that transaction: the connection's next transactions wait for the flush again.
    assert server_setting() == default


@only_postgresql
@pytest.mark.usefixtures("recorded_commit_setting")
def test_relaxed_never_touches_the_commit_of_a_callers_transaction(settings: Any) -> None:
    default = server_setting()
    settings.VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT = False
    body = json.dumps(webhook_payload(session_id="ses_commit", webhook_id="wh_caller")).encode()

    with transaction.atomic():
        event, created = store_delivery(parse_envelope(body))
        during = server_setting()

    assert created and during == default
    assert WebhookEvent.objects.get(pk=event.pk).event_type == default


@pytest.mark.skipif(POSTGRESQL, reason="elsewhere the setting must change nothing")
def test_other_databases_run_the_same_statements_either_way(client: Client, settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "none"
    deliver(client, webhook_payload(session_id="ses_warm"))  # one-time backend probes

    runs = []
    for relaxed, webhook_id in ((False, "wh_a"), (True, "wh_b")):
        settings.VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT = not relaxed
        payload = webhook_payload(session_id="ses_commit", webhook_id=webhook_id)
        with CaptureQueriesContext(connection) as captured:
            assert deliver(client, payload).json() == {"status": "stored"}
        # The statements without their values (the ids and times differ).
        runs.append([re.sub(r"'[^']*'", "?", query["sql"]) for query in captured.captured_queries])

    assert runs[0] == runs[1] and len(runs[0]) >= 2
    assert not any("synchronous" in sql.lower() for sql in runs[0])
