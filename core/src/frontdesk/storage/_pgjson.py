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
    ConversationBusyError,
    InvalidCursorError,
    InvalidTransitionError,
    RunSupersededError,
    SessionAlreadyActiveError,
    SessionClosedError,
    SessionNotFoundError,
    TurnNumberConflictError,
    ValidationError,
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
from ..pipeline import Completion, Receipt, Run
from .base import (
    AppendIntent,
    AppendTemplate,
    Commit,
    CommitResult,
    Delivery,
    MergeCapturedData,
    MergeData,
    RunPolicy,
    StateOp,
)

__all__ = [
    "CALLED_FUNCTIONS",
    "commit_function",
    "commit_params",
    "commit_result_from_json",
    "complete_params",
    "completion_from_json",
    "is_uuid",
    "list_sessions_params",
    "migrate_session_params",
    "new_turn_json",
    "op_json",
    "policies_json",
    "raised_error",
    "receipt_from_json",
    "receive_params",
    "result_to_json",
    "run_from_json",
    "run_to_json",
    "session_from_json",
    "session_to_json",
    "summary_from_json",
    "turn_from_json",
    "turn_to_json",
]


CALLED_FUNCTIONS = frozenset(
    {
        "frontdesk_commit",
        "frontdesk_commit_once",
        "frontdesk_complete",
        "frontdesk_create_session",
        "frontdesk_delete_session",
        "frontdesk_erase_contact",
        "frontdesk_extend_run",
        "frontdesk_find_active_session",
        "frontdesk_get_session",
        "frontdesk_health",
        "frontdesk_list_sessions",
        "frontdesk_list_turns",
        "frontdesk_migrate_session",
        "frontdesk_purge_sessions",
        "frontdesk_receive",
        "frontdesk_resume_abandoned",
        "frontdesk_turn_stats",
    }
)
"""Every SQL function the SQL backends call: what `frontdesk db check` expects to find."""


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
    if kind == "run_superseded":
        current = detail.get("current_token")
        return RunSupersededError(
            sid, int(extra["token"]), int(current) if current is not None else None
        )
    if kind == "conversation_busy":
        return ConversationBusyError(
            str(detail.get("session_id", sid)),
            conversation_id=str(extra.get("conversation_id", "")),
            agent_id=str(extra.get("agent_id", "")),
        )
    if kind == "invalid_input":
        # The database's own checks (migration 0002): input that frontdesk did not check.
        return ValidationError(str(detail.get("field")), str(detail.get("problem")))
    if kind == "session_already_active" and "existing_session_id" in detail:
        # A create names the conversation in its arguments; a hand-back, in the detail.
        return SessionAlreadyActiveError(
            str(detail["existing_session_id"]),
            conversation_id=str(detail.get("conversation_id", extra.get("conversation_id", ""))),
            agent_id=str(detail.get("agent_id", extra.get("agent_id", ""))),
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
        # A whole number comes back from jsonb as a JSON integer: keep it a float everywhere.
        confidence=None if data["confidence"] is None else float(data["confidence"]),
        tools_called=tuple(
            ToolCall(call["name"], call.get("input"), call.get("output"))
            for call in data["tools_called"]
        ),
        tokens_used=int(data["tokens_used"]),
        created_at=datetime.fromisoformat(data["created_at"]),
        message_id=data.get("message_id"),
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


def commit_params(workspace_id: str, session_id: str, commit: Commit) -> dict[str, Any]:
    """The arguments of `frontdesk_commit` (and of the functions that take a commit's)."""
    params: dict[str, Any] = {
        "p_workspace_id": workspace_id,
        "p_session_id": session_id,
        "p_state_ops": [op_json(op) for op in commit.state_ops],
        "p_turns": [new_turn_json(turn) for turn in commit.turns],
    }
    # Parameters left out take their SQL defaults (NULL: "leave as it is").
    optional = {
        "p_expected_version": commit.expected_version,
        "p_current_mode": commit.current_mode,
        "p_status": str(commit.status) if commit.status is not None else None,
        "p_last_activity_at": (
            commit.last_activity_at.isoformat() if commit.last_activity_at else None
        ),
        "p_state": commit.state.to_json() if commit.state is not None else None,
        "p_mode_allowed_from": (
            {agent: sorted(modes) for agent, modes in commit.mode_allowed_from.items()}
            if commit.mode_allowed_from is not None
            else None
        ),
        "p_idempotency_key": commit.idempotency_key,
    }
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


def commit_function(commit: Commit) -> str:
    """`frontdesk_commit_once` for a commit with an idempotency key, else `frontdesk_commit`."""
    return "frontdesk_commit" if commit.idempotency_key is None else "frontdesk_commit_once"


def _policy_params(policy: RunPolicy) -> dict[str, Any]:
    return {
        "p_policy": str(policy.double_texting),
        "p_timeout": policy.timeout,
        "p_history_turns": policy.history_turns,
    }


def receive_params(delivery: Delivery) -> dict[str, Any]:
    """The arguments of `frontdesk_receive`."""
    new = delivery.new_session
    params: dict[str, Any] = {
        "p_workspace_id": new.workspace_id,
        "p_session_id": new.id,
        "p_agent_id": new.agent_id,
        "p_conversation_id": new.conversation_id,
        "p_contact_id": new.contact_id,
        "p_current_mode": new.current_mode,
        "p_state": new.state.to_json(),
        "p_message_id": delivery.message_id,
        "p_content": delivery.content,
        **_policy_params(delivery.policy),
    }
    if delivery.received_at is not None:
        params["p_received_at"] = delivery.received_at.isoformat()
    if delivery.idempotency_key is not None:
        params["p_idempotency_key"] = delivery.idempotency_key
    if new.agent_version is not None:
        params["p_agent_version"] = new.agent_version
    return params


def complete_params(
    workspace_id: str, session_id: str, token: int, commit: Commit, policy: RunPolicy
) -> dict[str, Any]:
    """The arguments of `frontdesk_complete`."""
    params = commit_params(workspace_id, session_id, commit)
    params.update(_policy_params(policy), p_token=token)
    if commit.inputs_intent is not None:
        params["p_inputs_intent"] = commit.inputs_intent
    if commit.inputs_confidence is not None:
        params["p_inputs_confidence"] = commit.inputs_confidence
    return params


def policies_json(policies: Mapping[str, RunPolicy]) -> dict[str, Any]:
    """`frontdesk_resume_abandoned`'s `p_policies`: each agent's policy."""
    return {
        agent_id: {
            "double_texting": str(policy.double_texting),
            "timeout": policy.timeout,
            "history_turns": policy.history_turns,
        }
        for agent_id, policy in policies.items()
    }


def commit_result_from_json(data: Mapping[str, Any]) -> CommitResult:
    return CommitResult(
        session=session_from_json(data["session"]),
        turns=tuple(turn_from_json(turn) for turn in data["turns"]),
    )


def run_from_json(data: Mapping[str, Any] | None) -> Run | None:
    if data is None:
        return None
    return Run(
        token=int(data["token"]),
        session=session_from_json(data["session"]),
        inputs=tuple(turn_from_json(turn) for turn in data["inputs"]),
        history=tuple(turn_from_json(turn) for turn in data["history"]),
        expires_at=datetime.fromisoformat(data["expires_at"]),
    )


def receipt_from_json(data: Mapping[str, Any]) -> Receipt:
    return Receipt(
        session=session_from_json(data["session"]),
        turn=turn_from_json(data["turn"]),
        duplicate=bool(data["duplicate"]),
        run=run_from_json(data["run"]),
    )


def completion_from_json(data: Mapping[str, Any]) -> Completion:
    return Completion(
        session=session_from_json(data["session"]),
        turns=tuple(turn_from_json(turn) for turn in data["turns"]),
        next_run=run_from_json(data["next_run"]),
    )


# -- the same JSON, built from values (for backends that store answers as JSON) -----------------


def session_to_json(session: Session) -> dict[str, Any]:
    """`session_from_json`'s input for `session`."""
    return {
        "id": session.id,
        "workspace_id": session.workspace_id,
        "agent_id": session.agent_id,
        "conversation_id": session.conversation_id,
        "contact_id": session.contact_id,
        "version": session.version,
        "status": str(session.status),
        "current_mode": session.current_mode,
        "state": session.state.to_json(),
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
        "last_activity_at": session.last_activity_at.isoformat(),
    }


def turn_to_json(turn: Turn) -> dict[str, Any]:
    """`turn_from_json`'s input for `turn`."""
    return {
        "session_id": turn.session_id,
        "turn_number": turn.turn_number,
        "role": str(turn.role),
        "content": turn.content,
        "intent_detected": turn.intent_detected,
        "confidence": turn.confidence,
        "tools_called": [
            {"name": call.name, "input": call.input, "output": call.output}
            for call in turn.tools_called
        ],
        "tokens_used": turn.tokens_used,
        "created_at": turn.created_at.isoformat(),
        "message_id": turn.message_id,
    }


def run_to_json(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "token": run.token,
        "session": session_to_json(run.session),
        "inputs": [turn_to_json(turn) for turn in run.inputs],
        "history": [turn_to_json(turn) for turn in run.history],
        "expires_at": run.expires_at.isoformat(),
    }


def result_to_json(result: CommitResult | Receipt | Completion) -> dict[str, Any]:
    """The JSON of a write's answer, as the SQL functions return it."""
    if isinstance(result, Receipt):
        return {
            "session": session_to_json(result.session),
            "turn": turn_to_json(result.turn),
            "duplicate": result.duplicate,
            "run": run_to_json(result.run),
        }
    data: dict[str, Any] = {
        "session": session_to_json(result.session),
        "turns": [turn_to_json(turn) for turn in result.turns],
    }
    if isinstance(result, Completion):
        data["next_run"] = run_to_json(result.next_run)
    return data
