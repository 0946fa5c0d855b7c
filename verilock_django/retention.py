"""Retention: delete the local copy of personal data once it is no longer needed.

Only finished sessions are purged (an unfinished one is still being verified), together
with their step results and webhook events; webhook events that are done with (processed
or ignored) are purged by age as well. Deletes run in chunks, so memory stays flat.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q, QuerySet

from .models import Session, StepResult, WebhookEvent, WebhookEventStatus

CHUNK_SIZE = 500


@dataclass
class PurgeReport:
    """What a purge deleted (or, on a dry run, would delete)."""

    sessions: int = 0
    step_results: int = 0
    webhook_events: int = 0

    def summary(self, *, dry_run: bool = False) -> str:
        """One line for the command's output."""
        verb = "Would delete" if dry_run else "Deleted"
        return (
            f"{verb} {self.sessions} session(s), {self.step_results} step result(s) and "
            f"{self.webhook_events} webhook event(s)."
        )


def purgeable_sessions(before: dt.datetime) -> QuerySet[Session]:
    """Finished sessions completed (else last synced) before ``before``."""
    return Session.objects.finished().filter(
        Q(completed_at__lt=before) | Q(completed_at__isnull=True, last_synced_at__lt=before)
    )


def purgeable_events(before: dt.datetime) -> QuerySet[WebhookEvent]:
    """Webhook events received before ``before`` that need no more processing."""
    done = (WebhookEventStatus.PROCESSED, WebhookEventStatus.IGNORED)
    return WebhookEvent.objects.filter(received_at__lt=before, status__in=done)


def purge(before: dt.datetime, *, dry_run: bool = False) -> PurgeReport:
    """Delete finished sessions and finished-with webhook events older than ``before``."""
    report = PurgeReport()
    sessions = purgeable_sessions(before)
    if dry_run:
        report.sessions = sessions.count()
        report.step_results = StepResult.objects.filter(session__in=sessions).count()
        report.webhook_events = WebhookEvent.objects.filter(
            Q(session_id__in=sessions.values("id")) | Q(pk__in=purgeable_events(before))
        ).count()
        return report

    while ids := list(sessions.order_by("pk").values_list("pk", flat=True)[:CHUNK_SIZE]):
        with transaction.atomic():
            report.webhook_events += WebhookEvent.objects.filter(session_id__in=ids).delete()[0]
            report.step_results += StepResult.objects.filter(session_id__in=ids).delete()[0]
            # Counted apart from the rows deleted with them (their history).
            report.sessions += (
                Session.objects.filter(pk__in=ids).delete()[1].get(Session._meta.label, 0)
            )
    events = purgeable_events(before)
    while event_ids := list(events.order_by("pk").values_list("pk", flat=True)[:CHUNK_SIZE]):
        report.webhook_events += WebhookEvent.objects.filter(pk__in=event_ids).delete()[0]
    return report
