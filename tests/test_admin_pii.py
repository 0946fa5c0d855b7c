"""Personal data by permission: masked for staff without view_applicant_pii."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from verilock_django.models import WebhookEvent
from verilock_django.store import store_session
from verilock_django.testing.factories import session_payload

from .conftest import log_in_staff

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:verilock_django_session_changelist")
PERSONAL = ("Jean", "Dupont", "jean.dupont@example.com", "12AB34567", "1990-05-15", "May 15, 1990")


@pytest.fixture
def declined() -> dict[str, Any]:
    payload = session_payload("a", id="ses_pii", status="declined", declined_step="aml")
    store_session(payload)
    return payload


def test_without_the_permission_everything_personal_is_masked(
    client: Client, declined: dict[str, Any]
) -> None:
    reviewer = log_in_staff(client, "view_session")

    listing = reviewer.get(CHANGELIST).content.decode()
    page = reviewer.get(
        reverse("admin:verilock_django_session_change", args=(quote("ses_pii"),))
    ).content.decode()

    for value in PERSONAL:
        assert value not in listing
        assert value not in page
    assert "J*** D*****" in listing
    assert "j***@example.com" in page
    assert "******567" in page  # the document number's last 3 characters
    assert "&quot;email&quot;: &quot;j***@example.com&quot;" in page  # the raw JSON too
    assert "1990" in page  # birth year only
    assert "Failed" in page  # outcomes and scores stay visible
    assert "91 %" in page


def test_with_the_permission_or_as_superuser_values_are_shown(
    client: Client, admin_client: Client, declined: dict[str, Any]
) -> None:
    reviewer = log_in_staff(client, "view_session", "view_applicant_pii")
    url = reverse("admin:verilock_django_session_change", args=(quote("ses_pii"),))

    for viewer in (reviewer, admin_client):
        page = viewer.get(url).content.decode()
        assert "jean.dupont@example.com" in page
        assert "12AB34567" in page
        assert "Jean Dupont" in viewer.get(CHANGELIST).content.decode()


@pytest.mark.parametrize(
    ("query", "with_permission", "without"),
    [
        ("jean.dupont@EXAMPLE", {"ses_pii"}, set()),  # "@": the start of the email
        ("dupont", {"ses_pii"}, set()),  # no "@": any part of a name or email
        ("Dupont", {"ses_pii"}, set()),
        ("usr_12345", {"ses_pii"}, {"ses_pii"}),
        ("ses_pii", {"ses_pii"}, {"ses_pii"}),
    ],
)
def test_search_by_name_or_email_needs_the_permission(
    client: Client,
    declined: dict[str, Any],
    query: str,
    with_permission: set[str],
    without: set[str],
) -> None:
    reviewer = log_in_staff(client, "view_session")
    found = {s.pk for s in reviewer.get(CHANGELIST, {"q": query}).context["cl"].result_list}
    assert found == without

    user = User.objects.get(username="reviewer")
    user.user_permissions.add(Permission.objects.get(codename="view_applicant_pii"))
    reviewer.force_login(User.objects.get(pk=user.pk))
    found = {s.pk for s in reviewer.get(CHANGELIST, {"q": query}).context["cl"].result_list}
    assert found == with_permission


def test_webhook_event_payloads_are_masked_too(client: Client) -> None:
    event = WebhookEvent.objects.create(
        webhook_id="wh_pii",
        event_type="session.approved",
        session_id="ses_pii",
        payload={"data": {"applicant_email": "jean.dupont@example.com"}},
    )
    url = reverse("admin:verilock_django_webhookevent_change", args=(event.pk,))

    masked = log_in_staff(client, "view_webhookevent").get(url).content.decode()

    assert "jean.dupont@example.com" not in masked
    assert "j***@example.com" in masked
