"""The fake Verilock: one account and the one request handler that serves it.

:class:`FakeVerilock` is the account (:mod:`.account`) with Verilock's HTTP face: its
:meth:`~FakeVerilock.handle` turns ``(method, path, query, headers, body)`` into a
:class:`~.replies.FakeResponse`, and the loopback HTTP server (``server.py``) and the
in-process ``responses`` adapter (``responses_api.py``) both call it, so they behave
identically. Each request goes: count it (:mod:`.requestlog`), apply a planned fault
(:mod:`.faults`) or the latency, check the key, the rate limit (:mod:`.ratelimit`), apply
time-based progression, route it (:mod:`.routes`), deliver it (the server may hold it, and
tells whether the client was still there), log it as answered or abandoned. Final statuses
send webhooks (:mod:`.webhooks`); :mod:`.control` serves ``/_fake``.
"""

from __future__ import annotations

import json as _json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from .account import FakeAccount, ShapeChoice, utcnow
from .control import ControlApi, stats
from .faults import FaultKind, FaultPlan, fault_reply
from .ratelimit import RateLimit
from .replies import FakeResponse, error_reply
from .requestlog import AnswerHold, AuthStyle, RecordedRequest, RequestLog
from .routes import ApiRoutes, credentials, session_id_of
from .webhooks import WebhookDelivery, WebhookSender

__all__ = ["FakeVerilock"]


