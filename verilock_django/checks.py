"""System checks for the ``VERILOCK_*`` settings (stable ids; no database, no network).

Most messages are generated from the settings table (:data:`verilock_django.conf.SETTINGS`):
each row's parser runs on the configured value and a refusal becomes an ``Error`` with the
row's id. The few checks that look at more than one value are written out below.

=========================  ==========================================================
``verilock_django.W001``   ``VERILOCK_API_KEY`` is missing or empty.
``verilock_django.W002``   An unknown ``VERILOCK_*`` setting (a typo?); hints the closest name.
``verilock_django.E001``   ``VERILOCK_API_KEY`` is not a string.
``verilock_django.E002``   ``VERILOCK_API_URL`` is not an http(s) URL.
``verilock_django.E003``   ``VERILOCK_AUTH_HEADER`` is not one of the known styles.
``verilock_django.E004``   ``VERILOCK_TIMEOUT`` is not a positive number.
``verilock_django.E005``   ``VERILOCK_FINISHED_STATUSES`` is not a non-empty list of strings.
``verilock_django.E006``   ``VERILOCK_MAX_RETRIES`` is not a non-negative integer.
``verilock_django.E007``   ``VERILOCK_RETRY_BACKOFF`` is not a number >= 0.
``verilock_django.E008``   ``VERILOCK_API_KEY`` holds whitespace or control characters inside.
``verilock_django.E009``   ``VERILOCK_MAX_RESPONSE_BYTES`` is not a positive integer.
``verilock_django.W010``   The webhook URL is included but ``VERILOCK_WEBHOOK_SECRETS`` is empty.
``verilock_django.E010``   ``VERILOCK_WEBHOOK_SECRETS`` is not a list of non-empty strings.
``verilock_django.E011``   ``VERILOCK_WEBHOOK_PROCESSOR`` is neither a known mode nor importable.
``verilock_django.E012``   ``VERILOCK_WEBHOOK_THREADS`` is not a positive integer.
``verilock_django.E013``   ``VERILOCK_WEBHOOK_MAX_BODY_SIZE`` is not a positive integer.
``verilock_django.E014``   ``VERILOCK_WEBHOOK_STALE_AFTER`` is not a positive number.
``verilock_django.E015``   A webhook secret holds whitespace or control characters inside.
``verilock_django.E016``   ``VERILOCK_WEBHOOK_MAX_AGE`` is not None or a positive number.
``verilock_django.E017``   ``VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT`` is not a boolean.
``verilock_django.E020``   ``VERILOCK_SYNC_CONCURRENCY`` is not an integer from 1 to 256.
``verilock_django.E021``   ``VERILOCK_RATE_LIMIT_PER_MINUTE`` is not None or from 1 to 10**9.
``verilock_django.E022``   A ``VERILOCK_RECHECK_*_INTERVAL`` is not a positive number.
``verilock_django.E023``   The minimum recheck interval exceeds the maximum.
``verilock_django.E024``   ``VERILOCK_LEASE_SECONDS`` is not a positive number.
``verilock_django.E025``   ``VERILOCK_RETRY_AFTER_MAX`` is not a positive number.
``verilock_django.E055``   ``VERILOCK_MAX_DATA_AGE`` is not None or a number of minutes > 0.
``verilock_django.W030``   The start flow is included, shape "b", but no ``VERILOCK_PROFILE_ID``.
``verilock_django.E030``   ``VERILOCK_CREATE_SHAPE`` is not ``"b"`` or ``"a"``.
``verilock_django.E031``   ``VERILOCK_PROFILE_ID`` is not a string.
``verilock_django.E032``   ``VERILOCK_CREATE_STEPS`` is not a non-empty list of step names.
``verilock_django.E033``   ``VERILOCK_USER_RESOLVER`` is neither None nor an importable callable.
``verilock_django.E034``   ``VERILOCK_DECLINE_REVOKES`` is not a boolean.
``verilock_django.E035``   ``VERILOCK_VERIFIED_MAX_AGE`` is neither None nor a positive number.
``verilock_django.E040``   ``VERILOCK_STORED_DATA`` is not one of the known modes.
``verilock_django.E041``   ``VERILOCK_PAYLOAD_SCRUBBER`` is not None or an importable callable.
``verilock_django.E042``   ``VERILOCK_PII_RETENTION_DAYS`` is not None or a positive integer.
``verilock_django.E043``   ``VERILOCK_WEBHOOK_RETENTION_DAYS`` is not None or a positive integer.
``verilock_django.W040``   Webhook events are deleted sooner than ``VERILOCK_WEBHOOK_MAX_AGE``.
``verilock_django.E044``   ``VERILOCK_ENCRYPT_FIELDS`` is not a boolean.
``verilock_django.E045``   Encryption is on but ``django-fernet-encrypted-fields`` is missing.
``verilock_django.E046``   Encryption is on but ``SALT_KEY`` is not a non-empty string or list.
``verilock_django.E028``   ``VERILOCK_RATE_LIMIT_REDIS_URL`` is not None or a Redis URL.
``verilock_django.E029``   ``VERILOCK_TASK_BACKEND``/``VERILOCK_TASK_QUEUE`` is not None or a name.
=========================  ==========================================================

A "positive number" of seconds is at most a century (36,500 days): beyond, date arithmetic,
sleeps and socket timeouts would overflow at run time.

Messages name settings, never their values (the key and the secrets must not be printed).
"""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.urls import NoReverseMatch, reverse

