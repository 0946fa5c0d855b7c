"""Create a Verilock session for a user and store it, so the cron and webhooks follow it.

:func:`create_session` sends ``POST /sessions`` once, in the request shape
``VERILOCK_CREATE_SHAPE`` chooses (see :func:`build_body`), and stores the answer through
:func:`verilock_django.store.store_created`. :func:`session_for_user` is what the start flow
calls: the user's resumable session if there is one, else a new one.

The request is never retried: Verilock does not document ``POST /sessions`` as idempotent, so
a second attempt could create a second session. What each failure means:

=================================  ================================================================
``FieldValidationError`` (422)     refused; ``field_errors`` holds the provider's field messages
other ``ApiError`` (400, 401, …)   refused; nothing exists at Verilock
``CreateOutcomeUnknownError``      timeout, lost connection, 5xx or an unreadable 2xx body: the
                                   session may exist at Verilock; nothing was stored here.
                                   ``sync_verilock_sessions --discover`` imports it if it does
``StorageError``                   created at Verilock but not stored here (the message names the
                                   id; ``sync_verilock_sessions <id>`` stores it)
=================================  ================================================================

Cost: one HTTP request, then three or four queries in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .client import VerilockClient, get_client
from .conf import verilock_settings
from .exceptions import (
    CreateOutcomeUnknownError,
    InvalidResponseError,
    PayloadError,
    ServerError,
    StorageError,
    TransportError,
    VerilockConfigurationError,
    describe_failure,
)
from .models import Session
from .payloads import parse_session
from .store import store_created
from .users import is_resumable, latest_session

logger = logging.getLogger(__name__)

RECONCILE_HINT = (
    "run `manage.py sync_verilock_sessions --discover --since <today>` to import it if it "
    "exists (it is linked to its user through VERILOCK_USER_RESOLVER), or retry with the "
    "same idempotency key"
)


@dataclass(frozen=True)
class CreatedSession:
    """A session ready for the applicant: the stored row and the URL to send them to.

    ``created`` is False when :func:`session_for_user` reused an open session.
    """

    session: Session
    url: str
    created: bool = True


def build_body(
    *,
    shape: str,
    reference_id: str = "",
    redirect_url: str = "",
    applicant_email: str = "",
    applicant_first_name: str = "",
    applicant_last_name: str = "",
    profile_id: str = "",
    steps: Sequence[str] = (),
    expires_in: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``POST /sessions`` body in ``shape`` ``"b"`` or ``"a"``; empty values are left out.

    ``"b"``: ``profile_id`` (required), ``external_id``, ``applicant_email``,
    ``applicant_name`` (first and last joined), ``redirect_url``, ``expires_in``,
    ``metadata``. ``"a"``: ``type="kyc"``, ``steps`` and ``applicant{first_name, last_name,
    email}`` (required), ``reference_id``, ``redirect_url``; ``expires_in`` and ``metadata``
    have no place in it. Raises ``ValueError`` for an unknown shape.
    """
    if shape == "b":
        name = f"{applicant_first_name} {applicant_last_name}".strip()
        body: dict[str, Any] = {
            "profile_id": profile_id,
            "external_id": reference_id,
            "applicant_email": applicant_email,
            "applicant_name": name,
            "redirect_url": redirect_url,
            "expires_in": expires_in,
            "metadata": dict(metadata) if metadata else None,
        }
    elif shape == "a":
        applicant = {
            "first_name": applicant_first_name,
            "last_name": applicant_last_name,
            "email": applicant_email,
        }
        body = {
            "type": "kyc",
            "steps": list(steps),
            "applicant": {key: value for key, value in applicant.items() if value},
            "reference_id": reference_id,
            "redirect_url": redirect_url,
        }
    else:
        raise ValueError(f"Unknown request shape {shape!r}: expected 'b' or 'a'.")
    return {key: value for key, value in body.items() if value not in (None, "")}


