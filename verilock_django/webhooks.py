"""Webhook intake: verify the signature, store the delivery, acknowledge.

The view does no processing itself: once the event is committed it sends
``webhook_received`` and hands the event's id to the configured processor
(:func:`verilock_django.processing.dispatch`; by default a small thread pool), so the answer
never waits on the Verilock API.

Answers: ``200`` stored (or a duplicate, or a delivery for a session erased on request: both
change nothing); ``400`` signed body that is not a JSON object, nests too deep
(``VERILOCK_MAX_JSON_DEPTH``; 31 levels stored), or whose ``timestamp`` is further than
``VERILOCK_WEBHOOK_MAX_AGE`` from now (a stale or replayed delivery); ``403`` missing or
invalid signature; ``405`` not a POST; ``413`` body over ``VERILOCK_WEBHOOK_MAX_BODY_SIZE``;
``422`` a body that can never be stored; ``503`` no ``VERILOCK_WEBHOOK_SECRETS`` configured,
or the database is away (the provider retries 5xx, so deliveries resume).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.db.models.constants import OnConflict
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_POST

from .clock import stored_datetime
from .conf import verilock_settings
from .exceptions import (
    ErasedSessionError,
    PayloadError,
    VerilockConfigurationError,
    describe_failure,
)
from .models import Tombstone, WebhookEvent
from .payloads import parse_session_id, parse_timestamp
from .privacy import minimise_webhook_body, session_hash
from .signals import webhook_received
from .signatures import SIGNATURE_HEADERS, verify_signature
from .storable import (
    EVENT_TYPE_MAX_LENGTH,
    MAX_STORED_DEPTH,
    WEBHOOK_ID_MAX_LENGTH,
    clean_text,
    is_storable_text,
    parse_json_body,
)
from .work import dispatch_event

logger = logging.getLogger(__name__)

# Where WSGI puts the signature headers (read there: building request.headers costs more).
_SIGNATURE_KEYS = tuple("HTTP_" + name.upper().replace("-", "_") for name in SIGNATURE_HEADERS)


@dataclass(frozen=True)
class Envelope:
    """The parts of a delivery the app stores in columns (the rest stays in ``payload``)."""

    webhook_id: str
    event_type: str
    session_id: str
    occurred_at: dt.datetime | None
    payload: dict[str, Any]
    #: ``payload`` holds nothing :func:`~verilock_django.storable.storable_json` would change
    #: and nests at most :data:`~verilock_django.storable.MAX_STORED_DEPTH` deep, as
    #: :func:`parse_envelope` tells from the body: storing does not walk it to clean it.
    storable: bool = False


class InvalidEnvelope(ValueError):
    """A correctly signed body that is not a JSON object, or nests too deep to store."""


def parse_envelope(body: bytes) -> Envelope:
    """Read ``{"event", "data", "timestamp", "webhook_id"}`` tolerantly.

    Only a body that is not a JSON object, or nests deeper than ``VERILOCK_MAX_JSON_DEPTH`` or
    than a stored payload may (:data:`~verilock_django.storable.MAX_STORED_DEPTH`), is
    refused. The payload is kept as read (storing cleans it, see :func:`store_delivery`,
    unless the body can hold nothing to clean: :func:`~verilock_django.storable.is_storable_text`);
    the columns' values are cleaned as :func:`~verilock_django.storable.storable_json`
    cleans text. A missing ``webhook_id`` is derived from the event, the session id and the
    timestamp (or, without a timestamp, from the body itself), so the provider's retries of
    one event still collapse into one row.
    """
    # Bounded by what may be stored as well, so that storing can refuse nothing (no second
    # walk over the payload here: storing cleans it, once).
    depth = min(verilock_settings.max_json_depth, MAX_STORED_DEPTH)
    try:
        payload = parse_json_body(body, max_depth=depth)
    except PayloadError as exc:
        raise InvalidEnvelope(f"the body is {exc.problem}") from None
    if not isinstance(payload, dict):
        raise InvalidEnvelope("the body is not a JSON object")
    event = _text(payload.get("event"))
    event = event[:EVENT_TYPE_MAX_LENGTH] if isinstance(event, str) else ""
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    session_id = _session_id(event, data, payload)
    timestamp = _text(payload.get("timestamp"))
    try:
        occurred_at = parse_timestamp(timestamp, "timestamp")
    except PayloadError:
        occurred_at = None
    return Envelope(
        webhook_id=_webhook_id(
            _text(payload.get("webhook_id")), event, session_id, timestamp, body
        ),
        event_type=event,
        session_id=session_id,
        occurred_at=occurred_at,
        payload=payload,
        storable=is_storable_text(body),
    )


def store_delivery(envelope: Envelope) -> tuple[WebhookEvent, bool]:
    """Store a delivery once: ``(event, True)`` when stored, ``(delivery, False)`` for a
    ``webhook_id`` already stored (the delivery as received, unsaved: ``pk`` is ``None``).

    A duplicate costs no more statements than a new delivery: on PostgreSQL one statement
    checks the tombstone and runs ``INSERT … ON CONFLICT (webhook_id) DO NOTHING RETURNING
    id`` (a duplicate writes nothing); elsewhere, with a session id, one read tells whether
    the session was erased or the delivery is stored already (a duplicate stops there,
    without waiting for SQLite's write lock), then that insert (MySQL and MariaDB without
    ``RETURNING``: ``INSERT IGNORE`` and the inserted row's id). The unique ``webhook_id``
    decides under concurrent deliveries; nothing is read back and no savepoint is taken, so a
    duplicate never breaks the caller's transaction. The SQL is built once per database. When
    stored, ``webhook_received`` and processing follow the commit (at once outside a
    transaction), in one callback: a failing receiver is logged (``Signal.send_robust``) and
    keeps neither the other receivers from running nor the event from processing. The body
    is stored as :func:`.privacy.minimise_webhook_body` leaves it (not walked to be cleaned
    again when the envelope says it is ``storable``). With
    ``VERILOCK_WEBHOOK_SYNCHRONOUS_COMMIT = False``, on PostgreSQL and in autocommit (as the
    view runs), that same statement turns ``synchronous_commit`` off for its own transaction
    (``set_config(…, is_local => true)``): the commit does not wait for the WAL flush. Inside
    a caller's transaction, and on other databases, the setting changes nothing.

    :raises ErasedSessionError: the delivery is about a session erased on request (nothing
        stored).
    :raises DatabaseError: the row cannot be written (``OperationalError`` when the database
        is away).
    """
    values: dict[str, Any] = {
        "webhook_id": envelope.webhook_id,
        "event_type": envelope.event_type,
        "session_id": envelope.session_id,
        "occurred_at": stored_datetime(envelope.occurred_at),
        "received_at": timezone.now(),
        "payload": minimise_webhook_body(envelope.payload, storable=envelope.storable),
    }
    alias = router.db_for_write(WebhookEvent)
    connection = connections[alias]
    sql = _statements(connection)
    erased = session_hash(envelope.session_id) if envelope.session_id else None
    with connection.cursor() as cursor:
        if sql.combined:
            # Relaxed only when the statement is its own transaction: inside a caller's
            # transaction it would relax the commit of everything else written there too.
            relaxed = (
                not verilock_settings.webhook_synchronous_commit and connection.get_autocommit()
            )
            params = {"erased": erased, **sql.params(values, connection)}
            cursor.execute(sql.relaxed if relaxed else sql.insert, params)
            is_erased, pk = cursor.fetchone()
        else:
            is_erased = stored = False
            if erased is not None:
                # The tombstone check reads whether the delivery is stored as well: a
                # duplicate then costs this one read and never waits for the write lock.
                cursor.execute(sql.checks, {"erased": erased, "webhook_id": envelope.webhook_id})
                is_erased, stored = cursor.fetchone()
            pk = None
            if not (is_erased or stored):
                cursor.execute(sql.insert, sql.params(values, connection))
                pk = sql.inserted_pk(cursor)
    if is_erased:
        raise ErasedSessionError(
            f"Session {envelope.session_id} was erased on request: its deliveries are not "
            "stored (verilock_django.privacy.lift_tombstone allows them again).",
            session_id=envelope.session_id,
        )
    event = WebhookEvent(**values)
    if pk is None:
        return event, False
    event.pk = pk
    event._state.adding, event._state.db = False, alias  # as if read back
    connection.on_commit(lambda: _received(event), robust=True)
    return event, True


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def webhook(request: HttpRequest) -> HttpResponse:
    """Receive one Verilock delivery: verify, store, answer ``200`` (see module docs)."""
    body = _signed_body(request)
    if isinstance(body, HttpResponse):
        return body
    try:
        envelope = parse_envelope(body)
    except InvalidEnvelope as exc:
        return _reject(400, str(exc))
    if _is_stale(envelope.occurred_at):
        return _reject(400, "timestamp outside the accepted window")
    try:
        event, created = store_delivery(envelope)
    except ErasedSessionError:
        # Acknowledged, so that the provider stops retrying; nothing is stored.
        logger.info("Verilock webhook %s for an erased session ignored.", envelope.webhook_id)
        return _answer(200, "ignored")
    except (OperationalError, InterfaceError) as exc:
        # The database is busy or away: the provider's retry will find it back.
        logger.warning("Could not store a Verilock webhook: %s", describe_failure(exc))
        return _answer(503, "try again later")
    except (DatabaseError, ValueError) as exc:
        # This body can never be stored: a 4xx stops the provider's retries (a 500 would not).
        logger.warning("Could not store a Verilock webhook: %s", describe_failure(exc))
        return _answer(422, "unstorable body")
    if not created:
        logger.info("Duplicate Verilock webhook %s ignored.", event.webhook_id)
        return _answer(200, "duplicate")
    return _answer(200, "stored")


# The secrets live only in this function's frame (gone before anything else runs, since
# Django's DEBUG page lists the locals of every frame a failure passes through), and the
# names below are hidden in error reports for it and for the verifier it calls.
@sensitive_variables("secrets", "secret", "expected", "digest")
def _signed_body(request: HttpRequest) -> bytes | HttpResponse:
    """The raw body when its signature is valid; otherwise the refusal (503, 413 or 403)."""
    try:
        secrets = verilock_settings.webhook_secrets
    except VerilockConfigurationError as exc:
        # System checks E010/E015 report it at start-up; refusing beats guessing, and the
        # provider retries a 503 once the setting is fixed.
        logger.warning("Refused a Verilock webhook: %s", exc)
        return _answer(503, "not configured")
    if not secrets:
        logger.warning("Refused a Verilock webhook: VERILOCK_WEBHOOK_SECRETS is not set.")
        return _answer(503, "not configured")

    limit = verilock_settings.webhook_max_body_size
    # The raw bytes are what Verilock signed: read once, never re-serialise. Reading one
    # byte past the limit tells an oversized body without ever holding more of it.
    body = request.read(limit + 1)
    if len(body) > limit:
        return _reject(413, "body too large")

    signatures = [request.META[key] for key in _SIGNATURE_KEYS if key in request.META]
    if not signatures:
        return _reject(403, "missing signature")
    if not verify_signature(body, signatures, secrets):
        return _reject(403, "invalid signature")
    return body


# -- internals -----------------------------------------------------------------------


def _received(event: WebhookEvent) -> None:
    # One on_commit callback for both. send_robust logs a failing receiver and runs the
    # others; should it raise itself, the event is still handed on (on_commit logs the rest).
    try:
        webhook_received.send_robust(sender=WebhookEvent, event=event)
    finally:
        dispatch_event(event.pk)


def _session_id(event: str, data: dict[str, Any], payload: dict[str, Any]) -> str:
    candidates = [data.get("session_id"), payload.get("session_id")]
    if event.startswith("session."):
        candidates.append(data.get("id"))
    for value in candidates:
        try:
            # Checked as sent: cleaning first would turn "ses_\x00x" into another id.
            return parse_session_id(value)
        except PayloadError:
            continue
    return ""


def _text(value: object) -> object:
    """A string as :func:`~verilock_django.storable.storable_json` leaves it; anything else
    as is."""
    return clean_text(value) if isinstance(value, str) else value


def _webhook_id(value: object, event: str, session_id: str, timestamp: object, body: bytes) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        value = value.strip()
        if len(value) <= WEBHOOK_ID_MAX_LENGTH:
            return value
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    if isinstance(timestamp, str) and timestamp:
        basis = "\n".join((event, session_id, timestamp)).encode()
    else:
        basis = body
    return "derived:" + hashlib.sha256(basis).hexdigest()


@dataclass(frozen=True)
class _Statements:
    """The intake's SQL for one database, and how to fill it in."""

    #: ``INSERT … RETURNING id`` (or ``INSERT IGNORE``), or on PostgreSQL the statement that
    #: also checks the tombstone and returns ``(erased, id or NULL)``.
    insert: str
    combined: bool
    #: ``insert`` that also turns ``synchronous_commit`` off for its own transaction
    #: (PostgreSQL; elsewhere ``insert`` itself, unused).
    relaxed: str
    #: ``(erased, stored)`` for a session id and a webhook id (unused when ``combined``).
    checks: str
    returning: bool
    #: The inserted columns: ``(field, None)`` for a value of the delivery, ``(field,
    #: value)`` for a default prepared once (a callable default is evaluated per row).
    columns: tuple[tuple[Field[Any, Any], object], ...]

    def params(self, values: dict[str, Any], connection: BaseDatabaseWrapper) -> dict[str, Any]:
        # The delivery's values are of their fields' Python types already (prepared=True
        # skips converting them again); only the conversion for the database remains.
        return {
            field.attname: field.get_db_prep_value(values[field.name], connection, prepared=True)
            if field.name in values
            else (
                field.get_db_prep_save(field.get_default(), connection)
                if constant is _PER_ROW
                else constant
            )
            for field, constant in self.columns
        }

    def inserted_pk(self, cursor: Any) -> int | None:
        if self.returning:
            row = cursor.fetchone()
            return None if row is None else int(row[0])
        return int(cursor.lastrowid) if cursor.rowcount == 1 else None


_PER_ROW = object()
_DELIVERY_FIELDS = frozenset(
    ("webhook_id", "event_type", "session_id", "occurred_at", "received_at", "payload")
)
# Keyed by the connection's alias and settings: an override of DATABASES gets its own.
_statement_cache: dict[tuple[str, str, int], _Statements] = {}


def _statements(connection: BaseDatabaseWrapper) -> _Statements:
    key = (connection.alias, connection.vendor, id(connection.settings_dict))
    cached = _statement_cache.get(key)
    if cached is None:
        cached = _statement_cache[key] = _build_statements(connection)
    return cached


def _build_statements(connection: BaseDatabaseWrapper) -> _Statements:
    def quote(name: str | None) -> str:
        return str(connection.ops.quote_name(str(name)))

    meta, tombstone = WebhookEvent._meta, Tombstone._meta
    fields = [field for field in meta.concrete_fields if field is not meta.pk]
    columns = tuple(
        (
            field,
            None
            if field.name in _DELIVERY_FIELDS
            else _PER_ROW
            if field.has_default() and callable(field.default)
            else field.get_db_prep_save(field.get_default(), connection),
        )
        for field in fields
    )
    # Only quoted names from the models are formatted in; every value is a parameter, named
    # after its field ("pyformat": on SQLite, Django turns %s into ? with a regular
    # expression on every execution, several times what naming the parameters costs).
    table, names = quote(meta.db_table), ", ".join(quote(field.column) for field in fields)
    marks = ", ".join(f"%({field.attname})s" for field in fields)
    pk, unique = quote(meta.pk.column), quote(meta.get_field("webhook_id").column)
    tombstones, key = quote(tombstone.db_table), quote(tombstone.pk.column)
    erased = f"SELECT 1 FROM {tombstones} WHERE {key} = %(erased)s"  # noqa: S608
    stored = f"SELECT 1 FROM {table} WHERE {unique} = %(webhook_id)s"  # noqa: S608
    checks = f"SELECT EXISTS ({erased}), EXISTS ({stored})"
    if connection.vendor == "postgresql":
        # One round trip: the insert happens only when no tombstone matches, and the answer
        # tells an erased session (true, NULL) from a duplicate (false, NULL).
        def combined(extra: str) -> str:
            return (
                f"WITH erased AS (SELECT EXISTS ({erased}) AS yes{extra}), "  # noqa: S608
                f"stored AS (INSERT INTO {table} ({names}) SELECT {marks} FROM erased "
                f"WHERE NOT erased.yes ON CONFLICT ({unique}) DO NOTHING RETURNING {pk}) "
                f"SELECT erased.yes, (SELECT {pk} FROM stored) FROM erased"
            )

        # set_config(…, true) is SET LOCAL as a function: it lasts until the end of the
        # transaction, here the statement's own, whose commit then skips the WAL flush wait.
        # The CTE is read twice and volatile, so it is computed once, every column included.
        relaxed = combined(", set_config('synchronous_commit', 'off', true) AS relaxed")
        return _Statements(combined(""), True, relaxed, checks, True, columns)
    if connection.vendor == "sqlite":
        # Only a conflict on webhook_id is a duplicate (SQLite's INSERT OR IGNORE would
        # swallow a NOT NULL or CHECK violation too).
        head, tail = "INSERT INTO", f"ON CONFLICT ({unique}) DO NOTHING"
    else:
        head = connection.ops.insert_statement(on_conflict=OnConflict.IGNORE)
        tail = connection.ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None)
    returning = bool(connection.features.can_return_columns_from_insert)
    if returning:
        tail += f" RETURNING {pk}"
    insert = f"{head} {table} ({names}) VALUES ({marks}) {tail}".rstrip()
    return _Statements(insert, False, insert, checks, returning, columns)


def _is_stale(occurred_at: dt.datetime | None) -> bool:
    # A delivery without a readable timestamp cannot be judged and is accepted: the
    # signature covers the body, so a captured delivery cannot have its timestamp removed.
    max_age = verilock_settings.webhook_max_age
    if max_age is None or occurred_at is None:
        return False
    # A moment against a moment: Django's now is naive (local) in a USE_TZ = False project.
    now = dt.datetime.now(dt.timezone.utc)
    return abs((now - occurred_at).total_seconds()) > max_age


def _reject(status: int, reason: str) -> HttpResponse:
    # Never the body, the signature or the headers: they may carry applicant data.
    logger.warning("Rejected a Verilock webhook (HTTP %s): %s.", status, reason)
    return _answer(status, reason)


def _answer(status: int, message: str) -> HttpResponse:
    return HttpResponse(_answer_body(message), content_type="application/json", status=status)


@functools.lru_cache(maxsize=64)  # a few fixed messages: each encoded once, not per request
def _answer_body(message: str) -> bytes:
    return json.dumps({"status": message}).encode()
