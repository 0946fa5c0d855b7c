"""The app's settings: one table, one typed object, read from Django settings.

Every ``VERILOCK_*`` setting is a row of :data:`SETTINGS` (name, default, parser, system
check id, README type and meaning) and a typed lowercase property of
:data:`verilock_settings` (``verilock_settings.timeout`` is a ``float``). A property reads
``django.conf.settings`` once and keeps the typed value until Django says a setting changed
(``setting_changed``: ``override_settings`` and pytest-django's ``settings`` fixture send it,
so they take effect at once). It coerces the value in one place; an unusable value raises
:class:`~verilock_django.exceptions.VerilockConfigurationError` naming the setting. The
system checks (``checks.py``) run the same parsers at start-up, and the README's settings
table lists the same rows (a test compares them).

Messages name the setting and describe the problem, never the value: the API key and the
webhook secrets must not reach a log or a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .fields import (
    AUTH_HEADER_CHOICES,
    CELERY_BACKEND,
    CREATE_SHAPE_CHOICES,
    DEFAULT_API_URL,
    DEFAULT_CREATE_STEPS,
    GROUP_API,
    GROUP_PRIVACY,
    GROUP_SYNC,
    GROUP_VERIFY,
    GROUP_WEBHOOK,
    PREFIX,
    PROCESSOR_CHOICES,
    STORED_DATA_CHOICES,
    InvalidSetting,
    Setting,
)
from .table import (
    API_KEY,
    API_URL,
    AUTH_HEADER,
    CREATE_SHAPE,
    CREATE_STEPS,
    DECLINE_REVOKES,
    ENCRYPT_FIELDS,
    FINISHED_STATUSES,
    LEASE_SECONDS,
    MAX_DATA_AGE,
    MAX_JSON_DEPTH,
    MAX_RESPONSE_BYTES,
    MAX_RETRIES,
    PAYLOAD_SCRUBBER,
    PII_RETENTION_DAYS,
    PROFILE_ID,
    RATE_LIMIT_PER_MINUTE,
    RATE_LIMIT_REDIS_URL,
    RECHECK_MAX_INTERVAL,
    RECHECK_MIN_INTERVAL,
    RETRY_AFTER_MAX,
    RETRY_BACKOFF,
    STORED_DATA,
    SYNC_CONCURRENCY,
    TASK_BACKEND,
    TASK_QUEUE,
    TIMEOUT,
    USER_RESOLVER,
    VERIFIED_MAX_AGE,
    WEBHOOK_MAX_AGE,
    WEBHOOK_MAX_BODY_SIZE,
    WEBHOOK_PROCESSOR,
    WEBHOOK_RETENTION_DAYS,
    WEBHOOK_SECRETS,
    WEBHOOK_STALE_AFTER,
    WEBHOOK_SYNCHRONOUS_COMMIT,
    WEBHOOK_THREADS,
)

__all__ = [
    "API_KEY",
    "API_URL",
    "AUTH_HEADER",
    "AUTH_HEADER_CHOICES",
    "CELERY_BACKEND",
    "CREATE_SHAPE",
    "CREATE_SHAPE_CHOICES",
    "CREATE_STEPS",
    "DECLINE_REVOKES",
    "DEFAULT_API_URL",
    "DEFAULT_CREATE_STEPS",
    "ENCRYPT_FIELDS",
    "FINISHED_STATUSES",
    "GROUP_API",
    "GROUP_PRIVACY",
    "GROUP_SYNC",
    "GROUP_VERIFY",
    "GROUP_WEBHOOK",
    "LEASE_SECONDS",
    "MAX_DATA_AGE",
    "MAX_JSON_DEPTH",
    "MAX_RESPONSE_BYTES",
    "MAX_RETRIES",
    "PAYLOAD_SCRUBBER",
    "PII_RETENTION_DAYS",
    "PREFIX",
    "PROCESSOR_CHOICES",
    "PROFILE_ID",
    "RATE_LIMIT_PER_MINUTE",
    "RATE_LIMIT_REDIS_URL",
    "RECHECK_MAX_INTERVAL",
    "RECHECK_MIN_INTERVAL",
    "RETRY_AFTER_MAX",
    "RETRY_BACKOFF",
    "SETTINGS",
    "STORED_DATA",
    "STORED_DATA_CHOICES",
    "SYNC_CONCURRENCY",
    "TASK_BACKEND",
    "TASK_QUEUE",
    "TIMEOUT",
    "USER_RESOLVER",
    "VERIFIED_MAX_AGE",
    "WEBHOOK_MAX_AGE",
    "WEBHOOK_MAX_BODY_SIZE",
    "WEBHOOK_PROCESSOR",
    "WEBHOOK_RETENTION_DAYS",
    "WEBHOOK_SECRETS",
    "WEBHOOK_STALE_AFTER",
    "WEBHOOK_SYNCHRONOUS_COMMIT",
    "WEBHOOK_THREADS",
    "InvalidSetting",
    "Setting",
    "VerilockSettings",
    "verilock_settings",
]

#: Every setting, in README order.
SETTINGS: Final[tuple[Setting[object], ...]] = (
    API_KEY,
    API_URL,
    AUTH_HEADER,
    TIMEOUT,
    MAX_RETRIES,
    RETRY_BACKOFF,
    FINISHED_STATUSES,
    MAX_RESPONSE_BYTES,
    MAX_JSON_DEPTH,
    RETRY_AFTER_MAX,
    SYNC_CONCURRENCY,
    RATE_LIMIT_PER_MINUTE,
    RATE_LIMIT_REDIS_URL,
    TASK_BACKEND,
    TASK_QUEUE,
    RECHECK_MIN_INTERVAL,
    RECHECK_MAX_INTERVAL,
    MAX_DATA_AGE,
    LEASE_SECONDS,
    WEBHOOK_SECRETS,
    WEBHOOK_PROCESSOR,
    WEBHOOK_THREADS,
    WEBHOOK_MAX_BODY_SIZE,
    WEBHOOK_STALE_AFTER,
    WEBHOOK_MAX_AGE,
    WEBHOOK_SYNCHRONOUS_COMMIT,
    CREATE_SHAPE,
    PROFILE_ID,
    CREATE_STEPS,
    USER_RESOLVER,
    DECLINE_REVOKES,
    VERIFIED_MAX_AGE,
    STORED_DATA,
    PAYLOAD_SCRUBBER,
    PII_RETENTION_DAYS,
    WEBHOOK_RETENTION_DAYS,
    ENCRYPT_FIELDS,
)


class VerilockSettings:
    """The ``VERILOCK_*`` settings as typed properties, read at access time.

    Every property raises :class:`VerilockConfigurationError` (naming the setting, never its
    value) when the configured value is unusable; system checks report the same at start-up.
    """

    @property
    def api_key(self) -> str:
        """``VERILOCK_API_KEY`` stripped of surrounding whitespace; ``""`` when unset."""
        return API_KEY.value()

    @property
    def api_url(self) -> str:
        """``VERILOCK_API_URL``, an http(s) URL without a trailing slash."""
        return API_URL.value()

    @property
    def auth_header(self) -> str:
        """``VERILOCK_AUTH_HEADER``: one of :data:`AUTH_HEADER_CHOICES`."""
        return AUTH_HEADER.value()

    @property
    def timeout(self) -> float:
        """``VERILOCK_TIMEOUT``: longest time one HTTP attempt may take, body included,
        seconds (> 0)."""
        return TIMEOUT.value()

    @property
    def max_response_bytes(self) -> int:
        """``VERILOCK_MAX_RESPONSE_BYTES``: largest API response body read, bytes (> 0)."""
        return MAX_RESPONSE_BYTES.value()

    @property
    def max_retries(self) -> int:
        """``VERILOCK_MAX_RETRIES``: retries of a failed GET (>= 0)."""
        return MAX_RETRIES.value()

    @property
    def retry_backoff(self) -> float:
        """``VERILOCK_RETRY_BACKOFF``: backoff factor between retries, seconds (>= 0)."""
        return RETRY_BACKOFF.value()

    @property
    def finished_statuses(self) -> frozenset[str]:
        """``VERILOCK_FINISHED_STATUSES``: the final session statuses (non-empty)."""
        return FINISHED_STATUSES.value()

    @property
    def max_json_depth(self) -> int:
        """``VERILOCK_MAX_JSON_DEPTH``: deepest nesting read in a JSON body (1-256)."""
        return MAX_JSON_DEPTH.value()

    @property
    def retry_after_max(self) -> float:
        """``VERILOCK_RETRY_AFTER_MAX``: longest honoured ``Retry-After``, seconds (> 0)."""
        return RETRY_AFTER_MAX.value()

    @property
    def rate_limit_per_minute(self) -> int | None:
        """``VERILOCK_RATE_LIMIT_PER_MINUTE``: requests per 60 s, or ``None`` (the API's)."""
        return RATE_LIMIT_PER_MINUTE.value()

    @property
    def rate_limit_redis_url(self) -> str | None:
        """``VERILOCK_RATE_LIMIT_REDIS_URL``: the Redis holding the shared window, or ``None``."""
        return RATE_LIMIT_REDIS_URL.value()

    @property
    def task_backend(self) -> str | None:
        """``VERILOCK_TASK_BACKEND``: a ``TASKS`` alias, ``"celery"``, or ``None`` (no engine)."""
        return TASK_BACKEND.value()

    @property
    def task_queue(self) -> str | None:
        """``VERILOCK_TASK_QUEUE``: the queue name, or ``None`` for the backend's default."""
        return TASK_QUEUE.value()

    @property
    def sync_concurrency(self) -> int:
        """``VERILOCK_SYNC_CONCURRENCY``: parallel fetches in one run (> 0)."""
        return SYNC_CONCURRENCY.value()

    @property
    def recheck_min_interval(self) -> float:
        """``VERILOCK_RECHECK_MIN_INTERVAL``: first recheck wait, seconds (> 0)."""
        return RECHECK_MIN_INTERVAL.value()

    @property
    def recheck_max_interval(self) -> float:
        """``VERILOCK_RECHECK_MAX_INTERVAL``: longest recheck wait, seconds (> 0)."""
        return RECHECK_MAX_INTERVAL.value()

    @property
    def max_data_age(self) -> float | None:
        """``VERILOCK_MAX_DATA_AGE``: oldest full data an unfinished session may keep before
        the batch refresh fetches it by id, minutes (> 0), or ``None`` (never by age)."""
        return MAX_DATA_AGE.value()

    @property
    def lease_seconds(self) -> float:
        """``VERILOCK_LEASE_SECONDS``: lifetime of a run's claim on a session, seconds (> 0)."""
        return LEASE_SECONDS.value()

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        """``VERILOCK_WEBHOOK_SECRETS``, each stripped; ``()`` when none is configured."""
        return WEBHOOK_SECRETS.value()

    @property
    def webhook_processor(self) -> str:
        """``VERILOCK_WEBHOOK_PROCESSOR``: a :data:`PROCESSOR_CHOICES` mode or an importable
        dotted path of a callable."""
        return WEBHOOK_PROCESSOR.value()

    @property
    def webhook_threads(self) -> int:
        """``VERILOCK_WEBHOOK_THREADS``: threads of the in-process pool (> 0)."""
        return WEBHOOK_THREADS.value()

    @property
    def webhook_max_body_size(self) -> int:
        """``VERILOCK_WEBHOOK_MAX_BODY_SIZE``: largest accepted body, bytes (> 0)."""
        return WEBHOOK_MAX_BODY_SIZE.value()

    @property
    def webhook_stale_after(self) -> float:
        """``VERILOCK_WEBHOOK_STALE_AFTER``: age after which a ``processing`` event is taken
        over, seconds (> 0)."""
        return WEBHOOK_STALE_AFTER.value()

    @property
    def create_shape(self) -> str:
        """``VERILOCK_CREATE_SHAPE``: one of :data:`CREATE_SHAPE_CHOICES`."""
        return CREATE_SHAPE.value()

    @property
    def profile_id(self) -> str:
        """``VERILOCK_PROFILE_ID`` stripped; ``""`` when unset."""
        return PROFILE_ID.value()

    @property
    def create_steps(self) -> tuple[str, ...]:
        """``VERILOCK_CREATE_STEPS``: the steps of a shape ``"a"`` session (non-empty)."""
        return CREATE_STEPS.value()

    @property
    def user_resolver(self) -> Callable[..., object] | None:
        """``VERILOCK_USER_RESOLVER`` imported: ``f(reference_id) -> user | None``, or None."""
        return USER_RESOLVER.value()

    @property
    def decline_revokes(self) -> bool:
        """``VERILOCK_DECLINE_REVOKES``: a later decline makes a user unverified."""
        return DECLINE_REVOKES.value()

    @property
    def verified_max_age(self) -> float | None:
        """``VERILOCK_VERIFIED_MAX_AGE``: seconds an approval counts, or None (for ever)."""
        return VERIFIED_MAX_AGE.value()

    @property
    def webhook_max_age(self) -> float | None:
        """``VERILOCK_WEBHOOK_MAX_AGE``: accepted distance of a delivery's ``timestamp`` from
        now, seconds (> 0), or ``None`` for no freshness check."""
        return WEBHOOK_MAX_AGE.value()

    @property
    def webhook_synchronous_commit(self) -> bool:
        """``VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT``: on PostgreSQL, whether a stored delivery's
        commit waits for the WAL flush (``False``: it does not; other databases ignore it)."""
        return WEBHOOK_SYNCHRONOUS_COMMIT.value()

    @property
    def stored_data(self) -> str:
        """``VERILOCK_STORED_DATA``: one of :data:`STORED_DATA_CHOICES`."""
        return STORED_DATA.value()

    @property
    def payload_scrubber(self) -> Callable[..., object] | None:
        """``VERILOCK_PAYLOAD_SCRUBBER`` imported: ``f(payload: dict) -> dict``, or ``None``."""
        return PAYLOAD_SCRUBBER.value()

    @property
    def pii_retention_days(self) -> int | None:
        """``VERILOCK_PII_RETENTION_DAYS``: days (> 0) before personal data is blanked."""
        return PII_RETENTION_DAYS.value()

    @property
    def webhook_retention_days(self) -> int | None:
        """``VERILOCK_WEBHOOK_RETENTION_DAYS``: days (> 0) before webhook events are deleted."""
        return WEBHOOK_RETENTION_DAYS.value()

    @property
    def encrypt_fields(self) -> bool:
        """``VERILOCK_ENCRYPT_FIELDS``: personal-data columns are encrypted when written."""
        return ENCRYPT_FIELDS.value()


verilock_settings = VerilockSettings()
