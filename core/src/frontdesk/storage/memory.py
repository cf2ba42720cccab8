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
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs

from ..errors import (
    ConflictError,
    ConversationBusyError,
    RunSupersededError,
    SessionClosedError,
    SessionNotFoundError,
    VersionConflictError,
)
from ..lifecycle import ErasureReport, SessionMigration, SessionQuery, SessionSummary
from ..models import NewTurn, Role, Session, SessionState, SessionStatus, Turn, TurnStats
from ..pipeline import Completion, Receipt, Run
from ._reference import (
    committed,
    create_outcome,
    leaves_active,
    new_session,
    reactivates,
    refuse_commit,
)
from .base import Capability, Commit, CommitResult, Delivery, NewSession, RunPolicy
from .runs import (
    ReceivePlan,
    RunState,
    can_resume,
    end_run,
    is_current,
    pick_history,
    plan_receive,
    purgeable,
    start_run,
)

__all__ = ["InMemoryStorage"]


@attrs.define
class _Record:
    session: Session  # its `state` is left empty; the document lives in `state`
    state: SessionState  # owned: nothing outside this storage holds its mutable parts
    turns: list[Turn] = attrs.Factory(list)
    tokens_used: int = 0
    run: RunState = attrs.Factory(RunState)
    pending: list[int] = attrs.Factory(list)  # user turns waiting for an answer, in order
    messages: dict[str, int] = attrs.Factory(dict)  # message id -> turn number
    results: dict[str, object] = attrs.Factory(dict)  # idempotency key -> original result


