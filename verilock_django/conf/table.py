"""The settings table: one row per ``VERILOCK_*`` setting (see :mod:`verilock_django.conf`).

Each row gives the name, the default, the parser, the system check id, the check group and
the README's Type, Default and Meaning cells; a test keeps the README's table identical.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ..statuses import DEFAULT_FINISHED_STATUSES
from ..storable import MAX_READ_DEPTH, MAX_STORED_DEPTH
from .fields import (
    DEFAULT_API_URL,
    DEFAULT_CREATE_STEPS,
    GROUP_API,
    GROUP_PRIVACY,
    GROUP_SYNC,
    GROUP_VERIFY,
    GROUP_WEBHOOK,
    Setting,
    _api_key,
    _api_url,
    _auth_header,
    _boolean,
    _concurrency,
    _create_shape,
    _create_steps,
    _finished_statuses,
    _json_depth,
    _non_negative_int,
    _non_negative_number,
    _optional_callable_path,
    _optional_days,
    _optional_minutes,
    _optional_name,
    _optional_per_minute,
    _optional_positive_number,
    _positive_int,
    _positive_number,
    _redis_url,
    _stored_data,
    _string,
    _webhook_processor,
    _webhook_secrets,
)

API_KEY: Final[Setting[str]] = Setting(
    "API_KEY",
    "",
    _api_key,
    "E001",
    GROUP_API,
    "str",
    '""',
    "Your API key (`qi_live_…` or `qi_test_…`); surrounding whitespace is stripped. "
    "Missing: system check `W001`, and every sync aborts at once.",
)
API_URL: Final[Setting[str]] = Setting(
    "API_URL",
    DEFAULT_API_URL,
    _api_url,
    "E002",
    GROUP_API,
    "str",
    f'"{DEFAULT_API_URL}"',
    "Base URL of the REST API (a trailing slash is dropped).",
    hint=f"The default is {DEFAULT_API_URL}.",
)
AUTH_HEADER: Final[Setting[str]] = Setting(
    "AUTH_HEADER",
    "both",
    _auth_header,
    "E003",
    GROUP_API,
    "str",
    '"both"',
    'How the key is sent: `"both"` (`Authorization: Bearer` and `X-API-Key`, which works '
    'against either documented generation), `"bearer"` or `"x-api-key"`.',
)
TIMEOUT: Final[Setting[float]] = Setting(
    "TIMEOUT",
    10.0,
    _positive_number,
    "E004",
    GROUP_API,
    "float (s)",
    "10.0",
    "Seconds one HTTP attempt may take in all: connecting, waiting for the answer and "
    "reading the whole body (a body trickling in slower is abandoned).",
)
MAX_RETRIES: Final[Setting[int]] = Setting(
    "MAX_RETRIES",
    3,
    _non_negative_int,
    "E006",
    GROUP_API,
    "int",
    "3",
    "Retries of a failed GET (429, 5xx, connection errors). POSTs are never retried.",
)
RETRY_BACKOFF: Final[Setting[float]] = Setting(
    "RETRY_BACKOFF",
    1.0,
    _non_negative_number,
    "E007",
    GROUP_API,
    "float",
    "1.0",
    "Backoff factor *f* (urllib3's `Retry`): the first retry is immediate, the *n*-th waits "
    "*f* * 2^(*n*-1) s plus 0 to 0.5 s of jitter, at most 8 s; with the defaults the "
    "waits are 0, 2 to 2.5 and 4 to 4.5 s. `Retry-After` is honoured instead when sent. `0` "
    "retries at once, without jitter.",
)
FINISHED_STATUSES: Final[Setting[frozenset[str]]] = Setting(
    "FINISHED_STATUSES",
    DEFAULT_FINISHED_STATUSES,
    _finished_statuses,
    "E005",
    GROUP_API,
    "list[str]",
    "[" + ", ".join(f'"{status}"' for status in DEFAULT_FINISHED_STATUSES) + "]",
    "Statuses after which a session is final and no longer refreshed.",
)
MAX_RESPONSE_BYTES: Final[Setting[int]] = Setting(
    "MAX_RESPONSE_BYTES",
    10 * 1024 * 1024,
    _positive_int,
    "E009",
    GROUP_API,
    "int (bytes)",
    "10485760",
    "Largest API response body the client reads (after decompression); a larger one is an "
    "`InvalidResponseError`.",
)
MAX_JSON_DEPTH: Final[Setting[int]] = Setting(
    "MAX_JSON_DEPTH",
    64,
    _json_depth,
    "E026",
    GROUP_API,
    "int",
    "64",
    f"Deepest nesting of lists and objects read in an API answer or a webhook body (at most "
    f"{MAX_READ_DEPTH}); deeper bodies are refused unread. A stored payload nests at most "
    f"{MAX_STORED_DEPTH} levels whatever this says (MariaDB's limit): deeper is a "
    "`PayloadError` naming the field.",
)
RETRY_AFTER_MAX: Final[Setting[float]] = Setting(
    "RETRY_AFTER_MAX",
    30.0,
    _positive_number,
    "E025",
    GROUP_SYNC,
    "float (s)",
    "30.0",
    "Longest wait a `Retry-After` header can impose before a retry.",
)
RATE_LIMIT_PER_MINUTE: Final[Setting[int | None]] = Setting(
    "RATE_LIMIT_PER_MINUTE",
    None,
    _optional_per_minute,
    "E021",
    GROUP_SYNC,
    "int or `None`",
    "None",
    "At most this many HTTP requests (retries included) in any 60 s window, 1 to 10⁹. `None`: "
    "what the API announces in `X-RateLimit-Limit`, or the documented 120 until it has "
    "announced anything; when both are known the lower wins. `X-RateLimit-Remaining` and "
    "`Retry-After` are always honoured.",
)
RATE_LIMIT_REDIS_URL: Final[Setting[str | None]] = Setting(
    "RATE_LIMIT_REDIS_URL",
    None,
    _redis_url,
    "E028",
    GROUP_SYNC,
    "str or `None`",
    "None",
    "Share the rate-limit window through this Redis (`redis://host:6379/0`) across every "
    "process and machine; `None`: each process keeps its own (needs the `redis` extra).",
)
TASK_BACKEND: Final[Setting[str | None]] = Setting(
    "TASK_BACKEND",
    None,
    _optional_name,
    "E029",
    GROUP_SYNC,
    "str or `None`",
    "None",
    'Where background work goes: the alias of a Django `TASKS` backend (e.g. `"default"`), '
    '`"celery"` (`verilock_django.contrib.celery`), or `None`: no task engine (work runs in '
    "the process that asked, as without workers). See docs/deploying.md.",
)
TASK_QUEUE: Final[Setting[str | None]] = Setting(
    "TASK_QUEUE",
    None,
    _optional_name,
    "E029",
    GROUP_SYNC,
    "str or `None`",
    "None",
    "Queue the tasks are sent to (a name the backend's `QUEUES` lists, or a Celery queue); "
    "`None`: the backend's default queue.",
)
SYNC_CONCURRENCY: Final[Setting[int]] = Setting(
    "SYNC_CONCURRENCY",
    16,
    _concurrency,
    "E020",
    GROUP_SYNC,
    "int",
    "16",
    "Parallel fetches in one sync run (`--concurrency`), 1 to 256.",
)
RECHECK_MIN_INTERVAL: Final[Setting[float]] = Setting(
    "RECHECK_MIN_INTERVAL",
    300.0,
    _positive_number,
    "E022",
    GROUP_SYNC,
    "float (s)",
    "300",
    "First wait before an unfinished session is checked by id again; it doubles after each "
    "check that brought nothing new. Set it a little below your cron period: it is also the "
    "window a run's by-age budget is sized on when `--max-runtime` is not given.",
)
RECHECK_MAX_INTERVAL: Final[Setting[float]] = Setting(
    "RECHECK_MAX_INTERVAL",
    3600.0,
    _positive_number,
    "E022",
    GROUP_SYNC,
    "float (s)",
    "3600",
    "Upper bound of that wait (not below the minimum: `E023`). It governs sessions the list "
    "leaves out although their status did not change; `VERILOCK_MAX_DATA_AGE` refreshes "
    "them sooner when it is shorter.",
)
MAX_DATA_AGE: Final[Setting[float | None]] = Setting(
    "MAX_DATA_AGE",
    20.0,
    _optional_minutes,
    "E055",
    GROUP_SYNC,
    "float (min) or `None`",
    "20",
    "Every unfinished session whose full data (steps included) was fetched longer ago than "
    "this is fetched by id, oldest first, within the run's request budget: the list shows "
    "statuses only. `None`: never by age (step-only changes then wait for a status change or "
    "a webhook). See docs/scaling.md for the worst-case age of each kind of change.",
)
LEASE_SECONDS: Final[Setting[float]] = Setting(
    "LEASE_SECONDS",
    600.0,
    _positive_number,
    "E024",
    GROUP_SYNC,
    "float (s)",
    "600",
    "How long a run's claim on a session lasts if the run dies before releasing it.",
)
WEBHOOK_SECRETS: Final[Setting[tuple[str, ...]]] = Setting(
    "WEBHOOK_SECRETS",
    (),
    _webhook_secrets,
    "E010",
    GROUP_WEBHOOK,
    "list[str]",
    "[]",
    "Accepted webhook signing secrets (`whsec_…`), each stripped of surrounding whitespace; "
    "any listed one is valid, which allows rotation. Empty: the endpoint answers 503.",
    hint='For one secret write VERILOCK_WEBHOOK_SECRETS = ["whsec_..."].',
)
WEBHOOK_PROCESSOR: Final[Setting[str]] = Setting(
    "WEBHOOK_PROCESSOR",
    "auto",
    _webhook_processor,
    "E011",
    GROUP_WEBHOOK,
    "str",
    '"auto"',
    'How stored events are processed: `"auto"` (a task on `VERILOCK_TASK_BACKEND` when one is '
    'set, else `"thread"`), `"thread"` (a small in-process pool, after commit), '
    '`"sync"` (in the request), `"none"` (only by the command), or the dotted path of a '
    "callable `f(event_id)` that enqueues a task.",
)
WEBHOOK_THREADS: Final[Setting[int]] = Setting(
    "WEBHOOK_THREADS",
    2,
    _positive_int,
    "E012",
    GROUP_WEBHOOK,
    "int",
    "2",
    "Threads of the in-process pool.",
)
WEBHOOK_MAX_BODY_SIZE: Final[Setting[int]] = Setting(
    "WEBHOOK_MAX_BODY_SIZE",
    262_144,
    _positive_int,
    "E013",
    GROUP_WEBHOOK,
    "int (bytes)",
    "262144",
    "Largest webhook body accepted (larger: 413).",
)
WEBHOOK_STALE_AFTER: Final[Setting[float]] = Setting(
    "WEBHOOK_STALE_AFTER",
    300.0,
    _positive_number,
    "E014",
    GROUP_WEBHOOK,
    "float (s)",
    "300",
    "An event still `processing` after this long is taken over by `process_verilock_webhooks`.",
)
WEBHOOK_MAX_AGE: Final[Setting[float | None]] = Setting(
    "WEBHOOK_MAX_AGE",
    259_200.0,
    _optional_positive_number,
    "E016",
    GROUP_WEBHOOK,
    "float (s) or `None`",
    "259200",
    "A delivery whose `timestamp` is further than this from now (3 days: past the "
    "provider's retries) is refused with 400 and not stored, so an old captured delivery "
    "cannot be replayed. `None` turns the check off.",
)
WEBHOOK_SYNCHRONOUS_COMMIT: Final[Setting[bool]] = Setting(
    "WEBHOOK_SYNCHRONOUS_COMMIT",
    True,
    _boolean,
    "E017",
    GROUP_WEBHOOK,
    "bool",
    "True",
    "PostgreSQL only: `False` commits each stored delivery without waiting for the WAL flush "
    "(`synchronous_commit` off for that transaction alone, set by the insert itself), so "
    "intake is faster, but a database server crash can lose the last deliveries already "
    "acknowledged with 200 (never corrupt anything); the batch refresh then brings what they "
    "announced. No effect on other databases. See docs/webhooks.md.",
)
STORED_DATA: Final[Setting[str]] = Setting(
    "STORED_DATA",
    "full",
    _stored_data,
    "E040",
    GROUP_PRIVACY,
    "str",
    '"full"',
    'What is kept of each payload: `"full"`, `"without_applicant"` (no applicant fields, '
    'no step details, no AML match names) or `"decision_only"` (only the decision record: '
    "ids, statuses, decision and reason, step statuses and scores, times). One-time "
    "secrets (session tokens, hosted and signed URLs) are never stored.",
)
PAYLOAD_SCRUBBER: Final[Setting[Callable[..., object] | None]] = Setting(
    "PAYLOAD_SCRUBBER",
    None,
    _optional_callable_path,
    "E041",
    GROUP_PRIVACY,
    "str or `None`",
    "None",
    "Dotted path of a callable `f(data: dict) -> dict` applied to every session payload and "
    "webhook body before it is stored.",
)
PII_RETENTION_DAYS: Final[Setting[int | None]] = Setting(
    "PII_RETENTION_DAYS",
    None,
    _optional_days,
    "E042",
    GROUP_PRIVACY,
    "int (days) or `None`",
    "None",
    "`apply_verilock_retention` blanks the applicant fields, step details and raw payloads "
    "of sessions finished longer ago than this, keeping the decision record. `None`: kept.",
)
WEBHOOK_RETENTION_DAYS: Final[Setting[int | None]] = Setting(
    "WEBHOOK_RETENTION_DAYS",
    30,
    _optional_days,
    "E043",
    GROUP_PRIVACY,
    "int (days) or `None`",
    "30",
    "`apply_verilock_retention` deletes webhook events (any status, payload included) "
    "received longer ago than this. `None`: kept.",
)
ENCRYPT_FIELDS: Final[Setting[bool]] = Setting(
    "ENCRYPT_FIELDS",
    False,
    _boolean,
    "E044",
    GROUP_PRIVACY,
    "bool",
    "False",
    "Encrypt the applicant columns and the raw JSON (session, step and webhook payloads) "
    "when they are written (the `encryption` extra, keys from `SALT_KEY` and `SECRET_KEY`); "
    "`manage.py encrypt_verilock_data` rewrites stored rows. Search and filters on those "
    "columns stop working. See docs/data-protection.md.",
)

CREATE_SHAPE: Final[Setting[str]] = Setting(
    "CREATE_SHAPE",
    "b",
    _create_shape,
    "E030",
    GROUP_VERIFY,
    "str",
    '"b"',
    'Request body of `POST /sessions`: `"b"` (`profile_id`, `external_id`, optional '
    "`applicant_name`/`applicant_email`; the newer docs and the SDK, and the applicant's "
    'personal data stays optional) or `"a"` (`type`, `steps`, required `applicant{}`, '
    "`reference_id`; the older docs).",
)
PROFILE_ID: Final[Setting[str]] = Setting(
    "PROFILE_ID",
    "",
    _string,
    "E031",
    GROUP_VERIFY,
    "str",
    '""',
    'Default verification profile (`profile_id`) of sessions created in shape `"b"`; '
    "needed to create sessions in that shape (system check `W030`).",
)
CREATE_STEPS: Final[Setting[tuple[str, ...]]] = Setting(
    "CREATE_STEPS",
    DEFAULT_CREATE_STEPS,
    _create_steps,
    "E032",
    GROUP_VERIFY,
    "list[str]",
    "[" + ", ".join(f'"{step}"' for step in DEFAULT_CREATE_STEPS) + "]",
    'Steps of sessions created in shape `"a"`.',
)
USER_RESOLVER: Final[Setting[Callable[..., object] | None]] = Setting(
    "USER_RESOLVER",
    None,
    _optional_callable_path,
    "E033",
    GROUP_VERIFY,
    "str or `None`",
    "None",
    "Dotted path of `f(reference_id) -> user or None`, called when a session created "
    "elsewhere is first stored with a reference, to link it to one of your users.",
)
DECLINE_REVOKES: Final[Setting[bool]] = Setting(
    "DECLINE_REVOKES",
    True,
    _boolean,
    "E034",
    GROUP_VERIFY,
    "bool",
    "True",
    "Whether a user's declined session completed after their approved one makes them "
    "unverified again (`is_verified`).",
)
VERIFIED_MAX_AGE: Final[Setting[float | None]] = Setting(
    "VERIFIED_MAX_AGE",
    None,
    _optional_positive_number,
    "E035",
    GROUP_VERIFY,
    "float (s) or `None`",
    "None",
    "How long an approval counts (from its completion) for `is_verified`; `None`: for ever.",
)
