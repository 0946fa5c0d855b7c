"""Sessions and the host's users: who a session verifies, and whether a user is verified.

Every helper meant for a request costs a constant number of queries, whatever the number of
sessions a user has:

=============================  ========  ===================================================
``latest_session(user)``       1 query   the user's newest session, or None
``is_verified(user)``          1 query   approved (within ``VERILOCK_VERIFIED_MAX_AGE``) and,
                                         with ``VERILOCK_DECLINE_REVOKES``, not declined since
``verification_required``      1 query   view decorator: login, then ``is_verified``, else
                                         the start flow (``verilock_verify:start?next=…``)
``VerificationRequiredMixin``  1 query   the same for class-based views
=============================  ========  ===================================================

(An anonymous user costs none; the authentication middleware's own queries are not counted.)
:func:`resolve_user` is the ``VERILOCK_USER_RESOLVER`` hook the store calls to link a
session created elsewhere.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.contrib.auth.mixins import AccessMixin
from django.contrib.auth.views import redirect_to_login
from django.db.models import F
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from .conf import verilock_settings
from .exceptions import describe_failure
from .models import Session
from .statuses import SessionStatus

logger = logging.getLogger(__name__)

#: Statuses in which the applicant still has something to do in the hosted flow: a session
#: in one of them (with a link that has not expired) is sent again rather than a new one.
RESUMABLE_STATUSES = frozenset({SessionStatus.CREATED.value, SessionStatus.IN_PROGRESS.value})

View = TypeVar("View", bound=Callable[..., HttpResponse])


def resolve_user(session_id: str, reference_id: str) -> Any:
    """The user ``VERILOCK_USER_RESOLVER`` names for ``reference_id``, or None.

    A resolver that fails or answers something other than a user leaves the session
    unlinked (logged without the reference, which may identify a person): storing a
    session never fails because of it.
    """
    resolver = verilock_settings.user_resolver
    if resolver is None:
        return None
    try:
        user = resolver(reference_id)
    except Exception as exc:  # the host's code: report it, never fail the store
        logger.error(
            "VERILOCK_USER_RESOLVER failed for session %s: %s", session_id, describe_failure(exc)
        )
        return None
    if user is None or isinstance(user, get_user_model()):
        return user
    logger.error(
        "VERILOCK_USER_RESOLVER answered a %s for session %s, not a user or None",
        type(user).__name__,
        session_id,
    )
    return None


def latest_session(user: Any) -> Session | None:
    """The user's newest session (by creation at Verilock), or None; one query."""
    if user is None or not user.is_authenticated:
        return None
    return (
        Session.objects.filter(user=user)
        .order_by(F("created_at").desc(nulls_last=True), "-first_synced_at", "-id")
        .first()
    )


def is_verified(user: Any) -> bool:
    """Whether ``user`` has an approved session that still counts; one query.

    An approval counts for ``VERILOCK_VERIFIED_MAX_AGE`` seconds from its completion (for
    ever when None). With ``VERILOCK_DECLINE_REVOKES`` (the default) only the user's latest
    decision counts, so a decline completed after the approval makes them unverified. An
    expired session is no decision and changes nothing.
    """
    if user is None or not user.is_authenticated:
        return False
    approved, declined = SessionStatus.APPROVED.value, SessionStatus.DECLINED.value
    decided = Session.objects.filter(user=user, status__in=(approved, declined)).annotate(
        decided_at=Coalesce("completed_at", "created_at", "first_synced_at")
    )
    max_age = verilock_settings.verified_max_age
    if not verilock_settings.decline_revokes:
        decided = decided.filter(status=approved)
    latest = (
        decided.order_by(F("decided_at").desc(nulls_last=True), "-id")
        .values_list("status", "decided_at")
        .first()
    )
    if latest is None or latest[0] != approved:
        return False
    return max_age is None or (
        latest[1] is not None and latest[1] >= timezone.now() - dt.timedelta(seconds=max_age)
    )


def is_resumable(session: Session) -> bool:
    """Whether the applicant can go on with ``session``: not started or not finished in the
    hosted flow, with a link that has not expired. No query."""
    return (
        session.status in RESUMABLE_STATUSES
        and bool(session.hosted_url)
        and (session.expires_at is None or session.expires_at > timezone.now())
    )


def start_url(next_url: str = "") -> str:
    """The start flow's URL, with ``next`` (where to go once verified) when given."""
    url = reverse("verilock_verify:start")
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def verification_required(view: View) -> View:
    """Decorate a view that needs a verified user.

    Anonymous users go to ``LOGIN_URL``; signed-in users who are not verified
    (:func:`is_verified`) go to the start flow, which brings them back afterwards.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not is_verified(request.user):
            return HttpResponseRedirect(start_url(request.get_full_path()))
        return view(request, *args, **kwargs)

    return wrapped  # type: ignore[return-value]


class VerificationRequiredMixin(AccessMixin):
    """For class-based views: like :func:`verification_required` (put it first in the bases)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if not is_verified(request.user):
            return HttpResponseRedirect(start_url(request.get_full_path()))
        response: HttpResponse = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        return response
