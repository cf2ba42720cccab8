"""The JSON that frontdesk's SQL functions take and return, shared by the SQL backends.

`SupabaseStorage` (through PostgREST) and `PostgresStorage` (through psycopg) call the same
plpgsql functions of `sql/`: this module builds their JSON arguments, reads their JSON
answers, and turns a `frontdesk_raise` (SQLSTATE PTnnn, hint `frontdesk`, a JSON `detail`
with a `kind`) into the frontdesk error it stands for.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..errors import (
    ConflictError,
    InvalidTransitionError,
    SessionAlreadyActiveError,
    SessionClosedError,
    SessionNotFoundError,
    TurnNumberConflictError,
    VersionConflictError,
)
from ..lifecycle import SessionSummary
from ..models import (
    NewTurn,
    Role,
    Session,
    SessionState,
    SessionStatus,
    ToolCall,
    Turn,
    TurnStats,
)
from .base import AppendIntent, AppendTemplate, MergeCapturedData, MergeData, StateOp

__all__ = [
    "is_uuid",
    "new_turn_json",
    "op_json",
    "raised_error",
    "session_from_json",
    "summary_from_json",
    "turn_from_json",
]


def raised_error(
    detail: Mapping[str, Any], message: str, session_id: str | None, extra: Mapping[str, Any]
) -> Exception:
    """The frontdesk error for a `frontdesk_raise` in SQL, from its JSON detail.

    `extra` holds what the caller sent that the detail does not repeat
    (`expected_version`, `conversation_id`, `agent_id`).
    """
    kind = detail.get("kind")
    sid = str(session_id)
    if kind == "session_not_found":
        return SessionNotFoundError(sid)
    if kind == "version_conflict":
        return VersionConflictError(
            sid, int(extra["expected_version"]), detail.get("current_version")
        )
    if kind == "session_closed":
        return SessionClosedError(sid, str(detail.get("status")))
    if kind == "turn_number_conflict":
        return TurnNumberConflictError(
            sid, int(detail["turn_number"]), int(detail["next_turn_number"])
        )
    if kind == "invalid_transition":
        return InvalidTransitionError(
            sid,
            agent_id=str(detail["agent_id"]),
            current_mode=detail.get("current_mode"),
            requested_mode=str(detail["requested_mode"]),
            allowed=(),
        )
    if kind == "session_already_active" and "existing_session_id" in detail:
        return SessionAlreadyActiveError(
            str(detail["existing_session_id"]),
            conversation_id=str(extra.get("conversation_id", "")),
            agent_id=str(extra.get("agent_id", "")),
        )
    return ConflictError(f"{message} ({kind})", session_id=session_id)


def is_uuid(value: str) -> bool:
    """Whether `value` is a UUID in the canonical form frontdesk gives out (and stores)."""
    try:
        return str(uuid.UUID(value)) == value
    except (TypeError, ValueError, AttributeError):
        return False


def op_json(op: StateOp) -> dict[str, Any]:
    if isinstance(op, AppendIntent):
        return {"op": "append_intent", "intent": op.intent}
    if isinstance(op, AppendTemplate):
        return {"op": "append_template", "name": op.name}
    if isinstance(op, MergeCapturedData):
        return {"op": "merge_captured_data", "data": dict(op.data)}
    if isinstance(op, MergeData):
        return {"op": "merge_data", "data": dict(op.data)}
    raise TypeError(f"unknown state operation {op!r}")  # pragma: no cover - a closed union


def new_turn_json(turn: NewTurn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "role": str(turn.role),
        "content": turn.content,
        "intent_detected": turn.intent_detected,
        "confidence": turn.confidence,
        "tools_called": [
            {"name": call.name, "input": call.input, "output": call.output}
            for call in turn.tools_called
        ],
        "tokens_used": turn.tokens_used,
    }
    if turn.turn_number is not None:
        data["turn_number"] = turn.turn_number
    return data


def session_from_json(data: Mapping[str, Any]) -> Session:
    return Session(
        id=str(data["id"]),
        workspace_id=data["workspace_id"],
        agent_id=data["agent_id"],
        conversation_id=data["conversation_id"],
        contact_id=data["contact_id"],
        version=int(data["version"]),
        status=SessionStatus(data["status"]),
        current_mode=data["current_mode"],
        state=SessionState.from_json(data["state"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        updated_at=datetime.fromisoformat(data["updated_at"]),
        last_activity_at=datetime.fromisoformat(data["last_activity_at"]),
        agent_version=data.get("agent_version"),
    )


def summary_from_json(data: Mapping[str, Any]) -> SessionSummary:
    """A listing item: the session's JSON plus `turn_count` and `tokens_used`."""
    stats = TurnStats(count=int(data["turn_count"]), tokens_used=int(data["tokens_used"]))
    return SessionSummary.of(session_from_json(data), stats)


def turn_from_json(data: Mapping[str, Any]) -> Turn:
    return Turn(
        session_id=str(data["session_id"]),
        turn_number=int(data["turn_number"]),
        role=Role(data["role"]),
        content=data["content"],
        intent_detected=data["intent_detected"],
        confidence=data["confidence"],
        tools_called=tuple(
            ToolCall(call["name"], call.get("input"), call.get("output"))
            for call in data["tools_called"]
        ),
        tokens_used=int(data["tokens_used"]),
        created_at=datetime.fromisoformat(data["created_at"]),
    )
