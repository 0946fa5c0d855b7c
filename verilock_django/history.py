"""The change history of sessions: one :class:`~verilock_django.models.SessionChange` row per
changed value, written by the store in the same transaction as the change.

For applicant fields only *which* changed is recorded, never their values. The trigger (who
asked: ``sync``, ``command:…``, ``webhook:<id>``, ``admin:<user>``) is set for a block of
work with :func:`recorded_as`.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .models import Session, SessionChange
from .outcomes import Assessment, StepAssessment

#: Session columns whose old and new values the history keeps; applicant fields are
#: recorded as changed, without their values.
HISTORY_FIELDS = ("status", "decision", "decline_reason")


#: Who asked for the stores made inside :func:`recorded_as` (the history's ``trigger``).
_trigger: contextvars.ContextVar[str] = contextvars.ContextVar("verilock_trigger", default="sync")


@contextmanager
def recorded_as(trigger: str) -> Iterator[None]:
    """Record the stores made inside the block with ``trigger`` (e.g. ``"admin:alice"``)."""
    token = _trigger.set(trigger)
    try:
        yield
    finally:
        _trigger.reset(token)


def history_entries(
    session: Session,
    changes: dict[str, tuple[Any, Any]],
    old_steps: dict[str, StepAssessment],
    assessment: Assessment,
    trigger: str,
    now: dt.datetime,
) -> list[SessionChange]:
    """The unsaved history rows of one change (none when nothing worth it changed).

    The store inserts them in the transaction of the change, in one statement per batch.
    """
    rows = [
        SessionChange(
            session=session,
            changed_at=now,
            trigger=trigger,
            field=name,
            # Applicant fields: which changed, never their values.
            old_value="" if name.startswith("applicant_") else str(old or "")[:255],
            new_value="" if name.startswith("applicant_") else str(new or "")[:255],
        )
        for name, (old, new) in changes.items()
        if name in HISTORY_FIELDS or name.startswith("applicant_")
    ]
    for step, new_step in assessment.steps.items():
        old_step = old_steps.get(step)
        old_outcome = "" if old_step is None else old_step.outcome
        if old_outcome != new_step.outcome:
            rows.append(
                SessionChange(
                    session=session,
                    changed_at=now,
                    trigger=trigger,
                    field=f"step:{step}"[:80],
                    old_value=str(old_outcome),
                    new_value=str(new_step.outcome),
                )
            )
    return rows


def current_trigger() -> str:
    """The trigger set by the innermost :func:`recorded_as` block (``"sync"`` outside any)."""
    return _trigger.get()
