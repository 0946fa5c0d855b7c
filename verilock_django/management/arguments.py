"""Argument types shared by the app's management commands.

Each turns a command-line string into a checked value or raises
``argparse.ArgumentTypeError``, which Django reports as a usage error (exit status 2, no
traceback). Bounds keep every value inside what ``datetime`` arithmetic and the database can
hold, so no odd argument reaches the code as an ``OverflowError``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import math
import re
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ..clock import stored_datetime
from ..exceptions import PayloadError
from ..payloads import parse_session_id
from ..storable import clean_text

#: The largest small count (attempts, days of retention: 100 years) any command accepts.
MAX_COUNT = 36_500
#: Largest ``--limit``-like count.
MAX_LIMIT = 100_000_000
#: Largest duration in seconds (``--max-runtime``): a week.
MAX_SECONDS = 7 * 24 * 3600.0

_DURATION = re.compile(r"^(\d{1,9})\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _integer(value: str) -> int:
    text = value.strip()
    if not (text.isascii() and text.lstrip("-").isdigit()):
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number")
    return int(text)


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argument type accepting whole numbers (ASCII digits) from ``low`` to ``high``."""

    def parse(value: str) -> int:
        number = _integer(value)
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return number

    parse.__name__ = "whole number"
    return parse


def seconds(value: str) -> float:
    """A positive, finite number of seconds up to :data:`MAX_SECONDS`."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not math.isfinite(number) or not 0 < number <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to {MAX_SECONDS:g}")
    return number


def moment(value: str) -> dt.datetime:
    """An ISO date or datetime, or a duration back from now such as ``30m``, ``6h``, ``2d``."""
    match = _DURATION.match(value.strip())
    try:
        if match:
            amount, unit = match.groups()
            return timezone.now() - dt.timedelta(**{_UNITS[unit]: int(amount)})
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            if day is None:
                raise ValueError(value)
            parsed = dt.datetime.combine(day, dt.time.min)
        if timezone.is_naive(parsed) and settings.USE_TZ:
            parsed = timezone.make_aware(parsed)
        # As the columns hold it: an offset PostgreSQL refuses (+23:59), any offset in a
        # USE_TZ = False project, and one with no UTC time (year 1 at +01:00) never reach a query.
        stored = stored_datetime(parsed)
        assert stored is not None
        parsed = stored
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO date/datetime nor a duration like 30m, 6h, 2d "
            "(within the calendar)"
        ) from None
    return parsed


def text(value: str) -> str:
    """Text a database can compare and Python can encode: no NUL, and no lone surrogate (what
    a command-line byte that is not UTF-8 arrives as)."""
    if clean_text(value) != value:
        raise argparse.ArgumentTypeError("holds a NUL character or a byte that is not UTF-8")
    return value


def http_url(value: str) -> str:
    """An ``http://`` or ``https://`` URL with a host (and a port that exists), printable and
    without spaces: what a request can be posted to. Anything else is refused here, before
    any request, with what is wrong (requests' own errors name its exception classes)."""
    try:
        parts = urlsplit(value)
        port = parts.port  # ValueError beyond 65535 or not a number
    except ValueError:
        raise argparse.ArgumentTypeError("is not a URL (a malformed host or port)") from None
    # Not printable: NUL, other controls and lone surrogates (non-UTF-8 bytes); the one
    # printable space is the last thing a URL may hold.
    if not value.isprintable() or " " in value:
        raise argparse.ArgumentTypeError("holds a space, a control character or a non-UTF-8 byte")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise argparse.ArgumentTypeError(
            "is not an http:// or https:// URL with a host (for example "
            "http://localhost:8000/verilock/webhook/)"
        )
    if not _is_host_name(parts.hostname, bracketed="[" in parts.netloc):
        raise argparse.ArgumentTypeError(
            "has a host that is no name nor IP address (an empty label, a label over 63 "
            "characters, a leading dot, a wildcard)"
        )
    return value


def _is_host_name(host: str, *, bracketed: bool) -> bool:
    """Whether ``host`` (from ``urlsplit``) is what a connection can resolve: an IP literal
    (in brackets only an IPv6 address: ``[v1.x]`` is requests' InvalidURL), or a name
    whose labels are 1 to 63 characters once IDNA-encoded (``a..b`` or a label of 64
    characters is urllib3's LocationParseError while connecting, no requests exception),
    with no wildcard and no leading dot (requests' InvalidURL)."""
    try:
        ipaddress.ip_address(host.partition("%")[0] if bracketed else host)  # an IPv6 zone
    except ValueError:
        pass
    else:
        return True
    if bracketed or host.startswith((".", "*")):
        return False
    try:
        encoded = host.encode("idna")
    except UnicodeError:
        return False
    return all(0 < len(label) <= 63 for label in encoded.rstrip(b".").split(b"."))


def session_id(value: str) -> str:
    """A session id, normalised like every other door (see ``payloads.parse_session_id``)."""
    try:
        return parse_session_id(value, "SESSION_ID")
    except PayloadError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None
