"""The settings table, the typed settings object, and the README's settings table."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import override_settings

from verilock_django.checks import check_webhook_settings
from verilock_django.conf import (
    GROUP_API,
    SETTINGS,
    Setting,
    VerilockSettings,
    fields,
    verilock_settings,
)
from verilock_django.exceptions import VerilockConfigurationError
from verilock_django.models import Session

README = Path(__file__).resolve().parent.parent / "README.md"

#: Not callable: a dotted path to it is refused like a typo would be.
NOT_A_CALLABLE = "configured by a test"

#: Set by tests/settings.py, so their values differ from the defaults.
SET_BY_TEST_SETTINGS = {
    "API_KEY",
    "API_URL",
    "MAX_RETRIES",
    "RETRY_BACKOFF",
    "RATE_LIMIT_PER_MINUTE",
    "PROFILE_ID",
}


def enqueue(event_id: int) -> None:
    """A stand-in for a task queue's enqueue function."""


def test_every_setting_is_a_typed_lowercase_property_and_nothing_else() -> None:
    properties = {
        name
        for name, member in inspect.getmembers(VerilockSettings)
        if isinstance(member, property)
    }
    assert properties == {setting.name.lower() for setting in SETTINGS}
    hints = {
        name: getattr(VerilockSettings, name).fget.__annotations__["return"] for name in properties
    }
    assert "Any" not in " ".join(hints.values())
    assert hints["timeout"] == "float"
    assert hints["rate_limit_per_minute"] == "int | None"
    assert hints["webhook_secrets"] == "tuple[str, ...]"


def test_there_is_no_uppercase_or_fallback_access() -> None:
    with pytest.raises(AttributeError):
        _ = verilock_settings.API_KEY  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        _ = verilock_settings.api_secret  # type: ignore[attr-defined]


def test_every_default_is_read_and_typed_when_the_project_sets_nothing() -> None:
    for setting in SETTINGS:
        if setting.name in SET_BY_TEST_SETTINGS:
            continue
        value = getattr(verilock_settings, setting.name.lower())
        assert value == setting.parse(setting.default), setting.name
    assert verilock_settings.finished_statuses == frozenset({"approved", "declined", "expired"})
    assert verilock_settings.recheck_min_interval == 300.0
    assert isinstance(verilock_settings.lease_seconds, float)
    assert verilock_settings.webhook_secrets == ()
    with override_settings():
        del settings.VERILOCK_RATE_LIMIT_PER_MINUTE
        assert verilock_settings.rate_limit_per_minute is None  # the API's own limit


def test_integers_given_for_seconds_read_as_floats() -> None:
    with override_settings(VERILOCK_TIMEOUT=3, VERILOCK_WEBHOOK_STALE_AFTER=60):
        assert verilock_settings.timeout == 3.0
        assert isinstance(verilock_settings.timeout, float)
        assert isinstance(verilock_settings.webhook_stale_after, float)


def test_settings_are_read_at_access_time() -> None:
    with override_settings(VERILOCK_API_URL="https://eu.verilock.test/api/v1/"):
        assert verilock_settings.api_url == "https://eu.verilock.test/api/v1"
    assert verilock_settings.api_url == "https://verilock.test/api/v1"


def test_the_settings_fixture_takes_effect(settings: Any) -> None:
    settings.VERILOCK_SYNC_CONCURRENCY = 4
    assert verilock_settings.sync_concurrency == 4


def test_a_setting_is_parsed_once_until_it_changes(settings: Any) -> None:
    parsed: list[object] = []

    def parse(value: object) -> int:
        parsed.append(value)
        return int(str(value))

    row = Setting("TEST_PARSED_ONCE", 1, parse, "E001", GROUP_API, "int", "1", "A test row.")
    assert [row.value(), row.value()] == [1, 1]
    settings.VERILOCK_TEST_PARSED_ONCE = 5
    assert [row.value(), row.value()] == [5, 5]
    assert parsed == [1, 5]


