"""System checks for the ``VERILOCK_*`` settings (stable ids; no database, no network).

=========================  ==========================================================
``verilock_django.W001``   ``VERILOCK_API_KEY`` is missing or empty.
``verilock_django.E001``   ``VERILOCK_API_KEY`` is not a string.
``verilock_django.E002``   ``VERILOCK_API_URL`` is not an http(s) URL.
``verilock_django.E003``   ``VERILOCK_AUTH_HEADER`` is not one of the known styles.
``verilock_django.E004``   ``VERILOCK_TIMEOUT`` is not a positive number.
``verilock_django.E005``   ``VERILOCK_FINISHED_STATUSES`` is not a non-empty list of strings.
``verilock_django.E006``   ``VERILOCK_MAX_RETRIES`` is not a non-negative integer.
=========================  ==========================================================
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import AUTH_HEADER_CHOICES, verilock_settings


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report unusable ``VERILOCK_*`` settings at start-up."""
    messages: list[CheckMessage] = []
    key = verilock_settings.API_KEY
    if not isinstance(key, str):
        messages.append(Error("VERILOCK_API_KEY must be a string.", id="verilock_django.E001"))
    elif not key.strip():
        messages.append(
            Warning(
                "VERILOCK_API_KEY is not set; syncing with Verilock will fail.",
                hint="Set VERILOCK_API_KEY in your settings, e.g. from an environment variable.",
                id="verilock_django.W001",
            )
        )

    url = verilock_settings.API_URL
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        messages.append(
            Error(
                "VERILOCK_API_URL must be an http(s) URL.",
                hint="The default is https://verilock.io/api/v1.",
                id="verilock_django.E002",
            )
        )

    if verilock_settings.AUTH_HEADER not in AUTH_HEADER_CHOICES:
        messages.append(
            Error(
                f"VERILOCK_AUTH_HEADER must be one of {', '.join(AUTH_HEADER_CHOICES)}.",
                id="verilock_django.E003",
            )
        )

    timeout = verilock_settings.TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        messages.append(
            Error(
                "VERILOCK_TIMEOUT must be a positive number of seconds.", id="verilock_django.E004"
            )
        )

    statuses = verilock_settings.FINISHED_STATUSES
    if (
        isinstance(statuses, str)
        or not isinstance(statuses, (list, tuple, set, frozenset))
        or not statuses
        or not all(isinstance(status, str) and status for status in statuses)
    ):
        messages.append(
            Error(
                "VERILOCK_FINISHED_STATUSES must be a non-empty list of status strings.",
                id="verilock_django.E005",
            )
        )

    retries = verilock_settings.MAX_RETRIES
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        messages.append(
            Error("VERILOCK_MAX_RETRIES must be an integer >= 0.", id="verilock_django.E006")
        )
    return messages
