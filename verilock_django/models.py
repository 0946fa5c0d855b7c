"""The local mirror of Verilock sessions and their per-step results."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import verilock_settings
from .encryption import EncryptableDateField, EncryptableJSONField, EncryptableTextField
from .fields import ExactCharField
from .statuses import SessionStatus, StepOutcome, StepStatus, WebhookEventStatus
from .storable import (
    EMAIL_MAX_LENGTH,
    EVENT_TYPE_MAX_LENGTH,
    NAME_MAX_LENGTH,
    NATIONALITY_MAX_LENGTH,
    REFERENCE_MAX_LENGTH,
    SESSION_ID_MAX_LENGTH,
    STATUS_MAX_LENGTH,
    STEP_MAX_LENGTH,
    TYPE_MAX_LENGTH,
    URL_MAX_LENGTH,
    WEBHOOK_ID_MAX_LENGTH,
)

__all__ = [
    "Session",
    "SessionChange",
    "SessionQuerySet",
    "SessionStatus",
    "StepOutcome",
    "StepResult",
    "StepStatus",
    "Tombstone",
    "WebhookEvent",
    "WebhookEventQuerySet",
    "WebhookEventStatus",
]


class SessionQuerySet(models.QuerySet["Session"]):
    """Queries over mirrored sessions."""

    def finished(self) -> SessionQuerySet:
        """Sessions in a final status (``VERILOCK_FINISHED_STATUSES``)."""
        return self.filter(status__in=verilock_settings.finished_statuses)

    def unfinished(self) -> SessionQuerySet:
        """Sessions the sync still has to refresh."""
        return self.exclude(status__in=verilock_settings.finished_statuses)

    def in_refresh_order(self) -> SessionQuerySet:
        """Ordered as a by-id refresh takes them: never checked first, then most overdue."""
        return self.order_by(
            models.F("next_check_at").asc(nulls_first=True),
            models.F("last_synced_at").asc(nulls_first=True),
            "id",
        )

    def due(self, at: dt.datetime) -> SessionQuerySet:
        """Sessions whose next by-id check is at or before ``at`` (never-fetched ones excluded)."""
        return self.filter(next_check_at__lte=at)

    def claimable(
        self, *, not_checked_since: dt.datetime | None, now: dt.datetime
    ) -> SessionQuerySet:
        """Unfinished sessions free to lease: no live lease, not checked since the moment.

        ``not_checked_since`` is when the claiming run began: a session an overlapping run
        already stored (and released) after that is not fetched a second time (``None``: no
        such condition; the caller's own filter says what is worth fetching). ``now`` is
        the database's clock (:func:`verilock_django.clock.now`), which decides whether a
        lease ran out. Sessions Verilock answered 404 for are left out.
        """
        lease_free = models.Q(lease_expires_at__isnull=True) | models.Q(lease_expires_at__lt=now)
        queryset = self.unfinished().filter(lease_free, missing_since__isnull=True)
        if not_checked_since is None:
            return queryset
        return queryset.not_checked_since(not_checked_since)

    def not_checked_since(self, moment: dt.datetime) -> SessionQuerySet:
        """Sessions neither fetched nor confirmed by a listing since ``moment`` (database
        clock): ``last_synced_at`` unset or before it."""
        return self.filter(
            models.Q(last_synced_at__isnull=True) | models.Q(last_synced_at__lt=moment)
        )

    def in_age_order(self) -> SessionQuerySet:
        """Ordered by the age of their full data: never fetched first, then the oldest."""
        return self.order_by(models.F("data_fetched_at").asc(nulls_first=True), "id")


class Session(models.Model):
    """A Verilock verification session, as last fetched from the API.

    A row created with only ``id`` is a pending session that the next sync fills in.
    """

    id = ExactCharField(_("Verilock id"), max_length=SESSION_ID_MAX_LENGTH, primary_key=True)
    type = models.CharField(_("type"), max_length=TYPE_MAX_LENGTH, blank=True, db_index=True)
    # Plain strings: the provider's vocabulary differs between its docs' generations.
    status = models.CharField(_("status"), max_length=STATUS_MAX_LENGTH, blank=True, db_index=True)
    decision = models.CharField(
        _("decision"), max_length=STATUS_MAX_LENGTH, blank=True, db_index=True
    )
    # The provider's reason (Gen B); Gen A sends none and its failed steps say why.
    decline_reason = models.CharField(_("decline reason"), max_length=128, blank=True)
    reference_id = ExactCharField(
        _("reference"), max_length=REFERENCE_MAX_LENGTH, blank=True, db_index=True
    )
    steps = models.JSONField(_("steps"), default=list, blank=True)

    # Personal data: encrypted when VERILOCK_ENCRYPT_FIELDS is on (see encryption.py), so
    # TEXT columns whatever the setting; max_length is the parser's limit.
    applicant_first_name = EncryptableTextField(
        _("first name"), max_length=NAME_MAX_LENGTH, blank=True
    )
    applicant_last_name = EncryptableTextField(
        _("last name"), max_length=NAME_MAX_LENGTH, blank=True
    )
    applicant_email = EncryptableTextField(_("email"), max_length=EMAIL_MAX_LENGTH, blank=True)
    applicant_date_of_birth = EncryptableDateField(_("date of birth"), null=True, blank=True)
    applicant_nationality = EncryptableTextField(
        _("nationality"), max_length=NATIONALITY_MAX_LENGTH, blank=True
    )

    hosted_url = models.CharField(_("hosted URL"), max_length=URL_MAX_LENGTH, blank=True)
    risk_score = models.FloatField(_("risk score"), null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(_("created at Verilock"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed"), null=True, blank=True, db_index=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    payload = EncryptableJSONField(_("last payload"), default=dict, blank=True)

    # The host's user this session verifies: set when the app created the session for them,
    # or by ``VERILOCK_USER_RESOLVER`` from ``reference_id`` for sessions created elsewhere.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="verilock_sessions",
        verbose_name=_("user"),
    )

    # Local bookkeeping.
    first_synced_at = models.DateTimeField(_("first synced"), null=True, blank=True)
    last_synced_at = models.DateTimeField(_("last synced"), null=True, blank=True, db_index=True)
    last_sync_error = models.TextField(_("last sync error"), blank=True)
    # When the stored payload was requested: a response to an older request is stale.
    data_fetched_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Scheduling and claiming for the batch refresh.
    next_check_at = models.DateTimeField(null=True, blank=True, db_index=True, editable=False)
    unchanged_checks = models.PositiveIntegerField(default=0, editable=False)
    # Fetches by id that failed in a row (reset by a stored answer, not by a listing): while
    # positive, ``next_check_at`` is the failure's backoff, which the by-age refresh honours.
    failed_checks = models.PositiveIntegerField(default=0, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Verilock answered 404 for this id: the batch refresh stops asking until an explicit
    # sync or a webhook finds it again.
    missing_since = models.DateTimeField(
        _("not found at Verilock since"), null=True, blank=True, editable=False
    )
    # Set in the transaction that enters a final status, cleared once every
    # ``session_finished`` receiver ran: a failed receiver or a crash means "send again".
    finished_signal_pending = models.BooleanField(default=False, db_index=True, editable=False)
    # When retention blanked the personal data (the decision record stays).
    personal_data_removed_at = models.DateTimeField(
        _("personal data removed"), null=True, blank=True, editable=False
    )

    objects = SessionQuerySet.as_manager()

    class Meta:
        verbose_name = _("Verilock session")
        verbose_name_plural = _("Verilock sessions")
        ordering = ["-created_at", "id"]
        # The admin's default ordering; the other filters have single-column indexes.
        indexes = [models.Index(fields=["-created_at", "id"], name="verilock_session_newest")]
        permissions = [("view_applicant_pii", _("Can view applicants' personal data"))]

    def __str__(self) -> str:
        # The id only: the admin's history log stores this string, and it must hold no PII.
        return self.id

    @property
    def is_finished(self) -> bool:
        """True once the session reached a final status."""
        return self.status in verilock_settings.finished_statuses

    @property
    def never_synced(self) -> bool:
        """True for a row registered locally but never fetched."""
        return self.last_synced_at is None

    @property
    def applicant_name(self) -> str:
        """The applicant's full name as one string."""
        return f"{self.applicant_first_name} {self.applicant_last_name}".strip()


class StepResult(models.Model):
    """The outcome of one verification step of a session."""

    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="results", verbose_name=_("session")
    )
    step = ExactCharField(_("step"), max_length=STEP_MAX_LENGTH)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    status = models.CharField(_("status"), max_length=STATUS_MAX_LENGTH, blank=True)
    # Normalised from status, decision and decline reason (see outcomes.py).
    outcome = models.CharField(
        _("outcome"),
        max_length=16,
        choices=StepOutcome.choices,
        default=StepOutcome.NOT_STARTED,
        blank=True,
    )
    score = models.FloatField(_("score"), null=True, blank=True)
    # 1 for a 0-1 score, 100 for a 0-100 score; null without a score.
    score_scale = models.PositiveSmallIntegerField(_("score scale"), null=True, blank=True)
    details = EncryptableJSONField(_("details"), default=dict, blank=True)
    payload = EncryptableJSONField(_("step payload"), default=dict, blank=True)

    class Meta:
        verbose_name = _("step result")
        verbose_name_plural = _("step results")
        ordering = ["session", "position", "step"]
        constraints = [
            models.UniqueConstraint(fields=["session", "step"], name="verilock_step_per_session")
        ]
        # The "failed step" and "step outcome" filters.
        indexes = [models.Index(fields=["step", "outcome"], name="verilock_step_outcome")]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.step}"


