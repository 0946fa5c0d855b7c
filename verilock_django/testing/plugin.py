"""pytest plugin (entry point ``pytest11: verilock``): fixtures for the fake Verilock API.

Installed automatically with the package; no configuration needed:

* ``verilock_api`` — the in-process fake (:class:`InProcessVerilock`), intercepting
  ``requests`` for the test; any other HTTP call made with ``requests`` fails loudly.
* ``verilock_server`` — the fake on a loopback port (:class:`FakeVerilockServer`); when
  Django is configured, ``settings.VERILOCK_API_URL`` points at it for the test.

Both read ``VERILOCK_API_URL``/``VERILOCK_API_KEY`` from Django settings when Django is
configured. A host project with no ``VERILOCK_API_KEY`` gets :data:`FAKE_API_KEY` for the
test (through pytest-django's ``settings`` fixture, or ``override_settings`` without it),
so the app's client has a key and the fake accepts it. Options for one test:
``@pytest.mark.verilock(shape="b", latency_ms=20)`` (any :class:`FakeVerilock` keyword;
``shape`` is ``default_shape``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from .responses_api import InProcessVerilock
    from .server import FakeVerilockServer

__all__ = ["FAKE_API_KEY", "pytest_configure", "verilock_api", "verilock_server"]

#: The key the fixtures put in ``VERILOCK_API_KEY`` when the host project sets none.
FAKE_API_KEY: Final = "qi_test_verilock_fake"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``verilock`` marker (the suite may run with ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        "verilock(**options): options for the verilock_api/verilock_server fakes, "
        "e.g. shape='b', latency_ms=50, rate_limit_per_minute=5.",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    # Closest marker last, so a test's marker overrides its class's and module's.
    for marker in reversed(list(request.node.iter_markers("verilock"))):
        options.update(marker.kwargs)
    if "shape" in options:
        options["default_shape"] = options.pop("shape")
    return options


def _django_configured() -> bool:
    try:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured
    except ImportError:
        return False
    try:
        settings.INSTALLED_APPS  # noqa: B018 - configures from DJANGO_SETTINGS_MODULE if set
    except ImproperlyConfigured:
        return False
    return True


def _set_for_test(request: pytest.FixtureRequest, stack: ExitStack, **values: str) -> None:
    """Set Django settings for this test only; does nothing when Django is not configured."""
    if not values or not _django_configured():
        return
    try:
        settings = request.getfixturevalue("settings")
    except pytest.FixtureLookupError:  # pytest-django is not installed
        from django.test import override_settings

        stack.enter_context(override_settings(**values))
        return
    for name, value in values.items():
        setattr(settings, name, value)


def _supply_key(request: pytest.FixtureRequest, stack: ExitStack) -> None:
    from .responses_api import django_verilock_settings

    if _django_configured() and django_verilock_settings()[1] is None:
        _set_for_test(request, stack, VERILOCK_API_KEY=FAKE_API_KEY)


@pytest.fixture
def verilock_api(request: pytest.FixtureRequest) -> Iterator[InProcessVerilock]:
    """The in-process fake Verilock API, active for this test."""
    # Imported here: `responses` is a test extra, and plain pytest runs must not need it.
    from .responses_api import InProcessVerilock

    with ExitStack() as stack:
        _supply_key(request, stack)
        with InProcessVerilock.from_settings(**_options(request)) as api:
            yield api


@pytest.fixture
def verilock_server(request: pytest.FixtureRequest) -> Iterator[FakeVerilockServer]:
    """The fake Verilock API on a loopback port, stopped after the test."""
    from .responses_api import django_verilock_settings
    from .server import FakeVerilockServer

    with ExitStack() as stack:
        _supply_key(request, stack)
        options = _options(request)
        options.setdefault("api_key", django_verilock_settings()[1])
        with FakeVerilockServer(**options) as server:
            _set_for_test(request, stack, VERILOCK_API_URL=server.url)
            yield server