def test_a_change_landing_while_a_value_is_kept_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread's override lands after a read parsed the old value and checked that
    nothing changed, but before it kept the value: the next read sees the new value."""
    override = override_settings(VERILOCK_TIMEOUT=7)

    class Racing(dict[str, object]):
        def __setitem__(self, key: str, value: object) -> None:
            if not override_active:
                override_active.append(True)
                override.enable()  # the other thread's change, with its setting_changed
            super().__setitem__(key, value)

    override_active: list[bool] = []
    monkeypatch.setattr(fields, "_parsed", Racing())
    try:
        assert verilock_settings.timeout != 7  # parsed before the change
        assert override_active
        assert verilock_settings.timeout == 7
    finally:
        override.disable()


def test_a_setting_deleted_without_a_signal_is_read_again() -> None:
    """pytest-django's ``settings`` fixture deletes a setting, and restores it, without
    sending ``setting_changed`` (an empty ``override_settings`` and ``delattr``): neither
    the deleted nor the restored value comes from what was kept before."""
    assert verilock_settings.max_retries == 0  # the suite's settings
    override = override_settings()
    override.enable()
    try:
        del settings.VERILOCK_MAX_RETRIES
        assert verilock_settings.max_retries == 3  # the default
    finally:
        override.disable()
    assert verilock_settings.max_retries == 0


def test_a_key_pasted_with_surrounding_whitespace_works() -> None:
    with override_settings(VERILOCK_API_KEY="  qi_test_abc\n"):
        assert verilock_settings.api_key == "qi_test_abc"


def test_webhook_secrets_are_stripped_one_by_one() -> None:
    with override_settings(VERILOCK_WEBHOOK_SECRETS=["whsec_new\n", " whsec_old"]):
        assert verilock_settings.webhook_secrets == ("whsec_new", "whsec_old")


@pytest.mark.parametrize(
    ("name", "value", "prop"),
    [
        ("VERILOCK_API_KEY", 1234, "api_key"),
        ("VERILOCK_API_KEY", "qi_test abc", "api_key"),
        ("VERILOCK_API_URL", "verilock.io/api", "api_url"),
        ("VERILOCK_AUTH_HEADER", "basic", "auth_header"),
        ("VERILOCK_TIMEOUT", "10", "timeout"),
        ("VERILOCK_MAX_RETRIES", 1.5, "max_retries"),
        ("VERILOCK_RETRY_BACKOFF", "fast", "retry_backoff"),
        ("VERILOCK_FINISHED_STATUSES", "approved", "finished_statuses"),
        ("VERILOCK_RETRY_AFTER_MAX", True, "retry_after_max"),
        ("VERILOCK_RATE_LIMIT_PER_MINUTE", "120", "rate_limit_per_minute"),
        ("VERILOCK_SYNC_CONCURRENCY", 0, "sync_concurrency"),
        ("VERILOCK_RECHECK_MIN_INTERVAL", None, "recheck_min_interval"),
        ("VERILOCK_RECHECK_MAX_INTERVAL", float("nan"), "recheck_max_interval"),
        ("VERILOCK_LEASE_SECONDS", -5, "lease_seconds"),
        ("VERILOCK_WEBHOOK_SECRETS", "whsec_a_string", "webhook_secrets"),
        ("VERILOCK_WEBHOOK_SECRETS", ["whsec_a", "whsec\tb"], "webhook_secrets"),
        ("VERILOCK_WEBHOOK_PROCESSOR", "celery", "webhook_processor"),
        ("VERILOCK_WEBHOOK_THREADS", "2", "webhook_threads"),
        ("VERILOCK_WEBHOOK_MAX_BODY_SIZE", "1MB", "webhook_max_body_size"),
        ("VERILOCK_WEBHOOK_STALE_AFTER", 0, "webhook_stale_after"),
        ("VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT", 0, "webhook_synchronous_commit"),
    ],
)
def test_an_invalid_value_raises_a_configuration_error_naming_the_setting(
    name: str, value: object, prop: str
) -> None:
    with (
        override_settings(**{name: value}),
        pytest.raises(VerilockConfigurationError, match=f"^{name} ") as raised,
    ):
        getattr(verilock_settings, prop)
    assert raised.value.__cause__ is None  # no chained error that could carry the value


@pytest.mark.parametrize(
    ("name", "value", "prop"),
    [
        ("VERILOCK_API_KEY", "qi_live_SUPERSECRET\x00", "api_key"),
        ("VERILOCK_API_KEY", "qi_live_SUPER SECRET", "api_key"),
        ("VERILOCK_WEBHOOK_SECRETS", ["whsec_SUPER\nSECRET"], "webhook_secrets"),
        ("VERILOCK_WEBHOOK_SECRETS", ["whsec_SUPERSECRET", 7], "webhook_secrets"),
        ("VERILOCK_WEBHOOK_SECRETS", "whsec_SUPERSECRET", "webhook_secrets"),
    ],
)
def test_the_error_never_shows_a_key_or_secret(name: str, value: object, prop: str) -> None:
    with override_settings(**{name: value}), pytest.raises(VerilockConfigurationError) as raised:
        getattr(verilock_settings, prop)
    assert "SUPER" not in str(raised.value)
    assert "SUPER" not in repr(raised.value.args)


@pytest.mark.django_db
def test_finished_and_unfinished_follow_the_finished_statuses_setting() -> None:
    for status in ("approved", "review", "processing"):
        Session.objects.create(id=f"ses_{status}", status=status)

    def split() -> tuple[set[str], set[str]]:
        return (
            set(Session.objects.finished().values_list("status", flat=True)),
            set(Session.objects.unfinished().values_list("status", flat=True)),
        )

    assert split() == ({"approved"}, {"review", "processing"})
    with override_settings(VERILOCK_FINISHED_STATUSES=["approved", "review"]):
        assert split() == ({"approved", "review"}, {"processing"})


@pytest.mark.parametrize(
    ("processor", "accepted"),
    [
        ("tests.test_conf.enqueue", True),
        ("tests.test_conf.NOT_A_CALLABLE", False),
        ("tests.test_conf.missing", False),
        (42, False),
    ],
)
def test_webhook_processor_must_be_a_known_mode_or_a_callable(
    processor: Any, accepted: bool
) -> None:
    with override_settings(VERILOCK_WEBHOOK_PROCESSOR=processor):
        ids = {message.id for message in check_webhook_settings()}
    assert ("verilock_django.E011" not in ids) is accepted


# -- the README documents the same table ---------------------------------------------


def readme_settings_rows() -> list[list[str]]:
    """The cells of the README's "## Settings" Markdown table, header excluded."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows[0].startswith("| Setting | Type | Default | Meaning |")
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def unquote(cell: str) -> str:
    match = re.fullmatch(r"`(.*)`", cell)
    assert match, f"not a code span: {cell!r}"
    return match.group(1)


