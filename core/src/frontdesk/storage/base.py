"""The storage interface: the few async primitives every backend provides.

`SessionManager` turns each of its operations into exactly one call to one of these, so a
backend that makes each primitive atomic (one transaction, one request) gives the whole
framework its guarantees. The contract, checked by `frontdesk.testing.StorageContractTests`:

- `version` starts at 1 and grows by exactly 1 on every successful `commit`;
- a commit with `expected_version` applies only if it still matches, else it raises
  `VersionConflictError` (with the current version) and writes nothing;
- a commit is all-or-nothing: fields, state, state operations and turns together;
- turn numbers are unique and gapless per session, even with concurrent writers;
- at most one active session per (workspace, conversation, agent);
- every read and write is scoped to a workspace: another workspace's session is
  indistinguishable from a missing one;
- a write that carries an idempotency key and repeats a key already applied to that
  session applies nothing and returns the original result (keys are kept as long as the
  session);
- the message pipeline (`receive`, `complete`, `extend_run`, `resume_abandoned`): each
  message id is recorded once per conversation; at most one run holds a session at a
  time, fenced by a token that grows with every run; expiry is judged by the storage's
  clock. The pure rules every Python backend shares are in `frontdesk.storage.runs`;
- a conversation handed off stays with its person: `receive` records its messages on the
  handed-off session with no run; a handed-off session takes only a status change
  (`active` hands it back, `closed` ends it); a session that leaves `active` keeps no run
  and no pending message.

A third-party backend implements these methods (the names are public API), registers its
class in the `frontdesk.storage` entry-point group, and subclasses the contract suite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from attrs import field, frozen

from ..config import DoubleTexting
from ..errors import ValidationError
from ..lifecycle import ErasureReport, SessionMigration, SessionQuery, SessionSummary
from ..models import (
    JSON,
    IntentSeen,
    NewTurn,
    Session,
    SessionState,
    SessionStatus,
    Turn,
    TurnStats,
)
from ..pipeline import Completion, Receipt, Run
from ..validation import check_choice, check_id, check_text_map

__all__ = [
    "AppendIntent",
    "AppendTemplate",
    "Capability",
    "Commit",
    "CommitResult",
    "Delivery",
    "MergeCapturedData",
    "MergeData",
    "NewSession",
    "RunPolicy",
    "StateOp",
    "StorageBackend",
    "apply_state_ops",
]


class Capability:
    """Names of optional capabilities a backend may declare in `capabilities`.

    The contract suite skips (never silently passes) the tests of a capability a backend
    does not declare.
    """

    THREADS = "threads"
    """One instance may be used from several OS threads (each with its own event loop)."""


@frozen
class NewSession:
    """A session to create; the backend sets version 1, status active and the timestamps."""

    id: str
    workspace_id: str
    agent_id: str
    conversation_id: str
    contact_id: str
    current_mode: str
    state: SessionState = field(factory=SessionState)
    agent_version: str | None = None


def _intent(value: object) -> str:
    return check_id("intent", value)


def _template_name(value: object) -> str:
    return check_id("template_name", value)


def _captured(value: object) -> dict[str, str]:
    return check_text_map("captured_data", value)


def _status(value: object) -> SessionStatus | None:
    return None if value is None else check_choice("status", value, SessionStatus)


def _json_map(value: object) -> dict[str, JSON]:
    # The top level only: the JSON inside is checked where the operation is handed to
    # storage (it may be changed in place until then).
    if not isinstance(value, Mapping):
        raise ValidationError("data", f"must be a mapping, got {type(value).__name__}")
    return dict(value)


@frozen
class AppendIntent:
    """Append an intent to `intents_seen`, numbered after the last, stamped with commit time."""

    intent: str = field(converter=_intent)


@frozen
class AppendTemplate:
    """Append a template name to `templates_sent`."""

    name: str = field(converter=_template_name)


@frozen
class MergeCapturedData:
    """Set these keys of `captured_data`, keeping the others."""

    data: Mapping[str, str] = field(converter=_captured)


@frozen
class MergeData:
    """Set these top-level keys of the agent-specific `data`, keeping the others."""

    data: Mapping[str, JSON] = field(converter=_json_map)


StateOp = AppendIntent | AppendTemplate | MergeCapturedData | MergeData
"""A change to the state document that the backend applies to the current state, atomically.

