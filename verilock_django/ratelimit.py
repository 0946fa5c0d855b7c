"""Pacing requests to the API's quota: a sliding one-minute window, per process or shared.

Verilock limits requests per API key over a minute (120 by default, more on request) and
answers ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining`` on every response, and
``Retry-After`` (seconds) on a 429. A :class:`Window` sends at most *limit* requests in any
60 s, where *limit* is ``VERILOCK_RATE_LIMIT_PER_MINUTE`` when set, else what the API last
announced, else the documented 120. It also believes the API when it knows better:

- ``X-RateLimit-Remaining`` lower than the window's own free slots (other processes, other
  machines or another app spend the same key) fills the difference, so this process waits;
- a 429's ``Retry-After`` (capped at ``VERILOCK_RETRY_AFTER_MAX``) holds everyone sharing
  the window for that long, so a 429 storm slows everyone down instead of failing sessions.

The padding for ``X-RateLimit-Remaining`` uses the limit announced in the same answer (the
API's own count), never a larger configured one.

Two stores hold the window. :class:`LocalWindow` (the default) lives in this process and is
shared by its threads; the headers keep separate processes roughly in step, but N processes
can still burst N times the quota before the API's answers catch up. :class:`RedisWindow`
(``VERILOCK_RATE_LIMIT_REDIS_URL``) keeps one window in Redis for every process and machine:
each admission is one atomic script on the Redis server's clock, so workers whose own clocks
disagree still share one minute. Redis rather than the database: a slot is taken before
every request from the fetching threads, which must not hold database connections, and
Redis does the check-and-take in one round trip without write load on the primary.
"""

from __future__ import annotations

import collections
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .conf.fields import MAX_PER_MINUTE
from .retries import parse_retry_after

logger = logging.getLogger(__name__)

#: The quota Verilock documents when an account has not asked for more.
DEFAULT_PER_MINUTE = 120
#: The most requests a header is read to announce (``X-RateLimit-Limit``/``-Remaining``): more
#: than any client sends in a minute, so a larger value means "no limit" as well, while what
#: is computed from it (the refresh's budget) stays a finite number. The same bound as a
#: configured ``VERILOCK_RATE_LIMIT_PER_MINUTE``.
MAX_ANNOUNCED = MAX_PER_MINUTE
#: The window's length, seconds: the API's minute plus a margin, because a request is
#: admitted here a little before it arrives there (a thread switch, the network), and two
#: requests 60.0 s apart here may land 59.99 s apart in the API's own window.
WINDOW = 61.0


def announced(headers: Mapping[str, str]) -> tuple[int | None, int | None, float | None]:
    """``(limit, remaining, retry_after)`` read from response headers; ``None`` when absent.

    Unreadable values count as absent; negative ones are clamped to 0, and those above
    :data:`MAX_ANNOUNCED` to it.
    """

    def number(name: str) -> float | None:
        try:
            value = float(headers.get(name, ""))
        except ValueError:
            return None
        # NaN, inf: absent.
        return min(max(0.0, value), MAX_ANNOUNCED) if math.isfinite(value) else None

    limit, remaining = number("X-RateLimit-Limit"), number("X-RateLimit-Remaining")
    return (
        int(limit) if limit else None,
        None if remaining is None else int(remaining),
        # The client's own reading of Retry-After (every form, the same rules).
        parse_retry_after(headers.get("Retry-After")),
    )


class Window(Protocol):
    """A shared budget of requests per minute."""

    def acquire(self, limit: int) -> float:
        """Block until one more request fits; return the seconds waited."""

    def observe(self, limit: int, remaining: int | None, retry_after: float | None) -> None:
        """Take the API's view into account: ``remaining`` of ``limit`` left now, or hold
        everyone for ``retry_after`` seconds (see the module docstring)."""

    def known_limit(self) -> int | None:
        """The limit the API last announced to anyone sharing this window, if any."""

    def remember_limit(self, limit: int) -> None:
        """Record a limit the API announced, for processes that have not heard it yet."""


