"""What the session page shows first: the summary card and the steps table; and the history.

:func:`summary` builds the template context of the card (one query, for the steps), with
personal data masked unless the viewer may see it. :func:`history_rows` reads a session's
stored changes (one query). :func:`reason_text` is the decline reason a reviewer reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from ..masking import mask_date, mask_email, mask_json, mask_name
from ..models import Session, SessionChange, StepResult, WebhookEvent
from ..outcomes import RISK_SCALE, as_percent, risk_band
from ..statuses import StepOutcome, status_label
from . import display

#: Most changes shown on a session's page and history (the newest ones).
HISTORY_LIMIT = 100
#: Readable names of the details' keys; any other key is shown as it comes.
DETAIL_LABELS: dict[str, str] = {
    "type": "document type",
    "document_type": "document type",
    "document_number": "document number",
    "issuing_country": "issuing country",
    "expiry_date": "expiry",
    "matches_found": "matches found",
    "matched_name": "matched name",
    "match_score": "match score",
    "is_live": "live",
}


def reason_text(session: Session, results: Iterable[StepResult]) -> str:
    """The provider's decline reason; for a declined session without one, its failed steps."""
    if session.decline_reason:
        return session.decline_reason
    if "declined" not in (session.status, session.decision):
        return ""
    failed = [r.step for r in results if r.outcome == StepOutcome.FAILED]
    return gettext("failed: %(steps)s") % {"steps": ", ".join(failed)} if failed else ""


def summary(session: Session, *, pii: bool) -> dict[str, Any]:
    """The card's context: applicant (masked unless ``pii``), outcome, risk, times, steps."""
    results = list(StepResult.objects.filter(session=session).order_by("position", "step"))
    name = session.applicant_name
    applicant = {
        "name": name if pii else mask_name(name),
        "email": session.applicant_email if pii else mask_email(session.applicant_email),
        "date_of_birth": (
            session.applicant_date_of_birth if pii else mask_date(session.applicant_date_of_birth)
        ),
        "nationality": session.applicant_nationality
        if pii
        else ("***" if session.applicant_nationality else ""),
        "masked": not pii,
    }
    return {
        "session": session,
        "applicant": applicant,
        "status": display.status_badge(session.status) if session.status else "",
        "decision": display.status_badge(session.decision) if session.decision else "",
        "reason": reason_text(session, results),
        "reason_derived": not session.decline_reason,
        "risk": (
            {
                "score": session.risk_score,
                "scale": RISK_SCALE,
                "band": risk_band(session.risk_score),
            }
            if session.risk_score is not None
            else None
        ),
        "steps": [_step(result, pii=pii) for result in results],
    }


def _step(result: StepResult, *, pii: bool) -> dict[str, Any]:
    details = dict(result.details) if isinstance(result.details, dict) else {}
    kind = result.payload.get("type") if isinstance(result.payload, dict) else None
    if isinstance(kind, str) and "type" not in details:
        details = {"type": kind, **details}
    if not pii:
        details = mask_json(details)
    percent = as_percent(result.score, result.score_scale)
    return {
        "step": result.step,
        "outcome": display.outcome_badge(result.outcome),
        "failed": result.outcome == StepOutcome.FAILED,
        "status": status_label(result.status) if result.status else "",
        "score": display.percent(result.score, result.score_scale),
        "bar": None if percent is None else max(0, min(100, round(percent))),
        "scale": "" if result.score_scale is None else f"0-{result.score_scale}",
        "raw_score": result.score,
        "details": list(_flatten(details)),
    }


def _flatten(details: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    """Details as (label, text) pairs: nested objects prefixed, lists of objects one per line."""
    for key, value in details.items():
        label = prefix + DETAIL_LABELS.get(key, key.replace("_", " "))
        if isinstance(value, dict):
            yield from _flatten(value, f"{label} · ")
        elif isinstance(value, list):
            if not value:
                yield label, "—"
            for index, item in enumerate(value, start=1):
                if isinstance(item, dict):
                    text = ", ".join(
                        f"{DETAIL_LABELS.get(k, k.replace('_', ' '))}: {_text(v)}"
                        for k, v in item.items()
                    )
                    yield f"{label} {index}", text
                else:
                    yield f"{label} {index}", _text(item)
        else:
            yield label, _text(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):
        return "; ".join(
            f"{DETAIL_LABELS.get(k, k.replace('_', ' '))} {_text(v)}" for k, v in value.items()
        )
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def history_rows(session_id: str) -> list[dict[str, Any]]:
    """A session's newest stored changes, newest first, ready to show (one query)."""
    changes = SessionChange.objects.filter(session_id=session_id).order_by("-changed_at", "-pk")[
        :HISTORY_LIMIT
    ]
    rows = []
    for change in changes:
        personal = change.field.startswith("applicant_")
        rows.append(
            {
                "when": change.changed_at,
                "trigger": change.trigger,
                "field": change.field.removeprefix("step:")
                if change.field.startswith("step:")
                else change.field.replace("_", " "),
                "is_step": change.field.startswith("step:"),
                "old": change.old_value,
                "new": change.new_value,
                "personal": personal,
            }
        )
    return rows


#: Most events shown in a session's timeline (the newest ones).
TIMELINE_LIMIT = 50


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
