"""Admin for stored webhook events.

Events are read-only records of what Verilock sent. Staff with the ``change_webhookevent``
permission may reprocess them through :func:`verilock_django.processing.process_events`,
the same service the ``process_verilock_webhooks`` command uses. A session's events are
also shown on its own page (see :mod:`.sessions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..masking import mask_json
from ..models import Session, WebhookEvent
from ..processing import process_events
from . import display

if TYPE_CHECKING:
    _WebhookEventAdminBase = admin.ModelAdmin[WebhookEvent]
else:  # the admin classes are not subscriptable at runtime
    _WebhookEventAdminBase = admin.ModelAdmin


@admin.register(WebhookEvent)
class WebhookEventAdmin(display.RefusesUnusableInput, _WebhookEventAdminBase):
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
    readonly_fields = (*fields, "payload_json_masked")
    actions = ("reprocess",)
    #: Most events one reprocess may handle: it runs inside the web request.
    reprocess_limit = 100

    class Media:
        css = {"all": (display.STYLESHEET,)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a record of what was received; view-only page

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        """Reprocessing writes sessions, so it takes the change permission."""
        return display.has_model_permission(request, "change", WebhookEvent)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: WebhookEvent) -> SafeString:
        return display.status_badge(obj.status)

    @admin.display(description=_("session"), ordering="session_id")
    def session_link(self, obj: WebhookEvent) -> str:
        if not obj.session_id:
            return self.get_empty_value_display()
        url = display.change_url(Session, obj.session_id, admin_site=self.admin_site.name)
        if url is None:
            return obj.session_id
        return format_html('<a href="{}">{}</a>', url, obj.session_id)

    @admin.display(description=_("payload"))
    def payload_json(self, obj: WebhookEvent) -> SafeString:
        return display.json_block(obj.payload)

    @admin.display(description=_("payload (personal data masked)"))
    def payload_json_masked(self, obj: WebhookEvent) -> SafeString:
        return display.json_block(mask_json(obj.payload))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A delivery may carry applicant data: masked without view_applicant_pii.
        if display.can_view_pii(request):
            return self.fields
        return [f"{name}_masked" if name == "payload_json" else name for name in self.fields]

    @admin.action(description=_("Reprocess"), permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        """Process the selected events again, whatever their status, and report."""
        ids = list(
            queryset.order_by("received_at", "pk").values_list("pk", flat=True)[
                : self.reprocess_limit + 1
            ]
        )
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