R = TypeVar("R")


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
        # Every session a conversation has had with an agent: message ids are unique per
        # conversation, across its sessions.
        self._conversations: dict[tuple[str, str, str], list[str]] = {}

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
            record = self._new_record(new, self._clock())
            answer = self._read(record)  # built before the write: nothing raises after it
            self._store(record)
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
            replayed = self._replay(record, commit.idempotency_key, CommitResult)
            if replayed is not None:
                return replayed
            result = self._apply(record, commit, self._clock())
            return self._remember(record, commit.idempotency_key, result)

    # -- the message pipeline --------------------------------------------------------------

    async def receive(self, delivery: Delivery) -> Receipt:
        new = delivery.new_session
        conversation = (new.workspace_id, new.conversation_id, new.agent_id)
        await asyncio.sleep(0)
        with self._lock:
            found = self._find_message(conversation, delivery.message_id)
            if found is not None:
                holder, number = found
                replayed = self._replay(holder, delivery.idempotency_key, Receipt)
                if replayed is not None:
                    return replayed
                turn = _copy_turn(holder.turns[number - 1])
                return Receipt(self._read(holder), turn, duplicate=True, run=None)
            now = self._clock()
            active_id = self._active.get(conversation)
            record = self._records[active_id] if active_id is not None else None
            user_turn = NewTurn(role=Role.USER, content=delivery.content)
            commit = Commit(turns=(user_turn,), last_activity_at=delivery.received_at)
            handed_off = self._handed_off(conversation) if record is None else None
            if handed_off is not None:
                # The conversation is with a person: the message is theirs to answer. It
                # is recorded (and deduplicated) but waits for no run.
                result = self._apply(handed_off, commit, now, held=True)
                turn = attrs.evolve(result.turns[0], message_id=delivery.message_id)
                handed_off.turns[-1] = turn
                handed_off.messages[delivery.message_id] = turn.turn_number
                receipt = Receipt(result.session, turn, duplicate=False, run=None)
                return self._remember(handed_off, delivery.idempotency_key, receipt)
            policy = delivery.policy
            run_state = record.run if record is not None else RunState()
            plan = plan_receive(run_state, policy.double_texting, now)
            if plan is ReceivePlan.BUSY:
                assert record is not None  # noqa: S101 - only a held run makes it busy
                raise ConversationBusyError(
                    record.session.id, conversation_id=new.conversation_id, agent_id=new.agent_id
                )
            if record is None:
                if new.id in self._records:
                    raise ConflictError(
                        f"session id {new.id} is taken; create sessions with fresh ids.",
                        session_id=new.id,
                    )
                record = self._insert(new, now)
            result = self._apply(record, commit, now)
            turn = attrs.evolve(result.turns[0], message_id=delivery.message_id)
            record.turns[-1] = turn
            record.pending.append(turn.turn_number)
            record.messages[delivery.message_id] = turn.turn_number
            run = None
            if plan is ReceivePlan.START:
                record.run = start_run(
                    record.run, policy.double_texting, policy.timeout, record.pending, now
                )
                run = self._run(record, result.session, policy)
            receipt = Receipt(result.session, turn, duplicate=False, run=run)
            return self._remember(record, delivery.idempotency_key, receipt)

    async def complete(
        self,
        workspace_id: str,
        session_id: str,
        token: int,
        commit: Commit,
        policy: RunPolicy,
    ) -> Completion:
        await asyncio.sleep(0)
        with self._lock:
            record = self._find(workspace_id, session_id)
            replayed = self._replay(record, commit.idempotency_key, Completion)
            if replayed is not None:
                return replayed
            if not is_current(record.run, token):
                raise RunSupersededError(session_id, token, record.run.token)
            now = self._clock()
            answered = set(record.run.inputs)  # before the commit, which may end the run
            result = self._apply(record, commit, now)
            record.pending = [number for number in record.pending if number not in answered]
            for number in sorted(answered):
                record.turns[number - 1] = _answered(record.turns[number - 1], commit)
            next_run = None
            if result.session.is_active:
                record.run = end_run(
                    record.run, policy.double_texting, policy.timeout, record.pending, now
                )
                if record.run.held():
                    next_run = self._run(record, result.session, policy)
            else:
                record.run = RunState(record.run.token)
            completion = Completion(result.session, result.turns, next_run)
            return self._remember(record, commit.idempotency_key, completion)

    async def extend_run(
        self, workspace_id: str, session_id: str, token: int, lease_seconds: float
    ) -> datetime:
        await asyncio.sleep(0)
        with self._lock:
            record = self._find(workspace_id, session_id)
            if not is_current(record.run, token):
                raise RunSupersededError(session_id, token, record.run.token)
            expires_at = self._clock() + timedelta(seconds=lease_seconds)
            record.run = attrs.evolve(record.run, expires_at=expires_at)
            return expires_at

    async def resume_abandoned(
        self, workspace_id: str, policies: Mapping[str, RunPolicy], limit: int
    ) -> Sequence[Run]:
        await asyncio.sleep(0)
        with self._lock:
            now = self._clock()
            candidates = [
                record
                for record in self._records.values()
                if record.session.workspace_id == workspace_id
                and record.session.is_active
                and record.session.agent_id in policies
                and can_resume(record.run, record.pending, now)
            ]
            candidates.sort(key=lambda record: (record.run.expires_at, record.session.id))
            runs = []
            for record in candidates[: max(limit, 0)]:
                policy = policies[record.session.agent_id]
                record.run = start_run(
                    record.run, policy.double_texting, policy.timeout, record.pending, now
                )
                runs.append(self._run(record, self._read(record), policy))
            return runs

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
            now = self._clock()
            cutoff = now - inactive_for
            old = [
                record
                for record in self._records.values()
                if record.session.workspace_id == workspace_id
                and record.session.last_activity_at < cutoff
                and (status is None or record.session.status == status)
                and purgeable(record.run, record.pending, now)
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
            session = attrs.evolve(
                current,
                version=current.version + 1,
                current_mode=migration.current_mode,
                agent_version=migration.agent_version,
                updated_at=max(self._clock(), current.updated_at),
            )
            state = _own(migration.state)
            answer = attrs.evolve(session, state=_own(state))  # before the write, as in commit
            record.session = session
            record.state = state
            return answer

    def _remove(self, record: _Record) -> None:
        session = record.session
        del self._records[session.id]
        key = (session.workspace_id, session.conversation_id, session.agent_id)
        if self._active.get(key) == session.id:
            del self._active[key]
        # The message-id index goes with the session: nothing about the conversation stays.
        others = [sid for sid in self._conversations.get(key, ()) if sid != session.id]
        if others:
            self._conversations[key] = others
        else:
            self._conversations.pop(key, None)

    async def aclose(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""

    def _apply(
        self, record: _Record, commit: Commit, now: datetime, *, held: bool = False
    ) -> CommitResult:
        """Check `commit` against the record, then apply it; a refused commit writes nothing.

        `held`: the commit records a message for the person a session was handed off to
        (receive's own write, which a handed-off session takes without a status change).
        """
        current = attrs.evolve(record.session, state=record.state)
        key = (current.workspace_id, current.conversation_id, current.agent_id)
        if not held:
            refuse_commit(current, len(record.turns), commit, active_id=self._active.get(key))
        session, turns = committed(current, len(record.turns), commit, now)
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
        if reactivates(current, commit):
            self._active[key] = session.id
        elif session.status != SessionStatus.ACTIVE and self._active.get(key) == session.id:
            del self._active[key]
        if leaves_active(current, commit):
            record.run = RunState(record.run.token)
            record.pending = []
        return answer

    def _insert(self, new: NewSession, now: datetime) -> _Record:
        record = self._new_record(new, now)
        self._store(record)
        return record

    def _new_record(self, new: NewSession, now: datetime) -> _Record:
        session = new_session(new, now)
        return _Record(attrs.evolve(session, state=SessionState()), _own(new.state))

    def _store(self, record: _Record) -> None:
        session = record.session
        conversation = (session.workspace_id, session.conversation_id, session.agent_id)
        self._records[session.id] = record
        self._active[conversation] = session.id
        self._conversations.setdefault(conversation, []).append(session.id)

    def _handed_off(self, conversation: tuple[str, str, str]) -> _Record | None:
        """The conversation's newest session if it is handed off (then it takes messages)."""
        sessions = self._conversations.get(conversation)
        if not sessions:
            return None
        newest = self._records[sessions[-1]]  # in the order they were created
        return newest if newest.session.status == SessionStatus.HANDED_OFF else None

    def _find_message(
        self, conversation: tuple[str, str, str], message_id: str
    ) -> tuple[_Record, int] | None:
        for session_id in self._conversations.get(conversation, ()):
            record = self._records.get(session_id)
            if record is not None and message_id in record.messages:
                return record, record.messages[message_id]
        return None

    def _run(self, record: _Record, session: Session, policy: RunPolicy) -> Run:
        state = record.run
        assert state.expires_at is not None  # noqa: S101 - only called for a held run
        inputs = tuple(_copy_turn(record.turns[number - 1]) for number in state.inputs)
        history = pick_history(record.turns, set(record.pending), policy.history_turns)
        return Run(
            token=state.token,
            session=session,
            inputs=inputs,
            history=tuple(_copy_turn(turn) for turn in history),
            expires_at=state.expires_at,
        )

    def _replay(self, record: _Record, key: str | None, kind: type[R]) -> R | None:
        """The original result of a write with this idempotency key, if it was applied."""
        if key is None or key not in record.results:
            return None
        original = record.results[key]
        if not isinstance(original, kind):
            raise ConflictError(
                f"idempotency key {key!r} was used for a different operation on session "
                f"{record.session.id}; use a new key for each write.",
                session_id=record.session.id,
            )
        replayed: R = _fresh(original)
        return replayed

    def _remember(self, record: _Record, key: str | None, result: R) -> R:
        if key is not None:
            record.results[key] = _fresh(result)
        return result

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


def _fresh(result: Any) -> Any:
    """A copy of a stored result sharing nothing mutable with it (sessions' state, tools)."""
    if isinstance(result, Session):
        return attrs.evolve(result, state=_own(result.state))
    if isinstance(result, Turn):
        return _copy_turn(result)
    if isinstance(result, tuple):
        return tuple(_fresh(item) for item in result)
    if isinstance(result, CommitResult | Receipt | Completion | Run):
        return attrs.evolve(
            result, **{a.name: _fresh(getattr(result, a.name)) for a in attrs.fields(type(result))}
        )
    return result


def _answered(turn: Turn, commit: Commit) -> Turn:
    """A run's input turn with the intent and confidence its run detected, when given."""
    changes: dict[str, Any] = {}
    if commit.inputs_intent is not None:
        changes["intent_detected"] = commit.inputs_intent
    if commit.inputs_confidence is not None:
        changes["confidence"] = commit.inputs_confidence
    return attrs.evolve(turn, **changes) if changes else turn
