"""The app's settings, read from Django settings at access time.

Every ``VERILOCK_*`` setting goes through :data:`verilock_settings`, so
``override_settings`` and pytest-django's ``settings`` fixture take effect at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings

from .statuses import DEFAULT_FINISHED_STATUSES

DEFAULT_API_URL = "https://verilock.io/api/v1"

#: Values of ``VERILOCK_AUTH_HEADER``: ``"both"`` sends the key in ``Authorization: Bearer``
#: *and* ``X-API-Key`` (the provider documents each in a different generation of its docs).
AUTH_HEADER_CHOICES = ("both", "bearer", "x-api-key")

DEFAULTS: dict[str, Any] = {
    "API_KEY": "",
    "API_URL": DEFAULT_API_URL,
    "AUTH_HEADER": "both",
    "TIMEOUT": 10.0,
    "MAX_RETRIES": 3,
    "RETRY_BACKOFF": 1.0,
    "FINISHED_STATUSES": DEFAULT_FINISHED_STATUSES,
    "RETRY_AFTER_MAX": 30.0,
    "RATE_LIMIT_PER_MINUTE": None,
    "SYNC_CONCURRENCY": 16,
    "RECHECK_MIN_INTERVAL": 300,
    "RECHECK_MAX_INTERVAL": 21600,
    "LEASE_SECONDS": 600,
    "WEBHOOK_SECRETS": (),
    "WEBHOOK_PROCESSOR": "thread",
    "WEBHOOK_THREADS": 2,
    "WEBHOOK_MAX_BODY_SIZE": 262_144,
    "WEBHOOK_STALE_AFTER": 300,
}


class VerilockSettings:
    """Attribute access to the ``VERILOCK_*`` settings, with defaults."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown Verilock setting: {name}")
        return getattr(settings, f"VERILOCK_{name}", DEFAULTS[name])

    # Typed accessors for the settings the code reads most.
    @property
    def api_key(self) -> str:
        value = self.API_KEY
        return value if isinstance(value, str) else ""

    @property
    def api_url(self) -> str:
        return str(self.API_URL).rstrip("/")

    @property
    def finished_statuses(self) -> frozenset[str]:
        value: Sequence[str] = self.FINISHED_STATUSES
        return frozenset(value)


verilock_settings = VerilockSettings()
