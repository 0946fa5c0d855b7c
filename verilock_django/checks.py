"""System checks for the ``VERILOCK_*`` settings (stable ids; no database, no network).

=========================  ==========================================================
``verilock_django.W001``   ``VERILOCK_API_KEY`` is missing or empty.
``verilock_django.E001``   ``VERILOCK_API_KEY`` is not a string.
``verilock_django.E002``   ``VERILOCK_API_URL`` is not an http(s) URL.
``verilock_django.E003``   ``VERILOCK_AUTH_HEADER`` is not one of the known styles.
``verilock_django.E004``   ``VERILOCK_TIMEOUT`` is not a positive number.
``verilock_django.E005``   ``VERILOCK_FINISHED_STATUSES`` is not a non-empty list of strings.
``verilock_django.E006``   ``VERILOCK_MAX_RETRIES`` is not a non-negative integer.
``verilock_django.W010``   The webhook URL is included but ``VERILOCK_WEBHOOK_SECRETS`` is empty.
``verilock_django.W011``   Webhooks processed in threads on SQLite without IMMEDIATE transactions.
``verilock_django.E010``   ``VERILOCK_WEBHOOK_SECRETS`` is not a list of non-empty strings.
``verilock_django.E011``   ``VERILOCK_WEBHOOK_PROCESSOR`` is neither a known mode nor importable.
``verilock_django.E012``   ``VERILOCK_WEBHOOK_THREADS`` is not a positive integer.
``verilock_django.E013``   ``VERILOCK_WEBHOOK_MAX_BODY_SIZE`` is not a positive integer.
``verilock_django.E014``   ``VERILOCK_WEBHOOK_STALE_AFTER`` is not a positive number.
``verilock_django.E020``   ``VERILOCK_SYNC_CONCURRENCY`` is not a positive integer.
``verilock_django.E021``   ``VERILOCK_RATE_LIMIT_PER_MINUTE`` is not None or a positive integer.
``verilock_django.E022``   A ``VERILOCK_RECHECK_*_INTERVAL`` is not a positive number.
``verilock_django.E023``   The minimum recheck interval exceeds the maximum.
``verilock_django.E024``   ``VERILOCK_LEASE_SECONDS`` is not a positive number.
``verilock_django.E025``   ``VERILOCK_RETRY_AFTER_MAX`` is not a positive number.
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


@register(Tags.compatibility, Tags.urls)
def check_webhook_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report unusable ``VERILOCK_WEBHOOK_*`` settings, and a webhook URL with no secret."""
    from django.urls import NoReverseMatch, reverse
    from django.utils.module_loading import import_string

    from .processing import PROCESSOR_CHOICES

    messages: list[CheckMessage] = []
    secrets = verilock_settings.WEBHOOK_SECRETS
    valid_secrets = isinstance(secrets, (list, tuple)) and all(
        isinstance(secret, str) and secret.strip() for secret in secrets
    )
    if not valid_secrets:
        messages.append(
            Error(
                "VERILOCK_WEBHOOK_SECRETS must be a list of non-empty strings.",
                hint='For one secret write VERILOCK_WEBHOOK_SECRETS = ["whsec_..."].',
                id="verilock_django.E010",
            )
        )
    try:
        reverse("verilock_django:webhook")
    except NoReverseMatch:
        webhooks_included = False  # webhooks are simply not used
    else:
        webhooks_included = True
    if webhooks_included and not (valid_secrets and secrets):
        messages.append(
            Warning(
                "verilock_django.urls is included but VERILOCK_WEBHOOK_SECRETS is empty; "
                "the webhook endpoint refuses every delivery (HTTP 503).",
                hint="Copy the endpoint's signing secret from the Verilock dashboard into "
                "VERILOCK_WEBHOOK_SECRETS.",
                id="verilock_django.W010",
            )
        )

    processor = verilock_settings.WEBHOOK_PROCESSOR
    if processor == "thread" and webhooks_included and _sqlite_deferred_writes():
        messages.append(
            Warning(
                "Webhook events are processed in threads, but the SQLite database starts "
                "transactions DEFERRED: concurrent writes then fail with 'database is locked' "
                "(the event is marked failed until process_verilock_webhooks retries it).",
                hint='Add "transaction_mode": "IMMEDIATE" to the database\'s OPTIONS '
                "(Django 5.1+), or use PostgreSQL.",
                id="verilock_django.W011",
            )
        )
    if processor not in PROCESSOR_CHOICES:
        try:
            if not isinstance(processor, str) or "." not in processor:
                raise ImportError(processor)
            if not callable(import_string(processor)):
                raise ImportError(processor)
        except ImportError:
            messages.append(
                Error(
                    "VERILOCK_WEBHOOK_PROCESSOR must be one of "
                    f"{', '.join(PROCESSOR_CHOICES)} or the dotted path of a callable.",
                    id="verilock_django.E011",
                )
            )

    for name, check_id, kinds in (
        ("WEBHOOK_THREADS", "E012", (int,)),
        ("WEBHOOK_MAX_BODY_SIZE", "E013", (int,)),
        ("WEBHOOK_STALE_AFTER", "E014", (int, float)),
    ):
        value = getattr(verilock_settings, name)
        if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
            noun = "integer" if kinds == (int,) else "number"
            messages.append(
                Error(
                    f"VERILOCK_{name} must be a positive {noun}.", id=f"verilock_django.{check_id}"
                )
            )
    return messages


@register(Tags.compatibility)
def check_sync_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report unusable settings of the batch refresh (concurrency, rate limit, schedule)."""
    messages: list[CheckMessage] = []
    for name, check_id, kinds in (
        ("SYNC_CONCURRENCY", "E020", (int,)),
        ("RECHECK_MIN_INTERVAL", "E022", (int, float)),
        ("RECHECK_MAX_INTERVAL", "E022", (int, float)),
        ("LEASE_SECONDS", "E024", (int, float)),
        ("RETRY_AFTER_MAX", "E025", (int, float)),
    ):
        if not _is_positive(getattr(verilock_settings, name), kinds):
            noun = "integer" if kinds == (int,) else "number"
            messages.append(
                Error(
                    f"VERILOCK_{name} must be a positive {noun}.", id=f"verilock_django.{check_id}"
                )
            )
    limit = verilock_settings.RATE_LIMIT_PER_MINUTE
    if limit is not None and not _is_positive(limit, (int,)):
        messages.append(
            Error(
                "VERILOCK_RATE_LIMIT_PER_MINUTE must be None or a positive integer.",
                id="verilock_django.E021",
            )
        )
    low, high = verilock_settings.RECHECK_MIN_INTERVAL, verilock_settings.RECHECK_MAX_INTERVAL
    if _is_positive(low, (int, float)) and _is_positive(high, (int, float)) and low > high:
        messages.append(
            Error(
                "VERILOCK_RECHECK_MIN_INTERVAL must not exceed VERILOCK_RECHECK_MAX_INTERVAL.",
                id="verilock_django.E023",
            )
        )
    return messages


def _is_positive(value: object, kinds: tuple[type, ...]) -> bool:
    return not isinstance(value, bool) and isinstance(value, kinds) and value > 0  # type: ignore[operator]


def _sqlite_deferred_writes() -> bool:
    # Reads the settings only: checks never open a database connection.
    from django.conf import settings

    database = settings.DATABASES.get("default", {})
    return bool(
        database.get("ENGINE") == "django.db.backends.sqlite3"
        and database.get("OPTIONS", {}).get("transaction_mode") != "IMMEDIATE"
    )
