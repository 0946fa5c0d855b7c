from __future__ import annotations

import re
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import ERROR, WARNING, CheckMessage
from django.core.management import call_command
from django.test import override_settings

from verilock_django import checks, conf
from verilock_django.checks import (
    check_privacy_settings,
    check_settings,
    check_sync_settings,
    check_verify_settings,
    check_webhook_settings,
)


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
        ({"VERILOCK_MAX_RETRIES": True}, ["verilock_django.E006"]),
        ({"VERILOCK_RETRY_BACKOFF": "fast"}, ["verilock_django.E007"]),
        ({"VERILOCK_RETRY_BACKOFF": -0.5}, ["verilock_django.E007"]),
        ({"VERILOCK_API_KEY": "qi_test abc"}, ["verilock_django.E008"]),
        ({"VERILOCK_API_KEY": "qi_test\u200babc"}, ["verilock_django.E008"]),
        ({"VERILOCK_MAX_JSON_DEPTH": 0}, ["verilock_django.E026"]),
        ({"VERILOCK_MAX_JSON_DEPTH": 257}, ["verilock_django.E026"]),
        ({"VERILOCK_MAX_JSON_DEPTH": "64"}, ["verilock_django.E026"]),
        ({"VERILOCK_API_KEY": "\n"}, ["verilock_django.W001"]),
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
        ({"VERILOCK_SYNC_CONCURRENCY": 257}, ["verilock_django.E020"]),
        ({"VERILOCK_SYNC_CONCURRENCY": 10**6}, ["verilock_django.E020"]),
        ({"VERILOCK_RATE_LIMIT_PER_MINUTE": 0}, ["verilock_django.E021"]),
        ({"VERILOCK_RATE_LIMIT_PER_MINUTE": "120"}, ["verilock_django.E021"]),
        # More than any client sends (a larger one would mean no limit as well); 10**400
        # made every refresh's budget raise OverflowError.
        ({"VERILOCK_RATE_LIMIT_PER_MINUTE": 10**9 + 1}, ["verilock_django.E021"]),
        ({"VERILOCK_RATE_LIMIT_PER_MINUTE": 10**400}, ["verilock_django.E021"]),
        ({"VERILOCK_MAX_DATA_AGE": 10**400}, ["verilock_django.E055"]),
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
    with override_settings(VERILOCK_RATE_LIMIT_PER_MINUTE=10**9):
        assert check_sync_settings() == []


def test_a_key_with_only_surrounding_whitespace_passes() -> None:
    assert ids(VERILOCK_API_KEY="qi_test_abc\n") == []


@pytest.mark.parametrize(
    ("secrets", "expected"),
    [
        (["whsec_abc\n", "  whsec_old "], set()),
        (["whsec_a bc"], {"verilock_django.E015", "verilock_django.W010"}),
        (["whsec_abc", "whsec\r\nabc"], {"verilock_django.E015", "verilock_django.W010"}),
    ],
)
def test_webhook_secrets_may_not_hold_whitespace_inside(
    secrets: list[str], expected: set[str]
) -> None:
    with override_settings(VERILOCK_WEBHOOK_SECRETS=secrets):
        assert {message.id for message in check_webhook_settings()} == expected


def test_an_unknown_setting_is_a_warning_with_the_closest_name() -> None:
    with override_settings(VERILOCK_APIKEY="qi_test_abc", VERILOCK_SHINY=1):
        messages = [m for m in check_settings() if m.id == "verilock_django.W002"]
    by_name = {str(message.msg).split()[0]: message for message in messages}
    assert set(by_name) == {"VERILOCK_APIKEY", "VERILOCK_SHINY"}
    assert all(message.level == WARNING for message in messages)
    assert by_name["VERILOCK_APIKEY"].hint == "Did you mean VERILOCK_API_KEY?"
    assert "Did you mean" not in str(by_name["VERILOCK_SHINY"].hint)


def test_a_misspelt_webhook_setting_suggests_the_real_one() -> None:
    with override_settings(VERILOCK_WEBHOOK_SECRET=["whsec_abc"]):
        (message,) = [m for m in check_settings() if m.id == "verilock_django.W002"]
    assert message.hint == "Did you mean VERILOCK_WEBHOOK_SECRETS?"


def all_messages() -> list[CheckMessage]:
    return [
        *check_settings(),
        *check_webhook_settings(),
        *check_sync_settings(),
        *check_verify_settings(),
        *check_privacy_settings(),
    ]


