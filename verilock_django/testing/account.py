"""The fake Verilock account: its sessions and their lifecycle.

A session moves ``created`` → ``processing`` → its ``outcome`` (one of the finished
statuses), or straight to a final status with :meth:`FakeAccount.complete`. The statuses,
their order and which are final come from :mod:`verilock_django.statuses`. Reaching a final
status calls ``on_finished(session)`` (the webhook sender), under the account's lock, so
events keep the order of the changes.
"""

from __future__ import annotations

import copy
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final, Literal

from ..statuses import DEFAULT_FINISHED_STATUSES, UNFINISHED_RANK, SessionStatus, StepStatus
from . import factories
from .factories import DECISIONS, STEPS, Shape

__all__ = ["FINISHED", "FakeAccount", "FakeSession", "ShapeChoice"]

ShapeChoice = Literal["a", "b", "mixed"]

#: Statuses after which the fake changes a session no more.
FINISHED: Final = frozenset(DEFAULT_FINISHED_STATUSES)
_CREATED: Final = SessionStatus.CREATED.value
_PROCESSING: Final = SessionStatus.PROCESSING.value
_EXPIRED: Final = SessionStatus.EXPIRED.value
_STEP_DONE: Final = frozenset({StepStatus.APPROVED.value, StepStatus.DECLINED.value})
# How often seeded sessions end in each final status: mostly approved, as in production.
_OUTCOME_WEIGHTS: Final[dict[str, int]] = {
    SessionStatus.APPROVED.value: 7,
    SessionStatus.DECLINED.value: 2,
    SessionStatus.EXPIRED.value: 1,
}
_SEED_PLAN: Final = ("approved", "processing", "declined", "created", "approved", "processing",
                     "expired", "approved", "processing", "declined")  # fmt: skip
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


def utcnow() -> datetime:
    """The default clock: now, in UTC."""
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
        return self.status in FINISHED

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


