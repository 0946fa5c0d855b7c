"""The sessions list's filters: readable choices, no query to list them, indexed lookups.

Choices come from the vocabularies in :mod:`verilock_django.statuses` and
:mod:`verilock_django.outcomes`, so listing them costs no query; an "Other" choice reaches
what the provider sent outside them. The step filters combine: "step" and "step outcome"
together select sessions whose *that* step has *that* outcome.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..models import Session, StepResult
from ..outcomes import RISK_BANDS
from ..statuses import KNOWN_STEPS, SessionStatus, StepOutcome

OTHER = "other"
NONE = "none"


class StatusFilter(admin.SimpleListFilter):
    """The session status, by its label; "Other" for undocumented statuses."""

    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [*SessionStatus.choices, (OTHER, _("Other (undocumented)"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        value = self.value()
        if value == OTHER:
            return queryset.exclude(status__in=SessionStatus.values)
        return queryset.filter(status=value) if value else queryset


class DecisionFilter(admin.SimpleListFilter):
    """The provider's decision (approved, declined, review), or none yet."""

    title = _("decision")
    parameter_name = "decision"
    decisions = (
        (SessionStatus.APPROVED, _("Approved")),
        (SessionStatus.DECLINED, _("Declined")),
        (SessionStatus.REVIEW, _("In review")),
    )

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [*self.decisions, (NONE, _("No decision yet"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        value = self.value()
        if value == NONE:
            return queryset.filter(decision="")
        return queryset.filter(decision=value) if value else queryset


class TypeFilter(admin.SimpleListFilter):
    """The session type (Gen A sends ``kyc``; Gen B sends none); any value is accepted."""

    title = _("type")
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("kyc", "kyc"), (NONE, _("No type (newer payloads)"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        value = self.value()
        if value == NONE:
            return queryset.filter(type="")
        return queryset.filter(type=value) if value else queryset


class StepFilter(admin.SimpleListFilter):
    """Sessions with a given step; with "step outcome", that step's outcome."""

    title = _("step")
    parameter_name = "step"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(step, step) for step in KNOWN_STEPS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        if not self.value() or request.GET.get(StepOutcomeFilter.parameter_name):
            return queryset  # the outcome filter applies both
        return queryset.filter(Exists(_steps(step=str(self.value()))))


class StepOutcomeFilter(admin.SimpleListFilter):
    """Sessions with a step of this outcome (the step chosen under "step", else any)."""

    title = _("step outcome")
    parameter_name = "step_outcome"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(StepOutcome.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        if not self.value():
            return queryset
        step = request.GET.get(StepFilter.parameter_name)
        lookup = {"step": step} if step else {}
        return queryset.filter(Exists(_steps(outcome=str(self.value()), **lookup)))


class FailedStepFilter(admin.SimpleListFilter):
    """Sessions where this step failed."""

    title = _("failed step")
    parameter_name = "failed_step"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(step, step) for step in KNOWN_STEPS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        if not self.value():
            return queryset
        return queryset.filter(Exists(_steps(step=str(self.value()), outcome=StepOutcome.FAILED)))


class RiskBandFilter(admin.SimpleListFilter):
    """The documented risk bands of the 0-100 risk score."""

    title = _("risk")
    parameter_name = "risk"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            *(
                (name, f"{name.capitalize()} ({low:.0f}-{high:.0f})")
                for name, low, high in RISK_BANDS
            ),
            (NONE, _("No risk score")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        value = self.value()
        if value == NONE:
            return queryset.filter(risk_score__isnull=True)
        for index, (name, low, high) in enumerate(RISK_BANDS):
            if value == name:
                lower = Q(risk_score__gte=low) if index == 0 else Q(risk_score__gt=low)
                upper = Q() if index == len(RISK_BANDS) - 1 else Q(risk_score__lte=high)
                return queryset.filter(lower & upper)
        return queryset


class SyncStateFilter(admin.SimpleListFilter):
    """Sessions whose last sync failed (or found nothing at Verilock), succeeded, or never ran."""

    title = _("last sync")
    parameter_name = "sync"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("failed", _("Failing")),
            ("not_found", _("Not found at Verilock")),
            ("ok", _("Succeeded")),
            ("never", _("Never fetched")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Session]) -> QuerySet[Session]:
        value = self.value()
        if value == "failed":
            return queryset.exclude(last_sync_error="")
        if value == "not_found":
            # NotFoundError's text carries the status code (see exceptions.VerilockError).
            return queryset.filter(last_sync_error__contains="HTTP 404")
        if value == "ok":
            return queryset.filter(last_sync_error="", last_synced_at__isnull=False)
        if value == "never":
            return queryset.filter(last_synced_at__isnull=True)
        return queryset


def _steps(**lookup: str) -> QuerySet[StepResult]:
    return StepResult.objects.filter(session=OuterRef("pk"), **lookup)
