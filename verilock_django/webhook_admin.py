"""Admin for stored webhook events, and the per-session event timeline.

Events are read-only records of what Verilock sent. Staff with the ``change_webhookevent``
permission may reprocess them (the same service the ``process_verilock_webhooks`` command
uses). Imported by ``admin.py``, so registering the app's admin registers this too.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .models import WebhookEvent
from .processing import process_events
from .statuses import status_label, status_tone

#: Most events shown in a session's timeline (the newest ones).
TIMELINE_LIMIT = 50


def event_status_html(status: str) -> SafeString:
    """A coloured badge for an event status."""
    label = status_label(status)
    tone = status_tone(status)
    return format_html('<span class="verilock-badge verilock-{}">{}</span>', tone, label)


def webhook_timeline(session_id: str, *, admin_site: str = "admin") -> SafeString:
    """A session's webhook events, oldest first, as an escaped HTML table (one query)."""
    events = list(
        WebhookEvent.objects.for_session(session_id)
        .reverse()
        .only("webhook_id", "event_type", "status", "attempts", "received_at", "last_error")[
            :TIMELINE_LIMIT
        ]
    )[::-1]
    if not events:
        return format_html("<p>{}</p>", gettext("No webhook received for this session."))
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                event.received_at.isoformat(timespec="seconds"),
                _event_link(event, admin_site),
                event_status_html(event.status),
                event.attempts,
                event.last_error,
            )
            for event in events
        ),
    )
    return format_html(
        '<table class="verilock-timeline"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
        "<th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
        gettext("received"),
        gettext("event"),
        gettext("status"),
        gettext("attempts"),
        gettext("last error"),
        rows,
    )


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Read-only list of deliveries with a "Reprocess" action."""

    list_display = (
        "received_at",
        "event_type",
        "session_link",
        "status_badge",
        "attempts",
        "webhook_id",
        "processed_at",
    )
    list_filter = ("status", "event_type")
    search_fields = ("^session_id", "^webhook_id")
    search_help_text = _("Search by session id or webhook id (start of the id).")
    fields = (
        "webhook_id",
        "event_type",
        "session_link",
        "status_badge",
        "attempts",
        "last_error",
        "occurred_at",
        "received_at",
        "processing_started_at",
        "processed_at",
        "payload_json",
    )
    readonly_fields = fields
    actions = ("reprocess",)
    #: Most events one reprocess may handle: it runs inside the web request.
    reprocess_limit = 100

    class Media:
        css = {"all": ("verilock_django/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a record of what was received; view-only page

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        """Reprocessing writes sessions, so it takes the change permission."""
        opts = self.opts
        codename = get_permission_codename("change", opts)
        return request.user.has_perm(f"{opts.app_label}.{codename}")

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: WebhookEvent) -> SafeString:
        return event_status_html(obj.status)

    @admin.display(description=_("session"), ordering="session_id")
    def session_link(self, obj: WebhookEvent) -> str:
        if not obj.session_id:
            return self.get_empty_value_display()
        try:
            url = reverse(
                "admin:verilock_django_session_change",
                args=(quote(obj.session_id),),
                current_app=self.admin_site.name,
            )
        except NoReverseMatch:  # the host unregistered the session admin
            return obj.session_id
        return format_html('<a href="{}">{}</a>', url, obj.session_id)

    @admin.display(description=_("payload"))
    def payload_json(self, obj: WebhookEvent) -> SafeString:
        text = json.dumps(obj.payload, indent=2, ensure_ascii=False, default=str)
        return format_html('<pre class="verilock-json">{}</pre>', text)

    @admin.action(description=_("Reprocess"), permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        """Process the selected events again, whatever their status, and report."""
        ids = list(queryset.order_by("received_at", "pk").values_list("pk", flat=True))
        if len(ids) > self.reprocess_limit:
            self.message_user(
                request,
                gettext(
                    "Select at most %(limit)d events; the process_verilock_webhooks command "
                    "handles any number."
                )
                % {"limit": self.reprocess_limit},
                messages.ERROR,
            )
            return
        report = process_events(ids, force=True)
        level = messages.ERROR if report.failed else messages.SUCCESS
        self.message_user(request, gettext("Reprocessed: %s.") % report.summary(), level)
        if report.failed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d event failed: %(errors)s",
                    "%(count)d events failed: %(errors)s",
                    len(report.failed),
                )
                % {
                    "count": len(report.failed),
                    "errors": "; ".join(f"#{pk}: {error}" for pk, error in report.failed.items()),
                },
                messages.ERROR,
            )


def _event_link(event: WebhookEvent, admin_site: str) -> str:
    try:
        url = reverse(
            "admin:verilock_django_webhookevent_change",
            args=(event.pk,),
            current_app=admin_site,
        )
    except NoReverseMatch:
        return event.event_type
    return format_html('<a href="{}" title="{}">{}</a>', url, event.webhook_id, event.event_type)
