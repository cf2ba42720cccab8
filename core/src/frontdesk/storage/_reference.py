"""The reference semantics of the storage primitives, as pure functions.

`InMemoryStorage` and `SQLiteStorage` both decide with these: each backend loads what a
primitive needs (under its own lock or transaction), calls one of these functions, and
stores what it returns. One copy of the rules in Python; the SQL backends have theirs in
the plpgsql functions of `sql/`.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from ..errors import (
    ConflictError,
    InvalidTransitionError,
    SessionAlreadyActiveError,
    SessionClosedError,
    TurnNumberConflictError,
    VersionConflictError,
)
from ..models import Session, SessionState, SessionStatus, Turn
from .base import Commit, NewSession, apply_state_ops

__all__ = [
    "CreateOutcome",
    "committed",
    "create_outcome",
    "leaves_active",
    "new_session",
    "reactivates",
    "refuse_commit",
]


@attrs.frozen
class CreateOutcome:
    """What a create does: return an existing session (`existing_id`), or insert a new one."""

    existing_id: str | None
    created: bool


def create_outcome(
    new: NewSession, *, active_id: str | None, id_taken: bool, return_existing: bool
) -> CreateOutcome:
    """Decide a create, given the conversation's active session id and whether `new.id` exists.

    Raises `SessionAlreadyActiveError` or `ConflictError` (id taken by another session).
    """
    if active_id is not None:
        if return_existing or active_id == new.id:  # or the repeat of a create
            return CreateOutcome(active_id, created=active_id == new.id)
        raise SessionAlreadyActiveError(
            active_id, conversation_id=new.conversation_id, agent_id=new.agent_id
        )
    if id_taken:
        raise ConflictError(
            f"session id {new.id} is taken; create sessions with fresh ids.", session_id=new.id
        )
    return CreateOutcome(None, created=True)


def new_session(new: NewSession, now: datetime) -> Session:
    """The session a create inserts (version 1, active), with `new.state`."""
    return Session(
        id=new.id,
        workspace_id=new.workspace_id,
        agent_id=new.agent_id,
        conversation_id=new.conversation_id,
        contact_id=new.contact_id,
        version=1,
        status=SessionStatus.ACTIVE,
        current_mode=new.current_mode,
        state=new.state,
        created_at=now,
        updated_at=now,
        last_activity_at=now,
        agent_version=new.agent_version,
    )


def reactivates(current: Session, commit: Commit) -> bool:
    """Whether `commit` hands a handed-off session back to its agent (status active again)."""
    return current.status == SessionStatus.HANDED_OFF and commit.status == SessionStatus.ACTIVE


def leaves_active(current: Session, commit: Commit) -> bool:
    """Whether `commit` takes an active session out of `active` (closes or hands it off).

    Such a session keeps no run and no messages waiting for one: the run in flight can no
    longer complete, and what was waiting is the person's (handed off) or nobody's (closed).
    """
    return current.status == SessionStatus.ACTIVE and commit.status not in (
        None,
        SessionStatus.ACTIVE,
    )


def refuse_commit(
    current: Session, turn_count: int, commit: Commit, *, active_id: str | None = None
) -> None:
    """Raise the error that refuses `commit` on `current`, if any; every check before a change.

    A closed session takes no write. A handed-off session takes only a write that sets its
    status: `active` hands it back to the agent (refused with `SessionAlreadyActiveError`
    when `active_id`, the conversation's active session, is another one), `closed` ends it.
    """
    session_id = current.id
    if current.status == SessionStatus.HANDED_OFF:
        if commit.status not in (SessionStatus.ACTIVE, SessionStatus.CLOSED):
            raise SessionClosedError(session_id, current.status)
    elif current.status != SessionStatus.ACTIVE:
        raise SessionClosedError(session_id, current.status)
    expected = commit.expected_version
    if expected is not None and expected != current.version:
        raise VersionConflictError(session_id, expected, current.version)
    rules = commit.mode_allowed_from
    if (
        commit.current_mode is not None
        and rules is not None
        and current.current_mode not in rules.get(current.agent_id, ())
    ):
        raise InvalidTransitionError(
            session_id,
            agent_id=current.agent_id,
            current_mode=current.current_mode,
            requested_mode=commit.current_mode,
            allowed=(),
        )
    next_number = turn_count + 1
    for offset, new_turn in enumerate(commit.turns):
        wanted = new_turn.turn_number
        if wanted is not None and wanted != next_number + offset:
            raise TurnNumberConflictError(session_id, wanted, next_number + offset)
    if reactivates(current, commit) and active_id is not None and active_id != session_id:
        raise SessionAlreadyActiveError(
            active_id, conversation_id=current.conversation_id, agent_id=current.agent_id
        )


def committed(
    current: Session, turn_count: int, commit: Commit, clock_now: datetime
) -> tuple[Session, tuple[Turn, ...]]:
    """The session (with its full state) and the new turns after `commit`.

    `current` carries the stored state; call `refuse_commit` first. The commit time is
    `clock_now`, but never before the session's last write.
    """
    now = max(clock_now, current.updated_at)
    state: SessionState = current.state
    if commit.state is not None or commit.state_ops:
        base = commit.state if commit.state is not None else current.state
        state = apply_state_ops(base, commit.state_ops, now)
    turns = tuple(
        Turn(
            session_id=current.id,
            turn_number=turn_count + 1 + offset,
            role=new_turn.role,
            content=new_turn.content,
            intent_detected=new_turn.intent_detected,
            confidence=new_turn.confidence,
            tools_called=new_turn.tools_called,
            tokens_used=new_turn.tokens_used,
            created_at=now,
        )
        for offset, new_turn in enumerate(commit.turns)
    )
    session = attrs.evolve(
        current,
        version=current.version + 1,
        status=commit.status or current.status,
        current_mode=(
            commit.current_mode if commit.current_mode is not None else current.current_mode
        ),
        state=state,
        updated_at=now,
        last_activity_at=commit.last_activity_at or (now if turns else current.last_activity_at),
    )
    return session, turns
