"""The status vocabularies, written once: labels, lifecycle order, which are final, display tone.

Everything else derives from this module: the models' choices (display only: no column
rejects a status the provider has not documented), the default of
``VERILOCK_FINISHED_STATUSES``, the store's ordering rule, the admin's badges and the fake
API's lifecycle. Pure: Django's ``TextChoices`` and translation only, no models, no settings.
"""

from __future__ import annotations

from typing import Final

from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class SessionStatus(models.TextChoices):
    """Session statuses Verilock documents, in lifecycle order (both generations of its docs)."""

    CREATED = "created", _("Created")
    IN_PROGRESS = "in_progress", _("In progress")
    PROCESSING = "processing", _("Processing")
    REVIEW = "review", _("In review")
    APPROVED = "approved", _("Approved")
    DECLINED = "declined", _("Declined")
    EXPIRED = "expired", _("Expired")
    COMPLETED = "completed", _("Completed")


class StepStatus(models.TextChoices):
    """Step statuses Verilock documents."""

    NOT_STARTED = "not_started", _("Not started")
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    DECLINED = "declined", _("Declined")


class StepOutcome(models.TextChoices):
    """A step's outcome normalised from the provider's raw status (see :mod:`..outcomes`)."""

    PASSED = "passed", _("Passed")
    FAILED = "failed", _("Failed")
    NEEDS_REVIEW = "needs_review", _("Needs review")
    PENDING = "pending", _("Pending")
    NOT_STARTED = "not_started", _("Not started")
    OTHER = "other", _("Other")


#: The steps Verilock documents, in their usual order (others are stored as they come).
KNOWN_STEPS: Final[tuple[str, ...]] = ("document", "selfie", "face_match", "liveness", "aml")

#: Display tone and colour-blind-safe mark (shape, not only colour) of each step outcome.
OUTCOME_TONES: Final[dict[str, str]] = {
    StepOutcome.PASSED: "ok",
    StepOutcome.FAILED: "bad",
    StepOutcome.NEEDS_REVIEW: "warn",
    StepOutcome.PENDING: "pending",
    StepOutcome.NOT_STARTED: "muted",
    StepOutcome.OTHER: "other",
}
OUTCOME_MARKS: Final[dict[str, str]] = {
    StepOutcome.PASSED: "✓",
    StepOutcome.FAILED: "✗",
    StepOutcome.NEEDS_REVIEW: "!",
    StepOutcome.PENDING: "…",
    StepOutcome.NOT_STARTED: "\u2013",
    StepOutcome.OTHER: "?",
}


class WebhookEventStatus(models.TextChoices):
    """Where a stored webhook delivery is in its processing."""

    PENDING = "pending", _("Pending")
    PROCESSING = "processing", _("Processing")
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed")
    IGNORED = "ignored", _("Ignored")


#: Lifecycle rank of the documented *unfinished* session statuses. A final status ranks
#: above all of them; a status missing here (undocumented) has no rank.
UNFINISHED_RANK: Final[dict[str, int]] = {
    SessionStatus.CREATED: 0,
    SessionStatus.IN_PROGRESS: 1,
    SessionStatus.PROCESSING: 2,
    SessionStatus.REVIEW: 3,
}

#: Session statuses after which nothing changes: the default of
#: ``VERILOCK_FINISHED_STATUSES``. Gen B's ``completed`` is stored as its decision
#: (see ``docs/payloads.md``), so it is not listed.
DEFAULT_FINISHED_STATUSES: Final[tuple[str, ...]] = (
    SessionStatus.APPROVED,
    SessionStatus.DECLINED,
    SessionStatus.EXPIRED,
)

#: Display tone of every known status (session, step or webhook event); any other status
#: is shown with the neutral tone ``"other"``.
TONES: Final[dict[str, str]] = {
    SessionStatus.APPROVED: "ok",
    SessionStatus.COMPLETED: "ok",
    SessionStatus.DECLINED: "bad",
    SessionStatus.REVIEW: "warn",
    SessionStatus.EXPIRED: "muted",
    SessionStatus.CREATED: "pending",
    SessionStatus.IN_PROGRESS: "pending",
    SessionStatus.PROCESSING: "pending",
    StepStatus.PENDING: "pending",
    StepStatus.NOT_STARTED: "pending",
    WebhookEventStatus.PROCESSED: "ok",
    WebhookEventStatus.FAILED: "bad",
    WebhookEventStatus.IGNORED: "muted",
}

#: Readable labels of every known status.
LABELS: Final[dict[str, str | Promise]] = {
    **dict(WebhookEventStatus.choices),
    **dict(StepStatus.choices),
    **dict(SessionStatus.choices),
}


def status_tone(status: str) -> str:
    """The display tone of ``status``: ok, bad, warn, muted, pending, or other if unknown."""
    return TONES.get(status, "other")


def status_label(status: str) -> str:
    """The readable label of a known status, or the status as it came."""
    return str(LABELS.get(status, status))
