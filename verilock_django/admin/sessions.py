"""Admin for reviewing mirrored Verilock sessions, with their step results and webhook events.

Everything here is read-only: the data belongs to Verilock. Staff may refresh sessions from
the API (an action on the list, a button on the page), which goes through
:func:`verilock_django.sync.sync_sessions` like every other way in. The change page shows
the session's webhook timeline (one query, the newest :data:`TIMELINE_LIMIT` events).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_value, flatten_fieldsets, quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..exceptions import AuthenticationError, VerilockConfigurationError
from ..models import Session, StepResult, WebhookEvent
from ..statuses import status_label, status_tone
from ..store import SyncResult
from ..sync import sync_sessions
from ..work import enqueue_syncs
from . import display

#: Compact marks for the list's step column; other statuses are shown as they come.
STEP_MARKS: dict[str, str] = {
    "approved": "✓",
    "declined": "✗",
    "pending": "…",
    "not_started": "…",
}
#: Most events shown in a session's timeline (the newest ones).
TIMELINE_LIMIT = 50

if TYPE_CHECKING:
    _StepResultInlineBase = admin.TabularInline[StepResult, Session]
    _SessionAdminBase = admin.ModelAdmin[Session]
else:  # the admin classes are not subscriptable at runtime
    _StepResultInlineBase = admin.TabularInline
    _SessionAdminBase = admin.ModelAdmin


def webhook_timeline(session_id: str, *, admin_site: str = "admin") -> SafeString:
    """A session's webhook events, oldest first, rendered from a template (one query)."""
    events = list(
        WebhookEvent.objects.for_session(session_id)
        .reverse()
        .only("webhook_id", "event_type", "status", "attempts", "received_at", "last_error")[
            :TIMELINE_LIMIT
        ]
    )[::-1]
    rows = [
        {
            "event": event,
            "url": display.change_url(WebhookEvent, event.pk, admin_site=admin_site),
            "status": display.status_badge(event.status),
        }
        for event in events
    ]
    return render_to_string("admin/verilock_django/session/webhook_timeline.html", {"rows": rows})