class LocalWindow:
    """The window of one process, shared by its threads (``clock``: seconds, monotonic)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # (time, requests) in time order; padding for X-RateLimit-Remaining counts many.
        self._sent: collections.deque[tuple[float, int]] = collections.deque()
        self._used = 0
        self._hold_until = 0.0  # Retry-After: nothing is sent before this
        self._known_limit: int | None = None
        self._lock = threading.Lock()

    def known_limit(self) -> int | None:
        return self._known_limit

    def remember_limit(self, limit: int) -> None:
        self._known_limit = limit

    def acquire(self, limit: int) -> float:
        waited, held = 0.0, 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._expire(now)
                if self._hold_until > max(now, held):  # each hold is waited out once
                    held = self._hold_until
                    delay = held - now
                elif self._used < limit:
                    self._sent.append((now, 1))
                    self._used += 1
                    return waited
                else:  # full: wait for the oldest request to leave the window
                    delay = max(0.001, self._sent[0][0] + WINDOW - now)
            time.sleep(delay)
            waited += delay

    def observe(self, limit: int, remaining: int | None, retry_after: float | None) -> None:
        with self._lock:
            now = self._clock()
            self._expire(now)
            if retry_after:
                self._hold_until = max(self._hold_until, now + retry_after)
            elif remaining is not None and limit - self._used > remaining:
                padding = limit - self._used - remaining
                self._sent.append((now, padding))
                self._used += padding

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0][0] <= now - WINDOW:
            self._used -= self._sent.popleft()[1]


# Shared by both scripts. KEYS[1]: the window, a sorted set of admission times (unique
# members); KEYS[3]: how many requests its padding members count beyond one each. A member
# ending in "#<n>" stands for n requests (the padding for X-RateLimit-Remaining), so padding
# costs one member and one counter update whatever the number: the script's work and memory
# follow the requests sent, never a number the API announces. Expired members are removed
# and their extra weight taken off the counter; returns how many requests the window holds.
_USED = """
local function used(now)
  local cutoff = now - 61000
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
  if #gone > 0 then
    local extra = 0
    for _, member in ipairs(gone) do
      local weight = string.match(member, '#(%d+)$')
      if weight then
        extra = extra + tonumber(weight) - 1
      end
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
    if extra > 0 and redis.call('DECRBY', KEYS[3], extra) <= 0 then
      redis.call('DEL', KEYS[3])
    end
  end
  return redis.call('ZCARD', KEYS[1]) + tonumber(redis.call('GET', KEYS[3]) or '0')
end
local function keep()
  redis.call('PEXPIRE', KEYS[1], 120000)
  redis.call('PEXPIRE', KEYS[3], 120000)
end
"""

# KEYS[2]: the hold a Retry-After puts on everyone (a key that expires). ARGV: limit, a unique
# member. Returns 0 when admitted, else the milliseconds to wait before trying again.
_ACQUIRE = (
    _USED
    + """
local hold = redis.call('PTTL', KEYS[2])
if hold > 0 then
  return hold
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if used(now) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  keep()
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + 61000 - now)
"""
)

# ARGV: limit, remaining (-1: unknown), Retry-After in ms (0: none), a unique member.
_OBSERVE = (
    _USED
    + """
local limit, remaining, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if hold > 0 then
  if redis.call('PTTL', KEYS[2]) < hold then
    redis.call('SET', KEYS[2], '1', 'PX', hold)
  end
  return 0
end
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local count = used(now)
if remaining >= 0 and limit - count > remaining then
  local padding = limit - count - remaining
  redis.call('ZADD', KEYS[1], now, ARGV[4] .. '#' .. string.format('%d', padding))
  if padding > 1 then
    redis.call('INCRBY', KEYS[3], padding - 1)
  end
  keep()
end
return count
"""
)


class RedisWindow:
    """One window in Redis for every process and machine (``url``: a ``redis://`` URL).

    ``scope`` names the budget (the client passes a digest of the API key: the quota is per
    key). Raises ``redis.exceptions.RedisError`` subclasses when Redis cannot be reached.
    """

    def __init__(self, url: str, scope: str = "default") -> None:
        import redis  # an optional dependency: only deployments that share a window need it

        self.url = url
        self.key = f"verilock_django:ratelimit:{scope}"
        self._redis: Any = redis.Redis.from_url(url)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._observe = self._redis.register_script(_OBSERVE)
        self._keys = [self.key, self.key + ":hold", self.key + ":padded"]
        self._prefix = secrets.token_hex(6)  # members must not collide across machines
        self._counter = 0
        self._lock = threading.Lock()

    def known_limit(self) -> int | None:
        value = self._redis.get(self.key + ":limit")
        return int(value) if value else None

    def remember_limit(self, limit: int) -> None:
        self._redis.set(self.key + ":limit", limit, ex=3600)

    def acquire(self, limit: int) -> float:
        waited = 0.0
        while True:
            wait_ms = int(self._acquire(keys=self._keys, args=[limit, self._member()]))
            if not wait_ms:
                return waited
            time.sleep(wait_ms / 1000)
            waited += wait_ms / 1000

    def observe(self, limit: int, remaining: int | None, retry_after: float | None) -> None:
        hold = int((retry_after or 0) * 1000)
        # Within what the script's numbers hold exactly.
        args: list[int | str] = [
            min(limit, MAX_ANNOUNCED),
            -1 if remaining is None else min(remaining, MAX_ANNOUNCED),
            hold,
            self._member(),
        ]
        self._observe(keys=self._keys, args=args)

    def _member(self) -> str:
        with self._lock:
            self._counter += 1
            return f"{self._prefix}:{self._counter}"
