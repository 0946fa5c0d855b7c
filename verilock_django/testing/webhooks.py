"""Verilock webhooks, faked: the envelope, its signature, and their delivery.

:func:`webhook_payload` is the one builder of the envelope
``{"event", "data", "timestamp", "webhook_id"}`` and :func:`signed_webhook` the one place
that serialises and signs it (HMAC-SHA256 via :mod:`verilock_django.signatures`); the fake
account's :class:`WebhookSender` uses both, so a hand-built test delivery and one the fake
sends are byte-for-byte alike. Deliveries run on one background thread: the API never
waits for a receiver, and a failed POST is retried after the next delay without holding up
the ones behind it, like a real provider's retry queue.
"""

from __future__ import annotations

import copy
import dataclasses
import heapq
import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from ..signatures import SIGNATURE_HEADERS, sign_webhook
from ..statuses import SessionStatus
from .account import FakeSession
from .factories import DECISIONS, SEED_COMPLETED_AT, SEED_SESSION_ID, format_timestamp

__all__ = [
    "SIGNATURE_HEADER",
    "WebhookDelivery",
    "WebhookSender",
    "signed_webhook",
    "webhook_payload",
]

#: The header the fake signs with (the current one of the documented names).
SIGNATURE_HEADER: Final = SIGNATURE_HEADERS[0]
_EXPIRED: Final = SessionStatus.EXPIRED.value
_UNSET: Any = object()


def webhook_payload(
    event: str | None = None,
    *,
    session_id: str = SEED_SESSION_ID,
    status: str = "approved",
    decision: str | None = _UNSET,
    completed_at: datetime | str | None = _UNSET,
    risk_score: float | None = None,
    timestamp: datetime | str | None = None,
    webhook_id: str | None = None,
) -> dict[str, Any]:
    """Build a webhook envelope ``{"event", "data", "timestamp", "webhook_id"}``.

    ``event`` defaults to ``session.expired`` for expired sessions and ``session.completed``
    otherwise; ``decision`` defaults to the status when it is an outcome.
    """
    if event is None:
        event = "session.expired" if status == _EXPIRED else "session.completed"
    if decision is _UNSET:
        decision = status if status in DECISIONS else None
    if completed_at is _UNSET:
        completed_at = SEED_COMPLETED_AT if status in DECISIONS else None
    finished = (
        completed_at
        if isinstance(completed_at, str) or completed_at is None
        else format_timestamp(completed_at)
    )
    data: dict[str, Any] = {
        "session_id": session_id,
        "status": status,
        "decision": decision,
        "completed_at": finished,
    }
    if risk_score is not None:
        data["risk_score"] = risk_score
    when = timestamp if timestamp is not None else datetime.now(timezone.utc)
    return {
        "event": event,
        "data": data,
        "timestamp": when if isinstance(when, str) else format_timestamp(when),
        "webhook_id": webhook_id or f"wh_evt_{uuid.uuid4().hex[:12]}",
    }


def signed_webhook(payload: Mapping[str, Any], secret: str | None) -> tuple[bytes, dict[str, str]]:
    """Serialise ``payload`` and return ``(raw_body, headers)`` as Verilock would send them.

    ``secret=None`` sends no signature header. Post them with the Django test client:
    ``client.post(url, body, content_type="application/json", headers=headers)``.
    """
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign_webhook(body, secret)
    return body, headers


@dataclass
class WebhookDelivery:
    """One webhook POST attempt and its outcome (``event_type`` is the envelope's event)."""

    url: str
    event_type: str
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


@dataclass(frozen=True)
class _Job:
    url: str
    event_type: str
    webhook_id: str
    body: bytes
    headers: dict[str, str]
    attempt: int = 1


class _Dispatcher:
    """Posts jobs from one background thread, rescheduling failures after their delay."""

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

    def submit(self, job: _Job) -> None:
        with self._changed:
            if self._closing:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fake-verilock-webhooks", daemon=True
                )
                self._thread.start()
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
            job.url, job.event_type, job.webhook_id, job.body, dict(job.headers), job.attempt
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


class WebhookSender:
    """Emits the webhooks of a session that reached a final status, and delivers them.

    Every event is recorded in :attr:`events`; it is POSTed to ``url`` (the account-wide
    receiver) and to the session's own ``webhook_url``, signed when ``secret`` is set.
    """

    def __init__(
        self,
        *,
        rng: random.Random,
        url: str | None = None,
        secret: str | None = None,
        retry_delays: Iterable[float] = (10.0, 60.0),
        timeout: float = 10.0,
    ) -> None:
        self.rng = rng
        self.url = url
        self.secret = secret
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._dispatcher = _Dispatcher(tuple(retry_delays), timeout)

    def emit(self, session: FakeSession) -> None:
        """Send the events of ``session``'s final status: expired, or completed plus outcome."""
        if session.status == _EXPIRED:
            events = ["session.expired"]
        else:
            # Docs do not say whether both fire; sending both exercises dedupe logic.
            events = ["session.completed", f"session.{session.status}"]
        targets = [url for url in (self.url, session.webhook_url) if url]
        risk_score = session.payload().get("risk_score") if session.shape == "b" else None
        for event in events:
            envelope = webhook_payload(
                event,
                session_id=session.id,
                status=session.status,
                completed_at=session.completed_at,
                risk_score=risk_score,
                timestamp=session.changed_at,
                webhook_id=f"wh_evt_{uuid.UUID(int=self.rng.getrandbits(128)).hex[:12]}",
            )
            with self._lock:
                self._events.append(envelope)
            body, headers = signed_webhook(envelope, self.secret)
            headers["User-Agent"] = "fake-verilock/1"
            for url in targets:
                self._dispatcher.submit(_Job(url, event, envelope["webhook_id"], body, headers))

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every envelope emitted so far (delivered or not), oldest first."""
        with self._lock:
            return copy.deepcopy(self._events)

    def wait_for(self, count: int, timeout: float) -> list[WebhookDelivery]:
        """Block until ``count`` delivery attempts were made (or ``timeout``); return all."""
        return self._dispatcher.wait_for(count, timeout)

    def close(self) -> None:
        """Flush deliveries that are due and stop the delivery thread."""
        self._dispatcher.close()
