"""The app's settings: one table, one typed object, read from Django settings at access time.

Every ``VERILOCK_*`` setting is a row of :data:`SETTINGS` (name, default, parser, system
check id, README type and meaning) and a typed lowercase property of
:data:`verilock_settings` (``verilock_settings.timeout`` is a ``float``). A property reads
``django.conf.settings`` on every access, so ``override_settings`` and pytest-django's
``settings`` fixture take effect at once, and coerces the value in one place; an unusable
value raises :class:`~verilock_django.exceptions.VerilockConfigurationError` naming the
setting. The system checks (``checks.py``) run the same parsers at start-up, and the README's
settings table lists the same rows (a test compares them).

Messages name the setting and describe the problem, never the value: the API key and the
webhook secrets must not reach a log or a traceback.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.module_loading import import_string

from .exceptions import VerilockConfigurationError
from .statuses import DEFAULT_FINISHED_STATUSES
from .storable import MAX_READ_DEPTH, MAX_STORED_DEPTH

#: Prefix of every setting name in Django settings.
PREFIX: Final = "VERILOCK_"

DEFAULT_API_URL: Final = "https://verilock.io/api/v1"

#: Values of ``VERILOCK_AUTH_HEADER``: ``"both"`` sends the key in ``Authorization: Bearer``
#: *and* ``X-API-Key`` (the provider documents each in a different generation of its docs).
AUTH_HEADER_CHOICES: Final = ("both", "bearer", "x-api-key")

#: Named modes of ``VERILOCK_WEBHOOK_PROCESSOR``; any other value is the dotted path of a
#: callable ``f(event_id)``.
PROCESSOR_CHOICES: Final = ("auto", "thread", "sync", "none")

#: The ``VERILOCK_TASK_BACKEND`` that sends work to Celery (``verilock_django.contrib.celery``).
CELERY_BACKEND: Final = "celery"

#: Check groups: which registered check function reports a row (``checks.py``).
GROUP_API: Final = "api"
GROUP_WEBHOOK: Final = "webhook"
GROUP_SYNC: Final = "sync"
GROUP_VERIFY: Final = "verify"

#: Values of ``VERILOCK_CREATE_SHAPE``: the request body ``POST /sessions`` is sent in.
#: ``"b"`` (``profile_id``, flat applicant fields, ``external_id``) is the newer generation of
#: Verilock's docs and its SDK; ``"a"`` (``type``/``steps``/``applicant{}``/``reference_id``)
#: the older one.
CREATE_SHAPE_CHOICES: Final = ("b", "a")

#: Steps Gen A accepts in ``steps`` (the default of ``VERILOCK_CREATE_STEPS``).
DEFAULT_CREATE_STEPS: Final = ("document", "selfie", "face_match", "liveness", "aml")
GROUP_PRIVACY: Final = "privacy"

#: Values of ``VERILOCK_STORED_DATA``, from most to least stored (see ``docs/data-protection.md``).
STORED_DATA_CHOICES: Final = ("full", "without_applicant", "decision_only")

T_co = TypeVar("T_co", covariant=True)


class InvalidSetting(ValueError):
    """A raw setting value cannot be used; ``problem`` completes "VERILOCK_X …".

    ``check_id`` overrides the row's check id for a distinct problem (for example a key
    with whitespace inside). Never holds the value itself.
    """

    def __init__(self, problem: str, *, check_id: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.check_id = check_id


@dataclass(frozen=True)
class Setting(Generic[T_co]):
    """One row of the settings table.

    ``parse`` turns the raw value (the default when unset) into the typed value or raises
    :class:`InvalidSetting`; ``check_id`` is the system check reporting that (``"E004"``);
    ``type_doc``, ``default_doc`` and ``doc`` are the README row's Type, Default and
    Meaning cells.
    """

    name: str
    default: object
    parse: Callable[[object], T_co]
    check_id: str
    group: str
    type_doc: str
    default_doc: str
    doc: str
    hint: str = ""

    @property
    def setting_name(self) -> str:
        """The name in Django settings, e.g. ``"VERILOCK_TIMEOUT"``."""
        return PREFIX + self.name

    def raw(self) -> object:
        """The value in Django settings now, or the default when unset (not validated)."""
        return getattr(settings, self.setting_name, self.default)

    def value(self) -> T_co:
        """The typed value now.

        :raises VerilockConfigurationError: the value is unusable (the message names the
            setting and the problem, never the value).
        """
        try:
            return self.parse(self.raw())
        except InvalidSetting as exc:
            raise VerilockConfigurationError(f"{self.setting_name} {exc.problem}.") from None

    def problem(self) -> InvalidSetting | None:
        """What is wrong with the current value, or ``None`` if it is usable."""
        try:
            self.parse(self.raw())
        except InvalidSetting as exc:
            return exc
        return None


# -- parsers: raw value in, typed value out, or InvalidSetting --------------------------


def _kind(value: object) -> str:
    # The type only: values may be secrets.
    return f"got {type(value).__name__}"


def _number(value: object) -> float | None:
    """``value`` as a float if it is an int or a float (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _positive_number(value: object) -> float:
    number = _number(value)
    if number is None or not number > 0:  # "not >" also refuses NaN
        raise InvalidSetting(f"must be a positive number of seconds ({_kind(value)})")
    return number


def _non_negative_number(value: object) -> float:
    number = _number(value)
    if number is None or not number >= 0:
        raise InvalidSetting(f"must be a number >= 0 ({_kind(value)})")
    return number


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidSetting(f"must be a positive integer ({_kind(value)})")
    return value


def _non_negative_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidSetting(f"must be an integer >= 0 ({_kind(value)})")
    return value


def _optional_positive_int(value: object) -> int | None:
    if value is None:
        return None
    try:
        return _positive_int(value)
    except InvalidSetting:
        raise InvalidSetting(f"must be None or a positive integer ({_kind(value)})") from None


def _json_depth(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_READ_DEPTH:
        raise InvalidSetting(f"must be an integer from 1 to {MAX_READ_DEPTH} ({_kind(value)})")
    return value


def _has_inner_junk(text: str) -> bool:
    """Whitespace or a control/format character (``\\n``, ``\\t``, zero-width space…)."""
    return any(char.isspace() or unicodedata.category(char).startswith("C") for char in text)


def _api_key(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidSetting(f"must be a string ({_kind(value)})")
    key = value.strip()  # a key pasted with a trailing newline still works
    if _has_inner_junk(key):
        raise InvalidSetting("must not contain whitespace or control characters", check_id="E008")
    return key


def _api_url(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidSetting(f"must be an http(s) URL ({_kind(value)})")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidSetting("must be an http(s) URL")
    return value.rstrip("/")


def _auth_header(value: object) -> str:
    if not isinstance(value, str) or value not in AUTH_HEADER_CHOICES:
        raise InvalidSetting(f"must be one of {', '.join(AUTH_HEADER_CHOICES)}")
    return value


def _finished_statuses(value: object) -> frozenset[str]:
    if (
        not isinstance(value, (list, tuple, set, frozenset))
        or not value
        or not all(isinstance(status, str) and status for status in value)
    ):
        raise InvalidSetting("must be a non-empty list of status strings")
    return frozenset(value)


def _webhook_secrets(value: object) -> tuple[str, ...]:
    # A bare string is refused rather than read as one secret per character or guessed at.
    if not isinstance(value, (list, tuple)):
        raise InvalidSetting(f"must be a list of non-empty strings ({_kind(value)})")
    secrets: list[str] = []
    for secret in value:
        if not isinstance(secret, str) or not secret.strip():
            raise InvalidSetting("must be a list of non-empty strings")
        secret = secret.strip()
        if _has_inner_junk(secret):
            raise InvalidSetting(
                "must not hold a secret with whitespace or control characters inside",
                check_id="E015",
            )
        secrets.append(secret)
    return tuple(secrets)


def _optional_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidSetting(f"must be None or a non-empty string ({_kind(value)})")
    return value.strip()


def _redis_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise InvalidSetting("must be None or a redis://, rediss:// or unix:// URL")
    return value


def _webhook_processor(value: object) -> str:
    if isinstance(value, str) and value in PROCESSOR_CHOICES:
        return value
    problem = f"must be one of {', '.join(PROCESSOR_CHOICES)} or the dotted path of a callable"
    if not isinstance(value, str) or "." not in value:
        raise InvalidSetting(problem)
    try:
        target = import_string(value)
    except ImportError:
        raise InvalidSetting(f"{problem} (the path does not import)") from None
    if not callable(target):
        raise InvalidSetting(f"{problem} (the path names something not callable)")
    return value


def _create_shape(value: object) -> str:
    if not isinstance(value, str) or value not in CREATE_SHAPE_CHOICES:
        raise InvalidSetting(f"must be one of {', '.join(CREATE_SHAPE_CHOICES)}")
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidSetting(f"must be a string ({_kind(value)})")
    return value.strip()


def _create_steps(value: object) -> tuple[str, ...]:
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(step, str) and step for step in value)
    ):
        raise InvalidSetting("must be a non-empty list of step names")
    return tuple(value)


def _optional_days(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 36_500:
        raise InvalidSetting(f"must be None or a number of days from 1 to 36500 ({_kind(value)})")
    return value


def _stored_data(value: object) -> str:
    if not isinstance(value, str) or value not in STORED_DATA_CHOICES:
        raise InvalidSetting(f"must be one of {', '.join(STORED_DATA_CHOICES)}")
    return value


def _optional_callable_path(value: object) -> Callable[..., object] | None:
    if value is None or value == "":
        return None
    problem = "must be None or the dotted path of a callable"
    if not isinstance(value, str) or "." not in value:
        raise InvalidSetting(problem)
    try:
        target = import_string(value)
    except ImportError:
        raise InvalidSetting(f"{problem} (the path does not import)") from None
    if not callable(target):
        raise InvalidSetting(f"{problem} (the path names something not callable)")
    return target  # type: ignore[no-any-return]


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidSetting(f"must be True or False ({_kind(value)})")
    return value


def _optional_positive_number(value: object) -> float | None:
    if value is None:
        return None
    try:
        return _positive_number(value)
    except InvalidSetting:
        raise InvalidSetting(f"must be None or a positive number ({_kind(value)})") from None


# -- the table ---------------------------------------------------------------------------

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
    _optional_positive_int,
    "E021",
    GROUP_SYNC,
    "int or `None`",
    "None",
    "At most this many HTTP requests (retries included) in any 60 s window. `None`: what the "
    "API announces in `X-RateLimit-Limit`, or the documented 120 until it has announced "
    "anything; when both are known the lower wins. `X-RateLimit-Remaining` and `Retry-After` "
    "are always honoured.",
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
    _positive_int,
    "E020",
    GROUP_SYNC,
    "int",
    "16",
    "Parallel fetches in one sync run (`--concurrency`).",
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
    "check that brought nothing new. Set it a little below your cron period.",
)
RECHECK_MAX_INTERVAL: Final[Setting[float]] = Setting(
    "RECHECK_MAX_INTERVAL",
    21600.0,
    _positive_number,
    "E022",
    GROUP_SYNC,
    "float (s)",
    "21600",
    "Upper bound of that wait (not below the minimum: `E023`).",
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
    LEASE_SECONDS,
    WEBHOOK_SECRETS,
    WEBHOOK_PROCESSOR,
    WEBHOOK_THREADS,
    WEBHOOK_MAX_BODY_SIZE,
    WEBHOOK_STALE_AFTER,
    WEBHOOK_MAX_AGE,
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


verilock_settings = VerilockSettings()
