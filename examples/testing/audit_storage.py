"""A third-party storage backend: in-memory storage that keeps an audit log of writes.

It is built on `frontdesk.testing.InstrumentedStorage`, the wrapper that forwards every
`StorageBackend` primitive to another backend (and can count, delay or break them): a
backend that adds behaviour around an existing one overrides only what it changes. A
packaged backend would also name its class in the `frontdesk.storage` entry-point group,
so that `open_storage("audited")` and FRONTDESK_STORAGE=audited find it.
"""

from __future__ import annotations

from datetime import timedelta

from frontdesk.models import Session, SessionStatus
from frontdesk.pipeline import Completion, Receipt
from frontdesk.storage import (
    Commit,
    CommitResult,
    Delivery,
    ErasureReport,
    NewSession,
    RunPolicy,
    SessionMigration,
)
from frontdesk.storage.memory import InMemoryStorage
from frontdesk.testing import InstrumentedStorage


class AuditedStorage(InstrumentedStorage):
    """Forwards to an `InMemoryStorage` and records (operation, session id) per write."""

    def __init__(self) -> None:
        super().__init__(InMemoryStorage())
        self.audit_log: list[tuple[str, str]] = []

    async def create_session(
        self, new: NewSession, *, return_existing: bool = False
    ) -> tuple[Session, bool]:
        session, created = await super().create_session(new, return_existing=return_existing)
        if created:
            self.audit_log.append(("create", session.id))
        return session, created

    async def commit(self, workspace_id: str, session_id: str, commit: Commit) -> CommitResult:
        result = await super().commit(workspace_id, session_id, commit)
        self.audit_log.append(("commit", session_id))
        return result

    async def receive(self, delivery: Delivery) -> Receipt:
        receipt = await super().receive(delivery)
        if not receipt.duplicate:
            self.audit_log.append(("receive", receipt.session.id))
        return receipt

    async def complete(
        self, workspace_id: str, session_id: str, token: int, commit: Commit, policy: RunPolicy
    ) -> Completion:
        completion = await super().complete(workspace_id, session_id, token, commit, policy)
        self.audit_log.append(("complete", session_id))
        return completion

    async def delete_session(self, workspace_id: str, session_id: str) -> bool:
        deleted = await super().delete_session(workspace_id, session_id)
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
        removed = await super().purge_sessions(
            workspace_id, inactive_for=inactive_for, status=status, limit=limit
        )
        self.audit_log.append(("purge", f"{removed} sessions"))
        return removed

    async def erase_contact(self, workspace_id: str, contact_id: str) -> ErasureReport:
        report = await super().erase_contact(workspace_id, contact_id)
        # The log keeps that an erasure happened, never who it was about.
        self.audit_log.append(("erase_contact", f"{report.sessions} sessions"))
        return report

    async def migrate_session(
        self, workspace_id: str, session_id: str, migration: SessionMigration
    ) -> Session:
        session = await super().migrate_session(workspace_id, session_id, migration)
        self.audit_log.append(("migrate", session_id))
        return session
