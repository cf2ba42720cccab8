"""`SessionManager`: the API that webhook handlers and agent engines call.

One manager serves one workspace (isolation is structural) and is cheap to create per
request. Every operation is exactly one storage call, and none can lose a concurrent
update:

- state helpers (`add_intent_seen`, `add_template_sent`, `update_captured_data`,
  `update_data`) are applied by the backend to the current state, atomically, so they never
  conflict and never overwrite each other;
- writes that replace something you read (`update_state`, `update_session_with_version`,
  `close_session`, `handoff_session`, `commit`) name the version they read and raise
  `VersionConflictError` if another writer got there first;
- `retry_on_conflict` packages the read-decide-write loop for code that needs it.

    manager = SessionManager(InMemoryStorage(), workspace_id="acme")
    session, _ = await manager.get_or_create_session(
        agent_id="sales", conversation_id="whatsapp:+34600111222", contact_id="+34600111222"
    )
    await manager.add_turn(session.id, role="user", content="Hola, ¿tenéis la talla M?")
    await manager.add_intent_seen(session.id, "product_question")
"""

from __future__ import annotations

import asyncio
import inspect
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime

from attrs import field, frozen
from attrs.converters import optional

from .config import AgentConfig
from .errors import (
    AgentNotFoundError,
    InvalidTransitionError,
    SessionNotFoundError,
    VersionConflictError,
)
from .models import (
    JSON,
    NewTurn,
    Role,
    Session,
    SessionState,
    SessionStatus,
    ToolCall,
    Turn,
    check_portable,
)
from .registry import AgentRegistry, get_default_registry
from .storage.base import (
    AppendIntent,
    AppendTemplate,
    Commit,
    CommitResult,
    MergeCapturedData,
    MergeData,
    NewSession,
    StateOp,
    StorageBackend,
)

__all__ = ["SessionChange", "SessionManager"]

Decide = Callable[[Session], "SessionChange | Awaitable[SessionChange | None] | None"]


def _new_turns(turns: Iterable[NewTurn]) -> tuple[NewTurn, ...]:
    return tuple(turns)


def _state_ops(ops: Iterable[StateOp]) -> tuple[StateOp, ...]:
    return tuple(ops)


@frozen
class SessionChange:
    """What one atomic commit changes; fields left as None stay as they are.

    `state` replaces the state document; `state_ops` (`AppendIntent`, `MergeCapturedData`,
    ... from `frontdesk.storage`) then apply to it, as the state helpers do; `turns` are
    appended and numbered by storage. Putting a message's turn, intent, captured data and
    mode change in one change makes it one storage call instead of four:

        SessionChange(
            current_mode="collecting",
            state_ops=[AppendIntent("provides_data"), MergeCapturedData({"city": "Sevilla"})],
            turns=[NewTurn(role="user", content="Sevilla")],
        )
    """

    current_mode: str | None = None
    status: SessionStatus | None = field(default=None, converter=optional(SessionStatus))
    last_activity_at: datetime | None = None
    state: SessionState | None = None
    state_ops: tuple[StateOp, ...] = field(default=(), converter=_state_ops)
    turns: tuple[NewTurn, ...] = field(default=(), converter=_new_turns)


def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


