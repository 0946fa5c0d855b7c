"""The sessions admin: read-only review, list columns, filters, timeline, sync from Verilock.

The summary card, masking, history and overview have their own files (test_admin_review,
test_admin_pii, test_admin_history, test_admin_overview).
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from verilock_django.admin.review import TIMELINE_LIMIT, webhook_timeline
from verilock_django.admin.sessions import SessionAdmin
from verilock_django.models import Session, StepResult, WebhookEvent, WebhookEventStatus
from verilock_django.store import store_session
from verilock_django.testing.factories import session_payload

from .conftest import API_URL, SEED_ID, log_in_staff

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response
else:
    Response = Any

pytestmark = pytest.mark.django_db

#: The seed session's steps, in the provider's order.
STEPS = ["document", "selfie", "face_match", "liveness", "aml"]
CHANGELIST = reverse("admin:verilock_django_session_changelist")


def change_url(session_id: str) -> str:
    return reverse("admin:verilock_django_session_change", args=(quote(session_id),))


def refresh_url(session_id: str) -> str:
    return reverse("admin:verilock_django_session_sync", args=(quote(session_id),))


def session_url(session_id: str) -> str:
    return f"{API_URL}/sessions/{session_id}"


def variant(seed: dict[str, Any], number: int, **changes: Any) -> dict[str, Any]:
    """The seed under another id and reference, with top-level fields changed."""
    payload = copy.deepcopy(seed)
    payload.update(id=f"ses_{number:04d}", reference_id=f"usr_{number:05d}", **changes)
    return payload


def shown_ids(response: Response) -> set[str]:
    return {session.pk for session in response.context["cl"].result_list}


def message_texts(response: Response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def run_action(client: Client, *session_ids: str) -> Response:
    return client.post(
        CHANGELIST,
        {"action": "sync_from_verilock", "_selected_action": list(session_ids)},
    )


@pytest.fixture
def stored(seed: dict[str, Any]) -> Session:
    store_session(seed)
    session: Session = Session.objects.get(pk=SEED_ID)
    return session


# -- changelist ----------------------------------------------------------------------


def test_changelist_shows_the_seed_session_with_its_five_steps(
    admin_client: Client, stored: Session
) -> None:
    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    content = response.content.decode()
    assert SEED_ID in content
    assert "usr_12345" in content
    assert "Jean Dupont" in content
    assert "Approved" in content
    for outcome in (
        'title="document: Passed (approved)">D✓<',
        'title="selfie: Passed (approved)">S✓<',
        'title="face_match: Passed (approved) 97 %">F✓<',
        'title="liveness: Passed (approved) 99 %">L✓<',
        'title="aml: Passed (approved) 2 %">A✓<',
    ):
        assert outcome in content
    assert content.index(">D✓<") < content.index(">A✓<")  # the provider's order


def test_changelist_shows_unknown_statuses_as_they_come(
    admin_client: Client, seed: dict[str, Any]
) -> None:
    seed["status"] = "manual_check"
    seed["results"]["liveness"]["status"] = "declined"
    seed["results"]["aml"]["status"] = "needs_human"
    seed["steps"].append("video_call")  # asked for, no result yet
    store_session(seed)

    content = admin_client.get(CHANGELIST).content.decode()

    assert "manual_check" in content
    assert 'title="liveness: Failed (declined) 99 %">L✗<' in content
    assert 'title="aml: Other (needs_human) 2 %">A?<' in content
    assert 'title="video_call: no result yet">VC\u2013<' in content


def test_changelist_escapes_provider_text(admin_client: Client, seed: dict[str, Any]) -> None:
    seed["reference_id"] = "<b>ref</b>"
    seed["status"] = "<img src=x onerror=alert(1)>"
    store_session(seed)

    content = admin_client.get(CHANGELIST).content.decode()

    assert "<b>ref</b>" not in content
    assert "&lt;b&gt;ref&lt;/b&gt;" in content
    assert "<img src=x" not in content


def test_changelist_shows_a_failed_last_sync_with_its_error(
    admin_client: Client, stored: Session
) -> None:
    Session.objects.filter(pk=SEED_ID).update(last_sync_error="GET /sessions/x: boom (HTTP 503)")

    content = admin_client.get(CHANGELIST).content.decode()

    assert "⚠ failed" in content
    assert 'title="GET /sessions/x: boom (HTTP 503)"' in content


def test_changelist_query_count_does_not_grow_with_rows(
    admin_client: Client, seed: dict[str, Any]
) -> None:
    store_session(variant(seed, 0))
    admin_client.get(CHANGELIST)  # warm caches (content types, permissions)

    with CaptureQueriesContext(connection) as one:
        assert admin_client.get(CHANGELIST).status_code == 200
    for number in range(1, 100):
        store_session(variant(seed, number))
    with CaptureQueriesContext(connection) as hundred:
        response = admin_client.get(CHANGELIST, {"all": ""})

    assert len(response.context["cl"].result_list) == 100
    assert response.content.decode().count("face_match: Passed (approved) 97 %") == 100
    assert len(hundred) == len(one), [query["sql"] for query in hundred.captured_queries]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ses_0002", {"ses_0002"}),
        ("usr_00001", {"ses_0001"}),
        ("third@example.com", {"ses_0003"}),
        ("EXAMPLE.com", {"ses_0001", "ses_0002", "ses_0003"}),
        ("nobody", set()),
    ],
)
def test_search_by_id_reference_and_email(
    admin_client: Client, seed: dict[str, Any], query: str, expected: set[str]
) -> None:
    for number, email in (
        (1, "first@example.com"),
        (2, "second@example.com"),
        (3, "third@example.com"),
    ):
        payload = variant(seed, number)
        payload["applicant"]["email"] = email
        store_session(payload)

    response = admin_client.get(CHANGELIST, {"q": query})

    assert shown_ids(response) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "declined"}, {"ses_0002"}),
        ({"status": "processing"}, {"ses_0003"}),
        ({"type": "kyb"}, {"ses_0003"}),
        ({"sync": "failed"}, {"ses_0001"}),
        ({"sync": "ok"}, {"ses_0002", "ses_0003"}),
        ({"sync": "never"}, {"ses_0004"}),
    ],
)
def test_filters(
    admin_client: Client, seed: dict[str, Any], params: dict[str, str], expected: set[str]
) -> None:
    store_session(variant(seed, 1))
    store_session(variant(seed, 2, status="declined"))
    store_session(variant(seed, 3, status="processing", type="kyb"))
    Session.objects.create(id="ses_0004")  # registered, never fetched
    Session.objects.filter(pk="ses_0001").update(last_sync_error="timed out")

    response = admin_client.get(CHANGELIST, params)

    assert shown_ids(response) == expected


def test_status_filter_reaches_undocumented_statuses_under_other(
    admin_client: Client, seed: dict[str, Any]
) -> None:
    store_session(variant(seed, 1, status="manual_check"))
    store_session(variant(seed, 2))

    content = admin_client.get(CHANGELIST).content.decode()
    response = admin_client.get(CHANGELIST, {"status": "other"})

    assert "?status=other" in content
    assert ">In review<" in content  # labels, not raw values
    assert shown_ids(response) == {"ses_0001"}


# -- change page ---------------------------------------------------------------------


def test_change_page_shows_card_steps_history_and_payload(
    admin_client: Client, stored: Session
) -> None:
    response = admin_client.get(change_url(SEED_ID))

    assert response.status_code == 200
    content = response.content.decode()
    for heading in ("Change history", "Webhook events", "Sync bookkeeping"):
        assert f">{heading}<" in content
    assert "jean.dupont@example.com" in content
    card = response.context["verilock_card"]
    assert [step["step"] for step in card["steps"]] == STEPS
    assert "97 %" in content
    assert "<dt>similarity</dt><dd>very_high</dd>" in content
    # The card comes before everything else, the raw payload last.
    assert content.index('class="verilock-card"') < content.index(">Change history<")
    assert content.index(">Change history<") < content.index(">Last payload from Verilock<")
    # The raw payload, pretty-printed.
    assert '<pre class="verilock-json">{\n  &quot;id&quot;: &quot;ses_a1b2' in content
    # Nothing to edit or save.
    assert response.context["adminform"].form.fields == {}
    assert 'name="_save"' not in content


def test_change_page_escapes_payload_html(admin_client: Client, seed: dict[str, Any]) -> None:
    seed["comment"] = "<script>alert('raw')</script>"  # an unknown top-level field
    seed["results"]["document"]["details"]["issuer"] = "<script>alert('step')</script>"
    store_session(seed)

    content = admin_client.get(change_url(SEED_ID)).content.decode()

    assert "<script>alert(" not in content
    assert "&lt;script&gt;alert(&#x27;raw&#x27;)&lt;/script&gt;" in content
    assert "&lt;script&gt;alert(&#x27;step&#x27;)&lt;/script&gt;" in content


def test_change_page_shows_the_sessions_webhook_events(
    admin_client: Client, stored: Session
) -> None:
    WebhookEvent.objects.create(
        webhook_id="wh_1",
        event_type="session.completed",
        session_id=SEED_ID,
        last_error="<i>x</i>",
    )
    WebhookEvent.objects.create(
        webhook_id="wh_2", event_type="session.created", session_id="ses_other"
    )

    content = admin_client.get(change_url(SEED_ID)).content.decode()

    assert ">Webhook events<" in content
    assert "session.completed" in content
    assert "&lt;i&gt;x&lt;/i&gt;" in content
    assert "session.created" not in content


def event_at(minute: int, session: str = "ses_t", **fields: Any) -> WebhookEvent:
    """A webhook event for ``session`` received ``minute`` minutes after a fixed noon."""
    fields.setdefault("webhook_id", f"wh_{session}_{minute}")
    noon = dt.datetime(2025, 3, 14, 12, tzinfo=dt.timezone.utc)
    return WebhookEvent.objects.create(
        session_id=session, received_at=noon + dt.timedelta(minutes=minute), **fields
    )


def test_session_timeline_lists_its_events_oldest_first() -> None:
    assert "No webhook received" in webhook_timeline("ses_t")
    first = event_at(1, event_type="session.completed")
    event_at(2, event_type="session.approved")
    event_at(3, "ses_other", event_type="session.approved", webhook_id="wh_c")
    WebhookEvent.objects.filter(pk=first.pk).update(
        status=WebhookEventStatus.FAILED, last_error="ServerError: <boom>"
    )

    html = webhook_timeline("ses_t")

    assert html.index("session.completed") < html.index("session.approved")
    assert "wh_c" not in html
    assert "ServerError: &lt;boom&gt;" in html
    assert "verilock-bad" in html


def test_session_timeline_links_each_event_and_keeps_the_newest(
    django_assert_num_queries: Any,
) -> None:
    for minute in range(TIMELINE_LIMIT + 2):
        event_at(minute, event_type=f"session.step_{minute}")
    newest = WebhookEvent.objects.get(webhook_id=f"wh_ses_t_{TIMELINE_LIMIT + 1}")

    with django_assert_num_queries(1):
        html = webhook_timeline("ses_t")

    assert ">event type<" in html
    assert "session.step_0<" not in html  # the oldest fall off
    assert "session.step_1<" not in html
    assert "session.step_2<" in html
    event_url = reverse("admin:verilock_django_webhookevent_change", args=(newest.pk,))
    assert f'<a href="{event_url}" title="{newest.webhook_id}">' in html


def test_change_page_cannot_be_saved(admin_client: Client, stored: Session) -> None:
    response = admin_client.post(change_url(SEED_ID), {"status": "declined", "reference_id": "x"})

    assert response.status_code == 403
    stored.refresh_from_db()
    assert (stored.status, stored.reference_id) == ("approved", "usr_12345")


def test_no_add_permission(admin_client: Client) -> None:
    assert admin_client.get(reverse("admin:verilock_django_session_add")).status_code == 403
    content = admin_client.get(CHANGELIST).content.decode()
    assert reverse("admin:verilock_django_session_add") not in content


def test_staff_with_view_permission_reviews_steps_but_cannot_refresh(
    client: Client, stored: Session, mocked: Any
) -> None:
    log_in_staff(client, "view_session")

    page = client.get(change_url(SEED_ID))
    listing = client.get(CHANGELIST)
    refresh = client.post(refresh_url(SEED_ID))

    assert page.status_code == 200
    assert [step["step"] for step in page.context["verilock_card"]["steps"]] == STEPS
    assert "Refresh from Verilock" not in page.content.decode()
    assert "sync_from_verilock" not in listing.content.decode()
    assert refresh.status_code == 403
    assert len(mocked.calls) == 0


def test_delete_is_for_superusers_only(
    admin_client: Client, client: Client, stored: Session
) -> None:
    delete_url = reverse("admin:verilock_django_session_delete", args=(quote(SEED_ID),))
    staff = log_in_staff(client, "view_session", "change_session", "delete_session")
    assert staff.post(delete_url, {"post": "yes"}).status_code == 403
    assert Session.objects.filter(pk=SEED_ID).exists()

    admin_client.post(delete_url, {"post": "yes"})

    assert not Session.objects.filter(pk=SEED_ID).exists()
    assert not StepResult.objects.filter(session_id=SEED_ID).exists()


def test_str_is_the_id_only(stored: Session) -> None:
    assert str(stored) == SEED_ID


# -- refreshing ----------------------------------------------------------------------


def test_refresh_action_fetches_and_updates(
    admin_client: Client, seed: dict[str, Any], mocked: Any
) -> None:
    before = copy.deepcopy(seed)
    before["status"] = "processing"
    before["results"]["aml"]["status"] = "pending"
    store_session(before)
    mocked.get(session_url(SEED_ID), json=seed)

    response = run_action(admin_client, SEED_ID)

    assert response.status_code == 302
    assert len(mocked.calls) == 1
    assert message_texts(response) == ["Refreshed 1 session from Verilock (1 changed)."]
    session = Session.objects.get(pk=SEED_ID)
    assert session.status == "approved"
    assert session.results.get(step="aml").status == "approved"


def test_refresh_action_failure_reports_and_keeps_data(
    admin_client: Client, stored: Session, seed: dict[str, Any], mocked: Any
) -> None:
    store_session(variant(seed, 7))
    mocked.get(session_url(SEED_ID), status=503, json={"error": "unavailable", "message": "Down"})
    mocked.get(session_url("ses_0007"), json=variant(seed, 7))

    response = run_action(admin_client, SEED_ID, "ses_0007")

    texts = message_texts(response)
    assert texts[0] == "Refreshed 1 session from Verilock (0 changed)."
    assert texts[1].startswith(f"Could not refresh 1 session: {SEED_ID}: ")
    assert "HTTP 503" in texts[1]
    assert "jean" not in " ".join(texts).lower()  # no applicant data in messages
    session = Session.objects.get(pk=SEED_ID)
    assert session.payload == stored.payload
    assert session.status == "approved"
    assert session.results.count() == 5
    assert "HTTP 503" in session.last_sync_error


def test_refresh_action_stops_at_a_refused_key(
    admin_client: Client, seed: dict[str, Any], mocked: Any
) -> None:
    store_session(variant(seed, 1))
    store_session(variant(seed, 2))
    mocked.get(session_url("ses_0001"), status=401, json={"error": "unauthorized"})
    mocked.get(session_url("ses_0002"), status=401, json={"error": "unauthorized"})

    response = run_action(admin_client, "ses_0001", "ses_0002")

    texts = message_texts(response)
    assert len(texts) == 1
    assert texts[0].startswith("Refresh stopped: Verilock refused the API key")
    assert len(mocked.calls) == 1


def test_refresh_action_without_api_key(
    admin_client: Client, stored: Session, settings: Any, mocked: Any
) -> None:
    settings.VERILOCK_API_KEY = ""

    response = run_action(admin_client, SEED_ID)

    assert message_texts(response) == [
        "Refresh stopped: VERILOCK_API_KEY is not set: the app cannot call the Verilock API."
    ]
    assert len(mocked.calls) == 0


def test_refresh_action_refuses_too_many_sessions(
    admin_client: Client, seed: dict[str, Any], mocked: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SessionAdmin, "refresh_limit", 1)
    store_session(variant(seed, 1))
    store_session(variant(seed, 2))

    response = run_action(admin_client, "ses_0001", "ses_0002")

    assert message_texts(response)[0].startswith("Select at most 1 sessions")
    assert len(mocked.calls) == 0


def test_refresh_button_on_the_change_page(
    admin_client: Client, seed: dict[str, Any], mocked: Any
) -> None:
    before = copy.deepcopy(seed)
    before["status"] = "processing"
    store_session(before)
    mocked.get(session_url(SEED_ID), json=seed)

    page = admin_client.get(change_url(SEED_ID)).content.decode()
    response = admin_client.post(refresh_url(SEED_ID))

    assert f'action="{refresh_url(SEED_ID)}"' in page
    assert response.status_code == 302
    assert response["Location"] == change_url(SEED_ID)
    assert message_texts(response) == ["Refreshed 1 session from Verilock (1 changed)."]
    assert Session.objects.get(pk=SEED_ID).status == "approved"


def test_refresh_button_is_post_only_with_csrf(
    admin_user: User, stored: Session, mocked: Any
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    assert client.get(refresh_url(SEED_ID)).status_code == 405
    assert client.post(refresh_url(SEED_ID)).status_code == 403  # no CSRF token
    assert len(mocked.calls) == 0


def test_session_timeline_shows_times_in_the_admins_time_zone() -> None:
    event_at(0, event_type="session.completed")  # 12:00 UTC

    with timezone.override("Europe/Paris"):
        html = webhook_timeline("ses_t")

    assert "March 14, 2025, 1 p.m." in html


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"decision": "declined"}, {"ses_a_face", "ses_b_aml"}),
        ({"decision": "none"}, {"ses_open"}),
        ({"type": "none"}, {"ses_b_aml"}),
        ({"failed_step": "face_match"}, {"ses_a_face"}),
        ({"failed_step": "aml"}, {"ses_b_aml"}),
        ({"step": "selfie"}, {"ses_a_face", "ses_open", "ses_ok"}),
        ({"step_outcome": "failed"}, {"ses_a_face", "ses_b_aml"}),
        ({"step": "aml", "step_outcome": "failed"}, {"ses_b_aml"}),
        ({"step": "aml", "step_outcome": "pending"}, {"ses_open"}),
        ({"risk": "critical"}, {"ses_b_aml"}),
        ({"risk": "low"}, set()),
        ({"risk": "none"}, {"ses_a_face", "ses_open", "ses_ok"}),
        ({"sync": "not_found"}, {"ses_ok"}),
        ({"decline_reason": "aml_match"}, {"ses_b_aml"}),
    ],
)
def test_review_filters(admin_client: Client, params: dict[str, str], expected: set[str]) -> None:
    store_session(
        session_payload("a", id="ses_a_face", status="declined", declined_step="face_match")
    )
    store_session(session_payload("b", id="ses_b_aml", status="declined", declined_step="aml"))
    store_session(session_payload("a", id="ses_open", status="processing"))
    store_session(session_payload("a", id="ses_ok"))
    Session.objects.filter(pk="ses_ok").update(
        last_sync_error="GET /sessions/ses_ok: not found (HTTP 404)"
    )

    response = admin_client.get(CHANGELIST, params)

    assert shown_ids(response) == expected


def test_risk_bands_split_the_documented_ranges(
    admin_client: Client, seed: dict[str, Any]
) -> None:
    for number, risk in enumerate((0, 25, 25.5, 50, 75, 76, 100)):
        store_session(variant(seed, number, risk_score=risk))

    bands = {
        band: shown_ids(admin_client.get(CHANGELIST, {"risk": band}))
        for band in ("low", "medium", "high", "critical")
    }

    assert bands == {
        "low": {"ses_0000", "ses_0001"},
        "medium": {"ses_0002", "ses_0003"},
        "high": {"ses_0004"},
        "critical": {"ses_0005", "ses_0006"},
    }
