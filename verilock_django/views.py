"""The ready-made start flow: send a signed-in user to Verilock and show where they stand.

Included with ``path("verify/", include("verilock_django.urls_verify"))``. Every view needs
a signed-in user (others go to ``LOGIN_URL``). Templates under
``verilock_django/verify/`` (``base.html``, ``start.html``, ``status.html``) can be
overridden by the host.

=============  ====  ===========================================================================
``start``      GET   200: the start page (302 to ``status`` when verified or being checked)
               POST  CSRF-protected. 302 to Verilock's hosted page: the user's resumable session,
                     else a new one (:func:`verilock_django.create.session_for_user`); 302 to
                     ``status`` when there is nothing to start; 503 with the start page when
                     Verilock cannot be reached or refuses (logged; details never shown)
``return``     GET   ``redirect_url`` of created sessions: refreshes the user's session once
                     (one ``GET /sessions/{id}``, only if unfinished), then 302 to ``status``
``status``     GET   200: verified / we are checking / declined — try again (the reason code put
                     into words) / expired / not finished; 302 to ``start`` with no session
=============  ====  ===========================================================================

``next`` (where to go once verified) is kept only if it is a URL of this site
(``url_has_allowed_host_and_scheme``), so the flow is no open redirect; the only outside
URL it redirects to is the hosted page from Verilock's own answer, and only if http(s).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_GET, require_http_methods

from .create import session_for_user
from .exceptions import PayloadError, VerilockError
from .models import Session
from .payloads import decline_reason, parse_session_id
from .statuses import SessionStatus
from .sync import sync_session
from .users import is_resumable, is_verified, latest_session

logger = logging.getLogger(__name__)

#: Where a safe ``next`` URL waits while the user is at Verilock.
NEXT_KEY = "verilock_next"

#: Decline reason codes (step names, or Gen B ``decline_reason`` values) in the applicant's
#: words. Screening (``aml``) and unknown codes get the generic text: telling an applicant
#: why a screening failed may be unlawful ("tipping off").
REASON_TEXT: dict[str, str | Promise] = {
    "document": gettext_lazy(
        "We could not verify your identity document. Use a valid document and make "
        "sure the photo is sharp and shows all of it."
    ),
    "selfie": gettext_lazy(
        "We could not use your selfie. Take it in good light, facing the camera."
    ),
    "face_match": gettext_lazy("Your selfie did not match the photo on your document."),
    "liveness": gettext_lazy(
        "We could not confirm that your selfie was taken live. Try again in good "
        "light, in front of the camera yourself."
    ),
    "expired": gettext_lazy("The verification link expired before the check was finished."),
    "outdated": gettext_lazy("Your last verification is too old to count. Please verify again."),
}
# Gen B's decline_reason values are not documented; these are the SDK-style codes seen so far.
REASON_TEXT.update(
    document_expired=gettext_lazy("Your identity document has expired. Use a valid one."),
    selfie_rejected=REASON_TEXT["selfie"],
    face_mismatch=REASON_TEXT["face_match"],
    liveness_failed=REASON_TEXT["liveness"],
)
GENERIC_REASON = gettext_lazy(
    "We could not complete your verification. Contact us if this keeps happening."
)

#: Statuses in which Verilock is checking what the applicant sent: nothing to start.
CHECKING_STATUSES = frozenset(
    {SessionStatus.PROCESSING.value, SessionStatus.REVIEW.value, SessionStatus.COMPLETED.value}
)


def reason_text(code: str) -> str:
    """A decline reason code in the applicant's words (the generic text if unknown)."""
    return str(REASON_TEXT.get(code, GENERIC_REASON))


