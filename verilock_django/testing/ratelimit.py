"""The fake API's rate limit: a sliding one-minute window, as Verilock documents it.

Within the limit every answer carries ``X-RateLimit-Limit`` and ``X-RateLimit-Remaining``;
over it the answer is the documented 429 with ``Retry-After`` (seconds until the oldest
request leaves the window). Only authenticated requests use up the limit.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque

from .replies import FakeResponse, error_reply

__all__ = ["RateLimit"]


class RateLimit:
    """A sliding-window limit of ``per_minute`` requests; ``None`` or 0 disables it."""

    def __init__(self, per_minute: int | None = None) -> None:
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._hits: deque[float] = deque()

    def admit(self, rng: random.Random) -> FakeResponse | dict[str, str]:
        """Count one request; return the headers to add to its answer, or the 429 to send."""
        limit = self.per_minute
        if not limit:
            return {}
        with self._lock:
            now = time.monotonic()
            while self._hits and now - self._hits[0] >= 60:
                self._hits.popleft()
            if len(self._hits) >= limit:
                retry_after = max(1, math.ceil(60 - (now - self._hits[0])))
                response = error_reply(
                    rng,
                    429,
                    f"Too many requests. Please retry after {retry_after} seconds.",
                    {"retry_after": retry_after},
                    retry_after=retry_after,
                )
                response.headers.update(
                    {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"}
                )
                return response
            self._hits.append(now)
            return {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(limit - len(self._hits)),
            }
