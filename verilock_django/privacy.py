"""Personal data over its whole life: minimise at ingest, retain the decision, erase on request.

**Minimise.** :func:`minimise_payload` (called by the store on every session payload before
it is parsed) and :func:`minimise_webhook_body` (called by the webhook intake) apply
``VERILOCK_PAYLOAD_SCRUBBER``, drop one-time secrets (session tokens, hosted and signed
URLs) and keep what ``VERILOCK_STORED_DATA`` allows (everything, all but the applicant, or
the decision record only). Both return new objects; the caller's are never changed.

**Retain.** :func:`apply_retention` blanks the personal data of sessions finished more than
``VERILOCK_PII_RETENTION_DAYS`` ago (applicant columns, step details, raw step payloads;
the session payload is cut down to its decision record) and deletes webhook events received
more than ``VERILOCK_WEBHOOK_RETENTION_DAYS`` ago, whatever their status. It walks the rows
by primary key in chunks of :data:`CHUNK_SIZE`, one short transaction per chunk, so memory
stays flat and no lock is held for long; running it twice changes nothing the second time.

**Erase.** :func:`erase_applicant` (and :func:`erase_sessions`) delete an applicant's
sessions, step results, webhook events and the admin ``LogEntry`` rows naming them, and
leave a :class:`~verilock_django.models.Tombstone` per session: the SHA-256 of its id, and
when. The store then refuses to create that session again (:func:`ensure_not_erased`
raises :class:`~verilock_django.exceptions.ErasedSessionError`) and the webhook intake
ignores its deliveries, until the host calls :func:`lift_tombstone`.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from .conf import verilock_settings
from .exceptions import ErasedSessionError, PayloadError, VerilockConfigurationError
from .models import Session, StepResult, Tombstone, WebhookEvent
from .signals import applicant_erased, erasure_requested
from .storable import storable_json

#: Rows per transaction of :func:`apply_retention`.
CHUNK_SIZE = 500

# -- minimise at ingest ----------------------------------------------------------------

#: Keys whose values grant access to the applicant's flow or files: never stored.
ONE_TIME_SECRET_KEYS = frozenset(
    {"token", "session_token", "access_token", "hosted_url", "session_url", "video_url"}
)
#: Keys removed at any depth by ``without_applicant``: the applicant and what describes them.
APPLICANT_KEYS = frozenset(
    {
        "applicant",
        "applicant_name",
        "applicant_email",
        "extracted_data",
        "details",  # per-step details: document numbers, similarity, AML flags
        "matches",  # AML matches: names of people
        "transcript",
    }
)
_KEEP = None  # an allowlist leaf: keep the value when it is a scalar or a list of scalars
#: The decision record of a session payload, as an allowlist (``"*"``: any key; a list: each
#: item). Kept by ``decision_only`` and by retention.
DECISION_RECORD: dict[str, Any] = {
    **dict.fromkeys(
        (
            "id",
            "type",
            "status",
            "decision",
            "decline_reason",
            "reference_id",
            "external_id",
            "steps",
            "risk_score",
            "created_at",
            "completed_at",
            "expires_at",
        ),
        _KEEP,
    ),
    "results": {"*": dict.fromkeys(("status", "score", "type"), _KEEP)},
    "documents": [dict.fromkeys(("side", "document_type", "ocr_status", "ocr_confidence"))],
    "selfie": dict.fromkeys(("face_match_score", "liveness_score", "liveness_passed")),
    "aml_screening": dict.fromkeys(("status", "highest_score", "matches_found")),
}
#: The decision record of a webhook envelope.
WEBHOOK_RECORD: dict[str, Any] = {
    **dict.fromkeys(("event", "timestamp", "webhook_id"), _KEEP),
    "data": dict.fromkeys(
        (
            "id",
            "session_id",
            "status",
            "decision",
            "decline_reason",
            "risk_score",
            "reference_id",
            "external_id",
            "created_at",
            "completed_at",
            "expires_at",
        ),
        _KEEP,
    ),
}


def minimise_payload(payload: object) -> object:
    """A session payload reduced to what may be stored (see the module docstring).

    Anything but a mapping is returned unchanged, for the parser to refuse.
    Raises :class:`~verilock_django.exceptions.VerilockConfigurationError` when the
    scrubber does not return a dict.
    """
    if not isinstance(payload, Mapping):
        return payload
    return _minimise(payload, DECISION_RECORD)


def minimise_webhook_body(payload: Mapping[str, Any], *, storable: bool = False) -> dict[str, Any]:
    """A webhook envelope reduced to what may be stored, as :func:`minimise_payload`.

    ``storable``: ``payload`` is already as :func:`~.storable.storable_json` leaves it, at
    most :data:`~.storable.MAX_STORED_DEPTH` deep (a body that
    :func:`~.storable.is_storable_text` accepts, read with that bound), so it is not walked
    to be cleaned first.
    """
    return _minimise(payload, WEBHOOK_RECORD, storable=storable)


def decision_record(payload: object) -> dict[str, Any]:
    """Only the decision record of a session payload (``{}`` for anything but a mapping)."""
    kept = _select(payload, DECISION_RECORD)
    return kept if isinstance(kept, dict) else {}


def _minimise(
    payload: Mapping[str, Any], record: dict[str, Any], *, storable: bool = False
) -> dict[str, Any]:
    # Cleaned and depth-checked first (iteratively, naming the field when too deep): the
    # walks below recurse, and only over what could be stored anyway. What is returned is
    # storable as it is (the parser reads it without cleaning it again). A payload already
    # storable is not walked here: the walks below copy every list and object anyway, so
    # the caller's payload is never changed.
    data: object = payload if storable else _storable(payload, payload)
    scrubber = verilock_settings.payload_scrubber
    if scrubber is not None:
        # A deep copy: the scrubber may change nested objects of the caller's payload.
        data = scrubber(copy.deepcopy(data))
        if not isinstance(data, dict):
            raise VerilockConfigurationError(
                f"VERILOCK_PAYLOAD_SCRUBBER returned {type(data).__name__}, not a dict."
            )
        data = _storable(data, payload)  # the host's code may add what no column holds
    data = _without_secrets(data)
    mode = verilock_settings.stored_data
    if mode == "without_applicant":
        data = _without_keys(data, APPLICANT_KEYS)
    elif mode == "decision_only":
        data = _select(data, record)
    return data if isinstance(data, dict) else {}


def _storable(value: Mapping[str, Any], payload: Mapping[str, Any]) -> object:
    """:func:`storable_json` of ``value``; its error names ``payload``'s session."""
    try:
        return storable_json(value)
    except PayloadError as exc:
        session_id = payload.get("id")
        exc.session_id = exc.session_id or (session_id if isinstance(session_id, str) else None)
        raise


