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
- `retry_on_conflict` packages the read-decide-write loop for code that needs it;
- every write carries an idempotency key (the caller's, or one of the manager's own), and a
  write whose outcome is unknown (`StorageUnavailableError.may_have_applied`) is resent
  with the same key a bounded number of times: a lost answer becomes exactly-once;
- the message pipeline (`receive`, `complete`, `extend`, `resume_abandoned`) handles one
  inbound message in two storage calls, whatever the user double-texts.

    manager = SessionManager(InMemoryStorage(), workspace_id="acme")
    session, _ = await manager.get_or_create_session(
        agent_id="sales", conversation_id="whatsapp:+34600111222", contact_id="+34600111222"
    )
    await manager.add_turn(session.id, role="user", content="Hola, ¿tenéis la talla M?")
    await manager.add_intent_seen(session.id, "product_question")
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import random
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs
from attrs import field, frozen

from .config import AgentConfig
from .errors import (
    AgentChangedError,
    AgentNotFoundError,
    InvalidTransitionError,
    SessionNotFoundError,
    StorageUnavailableError,
    ValidationError,
    VersionConflictError,
)
from .lifecycle import (
    MAX_PAGE_SIZE,
    ErasureReport,
    ListPosition,
    SessionMigration,
    SessionPage,
    SessionQuery,
    decode_cursor,
    encode_cursor,
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
)
from .pipeline import Completion, InboundMessage, Receipt, Run, check_idempotency_key
from .registry import AgentRegistry, get_default_registry
from .storage.base import (
    AppendIntent,
    AppendTemplate,
    Commit,
    CommitResult,
    Delivery,
    MergeCapturedData,
    MergeData,
    NewSession,
    RunPolicy,
    StateOp,
    StorageBackend,
    apply_state_ops,
)
from .validation import (
    LISTED,
    READ,
    WRITTEN,
    check_choice,
    check_datetime,
    check_fraction,
    check_id,
    check_int,
    check_json,
    check_json_object,
    check_optional_id,
    check_optional_int,
    check_text_map,
)

__all__ = ["MIGRATIONS_KEY", "SessionChange", "SessionManager"]

Decide = Callable[[Session], "SessionChange | Awaitable[SessionChange | None] | None"]
Sleep = Callable[[float], Awaitable[object]]
T = TypeVar("T")


class _NotGiven(enum.Enum):
    """The type of `_NOT_GIVEN`: an argument left out."""

    NOT_GIVEN = enum.auto()


_NOT_GIVEN = _NotGiven.NOT_GIVEN


def _keyword_version(
    method: str, positional: tuple[int, ...], expected_version: int | _NotGiven
) -> int:
    """`expected_version` given by keyword, or (deprecated) as the one extra positional.

    A misuse (too many positionals, the version twice or not at all) is a
    `ValidationError` naming `expected_version`: nothing is written.
    """
    if len(positional) > 1:
        raise ValidationError(
            "expected_version",
            f"{method}() takes the session id and keyword arguments, but got "
            f"{len(positional) + 1} positional arguments; write {method}(session_id, "
            "expected_version=session.version, ...)",
        )
    if positional:
        if expected_version is not _NOT_GIVEN:
            raise ValidationError(
                "expected_version",
                f"{method}() got it both by position and by keyword; pass it by keyword only",
            )
        warnings.warn(
            f"passing expected_version to {method}() by position is deprecated and stops "
            f"working in the next release: write {method}(session_id, "
            "expected_version=session.version, ...)",
            DeprecationWarning,
            stacklevel=3,
        )
        return positional[0]
    if expected_version is _NOT_GIVEN:
        raise ValidationError(
            "expected_version",
            f"{method}() needs expected_version=...: the version of the session the change "
            "was decided on (session.version)",
        )
    return expected_version


DEFAULT_WRITE_ATTEMPTS = 3
"""How many times the manager sends a write whose outcome stays unknown (same key each time)."""

MAX_WRITE_ATTEMPTS = 10

# Session ids made from a caller's idempotency key: the same key makes the same session.
_KEYED_SESSIONS = uuid.UUID("5f1d3c2a-8b7e-4c1f-9a6d-2e0b7c4d9f18")

_STATE_OPS = (AppendIntent, AppendTemplate, MergeCapturedData, MergeData)


def _items(name: str, items: object, kind: type | tuple[type, ...], label: str) -> tuple[Any, ...]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise ValidationError(name, f"must be a list of {label}, got {type(items).__name__}")
    result = tuple(items)
    for index, item in enumerate(result):
        if not isinstance(item, kind):
            raise ValidationError(
                f"{name}[{index}]", f"must be a {label}, got {type(item).__name__}"
            )
    return result


