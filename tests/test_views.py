"""The start flow end to end: Django's test client, the in-process fake Verilock, the webhook."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone

from verilock_django.models import Session
from verilock_django.testing.responses_api import InProcessVerilock
from verilock_django.testing.webhooks import signed_webhook
from verilock_django.users import is_verified

pytestmark = pytest.mark.django_db

SECRET = "whsec_views"


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create_user("ana", password="pw")


@pytest.fixture
def browser(user: Any) -> Client:
    """A signed-in browser that enforces CSRF like a real one."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def start(browser: Client, **data: str) -> Any:
    """GET the start page, then POST its form with the CSRF token, as a browser would."""
    page = browser.get("/verify/")
    assert page.status_code == 200
    token = page.context["csrf_token"]
    return browser.post("/verify/", {"csrfmiddlewaretoken": str(token), **data})


def deliver_last_webhook(api: InProcessVerilock, client: Client, on_commit: Any) -> None:
    """Post the fake's latest webhook envelope to the app's endpoint, signed; run what the
    endpoint leaves for after the commit (processing the event)."""
    body, headers = signed_webhook(api.webhook_events[-1], SECRET)
    with on_commit(execute=True):
        response = client.post(
            "/verilock/webhook/", body, content_type="application/json", headers=headers
        )
    assert response.status_code == 200


@override_settings(VERILOCK_WEBHOOK_SECRETS=[SECRET], VERILOCK_WEBHOOK_PROCESSOR="sync")
def test_not_verified_to_redirected_to_returns_to_status_page_to_verified_after_the_webhook(
    verilock_api: InProcessVerilock,
    browser: Client,
    user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    assert not is_verified(user)

    response = start(browser)
    (session,) = Session.objects.filter(user=user)
    assert response.status_code == 302
    assert response["Location"] == session.hosted_url
    assert response["Location"].startswith("https://verilock.io/verify/tok_")

    # A second click sends the user back to the same hosted flow.
    again = start(browser)
    assert again["Location"] == session.hosted_url
    assert len(verilock_api.sessions) == 1

    # At Verilock the applicant sends documents; Verilock sends them back to redirect_url.
    verilock_api.advance(session.pk)
    verilock_api.reset_counters()
    returned = browser.get("/verify/return/")
    assert (returned.status_code, returned["Location"]) == (302, "/verify/status/")
    assert verilock_api.requests_for(session.pk) == 1  # refreshed once
    page = browser.get("/verify/status/")
    assert page.context["state"] == "checking"
    assert b"We are checking your documents" in page.content

    verilock_api.complete(session.pk, "approved")
    deliver_last_webhook(verilock_api, Client(), django_capture_on_commit_callbacks)

    page = browser.get("/verify/status/")
    assert page.context["state"] == "verified"
    assert b"You are verified" in page.content
    assert is_verified(user)


def test_a_declined_user_sees_the_reason_in_words_and_can_try_again(
    verilock_api: InProcessVerilock, browser: Client, user: Any
) -> None:
    start(browser)
    first = Session.objects.get(user=user)
    verilock_api.complete(first.pk, "declined", declined_step="face_match")
    browser.get("/verify/return/")

    page = browser.get("/verify/status/")
    assert page.context["state"] == "declined"
    assert page.context["reason_code"] in ("face_match", "face_mismatch")  # Gen A, Gen B
    assert b"Your selfie did not match the photo on your document." in page.content
    assert b"Try again" in page.content

    retry = start(browser)
    second = Session.objects.exclude(pk=first.pk).get(user=user)
    assert retry["Location"] == second.hosted_url


def test_starting_needs_a_csrf_token_and_a_signed_in_user(
    verilock_api: InProcessVerilock, browser: Client
) -> None:
    assert browser.post("/verify/").status_code == 403
    anonymous = Client()
    for url in ("/verify/", "/verify/return/", "/verify/status/"):
        response = anonymous.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert verilock_api.total_requests == 0
    assert not Session.objects.exists()


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "javascript:alert(1)"]
)
def test_next_never_leaves_the_site(
    verilock_api: InProcessVerilock, browser: Client, user: Any, target: str
) -> None:
    start(browser, next=target)
    session = Session.objects.get(user=user)
    verilock_api.complete(session.pk, "approved")
    browser.get("/verify/return/")

    page = browser.get("/verify/status/")
    assert page.context["state"] == "verified"
    assert page.context["next_url"] == ""
    assert b"evil" not in page.content and b"javascript" not in page.content
    assert browser.get(f"/verify/?next={target}")["Location"] == "/verify/status/"


