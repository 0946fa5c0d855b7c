"""Exceptions raised by the client, the payload parser and the sync service.

Runtime failures derive from :class:`VerilockError`; a misconfiguration raises
:class:`VerilockConfigurationError`, a subclass of Django's ``ImproperlyConfigured``, so a
per-session ``except VerilockError`` in a batch can never hide it.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.utils import InterfaceError, OperationalError


class VerilockConfigurationError(ImproperlyConfigured):
    """The app's settings cannot work (for example, no API key)."""


class VerilockError(Exception):
    """Base class for every runtime failure talking to Verilock or reading its data."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        request_id: str | None = None,
        session_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_code = error_code
        self.request_id = request_id
        self.session_id = session_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        if self.error_code:
            parts.append(f"error={self.error_code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ApiError(VerilockError):
    """The API answered with an error status that has no narrower class (400, 402, 409, 422…)."""


class FieldValidationError(ApiError):
    """The API refused a request's fields (422).

    ``field_errors`` maps each field to the provider's messages (read from ``details`` as
    documented, else from ``errors`` as the SDK expects); they are also in the message.
    """

    def __init__(
        self, message: str, *, field_errors: dict[str, list[str]] | None = None, **kwargs: object
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.field_errors = field_errors or {}


class CreateOutcomeUnknownError(VerilockError):
    """``POST /sessions`` got no usable answer (timeout, lost connection, 5xx, garbled body).

    Verilock may or may not have created the session; nothing was stored locally. ``cause``
    is the underlying error. Reconcile with ``sync_verilock_sessions --discover``.
    """

    def __init__(self, message: str, *, cause: VerilockError, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.cause = cause


class AuthenticationError(ApiError):
    """The API key was refused (401) or lacks permission (403): every call will fail alike."""


class NotFoundError(ApiError):
    """The session does not exist at Verilock (404)."""


class RateLimitedError(ApiError):
    """Too many requests (429); ``retry_after`` holds the server's advice in seconds."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, **kwargs: object
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(ApiError):
    """Verilock failed (5xx)."""


class TransportError(VerilockError):
    """The request never got an HTTP answer: timeout, refused or reset connection, TLS."""


class InvalidResponseError(VerilockError):
    """The API answered 2xx with a body that is not a JSON object."""


class PayloadError(VerilockError):
    """A session payload cannot be used; ``field`` names the offending field."""

    def __init__(self, field: str, problem: str, *, session_id: str | None = None) -> None:
        super().__init__(f"Invalid session payload: {field}: {problem}", session_id=session_id)
        self.field = field
        self.problem = problem


class StorageError(VerilockError):
    """A payload could not be written to the database (the row is left as it was).

    The message never quotes the database's own text, which may contain payload values.
    """


class ErasedSessionError(VerilockError):
    """The session was erased on request; its tombstone keeps it from being stored again."""


class ErasureRefused(Exception):
    """Raised by an ``erasure_requested`` receiver to veto an erasure (e.g. AML retention).

    Not a :class:`VerilockError`: it is the host's decision, not a failure; its message is
    shown to whoever asked for the erasure.
    """


def describe_failure(exc: BaseException) -> str:
    """A one-line description of ``exc`` that is safe to store, log and print.

    This app's own errors and configuration errors are written not to hold secrets or
    applicant data and are kept as they are. A database's operational error (a lock, a lost
    connection) keeps the first line of its text, which describes the database's state. Any
    other exception (a data or integrity error quoting the offending JSON, a bug) is reduced
    to its type: its text may hold payload values.
    """
    if isinstance(exc, (VerilockError, ImproperlyConfigured)):
        return str(exc)
    if isinstance(exc, (OperationalError, InterfaceError)):
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first_line[:200]}"
    return f"{type(exc).__name__} (its message is withheld: it may quote payload data)"
