"""`InMemoryStorage`: the embedded default backend, and the one tests swap in.

Everything lives in process memory and is gone when the process ends. Each primitive runs
under one lock without awaiting inside it, so it is atomic for asyncio tasks and for
threads alike. Values are copied in and out: nothing a caller holds aliases stored data.

Each primitive first yields to the event loop, as a call over the network would: other
tasks run in between, so the interleavings that real backends see (and the conflicts
they cause) happen here too, in tests and in the demo.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from ..errors import SessionClosedError, SessionNotFoundError, VersionConflictError
from ..lifecycle import ErasureReport, SessionMigration, SessionQuery, SessionSummary
from ..models import Session, SessionState, SessionStatus, Turn, TurnStats
from ._reference import committed, create_outcome, new_session, refuse_commit
from .base import Capability, Commit, CommitResult, NewSession

__all__ = ["InMemoryStorage"]


@attrs.define
class _Record:
    session: Session  # its `state` is left empty; the document lives in `state`
    state: SessionState  # owned: nothing outside this storage holds its mutable parts
    turns: list[Turn] = attrs.Factory(list)
    tokens_used: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


class InMemoryStorage:
    """Sessions and turns in a dict, behind a lock.

    >>> storage = InMemoryStorage()
    >>> manager = SessionManager(storage, workspace_id="acme")  # doctest: +SKIP

    `clock` replaces the wall clock (for tests that pin timestamps).
    """

    capabilities: frozenset[str] = frozenset({Capability.THREADS})

    def __init__(self, *, clock: Callable[[], datetime] = _now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        self._active: dict[tuple[str, str, str], str] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} sessions={len(self._records)}>"

    async def create_session(
        self, new: NewSession, *, return_existing: bool = False
    ) -> tuple[Session, bool]:
        key = (new.workspace_id, new.conversation_id, new.agent_id)
        await asyncio.sleep(0)
        with self._lock:
            outcome = create_outcome(
                new,
                active_id=self._active.get(key),
                id_taken=new.id in self._records,
                return_existing=return_existing,
            )
            if outcome.existing_id is not None:
                return self._read(self._records[outcome.existing_id]), outcome.created
            session = new_session(new, self._clock())
            record = _Record(attrs.evolve(session, state=SessionState()), _own(new.state))
            answer = self._read(record)  # built before the write: nothing raises after it
            self._records[new.id] = record
            self._active[key] = new.id
            return answer, True

    async def get_session(self, workspace_id: str, session_id: str) -> Session | None:
        await asyncio.sleep(0)
        with self._lock:
            record = self._lookup(workspace_id, session_id)
            return None if record is None else self._read(record)

    async def find_active_session(
        self, workspace_id: str, conversation_id: str, agent_id: str
    ) -> Session | None:
        await asyncio.sleep(0)
        with self._lock:
            session_id = self._active.get((workspace_id, conversation_id, agent_id))
            return None if session_id is None else self._read(self._records[session_id])

    async def commit(self, workspace_id: str, session_id: str, commit: Commit) -> CommitResult:
        await asyncio.sleep(0)
        with self._lock:
            record = self._find(workspace_id, session_id)
            current = attrs.evolve(record.session, state=record.state)
            refuse_commit(current, len(record.turns), commit)
            session, turns = committed(current, len(record.turns), commit, self._clock())
            state = record.state if session.state is record.state else _own(session.state)
            turns = tuple(_copy_turn(turn) for turn in turns)  # owned, as the state is
            # The answer is built before the first change, so nothing can raise after it:
            # whatever this method raises, nothing changed.
            answer = CommitResult(
                attrs.evolve(session, state=_own(state)), tuple(_copy_turn(t) for t in turns)
            )
            record.session = attrs.evolve(session, state=SessionState())
            record.state = state
            record.turns.extend(turns)
            record.tokens_used += sum(turn.tokens_used for turn in turns)
            if session.status != SessionStatus.ACTIVE:
                self._active.pop((workspace_id, session.conversation_id, session.agent_id), None)
            return answer

    async def list_turns(
        self, workspace_id: str, session_id: str, *, limit: int | None = None
    ) -> Sequence[Turn]:
        await asyncio.sleep(0)
        with self._lock:
            turns = self._find(workspace_id, session_id).turns
            chosen = turns if limit is None else turns[max(len(turns) - limit, 0) :]
            return [_copy_turn(turn) for turn in chosen]

    async def turn_stats(self, workspace_id: str, session_id: str) -> TurnStats:
        await asyncio.sleep(0)
        with self._lock:
            record = self._find(workspace_id, session_id)
            return TurnStats(count=len(record.turns), tokens_used=record.tokens_used)

    # -- lifecycle: listing, removal, migration -------------------------------------------

    async def list_sessions(
        self, workspace_id: str, query: SessionQuery
    ) -> Sequence[SessionSummary]:
        await asyncio.sleep(0)
        with self._lock:
            found = [
                record
                for record in self._records.values()
                if record.session.workspace_id == workspace_id and query.matches(record.session)
            ]
            found.sort(key=lambda r: (r.session.last_activity_at, r.session.id), reverse=True)
            return [
                SessionSummary.of(self._read(r), TurnStats(len(r.turns), r.tokens_used))
                for r in found[: query.limit]
            ]

    async def delete_session(self, workspace_id: str, session_id: str) -> bool:
        await asyncio.sleep(0)
        with self._lock:
            record = self._lookup(workspace_id, session_id)
            if record is None:
                return False
            self._remove(record)
            return True

    async def purge_sessions(
        self,
        workspace_id: str,
        *,
        inactive_for: timedelta,
        status: SessionStatus | None,
        limit: int,
    ) -> int:
        await asyncio.sleep(0)
        with self._lock:
            cutoff = self._clock() - inactive_for
            old = [
                record
                for record in self._records.values()
                if record.session.workspace_id == workspace_id
                and record.session.last_activity_at < cutoff
                and (status is None or record.session.status == status)
            ]
            old.sort(key=lambda r: (r.session.last_activity_at, r.session.id))
            for record in old[:limit]:
                self._remove(record)
            return min(len(old), limit)

    async def erase_contact(self, workspace_id: str, contact_id: str) -> ErasureReport:
        await asyncio.sleep(0)
        with self._lock:
            found = [
                record
                for record in self._records.values()
                if record.session.workspace_id == workspace_id
                and record.session.contact_id == contact_id
            ]
            for record in found:
                self._remove(record)
            return ErasureReport(
                sessions=len(found), turns=sum(len(record.turns) for record in found)
            )

    async def migrate_session(
        self, workspace_id: str, session_id: str, migration: SessionMigration
    ) -> Session:
        await asyncio.sleep(0)
        with self._lock:
            record = self._find(workspace_id, session_id)
            current = record.session
            if current.status != SessionStatus.ACTIVE:
                raise SessionClosedError(session_id, current.status)
            if migration.expected_version != current.version:
                raise VersionConflictError(session_id, migration.expected_version, current.version)
            record.session = attrs.evolve(
                current,
                version=current.version + 1,
                current_mode=migration.current_mode,
                agent_version=migration.agent_version,
                updated_at=max(self._clock(), current.updated_at),
            )
            record.state = _own(migration.state)
            return self._read(record)

    def _remove(self, record: _Record) -> None:
        session = record.session
        del self._records[session.id]
        key = (session.workspace_id, session.conversation_id, session.agent_id)
        if self._active.get(key) == session.id:
            del self._active[key]

    async def aclose(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""

    def _lookup(self, workspace_id: str, session_id: str) -> _Record | None:
        # Another workspace's session is indistinguishable from a missing one.
        record = self._records.get(session_id)
        if record is None or record.session.workspace_id != workspace_id:
            return None
        return record

    def _find(self, workspace_id: str, session_id: str) -> _Record:
        record = self._lookup(workspace_id, session_id)
        if record is None:
            raise SessionNotFoundError(session_id)
        return record

    def _read(self, record: _Record) -> Session:
        return attrs.evolve(record.session, state=_own(record.state))


def _own(state: SessionState) -> SessionState:
    """A copy sharing nothing mutable with `state` (its tuples and strings are immutable)."""
    return attrs.evolve(
        state, captured_data=dict(state.captured_data), data=_copy_json(dict(state.data))
    )


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): several times copy.deepcopy's speed."""
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy_json(item) for item in value]
    return value


def _copy_turn(turn: Turn) -> Turn:
    # Only tool calls hold mutable JSON; everything else in a Turn is immutable already.
    if not turn.tools_called:
        return turn
    return attrs.evolve(turn, tools_called=copy.deepcopy(turn.tools_called))
