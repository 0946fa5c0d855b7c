from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.checks import WARNING
from django.core.management import call_command
from django.test import override_settings

from verilock_django.checks import check_settings, check_sync_settings


def ids(**overrides: Any) -> list[str]:
    with override_settings(**overrides):
        return [str(message.id) for message in check_settings()]


def test_valid_settings_pass() -> None:
    assert ids() == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"VERILOCK_API_KEY": ""}, ["verilock_django.W001"]),
        ({"VERILOCK_API_KEY": "  "}, ["verilock_django.W001"]),
        ({"VERILOCK_API_KEY": 1234}, ["verilock_django.E001"]),
        ({"VERILOCK_API_URL": "verilock.io/api/v1"}, ["verilock_django.E002"]),
        ({"VERILOCK_API_URL": "ftp://verilock.io"}, ["verilock_django.E002"]),
        ({"VERILOCK_AUTH_HEADER": "basic"}, ["verilock_django.E003"]),
        ({"VERILOCK_TIMEOUT": 0}, ["verilock_django.E004"]),
        ({"VERILOCK_TIMEOUT": "10"}, ["verilock_django.E004"]),
        ({"VERILOCK_FINISHED_STATUSES": "approved"}, ["verilock_django.E005"]),
        ({"VERILOCK_FINISHED_STATUSES": []}, ["verilock_django.E005"]),
        ({"VERILOCK_MAX_RETRIES": -1}, ["verilock_django.E006"]),
    ],
)
def test_bad_settings_have_stable_ids(overrides: dict[str, Any], expected: list[str]) -> None:
    assert ids(**overrides) == expected


def test_missing_key_is_only_a_warning() -> None:
    with override_settings(VERILOCK_API_KEY=""):
        (message,) = check_settings()
    assert message.level == WARNING


@pytest.mark.django_db
def test_checks_run_through_django(settings: Any) -> None:
    settings.VERILOCK_API_KEY = ""
    err = StringIO()
    call_command("check", stderr=err, stdout=StringIO())
    assert "verilock_django.W001" in err.getvalue()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"VERILOCK_SYNC_CONCURRENCY": 0}, ["verilock_django.E020"]),
        ({"VERILOCK_SYNC_CONCURRENCY": 2.5}, ["verilock_django.E020"]),
        ({"VERILOCK_RATE_LIMIT_PER_MINUTE": 0}, ["verilock_django.E021"]),
        ({"VERILOCK_RATE_LIMIT_PER_MINUTE": "120"}, ["verilock_django.E021"]),
        ({"VERILOCK_RECHECK_MIN_INTERVAL": -1}, ["verilock_django.E022"]),
        ({"VERILOCK_RECHECK_MAX_INTERVAL": None}, ["verilock_django.E022"]),
        (
            {"VERILOCK_RECHECK_MIN_INTERVAL": 600, "VERILOCK_RECHECK_MAX_INTERVAL": 60},
            ["verilock_django.E023"],
        ),
        ({"VERILOCK_LEASE_SECONDS": 0}, ["verilock_django.E024"]),
        ({"VERILOCK_RETRY_AFTER_MAX": True}, ["verilock_django.E025"]),
    ],
)
def test_bad_sync_settings_have_stable_ids(overrides: dict[str, Any], expected: list[str]) -> None:
    with override_settings(**overrides):
        assert [message.id for message in check_sync_settings()] == expected


def test_default_sync_settings_pass() -> None:
    assert check_sync_settings() == []
    with override_settings(VERILOCK_RATE_LIMIT_PER_MINUTE=120):
        assert check_sync_settings() == []
