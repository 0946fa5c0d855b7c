"""An in-memory Verilock account and the one request handler that serves it.

:class:`FakeVerilock` holds sessions, fault plans, counters and webhook deliveries behind
one lock. Its :meth:`FakeVerilock.handle` turns ``(method, path, query, headers, body)``
into a :class:`FakeResponse`; the loopback HTTP server (``server.py``) and the in-process
``responses`` adapter (``responses_api.py``) both call it, so they behave identically.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import itertools
import json
import logging
import math
import random
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final, Literal
from urllib.parse import parse_qs

from ..signatures import sign_webhook
from . import factories
from .factories import FINISHED_STATUSES, STEPS, Shape

__all__ = [
    "FakeResponse",
    "FakeSession",
    "FakeVerilock",
    "FaultKind",
    "RecordedRequest",
    "WebhookDelivery",
]

logger = logging.getLogger(__name__)

FaultKind = Literal["status", "timeout", "reset", "malformed_json", "html", "latency"]
ShapeChoice = Literal["a", "b", "mixed"]

_ERROR_CODES: Final[dict[int, str]] = {
    400: "bad_request",
    401: "authentication_error",
    402: "insufficient_balance",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "validation_error",
    429: "rate_limit_exceeded",
}
_REASONS: Final[dict[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_SESSION_PATH: Final = re.compile(r"^/sessions/(?P<id>[^/]+)(?P<rest>/.*)?$")
_CONTROL_SESSION_KEYS: Final = frozenset(
    {"status", "shape", "outcome", "reference_id", "steps", "applicant", "declined_step",
     "webhook_url", "id"}
)  # fmt: skip
_NAMES: Final[tuple[tuple[str, str, str], ...]] = (
    ("Jean", "Dupont", "FR"),
    ("Amelia", "Clarke", "GB"),
    ("Lukas", "Schmidt", "DE"),
    ("Sofia", "Rossi", "IT"),
    ("Mateo", "Garcia", "ES"),
    ("Emma", "Jansen", "NL"),
    ("Noah", "Peeters", "BE"),
    ("Olivia", "Silva", "PT"),
    ("Liam", "Murphy", "IE"),
    ("Maja", "Nowak", "PL"),
    ("Elias", "Berg", "SE"),
    ("Aino", "Virtanen", "FI"),
)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class FakeSession:
    """One session of the fake account; render it with :meth:`payload`."""

    id: str
    shape: Shape
    status: str
    outcome: str
    reference_id: str | None
    steps: list[str]
    applicant: dict[str, Any]
    results: dict[str, dict[str, Any]]
    created_at: datetime
    changed_at: datetime
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    webhook_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_finished(self) -> bool:
        """Whether the session reached a final status."""
        return self.status in FINISHED_STATUSES

    def payload(self, view: Literal["detail", "list"] = "detail") -> dict[str, Any]:
        """Render the session as ``GET /sessions/{id}`` (``detail``) or a list item."""
        rendered = factories.build_session(
            self.shape,
            id=self.id,
            status=self.status,
            reference_id=self.reference_id,
            steps=self.steps,
            applicant=self.applicant,
            results=self.results,
            created_at=self.created_at,
            completed_at=self.completed_at,
            expires_at=self.expires_at,
            view=view,
        )
        if view == "detail":
            rendered.update(copy.deepcopy(self.extra))
        return rendered


@dataclass(frozen=True)
class FakeResponse:
    """What the fake answers; ``fault`` asks the transport to time out or reset instead."""

    status: int
    headers: dict[str, str]
    body: bytes
    fault: Literal["timeout", "reset"] | None = None

    def json(self) -> Any:
        """Decode the body as JSON (raises on the malformed-JSON fault, on purpose)."""
        return json.loads(self.body)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake API received, for assertions."""

    method: str
    path: str
    query: str
    session_id: str | None
    status: int
    auth_style: Literal["bearer", "x-api-key"] | None
    fault: str | None


@dataclass
class WebhookDelivery:
    """One webhook POST attempt and its outcome."""

    url: str
    event: str
    webhook_id: str
    body: bytes
    headers: dict[str, str]
    attempt: int
    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300

    def json(self) -> Any:
        """The delivered envelope, decoded."""
        return json.loads(self.body)


@dataclass
class _Fault:
    kind: FaultKind
    remaining: int
    session_id: str | None
    status: int = 503
    latency_ms: int = 0
    retry_after: int = 30


@dataclass(frozen=True)
class _Job:
    url: str
    event: str
    webhook_id: str
    body: bytes
    headers: dict[str, str]
    attempt: int = 1


