"""A third-party storage backend: in-memory storage that keeps an audit log of writes.

It shows the shape of a backend: the `StorageBackend` methods and `capabilities`. A
packaged backend would also name its class in the `frontdesk.storage` entry-point group,
so that `open_storage("audited")` and FRONTDESK_STORAGE=audited find it.
"""

from __future__ import annotations

from collections.abc import Sequence

from frontdesk.models import Session, Turn, TurnStats
from frontdesk.storage import Commit, CommitResult, NewSession
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

    async def aclose(self) -> None:
        await self._inner.aclose()
