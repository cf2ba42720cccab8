"""Storage contract clauses on the message pipeline and idempotent writes.

Each inbound message is stored once per conversation whatever the redeliveries; at most
one run holds a conversation, fenced by a token; every message is answered exactly once
(merge, enqueue, interrupt) or refused (reject); a write repeated with its idempotency key
applies once, so a lost answer retried by the manager is exactly-once. Concurrency tests
check afterwards: every message stored once, answered once or refused, turns gapless,
version = 1 + writes.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import attrs
import pytest

from ...config import DoubleTexting
from ...errors import (
    ConversationBusyError,
    RunSupersededError,
    StorageUnavailableError,
    VersionConflictError,
)
from ...models import NewTurn, Role, Session, Turn
from ...pipeline import Completion, InboundMessage, Receipt, Run
from ...registry import AgentRegistry
from ...sessions import SessionChange, SessionManager
from ...storage.base import StorageBackend
from ..agents import TEST_AGENT_ID, make_test_agent
from ..instrumented import InstrumentedStorage
from ._base import SHORT_RUNS_AGENT, ContractBase, pipeline_agent

MERGE = pipeline_agent(DoubleTexting.MERGE)
ENQUEUE = pipeline_agent(DoubleTexting.ENQUEUE)
INTERRUPT = pipeline_agent(DoubleTexting.INTERRUPT)
REJECT = pipeline_agent(DoubleTexting.REJECT)


def message(
    agent_id: str, text: str, *, conversation: str = "wa:1", mid: str | None = None
) -> InboundMessage:
    return InboundMessage(
        agent_id=agent_id,
        conversation_id=conversation,
        contact_id="contact-1",
        message_id=mid if mid is not None else f"wamid.{text}",
        content=text,
    )


def reply(run: Run) -> SessionChange:
    numbers = ",".join(str(turn.turn_number) for turn in run.inputs)
    return SessionChange(turns=[NewTurn(role=Role.ASSISTANT, content=f"answer to {numbers}")])


def numbers(turns: Sequence[Turn]) -> list[int]:
    return [turn.turn_number for turn in turns]


@attrs.define
class _Tally:
    """What the workers of a burst saw: the ground truth the checks compare storage with."""

    stored: list[str] = attrs.Factory(list)  # message ids recorded (not duplicates)
    refused: list[str] = attrs.Factory(list)  # ConversationBusyError
    answered: list[int] = attrs.Factory(list)  # user turn numbers of completed runs
    inputs: list[tuple[int, ...]] = attrs.Factory(list)
    writes: int = 0
    superseded: int = 0


async def _work(manager: SessionManager, run: Run | None, tally: _Tally) -> None:
    """Answer `run` and every run handed over after it, as a worker does."""
    while run is not None:
        try:
            done = await manager.complete(run, reply(run))
        except RunSupersededError:
            tally.superseded += 1
            return
        tally.writes += 1
        tally.answered.extend(numbers(run.inputs))
        tally.inputs.append(tuple(numbers(run.inputs)))
        run = done.next_run


async def _deliver(manager: SessionManager, inbound: InboundMessage, tally: _Tally) -> None:
    try:
        receipt = await manager.receive(inbound)
    except ConversationBusyError:
        tally.refused.append(inbound.message_id)
        return
    if not receipt.duplicate:
        tally.stored.append(inbound.message_id)
        tally.writes += 1
    await _work(manager, receipt.run, tally)


class PipelineContract(ContractBase):
    """receive / complete / extend / resume_abandoned, and idempotency keys."""

    burst: int = 16
    """How many distinct messages arrive at once on one conversation in the burst tests."""

    # -- receive ---------------------------------------------------------------------------

    async def test_receive_records_the_message_and_starts_a_run(
        self, manager: SessionManager
    ) -> None:
        receipt = await manager.receive(message(MERGE, "hola"))
        assert not receipt.duplicate
        assert receipt.turn.role == Role.USER
        assert receipt.turn.content == "hola"
        assert receipt.turn.message_id == "wamid.hola"
        assert receipt.turn.turn_number == 1
        assert receipt.session.version == 2  # created at 1, the message is one write
        assert receipt.session.agent_id == MERGE
        run = receipt.run
        assert run is not None
        assert run.token >= 1
        assert run.inputs == (receipt.turn,)
        assert run.history == ()
        assert run.session == receipt.session
        assert run.expires_at > receipt.turn.created_at
        assert list(await manager.get_turns(receipt.session.id)) == [receipt.turn]

    async def test_a_session_made_by_receive_records_the_agent_version(
        self, storage: StorageBackend, workspace_id: str
    ) -> None:
        registry = AgentRegistry()
        registry.register(make_test_agent(version="2.1.0"))
        manager = SessionManager(storage, workspace_id=workspace_id, registry=registry)
        receipt = await manager.receive(message(TEST_AGENT_ID, "hola"))
        assert receipt.session.agent_version == "2.1.0"
        stored = await manager.get_session(receipt.session.id)
        assert stored.agent_version == "2.1.0"

    async def test_turns_written_without_a_message_have_no_message_id(
        self, manager: SessionManager, session: Session
    ) -> None:
        turn = await manager.add_turn(session.id, role="user", content="hi")
        assert turn.message_id is None
        assert (await manager.get_turns(session.id))[0].message_id is None

    async def test_a_redelivery_is_a_duplicate_and_writes_nothing(
        self, manager: SessionManager
    ) -> None:
        first = await manager.receive(message(MERGE, "hola"))
        again = await manager.receive(message(MERGE, "hola"))
        assert again.duplicate
        assert again.run is None
        assert again.turn == first.turn
        assert again.session.version == first.session.version
        assert await manager.get_turn_count(first.session.id) == 1

    async def test_a_redelivery_after_the_answer_is_still_a_duplicate(
        self, manager: SessionManager
    ) -> None:
        first = await manager.receive(message(MERGE, "hola"))
        assert first.run is not None
        done = await manager.complete(first.run, reply(first.run))
        assert done.next_run is None
        again = await manager.receive(message(MERGE, "hola"))
        assert again.duplicate
        assert again.run is None
        assert again.turn == first.turn
        assert await manager.get_turn_count(first.session.id) == 2
        assert (await manager.get_session(first.session.id)).version == done.session.version

    async def test_the_same_message_delivered_three_times_at_once_is_stored_once(
        self, manager: SessionManager
    ) -> None:
        receipts: list[Receipt] = await asyncio.gather(
            *(manager.receive(message(MERGE, "hola")) for _ in range(3))
        )
        assert sorted(r.duplicate for r in receipts) == [False, True, True]
        assert len({r.turn for r in receipts}) == 1
        assert sum(r.run is not None for r in receipts) == 1
        session = await manager.get_session(receipts[0].session.id)
        assert session.version == 2
        assert await manager.get_turn_count(session.id) == 1

    async def test_message_ids_are_per_conversation_and_workspace(
        self, manager: SessionManager, other_manager: SessionManager
    ) -> None:
        first = await manager.receive(message(MERGE, "hola", mid="m-1"))
        other_conversation = await manager.receive(
            message(MERGE, "hola", mid="m-1", conversation="wa:2")
        )
        other_workspace = await other_manager.receive(message(MERGE, "hola", mid="m-1"))
        for receipt in (other_conversation, other_workspace):
            assert not receipt.duplicate
            assert receipt.run is not None
            assert receipt.session.id != first.session.id

    async def test_a_closed_sessions_messages_are_still_duplicates(
        self, manager: SessionManager
    ) -> None:
        first = await manager.receive(message(MERGE, "hola"))
        assert first.run is not None
        await manager.complete(first.run, SessionChange(status="closed"))
        again = await manager.receive(message(MERGE, "hola"))
        assert again.duplicate
        assert again.turn == first.turn
        fresh = await manager.receive(message(MERGE, "otra vez"))
        assert not fresh.duplicate
        assert fresh.session.id != first.session.id

    # -- complete --------------------------------------------------------------------------

    async def test_complete_records_the_reply_and_ends_the_run(
        self, manager: SessionManager
    ) -> None:
        receipt = await manager.receive(message(MERGE, "hola"))
        assert receipt.run is not None
        done = await manager.complete(
            receipt.run,
            SessionChange(
                current_mode="collecting",
                turns=[NewTurn(role="assistant", content="¡Hola!", tokens_used=7)],
            ),
        )
        assert isinstance(done, Completion)
        assert done.next_run is None
        assert done.session.version == receipt.session.version + 1
        assert done.session.current_mode == "collecting"
        assert [(t.turn_number, t.content) for t in done.turns] == [(2, "¡Hola!")]
        assert await manager.get_total_tokens_used(receipt.session.id) == 7
        # Nothing holds the conversation now: the next message runs at once.
        nxt = await manager.receive(message(MERGE, "adiós"))
        assert nxt.run is not None
        assert nxt.run.token > receipt.run.token
        assert numbers(nxt.run.history) == [1, 2]

    async def test_complete_records_the_intent_on_every_input(
        self, manager: SessionManager
    ) -> None:
        first = await manager.receive(message(MERGE, "hola"))
        waiting = [await manager.receive(message(MERGE, w)) for w in ("quiero", "zapatos")]
        assert first.run is not None
        done = await manager.complete(
            first.run,
            attrs.evolve(reply(first.run), inputs_intent="greeting", inputs_confidence=0.9),
        )
        nxt = done.next_run
        assert nxt is not None
        assert [(t.intent_detected, t.confidence) for t in nxt.inputs] == [(None, None)] * 2
        await manager.complete(
            nxt, attrs.evolve(reply(nxt), inputs_intent="wants_to_buy", inputs_confidence=0.75)
        )
        turns = await manager.get_turns(first.session.id)
        assert [(t.role, t.intent_detected, t.confidence) for t in turns] == [
            (Role.USER, "greeting", 0.9),
            (Role.USER, "wants_to_buy", 0.75),
            (Role.USER, "wants_to_buy", 0.75),
            (Role.ASSISTANT, None, None),
            (Role.ASSISTANT, None, None),
        ]
        assert [t.message_id for t in turns[:3]] == [
            first.turn.message_id,
            *(r.turn.message_id for r in waiting),
        ]

    async def test_complete_is_idempotent_per_run(self, manager: SessionManager) -> None:
        receipt = await manager.receive(message(MERGE, "hola"))
        assert receipt.run is not None
        first = await manager.complete(receipt.run, reply(receipt.run))
        again = await manager.complete(receipt.run, reply(receipt.run))
        assert again == first
        assert await manager.get_turn_count(receipt.session.id) == 2
        assert (await manager.get_session(receipt.session.id)).version == first.session.version

    async def test_a_refused_complete_writes_nothing(self, manager: SessionManager) -> None:
        receipt = await manager.receive(message(MERGE, "hola"))
        assert receipt.run is not None
        with pytest.raises(VersionConflictError):
            await manager.complete(
                receipt.run, reply(receipt.run), expected_version=receipt.session.version + 5
            )
        assert await manager.get_turn_count(receipt.session.id) == 1
        done = await manager.complete(receipt.run, reply(receipt.run))  # the run still holds
        assert done.session.version == receipt.session.version + 1

    # -- double-texting policies -----------------------------------------------------------

    async def test_merge_hands_every_waiting_message_to_one_next_run(
        self, manager: SessionManager
    ) -> None:
        first = await manager.receive(message(MERGE, "hola"))
        waiting = [await manager.receive(message(MERGE, w)) for w in ("quiero", "zapatos")]
        assert all(r.run is None and not r.duplicate for r in waiting)
        assert first.run is not None
        done = await manager.complete(first.run, reply(first.run))
        nxt = done.next_run
        assert nxt is not None
        assert nxt.token > first.run.token
        assert [t.content for t in nxt.inputs] == ["quiero", "zapatos"]
        assert numbers(nxt.history) == [1, 4]  # the first message and its answer
        assert nxt.session == done.session
        assert (await manager.complete(nxt, reply(nxt))).next_run is None

    async def test_enqueue_makes_each_waiting_message_its_own_run(
        self, manager: SessionManager
    ) -> None:
        first = await manager.receive(message(ENQUEUE, "uno"))
        for word in ("dos", "tres"):
            assert (await manager.receive(message(ENQUEUE, word))).run is None
        run = first.run
        seen = []
        while run is not None:
            seen.append([t.content for t in run.inputs])
            assert "tres" not in [t.content for t in run.history] or seen[-1] == ["tres"]
            run = (await manager.complete(run, reply(run))).next_run
        assert seen == [["uno"], ["dos"], ["tres"]]

    async def test_interrupt_supersedes_the_run_in_flight(self, manager: SessionManager) -> None:
        first = await manager.receive(message(INTERRUPT, "hola"))
        second = await manager.receive(message(INTERRUPT, "espera"))
        assert first.run is not None
        assert second.run is not None
        assert second.run.token > first.run.token
        assert [t.content for t in second.run.inputs] == ["hola", "espera"]
        version = (await manager.get_session(first.session.id)).version
        with pytest.raises(RunSupersededError) as caught:
            await manager.complete(first.run, reply(first.run))
        assert caught.value.token == first.run.token
        assert (await manager.get_session(first.session.id)).version == version
        assert await manager.get_turn_count(first.session.id) == 2
        done = await manager.complete(second.run, reply(second.run))
        assert done.next_run is None

    async def test_reject_refuses_a_message_during_a_run_and_records_nothing(
        self, manager: SessionManager
    ) -> None:
        first = await manager.receive(message(REJECT, "hola"))
        with pytest.raises(ConversationBusyError) as caught:
            await manager.receive(message(REJECT, "otra"))
        assert caught.value.session_id == first.session.id
        session = await manager.get_session(first.session.id)
        assert session.version == first.session.version
        assert await manager.get_turn_count(session.id) == 1
        # A redelivery of the recorded message is a duplicate, not busy.
        assert (await manager.receive(message(REJECT, "hola"))).duplicate
        assert first.run is not None
        await manager.complete(first.run, reply(first.run))
        later = await manager.receive(message(REJECT, "otra"))
        assert later.run is not None

    @pytest.mark.parametrize("policy", list(DoubleTexting), ids=str)
    async def test_a_burst_is_answered_exactly_once(
        self, manager: SessionManager, policy: DoubleTexting
    ) -> None:
        await self._burst(manager, policy)

    @pytest.mark.parametrize("policy", list(DoubleTexting), ids=str)
    async def test_a_burst_with_lost_answers_is_answered_exactly_once(
        self,
        storage: StorageBackend,
        contract_registry: AgentRegistry,
        workspace_id: str,
        policy: DoubleTexting,
    ) -> None:
        faulty = InstrumentedStorage(storage)
        manager = SessionManager(faulty, workspace_id=workspace_id, registry=contract_registry)
        # At most two faults in a row per operation: the manager sends a write 3 times.
        for operation in ("receive", "complete"):
            faulty.fail_next(operation, mode="lose_answer")
            faulty.fail_next(operation, mode="before_apply")
        await self._burst(manager, policy)
        assert faulty.faults_injected >= 2

    async def _burst(self, manager: SessionManager, policy: DoubleTexting) -> None:
        agent = pipeline_agent(policy)
        tally = _Tally()
        inbound = [message(agent, f"m{i:02d}") for i in range(self.burst)]
        await asyncio.gather(*(_deliver(manager, m, tally) for m in inbound))

        session = await manager.get_session_by_conversation("wa:1", agent)
        assert session is not None
        turns = list(await manager.get_turns(session.id))
        assert numbers(turns) == list(range(1, len(turns) + 1)), "turns have gaps"
        user = [t for t in turns if t.role == Role.USER]
        assert sorted(t.message_id or "" for t in user) == sorted(tally.stored)
        assert len(tally.stored) + len(tally.refused) == self.burst
        assert set(tally.stored).isdisjoint(tally.refused)
        assert sorted(tally.answered) == numbers(user), "not answered exactly once"
        assert session.version == 1 + tally.writes
        if policy is not DoubleTexting.REJECT:
            assert not tally.refused
        if policy is DoubleTexting.ENQUEUE:
            assert all(len(inputs) == 1 for inputs in tally.inputs)
        if policy is not DoubleTexting.INTERRUPT:
            assert tally.superseded == 0
        # Nothing is left holding the conversation: the next message runs at once.
        after = await manager.receive(message(agent, "after"))
        assert after.run is not None
        assert numbers(after.run.inputs) == [len(turns) + 1]

    # -- abandoned runs --------------------------------------------------------------------

    async def _expire(self) -> None:
        await asyncio.sleep(self.run_timeout * 1.5)

    async def test_an_abandoned_run_is_taken_over_by_the_next_message(
        self, manager: SessionManager
    ) -> None:
        crashed = await manager.receive(message(SHORT_RUNS_AGENT, "hola"))
        assert crashed.run is not None
        await self._expire()
        receipt = await manager.receive(message(SHORT_RUNS_AGENT, "¿hay alguien?"))
        run = receipt.run
        assert run is not None
        assert run.token > crashed.run.token
        assert [t.content for t in run.inputs] == ["hola", "¿hay alguien?"]
        with pytest.raises(RunSupersededError):
            await manager.complete(crashed.run, reply(crashed.run))
        assert await manager.get_turn_count(receipt.session.id) == 2
        done = await manager.complete(run, reply(run))
        assert done.next_run is None

    async def test_a_late_complete_of_an_expired_run_nobody_took_over_applies(
        self, manager: SessionManager
    ) -> None:
        slow = await manager.receive(message(SHORT_RUNS_AGENT, "hola"))
        assert slow.run is not None
        await self._expire()
        done = await manager.complete(slow.run, reply(slow.run))
        assert done.next_run is None
        assert await manager.get_turn_count(slow.session.id) == 2

    async def test_resume_abandoned_claims_expired_runs_with_their_messages(
        self, manager: SessionManager, other_manager: SessionManager
    ) -> None:
        crashed = await manager.receive(message(SHORT_RUNS_AGENT, "hola"))
        waiting = await manager.receive(message(SHORT_RUNS_AGENT, "¿sigues?"))
        assert waiting.run is None
        answered = await manager.receive(message(SHORT_RUNS_AGENT, "x", conversation="wa:2"))
        assert answered.run is not None
        await manager.complete(answered.run, reply(answered.run))
        elsewhere = await other_manager.receive(message(SHORT_RUNS_AGENT, "hola"))
        assert elsewhere.run is not None
        assert await manager.resume_abandoned() == []  # nothing has expired yet
        await self._expire()
        runs = await manager.resume_abandoned(limit=10)
        assert [r.session.id for r in runs] == [crashed.session.id]
        run = runs[0]
        assert crashed.run is not None
        assert run.token > crashed.run.token
        assert [t.content for t in run.inputs] == ["hola", "¿sigues?"]
        assert await manager.resume_abandoned() == []  # claimed: live again
        with pytest.raises(RunSupersededError):
            await manager.complete(crashed.run, reply(crashed.run))
        assert (await manager.complete(run, reply(run))).next_run is None

    async def test_extend_keeps_a_run_from_expiring(self, manager: SessionManager) -> None:
        receipt = await manager.receive(message(SHORT_RUNS_AGENT, "hola"))
        run = receipt.run
        assert run is not None
        version = receipt.session.version
        for _ in range(3):
            await asyncio.sleep(self.run_timeout / 2)
            extended = await manager.extend(run)
            assert extended.expires_at >= run.expires_at
            assert extended.token == run.token
            run = extended
        waiting = await manager.receive(message(SHORT_RUNS_AGENT, "¿y?"))
        assert waiting.run is None  # the extended run still holds the conversation
        assert (await manager.get_session(receipt.session.id)).version == version + 1
        done = await manager.complete(run, reply(run))
        assert done.next_run is not None

    async def test_extend_refuses_a_superseded_run(self, manager: SessionManager) -> None:
        first = await manager.receive(message(INTERRUPT, "hola"))
        second = await manager.receive(message(INTERRUPT, "espera"))
        assert first.run is not None
        assert second.run is not None
        with pytest.raises(RunSupersededError) as caught:
            await manager.extend(first.run)
        error = caught.value
        assert (error.token, error.current_token) == (first.run.token, second.run.token)
        assert error.ended is False
        assert f"run {second.run.token} started after it" in str(error)

    async def test_a_completed_run_is_refused_as_completed_not_taken_over(
        self, manager: SessionManager
    ) -> None:
        """After `complete`, the run is refused as completed: nothing took it over."""
        receipt = await manager.receive(message(MERGE, "hola"))
        run = receipt.run
        assert run is not None
        await manager.complete(run, reply(run))
        with pytest.raises(RunSupersededError) as extended:
            await manager.extend(run)
        with pytest.raises(RunSupersededError) as completed:
            await manager.complete(run, reply(run), idempotency_key="another-key")
        for error in (extended.value, completed.value):
            assert (error.token, error.current_token) == (run.token, run.token)
            assert error.ended is True
            assert error.session_id == receipt.session.id
            assert "has ended" in str(error)
            assert "took" not in str(error)

    async def test_erasing_the_contact_removes_what_the_pipeline_stored(
        self, manager: SessionManager
    ) -> None:
        """Message ids and idempotency records go with the sessions: nothing answers for them."""
        first = await manager.receive(message(MERGE, "hola"), idempotency_key="delivery-1")
        assert first.run is not None
        await manager.complete(first.run, reply(first.run))
        report = await manager.erase_contact("contact-1")
        assert report.sessions == 1
        again = await manager.receive(message(MERGE, "hola"), idempotency_key="delivery-1")
        assert not again.duplicate  # neither the message id nor the key is remembered
        assert again.session.id != first.session.id
        assert again.turn.turn_number == 1

    # -- idempotent writes -----------------------------------------------------------------

    async def test_a_write_repeated_with_its_key_applies_once(
        self, manager: SessionManager, session: Session
    ) -> None:
        first = await manager.add_turn(
            session.id, role="user", content="hola", idempotency_key="k1"
        )
        again = await manager.add_turn(
            session.id, role="user", content="hola", idempotency_key="k1"
        )
        assert again == first
        assert await manager.get_turn_count(session.id) == 1
        change = SessionChange(
            current_mode="collecting", turns=[NewTurn(role="assistant", content="a")]
        )
        result = await manager.commit(session.id, change, expected_version=2, idempotency_key="k2")
        repeat = await manager.commit(session.id, change, expected_version=2, idempotency_key="k2")
        assert repeat == result  # the original result, although the version moved on
        helper = await manager.add_intent_seen(session.id, "greet", idempotency_key="k3")
        assert await manager.add_intent_seen(session.id, "greet", idempotency_key="k3") == helper
        current = await manager.get_session(session.id)
        assert current.version == 4
        assert len(current.state.intents_seen) == 1
        assert await manager.get_turn_count(session.id) == 2

    async def test_keys_are_per_session(self, manager: SessionManager) -> None:
        one = await manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="a", contact_id="c"
        )
        two = await manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="b", contact_id="c"
        )
        await manager.add_turn(one.id, role="user", content="x", idempotency_key="same")
        await manager.add_turn(two.id, role="user", content="y", idempotency_key="same")
        assert await manager.get_turn_count(one.id) == 1
        assert await manager.get_turn_count(two.id) == 1

    @pytest.mark.parametrize("mode", ["lose_answer", "before_apply"])
    async def test_the_manager_makes_a_faulted_write_exactly_once(
        self,
        storage: StorageBackend,
        contract_registry: AgentRegistry,
        workspace_id: str,
        mode: str,
    ) -> None:
        faulty = InstrumentedStorage(storage)
        manager = SessionManager(faulty, workspace_id=workspace_id, registry=contract_registry)
        faulty.fail_next("receive", mode=mode)  # type: ignore[arg-type]
        receipt = await manager.receive(message(MERGE, "hola"))
        assert not receipt.duplicate  # the retry returned the original receipt
        assert receipt.run is not None
        faulty.fail_next("complete", mode=mode)  # type: ignore[arg-type]
        done = await manager.complete(receipt.run, reply(receipt.run))
        faulty.fail_next("commit", mode=mode)  # type: ignore[arg-type]
        turn = await manager.add_turn(receipt.session.id, role="user", content="más")
        faulty.fail_next("create_session", mode=mode)  # type: ignore[arg-type]
        created = await manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="other", contact_id="c"
        )
        assert faulty.faults_injected == 4
        assert faulty.calls["receive"] == faulty.calls["complete"] == faulty.calls["commit"] == 2
        turns = list(await manager.get_turns(receipt.session.id))
        assert numbers(turns) == [1, 2, 3]
        assert turns[1] == done.turns[0]
        assert turns[2] == turn
        current = await manager.get_session(receipt.session.id)
        assert current.version == 4  # created, received, completed, one more turn
        assert (await manager.get_session(created.id)).version == 1

    async def test_an_unknown_outcome_is_reported_honestly(
        self, storage: StorageBackend, contract_registry: AgentRegistry, workspace_id: str
    ) -> None:
        faulty = InstrumentedStorage(storage)
        manager = SessionManager(
            faulty, workspace_id=workspace_id, registry=contract_registry, write_attempts=2
        )
        session = await manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="c"
        )
        faulty.fail_next("commit", mode="lose_answer")
        faulty.fail_next("commit", mode="before_apply")
        with pytest.raises(StorageUnavailableError) as caught:
            await manager.add_turn(session.id, role="user", content="x", idempotency_key="k")
        assert caught.value.may_have_applied  # the first attempt did apply
        assert await manager.get_turn_count(session.id) == 1
        again = await manager.add_turn(session.id, role="user", content="x", idempotency_key="k")
        assert again.turn_number == 1
        assert await manager.get_turn_count(session.id) == 1

    async def test_receive_and_complete_are_one_storage_call_each(
        self, storage: StorageBackend, contract_registry: AgentRegistry, workspace_id: str
    ) -> None:
        counted = InstrumentedStorage(storage)
        manager = SessionManager(counted, workspace_id=workspace_id, registry=contract_registry)
        receipt = await manager.receive(message(MERGE, "hola"))
        assert receipt.run is not None
        await manager.complete(receipt.run, reply(receipt.run))
        assert dict(counted.calls) == {"receive": 1, "complete": 1}

    async def test_a_new_run_id_is_unique(self, manager: SessionManager) -> None:
        """Tokens grow strictly per session, across every way a run starts."""
        tokens = []
        receipt = await manager.receive(message(INTERRUPT, f"m-{uuid.uuid4()}"))
        assert receipt.run is not None
        tokens.append(receipt.run.token)
        for i in range(3):
            nxt = await manager.receive(message(INTERRUPT, f"n{i}"))
            assert nxt.run is not None
            tokens.append(nxt.run.token)
        assert tokens == sorted(set(tokens))
