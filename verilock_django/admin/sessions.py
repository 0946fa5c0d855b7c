"""Admin for reviewing mirrored Verilock sessions: scan the list, decide on the page.

Everything here is read-only: the data belongs to Verilock. "Refresh from Verilock" (an
action, a button) syncs through :func:`verilock_django.sync.sync_sessions` (or enqueues
when a task engine is configured), recorded in the history as ``admin:<username>``.

The change page opens on a summary card and the steps table (:mod:`.review`); below come
the change history, the webhook timeline (one query, the newest :data:`.review.TIMELINE_LIMIT`
events) and the raw payload, collapsed. Without ``view_applicant_pii`` personal data is
masked everywhere (:mod:`verilock_django.masking`) and cannot be searched.

Query cost is constant whatever the page size: the list prefetches its steps in one query
and, on PostgreSQL, estimates an unfiltered total (:class:`.display.EstimatedCountPaginator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, quote, unquote
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
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..exceptions import (
    AuthenticationError,
    ErasureRefused,
    PayloadError,
    VerilockConfigurationError,
)
from ..history import recorded_as
from ..masking import mask_json, mask_name
from ..models import Session, StepResult
from ..payloads import parse_session_id
from ..privacy import erase_applicant, erase_sessions
from ..statuses import OUTCOME_MARKS, OUTCOME_TONES
from ..store import SyncResult
from ..sync import sync_sessions
from ..work import enqueue_syncs
from . import display, filters, overview, review

#: Columns and fields shown as ``<name>_masked`` to staff without ``view_applicant_pii``.
MASKED = ("applicant", "raw_json")
#: Searched only for staff with ``view_applicant_pii``.
PII_SEARCH_FIELDS = ("applicant_email", "applicant_first_name", "applicant_last_name")

if TYPE_CHECKING:
    _SessionAdminBase = admin.ModelAdmin[Session]
else:  # the admin classes are not subscriptable at runtime
    _SessionAdminBase = admin.ModelAdmin


@admin.register(Session)
class SessionAdmin(display.RefusesUnusableInput, _SessionAdminBase):
    """Read-only review of sessions, with a sync from Verilock.

    The page is Django's view-only page; syncing needs the ``change_session`` permission;
    deleting (to purge an applicant's data) is for superusers only; unmasked personal data
    needs ``view_applicant_pii``.
    """

    list_display = (
        "short_id",
        "applicant",
        "reference_id",
        "status_badges",
        "step_badges",
        "reason",
        "age",
        "sync_health",
    )
    list_display_links = ("short_id",)
    list_filter = (
        filters.StatusFilter,
        filters.DecisionFilter,
        filters.TypeFilter,
        filters.FailedStepFilter,
        filters.StepFilter,
        filters.StepOutcomeFilter,
        ("created_at", admin.DateFieldListFilter),
        ("completed_at", admin.DateFieldListFilter),
        filters.RiskBandFilter,
        filters.SyncStateFilter,
    )
    # Ids and references by their start; names and emails (personal data) by any part,
    # for staff who may see them, unless encrypted. Indexed on PostgreSQL (migration 0006).
    search_fields = ("^id", "^reference_id")
    search_help_text = display.SESSION_SEARCH_HELP
    list_per_page = 50
    show_full_result_count = False
    paginator = display.EstimatedCountPaginator
    fieldsets = (
        (_("Change history"), {"fields": ("change_history",)}),
        (_("Webhook events"), {"fields": ("webhook_events",)}),
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
    )
    readonly_fields = (*flatten_fieldsets(fieldsets), *(f"{name}_masked" for name in MASKED))
    actions = ("sync_from_verilock", "erase_applicants")
    #: Most sessions one sync may fetch: it runs inside the web request. Larger batches
    #: belong to the ``sync_verilock_sessions`` command.
    refresh_limit = 100

    class Media:
        css = {"all": (display.STYLESHEET,)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        # One query for all rows' step results, whatever the page size; the list needs
        # neither the details nor the raw step objects.
        results = StepResult.objects.order_by("position", "step").only(
            "session", "step", "position", "status", "outcome", "score", "score_scale"
        )
        return (
            super().get_queryset(request).prefetch_related(Prefetch("results", queryset=results))
        )

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        if not display.can_view_pii(request) or display.personal_data_encrypted():
            return tuple(self.search_fields)
        if "@" in request.GET.get("q", ""):
            # An email address: its start, on a B-tree index, not the names' trigrams.
            return (*self.search_fields, "^applicant_email")
        return (*self.search_fields, *PII_SEARCH_FIELDS)

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

    def has_sync_permission(self, request: HttpRequest) -> bool:
        """Syncing writes the provider's data, so it takes the change permission."""
        return display.has_model_permission(request, "change", Session)

    # -- list columns -------------------------------------------------------------------

    def get_list_display(self, request: HttpRequest) -> Any:
        # Per request, never as state on this shared instance: which applicant column.
        if display.can_view_pii(request):
            return self.list_display
        return [name + "_masked" if name in MASKED else name for name in self.list_display]

    def get_sortable_by(self, request: HttpRequest) -> Any:
        return display.sortable_columns(super().get_sortable_by(request))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if display.can_view_pii(request):
            return self.fieldsets
        return [
            (
                title,
                {
                    **options,
                    "fields": [f + "_masked" if f in MASKED else f for f in options["fields"]],
                },
            )
            for title, options in self.fieldsets
        ]

    @admin.display(description=_("session"), ordering="id")
    def short_id(self, obj: Session) -> SafeString:
        return format_html('<span title="{}">{}</span>', obj.id, display.short_id(obj.id))

    @admin.display(description=_("applicant"), ordering="applicant_last_name")
    def applicant(self, obj: Session) -> str:
        return obj.applicant_name

    @admin.display(description=_("applicant"), ordering="applicant_last_name")
    def applicant_masked(self, obj: Session) -> str:
        return mask_name(obj.applicant_name)

    @admin.display(description=_("status"), ordering="status")
    def status_badges(self, obj: Session) -> SafeString:
        if obj.never_synced and not obj.status:
            return display.status_badge("", gettext("not fetched yet"))
        if obj.decision and obj.decision != obj.status:
            return format_html(
                "{} {}",
                display.status_badge(obj.status),
                display.status_badge(obj.decision, f"{gettext('decision')}: {obj.decision}"),
            )
        return display.status_badge(obj.status)

    @admin.display(description=_("steps"))
    def step_badges(self, obj: Session) -> str:
        rows: list[tuple[str, str, str, str]] = []
        reported = set()
        for result in obj.results.all():  # prefetched by get_queryset
            reported.add(result.step)
            score = display.percent(result.score, result.score_scale)
            title = " ".join(
                part
                for part in (
                    f"{result.step}: {display.outcome_label(result.outcome)}",
                    f"({result.status or '-'})",
                    score,
                )
                if part
            )
            rows.append(
                (
                    OUTCOME_TONES.get(result.outcome, "other"),
                    title,
                    display.step_letter(result.step),
                    OUTCOME_MARKS.get(result.outcome, "?"),
                )
            )
        # Steps the session asks for that have no result yet.
        steps = obj.steps if isinstance(obj.steps, list) else []
        for step in steps:
            if isinstance(step, str) and step not in reported:
                rows.append(
                    (
                        "muted",
                        f"{step}: {gettext('no result yet')}",
                        display.step_letter(step),
                        "\u2013",
                    )
                )
        if not rows:
            return self.get_empty_value_display()
        return format_html_join(
            "",
            '<span class="verilock-step verilock-{}" title="{}">{}{}</span>',
            rows,
        )

    @admin.display(description=_("decline reason"), ordering="decline_reason")
    def reason(self, obj: Session) -> str:
        text = review.reason_text(obj, obj.results.all())
        if not text:
            return self.get_empty_value_display()
        return format_html('<span title="{}">{}</span>', text, text)

    @admin.display(description=_("created"), ordering="created_at")
    def age(self, obj: Session) -> str:
        if obj.created_at is None:
            return self.get_empty_value_display()
        local = display.local_time(obj.created_at)
        return format_html(
            '<span title="{}">{}</span>',
            date_format(local, "DATETIME_FORMAT"),
            gettext("%(time)s ago") % {"time": timesince(obj.created_at, depth=1)},
        )

    @admin.display(description=_("sync"), ordering="last_synced_at")
    def sync_health(self, obj: Session) -> SafeString:
        if obj.last_sync_error:
            # The error text (no applicant data by design) shows on hover.
            return display.badge("bad", f"⚠ {gettext('failed')}", title=obj.last_sync_error)
        if obj.last_synced_at is None:
            return display.badge("muted", gettext("never"))
        return display.badge(
            "ok",
            "✓",
            title=date_format(display.local_time(obj.last_synced_at), "DATETIME_FORMAT"),
        )

    # -- change page ---------------------------------------------------------------------

    @admin.display(description=_("payload"))
    def raw_json(self, obj: Session) -> SafeString:
        return display.json_block(obj.payload)

    @admin.display(description=_("payload (personal data masked)"))
    def raw_json_masked(self, obj: Session) -> SafeString:
        return display.json_block(mask_json(obj.payload))

    @admin.display(description=_("timeline"))
    def webhook_events(self, obj: Session) -> SafeString:
        return review.webhook_timeline(obj.pk, admin_site=self.admin_site.name)

    @admin.display(description=_("changes"))
    def change_history(self, obj: Session) -> SafeString:
        return render_to_string(
            "admin/verilock_django/session/change_history.html",
            {"rows": review.history_rows(obj.pk)},
        )

    # -- erasure on request (superusers) --------------------------------------------------

    def has_erase_permission(self, request: HttpRequest) -> bool:
        """Erasure cannot be undone: superusers only."""
        return bool(request.user.is_active and request.user.is_superuser)

    @admin.action(
        description=_("Erase these applicants (all their sessions)"), permissions=["erase"]
    )
    def erase_applicants(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        """Erase all sessions of the selected sessions' applicants (the privacy service)."""
        rows = list(queryset.prefetch_related(None).values_list("pk", "reference_id"))
        try:
            # A blank reference is no applicant's (erase_applicant refuses it): by id.
            reports = [
                erase_applicant(ref) for ref in sorted({ref for _, ref in rows if ref.strip()})
            ]
            if unreferenced := [pk for pk, ref in rows if not ref.strip()]:
                reports.append(erase_sessions(unreferenced))
        except ErasureRefused as exc:
            self.message_user(request, gettext("Erasure refused: %s") % exc, messages.ERROR)
            return
        for report in reports:
            self.message_user(request, report.summary(), messages.SUCCESS)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Session | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["verilock_card"] = review.summary(obj, pii=display.can_view_pii(request))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_sync": self.has_sync_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Django's history (admin actions) with the stored changes above it."""
        extra_context = {
            **(extra_context or {}),
            # Called by the template, so only once the page found the session (get_object).
            "verilock_history": partial(review.history_rows, unquote(object_id)),
        }
        return super().history_view(request, object_id, extra_context)

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Session | None:
        """The session whose page (change, history, delete, refresh) this is; ``None`` (the
        page's "does not exist") for what is not a usable session id
        (:func:`~verilock_django.payloads.parse_session_id`, as every door checks one): no
        stored id is, and PostgreSQL cannot even compare one holding NUL (a 500)."""
        try:
            parse_session_id(object_id)
        except PayloadError:
            return None
        return super().get_object(request, object_id, from_field)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        info = (self.opts.app_label, self.opts.model_name)
        extra_context = {
            **(extra_context or {}),
            "overview_url": reverse(
                "admin:{}_{}_overview".format(*info), current_app=self.admin_site.name
            ),
        }
        return super().changelist_view(request, extra_context)

    # -- syncing -----------------------------------------------------------------------

    @admin.action(description=_("Refresh from Verilock"), permissions=["sync"])
    def sync_from_verilock(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
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
        self.sync(request, session_ids)

    def sync(self, request: HttpRequest, session_ids: Sequence[str]) -> None:
        """Sync the sessions and tell the user how it went (ids and errors, no PII)."""
        done: list[SyncResult] = []
        try:
            if enqueue_syncs(list(session_ids)):  # a task engine is configured: workers fetch
                self.message_user(request, gettext("Refresh queued."), messages.SUCCESS)
                return
            with recorded_as(f"admin:{request.user.get_username()}"):
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
                "overview/",
                self.admin_site.admin_view(self.overview_view),
                name="{}_{}_overview".format(*info),
            ),
            path(
                "<path:object_id>/sync/",
                self.admin_site.admin_view(self.sync_view),
                name="{}_{}_sync".format(*info),
            ),
            *super().get_urls(),
        ]

    def sync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST-only: sync one session, then go back to its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_sync_permission(request):
            raise PermissionDenied
        session = self.get_object(request, unquote(object_id))
        if session is None:
            raise Http404
        self.sync(request, [session.pk])
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
            args=(quote(session.pk),),
            current_app=self.admin_site.name,
        )
        return HttpResponseRedirect(url)

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        """The overview page: last 30 days, decline reasons, failed steps, sync health."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
            current_app=self.admin_site.name,
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": gettext("Verilock overview"),
            **overview.build(changelist),
        }
        return TemplateResponse(request, "admin/verilock_django/overview.html", context)