def _new_turns(turns: object) -> tuple[NewTurn, ...]:
    return _items("turns", turns, NewTurn, "NewTurn")


def _state_ops(ops: object) -> tuple[StateOp, ...]:
    return _items("state_ops", ops, _STATE_OPS, "state operation (AppendIntent, ...)")


def _optional_state(value: object) -> SessionState | None:
    if value is not None and not isinstance(value, SessionState):
        raise ValidationError("state", f"must be a SessionState, got {type(value).__name__}")
    return value


def _optional_datetime(value: object) -> datetime | None:
    return None if value is None else check_datetime("last_activity_at", value)


def _optional_mode(value: object) -> str | None:
    return check_optional_id("current_mode", value)


def _optional_intent(value: object) -> str | None:
    return check_optional_id("inputs_intent", value)


def _optional_confidence(value: object) -> float | None:
    return check_fraction("inputs_confidence", value)


def _optional_status(value: object, *, outcome: str = WRITTEN) -> SessionStatus | None:
    return None if value is None else check_choice("status", value, SessionStatus, outcome=outcome)


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

    `inputs_intent` and `inputs_confidence` are what the run detected in the user turns it
    answers: `complete` records them on each of those turns (`commit` has no run, and
    refuses them).
    """

    current_mode: str | None = field(default=None, converter=_optional_mode)
    status: SessionStatus | None = field(default=None, converter=_optional_status)
    last_activity_at: datetime | None = field(default=None, converter=_optional_datetime)
    state: SessionState | None = field(default=None, converter=_optional_state)
    state_ops: tuple[StateOp, ...] = field(default=(), converter=_state_ops)
    turns: tuple[NewTurn, ...] = field(default=(), converter=_new_turns)
    inputs_intent: str | None = field(default=None, converter=_optional_intent)
    inputs_confidence: float | None = field(default=None, converter=_optional_confidence)


class SessionManager:
    """Sessions of one workspace, over any `StorageBackend`.

    `registry` supplies the agents (which exist, which modes they may move between); by
    default it is the process-wide registry, looked up at each call. `write_attempts`
    bounds how often a write whose outcome is unknown is sent (with the same idempotency
    key, so it applies at most once); 1 turns the resending off.
    """

    def __init__(
        self,
        storage: StorageBackend,
        *,
        workspace_id: str,
        registry: AgentRegistry | None = None,
        write_attempts: int = DEFAULT_WRITE_ATTEMPTS,
    ) -> None:
        # Checked here, or a wrong argument surfaces later as a raw AttributeError.
        if not isinstance(storage, StorageBackend):
            raise ValidationError(
                "storage",
                f"must be a storage backend (InMemoryStorage(), await open_storage(...)), "
                f"got {type(storage).__name__}",
            )
        if registry is not None and not isinstance(registry, AgentRegistry):
            raise ValidationError(
                "registry",
                f"must be an AgentRegistry or None (the default registry), "
                f"got {type(registry).__name__}",
            )
        self.workspace_id = check_id("workspace_id", workspace_id)
        self.write_attempts = check_int(
            "write_attempts", write_attempts, minimum=1, maximum=MAX_WRITE_ATTEMPTS
        )
        self.storage = storage
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
        idempotency_key: str | None = None,
    ) -> Session:
        """Start a session at version 1, in the agent's initial mode unless one is given.

        Raises `SessionAlreadyActiveError` (with `.existing_session_id`) when the
        conversation already has an active session with this agent. A repeat with the
        same `idempotency_key` returns the session the first call created.
        """
        new = self._new_session(
            agent_id, conversation_id, contact_id, initial_mode, initial_state, idempotency_key
        )
        session, _ = await self._retrying(lambda: self.storage.create_session(new))
        return session

    async def get_or_create_session(
        self,
        *,
        agent_id: str,
        conversation_id: str,
        contact_id: str,
        initial_mode: str | None = None,
        initial_state: SessionState | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[Session, bool]:
        """The conversation's active session with this agent, created if there is none.

        Returns the session and whether this call created it. Workers racing on the first
        message of a conversation all get the same session.

        It does not look at hand-offs: on a conversation handed off to a person it creates
        a new active session, which takes the conversation back. Inbound messages go
        through `receive`, which keeps a handed-off conversation with its person.
        """
        new = self._new_session(
            agent_id, conversation_id, contact_id, initial_mode, initial_state, idempotency_key
        )
        return await self._retrying(lambda: self.storage.create_session(new, return_existing=True))

    async def get_session(self, session_id: str) -> Session:
        """The session; `SessionNotFoundError` if it is not in this workspace."""
        check_id("session_id", session_id, outcome=READ)
        session = await self.storage.get_session(self.workspace_id, session_id)
        if session is None:
            raise SessionNotFoundError(session_id)
        return session

    async def get_session_by_conversation(
        self, conversation_id: str, agent_id: str
    ) -> Session | None:
        """The active session of a conversation with an agent, or None."""
        check_id("conversation_id", conversation_id, outcome=READ)
        check_id("agent_id", agent_id, outcome=READ)
        return await self.storage.find_active_session(self.workspace_id, conversation_id, agent_id)

    # -- versioned writes ------------------------------------------------------------------

    async def update_session_with_version(
        self,
        session_id: str,
        *positional: int,
        expected_version: int | _NotGiven = _NOT_GIVEN,
        current_mode: str | None = None,
        status: SessionStatus | str | None = None,
        last_activity_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Session:
        """Change session fields if the session is still at `expected_version`.

        A mode change must be allowed by the agent's state machine
        (`InvalidTransitionError` otherwise). `status="active"` on a handed-off session
        gives the conversation back to the agent (`SessionAlreadyActiveError` if another
        session of the conversation is active); it is the only change such a session takes,
        besides `status="closed"`.

            await manager.update_session_with_version(
                session.id, expected_version=session.version, current_mode="ordering"
            )

        `expected_version` is keyword-only, as in `update_state` and `commit`; passing it by
        position still works for one release, with a `DeprecationWarning`.
        """
        version = _keyword_version("update_session_with_version", positional, expected_version)
        check_int("expected_version", version, minimum=1)
        change = SessionChange(
            current_mode=current_mode,
            status=status,
            last_activity_at=last_activity_at,
        )
        result = await self.commit(
            session_id, change, expected_version=version, idempotency_key=idempotency_key
        )
        return result.session

    async def close_session(
        self,
        session_id: str,
        *positional: int,
        expected_version: int | _NotGiven = _NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> Session:
        """Close the session; it takes no more writes.

        `expected_version` is keyword-only (by position: deprecated, see
        `update_session_with_version`).
        """
        return await self.update_session_with_version(
            session_id,
            expected_version=_keyword_version("close_session", positional, expected_version),
            status=SessionStatus.CLOSED,
            idempotency_key=idempotency_key,
        )

    async def handoff_session(
        self,
        session_id: str,
        *positional: int,
        expected_version: int | _NotGiven = _NOT_GIVEN,
        idempotency_key: str | None = None,
    ) -> Session:
        """Hand the session to a human: the agent stops answering the conversation.

        The conversation's next messages are recorded on this session, with no run, until
        it is handed back (`update_session_with_version(..., status="active")`) or closed;
        until then it takes no other write. A run in flight can no longer complete.

        `expected_version` is keyword-only (by position: deprecated, see
        `update_session_with_version`).
        """
        return await self.update_session_with_version(
            session_id,
            expected_version=_keyword_version("handoff_session", positional, expected_version),
            status=SessionStatus.HANDED_OFF,
            idempotency_key=idempotency_key,
        )

    async def update_state(
        self,
        session_id: str,
        state: SessionState,
        *,
        expected_version: int,
        idempotency_key: str | None = None,
    ) -> Session:
        """Replace the whole state document if the session is still at `expected_version`.

        await manager.update_state(session.id, new_state, expected_version=session.version)
        """
        check_int("expected_version", expected_version, minimum=1)
        change = SessionChange(state=state)
        result = await self.commit(
            session_id, change, expected_version=expected_version, idempotency_key=idempotency_key
        )
        return result.session

    async def commit(
        self,
        session_id: str,
        change: SessionChange,
        *,
        expected_version: int | None,
        idempotency_key: str | None = None,
    ) -> CommitResult:
        """Apply `change` (fields, state and new turns) in one atomic write.

        With `expected_version`, the write applies only if the session is still at that
        version; `expected_version=None` is allowed only for changes that do not depend
        on what was read (new turns, a status change). A repeat with the same
        `idempotency_key` applies nothing and returns the original result.

        Every value in `change` is checked first (`ValidationError` naming it, e.g.
        `turns[0].tools_called[0].input`); nothing is sent when one is refused.
        """
        if isinstance(change, SessionChange) and (
            change.inputs_intent is not None or change.inputs_confidence is not None
        ):
            raise ValidationError(
                "inputs_intent",
                "is recorded on a run's inputs by complete(); a commit has no run",
            )
        commit = self._to_commit(change, expected_version, idempotency_key)
        return await self._commit(session_id, commit)

    # -- the message pipeline --------------------------------------------------------------

    async def receive(
        self, message: InboundMessage, *, idempotency_key: str | None = None
    ) -> Receipt:
        """Record an inbound message and decide whether this worker answers it now.

        One storage call: gets or creates the conversation's active session, records the
        user turn keyed by `message.message_id` and, under the agent's double-texting
        policy, starts a run or lets the message wait for the run in flight. A message id
        already recorded in the conversation is a duplicate: nothing is written, and the
        receipt carries the original turn and no run. Under the `reject` policy a message
        that arrives during a run raises `ConversationBusyError` and records nothing. A
        conversation handed off to a person (no active session, the newest one
        `handed_off`) keeps its messages there, with no run: the person answers them.

            receipt = await manager.receive(InboundMessage(
                agent_id="sales", conversation_id="wa:+34600111222",
                contact_id="+34600111222", message_id="wamid.HBgM...", content="hola",
            ))
            run = receipt.run
            while run is not None:
                reply = await my_engine(run.session, run.history, run.inputs)
                run = (await manager.complete(run, reply)).next_run
        """
        if not isinstance(message, InboundMessage):
            raise ValidationError(
                "message", f"must be an InboundMessage, got {type(message).__name__}"
            )
        key = self._key(idempotency_key)
        agent = self.registry.get(message.agent_id)
        delivery = Delivery(
            new_session=self._new_session(
                message.agent_id, message.conversation_id, message.contact_id, None, None, None
            ),
            message_id=message.message_id,
            content=message.content,
            policy=_policy(agent),
            received_at=message.received_at,
            idempotency_key=key,
        )
        return await self._retrying(lambda: self.storage.receive(delivery))

    async def complete(
        self,
        run: Run,
        change: SessionChange,
        *,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> Completion:
        """Record `run`'s outcome, end it, and hand over messages that arrived meanwhile.

        One storage call: applies `change` (the reply's turns, state operations, mode,
        status) as `commit` does, marks the run's inputs answered and ends the run; if
        user messages arrived meanwhile, it starts the next run in the same call and
        returns it as `Completion.next_run` (answer it, then complete again). Raises
        `RunSupersededError` when another run has taken the conversation over: nothing is
        written. Idempotent per run: a repeat returns the original completion.
        """
        if not isinstance(run, Run):
            raise ValidationError("run", f"must be the Run that receive returned, got {run!r}")
        key = idempotency_key if idempotency_key is not None else f"run-{run.token}"
        commit = self._to_commit(change, expected_version, key)
        agent = self.registry.get(run.session.agent_id)
        session_id = run.session.id
        policy = _policy(agent)
        try:
            return await self._retrying(
                lambda: self.storage.complete(
                    self.workspace_id, session_id, run.token, commit, policy
                )
            )
        except InvalidTransitionError as exc:
            raise self._explain(exc) from None

    async def extend(self, run: Run) -> Run:
        """Push `run.expires_at` forward by the agent's `runs.timeout` (a heartbeat).

        Call it during long model calls so the run is not taken for abandoned. Raises
        `RunSupersededError` when the run is no longer the current one. The session's
        version does not change.
        """
        if not isinstance(run, Run):
            raise ValidationError("run", f"must be the Run that receive returned, got {run!r}")
        agent = self.registry.get(run.session.agent_id)
        expires_at = await self._retrying(
            lambda: self.storage.extend_run(
                self.workspace_id, run.session.id, run.token, float(agent.runs.timeout)
            )
        )
        return Run(run.token, run.session, run.inputs, run.history, expires_at)

    async def resume_abandoned(self, *, limit: int = 100) -> list[Run]:
        """Claim conversations whose run expired with unanswered messages; answer each run.

        For a periodic job (`frontdesk runs resume`): a worker that crashed mid-run leaves
        its messages to the next `receive` of the conversation, or to this. A claim whose
        answer is lost is not resent: its messages come back after one more timeout.
        """
        check_int("limit", limit, minimum=1, maximum=10_000)
        policies = {agent.id: _policy(agent) for agent in self.registry.list()}
        runs = await self.storage.resume_abandoned(self.workspace_id, policies, limit)
        return list(runs)

    async def retry_on_conflict(
        self,
        session_id: str,
        decide: Decide,
        *,
        attempts: int = 5,
        backoff: float = 0.01,
        max_backoff: float = 0.25,
        sleep: Sleep = asyncio.sleep,
    ) -> CommitResult | None:
        """Read the session, let `decide` compute a change, commit it at the version read.

        On a `VersionConflictError` it waits a small random time (full jitter,
        exponential: `backoff`, doubling up to `max_backoff`) and runs everything again
        with a fresh read, up to `attempts` times; then the last conflict is raised.
        Other errors propagate at once. `decide` (sync or async) returns a
        `SessionChange`, or None when there is nothing to write (then this returns None).

        `sleep` waits between attempts (`asyncio.sleep`; a test may pass its own to see the
        delays). `decide` may run several times: keep side effects such as model calls or sending
        messages out of it. Call the model first, then record its outcome here.

            def take_order(session):
                if session.current_mode != "order_summary":
                    return None
                return SessionChange(current_mode="purchase_confirmed")

            await manager.retry_on_conflict(session.id, take_order)
        """
        check_id("session_id", session_id)
        check_int("attempts", attempts, minimum=1)
        for name, value in (("backoff", backoff), ("max_backoff", max_backoff)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValidationError(name, f"must be a number of seconds >= 0, got {value!r}")
        for attempt in range(1, attempts + 1):
            session = await self.get_session(session_id)
            outcome = decide(session)
            change = await outcome if inspect.isawaitable(outcome) else outcome
            if change is None:
                return None
            if not isinstance(change, SessionChange):
                raise ValidationError(
                    "decide()", f"must return a SessionChange or None, got {type(change).__name__}"
                )
            try:
                return await self.commit(session_id, change, expected_version=session.version)
            except VersionConflictError:
                if attempt == attempts:
                    raise
            ceiling = min(max_backoff, backoff * 2 ** (attempt - 1))
            await sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not secrets
        raise AssertionError("unreachable")  # pragma: no cover

    # -- state helpers (atomic, never conflict) --------------------------------------------

    async def get_state(self, session_id: str) -> SessionState:
        """The session's state document."""
        return (await self.get_session(session_id)).state

    async def add_intent_seen(
        self, session_id: str, intent: str, *, idempotency_key: str | None = None
    ) -> Session:
        """Record an intent, numbered after the ones already seen."""
        return await self._apply(session_id, AppendIntent(intent), idempotency_key)

    async def add_template_sent(
        self, session_id: str, template_name: str, *, idempotency_key: str | None = None
    ) -> Session:
        """Record that a message template was sent."""
        return await self._apply(session_id, AppendTemplate(template_name), idempotency_key)

    async def update_captured_data(
        self, session_id: str, data: Mapping[str, str], *, idempotency_key: str | None = None
    ) -> Session:
        """Merge these keys into the captured data (name, address, ...), keeping the others."""
        op = MergeCapturedData(check_text_map("data", data))
        return await self._apply(session_id, op, idempotency_key)

    async def update_data(
        self, session_id: str, data: Mapping[str, JSON], *, idempotency_key: str | None = None
    ) -> Session:
        """Merge these top-level keys into the agent-specific `state.data`."""
        op = MergeData(check_json_object("data", data))
        return await self._apply(session_id, op, idempotency_key)

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
        idempotency_key: str | None = None,
    ) -> Turn:
        """Record a turn; storage numbers it after the last one, atomically.

        `turn_number`, if given, must be the next number (`TurnNumberConflictError`
        otherwise, and nothing is written).
        """
        check_id("session_id", session_id)
        new_turn = NewTurn(
            role=role,
            content=content,
            turn_number=turn_number,
            intent_detected=intent_detected,
            confidence=confidence,
            tools_called=tools_called,
            tokens_used=tokens_used,
        )
        _check_tool_calls("tools_called", new_turn)
        commit = Commit(turns=(new_turn,), idempotency_key=self._key(idempotency_key))
        result = await self._send(session_id, commit)
        return result.turns[0]

    async def get_turns(self, session_id: str, *, limit: int | None = None) -> Sequence[Turn]:
        """The session's turns in order; with `limit`, only the last `limit`."""
        check_id("session_id", session_id, outcome=READ)
        check_optional_int("limit", limit, minimum=0, outcome=READ)
        return await self.storage.list_turns(self.workspace_id, session_id, limit=limit)

    async def get_total_tokens_used(self, session_id: str) -> int:
        """The tokens used by all the session's turns (summed by the backend)."""
        check_id("session_id", session_id, outcome=READ)
        return (await self.storage.turn_stats(self.workspace_id, session_id)).tokens_used

    async def get_turn_count(self, session_id: str) -> int:
        """How many turns the session has."""
        check_id("session_id", session_id, outcome=READ)
        return (await self.storage.turn_stats(self.workspace_id, session_id)).count

    # -- lifecycle: listing, removal, upgrades ---------------------------------------------

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        status: SessionStatus | str | None = None,
        mode: str | None = None,
        contact_id: str | None = None,
        conversation_id: str | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> SessionPage:
        """One page of the workspace's sessions, newest activity first; filters combine.

        `updated_after`/`updated_before` bound the last activity (exclusive). Pass a page's
        `next_cursor` back, with the same filters, for the next page (keyset pagination:
        every page costs the same, and a session written meanwhile never shows up twice).
        A cursor used with other filters raises `InvalidCursorError`.

            page = await manager.list_sessions(status="active", limit=20)
            while page.next_cursor:
                page = await manager.list_sessions(status="active", cursor=page.next_cursor)
        """
        query = SessionQuery(
            agent_id=check_optional_id("agent_id", agent_id, outcome=LISTED),
            status=_optional_status(status, outcome=LISTED),
            mode=check_optional_id("mode", mode, outcome=LISTED),
            contact_id=check_optional_id("contact_id", contact_id, outcome=LISTED),
            conversation_id=check_optional_id("conversation_id", conversation_id, outcome=LISTED),
            updated_after=_optional_time("updated_after", updated_after, outcome=LISTED),
            updated_before=_optional_time("updated_before", updated_before, outcome=LISTED),
            # One more than asked for tells whether a next page exists.
            limit=check_int("limit", limit, minimum=1, maximum=MAX_PAGE_SIZE, outcome=LISTED) + 1,
        )
        if cursor is not None:
            position = decode_cursor(cursor, self.workspace_id, query)
            query = attrs.evolve(query, after=position)
        items = await self.storage.list_sessions(self.workspace_id, query)
        page = tuple(items[:limit])
        if len(items) <= limit:
            return SessionPage(page, None)
        last = ListPosition(page[-1].last_activity_at, page[-1].id)
        return SessionPage(page, encode_cursor(self.workspace_id, query, last))

    async def delete_session(self, session_id: str) -> bool:
        """Delete the session and its turns; False if it was not there.

        A write to it afterwards, even one racing with the delete, raises
        `SessionNotFoundError`: nothing lands after a delete.
        """
        check_id("session_id", session_id)
        return await self.storage.delete_session(self.workspace_id, session_id)

    async def purge(
        self,
        *,
        inactive_for: timedelta,
        status: SessionStatus | str | None = None,
        limit: int | None = None,
        batch_size: int = 500,
    ) -> int:
        """Delete the sessions with no activity for `inactive_for`; return how many.

        With `status` (e.g. "closed"), only sessions in that status. Works in batches of
        `batch_size` sessions, oldest first, each one short storage call, so a big purge
        never holds long locks; `limit` caps the total.

            removed = await manager.purge(inactive_for=timedelta(days=30), status="closed")
        """
        if not isinstance(inactive_for, timedelta) or not (
            timedelta(0) <= inactive_for <= MAX_INACTIVE_FOR
        ):
            raise ValidationError(
                "inactive_for",
                f"must be a timedelta from 0 to {MAX_INACTIVE_FOR.days} days, got {inactive_for!r}",
                limit=f"0..{MAX_INACTIVE_FOR.days} days",
            )
        chosen = _optional_status(status)
        check_optional_int("limit", limit, minimum=0)
        check_int("batch_size", batch_size, minimum=1, maximum=MAX_PAGE_SIZE)
        removed = 0
        while limit is None or removed < limit:
            wanted = batch_size if limit is None else min(batch_size, limit - removed)
            done = await self.storage.purge_sessions(
                self.workspace_id, inactive_for=inactive_for, status=chosen, limit=wanted
            )
            removed += done
            if done < wanted:
                break
        return removed

    async def erase_contact(self, contact_id: str) -> ErasureReport:
        """Delete everything the workspace holds about a contact, in one storage call.

        Every session of `contact_id` (any agent, conversation or status) goes, with its
        turns and everything stored with them. Returns what was removed.
        """
        check_id("contact_id", contact_id)
        return await self.storage.erase_contact(self.workspace_id, contact_id)

    async def migrate_session(self, session_id: str) -> Session:
        """Bring a session made by another version of its agent up to the installed one.

        Calls the agent package's `migrate_session` hook and applies what it returns as
        one versioned commit that records the new `agent_version`. Returns the session
        unchanged when there is nothing to migrate; raises `AgentChangedError` when the
        session's mode no longer exists and the package provides no migration.
        """
        session = await self.get_session(session_id)
        agent = self.registry.get(session.agent_id)
        if session.agent_version == agent.release and session.current_mode in agent.states.modes:
            return session
        change = self.registry.migrate_session(agent, session)
        if change is None:
            if session.current_mode not in agent.states.modes:
                raise _agent_changed(session, agent)
            return session
        return await self._apply_migration(session, agent, change)

    async def _apply_migration(
        self, session: Session, agent: AgentConfig, change: SessionChange
    ) -> Session:
        if not isinstance(change, SessionChange):
            raise ValidationError(
                "migrate_session",
                f"the hook of agent {agent.id!r} must return a SessionChange or None, "
                f"got {type(change).__name__}",
            )
        if change.turns or change.status is not None or change.last_activity_at is not None:
            raise ValidationError(
                "migrate_session",
                f"the hook of agent {agent.id!r} may change only current_mode and state "
                "(state_ops); it returned turns, a status or an activity time",
            )
        mode = change.current_mode if change.current_mode is not None else session.current_mode
        if mode not in agent.states.modes:
            raise InvalidTransitionError(
                session.id,
                agent_id=agent.id,
                current_mode=session.current_mode,
                requested_mode=mode,
                allowed=agent.states.modes,
            )
        now = datetime.now(UTC)
        state = change.state if change.state is not None else session.state
        state = apply_state_ops(state, change.state_ops, now)
        record = {
            "from": session.agent_version,
            "to": agent.release,
            "from_mode": session.current_mode,
            "to_mode": mode,
            "at": now.isoformat(),
        }
        history = state.data.get(MIGRATIONS_KEY)
        history = [*history, record] if isinstance(history, list) else [record]
        state = attrs.evolve(state, data={**state.data, MIGRATIONS_KEY: history})
        _check_state("state", state)
        migration = SessionMigration(
            expected_version=session.version,
            agent_version=agent.release,
            current_mode=mode,
            state=state,
        )
        return await self.storage.migrate_session(self.workspace_id, session.id, migration)

    async def _migrate_and_retry(
        self, session_id: str, commit: Commit, refusal: InvalidTransitionError
    ) -> CommitResult:
        """The commit was refused because the session's mode left the agent: migrate, retry."""
        agent = self.registry.get(refusal.agent_id)
        for _ in range(3):
            session = await self.get_session(session_id)
            if session.current_mode not in agent.states.modes:
                change = self.registry.migrate_session(agent, session)
                if change is None:
                    raise _agent_changed(session, agent)
                try:
                    await self._apply_migration(session, agent, change)
                except VersionConflictError:
                    continue  # another worker wrote (or migrated) first: look again
            return await self.storage.commit(self.workspace_id, session_id, commit)
        raise VersionConflictError(session_id, session.version)

    # -- internals -------------------------------------------------------------------------

    def _new_session(
        self,
        agent_id: str,
        conversation_id: str,
        contact_id: str,
        initial_mode: str | None,
        initial_state: SessionState | None,
        idempotency_key: str | None,
    ) -> NewSession:
        check_id("agent_id", agent_id)
        check_id("conversation_id", conversation_id)
        check_id("contact_id", contact_id)
        check_optional_id("initial_mode", initial_mode)
        if initial_state is not None:
            if not isinstance(initial_state, SessionState):
                raise ValidationError(
                    "initial_state",
                    f"must be a SessionState, got {type(initial_state).__name__}",
                )
            _check_state("initial_state", initial_state)
        agent = self.registry.get(agent_id)
        mode = initial_mode if initial_mode is not None else agent.states.initial
        if mode not in agent.states.modes:
            raise InvalidTransitionError(
                None,
                agent_id=agent_id,
                current_mode=None,
                requested_mode=mode,
                allowed=agent.states.modes,
                modes=agent.states.modes,
            )
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            session_id = str(uuid.uuid5(_KEYED_SESSIONS, f"{self.workspace_id}\n{idempotency_key}"))
        else:
            session_id = str(uuid.uuid4())
        return NewSession(
            id=session_id,
            workspace_id=self.workspace_id,
            agent_id=agent_id,
            conversation_id=conversation_id,
            contact_id=contact_id,
            current_mode=mode,
            state=initial_state if initial_state is not None else SessionState(),
            agent_version=agent.release,
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

    async def _apply(self, session_id: str, op: StateOp, idempotency_key: str | None) -> Session:
        check_id("session_id", session_id)
        commit = Commit(state_ops=(op,), idempotency_key=self._key(idempotency_key))
        return (await self._send(session_id, commit)).session

    def _to_commit(
        self, change: SessionChange, expected_version: int | None, idempotency_key: str | None
    ) -> Commit:
        """The storage commit for a checked change (`ValidationError` naming what is wrong)."""
        check_optional_int("expected_version", expected_version, minimum=1)
        if not isinstance(change, SessionChange):
            raise ValidationError("change", f"must be a SessionChange, got {type(change).__name__}")
        if change.state is not None and expected_version is None:
            raise ValidationError(
                "expected_version",
                "is needed to replace the state (the version the state was computed from); "
                "use the state helpers (add_intent_seen, ...) for unconditional changes",
            )
        _check_change(change)
        return Commit(
            expected_version=expected_version,
            current_mode=change.current_mode,
            mode_allowed_from=self._entry_modes(change.current_mode),
            status=change.status,
            last_activity_at=change.last_activity_at,
            state=change.state,
            state_ops=change.state_ops,
            turns=change.turns,
            idempotency_key=self._key(idempotency_key),
            inputs_intent=change.inputs_intent,
            inputs_confidence=change.inputs_confidence,
        )

    @staticmethod
    def _key(idempotency_key: str | None) -> str:
        """The caller's idempotency key (checked), or a fresh one of the manager's own."""
        if idempotency_key is None:
            return str(uuid.uuid4())
        check_idempotency_key(idempotency_key)
        return idempotency_key

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Send one write; resend it (same request, same key) while its outcome is unknown.

        A write that failed before reaching storage (`may_have_applied=False`) is resent
        too. If any attempt may have applied, the error finally raised says so, even when
        the last attempt failed to connect.
        """
        uncertain = False
        for attempt in range(1, self.write_attempts + 1):
            try:
                return await call()
            except StorageUnavailableError as exc:
                uncertain = uncertain or exc.may_have_applied
                if attempt == self.write_attempts:
                    if uncertain and not exc.may_have_applied:
                        raise StorageUnavailableError(
                            exc.operation, exc.detail, may_have_applied=True
                        ) from exc
                    raise
            await asyncio.sleep(random.uniform(0, 0.05 * attempt))  # noqa: S311 - jitter
        raise AssertionError("unreachable")  # pragma: no cover

    async def _commit(self, session_id: str, commit: Commit) -> CommitResult:
        check_id("session_id", session_id)
        return await self._send(session_id, commit)

    async def _send(self, session_id: str, commit: Commit) -> CommitResult:
        """Hand a commit whose values are all checked to storage (the one storage call)."""
        try:
            return await self._retrying(
                lambda: self.storage.commit(self.workspace_id, session_id, commit)
            )
        except InvalidTransitionError as exc:
            if self._mode_left_agent(exc):
                try:
                    return await self._migrate_and_retry(session_id, commit, exc)
                except InvalidTransitionError as again:
                    raise self._explain(again) from None
            raise self._explain(exc) from None

    def _mode_left_agent(self, exc: InvalidTransitionError) -> bool:
        """Whether storage refused a move because the agent no longer has the session's mode."""
        try:
            agent = self.registry.get(exc.agent_id)
        except AgentNotFoundError:
            return False
        return exc.current_mode is not None and exc.current_mode not in agent.states.modes

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
            modes=agent.states.modes if agent else None,
        )