class _WebhookDispatcher:
    """Delivers webhooks on one background thread, so the API never waits for a receiver.

    Failed deliveries are rescheduled after the next retry delay without holding up the
    deliveries behind them, like a real provider's retry queue.
    """

    def __init__(self, retry_delays: tuple[float, ...], timeout: float) -> None:
        self._retry_delays = retry_delays
        self._timeout = timeout
        self._changed = threading.Condition()
        self._due: list[tuple[float, int, _Job]] = []  # heap ordered by due time
        self._order = itertools.count()
        self._closing = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.deliveries: list[WebhookDelivery] = []

    def submit(
        self, url: str, event: str, webhook_id: str, body: bytes, headers: dict[str, str]
    ) -> None:
        with self._changed:
            if self._closing:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fake-verilock-webhooks", daemon=True
                )
                self._thread.start()
            job = _Job(url, event, webhook_id, body, dict(headers))
            heapq.heappush(self._due, (time.monotonic(), next(self._order), job))
            self._changed.notify_all()

    def _next_job(self) -> _Job | None:
        with self._changed:
            while True:
                now = time.monotonic()
                ready = bool(self._due) and self._due[0][0] <= now
                if self._stopped or (self._closing and not ready):
                    # Closing flushes what is due now; scheduled retries are dropped.
                    return None
                if ready:
                    return heapq.heappop(self._due)[2]
                self._changed.wait(self._due[0][0] - now if self._due else None)

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            delivery = self._post(job)
            with self._changed:
                self.deliveries.append(delivery)
                if not delivery.ok and job.attempt <= len(self._retry_delays):
                    due = time.monotonic() + self._retry_delays[job.attempt - 1]
                    retry = dataclasses.replace(job, attempt=job.attempt + 1)
                    heapq.heappush(self._due, (due, next(self._order), retry))
                self._changed.notify_all()

    def _post(self, job: _Job) -> WebhookDelivery:
        delivery = WebhookDelivery(
            job.url, job.event, job.webhook_id, job.body, dict(job.headers), job.attempt
        )
        # urllib, not requests: the in-process fake mocks `requests`, and a test's webhook
        # receiver (live_server, a local socket) must still get a real POST.
        request = urllib.request.Request(  # noqa: S310 - URL chosen by the test/demo
            job.url, data=job.body, headers=job.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:  # noqa: S310
                delivery.status_code = answer.status
        except urllib.error.HTTPError as exc:
            delivery.status_code = exc.code
        except (OSError, ValueError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        return delivery

    def wait_for(self, count: int, timeout: float) -> list[WebhookDelivery]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.deliveries) >= count, timeout)
            return list(self.deliveries)

    def close(self, timeout: float = 5.0) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        if thread is not None:
            thread.join(timeout)