@login_required
@csrf_protect
@require_http_methods(["GET", "POST"])
def start(request: HttpRequest) -> HttpResponse:
    """The start page (GET) and the start itself (POST); see the module docstring."""
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next", ""))
    if request.method == "GET":
        if is_verified(request.user):
            return _after_verified(request, next_url)
        latest = latest_session(request.user)
        if latest is not None and latest.status in CHECKING_STATUSES:
            return redirect("verilock_verify:status")
        resumable = latest is not None and is_resumable(latest)
        context = {"next_url": next_url, "resumable": resumable}
        return render(request, "verilock_django/verify/start.html", context)

    if next_url:
        request.session[NEXT_KEY] = next_url
    if is_verified(request.user):
        return _after_verified(request, next_url)
    latest = latest_session(request.user)
    if latest is not None and latest.status in CHECKING_STATUSES:
        return redirect("verilock_verify:status")
    try:
        started = session_for_user(
            request.user,
            redirect_url=request.build_absolute_uri(reverse("verilock_verify:return")),
        )
    except (VerilockError, ImproperlyConfigured) as exc:
        logger.error("Could not start a Verilock session for user %s: %s", request.user.pk, exc)
        context = {
            "next_url": next_url,
            "error": _("Verification cannot start right now. Please try again in a few minutes."),
        }
        return render(request, "verilock_django/verify/start.html", context, status=503)
    if urlsplit(started.url).scheme not in ("http", "https"):
        logger.error("Verilock session %s has no usable hosted URL", started.session.pk)
        context = {"next_url": next_url, "error": _("Verification cannot start right now.")}
        return render(request, "verilock_django/verify/start.html", context, status=503)
    return HttpResponseRedirect(started.url)


@login_required
@require_GET
def return_from_verilock(request: HttpRequest) -> HttpResponse:
    """Where Verilock sends the user back: refresh their session once, then show the status.

    A ``session_id`` query parameter is used only if it names one of the user's own sessions
    (and is a usable session id at all: :func:`~verilock_django.payloads.parse_session_id`).
    """
    session: Session | None = None
    try:
        # Checked as every door checks an id: a NUL in it made PostgreSQL refuse the query.
        wanted = parse_session_id(request.GET.get("session_id"), "session_id")
    except PayloadError:
        wanted = ""
    if wanted and request.user.pk is not None:
        session = Session.objects.filter(pk=wanted, user_id=request.user.pk).first()
    if session is None:
        session = latest_session(request.user)
    if session is not None and not session.is_finished:
        try:
            sync_session(session.pk)
        except VerilockError as exc:
            # The status page shows what is stored; the webhook or the cron catches up.
            logger.warning("Refreshing Verilock session %s on return failed: %s", session.pk, exc)
    return redirect("verilock_verify:status")


@login_required
@require_GET
def status(request: HttpRequest) -> HttpResponse:
    """Where the user stands: verified, being checked, declined, expired or not finished."""
    next_url = _safe_next(request, request.session.get(NEXT_KEY, ""))
    context: dict[str, Any] = {"next_url": next_url, "reason": ""}
    if is_verified(request.user):
        context["state"] = "verified"
        return render(request, "verilock_django/verify/status.html", context)
    session = latest_session(request.user)
    if session is None:
        return redirect("verilock_verify:start")
    context["session"] = session
    if is_resumable(session):
        context["state"] = "resume"
    elif session.status == SessionStatus.DECLINED:
        code = decline_reason(session.payload)
        context.update(state="declined", reason_code=code, reason=reason_text(code))
    elif session.status == SessionStatus.APPROVED:
        # Approved, yet not verified: older than VERILOCK_VERIFIED_MAX_AGE.
        context.update(state="expired", reason_code="outdated", reason=reason_text("outdated"))
    elif session.is_finished or session.status in (
        SessionStatus.CREATED,
        SessionStatus.IN_PROGRESS,
    ):
        # Expired at Verilock, or a link that ran out before the applicant finished.
        context.update(state="expired", reason_code="expired", reason=reason_text("expired"))
    else:
        context["state"] = "checking"
    return render(request, "verilock_django/verify/status.html", context)


def _safe_next(request: HttpRequest, url: str) -> str:
    """``url`` if it stays on this site (same host, no scheme change), else ``""``."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return ""


def _after_verified(request: HttpRequest, next_url: str) -> HttpResponse:
    request.session.pop(NEXT_KEY, None)
    return HttpResponseRedirect(next_url) if next_url else redirect("verilock_verify:status")
