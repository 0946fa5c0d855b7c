"""Shared pieces of the webhook tests (a pytest plugin of the suite, see conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from verilock_django import processing
from verilock_django.models import WebhookEvent
from verilock_django.signals import session_finished, session_updated, webhook_received
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.webhooks import signed_webhook
from verilock_django.webhooks import parse_envelope, store_delivery

SECRET = "whsec_current"
OLD_SECRET = "whsec_previous"
URL = "/verilock/webhook/"


@pytest.fixture
def webhook_settings(settings: Any) -> Iterator[None]:
    settings.VERILOCK_WEBHOOK_SECRETS = [SECRET]
    # Inline processing keeps most tests deterministic; the thread pool has its own tests.
    settings.VERILOCK_WEBHOOK_PROCESSOR = "sync"
    yield
    processing.shutdown()


@pytest.fixture
def api(verilock_api: InProcessVerilock) -> InProcessVerilock:
    return verilock_api


class Recorder:
    """Collects the keyword arguments of every signal sent while connected."""

    def __init__(self, *signals: Any) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []
        self._signals = signals

    def __call__(self, signal: Any, **kwargs: Any) -> None:
        self.calls.append((signal, kwargs))

    def of(self, signal: Any) -> list[dict[str, Any]]:
        return [kwargs for sent, kwargs in self.calls if sent is signal]

    def __enter__(self) -> Recorder:
        for signal in self._signals:
            signal.connect(self, dispatch_uid=f"recorder-{id(self)}-{id(signal)}")
        return self

    def __exit__(self, *exc: object) -> None:
        for signal in self._signals:
            signal.disconnect(dispatch_uid=f"recorder-{id(self)}-{id(signal)}")


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder(session_updated, session_finished, webhook_received) as rec:
        yield rec


def post(
    client: Client, body: bytes, signature: str | None = None, header: str = "X-Verilock-Signature"
) -> Any:
    headers = {header: signature} if signature is not None else {}
    return client.post(URL, data=body, content_type="application/json", headers=headers)


def deliver(client: Client, payload: dict[str, Any], secret: str = SECRET) -> Any:
    body, headers = signed_webhook(payload, secret)
    return client.post(URL, data=body, content_type="application/json", headers=headers)


def stored(payload: dict[str, Any]) -> WebhookEvent:
    """Store a delivery as the view would after verifying it; it must be new."""
    event, created = store_delivery(parse_envelope(json.dumps(payload).encode()))
    assert created
    return event
