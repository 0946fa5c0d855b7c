"""How a failed HTTP exchange becomes a typed :class:`~verilock_django.exceptions.VerilockError`.

:func:`error_for` maps an error answer (status, the provider's error body, ``Retry-After``,
a 422's field messages) to its exception; :func:`transport_problem` names what happened to a
request that got no answer (refused, not resolved, TLS, proxy, timeout, connection lost).
Messages name the method, the path, the status and the provider's error code, never a
header (the key must not reach an error) and never the provider's free-text ``message``: it
may quote the applicant ("Applicant Jean Dupont is already verified"), and the sync logs and
stores every error's text. Only tokens that cannot carry personal data are kept: the status,
the error code when it has the shape of a machine code (:func:`error_code_or_none`), the
request id when it is a short identifier, and a 422's field names; a 422's field messages
stay on ``FieldValidationError.field_errors`` for the caller, out of the message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import (
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as TimeoutError_

from .conf import verilock_settings
from .exceptions import (
    ApiError,
    AuthenticationError,
    FieldValidationError,
    NotFoundError,
    PayloadError,
    RateLimitedError,
    ServerError,
    VerilockError,
)
from .retries import parse_retry_after
from .storable import parse_json_body


def parse_json_or_none(data: bytes) -> object:
    """An error body's JSON value, or ``None`` when it is not readable JSON (bounded by
    ``VERILOCK_MAX_JSON_DEPTH``, like every body the client reads)."""
    try:
        return parse_json_body(data, max_depth=verilock_settings.max_json_depth)
    except PayloadError:
        return None


_HOST_PATTERN: Final = re.compile(r"[A-Za-z0-9.:\[\]-]{1,253}")
#: What an error code, a request id or a field name must look like to reach a message: one
#: short token, no spaces, so no sentence (and no name or email address) fits in it.
_TOKEN_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}")


def identifier_or_none(value: object) -> str | None:
    """``value`` as a string when it is a short identifier token (``validation_error``,
    ``req_123``), else ``None``: free text never passes."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value)
    return text if _TOKEN_PATTERN.fullmatch(text) else None


