"""The fake's control API under ``/_fake``: drive the account from scripts and demos.

No API key, rate limit, fault or counter applies here: these calls drive the fake, they are
not part of the Verilock API. Routes (``path`` relative to ``/_fake``):

``GET /stats``                 counters and a status breakdown (:func:`stats`)
``GET|POST /sessions``         list every session (with its shape) / add ``count`` sessions
``POST /seed``                 add ``count`` sessions in mixed states
``POST /advance``              advance ``ids`` or up to ``count`` unfinished sessions
``POST /sessions/{id}/complete|advance|expire``  move one session
``POST|DELETE /faults``        plan a fault / forget every pending fault
``GET /webhooks``              emitted envelopes and delivery attempts
``GET|POST|DELETE /hold``      whether answers are held and how many / hold every answer
                               from now on / release them (:class:`.requestlog.AnswerHold`)

A body that is not a JSON object is 400, an unknown session 404, a bad field 422.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any, Final

from .account import FakeAccount
from .faults import FaultPlan
from .replies import FakeResponse, error_reply, json_reply
from .requestlog import AnswerHold, RequestLog
from .webhooks import WebhookSender

__all__ = ["ControlApi", "stats"]

_SESSION_KEYS: Final = frozenset(
    {"status", "shape", "outcome", "reference_id", "steps", "applicant", "declined_step",
     "webhook_url", "id"}
)  # fmt: skip


def stats(
    account: FakeAccount,
    faults: FaultPlan,
    log: RequestLog,
    webhooks: WebhookSender,
    hold: AnswerHold,
) -> dict[str, Any]:
    """Counters and a status breakdown, as served by ``GET /_fake/stats``.

    ``requests_by_session`` counts requests received, ``answered_by_session`` those whose
    answer reached a connected client; ``abandoned_requests`` is how many did not.
    """
    finished = log.requests
    with account.lock:
        sessions = account.sessions
        return {
            "total_requests": log.total,
            "requests_by_session": log.by_session,
            "answered_by_session": log.answered_by_session,
            "abandoned_requests": sum(1 for r in finished if not r.answered),
            "held_answers": hold.held,
            "sessions": len(sessions),
            "by_status": dict(Counter(s.status for s in sessions)),
            "webhook_events": len(webhooks.events),
            "pending_faults": len(faults),
        }


class ControlApi:
    """Answers control requests by calling the account, fault plan and webhook sender."""

    def __init__(
        self,
        account: FakeAccount,
        faults: FaultPlan,
        log: RequestLog,
        webhooks: WebhookSender,
        hold: AnswerHold,
        rng: random.Random,
    ) -> None:
        self.account = account
        self.faults = faults
        self.log = log
        self.webhooks = webhooks
        self.hold = hold
        self.rng = rng

    def handle(self, method: str, path: str, body: bytes) -> FakeResponse:
        """Answer one control request (``path`` relative to ``/_fake``)."""
        method = method.upper()
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return error_reply(self.rng, 400, "The request body is not valid JSON.")
        if not isinstance(data, dict):
            return error_reply(self.rng, 400, "The request body must be a JSON object.")
        parts = [part for part in path.split("/") if part]
        try:
            with self.account.lock:
                self.account.tick()
                return self._route(method, parts, data)
        except KeyError as exc:
            return error_reply(self.rng, 404, f"Session {exc.args[0]} not found.")
        except (TypeError, ValueError) as exc:
            return error_reply(self.rng, 422, str(exc))

    def _route(self, method: str, parts: list[str], data: dict[str, Any]) -> FakeResponse:
        account = self.account
        if method == "GET" and parts == ["stats"]:
            return self._json(200, stats(account, self.faults, self.log, self.webhooks, self.hold))
        if parts == ["hold"] and method in ("GET", "POST", "DELETE"):
            if method == "POST":
                self.hold.hold()
            elif method == "DELETE":
                self.hold.release()
            return self._json(200, {"holding": self.hold.holding, "held": self.hold.held})
        if method == "GET" and parts == ["sessions"]:
            return self._json(
                200, {"data": [{**s.payload(), "shape": s.shape} for s in account.sessions]}
            )
        if method == "POST" and parts == ["sessions"]:
            count = int(data.pop("count", 1))
            unknown = set(data) - _SESSION_KEYS
            if unknown:
                raise ValueError(f"Unknown session fields: {', '.join(sorted(unknown))}.")
            made = [account.add_session(**data) for _ in range(count)]
            return self._json(201, {"ids": [s.id for s in made]})
        if method == "POST" and parts == ["seed"]:
            made = account.seed(int(data.get("count", 10)))
            return self._json(201, {"ids": [s.id for s in made]})
        if method == "POST" and parts == ["advance"]:
            moved = account.advance_many(data.get("count"), ids=data.get("ids"))
            return self._json(200, {"sessions": [{"id": s.id, "status": s.status} for s in moved]})
        if method == "POST" and len(parts) == 3 and parts[0] == "sessions":
            return self._move(parts[1], parts[2], data)
        if method == "POST" and parts == ["faults"]:
            self.faults.inject(
                data.get("kind", "status"),
                session_id=data.get("session_id"),
                times=int(data.get("times", 1)),
                status=int(data.get("status", 503)),
                latency_ms=int(data.get("latency_ms", 0)),
                retry_after=int(data.get("retry_after", 30)),
            )
            return self._json(201, {"pending": len(self.faults)})
        if method == "DELETE" and parts == ["faults"]:
            self.faults.clear()
            return self._json(200, {"pending": 0})
        if method == "GET" and parts == ["webhooks"]:
            deliveries = [
                {
                    # The control API's own JSON; "event" as in the envelope it delivered.
                    "event": d.event_type,
                    "url": d.url,
                    "webhook_id": d.webhook_id,
                    "attempt": d.attempt,
                    "status_code": d.status_code,
                    "error": d.error,
                }
                for d in self.webhooks.wait_for(0, 0)
            ]
            return self._json(200, {"events": self.webhooks.events, "deliveries": deliveries})
        return error_reply(
            self.rng, 404, f"No control route for {method} /_fake/{'/'.join(parts)}."
        )

    def _move(self, session_id: str, action: str, data: dict[str, Any]) -> FakeResponse:
        if action == "complete":
            session = self.account.complete(
                session_id,
                str(data.get("status", self.account.get(session_id).outcome)),
                declined_step=data.get("declined_step"),
            )
        elif action == "advance":
            session = self.account.advance(session_id)
        elif action == "expire":
            session = self.account.expire(session_id)
        else:
            return error_reply(self.rng, 404, f"Unknown action {action}.")
        return self._json(200, session.payload())

    def _json(self, status: int, data: Any) -> FakeResponse:
        return json_reply(self.rng, status, data)