class FakeVerilock(FakeAccount):
    """Thread-safe in-memory Verilock account: sessions, faults, counters, webhooks.

    ``api_key=None`` accepts any non-empty key. ``rate_limit_per_minute=None`` disables
    the limit (and the ``X-RateLimit-*`` headers). ``auto_advance_seconds`` makes every
    unfinished session move one status forward each time that many seconds passed since
    its last change (evaluated lazily on each request). ``status_filter=False`` makes the
    list ignore its ``status`` parameter, as a provider might. The session calls (``add_session``,
    ``seed``, ``get``, ``sessions``, ``payload``, ``complete``, ``expire``, ``advance``,
    ``advance_many``) are those of :class:`~.account.FakeAccount`.
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
        auth_styles: Iterable[AuthStyle] = ("bearer", "x-api-key"),
        random_seed: int = 0,
        clock: Callable[[], datetime] = utcnow,
        status_filter: bool = True,
    ) -> None:
        # Reproducible fake data, not security: ids only need to look real.
        rng = random.Random(random_seed)  # noqa: S311
        self._webhooks = WebhookSender(
            rng=rng,
            url=webhook_url,
            secret=webhook_secret,
            retry_delays=webhook_retry_delays,
            timeout=webhook_timeout,
        )
        super().__init__(
            rng=rng,
            clock=clock,
            default_shape=default_shape,
            auto_advance_seconds=auto_advance_seconds,
            on_finished=self._webhooks.emit,
        )
        self.api_key = api_key
        self.status_filter = status_filter
        self.latency_ms = latency_ms
        #: How long a "timeout" fault keeps the connection silent on the HTTP server.
        self.hang_seconds = hang_seconds
        self.auth_styles = frozenset(auth_styles)
        self._faults = FaultPlan()
        self._limit = RateLimit(rate_limit_per_minute)
        self._log = RequestLog()
        #: Answers held on their way out (:meth:`hold_answers`); the server waits on it.
        self.answer_hold = AnswerHold()
        self._routes = ApiRoutes(self, rng)
        self._control = ControlApi(
            self, self._faults, self._log, self._webhooks, self.answer_hold, rng
        )

    @property
    def rate_limit_per_minute(self) -> int | None:
        """Requests per minute before 429 (``None``: no limit)."""
        return self._limit.per_minute

    @rate_limit_per_minute.setter
    def rate_limit_per_minute(self, value: int | None) -> None:
        self._limit.per_minute = value

    @property
    def webhook_url(self) -> str | None:
        """Where every webhook is POSTed (besides a session's own ``webhook_url``)."""
        return self._webhooks.url

    @webhook_url.setter
    def webhook_url(self, value: str | None) -> None:
        self._webhooks.url = value

    @property
    def webhook_secret(self) -> str | None:
        """The HMAC-SHA256 key webhooks are signed with (``None``: unsigned)."""
        return self._webhooks.secret

    @webhook_secret.setter
    def webhook_secret(self, value: str | None) -> None:
        self._webhooks.secret = value

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
        self._faults.inject(
            kind,
            session_id=session_id,
            times=times,
            status=status,
            latency_ms=latency_ms,
            retry_after=retry_after,
        )

    def respond_next(
        self,
        session_id: str | None = None,
        *,
        json: object = None,
        body: bytes | None = None,
        status: int = 200,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests (for ``session_id``) with exactly this.

        ``json`` is serialised as given (any JSON value, ``NaN`` included); ``body`` is sent
        as raw bytes instead. For payloads the fake account would never produce: odd
        values, other shapes, another session's id.
        """
        raw = body if body is not None else _json.dumps(json).encode()
        self._faults.inject("answer", session_id=session_id, times=times, status=status, body=raw)

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
        self._faults.clear()

    # ----------------------------------------------------------------- counters

    def requests_for(self, session_id: str) -> int:
        """How many API requests named this session id (received: failed and abandoned
        ones included)."""
        return self._log.requests_for(session_id)

    def answered_for(self, session_id: str) -> int:
        """How many API requests naming this session id were answered: the whole response
        went to a client still connected (any status). A client killed while its answer
        was held (:meth:`hold_answers`) or in flight is not counted."""
        return self._log.answered_for(session_id)

    @property
    def total_requests(self) -> int:
        """How many API requests were received in total (control calls excluded)."""
        return self._log.total

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every finished API request, answered or abandoned (``answered`` says which), in
        the order they finished."""
        return self._log.requests

    # -------------------------------------------------------------- held answers

    def hold_answers(self) -> None:
        """From now on the loopback server keeps each answer until :meth:`release_answers`.

        For tests that stop a client in the middle of a fetch: wait for
        :meth:`wait_for_held`, kill the client, release; its answers are logged abandoned.
        """
        self.answer_hold.hold()

    def release_answers(self) -> None:
        """Send every held answer (to clients still connected) and stop holding."""
        self.answer_hold.release()

    @property
    def held_answers(self) -> int:
        """How many answers the loopback server is holding now."""
        return self.answer_hold.held

    def wait_for_held(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` answers are held; ``False`` when ``timeout`` s pass first."""
        return self.answer_hold.wait_for_held(count, timeout)

    def reset_counters(self) -> None:
        """Zero the request counters and forget the request log."""
        self._log.reset()

    def stats(self) -> dict[str, Any]:
        """Counters and a status breakdown, as served by ``GET /_fake/stats``."""
        return stats(self, self._faults, self._log, self._webhooks, self.answer_hold)

    # ----------------------------------------------------------------- webhooks

    @property
    def webhook_events(self) -> list[dict[str, Any]]:
        """Every webhook envelope emitted so far (delivered or not), oldest first."""
        return self._webhooks.events

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook POST attempt made so far."""
        return self._webhooks.wait_for(0, 0)

    def wait_for_webhooks(self, count: int, timeout: float = 5.0) -> list[WebhookDelivery]:
        """Block until ``count`` delivery attempts were made (or ``timeout``); return them."""
        return self._webhooks.wait_for(count, timeout)

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
        deliver: Callable[[FakeResponse], bool] | None = None,
    ) -> FakeResponse:
        """Answer one API request; ``path`` is relative to the API base (``/sessions/…``).

        ``deliver(response)`` sends the answer and says whether a connected client got it
        (the loopback server passes it, and holds the answer first while
        :meth:`hold_answers` is in effect); without it the caller delivers the returned
        response, answered unless it is a ``timeout`` or ``reset`` fault.
        """
        method = method.upper()
        session_id = session_id_of(path)
        auth_style, presented_key = credentials(headers)
        self._log.count(session_id)
        arrived = datetime.now(timezone.utc)
        fault = self._faults.take(session_id)
        delay = self.latency_ms + (fault.latency_ms if fault and fault.kind == "latency" else 0)
        if delay:
            # Outside any lock: a slow answer must not slow down concurrent requests.
            time.sleep(delay / 1000)
        if fault and fault.kind != "latency":
            response = fault_reply(fault, self.rng)
        else:
            response = self._answer(method, path, query, body, auth_style, presented_key)
        if deliver is None:
            answered = response.fault not in ("timeout", "reset")
        else:
            answered = deliver(response)
        self._log.record(
            RecordedRequest(
                method,
                path,
                query,
                session_id,
                response.status,
                auth_style,
                fault.kind if fault else None,
                answered,
                arrived,
            )
        )
        return response

    def _answer(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        auth_style: AuthStyle | None,
        key: str | None,
    ) -> FakeResponse:
        if (
            auth_style is None
            or auth_style not in self.auth_styles
            or (self.api_key is not None and key != self.api_key)
        ):
            return error_reply(self.rng, 401, "Invalid or missing API key.")
        limited = self._limit.admit(self.rng)
        if isinstance(limited, FakeResponse):
            return limited
        with self.lock:
            self.tick()
            response = self._routes.route(method, path, query, body)
        response.headers.update(limited)
        return response

    def error_response(self, status: int, message: str, details: Any = None) -> FakeResponse:
        """Build a documented error answer ``{"error", "message", "details"}``."""
        return error_reply(self.rng, status, message, details)

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
        they are not part of the Verilock API (routes: :mod:`.control`).
        """
        return self._control.handle(method, path, body)
