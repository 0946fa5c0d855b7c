"""A local Verilock: fake API (in-process and on a loopback port), factories, pytest plugin.

``from verilock_django.testing import FakeVerilock, FakeVerilockServer``. Only the stdlib
(and ``requests``/``django`` where used) is imported here; the ``responses``-based
in-process fake lives in :mod:`verilock_django.testing.responses_api`.
"""

from .account import FakeSession
from .fake import FakeVerilock
from .replies import FakeResponse
from .requestlog import RecordedRequest
from .server import FakeVerilockServer, WebhookReceiver
from .webhooks import WebhookDelivery

__all__ = [
    "FakeResponse",
    "FakeSession",
    "FakeVerilock",
    "FakeVerilockServer",
    "RecordedRequest",
    "WebhookDelivery",
    "WebhookReceiver",
]
