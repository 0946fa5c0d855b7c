"""One clock for every process and machine: the database server's.

Which of two answers is newer, whether a lease has run out and whether a session is due are
decided by comparing times written by different processes, possibly on different machines.
Their own clocks may disagree (a worker an hour ahead would make every later answer look
stale), so every such time is read here: the database's current time, fetched once and then
advanced with this process's monotonic clock, which no wall-clock change moves. A process
re-reads the database every :data:`RESYNC_SECONDS`.

A run's time limit (``--max-runtime``) is not such a time: it is measured on this process's
monotonic clock alone (:func:`seconds`), by one :class:`Deadline` per run, the same for the
refresh and for discovery.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone

#: How long one reading of the database's clock is advanced locally before it is re-read.
RESYNC_SECONDS = 60.0

_QUERIES = {
    # Not CURRENT_TIMESTAMP: inside a transaction that is when the transaction began, and a
    # base read there would lag for as long as the transaction had run. Each query gives
    # naive UTC: with USE_TZ off Django has PostgreSQL hand a timestamptz back naive in
    # TIME_ZONE, which read as UTC would put the clock hours off.
    "postgresql": "SELECT clock_timestamp() AT TIME ZONE 'UTC'",
    "mysql": "SELECT UTC_TIMESTAMP(6)",
    "sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
}

_lock = threading.Lock()
_base: tuple[dt.datetime, float] | None = None  # (database time in UTC, monotonic then)


def now() -> dt.datetime:
    """The database server's current time, as Django stores datetimes.

    Aware (UTC) when ``USE_TZ`` is on, naive in the default time zone otherwise. Safe to call
    from any thread; it queries the default database only from the thread that (re)reads the
    base, at most once per :data:`RESYNC_SECONDS`. Another vendor's database (an unknown
    backend) falls back to this machine's clock.
    """
    global _base
    with _lock:
        base = _base
        if base is None or time.monotonic() - base[1] > RESYNC_SECONDS:
            base = _base = (_read_database_time(), time.monotonic())
    current = stored_datetime(base[0] + dt.timedelta(seconds=time.monotonic() - base[1]))
    assert current is not None
    return current


def forget() -> None:
    """Drop the cached reading (tests that change the clock, a new database connection)."""
    global _base
    with _lock:
        _base = None


def seconds() -> float:
    """This process's monotonic clock, in seconds: what a :class:`Deadline` is measured on
    (tests replace it with a simulated one)."""
    return time.monotonic()


class Deadline:
    """A run's time limit: ``limit`` seconds from now (``None``: no limit), on this process's
    monotonic clock (:func:`seconds`), so no wall-clock change moves it."""

    def __init__(self, limit: float | None) -> None:
        self.at = None if limit is None else seconds() + limit

    def passed(self) -> bool:
        """True once the limit is reached (never without one)."""
        return self.at is not None and seconds() >= self.at


def _read_database_time() -> dt.datetime:
    query = _QUERIES.get(connection.vendor)
    if query is None:
        return dt.datetime.now(dt.timezone.utc)
    with connection.cursor() as cursor:
        cursor.execute(query)
        value: dt.datetime | str = cursor.fetchone()[0]
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def stored_datetime(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` as Django stores datetimes: an aware value as the same moment in UTC
    (PostgreSQL refuses offsets past 15:59), naive in the default time zone without
    ``USE_TZ`` (an aware value in a ``USE_TZ = False`` project fails on SQLite). A naive
    value and ``None`` pass as they are.

    :raises OverflowError: the moment has no UTC time (year 1 at ``+01:00``).
    """
    if value is None or timezone.is_naive(value):
        return value
    if value.utcoffset():
        value = value.astimezone(dt.timezone.utc)
    if settings.USE_TZ:
        return value
    return timezone.make_naive(value, timezone.get_default_timezone())
