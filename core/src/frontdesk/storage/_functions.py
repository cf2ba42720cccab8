"""The storage primitives of the backends that call frontdesk's SQL functions.

`PostgresStorage` (psycopg) and `SupabaseStorage` (PostgREST) run the same plpgsql functions
with the same arguments and read the same answers: each primitive is written once here, over
`_call`, the one round trip each backend provides with its own transport and failure mapping.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..errors import SessionNotFoundError, StorageUnavailableError
from ..lifecycle import ErasureReport, SessionMigration, SessionQuery, SessionSummary
from ..models import Session, SessionStatus, Turn, TurnStats
from ..pipeline import Completion, Receipt, Run
from ._pgjson import (
    commit_function,
    commit_params,
    commit_result_from_json,
    complete_params,
    completion_from_json,
    is_uuid,
    list_sessions_params,
    migrate_session_params,
    policies_json,
    receipt_from_json,
    receive_params,
    run_from_json,
    session_from_json,
    summary_from_json,
    turn_from_json,
)
from .base import Commit, CommitResult, Delivery, NewSession, RunPolicy

__all__ = ["SQLFunctionStorage"]


class SQLFunctionStorage(ABC):
    """Every `StorageBackend` primitive as one call of its SQL function (see `sql/`)."""

    @abstractmethod
    async def _call(
        self,
        function: str,
        params: dict[str, Any],
        *,
        session_id: str | None = None,
        read: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Run `function` with `params` in one round trip (its own transaction).

        Map failures to frontdesk's errors; retry only reads whose connection was lost.
        """

    async def create_session(
        self, new: NewSession, *, return_existing: bool = False
    ) -> tuple[Session, bool]:
        # A create is idempotent by id (the SQL function returns the session it made on a
        # repeat), so a create whose answer was lost is retried once, safely.
        try:
            return await self._create(new, return_existing=return_existing)
        except StorageUnavailableError as first:
            if not first.may_have_applied:
                raise
            try:
                return await self._create(new, return_existing=return_existing)
            except StorageUnavailableError as retry:
                # The first attempt may have created the session, whatever the retry's
                # own failure says about the retry.
                raise StorageUnavailableError(
                    first.operation,
                    f"{first.detail}; the retry failed too: {retry.detail}",
                    may_have_applied=True,
                ) from retry

    async def _create(self, new: NewSession, *, return_existing: bool) -> tuple[Session, bool]:
        data = await self._call(
            "frontdesk_create_session",
            {
                "p_id": new.id,
                "p_workspace_id": new.workspace_id,
                "p_agent_id": new.agent_id,
                "p_conversation_id": new.conversation_id,
                "p_contact_id": new.contact_id,
                "p_current_mode": new.current_mode,
                "p_state": new.state.to_json(),
                "p_return_existing": return_existing,
                "p_agent_version": new.agent_version,
            },
            session_id=new.id,
            extra={"conversation_id": new.conversation_id, "agent_id": new.agent_id},
        )
        return session_from_json(data["session"]), bool(data["created"])

    async def get_session(self, workspace_id: str, session_id: str) -> Session | None:
        if not is_uuid(session_id):
            return None
        data = await self._call(
            "frontdesk_get_session",
            {"p_workspace_id": workspace_id, "p_session_id": session_id},
            session_id=session_id,
            read=True,
        )
        return None if data is None else session_from_json(data)

    async def find_active_session(
        self, workspace_id: str, conversation_id: str, agent_id: str
    ) -> Session | None:
        data = await self._call(
            "frontdesk_find_active_session",
            {
                "p_workspace_id": workspace_id,
                "p_conversation_id": conversation_id,
                "p_agent_id": agent_id,
            },
            read=True,
        )
        return None if data is None else session_from_json(data)

    async def commit(self, workspace_id: str, session_id: str, commit: Commit) -> CommitResult:
        if not is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        data = await self._call(
            commit_function(commit),
            commit_params(workspace_id, session_id, commit),
            session_id=session_id,
            extra={"expected_version": commit.expected_version},
        )
        return commit_result_from_json(data)

    # -- the message pipeline --------------------------------------------------------------

    async def receive(self, delivery: Delivery) -> Receipt:
        new = delivery.new_session
        data = await self._call(
            "frontdesk_receive",
            receive_params(delivery),
            session_id=new.id,
            extra={"conversation_id": new.conversation_id, "agent_id": new.agent_id},
        )
        return receipt_from_json(data)

    async def complete(
        self,
        workspace_id: str,
        session_id: str,
        token: int,
        commit: Commit,
        policy: RunPolicy,
    ) -> Completion:
        if not is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        data = await self._call(
            "frontdesk_complete",
            complete_params(workspace_id, session_id, token, commit, policy),
            session_id=session_id,
            extra={"expected_version": commit.expected_version, "token": token},
        )
        return completion_from_json(data)

    async def extend_run(
        self, workspace_id: str, session_id: str, token: int, lease_seconds: float
    ) -> datetime:
        if not is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        data = await self._call(
            "frontdesk_extend_run",
            {
                "p_workspace_id": workspace_id,
                "p_session_id": session_id,
                "p_token": token,
                "p_lease_seconds": lease_seconds,
            },
            session_id=session_id,
            extra={"token": token},
        )
        return datetime.fromisoformat(data["expires_at"])

    async def resume_abandoned(
        self, workspace_id: str, policies: Mapping[str, RunPolicy], limit: int
    ) -> Sequence[Run]:
        data = await self._call(
            "frontdesk_resume_abandoned",
            {
                "p_workspace_id": workspace_id,
                "p_policies": policies_json(policies),
                "p_limit": limit,
            },
        )
        return [run for run in map(run_from_json, data) if run is not None]

    async def list_turns(
        self, workspace_id: str, session_id: str, *, limit: int | None = None
    ) -> Sequence[Turn]:
        if not is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        params: dict[str, Any] = {"p_workspace_id": workspace_id, "p_session_id": session_id}
        if limit is not None:
            params["p_limit"] = limit
        data = await self._call("frontdesk_list_turns", params, session_id=session_id, read=True)
        return [turn_from_json(turn) for turn in data]

    async def turn_stats(self, workspace_id: str, session_id: str) -> TurnStats:
        if not is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        data = await self._call(
            "frontdesk_turn_stats",
            {"p_workspace_id": workspace_id, "p_session_id": session_id},
            session_id=session_id,
            read=True,
        )
        return TurnStats(count=int(data["count"]), tokens_used=int(data["tokens_used"]))

    # -- lifecycle: listing, removal, migration -------------------------------------------

    async def list_sessions(
        self, workspace_id: str, query: SessionQuery
    ) -> Sequence[SessionSummary]:
        params = list_sessions_params(workspace_id, query)
        data = await self._call("frontdesk_list_sessions", params, read=True)
        return [summary_from_json(item) for item in data]

    async def delete_session(self, workspace_id: str, session_id: str) -> bool:
        if not is_uuid(session_id):
            return False
        data = await self._call(
            "frontdesk_delete_session",
            {"p_workspace_id": workspace_id, "p_session_id": session_id},
            session_id=session_id,
        )
        return bool(data)

    async def purge_sessions(
        self,
        workspace_id: str,
        *,
        inactive_for: timedelta,
        status: SessionStatus | None,
        limit: int,
    ) -> int:
        params: dict[str, Any] = {
            "p_workspace_id": workspace_id,
            "p_inactive_seconds": inactive_for.total_seconds(),
            "p_limit": limit,
        }
        if status is not None:
            params["p_status"] = str(status)
        return int(await self._call("frontdesk_purge_sessions", params))

    async def erase_contact(self, workspace_id: str, contact_id: str) -> ErasureReport:
        data = await self._call(
            "frontdesk_erase_contact",
            {"p_workspace_id": workspace_id, "p_contact_id": contact_id},
        )
        return ErasureReport(sessions=int(data["sessions"]), turns=int(data["turns"]))

    async def migrate_session(
        self, workspace_id: str, session_id: str, migration: SessionMigration
    ) -> Session:
        if not is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        data = await self._call(
            "frontdesk_migrate_session",
            migrate_session_params(workspace_id, session_id, migration),
            session_id=session_id,
            extra={"expected_version": migration.expected_version},
        )
        return session_from_json(data)

    async def health(self) -> dict[str, Any]:
        """What the database reports about itself: callable functions, row-level security, exposure."""
        data: dict[str, Any] = await self._call("frontdesk_health", {}, read=True)
        return data
