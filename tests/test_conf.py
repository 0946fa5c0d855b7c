"""The settings object and the checks that guard the webhook processor setting."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from verilock_django.checks import check_webhook_settings
from verilock_django.conf import DEFAULTS, verilock_settings
from verilock_django.models import Session

#: Not callable: a dotted path to it is refused like a typo would be.
NOT_A_CALLABLE = "configured by a test"


def enqueue(event_id: int) -> None:
    """A stand-in for a task queue's enqueue function."""


def test_an_unknown_setting_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="Unknown Verilock setting: API_SECRET"):
        _ = verilock_settings.API_SECRET


def test_every_default_is_read_when_the_project_sets_nothing() -> None:
    for name, default in DEFAULTS.items():
        if name in {"API_KEY", "API_URL", "MAX_RETRIES", "RETRY_BACKOFF"}:
            continue  # set by the test settings
        assert getattr(verilock_settings, name) == default


def test_settings_are_read_at_access_time() -> None:
    with override_settings(VERILOCK_API_URL="https://eu.verilock.test/api/v1/"):
        assert verilock_settings.api_url == "https://eu.verilock.test/api/v1"
    assert verilock_settings.api_url == "https://verilock.test/api/v1"


def test_a_non_string_key_reads_as_no_key() -> None:
    with override_settings(VERILOCK_API_KEY=1234):
        assert verilock_settings.api_key == ""


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