MAX_INACTIVE_FOR = timedelta(days=36500)
"""The longest `inactive_for` of `purge` (about a century: any longer purges nothing)."""

MIGRATIONS_KEY = "frontdesk.migrations"
"""The key of `state.data` where each migration of a session is recorded."""


def _agent_changed(session: Session, agent: AgentConfig) -> AgentChangedError:
    return AgentChangedError(
        session.id,
        agent_id=agent.id,
        mode=session.current_mode,
        session_agent_version=session.agent_version,
        installed_agent_version=agent.release,
    )


def _optional_time(name: str, value: object, *, outcome: str = WRITTEN) -> datetime | None:
    return None if value is None else check_datetime(name, value, outcome=outcome)


def _policy(agent: AgentConfig) -> RunPolicy:
    runs = agent.runs
    return RunPolicy(runs.policy, float(runs.timeout), runs.history_turns)


def _entered_from(agent: AgentConfig, mode: str) -> frozenset[str]:
    states = agent.states
    if mode not in states.modes:
        return frozenset()
    return frozenset({mode, *(m for m in states.modes if mode in states.transitions.get(m, ()))})


# -- checks of the JSON inside values (changeable in place until they are sent) ---------------


def _check_state(field: str, state: SessionState) -> None:
    check_text_map(f"{field}.captured_data", state.captured_data)
    check_json_object(f"{field}.data", state.data)


def _check_tool_calls(field: str, turn: NewTurn) -> None:
    for index, call in enumerate(turn.tools_called):
        check_json(f"{field}[{index}].input", call.input)
        check_json(f"{field}[{index}].output", call.output)


def _check_change(change: SessionChange) -> None:
    """Check the JSON in a change: its scalar fields were checked when it was built."""
    if change.state is not None:
        _check_state("state", change.state)
    for index, op in enumerate(change.state_ops):
        if isinstance(op, MergeCapturedData):
            check_text_map(f"state_ops[{index}].data", op.data)
        elif isinstance(op, MergeData):
            check_json_object(f"state_ops[{index}].data", op.data)
    for index, turn in enumerate(change.turns):
        _check_tool_calls(f"turns[{index}].tools_called", turn)