#: A machine code made of words: lower-case words joined by ``_`` (``.`` may namespace them,
#: ``session.not_found``), or upper-case words joined by ``_`` (``RATE_LIMIT_EXCEEDED``).
_WORDS_CODE: Final = re.compile(r"[a-z][a-z0-9]*(?:[._][a-z0-9]+)+|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
#: A numeric code: at most 4 digits, too short for a date, a phone or a document number.
_NUMBER_CODE: Final = re.compile(r"[0-9]{1,4}")
#: Digits a words code may hold: four or more, in a row or split by ``_`` or ``.``, are a
#: year, a date, a phone or a document number, not a code.
_MAX_CODE_DIGITS: Final = 3
#: The one-word codes kept: HTTP status names (``conflict``, ``Unauthorized``, ``forbidden``).
_STATUS_WORDS: Final = frozenset(status.name.lower() for status in HTTPStatus)


def error_code_or_none(value: object) -> str | None:
    """``value`` (an error body's ``error``) as a string when it has the shape of a machine
    code, else ``None``: words joined by ``_`` in one case (``validation_error``,
    ``session.not_found``, ``RATE_LIMIT_EXCEEDED``), a number of at most 4 digits, or one
    word naming an HTTP status (``conflict``, ``Unauthorized``, ``forbidden``).

    A lone word could be a name (``Dupont``, ``dupont``, ``DUPONT``): the documented one-word
    codes are all HTTP status names, so only those pass. ``.`` alone does not make a code
    (``jean.dupont`` is an email's local part), nor does mixed case (``Jean_Dupont``); a
    lone word with digits may be a document number (``X1234567``), a longer number a date
    (``19900515``), and words holding four digits or more, in a row or not, a date, a phone
    or a document number joined to a name (``dupont_1990_05_15``, ``dupont_15_05_90``,
    ``FR_12AB34567``). What a name written ``jean_dupont`` would still pass cannot be told
    from a code by its shape.
    """
    code = identifier_or_none(value)
    if code is None:
        return None
    if _NUMBER_CODE.fullmatch(code) or code.lower() in _STATUS_WORDS:
        return code
    if sum(char.isdigit() for char in code) > _MAX_CODE_DIGITS:
        return None  # a date or a document number joined to a word (dupont_15_05_90)
    return code if _WORDS_CODE.fullmatch(code) and "_" in code else None


def status_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (never the server's own status line)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps (causes, contexts, urllib3 reasons, arguments)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None))
        stack.extend(e for e in (*linked, *current.args) if isinstance(e, BaseException))


def transport_problem(exc: BaseException, method: str, path: str, timeout: float) -> str:
    """What went wrong, in words, for an exception raised by requests/urllib3.

    Never the exception's own text: it can quote the URL, the headers or the body.
    """
    causes = list(exception_chain(exc))

    def seen(*kinds: type[BaseException]) -> bool:
        return any(isinstance(cause, kinds) for cause in causes)

    where = f"on {method} {path}"
    # urllib3 2 derives NewConnectionError (and NameResolutionError) from ConnectTimeoutError:
    # test for them before any timeout.
    if seen(NameResolutionError):
        return f"Could not resolve the API host {where}"
    if seen(ConnectionRefusedError):
        return f"Connection refused {where}"
    if seen(NewConnectionError):
        return f"Could not connect {where}"
    if seen(ProxyError, requests.exceptions.ProxyError):
        return f"Proxy error {where}"
    if seen(SSLError, requests.exceptions.SSLError):
        return f"TLS error {where}"
    if seen(TimeoutError_, TimeoutError, requests.exceptions.Timeout):
        return f"Timed out after {timeout:g}s {where}"
    if seen(ProtocolError, ConnectionError, requests.exceptions.ChunkedEncodingError):
        return f"Connection lost {where}"
    if seen(MaxRetryError, requests.exceptions.RetryError):
        return f"Gave up {where} after retries"
    # Only the class name: the exception's text can carry the URL or a header value.
    return f"{type(exc).__name__} {where}"


def location_host(location: str | None) -> str:
    """The host a ``Location`` header names, for a message (never its path or query)."""
    if not location:
        return "no location"
    try:
        host = urlsplit(location.strip()).hostname
    except ValueError:
        host = None
    if host is None:
        return "a path on the same host" if location.strip().startswith("/") else "a bad URL"
    return host if _HOST_PATTERN.fullmatch(host) else "an unreadable host"


def error_for(
    response: requests.Response,
    method: str,
    path: str,
    data: bytes | None,
    context: dict[str, Any],
) -> VerilockError:
    """The typed exception for an error answer (see the module docstring for what it keeps).

    ``context`` holds ``status_code``, ``request_id`` (already reduced to a token by the
    client) and ``session_id``.
    """
    status: int = context["status_code"]
    body = None if data is None else parse_json_or_none(data)
    error_code = error_code_or_none(body.get("error")) if isinstance(body, dict) else None
    message = f"{method} {path}: {status_phrase(status)}"
    kwargs: dict[str, Any] = {**context, "error_code": error_code}
    if status in (401, 403):
        return AuthenticationError(message, **kwargs)
    if status == 404:
        return NotFoundError(message, **kwargs)
    if status == 429:
        return RateLimitedError(message, retry_after=retry_after_of(response, body), **kwargs)
    if status >= 500:
        return ServerError(message, **kwargs)
    if status == 422:
        fields = field_errors(body)
        named = [name for name in fields if identifier_or_none(name)]
        if named:
            message = f"{message} (fields refused: {', '.join(named)})"
        return FieldValidationError(message, field_errors=fields, **kwargs)
    return ApiError(message, **kwargs)


def field_errors(body: object) -> dict[str, list[str]]:
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


def retry_after_of(response: requests.Response, body: object) -> float | None:
    seconds = parse_retry_after(response.headers.get("Retry-After"))
    if seconds is None and isinstance(body, dict) and isinstance(body.get("details"), dict):
        advice = body["details"].get("retry_after")
        if isinstance(advice, (int, float, str)) and not isinstance(advice, bool):
            seconds = parse_retry_after(str(advice))
    return seconds
