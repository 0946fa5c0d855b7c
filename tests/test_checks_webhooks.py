"""System checks of the webhook settings."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

from verilock_django import processing
from verilock_django.checks import check_webhook_settings
from verilock_django.models import Session, WebhookEvent, WebhookEventStatus
from verilock_django.signals import webhook_received
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.webhooks import webhook_payload

from .webhook_helpers import deliver

pytestmark = pytest.mark.usefixtures("webhook_settings")


# -- checks ---------------------------------------------------------------------------


#: A URLconf without the app's URLs (this module doubles as one).
urlpatterns: list[Any] = []


def check_ids() -> set[str]:
    return {message.id for message in check_webhook_settings() if message.id}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"VERILOCK_WEBHOOK_SECRETS": []}, {"verilock_django.W010"}),
        ({"VERILOCK_WEBHOOK_SECRETS": "whsec"}, {"verilock_django.E010", "verilock_django.W010"}),
        (
            {"VERILOCK_WEBHOOK_SECRETS": ["whsec", 3]},
            {"verilock_django.E010", "verilock_django.W010"},
        ),
        ({"VERILOCK_WEBHOOK_PROCESSOR": "celery"}, {"verilock_django.E011"}),
        ({"VERILOCK_WEBHOOK_PROCESSOR": "tests.nope.enqueue"}, {"verilock_django.E011"}),
        ({"VERILOCK_WEBHOOK_PROCESSOR": "tests.test_processing.enqueue"}, set()),
        ({"VERILOCK_WEBHOOK_THREADS": 0}, {"verilock_django.E012"}),
        ({"VERILOCK_WEBHOOK_MAX_BODY_SIZE": "1MB"}, {"verilock_django.E013"}),
        ({"VERILOCK_WEBHOOK_STALE_AFTER": -1}, {"verilock_django.E014"}),
        ({"VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT": "off"}, {"verilock_django.E017"}),
        ({"VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT": False}, set()),
        ({}, set()),
    ],
)
def test_webhook_checks(settings: Any, overrides: dict[str, Any], expected: set[str]) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert check_ids() == expected


def test_no_warning_when_the_urls_are_not_included(settings: Any) -> None:
    settings.VERILOCK_WEBHOOK_SECRETS = []
    settings.ROOT_URLCONF = "tests.test_checks_webhooks"
    assert "verilock_django.W010" not in check_ids()


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_does_not_stop_processing(
    client: Client, api: InProcessVerilock
) -> None:
    session = api.add_session(status="approved")

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("a host receiver bug")

    webhook_received.connect(broken, dispatch_uid="broken-receiver")
    try:
        response = deliver(client, webhook_payload(session_id=session.id))
    finally:
        webhook_received.disconnect(dispatch_uid="broken-receiver")

    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEventStatus.PROCESSED
    assert Session.objects.get(pk=session.id).status == "approved"


@pytest.mark.django_db(transaction=True)
def test_full_backlog_leaves_events_pending_for_the_command(
    client: Client,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.VERILOCK_WEBHOOK_PROCESSOR = "thread"
    monkeypatch.setattr(processing, "MAX_BACKLOG", 0)

    with caplog.at_level(logging.WARNING, logger="verilock_django.processing"):
        assert deliver(client, webhook_payload()).status_code == 200

    assert WebhookEvent.objects.get().status == WebhookEventStatus.PENDING
    assert "backlog full" in caplog.text
