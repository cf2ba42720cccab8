"""Storage contract clauses on status and modes: finished sessions refuse writes; modes follow the state machine."""

from __future__ import annotations

import pytest

from ...errors import (
    InvalidTransitionError,
    SessionClosedError,
    VersionConflictError,
)
from ...models import Session, SessionStatus
from ...sessions import SessionManager
from ..agents import TEST_AGENT_ID
from ._base import ContractBase


class StatusContract(ContractBase):
    """Status and modes: finished sessions refuse writes; modes follow the state machine."""

    # -- status and modes ------------------------------------------------------------------

    @pytest.mark.parametrize("status", [SessionStatus.CLOSED, SessionStatus.HANDED_OFF])
    async def test_finished_session_refuses_writes(
        self, manager: SessionManager, session: Session, status: SessionStatus
    ) -> None:
        if status is SessionStatus.CLOSED:
            finished = await manager.close_session(session.id, expected_version=session.version)
        else:
            finished = await manager.handoff_session(session.id, expected_version=session.version)
        assert finished.status is status
        assert not finished.is_active
        for call in (
            lambda: manager.add_turn(session.id, role="user", content="late"),
            lambda: manager.add_intent_seen(session.id, "late"),
            lambda: manager.update_captured_data(session.id, {"late": "yes"}),
            lambda: manager.update_session_with_version(
                session.id, expected_version=2, current_mode="collecting"
            ),
            lambda: manager.handoff_session(session.id, expected_version=2),
        ):
            with pytest.raises(SessionClosedError) as excinfo:
                await call()
            assert excinfo.value.status == status
        assert await manager.get_session(session.id) == finished
        assert await manager.get_turns(session.id) == []

    async def test_a_closed_session_stays_closed(
        self, manager: SessionManager, session: Session
    ) -> None:
        """Only a handed-off session may change status again (see the handoff clauses)."""
        closed = await manager.close_session(session.id, expected_version=session.version)
        for status in (SessionStatus.ACTIVE, SessionStatus.CLOSED, SessionStatus.HANDED_OFF):
            with pytest.raises(SessionClosedError):
                await manager.update_session_with_version(
                    session.id, expected_version=closed.version, status=status
                )
        assert await manager.get_session(session.id) == closed

    async def test_close_with_stale_version_conflicts(
        self, manager: SessionManager, session: Session
    ) -> None:
        await manager.add_turn(session.id, role="user", content="hi")
        with pytest.raises(VersionConflictError) as excinfo:
            await manager.close_session(session.id, expected_version=session.version)
        assert (excinfo.value.expected_version, excinfo.value.current_version) == (1, 2)
        assert (await manager.get_session(session.id)).is_active

    async def test_modes_follow_the_state_machine(
        self, manager: SessionManager, session: Session
    ) -> None:
        moved = await manager.update_session_with_version(
            session.id, expected_version=1, current_mode="collecting"
        )
        assert moved.current_mode == "collecting"
        same = await manager.update_session_with_version(
            session.id, expected_version=2, current_mode="collecting"
        )
        assert same.version == 3
        with pytest.raises(InvalidTransitionError) as excinfo:
            await manager.update_session_with_version(
                session.id, expected_version=3, current_mode="done"
            )
        error = excinfo.value
        assert (error.agent_id, error.current_mode, error.requested_mode) == (
            TEST_AGENT_ID,
            "collecting",
            "done",
        )
        assert error.allowed == ("confirming",)
        with pytest.raises(InvalidTransitionError):
            await manager.update_session_with_version(
                session.id, expected_version=3, current_mode="undeclared"
            )
        assert (await manager.get_session(session.id)).version == 3
