"""Storage contract clauses on workspaces: another workspace's session is indistinguishable from a missing one."""

from __future__ import annotations

import pytest

from ...errors import (
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
            other_manager.add_turn(session.id, role="user", content="intruder"),
            other_manager.add_intent_seen(session.id, "intruder"),
            other_manager.add_template_sent(session.id, "intruder"),
            other_manager.update_captured_data(session.id, {"intruder": "yes"}),
            other_manager.update_data(session.id, {"intruder": True}),
            other_manager.update_state(session.id, SessionState(), expected_version=2),
            other_manager.commit(
                session.id, SessionChange(turns=[new_turn("x")]), expected_version=None
            ),
            other_manager.get_state(session.id),
            other_manager.get_turn_count(session.id),
            other_manager.update_session_with_version(session.id, 2, current_mode="collecting"),
            other_manager.close_session(session.id, 2),
            other_manager.get_turns(session.id),
            other_manager.get_total_tokens_used(session.id),
        ):
            with pytest.raises(SessionNotFoundError):
                await call
        theirs = await other_manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="conv-1", contact_id="contact-1"
        )
        assert theirs.id != session.id
        mine = await manager.get_session(session.id)
        assert mine.version == 2
        assert [t.content for t in await manager.get_turns(session.id)] == ["private"]
