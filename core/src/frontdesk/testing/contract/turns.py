"""Storage contract clauses on turns: gapless numbers, round-tripped fields, last activity."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ...errors import (
    ConflictError,
    TurnNumberConflictError,
)
from ...models import Role, Session, ToolCall
from ...sessions import SessionChange, SessionManager
from ..agents import TEST_AGENT_ID
from ._base import UNICODE, ContractBase, new_turn


class TurnContract(ContractBase):
    """Turns: gapless numbers, round-tripped fields, last activity."""

    # -- turns -----------------------------------------------------------------------------

    async def test_turns_are_gapless_under_concurrency(
        self, manager: SessionManager, session: Session
    ) -> None:
        turns = await asyncio.gather(
            *(
                manager.add_turn(session.id, role="user", content=f"message {i}")
                for i in range(self.concurrency)
            )
        )
        assert sorted(t.turn_number for t in turns) == list(range(1, self.concurrency + 1))
        stored = await manager.get_turns(session.id)
        assert [t.turn_number for t in stored] == list(range(1, self.concurrency + 1))
        assert sorted(t.content for t in stored) == sorted(
            f"message {i}" for i in range(self.concurrency)
        )
        assert await manager.get_turn_count(session.id) == self.concurrency

    async def test_turn_fields_round_trip(self, manager: SessionManager, session: Session) -> None:
        before = datetime.now(UTC) - timedelta(seconds=5)
        call = ToolCall(name="search_catalog", input={"q": UNICODE}, output=[{"sku": "A1"}])
        turn = await manager.add_turn(
            session.id,
            role="assistant",
            content=UNICODE,
            intent_detected="product_question",
            confidence=0.875,
            tools_called=[call],
            tokens_used=321,
        )
        assert turn.session_id == session.id
        assert turn.turn_number == 1
        assert turn.role is Role.ASSISTANT
        assert (turn.content, turn.intent_detected, turn.confidence) == (
            UNICODE,
            "product_question",
            0.875,
        )
        assert turn.tools_called == (call,)
        assert turn.tokens_used == 321
        assert turn.created_at.utcoffset() == timedelta(0)
        assert before <= turn.created_at <= datetime.now(UTC) + timedelta(seconds=5)
        assert await manager.get_turns(session.id) == [turn]

    async def test_explicit_turn_numbers(self, manager: SessionManager, session: Session) -> None:
        first = await manager.add_turn(session.id, role="user", content="one", turn_number=1)
        assert first.turn_number == 1
        with pytest.raises(TurnNumberConflictError) as taken:
            await manager.add_turn(session.id, role="user", content="again", turn_number=1)
        assert (taken.value.turn_number, taken.value.next_turn_number) == (1, 2)
        with pytest.raises(TurnNumberConflictError) as gap:
            await manager.add_turn(session.id, role="user", content="gap", turn_number=5)
        assert gap.value.next_turn_number == 2
        assert isinstance(gap.value, ConflictError)
        assert [t.content for t in await manager.get_turns(session.id)] == ["one"]
        assert (await manager.get_session(session.id)).version == 2

    async def test_explicit_turn_numbers_in_one_commit(
        self, manager: SessionManager, session: Session
    ) -> None:
        """Each turn asked for is checked against the next number plus its place in the commit."""
        first = await manager.commit(
            session.id,
            SessionChange(turns=[new_turn("one", turn_number=1), new_turn("two", turn_number=2)]),
            expected_version=None,
        )
        assert [t.turn_number for t in first.turns] == [1, 2]
        mixed = await manager.commit(
            session.id,
            SessionChange(turns=[new_turn("three"), new_turn("four", turn_number=4)]),
            expected_version=None,
        )
        assert [t.turn_number for t in mixed.turns] == [3, 4]
        before = await manager.get_session(session.id)
        for numbers, refused, expected_next in (([5, 5], 5, 6), ([4, 5], 4, 5), ([5, 7], 7, 6)):
            with pytest.raises(TurnNumberConflictError) as excinfo:
                await manager.commit(
                    session.id,
                    SessionChange(turns=[new_turn(f"n{n}", turn_number=n) for n in numbers]),
                    expected_version=None,
                )
            assert (excinfo.value.turn_number, excinfo.value.next_turn_number) == (
                refused,
                expected_next,
            ), numbers
        assert await manager.get_session(session.id) == before
        assert [t.content for t in await manager.get_turns(session.id)] == [
            "one",
            "two",
            "three",
            "four",
        ]
        fresh = await manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="conv-fresh", contact_id="contact-1"
        )
        with pytest.raises(TurnNumberConflictError):
            await manager.commit(
                fresh.id,
                SessionChange(turns=[new_turn("a", turn_number=1), new_turn("b", turn_number=1)]),
                expected_version=None,
            )
        assert await manager.get_turn_count(fresh.id) == 0

    async def test_last_turns_and_stats(self, manager: SessionManager, session: Session) -> None:
        for i in range(5):
            await manager.add_turn(session.id, role="user", content=f"m{i}", tokens_used=i * 10)
        assert [t.content for t in await manager.get_turns(session.id, limit=2)] == ["m3", "m4"]
        assert [t.content for t in await manager.get_turns(session.id, limit=10)] == [
            f"m{i}" for i in range(5)
        ]
        assert await manager.get_turns(session.id, limit=0) == []
        assert await manager.get_total_tokens_used(session.id) == 100
        assert await manager.get_turn_count(session.id) == 5

    async def test_new_session_has_no_turns(
        self, manager: SessionManager, session: Session
    ) -> None:
        assert await manager.get_turns(session.id) == []
        assert await manager.get_turn_count(session.id) == 0
        assert await manager.get_total_tokens_used(session.id) == 0

    async def test_turns_move_last_activity(
        self, manager: SessionManager, session: Session
    ) -> None:
        turn = await manager.add_turn(session.id, role="user", content="hi")
        after = await manager.get_session(session.id)
        assert after.last_activity_at == turn.created_at
        assert after.updated_at >= session.updated_at
        assert after.created_at == session.created_at
        explicit = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        updated = await manager.update_session_with_version(
            session.id, expected_version=after.version, last_activity_at=explicit
        )
        assert updated.last_activity_at == explicit

    async def test_timestamps_follow_the_order_of_writes(
        self, manager: SessionManager, session: Session
    ) -> None:
        await asyncio.gather(
            *(
                manager.add_turn(session.id, role="user", content=f"m{i}")
                for i in range(self.concurrency)
            ),
            *(manager.add_intent_seen(session.id, f"i{i}") for i in range(self.concurrency)),
        )
        final = await manager.get_session(session.id)
        turns = await manager.get_turns(session.id)
        stamps = [t.created_at for t in turns]
        assert stamps == sorted(stamps), "turn times go backwards as numbers go up"
        seen = [i.seen_at for i in final.state.intents_seen]
        assert seen == sorted(seen), "intent times go backwards as orders go up"
        assert final.last_activity_at == stamps[-1]
        assert final.updated_at >= max(stamps[-1], seen[-1])
        assert final.created_at <= stamps[0]
