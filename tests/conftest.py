from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import responses
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from verilock_django import clock
from verilock_django.testing import FakeVerilock

from .distribution import build_dist
from .fakes import KEY

# Property-based tests: 100 examples locally, 500 in CI (CI=1). No deadline: examples write
# to the database, whose speed is not what they test. The database fixtures are function
# scoped on purpose: each example rolls its own writes back.
hypothesis_settings.register_profile(
    "dev",
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
hypothesis_settings.register_profile(
    "ci", hypothesis_settings.get_profile("dev"), max_examples=500, database=None
)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")

pytest_plugins = ["tests.webhook_helpers"]

SEED_PATH = Path(__file__).parent / "fixtures" / "seed-session.json"
SEED_ID = "ses_a1b2c3d4-e5f6-7890-abcd-ef1234567890"
API_URL = "https://verilock.test/api/v1"
#: Transaction control is not a statement against the data (tests run inside a transaction,
#: so the store's transaction is a savepoint here).
CONTROL = ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT")


def log_in_staff(client: Client, *codenames: str) -> Client:
    """Log ``client`` in as a new staff member "reviewer" (password "pw", no superuser) who
    holds the app's permissions named by ``codenames``; returns ``client``."""
    user = User.objects.create_user("reviewer", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="verilock_django", codename__in=codenames
        )
    )
    client.force_login(user)
    return client


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements run inside the block, transaction control left out (the list is
    filled when the block ends)."""
    found: list[str] = []
    clock.now()  # the clock's first reading is a query of its own, once a minute
    with CaptureQueriesContext(connection) as captured:
        yield found
    found.extend(
        q["sql"] for q in captured.captured_queries if not q["sql"].upper().startswith(CONTROL)
    )


@pytest.fixture
def whole_statements(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's own parameter limit (32,766 since 3.32), not the 999 Django 5.2 assumes and
    splits statements at: one statement per kind, whatever Django's version."""
    limit = connection.features.max_query_params
    if connection.vendor == "sqlite" and limit is not None and limit < 32766:
        monkeypatch.setattr(connection.features, "max_query_params", 32766)


@pytest.fixture(autouse=True)
def fresh_default_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own shared client, so one test's rate-limit window (a 429's
    Retry-After, a low X-RateLimit-Remaining) never makes the next one wait."""
    monkeypatch.setattr("verilock_django.client._default_client", None)


@pytest.fixture
def seed() -> dict[str, Any]:
    """A fresh copy of the provider's documented GET /sessions/{id} example."""
    return copy.deepcopy(json.loads(SEED_PATH.read_text()))


@pytest.fixture
def mocked() -> Any:
    """`responses` with every unmocked request failing loudly."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def fake() -> Any:
    """A fake Verilock account that accepts the test key, closed after the test."""
    account = FakeVerilock(api_key=KEY)
    yield account
    account.close()


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding exactly one wheel and one sdist of this checkout (built once)."""
    return build_dist(tmp_path_factory)
