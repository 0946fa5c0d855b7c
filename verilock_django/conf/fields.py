"""The settings table's machinery: what a row is, and the parsers that turn raw values into
typed ones (or :class:`InvalidSetting`), with the vocabularies they accept.

Parsers never put the value in a message: it may be the API key or a webhook secret.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar, cast
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from ..exceptions import VerilockConfigurationError
from ..storable import MAX_READ_DEPTH

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
T = TypeVar("T")


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
        """The typed value now: parsed on first use, then kept until a setting changes.

        Django sends ``setting_changed`` when ``override_settings`` (or pytest-django's
        ``settings`` fixture) sets a value, which forgets every kept value. Deleting one
        through them sends nothing (``del settings.VERILOCK_MAX_RETRIES`` in a test), but
        each such override puts a new settings holder in place and restores the old one
        after: a value is kept only with the holder it was read from. Otherwise settings are
        fixed while the process runs, as Django requires. A parsed callable (an imported
        dotted path) is looked up again on each use, since a test may replace it.

        :raises VerilockConfigurationError: the value is unusable (the message names the
            setting and the problem, never the value).
        """
        generation = _generation[0]
        # The object LazySettings delegates to: every override_settings swaps it (Django's
        # own attribute, which override_settings and pytest-django set themselves).
        holder = settings._wrapped  # type: ignore[misc]  # LazySettings's; not in the stubs
        kept = _parsed.get(self.name)
        if kept is not None and kept[0] == generation and kept[1] is holder:
            return cast(T_co, kept[2])
        try:
            parsed = self.parse(self.raw())
        except InvalidSetting as exc:
            raise VerilockConfigurationError(f"{self.setting_name} {exc.problem}.") from None
        # Kept with the generation and holder read before the raw value: a value another
        # thread's change made stale (even one landing while it is kept) is never returned.
        if not callable(parsed):
            _parsed[self.name] = (generation, holder, parsed)
        return parsed

    def problem(self) -> InvalidSetting | None:
        """What is wrong with the current value, or ``None`` if it is usable."""
        try:
            self.parse(self.raw())
        except InvalidSetting as exc:
            return exc
        return None


#: Per setting name, the settings generation and holder it was read in, and its typed
#: value. Reading a setting on every request (the webhook view reads six) or every stored
#: session costs one dictionary lookup, where reading an unset setting through
#: ``django.conf.settings`` raises and catches ``AttributeError`` each time.
_parsed: dict[str, tuple[int, object, object]] = {}
#: How many times settings changed: a value read before a change is not kept after it.
_generation = [0]


@receiver(setting_changed)
def _forget_parsed(**kwargs: object) -> None:
    """Forget every kept value when any setting changes (a parser may read another one)."""
    _generation[0] += 1
    _parsed.clear()


# -- parsers: raw value in, typed value out, or InvalidSetting --------------------------


def _kind(value: object) -> str:
    # The type only: values may be secrets.
    return f"got {type(value).__name__}"


def _number(value: object) -> float | None:
    """``value`` as a float if it is an int or a float (a bool is not a number here); an int
    beyond what a float holds (``10**400``) is infinity, which every bound refuses as too
    large, rather than an ``OverflowError`` out of the system checks."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


#: Longest duration a setting in seconds may hold: a century (36,500 days, as the commands'
#: counts of days). Now plus or minus it is a datetime, it fits a socket timeout and a sleep,
#: so no duration reaches the code as an ``OverflowError`` (``inf``, ``1e300``).
MAX_SECONDS: Final = 36_500 * 86_400.0


def _positive_number(value: object) -> float:
    number = _number(value)
    if number is None or not 0 < number <= MAX_SECONDS:  # "not <" also refuses NaN
        raise InvalidSetting(
            f"must be a positive number of seconds, at most {MAX_SECONDS:.0f} (a century) "
            f"({_kind(value)})"
        )
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


def _optional(parse: Callable[[object], T], what: str) -> Callable[[object], T | None]:
    """``parse``, letting ``None`` through (the problem then says "must be None or …")."""

    def parse_optional(value: object) -> T | None:
        if value is None:
            return None
        try:
            return parse(value)
        except InvalidSetting:
            raise InvalidSetting(f"must be None or {what} ({_kind(value)})") from None

    return parse_optional


#: Most parallel fetches one run may use (``VERILOCK_SYNC_CONCURRENCY``, ``--concurrency``):
#: each is a thread with its own connection, and the API's quota is shared by all of them.
MAX_CONCURRENCY: Final = 256

#: Most requests a minute a rate limit may hold, configured (``VERILOCK_RATE_LIMIT_PER_MINUTE``)
#: or announced (``X-RateLimit-Limit``, :data:`verilock_django.ratelimit.MAX_ANNOUNCED`): more
#: than any client sends, so a larger one would mean "no limit" as well, while what is
#: computed from it (the refresh's by-age budget, a float) stays finite.
MAX_PER_MINUTE: Final = 10**9


def _int_between(low: int, high: int) -> Callable[[object], int]:
    """A parser of whole numbers from ``low`` to ``high`` (a boolean is not one)."""

    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidSetting(f"must be an integer from {low} to {high} ({_kind(value)})")
        return value

    return parse


_json_depth = _int_between(1, MAX_READ_DEPTH)
_concurrency = _int_between(1, MAX_CONCURRENCY)
_optional_per_minute = _optional(
    _int_between(1, MAX_PER_MINUTE), f"an integer from 1 to {MAX_PER_MINUTE}"
)


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


def _callable_at(value: object, problem: str) -> Callable[..., object]:
    """The callable the dotted path ``value`` names; :class:`InvalidSetting` saying ``problem``
    (and why: not a path, does not import, not callable) otherwise."""
    if not isinstance(value, str) or "." not in value:
        raise InvalidSetting(problem)
    try:
        target = import_string(value)
    except ImportError:
        raise InvalidSetting(f"{problem} (the path does not import)") from None
    if not callable(target):
        raise InvalidSetting(f"{problem} (the path names something not callable)")
    return target  # type: ignore[no-any-return]


def _webhook_processor(value: object) -> str:
    if isinstance(value, str) and value in PROCESSOR_CHOICES:
        return value
    _callable_at(
        value, f"must be one of {', '.join(PROCESSOR_CHOICES)} or the dotted path of a callable"
    )
    return str(value)


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
    return _callable_at(value, "must be None or the dotted path of a callable")


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidSetting(f"must be True or False ({_kind(value)})")
    return value


_optional_positive_number = _optional(
    _positive_number, "a positive number of seconds, at most a century"
)

#: Longest ``VERILOCK_MAX_DATA_AGE``: a year of minutes (keeps date arithmetic in range).
MAX_MINUTES = 525_600.0


def _optional_minutes(value: object) -> float | None:
    if value is None:
        return None
    number = _number(value)
    if number is None or not 0 < number <= MAX_MINUTES:  # "not <" also refuses NaN
        raise InvalidSetting(
            f"must be None or a number of minutes above 0, at most {MAX_MINUTES:g} "
            f"({_kind(value)})"
        )
    return number
