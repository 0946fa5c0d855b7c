"""HTTP client for the Verilock REST API (requests only; no ORM here).

Each thread gets its own pooled ``requests.Session``; every call has a timeout; idempotent
requests are retried by urllib3's ``Retry`` (429, 5xx, connection errors; jittered
exponential backoff capped at ``BACKOFF_MAX``, ``Retry-After`` honoured up to
``VERILOCK_RETRY_AFTER_MAX``); a POST is never sent twice. Every attempt, retries included,
waits for a slot in a rate-limit window (:mod:`verilock_django.ratelimit`) paced by the
API's own rate-limit headers, shared by the client's threads or, with
``VERILOCK_RATE_LIMIT_REDIS_URL``, by every process. Every failure becomes a typed
:class:`~verilock_django.exceptions.VerilockError`.
The API key is never part of a message or repr.
"""

from __future__ import annotations

import hashlib
import logging
import threading
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
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    VerilockConfigurationError,
    VerilockError,
)
from .ratelimit import DEFAULT_PER_MINUTE, LocalWindow, RedisWindow, Window, announced

logger = logging.getLogger(__name__)

USER_AGENT = f"verilock-django/{__version__}"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Longest exponential backoff between two attempts, in seconds.
BACKOFF_MAX = 8.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})


class _Retry(Retry):
    """urllib3's ``Retry`` with a cap on ``Retry-After``, no POST replay, and a retry hook.

    ``on_retry(response)`` runs before each new attempt with the answer that failed, if any
    (to count it, learn from its rate-limit headers and respect the rate limit).
    """

    def __init__(
        self,
        *args: Any,
        retry_after_cap: float = 30.0,
        on_retry: Callable[[BaseHTTPResponse | None], None] | None = None,
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

    def sleep_for_retry(self, response: BaseHTTPResponse) -> bool:
        # on_retry already held this attempt (and everyone sharing the rate-limit window)
        # for the Retry-After; sleeping it again here would double the wait.
        return self.get_retry_after(response) is not None

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
            self.on_retry(response)
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
        window: Window | None = None,
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
        self._window = window or LocalWindow()
        #: What ``X-RateLimit-Limit`` last said (requests per minute), if it said anything.
        self.announced_limit: int | None = None

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

    def _before_send(self, failed: BaseHTTPResponse | None = None) -> None:
        """Count one HTTP attempt and wait for a slot in the rate-limit window."""
        if failed is not None:
            self._observe(failed.headers)
        with self._count_lock:
            self.request_count += 1
        waited = self._shared_window().acquire(self.rate_limit)
        if waited:
            logger.debug("Waited %.1fs for the rate limit", waited)

    @property
    def rate_limit(self) -> int:
        """Requests per minute this client paces to: ``VERILOCK_RATE_LIMIT_PER_MINUTE``
        and what the API announced (the lower of the two), else the documented 120."""
        configured, seen = verilock_settings.rate_limit_per_minute, self.announced_limit
        if seen is None:  # a new process: what the API told the others sharing the window
            seen = self.announced_limit = self._shared_window().known_limit()
        if configured and seen:
            return min(configured, seen)
        return configured or seen or DEFAULT_PER_MINUTE

    def _observe(self, headers: Any) -> None:
        limit, remaining, retry_after = announced(headers)
        if limit and limit != self.announced_limit:
            self.announced_limit = limit
            self._shared_window().remember_limit(limit)
        if retry_after:
            retry_after = min(retry_after, verilock_settings.retry_after_max)
        elif remaining is None or not limit:
            return
        self._shared_window().observe(
            min(limit or self.rate_limit, self.rate_limit), remaining, retry_after
        )

    def _shared_window(self) -> Window:
        url = verilock_settings.rate_limit_redis_url
        if not url:
            return self._window
        # The quota is per API key: one window per key, named by a digest (never the key).
        key = self._api_key if self._api_key is not None else verilock_settings.api_key
        return _redis_window(url, hashlib.sha256(key.encode()).hexdigest()[:16])

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
    ) -> dict[str, Any]:
        url = f"{self.api_url}{path}"
        timeout = self._timeout if self._timeout is not None else verilock_settings.timeout
        headers = self._headers()
        self._before_send()
        try:
            response = self._http().request(
                method, url, params=params, headers=headers, timeout=timeout
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
        self._observe(response.headers)
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
    return ApiError(message, **kwargs)


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


_redis_windows: dict[tuple[str, str], RedisWindow] = {}


def _redis_window(url: str, scope: str) -> RedisWindow:
    with _default_lock:
        window = _redis_windows.get((url, scope))
        if window is None:
            window = _redis_windows[url, scope] = RedisWindow(url, scope)
        return window


def get_client() -> VerilockClient:
    """The shared client, reading its settings at each call (so test overrides apply)."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = VerilockClient()
        return _default_client
