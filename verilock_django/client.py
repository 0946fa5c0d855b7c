"""HTTP client for the Verilock REST API (requests only; no ORM here).

Each thread gets its own pooled ``requests.Session``. What the client guarantees:

* **Deadline.** One HTTP attempt -- connecting, waiting for the answer and reading the whole
  body -- takes at most ``VERILOCK_TIMEOUT`` seconds: the body is streamed and abandoned at
  the deadline, so a server trickling bytes cannot hold a fetch. At most
  ``VERILOCK_MAX_RESPONSE_BYTES`` of body (after decompression) are read.
* **Redirects are not followed.** A 3xx is an :class:`~verilock_django.exceptions.ApiError`
  naming the host it pointed to, so the key is never sent to another host or over plain HTTP.
* **Retries** follow :mod:`verilock_django.retries` (GET only; ``Retry-After`` in any form,
  capped by ``VERILOCK_RETRY_AFTER_MAX``).
* **The rate limit.** Every attempt, retries included, waits for a slot in a rate-limit
  window (:mod:`verilock_django.ratelimit`) paced by the API's own rate-limit headers, shared
  by the client's threads or, with ``VERILOCK_RATE_LIMIT_REDIS_URL``, by every process.
* **Typed errors.** Every failure is a :class:`~verilock_django.exceptions.VerilockError`
  saying what happened (connection refused, host not resolved, TLS, timeout, connection
  lost). It is raised with no library exception chained to it: those carry the request with
  its headers.
* **The key stays private.** It is never part of a message or repr, and no local variable
  holding it is on the traceback of an error the client raises (Django's debug page lists
  them); the functions that hold it are marked with ``sensitive_variables`` for error reports.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from typing import Any, Final
from urllib.parse import quote

import requests
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3 import BaseHTTPResponse, Timeout
from urllib3.exceptions import (
    HTTPError,
)

from . import __version__
from .conf import API_KEY, InvalidSetting, verilock_settings
from .exceptions import (
    ApiError,
    InvalidResponseError,
    PayloadError,
    TransportError,
    VerilockConfigurationError,
)
from .http_errors import error_for, identifier_or_none, location_host, transport_problem
from .payloads import parse_session_id
from .ratelimit import DEFAULT_PER_MINUTE, LocalWindow, RedisWindow, Window, announced
from .retries import retry_policy
from .storable import parse_json_body

logger = logging.getLogger(__name__)

USER_AGENT = f"verilock-django/{__version__}"
#: Bytes asked for per read of a streamed body (a read returns what has arrived, up to this).
_CHUNK_SIZE: Final = 64 * 1024


#: Headers of every request but the key's (see :class:`KeyAuth`).
BASE_HEADERS: Final = {"Accept": "application/json", "User-Agent": USER_AGENT}


class KeyAuth(AuthBase):
    """Puts the API key's headers (``Authorization: Bearer …`` and/or ``X-API-Key``) on a
    request, as requests' authentication hook.

    Given as ``auth``, it also keeps requests from reading ``~/.netrc`` on every request,
    whose entry for the API's host would replace the ``Authorization`` header. Its repr
    never shows the key.
    """

    __slots__ = ("_headers",)

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


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
        """Fetch one session object (``GET /sessions/{id}``).

        ``session_id`` is normalised first (surrounding whitespace dropped); an id that would
        change the request path (``"."``, ``".."``, ``"a/b"`` …) raises
        :class:`~verilock_django.exceptions.PayloadError` and nothing is sent.
        """
        session_id = parse_session_id(session_id, "session_id")
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
            retry = retry_policy(
                max_retries,
                backoff=backoff,
                retry_after_cap=retry_after_cap,
                on_retry=self._before_send,
                on_attempt=self._start_attempt,
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

    def _start_attempt(self) -> None:
        """Note when the current attempt of this thread's request started (its deadline)."""
        self._local.attempt_started = time.monotonic()

    @sensitive_variables("key", "headers")
    def _auth(self) -> KeyAuth:
        if self._api_key is None:
            key = verilock_settings.api_key
        else:
            try:
                key = API_KEY.parse(self._api_key)
            except InvalidSetting as exc:
                problem = exc.problem
            else:
                problem = ""
            if problem:
                raise VerilockConfigurationError(f"The api_key of VerilockClient {problem}.")
        if not key:
            raise VerilockConfigurationError(
                "VERILOCK_API_KEY is not set: the app cannot call the Verilock API."
            )
        style = self._auth_header or verilock_settings.auth_header
        headers = {}
        if style in ("both", "bearer"):
            headers["Authorization"] = f"Bearer {key}"
        if style in ("both", "x-api-key"):
            headers["X-API-Key"] = key
        return KeyAuth(headers)

    @sensitive_variables()
    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str | int] | None,
        timeout: float,
        session_id: str | None,
        json_body: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> requests.Response | TransportError:
        """Send one request (retries included); the response, or the error to raise.

        The error is returned, not raised, so that neither this frame's locals (the headers)
        nor the library's exception (its request holds the headers) reach the traceback.
        """
        auth = self._auth()
        self._before_send()
        self._start_attempt()
        try:
            return self._http().request(
                method,
                f"{self.api_url}{path}",
                params=params,
                json=json_body,
                headers={**BASE_HEADERS, **(extra_headers or {})},
                auth=auth,
                # A total: connecting and waiting for the answer share one budget.
                timeout=Timeout(total=timeout),  # type: ignore[arg-type]
                allow_redirects=False,
                stream=True,
            )
        except VerilockConfigurationError:
            raise  # a bad setting (names it, never its value): every request would fail alike
        except Exception as exc:  # anything raised in flight may hold the key
            return TransportError(
                transport_problem(exc, method, path, timeout), session_id=session_id
            )

    @sensitive_variables("data", "body")
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
        timeout = self._timeout if self._timeout is not None else verilock_settings.timeout
        limit = verilock_settings.max_response_bytes
        response = self._send(method, path, params, timeout, session_id, json_body, extra_headers)
        if isinstance(response, TransportError):
            raise response
        self._observe(response.headers)
        try:
            status = response.status_code
            # Kept only as a short token: a header is the server's free text too.
            request_id = identifier_or_none(response.headers.get("X-Request-Id"))
            logger.debug("%s %s -> %s (request id %s)", method, path, status, request_id)
            context: dict[str, Any] = {
                "status_code": status,
                "request_id": request_id,
                "session_id": session_id,
            }
            if 300 <= status < 400:
                raise ApiError(
                    f"{method} {path}: the API redirected to "
                    f"{location_host(response.headers.get('Location'))}; redirects are not "
                    "followed (is VERILOCK_API_URL right?)",
                    **context,
                )
            deadline = self._local.attempt_started + timeout
            data = self._read_body(response, method, path, deadline, limit, timeout, session_id)
        finally:
            response.close()
        if status >= 400:
            raise error_for(response, method, path, data, context)
        if data is None:
            raise InvalidResponseError(
                f"{method} {path} answered a body larger than VERILOCK_MAX_RESPONSE_BYTES "
                f"({limit} bytes)",
                **context,
            )
        try:
            body = parse_json_body(data, max_depth=verilock_settings.max_json_depth)
        except PayloadError:
            raise InvalidResponseError(
                f"{method} {path} answered {status} with a body that is not JSON (or is "
                "nested too deeply to read)",
                **context,
            ) from None
        if not isinstance(body, dict):
            raise InvalidResponseError(
                f"{method} {path} answered a JSON {type(body).__name__}, expected an object",
                **context,
            )
        return body

    def _read_body(
        self,
        response: requests.Response,
        method: str,
        path: str,
        deadline: float,
        limit: int,
        timeout: float,
        session_id: str | None,
    ) -> bytes | None:
        """The body, read by chunks until ``deadline`` (a monotonic time); ``None`` when it
        is larger than ``limit`` bytes (reading stops there).

        :raises TransportError: the deadline passed, or the connection failed mid-body.
        """
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            return None
        raw = response.raw
        sock = getattr(raw.connection, "sock", None)
        size = 0
        chunks: list[bytes] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransportError(
                    f"Timed out after {timeout:g}s on {method} {path} (the body was still "
                    "arriving)",
                    session_id=session_id,
                )
            try:
                if sock is not None:
                    # No single read may wait past the deadline.
                    sock.settimeout(remaining)
                chunk = raw.read1(_CHUNK_SIZE, decode_content=True)
            except (HTTPError, OSError, ValueError) as exc:
                problem = transport_problem(exc, method, path, timeout)
            else:
                problem = ""
            if problem:
                # Raised here, outside the handler: nothing chains the library's exception.
                raise TransportError(problem, session_id=session_id)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)


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
