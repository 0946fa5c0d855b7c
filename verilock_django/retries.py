"""The client's retry policy: which answers are retried, and how long to wait before.

Built on urllib3's ``Retry``: idempotent requests only (a POST is never sent twice), on 429,
5xx and connection errors, with jittered exponential backoff capped at :data:`BACKOFF_MAX`.
``Retry-After`` is honoured in any form a server sends -- delay-seconds, decimals, HTTP
dates -- and capped; a value that is garbage, negative or not finite gives no advice and the
backoff applies (urllib3 itself raises ``InvalidHeader`` for ``"0.5"``, turning a retryable
answer into a failure). Pure: no settings, no I/O but the waits.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from urllib3.connectionpool import ConnectionPool
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest exponential backoff between two attempts, in seconds.
BACKOFF_MAX = 8.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})


class VerilockRetry(Retry):
    """urllib3's ``Retry`` with a tolerant, capped ``Retry-After``, no POST replay, and hooks.

    ``on_retry(failed)`` runs before each new attempt with the answer that failed, if any (to
    count it, learn from its rate-limit headers and wait for the rate limit, which also holds
    a usable ``Retry-After`` for everyone sharing the window); ``on_attempt`` runs once the
    wait before it is over (the attempt's deadline starts).
    """

    # A 413 is not retried whatever its headers say: a GET that is too large stays so.
    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})

    def __init__(
        self,
        *args: Any,
        retry_after_cap: float = 30.0,
        on_retry: Callable[[BaseHTTPResponse | None], None] | None = None,
        on_attempt: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after_cap = retry_after_cap
        self.on_retry = on_retry
        self.on_attempt = on_attempt

    def new(self, **kw: Any) -> VerilockRetry:
        retry = super().new(**kw)
        retry.retry_after_cap = self.retry_after_cap
        retry.on_retry = self.on_retry
        retry.on_attempt = self.on_attempt
        return retry

    def parse_retry_after(self, retry_after: str) -> float:
        # urllib3 raises InvalidHeader for "0.5" or garbage, turning a retryable answer into
        # a hard failure. Here 0 means "no usable advice": urllib3 then uses the backoff.
        # The cap keeps a huge value (or a far-future date) from stalling a whole run.
        seconds = parse_retry_after(retry_after)
        return 0.0 if seconds is None else min(seconds, self.retry_after_cap)

    def sleep_for_retry(self, response: BaseHTTPResponse) -> bool:
        # on_retry has already held this attempt (and everyone sharing the rate-limit window)
        # for a usable Retry-After: sleeping it again here would double the wait. Without one
        # (absent, or 0 for garbage) urllib3's backoff applies.
        return bool(self.get_retry_after(response))

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        super().sleep(response)
        if self.on_attempt is not None:
            self.on_attempt()

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> VerilockRetry:
        if error is not None and method is not None and not self._is_method_retryable(method):
            # urllib3 replays any method after a connect error; a POST is never sent twice.
            raise error
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if response is not None:
            # This answer is dropped for a new attempt. Closing it spares urllib3 draining its
            # body, which a server could trickle for as long as it likes (the client's
            # deadline covers the body of the answer it reads, not of those it drops).
            response.close()
        if self.on_retry is not None:
            self.on_retry(response)
        return retry


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` when it gives no usable advice.

    Accepts delay-seconds, decimals (``"0.5"``) and HTTP dates (a past date is ``0.0``);
    garbage, negative and non-finite values are ``None``. Never raises.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        parsed = email.utils.parsedate_tz(text)
        if parsed is None:
            return None
        try:
            return max(0.0, email.utils.mktime_tz(parsed) - time.time())
        except (OverflowError, ValueError):
            return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def retry_policy(
    max_retries: int,
    *,
    backoff: float,
    retry_after_cap: float,
    on_retry: Callable[[BaseHTTPResponse | None], None] | None = None,
    on_attempt: Callable[[], None] | None = None,
) -> VerilockRetry:
    """The policy for one client: at most ``max_retries`` retries of an idempotent request,
    backoff factor ``backoff`` seconds (plus up to 0.5 s of jitter), ``Retry-After`` capped
    at ``retry_after_cap`` seconds. The last answer is returned, not raised, once retries are
    used up (the client maps its status to an error)."""
    return VerilockRetry(
        total=max_retries,
        connect=max_retries,
        read=max_retries,
        status=max_retries,
        redirect=0,
        other=0,
        allowed_methods=IDEMPOTENT_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff,
        backoff_max=BACKOFF_MAX,
        backoff_jitter=0.5 if backoff else 0.0,
        respect_retry_after_header=True,
        raise_on_status=False,
        retry_after_cap=retry_after_cap,
        on_retry=on_retry,
        on_attempt=on_attempt,
    )