def create_session(
    *,
    user: Any = None,
    reference_id: str | None = None,
    redirect_url: str = "",
    applicant_email: str | None = None,
    applicant_first_name: str | None = None,
    applicant_last_name: str | None = None,
    profile_id: str | None = None,
    steps: Sequence[str] | None = None,
    expires_in: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    shape: str | None = None,
    idempotency_key: str | None = None,
    client: VerilockClient | None = None,
) -> CreatedSession:
    """Create a session at Verilock, store it linked to ``user``, return it with its URL.

    ``reference_id`` defaults to the user's primary key. ``shape`` defaults to
    ``VERILOCK_CREATE_SHAPE``, ``profile_id`` to ``VERILOCK_PROFILE_ID`` and ``steps`` to
    ``VERILOCK_CREATE_STEPS``. The applicant's name and email are sent only when given, except
    in shape ``"a"``, which requires them: there, missing ones are taken from the user's
    ``first_name``, ``last_name`` and ``email``. Errors: see the module docstring; a shape
    ``"b"`` request without a profile raises
    :class:`~verilock_django.exceptions.VerilockConfigurationError` before sending anything.
    """
    shape = shape or verilock_settings.create_shape
    if reference_id is None:
        reference_id = str(user.pk) if user is not None else ""
    if shape == "a" and user is not None:
        applicant_first_name = applicant_first_name or getattr(user, "first_name", "")
        applicant_last_name = applicant_last_name or getattr(user, "last_name", "")
        applicant_email = applicant_email or getattr(user, "email", "")
    profile_id = profile_id or verilock_settings.profile_id
    if shape == "b" and not profile_id:
        raise VerilockConfigurationError(
            'VERILOCK_PROFILE_ID is not set: creating a session in shape "b" needs a '
            'verification profile (or set VERILOCK_CREATE_SHAPE = "a").'
        )
    body = build_body(
        shape=shape,
        reference_id=reference_id,
        redirect_url=redirect_url,
        applicant_email=applicant_email or "",
        applicant_first_name=applicant_first_name or "",
        applicant_last_name=applicant_last_name or "",
        profile_id=profile_id,
        steps=steps if steps is not None else verilock_settings.create_steps,
        expires_in=expires_in,
        metadata=metadata,
    )
    client = client or get_client()
    try:
        answer = client.create_session(body, idempotency_key=idempotency_key)
        session_id = parse_session(answer).id
    except (TransportError, ServerError, InvalidResponseError, PayloadError) as exc:
        raise CreateOutcomeUnknownError(
            f"Creating a Verilock session failed and was not retried ({exc}); Verilock may "
            f"or may not have created it, and nothing was stored here: {RECONCILE_HINT}.",
            cause=exc,
            status_code=exc.status_code,
            error_code=exc.error_code,
            request_id=exc.request_id,
        ) from exc
    try:
        store_created(
            answer, user_id=user.pk if user is not None else None, reference_id=reference_id
        )
    except Exception as exc:
        raise StorageError(
            f"Verilock created session {session_id}, but storing it failed "
            f"({describe_failure(exc)}); `manage.py sync_verilock_sessions {session_id}` "
            "stores it.",
            session_id=session_id,
        ) from exc
    session = Session.objects.get(pk=session_id)
    logger.info("Created Verilock session %s", session_id)
    return CreatedSession(session=session, url=session.hosted_url)


def session_for_user(user: Any, *, redirect_url: str = "", **options: Any) -> CreatedSession:
    """The user's latest session if they can still go on with it, else a new one.

    Reusing means one click after another sends the user back to the same hosted flow
    instead of creating a session (billed by Verilock) per click. ``options`` go to
    :func:`create_session`. Two queries, plus a create when nothing is resumable.
    """
    latest = latest_session(user)
    if latest is not None and is_resumable(latest):
        return CreatedSession(session=latest, url=latest.hosted_url, created=False)
    return create_session(user=user, redirect_url=redirect_url, **options)