from . import conf, encryption


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report unusable API settings, an empty key and unknown ``VERILOCK_*`` names."""
    messages = _table_errors(conf.GROUP_API)
    if conf.API_KEY.problem() is None and not conf.API_KEY.value():
        messages.append(
            Warning(
                "VERILOCK_API_KEY is not set; syncing with Verilock will fail.",
                hint="Set VERILOCK_API_KEY in your settings, e.g. from an environment variable.",
                id="verilock_django.W001",
            )
        )
    messages.extend(_unknown_names())
    return messages


@register(Tags.compatibility, Tags.urls)
def check_webhook_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report unusable ``VERILOCK_WEBHOOK_*`` settings, and a webhook URL with no secret."""
    messages = _table_errors(conf.GROUP_WEBHOOK)
    try:
        reverse("verilock_django:webhook")
    except NoReverseMatch:
        webhooks_included = False  # webhooks are simply not used
    else:
        webhooks_included = True
    if webhooks_included and not (
        conf.WEBHOOK_SECRETS.problem() is None and conf.WEBHOOK_SECRETS.value()
    ):
        messages.append(
            Warning(
                "verilock_django.urls is included but VERILOCK_WEBHOOK_SECRETS is empty; "
                "the webhook endpoint refuses every delivery (HTTP 503).",
                hint="Copy the endpoint's signing secret from the Verilock dashboard into "
                "VERILOCK_WEBHOOK_SECRETS.",
                id="verilock_django.W010",
            )
        )
    return messages


@register(Tags.compatibility)
def check_sync_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report unusable settings of the batch refresh (concurrency, rate limit, schedule)."""
    messages = _table_errors(conf.GROUP_SYNC)
    low, high = conf.RECHECK_MIN_INTERVAL, conf.RECHECK_MAX_INTERVAL
    if low.problem() is None and high.problem() is None and low.value() > high.value():
        messages.append(
            Error(
                "VERILOCK_RECHECK_MIN_INTERVAL must not exceed VERILOCK_RECHECK_MAX_INTERVAL.",
                id="verilock_django.E023",
            )
        )
    return messages


@register(Tags.compatibility, Tags.urls)
def check_verify_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report unusable settings of session creation and user verification."""
    messages = _table_errors(conf.GROUP_VERIFY)
    try:
        reverse("verilock_verify:start")
    except NoReverseMatch:
        return messages  # the start flow is not used
    if (
        conf.CREATE_SHAPE.problem() is None
        and conf.CREATE_SHAPE.value() == "b"
        and conf.PROFILE_ID.problem() is None
        and not conf.PROFILE_ID.value()
    ):
        messages.append(
            Warning(
                "verilock_django.urls_verify is included but VERILOCK_PROFILE_ID is empty; "
                'creating a session in shape "b" needs a verification profile.',
                hint="Copy the profile id from the Verilock dashboard into VERILOCK_PROFILE_ID, "
                'or set VERILOCK_CREATE_SHAPE = "a".',
                id="verilock_django.W030",
            )
        )
    return messages


