"""Storage contract clauses on creating sessions, finding them, one active session per conversation."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from ...errors import (
    ConflictError,
    InvalidTransitionError,
    SessionAlreadyActiveError,
    SessionNotFoundError,
)
from ...models import Session, SessionState, SessionStatus
from ...registry import AgentRegistry
from ...sessions import SessionManager
from ...storage.base import (
    Commit,
    NewSession,
    StorageBackend,
)
from ..agents import TEST_AGENT_ID, make_test_agent
from ._base import UNICODE, ContractBase, gather_outcomes


class SessionContract(ContractBase):
    """Creating sessions, finding them, one active session per conversation."""

    # -- creating --------------------------------------------------------------------------

    async def test_create_starts_at_version_one(
        self, manager: SessionManager, workspace_id: str
    ) -> None:
        before = datetime.now(UTC) - timedelta(seconds=5)
        session = await manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
        )
        assert session.version == 1
        assert session.status is SessionStatus.ACTIVE
        assert session.current_mode == "greeting"
        assert session.workspace_id == workspace_id
        assert (session.agent_id, session.conversation_id, session.contact_id) == (
            TEST_AGENT_ID,
            "c",
            "u",
        )
        assert session.state == SessionState()
        uuid.UUID(session.id)
        for stamp in (session.created_at, session.updated_at, session.last_activity_at):
            assert stamp.utcoffset() == timedelta(0)
            assert before <= stamp <= datetime.now(UTC) + timedelta(seconds=5)
        assert await manager.get_session(session.id) == session

    async def test_create_with_initial_mode_and_state(self, manager: SessionManager) -> None:
        state = SessionState(captured_data={"name": UNICODE}, data={"cart": [{"sku": "A", "n": 2}]})
        session = await manager.create_session(
            agent_id=TEST_AGENT_ID,
            conversation_id="c",
            contact_id="u",
            initial_mode="collecting",
            initial_state=state,
        )
        assert session.current_mode == "collecting"
        assert session.state == state
        assert (await manager.get_session(session.id)).state == state

    async def test_create_in_undeclared_mode_is_refused(self, manager: SessionManager) -> None:
        with pytest.raises(InvalidTransitionError) as excinfo:
            await manager.create_session(
                agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u", initial_mode="nope"
            )
        assert excinfo.value.requested_mode == "nope"
        assert await manager.get_session_by_conversation("c", TEST_AGENT_ID) is None

    async def test_one_active_session_per_conversation_and_agent(
        self, manager: SessionManager, session: Session
    ) -> None:
        with pytest.raises(SessionAlreadyActiveError) as excinfo:
            await manager.create_session(
                agent_id=TEST_AGENT_ID, conversation_id="conv-1", contact_id="contact-1"
            )
        assert excinfo.value.existing_session_id == session.id
        assert excinfo.value.session_id == session.id

    async def test_concurrent_creates_end_with_one_session(self, manager: SessionManager) -> None:
        outcomes = await gather_outcomes(
            *(
                manager.create_session(agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u")
                for _ in range(self.concurrency)
            )
        )
        created = [o for o in outcomes if isinstance(o, Session)]
        refused = [o for o in outcomes if isinstance(o, SessionAlreadyActiveError)]
        assert len(created) == 1, outcomes
        assert len(refused) == self.concurrency - 1, outcomes
        assert {e.existing_session_id for e in refused} == {created[0].id}

    async def test_concurrent_get_or_create_returns_one_session(
        self, manager: SessionManager
    ) -> None:
        results = await asyncio.gather(
            *(
                manager.get_or_create_session(
                    agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
                )
                for _ in range(self.concurrency)
            )
        )
        assert len({session.id for session, _ in results}) == 1
        assert [created for _, created in results].count(True) == 1

    async def test_closing_frees_the_conversation(
        self, manager: SessionManager, session: Session
    ) -> None:
        await manager.close_session(session.id, expected_version=session.version)
        assert await manager.get_session_by_conversation("conv-1", TEST_AGENT_ID) is None
        fresh, created = await manager.get_or_create_session(
            agent_id=TEST_AGENT_ID, conversation_id="conv-1", contact_id="contact-1"
        )
        assert created
        assert fresh.id != session.id
        assert (await manager.get_session(session.id)).status is SessionStatus.CLOSED

    async def test_other_agents_have_their_own_sessions(
        self, manager: SessionManager, contract_registry: AgentRegistry, session: Session
    ) -> None:
        contract_registry.register(make_test_agent(id="second-agent"))
        other = await manager.create_session(
            agent_id="second-agent", conversation_id="conv-1", contact_id="contact-1"
        )
        assert other.id != session.id
        assert (await manager.get_session_by_conversation("conv-1", "second-agent")) == other
        assert (await manager.get_session_by_conversation("conv-1", TEST_AGENT_ID)) == session

    async def test_repeating_a_create_returns_its_session(
        self, storage: StorageBackend, workspace_id: str
    ) -> None:
        new = NewSession(
            id=str(uuid.uuid4()),
            workspace_id=workspace_id,
            agent_id=TEST_AGENT_ID,
            conversation_id="c",
            contact_id="u",
            current_mode="greeting",
        )
        first, created = await storage.create_session(new)
        again, created_again = await storage.create_session(new)
        assert created
        assert created_again
        assert again == first
        other = attrs.evolve(new, id=str(uuid.uuid4()))
        with pytest.raises(SessionAlreadyActiveError):
            await storage.create_session(other)
        await storage.commit(workspace_id, new.id, Commit(status=SessionStatus.CLOSED))
        with pytest.raises(ConflictError):
            await storage.create_session(new)  # the id is taken by a closed session

    async def test_create_racing_a_close_ends_with_one_active_session(
        self, manager: SessionManager
    ) -> None:
        for round_ in range(5):
            conversation = f"race-{round_}"
            first = await manager.create_session(
                agent_id=TEST_AGENT_ID, conversation_id=conversation, contact_id="u"
            )
            outcomes = await gather_outcomes(
                manager.close_session(first.id, expected_version=first.version),
                *(
                    manager.get_or_create_session(
                        agent_id=TEST_AGENT_ID, conversation_id=conversation, contact_id="u"
                    )
                    for _ in range(self.concurrency // 2)
                ),
            )
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            assert not errors, errors
            later = {s.id for s, _ in outcomes[1:]} - {first.id}
            assert len(later) <= 1, later  # at most one new session, shared by all
            active = await manager.get_session_by_conversation(conversation, TEST_AGENT_ID)
            assert active is None or active.id in later

    async def test_identifiers_are_data_not_syntax(
        self, storage: StorageBackend, contract_registry: AgentRegistry, workspace_id: str
    ) -> None:
        # Values a query language could read as operators: they must stay plain data.
        contract_registry.register(make_test_agent(id="cs"))
        manager = SessionManager(
            storage, workspace_id=f"eq.{workspace_id}", registry=contract_registry
        )
        for conversation in ("in.(1,2)", "is.null", "eq.1", "not.like.*", "a,b&c=d"):
            session = await manager.create_session(
                agent_id="cs", conversation_id=conversation, contact_id="lt.5"
            )
            assert await manager.get_session(session.id) == session
            found = await manager.get_session_by_conversation(conversation, "cs")
            assert found == session
            await manager.add_turn(session.id, role="user", content="gt.0")
            assert [t.content for t in await manager.get_turns(session.id, limit=1)] == ["gt.0"]
            assert await manager.get_turn_count(session.id) == 1

    # -- reading ---------------------------------------------------------------------------

    async def test_missing_session(self, manager: SessionManager) -> None:
        missing = str(uuid.uuid4())
        with pytest.raises(SessionNotFoundError) as excinfo:
            await manager.get_session(missing)
        assert excinfo.value.session_id == missing
        assert await manager.get_session_by_conversation("nobody", TEST_AGENT_ID) is None
        for call in (
            lambda: manager.add_turn(missing, role="user", content="hi"),
            lambda: manager.add_intent_seen(missing, "greeting"),
            lambda: manager.update_session_with_version(
                missing, expected_version=1, current_mode="collecting"
            ),
            lambda: manager.get_turns(missing),
            lambda: manager.get_turn_count(missing),
        ):
            with pytest.raises(SessionNotFoundError):
                await call()

    async def test_find_active_by_conversation(
        self, manager: SessionManager, session: Session
    ) -> None:
        assert await manager.get_session_by_conversation("conv-1", TEST_AGENT_ID) == session
        assert await manager.get_session_by_conversation("conv-2", TEST_AGENT_ID) is None
        assert await manager.get_session_by_conversation("conv-1", "other-agent") is None