class SyncStateFilter(admin.SimpleListFilter):
    """Sessions whose last sync failed, succeeded, or never happened."""

    title = _("last sync")
    parameter_name = "sync"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("failed", _("Failed")),
            ("ok", _("Succeeded")),
            ("never", _("Never fetched")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        value = self.value()
        if value == "failed":
            return queryset.exclude(last_sync_error="")
        if value == "ok":
            return queryset.filter(last_sync_error="", last_synced_at__isnull=False)
        if value == "never":
            return queryset.filter(last_synced_at__isnull=True)
        return queryset


class StepResultInline(_StepResultInlineBase):
    """The session's step results, read-only, in the provider's order."""

    model = StepResult
    fields = ("step", "step_status", "score", "details_json")
    readonly_fields = fields
    ordering = ("position", "step")
    extra = 0
    can_delete = False
    show_change_link = False
    classes = ("verilock-steps",)

    @admin.display(description=_("status"), ordering="status")
    def step_status(self, obj: StepResult) -> SafeString:
        return display.status_badge(obj.status)

    @admin.display(description=_("details"))
    def details_json(self, obj: StepResult) -> SafeString:
        return display.json_block(obj.details)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Step results are part of the session: whoever may view a session sees its steps,
        # without a separate permission on StepResult.
        return display.has_model_permission(
            request, "view", Session
        ) or display.has_model_permission(request, "change", Session)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(_SessionAdminBase):
    """Read-only review of sessions, with a refresh from Verilock.

    The page is Django's view-only page; refreshing needs the ``change_session``
    permission; deleting (to purge an applicant's data) is for superusers only.
    """

    list_display = (
        "id",
        "reference_id",
        "applicant",
        "status_badge",
        "step_outcomes",
        "completed_at",
        "last_sync",
    )
    list_display_links = ("id",)
    list_filter = ("status", "type", SyncStateFilter)
    search_fields = ("id", "reference_id", "applicant_email")
    search_help_text = _("Search by Verilock id, reference or applicant email.")
    fieldsets = (
        (
            _("Session"),
            {
                "fields": (
                    "id",
                    "type",
                    "status_badge",
                    "decision",
                    "reference_id",
                    "step_list",
                    "risk_score",
                    "hosted_url",
                )
            },
        ),
        (
            _("Applicant"),
            {
                "fields": (
                    "applicant_first_name",
                    "applicant_last_name",
                    "applicant_email",
                    "applicant_date_of_birth",
                    "applicant_nationality",
                )
            },
        ),
        (_("Provider times"), {"fields": ("created_at", "completed_at", "expires_at")}),
        (
            _("Sync bookkeeping"),
            {
                "fields": (
                    "first_synced_at",
                    "last_synced_at",
                    "last_sync_error",
                    "data_fetched_at",
                    "next_check_at",
                    "unchanged_checks",
                ),
                "classes": ("collapse",),
            },
        ),
        (_("Last payload from Verilock"), {"fields": ("raw_json",), "classes": ("collapse",)}),
        (_("Webhook events"), {"fields": ("webhook_events",)}),
    )
    readonly_fields = flatten_fieldsets(fieldsets)
    inlines = (StepResultInline,)
    actions = ("refresh_from_verilock",)
    #: Most sessions one refresh may fetch: it runs inside the web request. Larger
    #: batches belong to the ``sync_verilock_sessions`` command.
    refresh_limit = 100

    class Media:
        css = {"all": (display.STYLESHEET,)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        # One query for all rows' step results, whatever the page size; the list needs
        # neither the details nor the raw step objects.
        results = StepResult.objects.order_by("position", "step").only(
            "session", "step", "position", "status", "score"
        )
        return (
            super().get_queryset(request).prefetch_related(Prefetch("results", queryset=results))
        )

    # -- permissions -----------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Nothing is editable: Django then shows its view-only page to anyone with the
        # view (or change) permission.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting only purges the local copy of an applicant's data; keep it to superusers.
        return bool(request.user.is_active and request.user.is_superuser)

    def has_refresh_permission(self, request: HttpRequest) -> bool:
        """Refreshing writes the provider's data, so it takes the change permission."""
        return display.has_model_permission(request, "change", Session)

    # -- columns and read-only fields ---------------------------------------------------

    @admin.display(description=_("applicant"), ordering="applicant_last_name")
    def applicant(self, obj: Session) -> str:
        return obj.applicant_name

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: Session) -> SafeString:
        if obj.never_synced and not obj.status:
            return display.status_badge("", gettext("not fetched yet"))
        return display.status_badge(obj.status)

    @admin.display(description=_("steps"))
    def step_outcomes(self, obj: Session) -> str:
        rows: list[tuple[str, str, str, str, str]] = []
        reported = set()
        for result in obj.results.all():  # prefetched by get_queryset
            reported.add(result.step)
            score = "" if result.score is None else f" {result.score:.2f}"
            rows.append(
                (
                    status_tone(result.status),
                    f"{result.step}: {status_label(result.status)}",
                    result.step,
                    STEP_MARKS.get(result.status, result.status or "?"),
                    score,
                )
            )
        # Steps the session asks for that have no result yet.
        steps = obj.steps if isinstance(obj.steps, list) else []
        for step in steps:
            if isinstance(step, str) and step not in reported:
                rows.append(("pending", f"{step}: {gettext('no result yet')}", step, "…", ""))
        if not rows:
            return self.get_empty_value_display()
        return format_html_join(
            " · ",
            '<span class="verilock-step verilock-{}" title="{}">{} {}{}</span>',
            rows,
        )

    @admin.display(description=_("last sync"), ordering="last_synced_at")
    def last_sync(self, obj: Session) -> str:
        when = (
            display_for_value(obj.last_synced_at, "") if obj.last_synced_at else gettext("never")
        )
        if obj.last_sync_error:
            # The error text (no applicant data by design) shows on hover.
            return format_html(
                "{} {}",
                when,
                display.badge("bad", f"⚠ {gettext('failed')}", title=obj.last_sync_error),
            )
        return str(when)

    @admin.display(description=_("steps"))
    def step_list(self, obj: Session) -> str:
        steps = obj.steps if isinstance(obj.steps, list) else []
        return ", ".join(str(step) for step in steps) or self.get_empty_value_display()

    @admin.display(description=_("payload"))
    def raw_json(self, obj: Session) -> SafeString:
        return display.json_block(obj.payload)

    @admin.display(description=_("timeline"))
    def webhook_events(self, obj: Session) -> SafeString:
        return webhook_timeline(obj.pk, admin_site=self.admin_site.name)

    # -- refreshing --------------------------------------------------------------------

    @admin.action(description=_("Refresh from Verilock"), permissions=["refresh"])
    def refresh_from_verilock(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        """Fetch the selected sessions again and store what Verilock answers."""
        session_ids = list(
            queryset.prefetch_related(None)
            .order_by("pk")
            .values_list("pk", flat=True)[: self.refresh_limit + 1]
        )
        if len(session_ids) > self.refresh_limit:
            self.message_user(
                request,
                gettext(
                    "Select at most %(limit)d sessions to refresh at once; the "
                    "sync_verilock_sessions command refreshes any number."
                )
                % {"limit": self.refresh_limit},
                messages.ERROR,
            )
            return
        self.refresh(request, session_ids)

    def refresh(self, request: HttpRequest, session_ids: Sequence[str]) -> None:
        """Sync the sessions and tell the user how it went (ids and errors, no PII)."""
        done: list[SyncResult] = []
        try:
            if enqueue_syncs(list(session_ids)):  # a task engine is configured: workers fetch
                self.message_user(request, gettext("Refresh queued."), messages.SUCCESS)
                return
            report = sync_sessions(session_ids, on_result=done.append)
        except VerilockConfigurationError as exc:
            self.message_user(
                request, gettext("Refresh stopped: %(error)s") % {"error": exc}, messages.ERROR
            )
            return
        except AuthenticationError as exc:
            # Every other session would fail alike: one message instead of one per session.
            self.message_user(
                request,
                gettext(
                    "Refresh stopped: Verilock refused the API key (%(error)s). "
                    "%(done)d session(s) had been processed."
                )
                % {"error": exc, "done": len(done)},
                messages.ERROR,
            )
            return
        if report.fetched:
            self.message_user(
                request,
                ngettext(
                    "Refreshed %(count)d session from Verilock (%(changed)d changed).",
                    "Refreshed %(count)d sessions from Verilock (%(changed)d changed).",
                    report.fetched,
                )
                % {"count": report.fetched, "changed": report.synced},
                messages.SUCCESS,
            )
        if report.failed:
            errors = "; ".join(
                f"{session_id}: {error}" for session_id, error in report.failed.items()
            )
            self.message_user(
                request,
                ngettext(
                    "Could not refresh %(count)d session: %(errors)s",
                    "Could not refresh %(count)d sessions: %(errors)s",
                    len(report.failed),
                )
                % {"count": len(report.failed), "errors": errors},
                messages.ERROR,
            )

    def get_urls(self) -> list[URLPattern]:
        info = (self.opts.app_label, self.opts.model_name)
        return [
            path(
                "<path:object_id>/refresh/",
                self.admin_site.admin_view(self.refresh_view),
                name="{}_{}_refresh".format(*info),
            ),
            *super().get_urls(),
        ]

    def refresh_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST-only: refresh one session, then go back to its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_refresh_permission(request):
            raise PermissionDenied
        session = self.get_object(request, unquote(object_id))
        if session is None:
            raise Http404
        self.refresh(request, [session.pk])
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=(quote(session.pk),),
            current_app=self.admin_site.name,
        )
        return HttpResponseRedirect(url)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_refresh": self.has_refresh_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)
