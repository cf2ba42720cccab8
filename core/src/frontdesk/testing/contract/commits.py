"""Storage contract clauses on atomic commits: everything in a change applies together or not at all."""

from __future__ import annotations

import asyncio

import pytest

from ...errors import (
    InvalidTransitionError,
    TurnNumberConflictError,
)
from ...models import Session, SessionState
from ...sessions import SessionChange, SessionManager
from ...storage.base import (
    AppendIntent,
    AppendTemplate,
    MergeCapturedData,
    MergeData,
)
from ._base import ContractBase, new_turn


class CommitContract(ContractBase):
    """Atomic commits: everything in a change applies together or not at all."""

    # -- atomic commits --------------------------------------------------------------------

    async def test_commit_applies_everything_together(
        self, manager: SessionManager, session: Session
    ) -> None:
        result = await manager.commit(
            session.id,
            SessionChange(
                current_mode="collecting",
                state=SessionState(captured_data={"product": "socks"}),
                turns=[new_turn("I want socks"), new_turn("Which size?", role="assistant")],
            ),
            expected_version=session.version,
        )
        assert result.session.version == 2
        assert result.session.current_mode == "collecting"
        assert result.session.state.captured_data == {"product": "socks"}
        assert [(t.turn_number, t.content) for t in result.turns] == [
            (1, "I want socks"),
            (2, "Which size?"),
        ]
        assert await manager.get_session(session.id) == result.session
        assert list(await manager.get_turns(session.id)) == list(result.turns)

    async def test_one_commit_records_a_whole_message(
        self, manager: SessionManager, session: Session
    ) -> None:
        """Turn, intent, captured data and mode in one call; no version, no conflict."""
        changes = [
            SessionChange(
                state_ops=[
                    AppendIntent(f"intent-{i}"),
                    MergeCapturedData({f"k{i}": str(i)}),
                    AppendTemplate(f"t{i}"),
                    MergeData({f"d{i}": i}),
                ],
                turns=[new_turn(f"message {i}"), new_turn(f"reply {i}", role="assistant")],
            )
            for i in range(self.concurrency)
        ]
        await asyncio.gather(
            *(manager.commit(session.id, change, expected_version=None) for change in changes)
        )
        final = await manager.get_session(session.id)
        assert final.version == 1 + self.concurrency
        assert len(final.state.intents_seen) == self.concurrency
        assert final.state.captured_data == {f"k{i}": str(i) for i in range(self.concurrency)}
        assert final.state.data == {f"d{i}": i for i in range(self.concurrency)}
        assert len(final.state.templates_sent) == self.concurrency
        turns = await manager.get_turns(session.id)
        assert [t.turn_number for t in turns] == list(range(1, 2 * self.concurrency + 1))
        for i in range(self.concurrency):  # a message's two turns stay together, in order
            index = [t.content for t in turns].index(f"message {i}")
            assert turns[index + 1].content == f"reply {i}"

    async def test_refused_commit_writes_nothing(
        self, manager: SessionManager, session: Session
    ) -> None:
        await manager.add_turn(session.id, role="user", content="first")
        before = await manager.get_session(session.id)
        with pytest.raises(TurnNumberConflictError):
            await manager.commit(
                session.id,
                SessionChange(
                    current_mode="collecting",
                    state=SessionState(captured_data={"lost": "yes"}),
                    turns=[new_turn("fine"), new_turn("taken", turn_number=1)],
                ),
                expected_version=before.version,
            )
        with pytest.raises(InvalidTransitionError):
            await manager.commit(
                session.id,
                SessionChange(current_mode="done", turns=[new_turn("lost")]),
                expected_version=before.version,
            )
        assert await manager.get_session(session.id) == before
        assert [t.content for t in await manager.get_turns(session.id)] == ["first"]
