"""Storage contract clauses on versions and optimistic locking: stale writes are refused and write nothing."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from ...errors import (
    VersionConflictError,
)
from ...models import Session, SessionState
from ...sessions import SessionChange, SessionManager
from ._base import ContractBase, gather_outcomes, new_turn


class VersionContract(ContractBase):
    """Versions and optimistic locking: stale writes are refused and write nothing."""

    # -- versions --------------------------------------------------------------------------

    async def test_every_write_adds_exactly_one(
        self, manager: SessionManager, session: Session
    ) -> None:
        sid = session.id
        assert (await manager.add_intent_seen(sid, "greeting")).version == 2
        assert (await manager.add_template_sent(sid, "welcome")).version == 3
        assert (await manager.update_captured_data(sid, {"name": "Ana"})).version == 4
        assert (await manager.update_data(sid, {"k": 1})).version == 5
        await manager.add_turn(sid, role="user", content="hi")
        assert (await manager.get_session(sid)).version == 6
        updated = await manager.update_session_with_version(
            sid, expected_version=6, current_mode="collecting"
        )
        assert updated.version == 7
        replaced = await manager.update_state(
            sid, SessionState(templates_sent=("x",)), expected_version=7
        )
        assert replaced.version == 8
        assert replaced.state == SessionState(templates_sent=("x",))
        assert (await manager.close_session(sid, expected_version=8)).version == 9

    async def test_stale_version_is_refused_and_writes_nothing(
        self, manager: SessionManager, session: Session
    ) -> None:
        await manager.add_intent_seen(session.id, "greeting")  # now at version 2
        before = await manager.get_session(session.id)
        with pytest.raises(VersionConflictError) as excinfo:
            await manager.commit(
                session.id,
                SessionChange(
                    current_mode="collecting",
                    state=SessionState(captured_data={"lost": "yes"}),
                    turns=[new_turn("must not appear")],
                ),
                expected_version=1,
            )
        assert excinfo.value.session_id == session.id
        assert excinfo.value.expected_version == 1
        assert excinfo.value.current_version == 2
        assert await manager.get_session(session.id) == before
        assert await manager.get_turns(session.id) == []

    async def test_concurrent_versioned_writes_exactly_one_wins(
        self, manager: SessionManager, session: Session
    ) -> None:
        outcomes = await gather_outcomes(
            *(
                manager.update_state(
                    session.id,
                    SessionState(captured_data={"writer": str(i)}),
                    expected_version=session.version,
                )
                for i in range(self.concurrency)
            )
        )
        winners = [o for o in outcomes if isinstance(o, Session)]
        conflicts = [o for o in outcomes if isinstance(o, VersionConflictError)]
        assert len(winners) == 1, outcomes
        assert len(conflicts) == self.concurrency - 1, outcomes
        assert all(c.expected_version == 1 for c in conflicts)
        assert all(c.current_version == 2 for c in conflicts)
        final = await manager.get_session(session.id)
        assert final.version == 2
        assert final.state == winners[0].state

    async def test_retry_on_conflict_loses_no_update(
        self, manager: SessionManager, session: Session
    ) -> None:
        def increment(current: Session) -> SessionChange:
            count = int(current.state.data.get("count", 0))
            data = {**current.state.data, "count": count + 1}
            return SessionChange(
                state=attrs.evolve(current.state, data=data),
                turns=[new_turn(f"increment {count + 1}")],
            )

        results = await asyncio.gather(
            *(
                manager.retry_on_conflict(session.id, increment, attempts=10 * self.concurrency)
                for _ in range(self.concurrency)
            )
        )
        final = await manager.get_session(session.id)
        assert final.state.data["count"] == self.concurrency
        assert final.version == 1 + self.concurrency
        turns = await manager.get_turns(session.id)
        assert [t.content for t in turns] == [
            f"increment {n}" for n in range(1, self.concurrency + 1)
        ]
        assert sorted(r.session.version for r in results if r is not None) == list(
            range(2, self.concurrency + 2)
        )

    async def test_retry_gives_up_with_the_last_conflict(
        self, manager: SessionManager, session: Session
    ) -> None:
        calls = 0

        async def always_interfered(current: Session) -> SessionChange:
            nonlocal calls
            calls += 1
            await manager.add_template_sent(session.id, f"interference {calls}")
            return SessionChange(current_mode="collecting")

        with pytest.raises(VersionConflictError):
            await manager.retry_on_conflict(session.id, always_interfered, attempts=3)
        assert calls == 3
        final = await manager.get_session(session.id)
        assert final.current_mode == "greeting"
        assert len(final.state.templates_sent) == 3
