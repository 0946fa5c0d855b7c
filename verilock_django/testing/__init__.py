"""A local Verilock: fake API (in-process and on a loopback port), factories, pytest plugin.

Only the stdlib (and ``requests``/``django`` where used) is imported here; the
``responses``-based in-process fake lives in :mod:`verilock_django.testing.responses_api`.
"""

from .state import FakeResponse, FakeSession, FakeVerilock, RecordedRequest, WebhookDelivery

__all__ = [
    "FakeResponse",
    "FakeSession",
    "FakeVerilock",
    "RecordedRequest",
    "WebhookDelivery",
]
