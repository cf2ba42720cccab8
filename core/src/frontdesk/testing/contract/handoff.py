"""Storage contract clauses on hand-offs: a conversation handed to a person stays with them.

When the conversation has no active session and its newest session is `handed_off`,
`receive` records the message on that session (deduplicated as always), starts no run and
never refuses it as busy: the person answers it. Nothing treats it as waiting for the
agent. Setting the session `active` again gives the conversation back to the agent (only
the messages after that are its inputs); closing it makes the next message start a new
session.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from ...config import DoubleTexting
from ...errors import (
    RunSupersededError,
    SessionAlreadyActiveError,
    SessionClosedError,
    SessionNotFoundError,
)
from ...models import NewTurn, Role, Session, SessionStatus
from ...pipeline import Receipt
from ...sessions import SessionChange, SessionManager
from ._base import SHORT_RUNS_AGENT, ContractBase, pipeline_agent
from .pipeline import MERGE, message, reply

HANDOFF = SessionChange(
    status=SessionStatus.HANDED_OFF,
    turns=[NewTurn(role=Role.ASSISTANT, content="Te paso con una persona.")],
)


async def _handed_off(manager: SessionManager, agent_id: str, text: str = "hola") -> Session:
    """A conversation whose first run handed it off, as the engine does."""
    first = await manager.receive(message(agent_id, text))
    assert first.run is not None
    done = await manager.complete(first.run, HANDOFF)
    assert done.next_run is None
    assert done.session.status is SessionStatus.HANDED_OFF
    return done.session


class HandoffContract(ContractBase):
    """receive after a hand-off, handing back, closing."""

    @pytest.mark.parametrize("policy", list(DoubleTexting), ids=str)
    async def test_a_message_after_a_handoff_is_held_for_the_person(
        self, manager: SessionManager, policy: DoubleTexting
    ) -> None:
        agent = pipeline_agent(policy)
        session = await _handed_off(manager, agent)
        held = [await manager.receive(message(agent, text)) for text in ("¿hola?", "¿hay alguien?")]
        for number, receipt in enumerate(held, start=3):
            assert not receipt.duplicate
            assert receipt.run is None  # no run, and never busy (not even under reject)
            assert receipt.session.id == session.id
            assert receipt.session.status is SessionStatus.HANDED_OFF
            assert receipt.turn.turn_number == number
            assert receipt.turn.message_id == f"wamid.{receipt.turn.content}"
        assert held[1].session.version == session.version + 2  # one write per message
        stored = await manager.get_session(session.id)
        assert stored == held[1].session
        turns = await manager.get_turns(session.id)
        assert [(t.role, t.content) for t in turns[2:]] == [
            (Role.USER, "¿hola?"),
            (Role.USER, "¿hay alguien?"),
        ]
        assert await manager.get_session_by_conversation("wa:1", agent) is None
        page = await manager.list_sessions(conversation_id="wa:1")
        assert [item.id for item in page.items] == [session.id]  # no new session

    async def test_a_redelivery_to_a_handed_off_conversation_is_a_duplicate(
        self, manager: SessionManager
    ) -> None:
        session = await _handed_off(manager, MERGE)
        first = await manager.receive(message(MERGE, "¿hola?"), idempotency_key="delivery-1")
        again = await manager.receive(message(MERGE, "¿hola?"))
        assert again.duplicate
        assert again.run is None
        assert again.turn == first.turn
        assert again.session.version == first.session.version
        retried = await manager.receive(message(MERGE, "¿hola?"), idempotency_key="delivery-1")
        assert retried == first  # the retry of that receive: its original receipt
        assert await manager.get_turn_count(session.id) == 3
        assert (await manager.get_session(session.id)).version == first.session.version

    async def test_the_same_message_at_once_to_a_handed_off_conversation_is_stored_once(
        self, manager: SessionManager
    ) -> None:
        session = await _handed_off(manager, MERGE)
        receipts: list[Receipt] = await asyncio.gather(
            *(manager.receive(message(MERGE, "¿hola?")) for _ in range(3))
        )
        assert sorted(r.duplicate for r in receipts) == [False, True, True]
        assert all(r.run is None and r.session.id == session.id for r in receipts)
        assert await manager.get_turn_count(session.id) == 3
        assert (await manager.get_session(session.id)).version == session.version + 1

    async def test_handing_back_gives_the_conversation_to_the_agent(
        self, manager: SessionManager
    ) -> None:
        session = await _handed_off(manager, MERGE)
        await manager.receive(message(MERGE, "¿hola?"))
        current = await manager.get_session(session.id)
        back = await manager.update_session_with_version(
            session.id, expected_version=current.version, status="active"
        )
        assert back.status is SessionStatus.ACTIVE
        assert back.version == current.version + 1
        assert await manager.get_session_by_conversation("wa:1", MERGE) == back
        receipt = await manager.receive(message(MERGE, "gracias"))
        assert receipt.session.id == session.id
        run = receipt.run
        assert run is not None
        # Only the new message is the agent's: what the person handled is history.
        assert [t.content for t in run.inputs] == ["gracias"]
        assert [t.content for t in run.history] == ["hola", "Te paso con una persona.", "¿hola?"]
        done = await manager.complete(run, reply(run))
        assert done.next_run is None
        assert done.session.status is SessionStatus.ACTIVE

    async def test_handing_back_may_record_what_the_person_said(
        self, manager: SessionManager
    ) -> None:
        session = await _handed_off(manager, MERGE)
        await manager.receive(message(MERGE, "¿hola?"))
        current = await manager.get_session(session.id)
        result = await manager.commit(
            session.id,
            SessionChange(
                status="active", turns=[NewTurn(role="assistant", content="Soy Lucía, dime.")]
            ),
            expected_version=current.version,
        )
        assert result.session.status is SessionStatus.ACTIVE
        assert [t.turn_number for t in result.turns] == [4]

    async def test_after_closing_a_handed_off_session_the_next_message_starts_a_new_one(
        self, manager: SessionManager
    ) -> None:
        session = await _handed_off(manager, MERGE)
        closed = await manager.close_session(session.id, expected_version=session.version)
        assert closed.status is SessionStatus.CLOSED
        receipt = await manager.receive(message(MERGE, "otra vez"))
        assert receipt.session.id != session.id
        assert receipt.session.status is SessionStatus.ACTIVE
        assert receipt.run is not None
        assert [t.content for t in receipt.run.inputs] == ["otra vez"]
        # The old session's messages are still the conversation's: a redelivery is a duplicate.
        assert (await manager.receive(message(MERGE, "hola"))).duplicate

    async def test_only_the_newest_session_holds_messages(self, manager: SessionManager) -> None:
        old = await _handed_off(manager, MERGE)
        newer = await manager.create_session(
            agent_id=MERGE, conversation_id="wa:1", contact_id="contact-1"
        )
        await manager.close_session(newer.id, expected_version=newer.version)
        receipt = await manager.receive(message(MERGE, "¿hola?"))
        assert receipt.session.id not in (old.id, newer.id)
        assert receipt.run is not None

    async def test_handing_back_while_another_session_is_active_is_refused(
        self, manager: SessionManager
    ) -> None:
        session = await _handed_off(manager, MERGE)
        other = await manager.create_session(
            agent_id=MERGE, conversation_id="wa:1", contact_id="contact-1"
        )
        with pytest.raises(SessionAlreadyActiveError) as caught:
            await manager.update_session_with_version(
                session.id, expected_version=session.version, status="active"
            )
        assert caught.value.existing_session_id == other.id
        assert (caught.value.conversation_id, caught.value.agent_id) == ("wa:1", MERGE)
        assert await manager.get_session(session.id) == session
        assert await manager.get_session_by_conversation("wa:1", MERGE) == other

    async def test_a_handed_off_session_takes_only_a_status_change(
        self, manager: SessionManager
    ) -> None:
        session = await _handed_off(manager, MERGE)
        for call in (
            lambda: manager.add_turn(session.id, role="user", content="late"),
            lambda: manager.add_intent_seen(session.id, "late"),
            lambda: manager.update_session_with_version(
                session.id, expected_version=session.version, current_mode="collecting"
            ),
            lambda: manager.handoff_session(session.id, expected_version=session.version),
        ):
            with pytest.raises(SessionClosedError) as caught:
                await call()
            assert caught.value.status == SessionStatus.HANDED_OFF
            assert "set status 'active' to hand it back" in str(caught.value)
        assert await manager.get_session(session.id) == session
        closed = await manager.close_session(session.id, expected_version=session.version)
        with pytest.raises(SessionClosedError):
            await manager.update_session_with_version(
                session.id, expected_version=closed.version, status="active"
            )

    async def test_messages_waiting_at_the_handoff_go_to_the_person(
        self, manager: SessionManager
    ) -> None:
        first = await manager.receive(message(MERGE, "hola"))
        waiting = await manager.receive(message(MERGE, "¿sigues?"))
        assert waiting.run is None
        assert first.run is not None
        done = await manager.complete(first.run, HANDOFF)
        assert done.next_run is None  # the waiting message is not the agent's any more
        back = await manager.update_session_with_version(
            first.session.id, expected_version=done.session.version, status="active"
        )
        receipt = await manager.receive(message(MERGE, "gracias"))
        assert receipt.session.id == back.id
        assert receipt.run is not None
        assert [t.content for t in receipt.run.inputs] == ["gracias"]

    async def test_a_handoff_during_a_run_supersedes_it(self, manager: SessionManager) -> None:
        receipt = await manager.receive(message(MERGE, "hola"))
        assert receipt.run is not None
        handed = await manager.handoff_session(
            receipt.session.id, expected_version=receipt.session.version
        )
        with pytest.raises(RunSupersededError) as caught:
            await manager.complete(receipt.run, reply(receipt.run))
        assert caught.value.ended is True
        assert "handed off or closed" in str(caught.value)
        assert await manager.get_session(receipt.session.id) == handed
        held = await manager.receive(message(MERGE, "¿hola?"))
        assert held.run is None
        assert held.session.id == receipt.session.id

    async def test_held_messages_are_not_waiting_for_a_run(self, manager: SessionManager) -> None:
        session = await _handed_off(manager, SHORT_RUNS_AGENT)
        await manager.receive(message(SHORT_RUNS_AGENT, "¿hola?"))
        await asyncio.sleep(self.run_timeout * 1.5)  # any run would have expired by now
        assert await manager.resume_abandoned() == []
        # Nothing waits for an answer from the agent: retention may delete the session.
        assert await manager.purge(inactive_for=timedelta(0)) == 1
        assert (await manager.list_sessions()).items == ()
        with pytest.raises(SessionNotFoundError):
            await manager.get_session(session.id)