def _grants_access(value: object) -> bool:
    """A URL that opens the applicant's flow (``/verify/…``) or carries a signed query."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return False
    parts = urlsplit(value)
    return bool(parts.query) or "/verify/" in parts.path


def _without_secrets(value: object) -> object:
    if isinstance(value, Mapping):
        return {
            key: _without_secrets(item)
            for key, item in value.items()
            if not (
                key in ONE_TIME_SECRET_KEYS
                or (isinstance(key, str) and key.endswith("_token"))
                or _grants_access(item)
            )
        }
    if isinstance(value, list):
        return [_without_secrets(item) for item in value if not _grants_access(item)]
    return value


def _without_keys(value: object, keys: frozenset[str]) -> object:
    if isinstance(value, Mapping):
        return {k: _without_keys(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without_keys(item, keys) for item in value]
    return value


def _select(value: object, spec: Any) -> object:
    """``value`` cut down to the allowlist ``spec``; ``None`` when it does not fit."""
    if spec is _KEEP:
        scalar = (str, int, float, bool, type(None))
        if isinstance(value, scalar):
            return value
        if isinstance(value, list) and all(isinstance(item, scalar) for item in value):
            return list(value)
        return None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return None
        return [_select(item, spec[0]) for item in value]
    if not isinstance(value, Mapping):
        return None
    kept = {}
    for key, item in value.items():
        child = spec.get(key, spec.get("*", ...))
        if child is not ...:
            kept[key] = _select(item, child)
    return kept


# -- tombstones --------------------------------------------------------------------------


def session_hash(session_id: str) -> str:
    """The tombstone key of a session id: hex SHA-256 (64 characters) of the stripped id.

    Not keyed with ``SECRET_KEY`` on purpose: rotating that key must never reopen an erased
    session. Session ids are random, so the hash does not reveal one.
    """
    return hashlib.sha256(f"verilock-session:{session_id.strip()}".encode()).hexdigest()


def is_erased(session_id: str) -> bool:
    """True when ``session_id`` was erased and its tombstone not lifted (one query)."""
    return Tombstone.objects.filter(pk=session_hash(session_id)).exists()


def ensure_not_erased(session_id: str) -> None:
    """Raise :class:`~verilock_django.exceptions.ErasedSessionError` for an erased session."""
    if is_erased(session_id):
        raise ErasedSessionError(
            f"Session {session_id} was erased on request and is not stored again "
            "(verilock_django.privacy.lift_tombstone allows it).",
            session_id=session_id,
        )


def lift_tombstone(session_id: str) -> bool:
    """Allow an erased session to be stored again; ``False`` if it had no tombstone."""
    return Tombstone.objects.filter(pk=session_hash(session_id)).delete()[0] > 0


# -- erasure -----------------------------------------------------------------------------


@dataclass
class ErasureReport:
    """What an erasure removed (or, on a dry run, would remove)."""

    reference_id: str
    session_ids: list[str]
    step_results: int = 0
    webhook_events: int = 0
    log_entries: int = 0

    def summary(self, *, dry_run: bool = False) -> str:
        """One line for the command and the admin (ids and counts only)."""
        verb = "Would erase" if dry_run else "Erased"
        return (
            f"{verb} {len(self.session_ids)} session(s), {self.step_results} step result(s), "
            f"{self.webhook_events} webhook event(s) and {self.log_entries} admin log "
            "entry(ies); a tombstone is kept per session."
        )


def erase_applicant(reference_id: str, *, dry_run: bool = False) -> ErasureReport:
    """Erase every session whose ``reference_id`` is ``reference_id`` (see :func:`erase_sessions`).

    The reference is matched exactly as stored, surrounding spaces included (references are
    stored as sent: ``"alice "`` is another applicant's than ``"alice"``). Raises
    ``ValueError`` for a blank reference (an empty one would match every unreferenced
    session); erase such sessions by id with :func:`erase_sessions`.
    """
    if not reference_id.strip():
        raise ValueError("an empty reference would match every session without one")
    ids = Session.objects.filter(reference_id=reference_id).values_list("id", flat=True)
    return erase_sessions(ids, reference_id=reference_id, dry_run=dry_run)


def erase_sessions(
    session_ids: Iterable[str], *, reference_id: str = "", dry_run: bool = False
) -> ErasureReport:
    """Delete sessions, their steps, webhook events and admin log entries; keep tombstones.

    Ids not stored here are tombstoned too, so they are never stored later. First sends
    ``erasure_requested``: a receiver raising
    :class:`~verilock_django.exceptions.ErasureRefused` stops it with nothing changed.
    Then one transaction; ``applicant_erased`` follows the commit.
    """
    ids = sorted({session_id.strip() for session_id in session_ids if session_id.strip()})
    report = ErasureReport(reference_id, ids)
    if not ids:
        return report
    steps = StepResult.objects.filter(session_id__in=ids)
    events = WebhookEvent.objects.filter(session_id__in=ids)
    if dry_run:
        report.step_results = steps.count()
        report.webhook_events = events.count()
        report.log_entries = _log_entries(ids, steps, events).count() if _logs_on() else 0
        return report
    erasure_requested.send(sender=Session, reference_id=reference_id, session_ids=ids)
    with transaction.atomic():
        Tombstone.objects.bulk_create(
            [Tombstone(session_hash=session_hash(session_id)) for session_id in ids],
            ignore_conflicts=True,
        )
        if _logs_on():
            report.log_entries = _log_entries(ids, steps, events).delete()[0]
        report.webhook_events = events.delete()[0]
        report.step_results = steps.delete()[0]
        Session.objects.filter(pk__in=ids).delete()
        transaction.on_commit(
            lambda: applicant_erased.send(
                sender=Session, reference_id=reference_id, session_ids=ids
            )
        )
    return report


def _logs_on() -> bool:
    return apps.is_installed("django.contrib.admin")


def _log_entries(
    ids: list[str], steps: QuerySet[StepResult], events: QuerySet[WebhookEvent]
) -> QuerySet[Any]:
    """The admin ``LogEntry`` rows about these sessions, their steps and their events."""
    # Through the app registry: the admin is optional, and its models exist only with it.
    log_entries = apps.get_model("admin", "LogEntry")._default_manager
    content_types = apps.get_model("contenttypes", "ContentType")._default_manager
    types = content_types.get_for_models(Session, StepResult, WebhookEvent)
    # LogEntry.object_id is Django's text column, in the database's default collation: on
    # MySQL and MariaDB "ses_abc" matches the entries of "ses_ABC" (another applicant's
    # session) there. The candidates are read and the ids compared here, exactly.
    wanted = set(ids)
    about_sessions = [
        pk
        for pk, object_id in log_entries.filter(
            content_type=types[Session], object_id__in=ids
        ).values_list("pk", "object_id")
        if object_id in wanted
    ]
    return log_entries.filter(
        Q(pk__in=about_sessions)
        | Q(
            content_type=types[StepResult],
            object_id__in=[str(pk) for pk in steps.values_list("pk", flat=True)],
        )
        | Q(
            content_type=types[WebhookEvent],
            object_id__in=[str(pk) for pk in events.values_list("pk", flat=True)],
        )
    )


# -- retention ---------------------------------------------------------------------------

#: Session columns that hold the applicant; blanked by retention.
APPLICANT_COLUMNS: dict[str, Any] = {
    "applicant_first_name": "",
    "applicant_last_name": "",
    "applicant_email": "",
    "applicant_date_of_birth": None,
    "applicant_nationality": "",
    "hosted_url": "",
}


@dataclass
class RetentionReport:
    """What a retention run changed (or, on a dry run, would change), and its transactions.

    ``longest_transaction`` is in seconds (``0.0`` on a dry run).
    """

    sessions: int = 0
    step_results: int = 0
    webhook_events: int = 0
    transactions: int = 0
    longest_transaction: float = 0.0

    def summary(self, *, dry_run: bool = False) -> str:
        """One line for the command's output."""
        blank, delete = ("Would blank", "would delete") if dry_run else ("Blanked", "deleted")
        return (
            f"{blank} the personal data of {self.sessions} session(s) "
            f"({self.step_results} step result(s)); {delete} {self.webhook_events} "
            "webhook event(s)."
        )


def sessions_to_blank(before: dt.datetime) -> QuerySet[Session]:
    """Finished sessions completed (else last synced) before ``before`` that hold personal data.

    A session blanked and then stored again (an explicit sync) qualifies again.
    """
    finished_before = Q(completed_at__lt=before) | Q(
        completed_at__isnull=True, last_synced_at__lt=before
    )
    not_blanked = Q(personal_data_removed_at__isnull=True) | Q(
        last_synced_at__gt=F("personal_data_removed_at")
    )
    return Session.objects.finished().filter(finished_before, not_blanked)


def apply_retention(
    *, now: dt.datetime | None = None, dry_run: bool = False, chunk_size: int = CHUNK_SIZE
) -> RetentionReport:
    """Apply ``VERILOCK_PII_RETENTION_DAYS`` and ``VERILOCK_WEBHOOK_RETENTION_DAYS``.

    A setting left at ``None`` does nothing. ``now`` defaults to the current time.
    """
    now = now or timezone.now()
    report = RetentionReport()
    pii_days = verilock_settings.pii_retention_days
    event_days = verilock_settings.webhook_retention_days
    sessions = sessions_to_blank(now - dt.timedelta(days=pii_days)) if pii_days else None
    events = (
        WebhookEvent.objects.filter(received_at__lt=now - dt.timedelta(days=event_days))
        if event_days
        else None
    )
    if dry_run:
        if sessions is not None:
            report.sessions = sessions.count()
            report.step_results = StepResult.objects.filter(session__in=sessions).count()
        if events is not None:
            report.webhook_events = events.count()
        return report
    if sessions is not None:
        for ids in pk_chunks(sessions, chunk_size):
            with _timed(report), transaction.atomic():
                _blank(sessions, ids, now, report)
    if events is not None:
        for event_ids in pk_chunks(events, chunk_size):
            with _timed(report), transaction.atomic():
                report.webhook_events += WebhookEvent.objects.filter(pk__in=event_ids).delete()[0]
    return report


def pk_chunks(rows: QuerySet[Any], size: int) -> Iterator[list[Any]]:
    """Primary keys of ``rows`` in ascending chunks (keyset pagination: no OFFSET, no cursor)."""
    last: Any = None
    while True:
        page = rows.order_by("pk") if last is None else rows.filter(pk__gt=last).order_by("pk")
        ids = list(page.values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def _blank(
    sessions: QuerySet[Session], ids: list[str], now: dt.datetime, report: RetentionReport
) -> None:
    # Rows a sync holds are skipped (not waited for): the next run takes them.
    skip = connection.features.has_select_for_update_skip_locked
    locked = dict(
        sessions.select_for_update(skip_locked=skip)
        .filter(pk__in=ids)
        .values_list("pk", "payload")
    )
    if not locked:
        return
    _blank_sessions({pk: decision_record(payload) for pk, payload in locked.items()}, now)
    report.sessions += len(locked)
    report.step_results += StepResult.objects.filter(session_id__in=list(locked)).update(
        details={}, payload={}
    )


def _blank_sessions(payloads: dict[str, dict[str, Any]], now: dt.datetime) -> None:
    """Blank each session's applicant columns and write its reduced payload: one prepared
    ``UPDATE`` executed per row, so each row gets a single new version.

    ``bulk_update`` would build a ``CASE`` with one branch per row, which costs more to
    compile than to run; a batch of one statement stays linear on every backend.
    """
    values = {**APPLICANT_COLUMNS, "personal_data_removed_at": now}
    fields = [field for field in Session._meta.concrete_fields if field.name in values]
    constants = [field.get_db_prep_save(values[field.name], connection) for field in fields]
    payload_field = Session._meta.get_field("payload")
    quote = connection.ops.quote_name
    columns = [field.column for field in fields] + [payload_field.column]
    assignments = ", ".join(f"{quote(str(column))} = %s" for column in columns)
    table, key = quote(Session._meta.db_table), quote("id")
    # Quoted names from the model; every value is a parameter.
    sql = f"UPDATE {table} SET {assignments} WHERE {key} = %s"  # noqa: S608
    rows = [
        (*constants, payload_field.get_db_prep_save(record, connection), pk)
        for pk, record in payloads.items()
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


@contextmanager
def _timed(report: RetentionReport) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        report.transactions += 1
        report.longest_transaction = max(report.longest_transaction, time.monotonic() - started)