def test_the_readme_lists_exactly_the_settings_with_their_defaults() -> None:
    rows = readme_settings_rows()
    assert [unquote(row[0]) for row in rows] == [setting.setting_name for setting in SETTINGS]
    for row, setting in zip(rows, SETTINGS, strict=True):
        readme_default = ast.literal_eval(unquote(row[2]))
        assert setting.parse(readme_default) == setting.parse(setting.default), setting.name
        assert row[1:] == [setting.type_doc, f"`{setting.default_doc}`", setting.doc]


# -- the guides' settings tables and prose name real settings -----------------------------

DOCS = sorted((README.parent / "docs").glob("*.md"))
#: ``VERILOCK_*`` words in the docs that are not settings: environment variable names read
#: by the snippets, and the misspelling the tutorial shows system check W002 catching.
NOT_SETTINGS = {"VERILOCK_WEBHOOK_SECRET", "VERILOCK_APIKEY"}


def guide_settings_rows(page: Path) -> list[list[str]]:
    """Rows of every ``| Setting | Type | Default | Meaning |`` table in ``page``."""
    rows: list[list[str]] = []
    in_table = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("| Setting | Type | Default |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_a_guide_settings_table_gives_the_real_type_and_default(page: Path) -> None:
    by_name = {setting.setting_name: setting for setting in SETTINGS}
    for row in guide_settings_rows(page):
        name = unquote(row[0])
        assert name in by_name, f"{page.name}: {name} is not a setting"
        setting = by_name[name]
        assert row[1] == setting.type_doc, f"{page.name}: {name} type"
        documented = ast.literal_eval(unquote(row[2]))
        assert setting.parse(documented) == setting.parse(setting.default), (
            f"{page.name}: {name} default"
        )


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_setting_a_page_names_exists(page: Path) -> None:
    known = {setting.setting_name for setting in SETTINGS} | NOT_SETTINGS
    named = set(re.findall(r"\bVERILOCK_[A-Z_]*[A-Z]\b", page.read_text(encoding="utf-8")))
    assert named <= known, f"{page.name}: {sorted(named - known)}"
