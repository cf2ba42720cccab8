"""A third-party storage backend: in-memory storage that keeps an audit log of writes.

It shows the shape of a backend: the `StorageBackend` methods and `capabilities`. A
packaged backend would also name its class in the `frontdesk.storage` entry-point group,
so that `open_storage("audited")` and FRONTDESK_STORAGE=audited find it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from frontdesk.models import Session, SessionStatus, Turn, TurnStats
from frontdesk.storage import (
    Commit,
    CommitResult,
    ErasureReport,
    NewSession,
    SessionMigration,
    SessionQuery,
    SessionSummary,
)
from frontdesk.storage.memory import InMemoryStorage


class AuditedStorage:
    """Forwards to an `InMemoryStorage` and records (operation, session id) per write."""

    def __init__(self) -> None:
        self._inner = InMemoryStorage()
        self.capabilities = self._inner.capabilities
        self.audit_log: list[tuple[str, str]] = []

    async def create_session(
        self, new: NewSession, *, return_existing: bool = False
    ) -> tuple[Session, bool]:
        session, created = await self._inner.create_session(new, return_existing=return_existing)
        if created:
            self.audit_log.append(("create", session.id))
        return session, created

    async def get_session(self, workspace_id: str, session_id: str) -> Session | None:
        return await self._inner.get_session(workspace_id, session_id)

    async def find_active_session(
        self, workspace_id: str, conversation_id: str, agent_id: str
    ) -> Session | None:
        return await self._inner.find_active_session(workspace_id, conversation_id, agent_id)

    async def commit(self, workspace_id: str, session_id: str, commit: Commit) -> CommitResult:
        result = await self._inner.commit(workspace_id, session_id, commit)
        self.audit_log.append(("commit", session_id))
        return result

    async def list_turns(
        self, workspace_id: str, session_id: str, *, limit: int | None = None
    ) -> Sequence[Turn]:
        return await self._inner.list_turns(workspace_id, session_id, limit=limit)

    async def turn_stats(self, workspace_id: str, session_id: str) -> TurnStats:
        return await self._inner.turn_stats(workspace_id, session_id)

    async def list_sessions(
        self, workspace_id: str, query: SessionQuery
    ) -> Sequence[SessionSummary]:
        return await self._inner.list_sessions(workspace_id, query)

    async def delete_session(self, workspace_id: str, session_id: str) -> bool:
        deleted = await self._inner.delete_session(workspace_id, session_id)
        if deleted:
            self.audit_log.append(("delete", session_id))
        return deleted

    async def purge_sessions(
        self,
        workspace_id: str,
        *,
        inactive_for: timedelta,
        status: SessionStatus | None,
        limit: int,
    ) -> int:
        removed = await self._inner.purge_sessions(
            workspace_id, inactive_for=inactive_for, status=status, limit=limit
        )
        self.audit_log.append(("purge", f"{removed} sessions"))
        return removed

    async def erase_contact(self, workspace_id: str, contact_id: str) -> ErasureReport:
        report = await self._inner.erase_contact(workspace_id, contact_id)
        # The log keeps that an erasure happened, never who it was about.
        self.audit_log.append(("erase_contact", f"{report.sessions} sessions"))
        return report

    async def migrate_session(
        self, workspace_id: str, session_id: str, migration: SessionMigration
    ) -> Session:
        session = await self._inner.migrate_session(workspace_id, session_id, migration)
        self.audit_log.append(("migrate", session_id))
        return session

    async def aclose(self) -> None:
        await self._inner.aclose()