#: One unusable value per setting; each must be reported by exactly its row's check id.
BAD_VALUES: dict[str, object] = {
    "API_KEY": b"qi_test_abc",
    "API_URL": "https://",
    "AUTH_HEADER": "Bearer",
    "TIMEOUT": -1,
    "MAX_RETRIES": "3",
    "RETRY_BACKOFF": "fast",
    "FINISHED_STATUSES": ["approved", ""],
    "MAX_RESPONSE_BYTES": 10.5,
    "RETRY_AFTER_MAX": 0,
    "MAX_JSON_DEPTH": 1000,
    "SYNC_CONCURRENCY": "16",
    "RATE_LIMIT_PER_MINUTE": -1,
    "RATE_LIMIT_REDIS_URL": "http://127.0.0.1:6379",
    "TASK_BACKEND": "",
    "TASK_QUEUE": 3,
    "RECHECK_MIN_INTERVAL": "5m",
    "RECHECK_MAX_INTERVAL": 0,
    "MAX_DATA_AGE": 0,
    "LEASE_SECONDS": None,
    "WEBHOOK_SECRETS": None,
    "WEBHOOK_PROCESSOR": "",
    "WEBHOOK_THREADS": 1.0,
    "WEBHOOK_MAX_BODY_SIZE": -1,
    "WEBHOOK_STALE_AFTER": "300",
    "CREATE_SHAPE": "gen-b",
    "PROFILE_ID": 42,
    "CREATE_STEPS": "document",
    "USER_RESOLVER": "no.such.module.resolve",
    "DECLINE_REVOKES": "yes",
    "VERIFIED_MAX_AGE": 0,
    "WEBHOOK_MAX_AGE": 0,
    "WEBHOOK_SYNCHRONOUS_COMMIT": "off",
    "STORED_DATA": "none",
    "PAYLOAD_SCRUBBER": "tests.missing.scrubber",
    "PII_RETENTION_DAYS": 0,
    "WEBHOOK_RETENTION_DAYS": 1.5,
    "ENCRYPT_FIELDS": "yes",
}


#: Every setting that is a number of seconds, as the settings table documents it.
SECONDS_SETTINGS = [s for s in conf.SETTINGS if s.type_doc.startswith("float (s)")]


@pytest.mark.parametrize("setting", SECONDS_SETTINGS, ids=lambda s: s.name)
@pytest.mark.parametrize(
    "value",
    [float("inf"), 1e300, 10**400, 36_501 * 86_400],
    ids=["inf", "1e300", "10**400", "a century and a day"],
)
def test_a_duration_no_datetime_or_timeout_holds_is_reported_by_its_check(
    setting: conf.Setting[object], value: float
) -> None:
    # Added to now, slept or given to a socket, it would raise OverflowError at run time.
    with override_settings(**{setting.setting_name: value}):
        assert [m.id for m in all_messages() if m.level >= ERROR] == [
            f"verilock_django.{setting.check_id}"
        ]
    century = 36_500 * 86_400  # is fine (the minimum recheck interval not above the maximum)
    fine = {setting.setting_name: century, "VERILOCK_RECHECK_MAX_INTERVAL": century}
    with override_settings(**fine):
        assert [m.id for m in all_messages() if m.level >= ERROR] == []


def test_every_setting_has_a_check() -> None:
    assert set(BAD_VALUES) == {setting.name for setting in conf.SETTINGS}
    for setting in conf.SETTINGS:
        with override_settings(**{setting.setting_name: BAD_VALUES[setting.name]}):
            errors = [m for m in all_messages() if m.level >= ERROR]
        assert [m.id for m in errors] == [f"verilock_django.{setting.check_id}"], setting.name
        assert str(errors[0].msg).startswith(setting.setting_name), setting.name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VERILOCK_API_KEY", "qi_live_TOPSECRET with space"),
        ("VERILOCK_API_KEY", "qi_live_TOPSECRET\x07"),
        ("VERILOCK_WEBHOOK_SECRETS", ["whsec_TOPSECRET\tx"]),
        ("VERILOCK_WEBHOOK_SECRETS", "whsec_TOPSECRET"),
        ("VERILOCK_WEBHOOK_SECRETS", ["whsec_TOPSECRET", ""]),
    ],
)
def test_no_check_message_shows_the_key_or_a_secret(name: str, value: object) -> None:
    with override_settings(**{name: value}):
        messages = all_messages()
    assert any(message.level >= ERROR for message in messages)
    assert all("TOPSECRET" not in f"{message.msg} {message.hint}" for message in messages)


def test_checks_import_only_conf_django_and_the_standard_library() -> None:
    source = Path(checks.__file__).read_text(encoding="utf-8")
    imports = re.findall(r"^(?:from|import) (\S+)", source, flags=re.MULTILINE)
    assert {name for name in imports if name.startswith(".")} == {"."}
    assert "from . import conf" in source
    assert all(
        name.startswith((".", "django")) or name.split(".")[0] in sys.stdlib_module_names
        for name in imports
    ), imports


def test_the_start_flow_without_a_profile_is_a_warning() -> None:
    with override_settings(VERILOCK_PROFILE_ID=""):
        assert [m.id for m in check_verify_settings()] == ["verilock_django.W030"]
    with override_settings(VERILOCK_PROFILE_ID="", VERILOCK_CREATE_SHAPE="a"):
        assert check_verify_settings() == []
    assert check_verify_settings() == []  # the test settings name a profile


def test_without_the_start_flow_no_profile_is_needed() -> None:
    with override_settings(VERILOCK_PROFILE_ID="", ROOT_URLCONF="tests.urls_webhook_only"):
        assert check_verify_settings() == []
