"""`InstrumentedStorage`: wrap any `StorageBackend` to count, time, slow down or break it.

For tests, benchmarks and demos, of frontdesk and of third parties (it needs no pytest):

    storage = InstrumentedStorage(InMemoryStorage(), delay=0.02)   # 20 ms per call
    manager = SessionManager(storage, workspace_id="acme")
    storage.fail_next("complete", mode="lose_answer")   # applies, then the answer is lost
    ...
    assert storage.calls["receive"] == 1 and storage.total == 2

Faults are honest about what happened, as a real backend must be:
- `"before_apply"`: the call never reaches the wrapped backend; it raises
  `StorageUnavailableError(may_have_applied=False)`, as a refused connection does.
- `"lose_answer"`: the wrapped backend applies the call, then the answer is dropped; it
  raises `StorageUnavailableError(may_have_applied=True)`, as a timeout after sending does.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from ..errors import StorageUnavailableError, ValidationError
from ..lifecycle import ErasureReport, SessionMigration, SessionQuery, SessionSummary
from ..models import Session, SessionStatus, Turn, TurnStats
from ..pipeline import Completion, Receipt, Run
from ..storage.base import Commit, CommitResult, Delivery, NewSession, RunPolicy, StorageBackend
from ..validation import check_int, check_seconds

__all__ = ["PRIMITIVES", "FaultMode", "InstrumentedStorage"]

FaultMode = Literal["before_apply", "lose_answer"]
T = TypeVar("T")

_MODES = ("before_apply", "lose_answer")

PRIMITIVES = (
    "create_session",
    "get_session",
    "find_active_session",
    "commit",
    "list_turns",
    "turn_stats",
    "list_sessions",
    "delete_session",
    "purge_sessions",
    "erase_contact",
    "migrate_session",
    "receive",
    "complete",
    "extend_run",
    "resume_abandoned",
)
"""The storage primitives the wrapper counts, times and can make fail, by name."""

_NO_FAULT = "no fault was set"


def _check_delay(value: object, outcome: str) -> float:
    return check_seconds("delay", value, positive=False, outcome=outcome)


class InstrumentedStorage:
    """A `StorageBackend` that forwards to `inner`, counting and timing every call.

    - `calls`: how many times each primitive was called (by name); `total`: all of them.
    - `durations`: seconds each call took, by name (including `delay`).
    - `delay`: seconds slept before each call (simulated network latency); settable.
    A bad argument (`inner` that is no backend, a negative `delay`) raises `ValidationError`.
    - `fail_next(operation, mode=...)`: inject a fault into the next matching call.
    Methods the wrapper does not know (a backend's extras) are forwarded uncounted.
    """

    def __init__(self, inner: StorageBackend, *, delay: float = 0.0) -> None:
        if not isinstance(inner, StorageBackend):
            raise ValidationError(
                "inner",
                "must be a storage backend to wrap (InMemoryStorage(), await "
                f"open_storage(...)), got {type(inner).__name__}",
                outcome="nothing was wrapped",
            )
        self.inner = inner
        self.capabilities: frozenset[str] = inner.capabilities
        self._delay = _check_delay(delay, "nothing was wrapped")
        self.calls: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = {}
        self.faults_injected = 0
        self._faults: list[tuple[str | None, FaultMode]] = []

    def __repr__(self) -> str:
        return f"<InstrumentedStorage {self.inner!r} calls={self.total}>"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def delay(self) -> float:
        """Seconds slept before each call; a number >= 0 (`ValidationError` otherwise)."""
        return self._delay

    @delay.setter
    def delay(self, value: float) -> None:
        self._delay = _check_delay(value, "the delay was not changed")

    @property
    def total(self) -> int:
        """Calls of every primitive since the last `reset()`."""
        return sum(self.calls.values())

    def reset(self) -> None:
        """Forget the counts and timings (pending faults stay)."""
        self.calls.clear()
        self.durations.clear()

    def fail_next(
        self, operation: str | None = None, *, mode: FaultMode = "lose_answer", times: int = 1
    ) -> None:
        """Make the next `times` calls of `operation` (any primitive when None) fail.

        `operation` is one of `PRIMITIVES` (a misspelt name would never fail: it is
        refused); `mode` is "before_apply" (nothing reaches storage) or "lose_answer"
        (storage applies the call, then the answer is lost). A bad argument raises
        `ValidationError` and sets no fault.
        """
        if operation is not None and operation not in PRIMITIVES:
            raise ValidationError(
                "operation",
                f"must be a storage primitive ({', '.join(PRIMITIVES)}) or None for any, "
                f"got {operation!r}",
                outcome=_NO_FAULT,
            )
        if mode not in _MODES:
            raise ValidationError(
                "mode", f"must be one of {', '.join(_MODES)}, got {mode!r}", outcome=_NO_FAULT
            )
        check_int("times", times, minimum=1, outcome=_NO_FAULT)
        self._faults.extend([(operation, mode)] * times)

    def clear_faults(self) -> None:
        """Drop the faults not yet injected."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many injected faults are still waiting for their call."""
        return len(self._faults)

    def _take_fault(self, name: str) -> FaultMode | None:
        for index, (operation, mode) in enumerate(self._faults):
            if operation is None or operation == name:
                del self._faults[index]
                return mode
        return None

    async def _call(self, name: str, call: Callable[[], Awaitable[T]]) -> T:
        self.calls[name] += 1
        start = time.perf_counter()
        try:
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            fault = self._take_fault(name)
            if fault == "before_apply":
                self.faults_injected += 1
                raise StorageUnavailableError(
                    name, "injected fault: failed before reaching storage", may_have_applied=False
                )
            result = await call()
            if fault == "lose_answer":
                self.faults_injected += 1
                raise StorageUnavailableError(
                    name, "injected fault: the answer was lost", may_have_applied=True
                )
            return result
        finally:
            self.durations.setdefault(name, []).append(time.perf_counter() - start)

    # -- the primitives --------------------------------------------------------------------

    async def create_session(
        self, new: NewSession, *, return_existing: bool = False
    ) -> tuple[Session, bool]:
        return await self._call(
            "create_session",
            lambda: self.inner.create_session(new, return_existing=return_existing),
        )

    async def get_session(self, workspace_id: str, session_id: str) -> Session | None:
        return await self._call(
            "get_session", lambda: self.inner.get_session(workspace_id, session_id)
        )

    async def find_active_session(
        self, workspace_id: str, conversation_id: str, agent_id: str
    ) -> Session | None:
        return await self._call(
            "find_active_session",
            lambda: self.inner.find_active_session(workspace_id, conversation_id, agent_id),
        )

    async def commit(self, workspace_id: str, session_id: str, commit: Commit) -> CommitResult:
        return await self._call(
            "commit", lambda: self.inner.commit(workspace_id, session_id, commit)
        )

    async def list_turns(
        self, workspace_id: str, session_id: str, *, limit: int | None = None
    ) -> Sequence[Turn]:
        return await self._call(
            "list_turns", lambda: self.inner.list_turns(workspace_id, session_id, limit=limit)
        )

    async def turn_stats(self, workspace_id: str, session_id: str) -> TurnStats:
        return await self._call(
            "turn_stats", lambda: self.inner.turn_stats(workspace_id, session_id)
        )

    async def list_sessions(
        self, workspace_id: str, query: SessionQuery
    ) -> Sequence[SessionSummary]:
        return await self._call(
            "list_sessions", lambda: self.inner.list_sessions(workspace_id, query)
        )

    async def delete_session(self, workspace_id: str, session_id: str) -> bool:
        return await self._call(
            "delete_session", lambda: self.inner.delete_session(workspace_id, session_id)
        )

    async def purge_sessions(
        self,
        workspace_id: str,
        *,
        inactive_for: timedelta,
        status: SessionStatus | None,
        limit: int,
    ) -> int:
        return await self._call(
            "purge_sessions",
            lambda: self.inner.purge_sessions(
                workspace_id, inactive_for=inactive_for, status=status, limit=limit
            ),
        )

    async def erase_contact(self, workspace_id: str, contact_id: str) -> ErasureReport:
        return await self._call(
            "erase_contact", lambda: self.inner.erase_contact(workspace_id, contact_id)
        )

    async def migrate_session(
        self, workspace_id: str, session_id: str, migration: SessionMigration
    ) -> Session:
        return await self._call(
            "migrate_session",
            lambda: self.inner.migrate_session(workspace_id, session_id, migration),
        )

    async def receive(self, delivery: Delivery) -> Receipt:
        return await self._call("receive", lambda: self.inner.receive(delivery))

    async def complete(
        self,
        workspace_id: str,
        session_id: str,
        token: int,
        commit: Commit,
        policy: RunPolicy,
    ) -> Completion:
        return await self._call(
            "complete",
            lambda: self.inner.complete(workspace_id, session_id, token, commit, policy),
        )

    async def extend_run(
        self, workspace_id: str, session_id: str, token: int, lease_seconds: float
    ) -> datetime:
        return await self._call(
            "extend_run",
            lambda: self.inner.extend_run(workspace_id, session_id, token, lease_seconds),
        )

    async def resume_abandoned(
        self, workspace_id: str, policies: Mapping[str, RunPolicy], limit: int
    ) -> Sequence[Run]:
        return await self._call(
            "resume_abandoned",
            lambda: self.inner.resume_abandoned(workspace_id, policies, limit),
        )

    async def aclose(self) -> None:
        await self.inner.aclose()