class FakeVerilock:
    """Thread-safe in-memory Verilock account: sessions, faults, counters, webhooks.

    ``api_key=None`` accepts any non-empty key. ``rate_limit_per_minute=None`` disables
    the limit (and the ``X-RateLimit-*`` headers). ``auto_advance_seconds`` makes every
    unfinished session move one status forward each time that many seconds passed since
    its last change (evaluated lazily on each request).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        default_shape: ShapeChoice = "a",
        latency_ms: int = 0,
        rate_limit_per_minute: int | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_retry_delays: Iterable[float] = (10.0, 60.0),
        webhook_timeout: float = 10.0,
        auto_advance_seconds: float | None = None,
        hang_seconds: float = 30.0,
        auth_styles: Iterable[Literal["bearer", "x-api-key"]] = ("bearer", "x-api-key"),
        random_seed: int = 0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.api_key = api_key
        self.default_shape: ShapeChoice = default_shape
        self.latency_ms = latency_ms
        self.rate_limit_per_minute = rate_limit_per_minute
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.auto_advance_seconds = auto_advance_seconds
        #: How long a "timeout" fault keeps the connection silent on the HTTP server.
        self.hang_seconds = hang_seconds
        self.auth_styles = frozenset(auth_styles)
        self.clock = clock
        # Reproducible fake data, not security: ids only need to look real.
        self._rng = random.Random(random_seed)  # noqa: S311
        self._lock = threading.RLock()
        self._sessions: dict[str, FakeSession] = {}
        self._faults: list[_Fault] = []
        self._hits: deque[float] = deque()
        self._counts: Counter[str] = Counter()
        self._total = 0
        self._requests: list[RecordedRequest] = []
        self._events: list[dict[str, Any]] = []
        self._webhooks = _WebhookDispatcher(tuple(webhook_retry_delays), webhook_timeout)

    # ----------------------------------------------------------------- sessions

    def add_session(
        self,
        *,
        status: str = "processing",
        shape: Shape | None = None,
        id: str | None = None,
        outcome: str | None = None,
        reference_id: str | None = None,
        steps: Iterable[str] = STEPS,
        applicant: Mapping[str, Any] | None = None,
        results: Mapping[str, Mapping[str, Any]] | None = None,
        declined_step: str | None = None,
        created_at: datetime | None = None,
        completed_at: datetime | None = None,
        expires_at: datetime | None = None,
        webhook_url: str | None = None,
        **extra: Any,
    ) -> FakeSession:
        """Create a session in ``status`` and return it.

        ``outcome`` is the final status it reaches when advanced past ``processing``
        (default ``approved``). ``results`` is merged per step over results derived from
        ``status``. Other keywords are extra top-level keys added to the detail payload.
        """
        with self._lock:
            now = self.clock()
            session_id = id or factories.new_session_id(self._rng)
            if session_id in self._sessions:
                raise ValueError(f"Session {session_id} already exists in the fake account.")
            step_list = list(steps)
            person = self._applicant_for(len(self._sessions), applicant)
            derived = factories.step_results(
                step_list, status, declined_step=declined_step, nationality=person["nationality"]
            )
            derived.update({step: dict(result) for step, result in (results or {}).items()})
            created = created_at or now
            session = FakeSession(
                id=session_id,
                shape=shape or self._pick_shape(),
                status=status,
                outcome=outcome or (status if status in FINISHED_STATUSES else "approved"),
                reference_id=reference_id
                if reference_id is not None
                else f"usr_{self._rng.randrange(10000, 99999)}",
                steps=step_list,
                applicant=person,
                results=derived,
                created_at=created,
                changed_at=now,
                completed_at=completed_at
                or (
                    created + timedelta(minutes=15) if status in ("approved", "declined") else None
                ),
                expires_at=expires_at or created + timedelta(hours=1),
                webhook_url=webhook_url,
                extra=dict(extra),
            )
            self._sessions[session_id] = session
            return session

    def seed(self, count: int, *, days: int = 30) -> list[FakeSession]:
        """Add ``count`` sessions in mixed states, created over the last ``days`` days."""
        plan = ("approved", "processing", "declined", "created", "approved", "processing",
                "expired", "approved", "processing", "declined")  # fmt: skip
        made = []
        with self._lock:
            now = self.clock()
            for index in range(count):
                status = plan[index % len(plan)]
                created = now - timedelta(seconds=self._rng.randrange(600, days * 86400))
                outcome = self._rng.choices(("approved", "declined", "expired"), (7, 2, 1))[0]
                made.append(
                    self.add_session(
                        status=status,
                        outcome=status if status in FINISHED_STATUSES else outcome,
                        created_at=created,
                        completed_at=created + timedelta(seconds=self._rng.randrange(120, 2400))
                        if status in ("approved", "declined")
                        else None,
                    )
                )
        return made

    def _pick_shape(self) -> Shape:
        if self.default_shape == "mixed":
            return self._rng.choice(("a", "b"))
        return self.default_shape

    def _applicant_for(self, index: int, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        first, last, country = _NAMES[index % len(_NAMES)]
        birth = date(1960, 1, 1) + timedelta(days=self._rng.randrange(0, 40 * 365))
        person = {
            "first_name": first,
            "last_name": last,
            "email": f"{first}.{last}{index or ''}@example.com".lower(),
            "date_of_birth": birth.isoformat(),
            "nationality": country,
        }
        person.update(overrides or {})
        return person

    def get(self, session_id: str) -> FakeSession:
        """Return a session; raise ``KeyError`` if the account has no such id."""
        with self._lock:
            return self._sessions[session_id]

    @property
    def sessions(self) -> list[FakeSession]:
        """All sessions, oldest first."""
        with self._lock:
            return sorted(self._sessions.values(), key=lambda s: (s.created_at, s.id))

    def payload(self, session_id: str) -> dict[str, Any]:
        """Return the ``GET /sessions/{id}`` body of a session as the API would serve it."""
        with self._lock:
            return self._sessions[session_id].payload()

    def complete(
        self,
        session_id: str,
        status: str = "approved",
        *,
        declined_step: str | None = None,
        results: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> FakeSession:
        """Move a session straight to a final ``status`` (approved/declined/expired)."""
        with self._lock:
            session = self._sessions[session_id]
            self._transition(session, status, declined_step=declined_step, results=results)
            return session

    def expire(self, session_id: str) -> FakeSession:
        """Expire a session, as if the applicant never finished."""
        return self.complete(session_id, "expired")

    def advance(self, session_id: str) -> FakeSession:
        """Move a session one status forward: created → processing → its ``outcome``."""
        with self._lock:
            session = self._sessions[session_id]
            if session.status == "created":
                self._transition(session, "processing")
            elif not session.is_finished:
                self._transition(session, session.outcome)
            return session

    def advance_many(
        self, count: int | None = None, *, ids: Iterable[str] | None = None
    ) -> list[FakeSession]:
        """Advance the given ``ids`` (default: every unfinished session, at most ``count``)."""
        with self._lock:
            if ids is not None:
                targets = [self._sessions[session_id] for session_id in ids]
            else:
                targets = [s for s in self.sessions if not s.is_finished]
            if count is not None:
                targets = targets[:count]
            return [self.advance(s.id) for s in targets]

    def _transition(
        self,
        session: FakeSession,
        status: str,
        *,
        declined_step: str | None = None,
        results: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if session.status == status and results is None:
            return
        now = self.clock()
        new_results = factories.step_results(
            session.steps,
            status,
            declined_step=declined_step,
            nationality=str(session.applicant.get("nationality") or "FR"),
        )
        if status == "expired":
            # Steps the applicant already passed stay passed; the rest never happened.
            for step, old in session.results.items():
                if old.get("status") in ("approved", "declined"):
                    new_results[step] = old
        new_results.update({step: dict(result) for step, result in (results or {}).items()})
        session.status = status
        session.results = new_results
        session.changed_at = now
        session.completed_at = now if status in ("approved", "declined") else None
        if status in FINISHED_STATUSES:
            session.outcome = status
            self._emit(session)

    def _tick(self) -> None:
        """Apply time-based progression (called under the lock on every request)."""
        if not self.auto_advance_seconds:
            return
        now = self.clock()
        step = timedelta(seconds=self.auto_advance_seconds)
        for session in list(self._sessions.values()):
            while not session.is_finished and now - session.changed_at >= step:
                moved_at = session.changed_at + step
                self.advance(session.id)
                # Keep the schedule anchored on when the step was due, not on now.
                session.changed_at = moved_at

    # ------------------------------------------------------------------- faults

    def inject(
        self,
        kind: FaultKind,
        *,
        session_id: str | None = None,
        times: int = 1,
        status: int = 503,
        latency_ms: int = 0,
        retry_after: int = 30,
    ) -> None:
        """Make the next ``times`` API requests (for ``session_id``, or any) misbehave.

        Kinds: ``status`` (documented error body with ``status``; 429 adds
        ``Retry-After``), ``timeout`` (no answer), ``reset`` (connection reset),
        ``malformed_json`` (200 with a truncated JSON body), ``html`` (an HTML error page
        with ``status``, as a proxy would send), ``latency`` (answer normally, late).
        """
        with self._lock:
            self._faults.append(_Fault(kind, times, session_id, status, latency_ms, retry_after))

    def fail_next(
        self, session_id: str | None = None, *, status: int = 503, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests (for ``session_id``) with an error ``status``."""
        self.inject("status", session_id=session_id, times=times, status=status)

    def timeout_next(self, session_id: str | None = None, *, times: int = 1) -> None:
        """Never answer the next ``times`` requests (the client's timeout fires)."""
        self.inject("timeout", session_id=session_id, times=times)

    def reset_next(self, session_id: str | None = None, *, times: int = 1) -> None:
        """Reset the connection on the next ``times`` requests."""
        self.inject("reset", session_id=session_id, times=times)

    def malformed_next(self, session_id: str | None = None, *, times: int = 1) -> None:
        """Answer the next ``times`` requests with 200 and a body that is not valid JSON."""
        self.inject("malformed_json", session_id=session_id, times=times)

    def html_error_next(
        self, session_id: str | None = None, *, status: int = 502, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests with an HTML error page, as a proxy would."""
        self.inject("html", session_id=session_id, times=times, status=status)

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, session_id: str | None) -> _Fault | None:
        for fault in self._faults:
            if fault.session_id is None or fault.session_id == session_id:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # ----------------------------------------------------------------- counters

    def requests_for(self, session_id: str) -> int:
        """How many API requests named this session id (failed ones included)."""
        with self._lock:
            return self._counts[session_id]

    @property
    def total_requests(self) -> int:
        """How many API requests were received in total (control calls excluded)."""
        with self._lock:
            return self._total

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every API request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def reset_counters(self) -> None:
        """Zero the request counters and forget the request log."""
        with self._lock:
            self._counts.clear()
            self._total = 0
            self._requests.clear()

    # ----------------------------------------------------------------- webhooks

    @property
    def webhook_events(self) -> list[dict[str, Any]]:
        """Every webhook envelope emitted so far (delivered or not), oldest first."""
        with self._lock:
            return copy.deepcopy(self._events)

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook POST attempt made so far."""
        return self._webhooks.wait_for(0, 0)

    def wait_for_webhooks(self, count: int, timeout: float = 5.0) -> list[WebhookDelivery]:
        """Block until ``count`` delivery attempts were made (or ``timeout``); return them."""
        return self._webhooks.wait_for(count, timeout)

    def _emit(self, session: FakeSession) -> None:
        if session.status == "expired":
            events = ["session.expired"]
        else:
            # Docs do not say whether both fire; sending both exercises dedupe logic.
            events = ["session.completed", f"session.{session.status}"]
        targets = [url for url in (self.webhook_url, session.webhook_url) if url]
        for event in events:
            envelope = factories.webhook_payload(
                event,
                session_id=session.id,
                status=session.status,
                completed_at=session.completed_at,
                risk_score=session.payload().get("risk_score") if session.shape == "b" else None,
                timestamp=self.clock(),
                webhook_id=f"wh_evt_{uuid.UUID(int=self._rng.getrandbits(128)).hex[:12]}",
            )
            self._events.append(envelope)
            body = json.dumps(envelope, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json", "User-Agent": "fake-verilock/1"}
            if self.webhook_secret is not None:
                headers[factories.SIGNATURE_HEADER] = sign_webhook(body, self.webhook_secret)
            for url in targets:
                self._webhooks.submit(url, event, envelope["webhook_id"], body, headers)

    def close(self) -> None:
        """Flush queued webhook deliveries and stop the delivery thread."""
        self._webhooks.close()

    # --------------------------------------------------------------------- HTTP

    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> FakeResponse:
        """Answer one API request; ``path`` is relative to the API base (``/sessions/…``)."""
        method = method.upper()
        lowered = {key.lower(): value for key, value in headers.items()}
        match = _SESSION_PATH.match(path)
        session_id = match.group("id") if match else None
        auth_style, presented_key = self._credentials(lowered)
        with self._lock:
            self._total += 1
            if session_id:
                self._counts[session_id] += 1
            fault = self._take_fault(session_id)
        delay = self.latency_ms + (fault.latency_ms if fault and fault.kind == "latency" else 0)
        if delay:
            # Outside the lock: a slow answer must not slow down concurrent requests.
            time.sleep(delay / 1000)
        response = (
            self._fault_response(fault)
            if fault and fault.kind != "latency"
            else self._answer(method, path, query, body, match, auth_style, presented_key)
        )
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method,
                    path,
                    query,
                    session_id,
                    response.status,
                    auth_style,
                    fault.kind if fault else None,
                )
            )
        return response

    def _credentials(
        self, headers: Mapping[str, str]
    ) -> tuple[Literal["bearer", "x-api-key"] | None, str | None]:
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer " and authorization[7:].strip():
            return "bearer", authorization[7:].strip()
        if headers.get("x-api-key", "").strip():
            return "x-api-key", headers["x-api-key"].strip()
        return None, None

    def _answer(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        match: re.Match[str] | None,
        auth_style: Literal["bearer", "x-api-key"] | None,
        key: str | None,
    ) -> FakeResponse:
        with self._lock:
            if (
                auth_style is None
                or auth_style not in self.auth_styles
                or (self.api_key is not None and key != self.api_key)
            ):
                return self._error(401, "Invalid or missing API key.")
            limited = self._rate_limit()
            if isinstance(limited, FakeResponse):
                return limited
            self._tick()
            response = self._route(method, path, query, body, match)
            response.headers.update(limited)
            return response

    def _rate_limit(self) -> FakeResponse | dict[str, str]:
        """Sliding one-minute window; returns the headers to add, or the 429 to send."""
        limit = self.rate_limit_per_minute
        if not limit:
            return {}
        now = time.monotonic()
        while self._hits and now - self._hits[0] >= 60:
            self._hits.popleft()
        if len(self._hits) >= limit:
            retry_after = max(1, math.ceil(60 - (now - self._hits[0])))
            response = self._error(
                429,
                f"Too many requests. Please retry after {retry_after} seconds.",
                {"retry_after": retry_after},
                retry_after=retry_after,
            )
            response.headers.update(
                {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"}
            )
            return response
        self._hits.append(now)
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(limit - len(self._hits)),
        }

    def _route(
        self, method: str, path: str, query: str, body: bytes, match: re.Match[str] | None
    ) -> FakeResponse:
        if path.rstrip("/") == "/sessions":
            if method == "GET":
                return self._list(query)
            if method == "POST":
                return self._create(body)
            return self._error(405, f"Method {method} is not allowed on /sessions.")
        if match is not None:
            session = self._sessions.get(match.group("id"))
            rest = match.group("rest") or ""
            if session is None:
                return self._error(404, f"Session {match.group('id')} not found.")
            if rest in ("", "/") and method == "GET":
                return self._json(200, session.payload())
            if rest == "/submit" and method == "POST":
                if session.status == "created":
                    self._transition(session, "processing")
                elif session.status != "processing":
                    return self._error(409, f"Session {session.id} is already {session.status}.")
                return self._json(
                    200,
                    {
                        "id": session.id,
                        "status": "processing",
                        "message": "Session submitted. The result will be sent by webhook.",
                    },
                )
            if rest in ("", "/", "/submit"):
                return self._error(405, f"Method {method} is not allowed on {path}.")
        return self._error(404, f"No route for {method} {path}.")

    def _list(self, query: str) -> FakeResponse:
        params = {key: values[-1] for key, values in parse_qs(query).items()}
        errors: dict[str, list[str]] = {}
        page = self._int_param(params, "page", 1, errors)
        per_page = self._int_param(params, "per_page", 15, errors)
        bounds: dict[str, date] = {}
        for name in ("from", "to"):
            if name in params:
                try:
                    bounds[name] = date.fromisoformat(params[name])
                except ValueError:
                    errors[name] = [f"The {name} does not match the format Y-m-d."]
        if errors:
            return self._error(422, "The given data was invalid.", errors)
        # The docs say "max 100" without saying whether larger values are rejected; the
        # fake clamps, like most Laravel-style APIs.
        per_page = min(per_page, 100)
        wanted = params.get("status")
        found = []
        for session in sorted(
            self._sessions.values(), key=lambda s: (s.created_at, s.id), reverse=True
        ):
            created = session.created_at.date()
            if "from" in bounds and created < bounds["from"]:
                continue
            if "to" in bounds and created > bounds["to"]:
                continue
            item = session.payload("list")
            if wanted and wanted not in (session.status, item.get("status")):
                continue
            if "decision" in params and params["decision"] != item.get("decision", session.status):
                continue
            if "external_id" in params and params["external_id"] != session.reference_id:
                continue
            found.append(item)
        total = len(found)
        start = (page - 1) * per_page
        return self._json(
            200,
            {
                "data": found[start : start + per_page],
                "meta": {
                    "current_page": page,
                    "last_page": max(1, math.ceil(total / per_page)),
                    "per_page": per_page,
                    "total": total,
                },
            },
        )

    @staticmethod
    def _int_param(
        params: Mapping[str, str], name: str, default: int, errors: dict[str, list[str]]
    ) -> int:
        raw = params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            errors[name] = [f"The {name} must be an integer."]
            return default
        if value < 1:
            errors[name] = [f"The {name} must be at least 1."]
            return default
        return value

    def _create(self, body: bytes) -> FakeResponse:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return self._error(400, "The request body is not valid JSON.")
        if not isinstance(data, dict):
            return self._error(
                422, "The given data was invalid.", {"body": ["Must be an object."]}
            )
        if any(key in data for key in ("type", "steps", "applicant")):
            return self._create_gen_a(data)
        return self._create_gen_b(data)

    def _create_gen_a(self, data: dict[str, Any]) -> FakeResponse:
        errors: dict[str, list[str]] = {}
        if data.get("type") != "kyc":
            errors["type"] = ["The selected type is invalid."]
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            errors["steps"] = ["The steps field is required."]
        elif any(step not in STEPS for step in steps):
            errors["steps"] = ["The selected steps are invalid."]
        person = data.get("applicant")
        if not isinstance(person, dict):
            errors["applicant"] = ["The applicant field is required."]
        else:
            for key in ("first_name", "last_name", "email"):
                if not isinstance(person.get(key), str) or not person.get(key):
                    errors[f"applicant.{key}"] = [f"The applicant.{key} field is required."]
        self._check_url(data, "redirect_url", errors)
        self._check_url(data, "webhook_url", errors)
        if errors:
            return self._error(422, "The given data was invalid.", errors)
        assert isinstance(steps, list) and isinstance(person, dict)  # narrowed by validation
        session = self.add_session(
            status="created",
            shape="a",
            reference_id=data.get("reference_id"),
            steps=steps,
            applicant=person,
            webhook_url=data.get("webhook_url"),
        )
        echo = {
            key: session.payload()[key]
            for key in ("id", "type", "status", "reference_id", "steps", "applicant", "hosted_url")
        }
        echo["created_at"] = factories.format_timestamp(session.created_at)
        return self._json(201, echo)

    def _create_gen_b(self, data: dict[str, Any]) -> FakeResponse:
        errors: dict[str, list[str]] = {}
        if not isinstance(data.get("profile_id"), str) or not data.get("profile_id"):
            errors["profile_id"] = ["The profile id field is required."]
        for key in ("applicant_email", "applicant_name", "external_id"):
            if key in data and not isinstance(data[key], str):
                errors[key] = [f"The {key.replace('_', ' ')} must be a string."]
        expires_in = data.get("expires_in", 3600)
        if not isinstance(expires_in, int) or not 300 <= expires_in <= 86400:
            errors["expires_in"] = ["The expires in must be between 300 and 86400."]
        if "metadata" in data and not isinstance(data["metadata"], dict):
            errors["metadata"] = ["The metadata must be an object."]
        self._check_url(data, "redirect_url", errors)
        if errors:
            return self._error(422, "The given data was invalid.", errors)
        first, _, last = str(data.get("applicant_name") or "").partition(" ")
        person: dict[str, Any] = {}
        if first:
            person.update(first_name=first, last_name=last)
        if data.get("applicant_email"):
            person["email"] = data["applicant_email"]
        now = self.clock()
        session = self.add_session(
            status="created",
            shape="b",
            reference_id=data.get("external_id"),
            applicant=person,
            expires_at=now + timedelta(seconds=expires_in),
        )
        token = f"tok_{uuid.UUID(int=self._rng.getrandbits(128)).hex}"
        return self._json(
            201,
            {
                "id": session.id,
                "session_token": token,
                "session_url": f"https://verilock.io/verify/{token}",
                "status": "created",
                "expires_at": factories.format_timestamp(now + timedelta(seconds=expires_in)),
            },
        )

    @staticmethod
    def _check_url(data: Mapping[str, Any], key: str, errors: dict[str, list[str]]) -> None:
        value = data.get(key)
        if value is not None and not (
            isinstance(value, str) and re.match(r"^https?://[^\s/]+", value)
        ):
            errors[key] = [f"The {key.replace('_', ' ')} must be a valid URL."]

    # ---------------------------------------------------------------- responses

    def _request_id(self) -> str:
        return f"req_{uuid.UUID(int=self._rng.getrandbits(128)).hex[:20]}"

    def _json(
        self, status: int, data: Any, headers: Mapping[str, str] | None = None
    ) -> FakeResponse:
        return FakeResponse(
            status,
            {
                "Content-Type": "application/json",
                "X-Request-Id": self._request_id(),
                **(headers or {}),
            },
            json.dumps(data).encode(),
        )

    def error_response(self, status: int, message: str, details: Any = None) -> FakeResponse:
        """Build a documented error answer ``{"error", "message", "details"}``."""
        with self._lock:
            return self._error(status, message, details)

    def _error(
        self,
        status: int,
        message: str,
        details: Any = None,
        *,
        retry_after: int | None = None,
    ) -> FakeResponse:
        code = _ERROR_CODES.get(status, "server_error" if status >= 500 else "error")
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return self._json(status, {"error": code, "message": message, "details": details}, headers)

    def _fault_response(self, fault: _Fault) -> FakeResponse:
        with self._lock:
            if fault.kind == "timeout":
                return FakeResponse(0, {}, b"", fault="timeout")
            if fault.kind == "reset":
                return FakeResponse(0, {}, b"", fault="reset")
            if fault.kind == "malformed_json":
                return FakeResponse(
                    200,
                    {"Content-Type": "application/json", "X-Request-Id": self._request_id()},
                    b'{"id": "ses_truncated", "status": "appro',
                )
            if fault.kind == "html":
                reason = _REASONS.get(fault.status, "Error")
                page = (
                    f"<!DOCTYPE html><html><head><title>{fault.status} {reason}</title></head>"
                    f"<body><h1>{fault.status} {reason}</h1><hr><p>nginx</p></body></html>"
                )
                return FakeResponse(
                    fault.status,
                    {
                        "Content-Type": "text/html; charset=utf-8",
                        "X-Request-Id": self._request_id(),
                    },
                    page.encode(),
                )
            if fault.status == 429:
                return self._error(
                    429,
                    f"Too many requests. Please retry after {fault.retry_after} seconds.",
                    {"retry_after": fault.retry_after},
                    retry_after=fault.retry_after,
                )
            messages = {
                401: "Invalid or missing API key.",
                404: "Not found.",
                500: "An unexpected error occurred.",
                503: "The service is temporarily unavailable.",
            }
            return self._error(
                fault.status, messages.get(fault.status, _REASONS.get(fault.status, "Error."))
            )

    # ---------------------------------------------------------------- control

    def handle_control(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> FakeResponse:
        """Answer a control request (``path`` relative to ``/_fake``) for demos and tests.

        No API key, rate limit, fault or counter applies here: these calls drive the fake,
        they are not part of the Verilock API.
        """
        method = method.upper()
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return self._error(400, "The request body is not valid JSON.")
        if not isinstance(data, dict):
            return self._error(400, "The request body must be a JSON object.")
        parts = [part for part in path.split("/") if part]
        try:
            with self._lock:
                self._tick()
                return self._control(method, parts, data)
        except KeyError as exc:
            return self._error(404, f"Session {exc.args[0]} not found.")
        except (TypeError, ValueError) as exc:
            return self._error(422, str(exc))

    def _control(self, method: str, parts: list[str], data: dict[str, Any]) -> FakeResponse:
        if method == "GET" and parts == ["stats"]:
            return self._json(200, self.stats())
        if method == "GET" and parts == ["sessions"]:
            return self._json(
                200, {"data": [{**s.payload(), "shape": s.shape} for s in self.sessions]}
            )
        if method == "POST" and parts == ["sessions"]:
            count = int(data.pop("count", 1))
            unknown = set(data) - _CONTROL_SESSION_KEYS
            if unknown:
                raise ValueError(f"Unknown session fields: {', '.join(sorted(unknown))}.")
            made = [self.add_session(**data) for _ in range(count)]
            return self._json(201, {"ids": [s.id for s in made]})
        if method == "POST" and parts == ["seed"]:
            made = self.seed(int(data.get("count", 10)))
            return self._json(201, {"ids": [s.id for s in made]})
        if method == "POST" and parts == ["advance"]:
            moved = self.advance_many(data.get("count"), ids=data.get("ids"))
            return self._json(200, {"sessions": [{"id": s.id, "status": s.status} for s in moved]})
        if method == "POST" and len(parts) == 3 and parts[0] == "sessions":
            session_id, action = parts[1], parts[2]
            if action == "complete":
                session = self.complete(
                    session_id,
                    str(data.get("status", self.get(session_id).outcome)),
                    declined_step=data.get("declined_step"),
                )
            elif action == "advance":
                session = self.advance(session_id)
            elif action == "expire":
                session = self.expire(session_id)
            else:
                return self._error(404, f"Unknown action {action}.")
            return self._json(200, session.payload())
        if method == "POST" and parts == ["faults"]:
            self.inject(
                data.get("kind", "status"),
                session_id=data.get("session_id"),
                times=int(data.get("times", 1)),
                status=int(data.get("status", 503)),
                latency_ms=int(data.get("latency_ms", 0)),
                retry_after=int(data.get("retry_after", 30)),
            )
            return self._json(201, {"pending": len(self._faults)})
        if method == "DELETE" and parts == ["faults"]:
            self.clear_faults()
            return self._json(200, {"pending": 0})
        if method == "GET" and parts == ["webhooks"]:
            deliveries = [
                {
                    "url": d.url,
                    "event": d.event,
                    "webhook_id": d.webhook_id,
                    "attempt": d.attempt,
                    "status_code": d.status_code,
                    "error": d.error,
                }
                for d in self.webhook_deliveries
            ]
            return self._json(200, {"events": self._events, "deliveries": deliveries})
        return self._error(404, f"No control route for {method} /_fake/{'/'.join(parts)}.")

    def stats(self) -> dict[str, Any]:
        """Counters and a status breakdown, as served by ``GET /_fake/stats``."""
        with self._lock:
            return {
                "total_requests": self._total,
                "requests_by_session": dict(self._counts),
                "sessions": len(self._sessions),
                "by_status": dict(Counter(s.status for s in self._sessions.values())),
                "webhook_events": len(self._events),
                "pending_faults": len(self._faults),
            }