class SessionManager:
    """Sessions of one workspace, over any `StorageBackend`.

    `registry` supplies the agents (which exist, which modes they may move between); by
    default it is the process-wide registry, looked up at each call.
    """

    def __init__(
        self,
        storage: StorageBackend,
        *,
        workspace_id: str,
        registry: AgentRegistry | None = None,
    ) -> None:
        _require_text("workspace_id", workspace_id)
        self.storage = storage
        self.workspace_id = workspace_id
        self._registry = registry

    def __repr__(self) -> str:
        return f"<SessionManager workspace_id={self.workspace_id!r} storage={self.storage!r}>"

    @property
    def registry(self) -> AgentRegistry:
        """The registry this manager checks agents and modes against."""
        return self._registry if self._registry is not None else get_default_registry()

    # -- creating and finding --------------------------------------------------------------

    async def create_session(
        self,
        *,
        agent_id: str,
        conversation_id: str,
        contact_id: str,
        initial_mode: str | None = None,
        initial_state: SessionState | None = None,
    ) -> Session:
        """Start a session at version 1, in the agent's initial mode unless one is given.

        Raises `SessionAlreadyActiveError` (with `.existing_session_id`) when the
        conversation already has an active session with this agent.
        """
        new = self._new_session(agent_id, conversation_id, contact_id, initial_mode, initial_state)
        session, _ = await self.storage.create_session(new)
        return session

    async def get_or_create_session(
        self,
        *,
        agent_id: str,
        conversation_id: str,
        contact_id: str,
        initial_mode: str | None = None,
        initial_state: SessionState | None = None,
    ) -> tuple[Session, bool]:
        """The conversation's active session with this agent, created if there is none.

        Returns the session and whether this call created it. Workers racing on the first
        message of a conversation all get the same session.
        """
        new = self._new_session(agent_id, conversation_id, contact_id, initial_mode, initial_state)
        return await self.storage.create_session(new, return_existing=True)

    async def get_session(self, session_id: str) -> Session:
        """The session; `SessionNotFoundError` if it is not in this workspace."""
        session = await self.storage.get_session(self.workspace_id, session_id)
        if session is None:
            raise SessionNotFoundError(session_id)
        return session

    async def get_session_by_conversation(
        self, conversation_id: str, agent_id: str
    ) -> Session | None:
        """The active session of a conversation with an agent, or None."""
        return await self.storage.find_active_session(self.workspace_id, conversation_id, agent_id)

    # -- versioned writes ------------------------------------------------------------------

    async def update_session_with_version(
        self,
        session_id: str,
        expected_version: int,
        *,
        current_mode: str | None = None,
        status: SessionStatus | str | None = None,
        last_activity_at: datetime | None = None,
    ) -> Session:
        """Change session fields if the session is still at `expected_version`.

        A mode change must be allowed by the agent's state machine
        (`InvalidTransitionError` otherwise).
        """
        change = SessionChange(
            current_mode=current_mode,
            status=status,
            last_activity_at=last_activity_at,
        )
        result = await self.commit(session_id, change, expected_version=expected_version)
        return result.session

    async def close_session(self, session_id: str, expected_version: int) -> Session:
        """Close the session; it takes no more writes."""
        return await self.update_session_with_version(
            session_id, expected_version, status=SessionStatus.CLOSED
        )

    async def handoff_session(self, session_id: str, expected_version: int) -> Session:
        """Hand the session to a human; the agent takes no more writes on it."""
        return await self.update_session_with_version(
            session_id, expected_version, status=SessionStatus.HANDED_OFF
        )

    async def update_state(
        self, session_id: str, expected_version: int, state: SessionState
    ) -> Session:
        """Replace the whole state document if the session is still at `expected_version`."""
        change = SessionChange(state=state)
        return (await self.commit(session_id, change, expected_version=expected_version)).session

    async def commit(
        self,
        session_id: str,
        change: SessionChange,
        *,
        expected_version: int | None,
    ) -> CommitResult:
        """Apply `change` (fields, state and new turns) in one atomic write.

        With `expected_version`, the write applies only if the session is still at that
        version; `expected_version=None` is allowed only for changes that do not depend
        on what was read (new turns, a status change).
        """
        if change.state is not None:
            if expected_version is None:
                raise ValueError(
                    "replacing the state needs the expected_version it was computed from; "
                    "use the state helpers (add_intent_seen, ...) for unconditional changes"
                )
            check_portable(change.state.to_json(), "state")
        commit = Commit(
            expected_version=expected_version,
            current_mode=change.current_mode,
            mode_allowed_from=self._entry_modes(change.current_mode),
            status=change.status,
            last_activity_at=change.last_activity_at,
            state=change.state,
            state_ops=change.state_ops,
            turns=change.turns,
        )
        return await self._commit(session_id, commit)

    async def retry_on_conflict(
        self,
        session_id: str,
        decide: Decide,
        *,
        attempts: int = 5,
        backoff: float = 0.01,
        max_backoff: float = 0.25,
    ) -> CommitResult | None:
        """Read the session, let `decide` compute a change, commit it at the version read.

        On a `VersionConflictError` it waits a small random time (full jitter,
        exponential: `backoff`, doubling up to `max_backoff`) and runs everything again
        with a fresh read, up to `attempts` times; then the last conflict is raised.
        Other errors propagate at once. `decide` (sync or async) returns a
        `SessionChange`, or None when there is nothing to write (then this returns None).

        `decide` may run several times: keep side effects such as model calls or sending
        messages out of it. Call the model first, then record its outcome here.

            def take_order(session):
                if session.current_mode != "order_summary":
                    return None
                return SessionChange(current_mode="purchase_confirmed")

            await manager.retry_on_conflict(session.id, take_order)
        """
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        for attempt in range(1, attempts + 1):
            session = await self.get_session(session_id)
            outcome = decide(session)
            change = await outcome if inspect.isawaitable(outcome) else outcome
            if change is None:
                return None
            if not isinstance(change, SessionChange):
                raise TypeError(
                    f"decide() must return a SessionChange or None, got {type(change).__name__}"
                )
            try:
                return await self.commit(session_id, change, expected_version=session.version)
            except VersionConflictError:
                if attempt == attempts:
                    raise
            ceiling = min(max_backoff, backoff * 2 ** (attempt - 1))
            await asyncio.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not secrets
        raise AssertionError("unreachable")  # pragma: no cover

    # -- state helpers (atomic, never conflict) --------------------------------------------

    async def get_state(self, session_id: str) -> SessionState:
        """The session's state document."""
        return (await self.get_session(session_id)).state

    async def add_intent_seen(self, session_id: str, intent: str) -> Session:
        """Record an intent, numbered after the ones already seen."""
        return await self._apply(session_id, AppendIntent(intent))

    async def add_template_sent(self, session_id: str, template_name: str) -> Session:
        """Record that a message template was sent."""
        return await self._apply(session_id, AppendTemplate(template_name))

    async def update_captured_data(self, session_id: str, data: Mapping[str, str]) -> Session:
        """Merge these keys into the captured data (name, address, ...), keeping the others."""
        return await self._apply(session_id, MergeCapturedData(data))

    async def update_data(self, session_id: str, data: Mapping[str, JSON]) -> Session:
        """Merge these top-level keys into the agent-specific `state.data`."""
        return await self._apply(session_id, MergeData(data))

    # -- turns -----------------------------------------------------------------------------

    async def add_turn(
        self,
        session_id: str,
        *,
        role: Role | str,
        content: str,
        turn_number: int | None = None,
        intent_detected: str | None = None,
        confidence: float | None = None,
        tools_called: Iterable[ToolCall] = (),
        tokens_used: int = 0,
    ) -> Turn:
        """Record a turn; storage numbers it after the last one, atomically.

        `turn_number`, if given, must be the next number (`TurnNumberConflictError`
        otherwise, and nothing is written).
        """
        new_turn = NewTurn(
            role=role,
            content=content,
            turn_number=turn_number,
            intent_detected=intent_detected,
            confidence=confidence,
            tools_called=tools_called,
            tokens_used=tokens_used,
        )
        result = await self._commit(session_id, Commit(turns=(new_turn,)))
        return result.turns[0]

    async def get_turns(self, session_id: str, *, limit: int | None = None) -> Sequence[Turn]:
        """The session's turns in order; with `limit`, only the last `limit`."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return await self.storage.list_turns(self.workspace_id, session_id, limit=limit)

    async def get_total_tokens_used(self, session_id: str) -> int:
        """The tokens used by all the session's turns (summed by the backend)."""
        return (await self.storage.turn_stats(self.workspace_id, session_id)).tokens_used

    async def get_turn_count(self, session_id: str) -> int:
        """How many turns the session has."""
        return (await self.storage.turn_stats(self.workspace_id, session_id)).count

    # -- internals -------------------------------------------------------------------------

    def _new_session(
        self,
        agent_id: str,
        conversation_id: str,
        contact_id: str,
        initial_mode: str | None,
        initial_state: SessionState | None,
    ) -> NewSession:
        _require_text("conversation_id", conversation_id)
        _require_text("contact_id", contact_id)
        agent = self.registry.get(agent_id)
        if initial_state is not None:
            check_portable(initial_state.to_json(), "initial_state")
        mode = initial_mode if initial_mode is not None else agent.states.initial
        if mode not in agent.states.modes:
            raise InvalidTransitionError(
                None,
                agent_id=agent_id,
                current_mode=None,
                requested_mode=mode,
                allowed=agent.states.modes,
            )
        return NewSession(
            id=str(uuid.uuid4()),
            workspace_id=self.workspace_id,
            agent_id=agent_id,
            conversation_id=conversation_id,
            contact_id=contact_id,
            current_mode=mode,
            state=initial_state if initial_state is not None else SessionState(),
        )

    def _entry_modes(self, mode: str | None) -> Mapping[str, frozenset[str]] | None:
        """For each agent that has `mode`, the modes from which it may be entered.

        The manager does not know the session's agent without a read, so it hands storage
        the rule for every agent, and storage checks the session's own within the commit.
        """
        if mode is None:
            return None
        # Agents without the mode are left out: storage refuses a session whose agent is
        # missing, exactly as it refuses one whose mode is not in its set.
        rules = {agent.id: _entered_from(agent, mode) for agent in self.registry.list()}
        return {agent_id: modes for agent_id, modes in rules.items() if modes}

    async def _apply(self, session_id: str, op: StateOp) -> Session:
        return (await self._commit(session_id, Commit(state_ops=(op,)))).session

    async def _commit(self, session_id: str, commit: Commit) -> CommitResult:
        try:
            return await self.storage.commit(self.workspace_id, session_id, commit)
        except InvalidTransitionError as exc:
            raise self._explain(exc) from None

    def _explain(self, exc: InvalidTransitionError) -> InvalidTransitionError:
        """The storage's refusal, with the moves the agent's state machine does allow."""
        try:
            agent: AgentConfig | None = self.registry.get(exc.agent_id)
        except AgentNotFoundError:
            agent = None
        allowed = agent.states.allowed_from(exc.current_mode or "") if agent else ()
        return InvalidTransitionError(
            exc.session_id,
            agent_id=exc.agent_id,
            current_mode=exc.current_mode,
            requested_mode=exc.requested_mode,
            allowed=allowed,
        )


def _entered_from(agent: AgentConfig, mode: str) -> frozenset[str]:
    states = agent.states
    if mode not in states.modes:
        return frozenset()
    return frozenset({mode, *(m for m in states.modes if mode in states.transitions.get(m, ()))})
