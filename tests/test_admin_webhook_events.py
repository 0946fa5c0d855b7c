"""The webhook events admin: read-only list and page, filters, search, the Reprocess action."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.admin.sites import site
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from verilock_django.admin.webhook_events import WebhookEventAdmin
from verilock_django.models import Session, WebhookEvent, WebhookEventStatus
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.webhooks import webhook_payload
from verilock_django.webhooks import parse_envelope, store_delivery

CHANGELIST = "/admin/verilock_django/webhookevent/"


@pytest.fixture
def api(verilock_api: InProcessVerilock) -> InProcessVerilock:
    return verilock_api


def stored(payload: dict[str, Any]) -> WebhookEvent:
    body = json.dumps(payload).encode()
    event, created = store_delivery(parse_envelope(body))
    assert created
    return event


@pytest.mark.django_db
def test_admin_lists_filters_and_searches_events(admin_client: Client) -> None:
    stored(webhook_payload(session_id="ses_alpha", webhook_id="wh_alpha"))
    beta = stored(webhook_payload(session_id="ses_beta", webhook_id="wh_beta"))
    WebhookEvent.objects.filter(pk=beta.pk).update(status=WebhookEventStatus.FAILED)

    failed = admin_client.get(CHANGELIST, {"status__exact": "failed"}).content.decode()
    assert "wh_beta" in failed
    assert "wh_alpha" not in failed
    by_session = admin_client.get(CHANGELIST, {"q": "ses_alpha"}).content.decode()
    assert "wh_alpha" in by_session
    assert "wh_beta" not in by_session
    by_id = admin_client.get(CHANGELIST, {"q": "wh_beta"}).content.decode()
    assert "wh_beta" in by_id
    assert "wh_alpha" not in by_id
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


@pytest.mark.django_db
def test_admin_changelist_queries_do_not_grow_with_rows(admin_client: Client) -> None:
    stored(webhook_payload(webhook_id="wh_first"))
    with CaptureQueriesContext(connection) as one:
        admin_client.get(CHANGELIST)
    for n in range(20):
        stored(webhook_payload(webhook_id=f"wh_more_{n}"))
    with CaptureQueriesContext(connection) as many:
        admin_client.get(CHANGELIST)
    assert len(many) == len(one)


@pytest.mark.django_db
def test_admin_reprocess_action(admin_client: Client, api: InProcessVerilock) -> None:
    session = api.add_session(status="approved")
    event = stored(webhook_payload(session_id=session.id))
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=WebhookEventStatus.FAILED, last_error="ServerError: boom", attempts=3
    )

    response = admin_client.post(
        CHANGELIST,
        {"action": "reprocess", "_selected_action": [event.pk]},
        follow=True,
    )

    event.refresh_from_db()
    assert (event.status, event.attempts) == (WebhookEventStatus.PROCESSED, 4)
    assert "1 processed" in response.content.decode()
    assert Session.objects.get(pk=session.id).status == "approved"


@pytest.mark.django_db
def test_admin_reprocess_reports_failures_and_refuses_huge_selections(
    admin_client: Client, api: InProcessVerilock, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = stored(webhook_payload(session_id="ses_unknown_at_verilock"))

    response = admin_client.post(
        CHANGELIST, {"action": "reprocess", "_selected_action": [event.pk]}, follow=True
    )
    content = response.content.decode()
    assert "1 failed" in content
    assert "NotFoundError" in content

    monkeypatch.setattr(WebhookEventAdmin, "reprocess_limit", 0)
    response = admin_client.post(
        CHANGELIST, {"action": "reprocess", "_selected_action": [event.pk]}, follow=True
    )
    assert "Select at most 0 events" in response.content.decode()
    event.refresh_from_db()
    assert event.attempts == 1


@pytest.mark.django_db
def test_admin_event_page_is_read_only_and_escaped(admin_client: Client) -> None:
    payload = webhook_payload(session_id="ses_page")
    payload["data"]["note"] = "<script>alert(1)</script>"
    event = stored(payload)

    response = admin_client.get(f"{CHANGELIST}{event.pk}/change/")

    content = response.content.decode()
    assert response.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "<script>alert(1)</script>" not in content
    session_url = reverse("admin:verilock_django_session_change", args=(quote("ses_page"),))
    assert f'href="{session_url}"' in content
    assert 'name="_save"' not in content


@pytest.mark.django_db
def test_reprocess_action_needs_the_change_permission(
    client: Client, django_user_model: Any
) -> None:
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_webhookevent"))
    client.force_login(user)
    stored(webhook_payload())

    content = client.get(CHANGELIST).content.decode()

    assert "Reprocess" not in content
    assert site.is_registered(WebhookEvent)


@pytest.mark.django_db
def test_staff_with_the_change_permission_may_reprocess(
    client: Client, django_user_model: Any, api: InProcessVerilock
) -> None:
    session = api.add_session(status="approved")
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=("view_webhookevent", "change_webhookevent"))
    )
    client.force_login(user)
    event = stored(webhook_payload(session_id=session.id))

    listing = client.get(CHANGELIST).content.decode()
    response = client.post(
        CHANGELIST, {"action": "reprocess", "_selected_action": [event.pk]}, follow=True
    )

    assert "Reprocess" in listing
    assert "1 processed" in response.content.decode()
    event.refresh_from_db()
    assert event.status == WebhookEventStatus.PROCESSED
