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
    InvalidCursorError,
    InvalidTransitionError,
    SessionAlreadyActiveError,
    SessionClosedError,
    SessionNotFoundError,
    TurnNumberConflictError,
    VersionConflictError,
)
from ..lifecycle import SessionMigration, SessionQuery, SessionSummary
from ..models import (
    NewTurn,
    Role,
    Session,
    SessionState,
    SessionStatus,
    ToolCall,
    Turn,
)
from .base import AppendIntent, AppendTemplate, MergeCapturedData, MergeData, StateOp

__all__ = [
    "is_uuid",
    "list_sessions_params",
    "migrate_session_params",
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
    return Session(**_session_fields(data))


def summary_from_json(data: Mapping[str, Any]) -> SessionSummary:
    """A listing item: the session's JSON plus `turn_count` and `tokens_used`."""
    return SessionSummary(
        **_session_fields(data),
        turn_count=int(data["turn_count"]),
        tokens_used=int(data["tokens_used"]),
    )


def _session_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(data["id"]),
        "workspace_id": data["workspace_id"],
        "agent_id": data["agent_id"],
        "conversation_id": data["conversation_id"],
        "contact_id": data["contact_id"],
        "version": int(data["version"]),
        "status": SessionStatus(data["status"]),
        "current_mode": data["current_mode"],
        "state": SessionState.from_json(data["state"]),
        "created_at": datetime.fromisoformat(data["created_at"]),
        "updated_at": datetime.fromisoformat(data["updated_at"]),
        "last_activity_at": datetime.fromisoformat(data["last_activity_at"]),
        "agent_version": data.get("agent_version"),
    }


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


def list_sessions_params(workspace_id: str, query: SessionQuery) -> dict[str, Any]:
    """The arguments of `frontdesk_list_sessions` (filters not set are left out: NULL)."""
    params: dict[str, Any] = {"p_workspace_id": workspace_id, "p_limit": query.limit}
    optional: dict[str, Any] = {
        "p_agent_id": query.agent_id,
        "p_status": str(query.status) if query.status is not None else None,
        "p_mode": query.mode,
        "p_contact_id": query.contact_id,
        "p_conversation_id": query.conversation_id,
        "p_updated_after": query.updated_after,
        "p_updated_before": query.updated_before,
    }
    if query.after is not None:
        if not is_uuid(query.after.session_id):
            raise InvalidCursorError(query.after.session_id, "it names no session id")
        optional["p_after_activity"] = query.after.last_activity_at
        optional["p_after_id"] = query.after.session_id
    params.update({name: value for name, value in optional.items() if value is not None})
    return params


def migrate_session_params(
    workspace_id: str, session_id: str, migration: SessionMigration
) -> dict[str, Any]:
    """The arguments of `frontdesk_migrate_session`."""
    params: dict[str, Any] = {
        "p_workspace_id": workspace_id,
        "p_session_id": session_id,
        "p_expected_version": migration.expected_version,
        "p_current_mode": migration.current_mode,
        "p_state": migration.state.to_json(),
    }
    if migration.agent_version is not None:
        params["p_agent_version"] = migration.agent_version
    return params
