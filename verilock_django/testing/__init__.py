"""A local Verilock: fake API (in-process and on a loopback port), factories, pytest plugin.

``from verilock_django.testing import FakeVerilock, FakeVerilockServer``. Only the stdlib
(and ``requests``/``django`` where used) is imported here; the ``responses``-based
in-process fake lives in :mod:`verilock_django.testing.responses_api`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .account import FakeSession
from .fake import FakeVerilock
from .replies import FakeResponse
from .requestlog import RecordedRequest
from .webhooks import WebhookDelivery

if TYPE_CHECKING:
    from .server import FakeVerilockServer, WebhookReceiver

__all__ = [
    "FakeResponse",
    "FakeSession",
    "FakeVerilock",
    "FakeVerilockServer",
    "RecordedRequest",
    "WebhookDelivery",
    "WebhookReceiver",
]


def __getattr__(name: str) -> Any:
    # The server module is imported on first use, not with the package: run as
    # ``python -m verilock_django.testing.server`` it would otherwise be imported twice
    # (once by this package, once as __main__), and Python warns about it.
    if name in ("FakeVerilockServer", "WebhookReceiver"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
