"""``manage.py process_verilock_webhooks``: (re)process stored webhook events (cron-friendly)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q, QuerySet

from ...models import WebhookEvent, WebhookEventStatus
from ...processing import ProcessOutcome, process_events, stale_before
from ..arguments import MAX_COUNT, MAX_LIMIT, bounded_int, moment, text

# The largest primary key (a 64-bit integer): longer digit strings can only be webhook ids.
_MAX_PK = 2**63 - 1


class Command(BaseCommand):
    help = (
        "Process stored Verilock webhook events. By default: pending and failed events (below "
        "--max-attempts) and events left 'processing' by a process that died."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--failed", action="store_true", help="Only failed events, whatever their attempts."
        )
        parser.add_argument(
            "--id",
            action="append",
            dest="ids",
            type=text,
            default=[],
            metavar="ID",
            help="Reprocess this event (webhook id or primary key), whatever its status. "
            "Repeatable.",
        )
        parser.add_argument(
            "--since",
            type=moment,
            metavar="WHEN",
            help="Only events received since WHEN: an ISO date or datetime, or 30m / 6h / 2d.",
        )
        parser.add_argument(
            "--max-attempts",
            type=bounded_int(1, MAX_COUNT),
            default=10,
            metavar="N",
            help="By default, leave failed events alone after N attempts (default 10).",
        )
        parser.add_argument(
            "--limit",
            type=bounded_int(1, MAX_LIMIT),
            metavar="N",
            help="Process at most N events.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List the events that would be processed."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        ids: list[str] = options["ids"]
        limit: int | None = options["limit"]
        events = _select(ids, options["failed"], options["since"], options["max_attempts"])
        if limit is not None:
            events = events[:limit]
        selected = list(events.values_list("pk", "webhook_id", "event_type", "session_id"))

        if options["dry_run"]:
            for pk, webhook_id, event, session_id in selected:
                self.stdout.write(f"{pk} {webhook_id} {event} {session_id}")
            self.stdout.write(f"Dry run: {len(selected)} event(s) would be processed.")
            return

        names = {pk: webhook_id for pk, webhook_id, _, _ in selected}
        verbosity: int = options["verbosity"]

        def on_result(event_id: int, outcome: ProcessOutcome) -> None:
            if verbosity >= 2 and outcome is not ProcessOutcome.FAILED:
                self.stdout.write(f"{names[event_id]}: {outcome.value}")

        # --id is a deliberate request: reprocess even a processed or ignored event.
        report = process_events(names, force=bool(ids), on_result=on_result)
        for event_id, error in report.failed.items():
            self.stderr.write(f"{names[event_id]}: failed: {error}")
        if verbosity >= 1:
            self.stdout.write(report.summary())
        if report.failed:
            raise CommandError(f"{len(report.failed)} event(s) failed.", returncode=1)


def _select(
    ids: list[str], failed: bool, since: dt.datetime | None, max_attempts: int
) -> QuerySet[WebhookEvent]:
    events = WebhookEvent.objects.all()
    if ids:
        wanted = Q(webhook_id__in=ids)
        numeric = [
            number
            for number in (int(value) for value in ids if value.isascii() and value.isdigit())
            if number <= _MAX_PK
        ]
        if numeric:
            wanted |= Q(pk__in=numeric)
        events = events.filter(wanted)
    elif failed:
        events = events.filter(status=WebhookEventStatus.FAILED)
    else:
        events = events.claimable(stale_before=stale_before()).exclude(
            status=WebhookEventStatus.FAILED, attempts__gte=max_attempts
        )
    if since is not None:
        events = events.filter(received_at__gte=since)
    ordered: QuerySet[WebhookEvent] = events.order_by("received_at", "pk")
    return ordered
