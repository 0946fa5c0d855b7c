"""Sessions and users: is_verified, latest_session, the view guards, the resolver hook."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from django.utils import timezone
from django.views import View

from verilock_django.models import Session
from verilock_django.store import store_session
from verilock_django.testing.factories import session_payload
from verilock_django.users import (
    VerificationRequiredMixin,
    is_verified,
    latest_session,
    verification_required,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def user() -> Any:
    return get_user_model().objects.create_user("ana")


def add(user: Any, status: str, *, completed: dt.datetime | None, **fields: Any) -> Session:
    """A stored session of ``user`` in ``status``, completed at ``completed``."""
    number = Session.objects.count()
    return Session.objects.create(
        id=f"ses_{number}",
        user=user,
        status=status,
        completed_at=completed,
        created_at=(completed or timezone.now()) - dt.timedelta(minutes=10),
        **fields,
    )


def ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def test_an_approved_session_verifies_and_an_open_one_does_not(user: Any) -> None:
    add(user, "processing", completed=None)
    assert not is_verified(user)
    add(user, "approved", completed=ago(1))
    assert is_verified(user)


def test_a_later_decline_revokes_unless_the_setting_says_otherwise(user: Any) -> None:
    add(user, "approved", completed=ago(10))
    add(user, "declined", completed=ago(1))
    assert not is_verified(user)
    with override_settings(VERILOCK_DECLINE_REVOKES=False):
        assert is_verified(user)


def test_an_earlier_decline_does_not_count_against_a_later_approval(user: Any) -> None:
    add(user, "declined", completed=ago(10))
    add(user, "approved", completed=ago(1))
    add(user, "expired", completed=None)  # an expired session decides nothing
    assert is_verified(user)


def test_an_approval_stops_counting_after_the_max_age(user: Any) -> None:
    add(user, "approved", completed=ago(400))
    assert is_verified(user)
    with override_settings(VERILOCK_VERIFIED_MAX_AGE=365 * 86400):
        assert not is_verified(user)
        add(user, "approved", completed=ago(30))
        assert is_verified(user)


def test_another_users_approval_does_not_verify(user: Any) -> None:
    other = get_user_model().objects.create_user("bob")
    add(other, "approved", completed=ago(1))
    assert not is_verified(user)
    assert not is_verified(AnonymousUser())


@pytest.mark.parametrize("sessions", [1, 26])
def test_is_verified_and_latest_session_cost_one_query_each_whatever_the_history(
    user: Any, sessions: int, django_assert_num_queries: Any
) -> None:
    for index in range(sessions):
        add(user, "declined" if index % 2 else "approved", completed=ago(sessions - index))
    newest = add(user, "created", completed=None)
    with django_assert_num_queries(1):
        verified = is_verified(user)
    with django_assert_num_queries(1):
        latest = latest_session(user)
    assert verified is (sessions == 1)  # with 26 the last decision is a decline
    assert latest == newest
    with django_assert_num_queries(0):
        assert latest_session(AnonymousUser()) is None
        assert is_verified(AnonymousUser()) is False


@verification_required
def payouts(request: HttpRequest) -> HttpResponse:
    return HttpResponse("secret")


class PayoutsView(VerificationRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("secret")


@pytest.mark.parametrize("view", [payouts, PayoutsView.as_view()], ids=["decorator", "mixin"])
def test_the_guards_send_strangers_to_login_and_unverified_users_to_the_start_flow(
    user: Any, view: Any, django_assert_num_queries: Any
) -> None:
    request = RequestFactory().get("/payouts/?x=1")
    request.user = AnonymousUser()
    response = view(request)
    assert (response.status_code, response["Location"]) == (
        302,
        "/accounts/login/?next=/payouts/%3Fx%3D1",
    )

    request.user = user
    with django_assert_num_queries(1):
        response = view(request)
    assert (response.status_code, response["Location"]) == (
        302,
        "/verify/?next=%2Fpayouts%2F%3Fx%3D1",
    )

    add(user, "approved", completed=ago(1))
    with django_assert_num_queries(1):
        response = view(request)
    assert (response.status_code, response.content) == (200, b"secret")


# -- the resolver hook ----------------------------------------------------------------

RESOLVED: dict[str, Any] = {}


def resolve(reference_id: str) -> Any:
    """The test's VERILOCK_USER_RESOLVER."""
    if reference_id == "boom":
        raise RuntimeError("the host's resolver is broken")
    if reference_id == "wrong":
        return "not a user"
    return get_user_model().objects.filter(username=reference_id).first()


@override_settings(VERILOCK_USER_RESOLVER="tests.test_users.resolve")
def test_a_session_created_elsewhere_is_linked_by_the_resolver(user: Any) -> None:
    store_session(session_payload(id="ses_else", reference_id="ana"))
    assert Session.objects.get(pk="ses_else").user == user


@override_settings(VERILOCK_USER_RESOLVER="tests.test_users.resolve")
def test_a_row_registered_by_id_is_linked_once_its_reference_arrives(user: Any) -> None:
    Session.objects.create(id="ses_pending")
    store_session(session_payload(id="ses_pending", reference_id="ana"))
    assert Session.objects.get(pk="ses_pending").user == user


@override_settings(VERILOCK_USER_RESOLVER="tests.test_users.resolve")
@pytest.mark.parametrize("reference", ["boom", "wrong", "nobody"])
def test_a_failing_or_odd_resolver_leaves_the_session_stored_and_unlinked(
    reference: str, caplog: pytest.LogCaptureFixture
) -> None:
    store_session(session_payload(id="ses_odd", reference_id=reference))
    session = Session.objects.get(pk="ses_odd")
    assert session.user is None and session.status == "approved"
    assert all(reference not in record.getMessage() for record in caplog.records)


def test_without_a_resolver_sessions_created_elsewhere_stay_unlinked(user: Any) -> None:
    store_session(session_payload(id="ses_plain", reference_id="ana"))
    assert Session.objects.get(pk="ses_plain").user is None