def test_next_on_this_site_is_where_a_verified_user_goes(
    verilock_api: InProcessVerilock, browser: Client, user: Any
) -> None:
    start(browser, next="/payouts/?tab=1")
    session = Session.objects.get(user=user)
    verilock_api.complete(session.pk, "approved")
    browser.get("/verify/return/")

    page = browser.get("/verify/status/")
    assert page.context["next_url"] == "/payouts/?tab=1"
    assert browser.get("/verify/?next=/payouts/")["Location"] == "/payouts/"


def test_when_verilock_fails_the_start_page_says_so_and_nothing_is_stored(
    verilock_api: InProcessVerilock, browser: Client
) -> None:
    verilock_api.fail_next(status=503)
    response = start(browser)
    assert response.status_code == 503
    assert b"Verification cannot start right now" in response.content
    assert b"503" not in response.content  # no provider detail shown to the user
    assert not Session.objects.exists()


def test_the_return_view_ignores_a_session_id_of_another_user(
    verilock_api: InProcessVerilock, browser: Client, user: Any
) -> None:
    other = get_user_model().objects.create_user("bob")
    remote = verilock_api.add_session(status="processing")
    Session.objects.create(id=remote.id, user=other, status="processing")
    start(browser)
    mine = Session.objects.get(user=user)
    verilock_api.reset_counters()

    browser.get(f"/verify/return/?session_id={remote.id}")

    assert verilock_api.requests_for(remote.id) == 0
    assert verilock_api.requests_for(mine.pk) == 1


@pytest.mark.parametrize("wanted", ["ses_%00x", "%00", "ses%2F..%2Fx", "x" * 300])
def test_the_return_view_ignores_a_session_id_that_is_no_session_id(
    verilock_api: InProcessVerilock, browser: Client, user: Any, wanted: str
) -> None:
    start(browser)
    mine = Session.objects.get(user=user)
    verilock_api.reset_counters()

    # PostgreSQL refused a query holding NUL: the view answered 500.
    response = browser.get(f"/verify/return/?session_id={wanted}")

    assert response.status_code == 302 and response["Location"] == "/verify/status/"
    assert verilock_api.requests_for(mine.pk) == 1  # the user's own session instead


def test_status_without_any_session_goes_to_the_start_page(browser: Client) -> None:
    assert browser.get("/verify/status/")["Location"] == "/verify/"


def test_the_templates_can_be_overridden_by_the_host(
    verilock_api: InProcessVerilock, browser: Client, tmp_path: Any, settings: Any
) -> None:
    folder = tmp_path / "verilock_django" / "verify"
    folder.mkdir(parents=True)
    (folder / "start.html").write_text("HOST START PAGE {{ resumable }}")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    assert browser.get("/verify/").content == b"HOST START PAGE False"


@pytest.mark.parametrize(
    ("status", "fields", "state", "words"),
    [
        ("expired", {}, "expired", b"The verification link expired"),
        ("created", {"expires_at": "past"}, "expired", b"The verification link expired"),
        ("approved", {"completed_at": "past"}, "expired", b"too old to count"),
        ("created", {"hosted_url": "https://verilock.io/verify/x"}, "resume", b"Continue"),
    ],
)
@override_settings(VERILOCK_VERIFIED_MAX_AGE=86400)
def test_the_status_page_says_why_the_user_must_start_again(
    browser: Client, user: Any, status: str, fields: dict[str, Any], state: str, words: bytes
) -> None:
    past = timezone.now() - dt.timedelta(days=3)
    values = {key: past if value == "past" else value for key, value in fields.items()}
    Session.objects.create(id="ses_1", user=user, status=status, created_at=past, **values)
    page = browser.get("/verify/status/")
    assert page.context["state"] == state
    assert words in page.content