@register(Tags.compatibility)
def check_privacy_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report unusable data-protection settings, and a replay window longer than retention."""
    messages = _table_errors(conf.GROUP_PRIVACY)
    retention, max_age = conf.WEBHOOK_RETENTION_DAYS, conf.WEBHOOK_MAX_AGE
    if retention.problem() is None and max_age.problem() is None:
        days, seconds = retention.value(), max_age.value()
        # A delivery is recognised as a duplicate only while its event is stored: deleting
        # events sooner than the freshness window lets a captured delivery be replayed.
        if days is not None and (seconds is None or days * 86_400 < seconds):
            messages.append(
                Warning(
                    "VERILOCK_WEBHOOK_RETENTION_DAYS deletes webhook events before "
                    "VERILOCK_WEBHOOK_MAX_AGE refuses their deliveries as stale; a replayed "
                    "delivery would then be stored and processed again.",
                    hint="Keep webhook events at least as long as VERILOCK_WEBHOOK_MAX_AGE.",
                    id="verilock_django.W040",
                )
            )
    return messages + _encryption_errors()


def _encryption_errors() -> list[CheckMessage]:
    """E045/E046: ``VERILOCK_ENCRYPT_FIELDS`` is on but writing a token would fail."""
    if conf.ENCRYPT_FIELDS.problem() is not None or not conf.ENCRYPT_FIELDS.value():
        return []
    messages: list[CheckMessage] = []
    if encryption.library_missing():
        messages.append(
            Error(
                f"VERILOCK_ENCRYPT_FIELDS is on but {encryption.LIBRARY} is not installed.",
                hint=f"{encryption.EXTRA_HINT}, or turn VERILOCK_ENCRYPT_FIELDS off.",
                id="verilock_django.E045",
            )
        )
    if encryption.salt_key_problem():
        messages.append(
            Error(
                "VERILOCK_ENCRYPT_FIELDS is on but SALT_KEY is not a non-empty string or a "
                "list of non-empty strings.",
                hint="Set SALT_KEY (the encryption keys are derived from it and SECRET_KEY); "
                "see docs/data-protection.md.",
                id="verilock_django.E046",
            )
        )
    return messages


def _table_errors(group: str) -> list[CheckMessage]:
    """One ``Error`` per row of ``group`` whose configured value its parser refuses."""
    messages: list[CheckMessage] = []
    for setting in conf.SETTINGS:
        if setting.group != group:
            continue
        problem = setting.problem()
        if problem is not None:
            messages.append(
                Error(
                    f"{setting.setting_name} {problem.problem}.",
                    hint=setting.hint or None,
                    id=f"verilock_django.{problem.check_id or setting.check_id}",
                )
            )
    return messages


def _unknown_names() -> list[CheckMessage]:
    """A ``W002`` per ``VERILOCK_*`` name in settings that the app does not define."""
    known = {setting.name for setting in conf.SETTINGS}
    messages: list[CheckMessage] = []
    for name in sorted(dir(settings)):
        if not name.startswith(conf.PREFIX) or name[len(conf.PREFIX) :] in known:
            continue
        # Compared without the shared prefix, which would make every name look close.
        close = difflib.get_close_matches(name[len(conf.PREFIX) :], sorted(known), n=1)
        messages.append(
            Warning(
                f"{name} is not a verilock-django setting and is ignored.",
                hint=f"Did you mean {conf.PREFIX}{close[0]}?"
                if close
                else "See the settings table in the verilock-django README.",
                id="verilock_django.W002",
            )
        )
    return messages
