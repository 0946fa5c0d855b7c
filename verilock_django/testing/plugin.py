"""pytest plugin (entry point ``pytest11: verilock``): fixtures for the fake Verilock API.

Installed automatically with the package; no configuration needed:

* ``verilock_api`` — the in-process fake (:class:`InProcessVerilock`), intercepting
  ``requests`` for the test; any other HTTP call made with ``requests`` fails loudly.
* ``verilock_server`` — the fake on a loopback port (:class:`FakeVerilockServer`); when
  pytest-django is active, ``settings.VERILOCK_API_URL`` points at it for the test.

Both read ``VERILOCK_API_URL``/``VERILOCK_API_KEY`` from Django settings when Django is
configured. Options for one test: ``@pytest.mark.verilock(shape="b", latency_ms=20)``
(any :class:`FakeVerilock` keyword; ``shape`` is ``default_shape``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .responses_api import InProcessVerilock
    from .server import FakeVerilockServer

__all__ = ["pytest_configure", "verilock_api", "verilock_server"]


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


@pytest.fixture
def verilock_api(request: pytest.FixtureRequest) -> Iterator[InProcessVerilock]:
    """The in-process fake Verilock API, active for this test."""
    # Imported here: `responses` is a test extra, and plain pytest runs must not need it.
    from .responses_api import InProcessVerilock

    with InProcessVerilock.from_settings(**_options(request)) as api:
        yield api


@pytest.fixture
def verilock_server(request: pytest.FixtureRequest) -> Iterator[FakeVerilockServer]:
    """The fake Verilock API on a loopback port, stopped after the test."""
    from .responses_api import django_verilock_settings
    from .server import FakeVerilockServer

    options = _options(request)
    options.setdefault("api_key", django_verilock_settings()[1])
    with FakeVerilockServer(**options) as server:
        if django_verilock_settings() != (None, None):
            try:
                settings = request.getfixturevalue("settings")
            except pytest.FixtureLookupError:  # pytest-django is not installed
                settings = None
            if settings is not None:
                settings.VERILOCK_API_URL = server.url
        yield server
