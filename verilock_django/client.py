"""HTTP client for the Verilock REST API (requests only; no ORM here).

Each thread gets its own pooled ``requests.Session``; every call has a timeout; idempotent
requests are retried by urllib3's ``Retry`` (429, 5xx, connection errors; jittered
exponential backoff capped at ``BACKOFF_MAX``, ``Retry-After`` honoured up to
``VERILOCK_RETRY_AFTER_MAX``); a POST is never sent twice. An optional client-side limit
(``VERILOCK_RATE_LIMIT_PER_MINUTE``) is shared by every thread using the client and counts
retries too. Every failure becomes a typed :class:`~verilock_django.exceptions.VerilockError`.
The API key is never part of a message or repr.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, ProtocolError
from urllib3.exceptions import TimeoutError as TimeoutError_
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from . import __version__
from .conf import verilock_settings
from .exceptions import (
    ApiError,
    AuthenticationError,
    FieldValidationError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    VerilockConfigurationError,
    VerilockError,
)

logger = logging.getLogger(__name__)

USER_AGENT = f"verilock-django/{__version__}"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest exponential backoff between two attempts, in seconds.
BACKOFF_MAX = 8.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})


class RateLimiter:
    """At most ``per_minute`` requests in any 60-second window, shared by threads.

    A sliding window rather than a token bucket: a bucket lets a full burst through on top
    of the steady rate, so a run could exceed the account's per-minute quota.
    """

    WINDOW = 60.0

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until one more request fits in the window; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.WINDOW:
                    self._sent.popleft()
                if len(self._sent) < self.per_minute:
                    self._sent.append(now)
                    return waited
                delay = self._sent[0] + self.WINDOW - now
            time.sleep(delay)
            waited += delay


class _Retry(Retry):
    """urllib3's ``Retry`` with a cap on ``Retry-After``, no POST replay, and a retry hook.

    ``on_retry`` runs before each new attempt (to count it and respect the rate limit).
    """

    def __init__(
        self,
        *args: Any,
        retry_after_cap: float = 30.0,
        on_retry: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after_cap = retry_after_cap
        self.on_retry = on_retry

    def new(self, **kw: Any) -> _Retry:
        retry = super().new(**kw)
        retry.retry_after_cap = self.retry_after_cap
        retry.on_retry = self.on_retry
        return retry

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        # A huge (or far-future date) Retry-After would otherwise stall a whole run.
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.retry_after_cap)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> _Retry:
        if error is not None and method is not None and not self._is_method_retryable(method):
            # urllib3 replays any method after a connect error; a POST is never sent twice.
            raise error
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if self.on_retry is not None:
            self.on_retry()
        return retry


class VerilockClient:
    """A client for one API key and base URL (by default, read from settings per call)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        api_url: str | None = None,
        timeout: float | None = None,
        auth_header: str | None = None,
        max_retries: int | None = None,
    ) -> None:
        self._api_key = api_key
        self._api_url = api_url
        self._timeout = timeout
        self._auth_header = auth_header
        self._max_retries = max_retries
        self._local = threading.local()
        #: HTTP requests sent by this client, retries included.
        self.request_count = 0
        self._count_lock = threading.Lock()
        self._limiter: RateLimiter | None = None

    def __repr__(self) -> str:
        return f"<VerilockClient {self.api_url}>"

    @property
    def api_url(self) -> str:
        return (self._api_url or verilock_settings.api_url).rstrip("/")

    def get_session(self, session_id: str) -> dict[str, Any]:
        """Fetch one session object (``GET /sessions/{id}``)."""
        return self._request(
            "GET", f"/sessions/{quote(session_id, safe='')}", session_id=session_id
        )

    def list_sessions(
        self,
        *,
        page: int = 1,
        per_page: int = 100,
        status: str | None = None,
        created_from: str | None = None,
        created_to: str | None = None,
    ) -> dict[str, Any]:
        """Fetch one page of ``GET /sessions``: ``{"data": [...], "meta": {...}}``."""
        params: dict[str, str | int] = {"page": page, "per_page": per_page}
        if status:
            params["status"] = status
        if created_from:
            params["from"] = created_from
        if created_to:
            params["to"] = created_to
        return self._request("GET", "/sessions", params=params)

    def create_session(
        self, body: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Create a session (``POST /sessions``); returns the created session object.

        Sent once, never retried (the API does not document ``POST`` as idempotent).
        ``idempotency_key`` is sent as ``Idempotency-Key`` (the SDK's header; whether Verilock
        honours it is undocumented), so a caller may resend the same request under the same
        key. Raises :class:`~verilock_django.exceptions.FieldValidationError` on 422.
        """
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._request("POST", "/sessions", json_body=body, extra_headers=headers)

    # -- internals -------------------------------------------------------------------

    def _http(self) -> requests.Session:
        max_retries = (
            self._max_retries if self._max_retries is not None else verilock_settings.max_retries
        )
        backoff = verilock_settings.retry_backoff
        retry_after_cap = verilock_settings.retry_after_max
        # One pooled session per thread and retry policy, so a settings override in a test
        # takes effect while connections stay reused across calls.
        key = (max_retries, backoff, retry_after_cap)
        sessions: dict[tuple[int, float, float], requests.Session] = (
            self._local.__dict__.setdefault("sessions", {})
        )
        http = sessions.get(key)
        if http is None:
            retry = _Retry(
                total=max_retries,
                connect=max_retries,
                read=max_retries,
                status=max_retries,
                other=0,
                allowed_methods=IDEMPOTENT_METHODS,
                status_forcelist=RETRY_STATUSES,
                backoff_factor=backoff,
                backoff_max=BACKOFF_MAX,
                backoff_jitter=0.5 if backoff else 0.0,
                respect_retry_after_header=True,
                raise_on_status=False,
                retry_after_cap=retry_after_cap,
                on_retry=self._before_send,
            )
            # Each thread has its own session, so one connection per pool suffices.
            adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=1)
            http = requests.Session()
            http.mount("https://", adapter)
            http.mount("http://", adapter)
            sessions[key] = http
        return http

    def _before_send(self) -> None:
        """Count one HTTP attempt and wait for the rate limit, if one is set."""
        limit = verilock_settings.rate_limit_per_minute
        with self._count_lock:
            self.request_count += 1
            if not limit:
                self._limiter = None
            elif self._limiter is None or self._limiter.per_minute != limit:
                self._limiter = RateLimiter(limit)
            limiter = self._limiter
        if limiter is not None:
            waited = limiter.acquire()
            if waited:
                logger.debug("Waited %.1fs for the client-side rate limit", waited)

    def _headers(self) -> dict[str, str]:
        key = self._api_key if self._api_key is not None else verilock_settings.api_key
        if not key:
            raise VerilockConfigurationError(
                "VERILOCK_API_KEY is not set: the app cannot call the Verilock API."
            )
        style = self._auth_header or verilock_settings.auth_header
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if style in ("both", "bearer"):
            headers["Authorization"] = f"Bearer {key}"
        if style in ("both", "x-api-key"):
            headers["X-API-Key"] = key
        return headers

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        session_id: str | None = None,
        json_body: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        url = f"{self.api_url}{path}"
        timeout = self._timeout if self._timeout is not None else verilock_settings.timeout
        headers = {**self._headers(), **(extra_headers or {})}
        self._before_send()
        try:
            response = self._http().request(
                method, url, params=params, json=json_body, headers=headers, timeout=timeout
            )
        except requests.exceptions.RetryError as exc:
            raise TransportError(
                f"Gave up on {method} {path} after retries", session_id=session_id
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise TransportError(
                f"Timed out after {timeout:g}s on {method} {path}", session_id=session_id
            ) from exc
        except requests.exceptions.RequestException as exc:
            # Once retries are used up, requests reports a read timeout or a reset as a
            # ConnectionError wrapping urllib3's MaxRetryError: name the real cause.
            reason = exc.args[0] if exc.args else None
            reason = reason.reason if isinstance(reason, MaxRetryError) else reason
            if isinstance(reason, TimeoutError_):
                message = f"Timed out after {timeout:g}s on {method} {path}"
            elif isinstance(reason, ProtocolError):
                message = f"Connection lost on {method} {path}"
            else:
                # Only the class name: the exception's text can carry the URL.
                message = f"{type(exc).__name__} on {method} {path}"
            raise TransportError(message, session_id=session_id) from exc
        request_id = response.headers.get("X-Request-Id")
        logger.debug("%s %s -> %s (request id %s)", method, path, response.status_code, request_id)
        if response.status_code >= 400:
            raise _error_for(response, method, path, session_id, request_id)
        try:
            body = response.json()
        except ValueError as exc:
            raise InvalidResponseError(
                f"{method} {path} answered {response.status_code} with a body that is not JSON",
                status_code=response.status_code,
                request_id=request_id,
                session_id=session_id,
            ) from exc
        if not isinstance(body, dict):
            raise InvalidResponseError(
                f"{method} {path} answered a JSON {type(body).__name__}, expected an object",
                status_code=response.status_code,
                request_id=request_id,
                session_id=session_id,
            )
        return body


def _error_for(
    response: requests.Response,
    method: str,
    path: str,
    session_id: str | None,
    request_id: str | None,
) -> VerilockError:
    status = response.status_code
    error_code: str | None = None
    detail = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error_code = str(body["error"]) if body.get("error") else None
        detail = str(body.get("message") or "")
    reason = detail or response.reason or "error"
    message = f"{method} {path}: {reason}"
    kwargs: dict[str, Any] = {
        "status_code": status,
        "error_code": error_code,
        "request_id": request_id,
        "session_id": session_id,
    }
    if status in (401, 403):
        return AuthenticationError(message, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status == 429:
        return RateLimitedError(message, retry_after=_retry_after(response, body), **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    if status == 422:
        fields = _field_errors(body)
        if fields:
            listed = "; ".join(f"{name}: {' '.join(texts)}" for name, texts in fields.items())
            message = f"{message} ({listed})"
        return FieldValidationError(message, field_errors=fields, **kwargs)
    return ApiError(message, **kwargs)


def _field_errors(body: object) -> dict[str, list[str]]:
    """A 422 body's field messages: ``details`` as documented, else the SDK's ``errors``."""
    if not isinstance(body, dict):
        return {}
    for key in ("details", "errors"):
        found = body.get(key)
        if isinstance(found, dict) and found:
            return {
                str(name): [str(text) for text in texts]
                if isinstance(texts, list)
                else [str(texts)]
                for name, texts in found.items()
            }
    return {}


def _retry_after(response: requests.Response, body: object) -> float | None:
    candidates: list[object] = [response.headers.get("Retry-After")]
    if isinstance(body, dict) and isinstance(body.get("details"), dict):
        candidates.append(body["details"].get("retry_after"))
    for value in candidates:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
    return None


_default_client: VerilockClient | None = None
_default_lock = threading.Lock()


def get_client() -> VerilockClient:
    """The shared client, reading its settings at each call (so test overrides apply)."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = VerilockClient()
        return _default_client
