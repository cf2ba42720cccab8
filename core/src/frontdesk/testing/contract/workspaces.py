"""Storage contract clauses on workspaces: another workspace's session is indistinguishable from a missing one."""

from __future__ import annotations

import pytest

from ...errors import (
    SessionAlreadyActiveError,
    SessionNotFoundError,
)
from ...models import Session, SessionState
from ...sessions import SessionChange, SessionManager
from ..agents import TEST_AGENT_ID
from ._base import ContractBase, new_turn


class WorkspaceContract(ContractBase):
    """Workspaces: another workspace's session is indistinguishable from a missing one."""

    # -- workspaces ------------------------------------------------------------------------

    async def test_workspaces_are_isolated(
        self, manager: SessionManager, other_manager: SessionManager, session: Session
    ) -> None:
        await manager.add_turn(session.id, role="user", content="private")
        with pytest.raises(SessionNotFoundError):
            await other_manager.get_session(session.id)
        assert await other_manager.get_session_by_conversation("conv-1", TEST_AGENT_ID) is None
        for call in (
            lambda: other_manager.add_turn(session.id, role="user", content="intruder"),
            lambda: other_manager.add_intent_seen(session.id, "intruder"),
            lambda: other_manager.add_template_sent(session.id, "intruder"),
            lambda: other_manager.update_captured_data(session.id, {"intruder": "yes"}),
            lambda: other_manager.update_data(session.id, {"intruder": True}),
            lambda: other_manager.update_state(session.id, SessionState(), expected_version=2),
            lambda: other_manager.commit(
                session.id, SessionChange(turns=[new_turn("x")]), expected_version=None
            ),
            lambda: other_manager.get_state(session.id),
            lambda: other_manager.get_turn_count(session.id),
            lambda: other_manager.update_session_with_version(
                session.id, expected_version=2, current_mode="collecting"
            ),
            lambda: other_manager.close_session(session.id, expected_version=2),
            lambda: other_manager.get_turns(session.id),
            lambda: other_manager.get_total_tokens_used(session.id),
        ):
            with pytest.raises(SessionNotFoundError):
                await call()
        theirs = await other_manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="conv-1", contact_id="contact-1"
        )
        assert theirs.id != session.id
        mine = await manager.get_session(session.id)
        assert mine.version == 2
        assert [t.content for t in await manager.get_turns(session.id)] == ["private"]

    async def test_get_or_create_stays_in_its_workspace(
        self, manager: SessionManager, other_manager: SessionManager
    ) -> None:
        """The same conversation in two workspaces: each finds its own session, never the other's."""
        theirs, theirs_created = await other_manager.get_or_create_session(
            agent_id=TEST_AGENT_ID, conversation_id="shared", contact_id="contact-1"
        )
        mine, mine_created = await manager.get_or_create_session(
            agent_id=TEST_AGENT_ID, conversation_id="shared", contact_id="contact-1"
        )
        assert theirs_created
        assert mine_created
        assert mine.id != theirs.id
        assert (mine.workspace_id, theirs.workspace_id) == (
            manager.workspace_id,
            other_manager.workspace_id,
        )
        for _ in range(3):  # the existing session is looked up within the workspace
            again, created = await manager.get_or_create_session(
                agent_id=TEST_AGENT_ID, conversation_id="shared", contact_id="contact-1"
            )
            assert (again, created) == (mine, False)
            theirs_again, created = await other_manager.get_or_create_session(
                agent_id=TEST_AGENT_ID, conversation_id="shared", contact_id="contact-1"
            )
            assert (theirs_again, created) == (theirs, False)
        with pytest.raises(SessionAlreadyActiveError) as excinfo:
            await manager.create_session(
                agent_id=TEST_AGENT_ID, conversation_id="shared", contact_id="contact-1"
            )
        assert excinfo.value.existing_session_id == mine.id
        with pytest.raises(SessionAlreadyActiveError) as theirs_excinfo:
            await other_manager.create_session(
                agent_id=TEST_AGENT_ID, conversation_id="shared", contact_id="contact-1"
            )
        assert theirs_excinfo.value.existing_session_id == theirs.id