class SessionChange(models.Model):
    """One changed value of a stored session, written by the store with the change itself.

    ``field`` is a session column (``status``, ``decision``, ``decline_reason``, an
    ``applicant_*`` field) or ``step:<name>`` for a step's outcome. Applicant fields record
    only that they changed: their ``old_value`` and ``new_value`` stay empty.
    ``trigger`` says who asked: ``sync``, ``command``, ``admin:<username>``,
    ``webhook:<webhook id>``.
    """

    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="history", verbose_name=_("session")
    )
    changed_at = models.DateTimeField(_("changed"), default=timezone.now)
    trigger = models.CharField(_("trigger"), max_length=255, blank=True)
    field = models.CharField(_("field"), max_length=80)
    old_value = models.CharField(_("old value"), max_length=255, blank=True)
    new_value = models.CharField(_("new value"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("session change")
        verbose_name_plural = _("session changes")
        ordering = ["-changed_at", "-pk"]
        indexes = [models.Index(fields=["session", "-changed_at"], name="verilock_change_session")]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.field}"


class WebhookEventQuerySet(models.QuerySet["WebhookEvent"]):
    """Queries over stored webhook deliveries."""

    def for_session(self, session_id: str) -> WebhookEventQuerySet:
        """A session's events, oldest first (its timeline)."""
        events: WebhookEventQuerySet = self.filter(session_id=session_id).order_by(
            "received_at", "pk"
        )
        return events

    def claimable(self, *, stale_before: dt.datetime, force: bool = False) -> WebhookEventQuerySet:
        """Events waiting for processing: pending, failed, or stuck in ``processing``.

        An event still ``processing`` since before ``stale_before`` belongs to a process that
        died (or hung) and may be taken over. ``force`` adds processed and ignored events (a
        deliberate reprocess); an event another process is working on never qualifies.
        """
        waiting = (
            ~models.Q(status=WebhookEventStatus.PROCESSING)
            if force
            else models.Q(status__in=(WebhookEventStatus.PENDING, WebhookEventStatus.FAILED))
        )
        events: WebhookEventQuerySet = self.filter(
            waiting
            | models.Q(
                status=WebhookEventStatus.PROCESSING, processing_started_at__lt=stale_before
            )
        )
        return events


class WebhookEvent(models.Model):
    """One verified webhook delivery from Verilock, stored before it is acknowledged."""

    # Verilock's delivery id, or one derived from the envelope when it has none.
    webhook_id = ExactCharField(_("webhook id"), max_length=WEBHOOK_ID_MAX_LENGTH, unique=True)
    event_type = models.CharField(_("event type"), max_length=EVENT_TYPE_MAX_LENGTH, db_index=True)
    # Not a foreign key: an event may name a session this database has never seen.
    session_id = ExactCharField(
        _("session id"), max_length=SESSION_ID_MAX_LENGTH, blank=True, db_index=True
    )
    occurred_at = models.DateTimeField(_("occurred"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now, db_index=True)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=WebhookEventStatus.choices,
        default=WebhookEventStatus.PENDING,
        db_index=True,
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    processing_started_at = models.DateTimeField(_("processing started"), null=True, blank=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)
    payload = EncryptableJSONField(_("payload"), default=dict, blank=True)

    objects = WebhookEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("Verilock webhook event")
        verbose_name_plural = _("Verilock webhook events")
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        # Ids only: no applicant data in the admin's history log.
        return f"{self.event_type} {self.webhook_id}"


class Tombstone(models.Model):
    """What is left of a session erased on request: a hash of its id and when it was erased.

    No personal data: the hash only lets the store recognise the id when a replayed or late
    webhook, a list walk or an explicit sync brings it back (see :mod:`.privacy`).
    """

    session_hash = models.CharField(_("session id hash"), max_length=64, primary_key=True)
    erased_at = models.DateTimeField(_("erased"), default=timezone.now)

    class Meta:
        verbose_name = _("erased session")
        verbose_name_plural = _("erased sessions")

    def __str__(self) -> str:
        return self.session_hash