class FakeAccount:
    """The sessions of one fake account, behind one re-entrant lock (:attr:`lock`).

    ``auto_advance_seconds`` makes every unfinished session move one status forward each
    time that many seconds passed since its last change, applied by :meth:`tick`.
    """

    def __init__(
        self,
        *,
        rng: random.Random,
        clock: Callable[[], datetime] = utcnow,
        default_shape: ShapeChoice = "a",
        auto_advance_seconds: float | None = None,
        on_finished: Callable[[FakeSession], None] | None = None,
    ) -> None:
        self.rng = rng
        self.clock = clock
        self.default_shape: ShapeChoice = default_shape
        self.auto_advance_seconds = auto_advance_seconds
        self.on_finished = on_finished
        #: Whether ``GET /sessions`` honours its ``status`` filter; ``False`` plays a provider
        #: that ignores it (every status listed), which the batch refresh must survive.
        self.status_filter = True
        #: Held by every reader and writer of the sessions (the routes hold it per request).
        self.lock = threading.RLock()
        self._sessions: dict[str, FakeSession] = {}

    def add_session(
        self,
        *,
        status: str = _PROCESSING,
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
        with self.lock:
            now = self.clock()
            session_id = id or factories.new_session_id(self.rng)
            if session_id in self._sessions:
                raise ValueError(f"Session {session_id} already exists in the fake account.")
            step_list = list(steps)
            person = self._applicant_for(len(self._sessions), applicant)
            derived = factories.step_results(
                step_list, status, declined_step=declined_step, nationality=person["nationality"]
            )
            derived.update({step: dict(result) for step, result in (results or {}).items()})
            created = created_at or now
            if completed_at is None and status in DECISIONS:
                completed_at = created + timedelta(minutes=15)
            session = FakeSession(
                id=session_id,
                shape=shape or self._pick_shape(),
                status=status,
                outcome=outcome or (status if status in FINISHED else DECISIONS[0]),
                reference_id=reference_id
                if reference_id is not None
                else f"usr_{self.rng.randrange(10000, 99999)}",
                steps=step_list,
                applicant=person,
                results=derived,
                created_at=created,
                changed_at=now,
                completed_at=completed_at,
                expires_at=expires_at or created + timedelta(hours=1),
                webhook_url=webhook_url,
                extra=dict(extra),
            )
            self._sessions[session_id] = session
            return session

    def seed(self, count: int, *, days: int = 30) -> list[FakeSession]:
        """Add ``count`` sessions in mixed states, created over the last ``days`` days."""
        made = []
        with self.lock:
            now = self.clock()
            for index in range(count):
                status = _SEED_PLAN[index % len(_SEED_PLAN)]
                created = now - timedelta(seconds=self.rng.randrange(600, days * 86400))
                outcome = self.rng.choices(list(_OUTCOME_WEIGHTS), list(_OUTCOME_WEIGHTS.values()))
                made.append(
                    self.add_session(
                        status=status,
                        outcome=status if status in FINISHED else outcome[0],
                        created_at=created,
                        completed_at=created + timedelta(seconds=self.rng.randrange(120, 2400))
                        if status in DECISIONS
                        else None,
                    )
                )
        return made

    def _pick_shape(self) -> Shape:
        if self.default_shape == "mixed":
            return self.rng.choice(("a", "b"))
        return self.default_shape

    def _applicant_for(self, index: int, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        first, last, country = _NAMES[index % len(_NAMES)]
        birth = date(1960, 1, 1) + timedelta(days=self.rng.randrange(0, 40 * 365))
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
        with self.lock:
            return self._sessions[session_id]

    def find(self, session_id: str) -> FakeSession | None:
        """Return a session, or ``None`` if the account has no such id."""
        with self.lock:
            return self._sessions.get(session_id)

    @property
    def sessions(self) -> list[FakeSession]:
        """All sessions, oldest first."""
        with self.lock:
            return sorted(self._sessions.values(), key=lambda s: (s.created_at, s.id))

    def payload(self, session_id: str) -> dict[str, Any]:
        """Return the ``GET /sessions/{id}`` body of a session as the API would serve it."""
        with self.lock:
            return self._sessions[session_id].payload()

    def complete(
        self,
        session_id: str,
        status: str = SessionStatus.APPROVED.value,
        *,
        declined_step: str | None = None,
        results: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> FakeSession:
        """Move a session straight to a final ``status`` (approved/declined/expired)."""
        with self.lock:
            session = self._sessions[session_id]
            self._transition(session, status, declined_step=declined_step, results=results)
            return session

    def expire(self, session_id: str) -> FakeSession:
        """Expire a session, as if the applicant never finished."""
        return self.complete(session_id, _EXPIRED)

    def advance(self, session_id: str) -> FakeSession:
        """Move a session one status forward: created → processing → its ``outcome``."""
        with self.lock:
            session = self._sessions[session_id]
            rank = UNFINISHED_RANK.get(session.status)
            if rank is not None and rank < UNFINISHED_RANK[_PROCESSING]:
                self._transition(session, _PROCESSING)
            elif not session.is_finished:
                self._transition(session, session.outcome)
            return session

    def advance_many(
        self, count: int | None = None, *, ids: Iterable[str] | None = None
    ) -> list[FakeSession]:
        """Advance the given ``ids`` (default: every unfinished session, at most ``count``)."""
        with self.lock:
            if ids is not None:
                targets = [self._sessions[session_id] for session_id in ids]
            else:
                targets = [s for s in self.sessions if not s.is_finished]
            if count is not None:
                targets = targets[:count]
            return [self.advance(s.id) for s in targets]

    def submit(self, session: FakeSession) -> bool:
        """Start processing a ``created`` session; False when it is past processing."""
        with self.lock:
            if session.status == _CREATED:
                self._transition(session, _PROCESSING)
            return session.status == _PROCESSING

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
        if status == _EXPIRED:
            # Steps the applicant already passed stay passed; the rest never happened.
            for step, old in session.results.items():
                if old.get("status") in _STEP_DONE:
                    new_results[step] = old
        new_results.update({step: dict(result) for step, result in (results or {}).items()})
        session.status = status
        session.results = new_results
        session.changed_at = now
        session.completed_at = now if status in DECISIONS else None
        if status in FINISHED:
            session.outcome = status
            if self.on_finished is not None:
                self.on_finished(session)

    def tick(self) -> None:
        """Apply time-based progression (``auto_advance_seconds``) up to the clock's now."""
        if not self.auto_advance_seconds:
            return
        with self.lock:
            now = self.clock()
            step = timedelta(seconds=self.auto_advance_seconds)
            for session in list(self._sessions.values()):
                while not session.is_finished and now - session.changed_at >= step:
                    moved_at = session.changed_at + step
                    self.advance(session.id)
                    # Keep the schedule anchored on when the step was due, not on now.
                    session.changed_at = moved_at
