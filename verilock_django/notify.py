"""Signals after commit: ``session_updated`` and ``session_finished`` (at least once).

The need to send ``session_finished`` is stored with the change
(``Session.finished_signal_pending``) and cleared only once every receiver ran without
raising; :func:`deliver_pending_finished` sends what is still owed (each batch refresh calls
it first). Receivers' errors are logged with the session id and the error's type only.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from .exceptions import describe_failure
from .models import Session
from .signals import session_finished, session_updated

logger = logging.getLogger(__name__)


def after_commit(
    session: Session, *, created: bool, changes: dict[str, tuple[Any, Any]], updated: bool = True
) -> None:
    """Send the signals once the transaction commits (never on rollback)."""

    def send() -> None:
        if updated:
            for receiver, result in session_updated.send_robust(
                sender=Session, session=session, created=created, changes=changes
            ):
                if isinstance(result, Exception):
                    _log_receiver_failure("session_updated", receiver, session.pk, result)
        if session.finished_signal_pending:
            send_finished(session)

    transaction.on_commit(send)


def send_finished(session: Session) -> None:
    """Send ``session_finished``; clear the pending mark only if every receiver succeeded."""
    failed = False
    for receiver, result in session_finished.send_robust(sender=Session, session=session):
        if isinstance(result, Exception):
            failed = True
            _log_receiver_failure("session_finished", receiver, session.pk, result)
    if not failed:
        Session.objects.filter(pk=session.pk, finished_signal_pending=True).update(
            finished_signal_pending=False
        )
        session.finished_signal_pending = False


def _log_receiver_failure(
    signal: str, receiver: object, session_id: str, error: Exception
) -> None:
    # The receiver's own message may quote applicant data: only its type is logged.
    logger.error(
        "A %s receiver (%s) failed for Verilock session %s: %s",
        signal,
        getattr(receiver, "__qualname__", type(receiver).__name__),
        session_id,
        describe_failure(error),
    )


def deliver_pending_finished(*, limit: int = 500) -> int:
    """Send ``session_finished`` again for sessions whose earlier sending did not complete.

    Returns how many sessions were sent. Called at the start of every batch refresh.
    """
    pending = list(Session.objects.filter(finished_signal_pending=True).order_by("pk")[:limit])
    for session in pending:
        send_finished(session)
    return len(pending)
