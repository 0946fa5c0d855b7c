"""The fake Verilock API in-process, on top of ``responses`` (a test-only dependency).

Every ``requests`` call to the configured base URL is answered by
:meth:`FakeVerilock.handle` — the same code the loopback server runs — and any other
``requests`` call fails with ``ConnectionError`` so a forgotten stub is loud::

    with InProcessVerilock(base_url="https://verilock.test/api/v1", api_key="k") as api:
        session = api.add_session(status="processing")
        ...
        api.complete(session.id, "approved")
        assert api.requests_for(session.id) == 1
"""

from __future__ import annotations

import re
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from .fake import FakeVerilock

if TYPE_CHECKING:
    import responses
    from requests import PreparedRequest

__all__ = ["DEFAULT_API_URL", "InProcessVerilock", "django_verilock_settings"]

DEFAULT_API_URL: Final = "https://verilock.io/api/v1"
_METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


def django_verilock_settings() -> tuple[str | None, str | None]:
    """Return ``(VERILOCK_API_URL, VERILOCK_API_KEY)`` from Django settings, if any.

    Returns ``(None, None)`` when Django is not installed or not configured, so the
    testing kit also works in a plain pytest run.
    """
    try:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        return None, None
    try:
        url = getattr(settings, "VERILOCK_API_URL", None)
        key = getattr(settings, "VERILOCK_API_KEY", None)
    except ImproperlyConfigured:
        return None, None
    return (str(url) if url else None), (str(key) if key else None)


class InProcessVerilock(FakeVerilock):
    """A :class:`FakeVerilock` that answers ``requests`` calls to ``base_url`` in-process.

    All of the account API (``add_session``, ``complete``, ``fail_next``,
    ``requests_for``, ``total_requests`` …) is available directly on this object.
    """

    def __init__(
        self, *, base_url: str = DEFAULT_API_URL, api_key: str | None = None, **options: Any
    ) -> None:
        super().__init__(api_key=api_key, **options)
        self.base_url = base_url.rstrip("/")
        self._base_path = urlsplit(self.base_url).path
        self._mock: responses.RequestsMock | None = None

    @classmethod
    def from_settings(cls, **options: Any) -> InProcessVerilock:
        """Build one from Django's ``VERILOCK_API_URL`` and ``VERILOCK_API_KEY`` settings.

        Without configured Django settings the documented defaults apply (any key accepted).
        """
        url, key = django_verilock_settings()
        options.setdefault("base_url", url or DEFAULT_API_URL)
        options.setdefault("api_key", key)
        return cls(**options)

    @property
    def state(self) -> FakeVerilock:
        """This object itself, for symmetry with ``FakeVerilockServer.state``."""
        return self

    @property
    def url(self) -> str:
        """The mocked API base URL."""
        return self.base_url

    @property
    def mock(self) -> responses.RequestsMock:
        """The active ``responses.RequestsMock``, to add stubs for other hosts."""
        if self._mock is None:
            raise RuntimeError("The in-process Verilock API is not started.")
        return self._mock

    def start(self) -> InProcessVerilock:
        """Start intercepting ``requests``; returns ``self``."""
        import responses

        if self._mock is not None:
            raise RuntimeError("The in-process Verilock API is already started.")
        # Unmatched URLs raise ConnectionError; we never assert that stubs were used,
        # because the fake answers everything under the base URL.
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        pattern = re.compile(re.escape(self.base_url) + r"(?:[/?].*)?$")
        for method in _METHODS:
            mock.add_callback(method, pattern, callback=self._callback)
        mock.start()
        self._mock = mock
        return self

    def stop(self) -> None:
        """Stop intercepting and flush webhook deliveries."""
        if self._mock is not None:
            self._mock.stop()
            self._mock.reset()
            self._mock = None
        self.close()

    def _callback(self, request: PreparedRequest) -> tuple[int, dict[str, str], bytes] | Exception:
        import requests

        parts = urlsplit(request.url or "")
        path = (
            parts.path[len(self._base_path) :]
            if parts.path.startswith(self._base_path)
            else parts.path
        )
        raw_body = request.body or b""
        body = raw_body.encode() if isinstance(raw_body, str) else raw_body
        response = self.handle(
            request.method or "GET", path or "/", parts.query, dict(request.headers), body
        )
        if response.fault == "timeout":
            return requests.exceptions.ReadTimeout(
                f"Fake Verilock did not answer {request.method} {parts.path} (timeout fault).",
                request=request,
            )
        if response.fault == "reset":
            return requests.exceptions.ConnectionError(
                ConnectionResetError(104, "Connection reset by peer (fake Verilock reset fault)"),
                request=request,
            )
        return response.status, response.headers, response.body

    def __enter__(self) -> InProcessVerilock:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