Because it is a pure function of the current state, it needs no expected version and never
conflicts: two workers appending intents both get theirs recorded (like DynamoDB's
`list_append` or Firestore's `arrayUnion`).
"""


def apply_state_ops(state: SessionState, ops: Sequence[StateOp], now: datetime) -> SessionState:
    """The state after `ops`, in order; `now` stamps appended intents.

    A helper for backends written in Python (the Supabase backend does the same in SQL).
    """
    intents = list(state.intents_seen)
    templates = list(state.templates_sent)
    captured = dict(state.captured_data)
    data = dict(state.data)
    for op in ops:
        if isinstance(op, AppendIntent):
            intents.append(IntentSeen(op.intent, len(intents) + 1, now))
        elif isinstance(op, AppendTemplate):
            templates.append(op.name)
        elif isinstance(op, MergeCapturedData):
            captured.update(op.data)
        else:
            data.update(op.data)
    return SessionState(tuple(intents), tuple(templates), captured, data)


@frozen
class Commit:
    """One atomic write to a session. Fields left as None are not changed.

    - `expected_version`: apply only if the session is still at this version.
    - `current_mode`: the new mode. `mode_allowed_from` maps agent ids to the modes from
      which it may be entered (None: no check); a session whose agent is missing from
      the map, or whose mode is not in its set, raises `InvalidTransitionError`.
    - `state` replaces the whole state document (use it with `expected_version`); then
      `state_ops` apply, in order, to the current (or replaced) state.
    - `turns` are appended, numbered after the session's last turn.
    - `last_activity_at` defaults to the commit time when turns are added.
    - `idempotency_key`: a repeat of a key already applied to this session applies
      nothing and returns the original result (checked before anything else).
    - `inputs_intent`, `inputs_confidence`: used by `complete` only: set on each of the
      run's input turns (`intent_detected`, `confidence`) when not None.
    """

    expected_version: int | None = None
    current_mode: str | None = None
    mode_allowed_from: Mapping[str, frozenset[str]] | None = None
    status: SessionStatus | None = field(
        default=None,
        converter=_status,
    )
    last_activity_at: datetime | None = None
    state: SessionState | None = None
    state_ops: tuple[StateOp, ...] = ()
    turns: tuple[NewTurn, ...] = ()
    idempotency_key: str | None = None
    inputs_intent: str | None = None
    inputs_confidence: float | None = None


@frozen
class RunPolicy:
    """How runs of one agent behave: its `[runs]` configuration, as storage needs it."""

    double_texting: DoubleTexting = field(converter=DoubleTexting)
    timeout: float = 120.0
    history_turns: int = 20


@frozen
class Delivery:
    """An inbound message to record (`StorageBackend.receive`).

    `new_session` is the session to create when the conversation has none active (its
    workspace, conversation, agent and contact say whose message this is).
    """

    new_session: NewSession
    message_id: str
    content: str
    policy: RunPolicy
    received_at: datetime | None = None
    idempotency_key: str | None = None


@frozen
class CommitResult:
    """The session after a commit, and the turns it added (numbered, timestamped)."""

    session: Session
    turns: tuple[Turn, ...] = ()


@runtime_checkable
class StorageBackend(Protocol):
    """What `SessionManager` needs from storage. Every method is one atomic operation."""

    capabilities: frozenset[str]
    """Optional capabilities this backend supports (see `Capability`)."""

    async def create_session(
        self, new: NewSession, *, return_existing: bool = False
    ) -> tuple[Session, bool]:
        """Create a session at version 1, status active; return it and True.

        If the (workspace, conversation, agent) already has an active session, raise
        `SessionAlreadyActiveError` carrying its id, or with `return_existing` return that
        session and False. Two concurrent creators end with one session. Repeating a
        create (same id, same conversation) while its session is active returns that
        session and True, so a create whose answer was lost can be retried safely; an id
        that is taken otherwise raises `ConflictError`.
        """
        ...

    async def get_session(self, workspace_id: str, session_id: str) -> Session | None:
        """The session, or None if there is none with this id in this workspace."""
        ...

    async def find_active_session(
        self, workspace_id: str, conversation_id: str, agent_id: str
    ) -> Session | None:
        """The active session of this conversation with this agent, or None."""
        ...

    async def commit(self, workspace_id: str, session_id: str, commit: Commit) -> CommitResult:
        """Apply `commit` atomically and return the result; the version grows by 1.

        Raises `SessionNotFoundError` (no such session in the workspace),
        `VersionConflictError` (stale `expected_version`, with the current version),
        `SessionClosedError` (the session is closed, or handed off and the commit does not
        set its status to active or closed), `InvalidTransitionError` (the current mode is
        not in `mode_allowed_from`), `TurnNumberConflictError` (a turn asked for a number
        that is not the next one) or `SessionAlreadyActiveError` (a handed-off session set
        active while another session of its conversation is). Whatever it raises, nothing
        changed. A commit that takes the session out of `active` also ends its run (keeping
        the token) and leaves no message pending.
        """
        ...

    async def list_turns(
        self, workspace_id: str, session_id: str, *, limit: int | None = None
    ) -> Sequence[Turn]:
        """The session's turns in order; with `limit`, the last `limit` of them.

        Raises `SessionNotFoundError` when the session is not in the workspace.
        """
        ...

    async def turn_stats(self, workspace_id: str, session_id: str) -> TurnStats:
        """Count and token total of the session's turns, computed by the backend.

        Raises `SessionNotFoundError` when the session is not in the workspace.
        """
        ...

    # -- lifecycle: listing, removal, migration -------------------------------------------

    async def list_sessions(
        self, workspace_id: str, query: SessionQuery
    ) -> Sequence[SessionSummary]:
        """Up to `query.limit` sessions matching `query`, newest activity first.

        Keyset order: `last_activity_at` descending, then id descending; with
        `query.after`, only sessions strictly after that position in this order.
        """
        ...

    async def delete_session(self, workspace_id: str, session_id: str) -> bool:
        """Delete the session and everything stored with it; False if there was none.

        A write that has not committed when the delete does finds no session
        (`SessionNotFoundError`): nothing lands after a delete.
        """
        ...

    async def purge_sessions(
        self,
        workspace_id: str,
        *,
        inactive_for: timedelta,
        status: SessionStatus | None,
        limit: int,
    ) -> int:
        """Delete at most `limit` sessions whose last activity is older than `inactive_for`
        ago (by the backend's clock), oldest first, optionally only those with `status`;
        return how many. One short transaction: a session being written is left for the
        next batch rather than waited for.
        """
        ...

    async def erase_contact(self, workspace_id: str, contact_id: str) -> ErasureReport:
        """Delete every session of `contact_id` in the workspace, with all stored with them."""
        ...

    async def migrate_session(
        self, workspace_id: str, session_id: str, migration: SessionMigration
    ) -> Session:
        """Apply `migration` as one versioned commit and return the session after it.

        Raises `SessionNotFoundError`, `VersionConflictError` (stale expected version) or
        `SessionClosedError`; whatever it raises, nothing changed.
        """
        ...

    async def receive(self, delivery: Delivery) -> Receipt:
        """Record an inbound message and decide whether the caller runs now, atomically.

        Gets or creates the conversation's active session, records the user turn keyed by
        `message_id` (a message id already recorded in the conversation returns the
        original turn with `duplicate=True` and writes nothing), and under the policy
        decides whether a run starts (`frontdesk.storage.runs.plan_receive`). Raises
        `ConversationBusyError` (writing nothing) under `reject` while a run is live.

        When the conversation has no active session and its newest session (the most
        recently created) is handed off, the turn is recorded on that session instead, not
        pending, and no run starts, whatever the policy: the person answers it.
        """
        ...

    async def complete(
        self,
        workspace_id: str,
        session_id: str,
        token: int,
        commit: Commit,
        policy: RunPolicy,
    ) -> Completion:
        """Apply `commit`, mark run `token`'s inputs answered, end it, start the next one.

        Raises `RunSupersededError` when `token` is not the session's live or abandoned
        run (unless `commit.idempotency_key` repeats an applied one: then the original
        result), plus whatever `commit` raises. Whatever it raises, nothing changed.
        """
        ...

    async def extend_run(
        self, workspace_id: str, session_id: str, token: int, lease_seconds: float
    ) -> datetime:
        """Push run `token`'s expiry to `lease_seconds` from now; return the new expiry.

        Raises `RunSupersededError` when the run is no longer current. Does not change
        the session's version (a lease is not session data).
        """
        ...

    async def resume_abandoned(
        self, workspace_id: str, policies: Mapping[str, RunPolicy], limit: int
    ) -> Sequence[Run]:
        """Claim up to `limit` sessions whose run expired with unanswered messages.

        Each gets a new run (token + 1) under its agent's policy (agents missing from
        `policies` are skipped). Claiming does not change the session's version.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...
