"""The storage contract suite: every clause of the concurrency contract, as pytest tests.

Subclass `StorageContractTests` and provide a `storage` fixture that yields an empty
backend (and cleans up after it). Each test runs in a workspace of its own, so a backend
shared between tests (a live database) works too. A known difference is declared by
overriding the test with a strict `xfail` and a reason; an override without one fails
`test_overrides_are_marked_xfail`. Tests of optional capabilities the backend does not
declare in `capabilities` are skipped, with the reason shown.

Concurrency is real: `concurrency` tasks (a class attribute) hit one session at once.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs
import pytest
import pytest_asyncio

from ..errors import (
    ConflictError,
    InvalidTransitionError,
    SessionAlreadyActiveError,
    SessionClosedError,
    SessionNotFoundError,
    TurnNumberConflictError,
    VersionConflictError,
)
from ..models import IntentSeen, NewTurn, Role, Session, SessionState, SessionStatus, ToolCall
from ..registry import AgentRegistry
from ..sessions import SessionChange, SessionManager
from ..storage.base import (
    AppendIntent,
    AppendTemplate,
    Capability,
    Commit,
    MergeCapturedData,
    MergeData,
    NewSession,
    StorageBackend,
)
from .agents import TEST_AGENT_ID, make_test_agent

__all__ = ["StorageContractTests", "requires"]

F = TypeVar("F", bound=Callable[..., Any])

UNICODE = "Hola, ¿qué tal? Ñandú — 你好 — 🚀"


def requires(capability: str) -> Callable[[F], F]:
    """Mark a contract test as needing an optional backend capability."""

    def mark(test: F) -> F:
        test.__frontdesk_requires__ = capability  # type: ignore[attr-defined]
        return test

    return mark


async def _gather_outcomes(*calls: Any) -> list[Any]:
    """Run coroutines at once; each outcome is its result or the exception it raised."""
    return list(await asyncio.gather(*calls, return_exceptions=True))


@pytest.mark.asyncio
class StorageContractTests:
    """The contract every `StorageBackend` must pass. Provide a `storage` fixture."""

    concurrency: int = 20
    """How many tasks hit one session at once in the concurrency tests."""

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture
    def storage(self) -> StorageBackend:
        """Override: yield an empty backend and clean it up afterwards."""
        raise NotImplementedError("subclass StorageContractTests and provide a storage fixture")

    @pytest.fixture(autouse=True)
    def _capabilities(self, request: pytest.FixtureRequest, storage: StorageBackend) -> None:
        needed = getattr(request.function, "__frontdesk_requires__", None)
        if needed is not None and needed not in storage.capabilities:
            pytest.skip(f"{type(storage).__name__} does not declare the {needed!r} capability")

    @pytest.fixture
    def contract_registry(self) -> AgentRegistry:
        registry = AgentRegistry()
        registry.register(make_test_agent())
        return registry

    @pytest.fixture
    def workspace_id(self) -> str:
        return f"contract-{uuid.uuid4()}"

    @pytest.fixture
    def manager(
        self, storage: StorageBackend, contract_registry: AgentRegistry, workspace_id: str
    ) -> SessionManager:
        return SessionManager(storage, workspace_id=workspace_id, registry=contract_registry)

    @pytest.fixture
    def other_manager(
        self, storage: StorageBackend, contract_registry: AgentRegistry, workspace_id: str
    ) -> SessionManager:
        return SessionManager(
            storage, workspace_id=f"{workspace_id}-other", registry=contract_registry
        )

    @pytest_asyncio.fixture
    async def session(self, manager: SessionManager) -> Session:
        return await manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="conv-1", contact_id="contact-1"
        )

    # -- the guard -------------------------------------------------------------------------

    async def test_overrides_are_marked_xfail(self, request: pytest.FixtureRequest) -> None:
        """A contract test may be replaced only by a strict xfail that says why.

        And the concurrency tests must stay concurrent: `concurrency` of at least 5.
        """
        assert self.concurrency >= 5, (
            f"{type(self).__name__}.concurrency is {self.concurrency}; the concurrency "
            "tests need at least 5 tasks to mean anything"
        )
        strict_default = bool(request.config.getini("xfail_strict"))
        unmarked = []
        for name in dir(StorageContractTests):
            if not name.startswith("test_"):
                continue
            own = getattr(type(self), name)
            if own is getattr(StorageContractTests, name):
                continue
            marks = [m for m in getattr(own, "pytestmark", []) if m.name == "xfail"]
            if not any(
                m.kwargs.get("reason") and m.kwargs.get("strict", strict_default) is True
                for m in marks
            ):
                unmarked.append(name)
        assert not unmarked, (
            f"{type(self).__name__} overrides contract tests without a strict "
            f"@pytest.mark.xfail(reason=...): {', '.join(unmarked)}"
        )

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
        outcomes = await _gather_outcomes(
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
        await manager.close_session(session.id, session.version)
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
            outcomes = await _gather_outcomes(
                manager.close_session(first.id, first.version),
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
            manager.add_turn(missing, role="user", content="hi"),
            manager.add_intent_seen(missing, "greeting"),
            manager.update_session_with_version(missing, 1, current_mode="collecting"),
            manager.get_turns(missing),
            manager.get_turn_count(missing),
        ):
            with pytest.raises(SessionNotFoundError):
                await call

    async def test_find_active_by_conversation(
        self, manager: SessionManager, session: Session
    ) -> None:
        assert await manager.get_session_by_conversation("conv-1", TEST_AGENT_ID) == session
        assert await manager.get_session_by_conversation("conv-2", TEST_AGENT_ID) is None
        assert await manager.get_session_by_conversation("conv-1", "other-agent") is None

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
        updated = await manager.update_session_with_version(sid, 6, current_mode="collecting")
        assert updated.version == 7
        replaced = await manager.update_state(sid, 7, SessionState(templates_sent=("x",)))
        assert replaced.version == 8
        assert replaced.state == SessionState(templates_sent=("x",))
        assert (await manager.close_session(sid, 8)).version == 9

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
                    turns=[_turn("must not appear")],
                ),
                expected_version=1,
            )
        assert excinfo.value.session_id == session.id
        assert excinfo.value.expected_version == 1
        assert excinfo.value.current_version in (2, None)
        assert await manager.get_session(session.id) == before
        assert await manager.get_turns(session.id) == []

    async def test_concurrent_versioned_writes_exactly_one_wins(
        self, manager: SessionManager, session: Session
    ) -> None:
        outcomes = await _gather_outcomes(
            *(
                manager.update_state(
                    session.id, session.version, SessionState(captured_data={"writer": str(i)})
                )
                for i in range(self.concurrency)
            )
        )
        winners = [o for o in outcomes if isinstance(o, Session)]
        conflicts = [o for o in outcomes if isinstance(o, VersionConflictError)]
        assert len(winners) == 1, outcomes
        assert len(conflicts) == self.concurrency - 1, outcomes
        assert all(c.expected_version == 1 for c in conflicts)
        assert all(c.current_version in (2, None) for c in conflicts)
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
                turns=[_turn(f"increment {count + 1}")],
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

    # -- state helpers ---------------------------------------------------------------------

    async def test_state_helpers_lose_nothing_under_concurrency(
        self, manager: SessionManager, session: Session
    ) -> None:
        n = self.concurrency
        outcomes = await _gather_outcomes(
            *(manager.add_intent_seen(session.id, f"intent-{i}") for i in range(n)),
            *(manager.add_template_sent(session.id, f"template-{i}") for i in range(n)),
            *(manager.update_captured_data(session.id, {f"key-{i}": str(i)}) for i in range(n)),
            *(manager.update_data(session.id, {f"data-{i}": [i, UNICODE]}) for i in range(n)),
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert not errors, errors
        state = (await manager.get_session(session.id)).state
        assert sorted(i.intent for i in state.intents_seen) == sorted(
            f"intent-{i}" for i in range(n)
        )
        assert [i.order for i in state.intents_seen] == list(range(1, n + 1))
        assert sorted(state.templates_sent) == sorted(f"template-{i}" for i in range(n))
        assert state.captured_data == {f"key-{i}": str(i) for i in range(n)}
        assert state.data == {f"data-{i}": [i, UNICODE] for i in range(n)}
        assert (await manager.get_session(session.id)).version == 1 + 4 * n

    async def test_intents_are_numbered_and_stamped(
        self, manager: SessionManager, session: Session
    ) -> None:
        await manager.add_intent_seen(session.id, "greeting")
        state = (await manager.add_intent_seen(session.id, "price_question")).state
        assert [(i.intent, i.order) for i in state.intents_seen] == [
            ("greeting", 1),
            ("price_question", 2),
        ]
        for intent in state.intents_seen:
            assert intent.seen_at.utcoffset() == timedelta(0)
        assert state.intents_seen[0].seen_at <= state.intents_seen[1].seen_at

    async def test_captured_data_merges(self, manager: SessionManager, session: Session) -> None:
        await manager.update_captured_data(session.id, {"name": "Ana", "city": "Sevilla"})
        state = (await manager.update_captured_data(session.id, {"city": "Málaga"})).state
        assert state.captured_data == {"name": "Ana", "city": "Málaga"}

    async def test_state_round_trips_as_json(
        self, manager: SessionManager, session: Session
    ) -> None:
        state = SessionState(
            intents_seen=(
                IntentSeen("saludo", 1, datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)),
                IntentSeen(UNICODE, 2, datetime(2026, 3, 1, 9, 31, tzinfo=UTC)),
            ),
            templates_sent=("bienvenida", UNICODE),
            captured_data={"dirección": UNICODE, "empty": ""},
            data={"nested": {"list": [1, 2.5, None, True, "ñ"], "deep": {"a": {}}}, "n": -3},
        )
        written = await manager.update_state(session.id, session.version, state)
        assert written.state == state
        assert (await manager.get_state(session.id)) == state

    async def test_returned_values_are_copies(
        self, manager: SessionManager, session: Session
    ) -> None:
        await manager.update_captured_data(session.id, {"name": "Ana"})
        await manager.update_data(session.id, {"cart": ["a"]})
        state = await manager.get_state(session.id)
        state.captured_data["name"] = "changed"  # type: ignore[index]
        state.data["cart"].append("b")
        again = await manager.get_state(session.id)
        assert again.captured_data == {"name": "Ana"}
        assert again.data == {"cart": ["a"]}

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
            session.id, after.version, last_activity_at=explicit
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

    # -- atomic commits --------------------------------------------------------------------

    async def test_commit_applies_everything_together(
        self, manager: SessionManager, session: Session
    ) -> None:
        result = await manager.commit(
            session.id,
            SessionChange(
                current_mode="collecting",
                state=SessionState(captured_data={"product": "socks"}),
                turns=[_turn("I want socks"), _turn("Which size?", role="assistant")],
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
                turns=[_turn(f"message {i}"), _turn(f"reply {i}", role="assistant")],
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
                    turns=[_turn("fine"), _turn("taken", turn_number=1)],
                ),
                expected_version=before.version,
            )
        with pytest.raises(InvalidTransitionError):
            await manager.commit(
                session.id,
                SessionChange(current_mode="done", turns=[_turn("lost")]),
                expected_version=before.version,
            )
        assert await manager.get_session(session.id) == before
        assert [t.content for t in await manager.get_turns(session.id)] == ["first"]

    # -- status and modes ------------------------------------------------------------------

    @pytest.mark.parametrize("status", [SessionStatus.CLOSED, SessionStatus.HANDED_OFF])
    async def test_finished_session_refuses_writes(
        self, manager: SessionManager, session: Session, status: SessionStatus
    ) -> None:
        if status is SessionStatus.CLOSED:
            finished = await manager.close_session(session.id, session.version)
        else:
            finished = await manager.handoff_session(session.id, session.version)
        assert finished.status is status
        assert not finished.is_active
        for call in (
            manager.add_turn(session.id, role="user", content="late"),
            manager.add_intent_seen(session.id, "late"),
            manager.update_captured_data(session.id, {"late": "yes"}),
            manager.update_session_with_version(session.id, 2, current_mode="collecting"),
            manager.close_session(session.id, 2),
        ):
            with pytest.raises(SessionClosedError) as excinfo:
                await call
            assert excinfo.value.status == status
        assert await manager.get_session(session.id) == finished
        assert await manager.get_turns(session.id) == []

    async def test_close_with_stale_version_conflicts(
        self, manager: SessionManager, session: Session
    ) -> None:
        await manager.add_turn(session.id, role="user", content="hi")
        with pytest.raises(VersionConflictError):
            await manager.close_session(session.id, session.version)
        assert (await manager.get_session(session.id)).is_active

    async def test_modes_follow_the_state_machine(
        self, manager: SessionManager, session: Session
    ) -> None:
        moved = await manager.update_session_with_version(session.id, 1, current_mode="collecting")
        assert moved.current_mode == "collecting"
        same = await manager.update_session_with_version(session.id, 2, current_mode="collecting")
        assert same.version == 3
        with pytest.raises(InvalidTransitionError) as excinfo:
            await manager.update_session_with_version(session.id, 3, current_mode="done")
        error = excinfo.value
        assert (error.agent_id, error.current_mode, error.requested_mode) == (
            TEST_AGENT_ID,
            "collecting",
            "done",
        )
        assert error.allowed == ("confirming",)
        with pytest.raises(InvalidTransitionError):
            await manager.update_session_with_version(session.id, 3, current_mode="undeclared")
        assert (await manager.get_session(session.id)).version == 3

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
            other_manager.update_state(session.id, 2, SessionState()),
            other_manager.commit(
                session.id, SessionChange(turns=[_turn("x")]), expected_version=None
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

    # -- threads ---------------------------------------------------------------------------

    @requires(Capability.THREADS)
    async def test_threads_lose_nothing(self, manager: SessionManager, session: Session) -> None:
        per_thread, threads = 10, 4
        errors: list[Exception] = []

        def worker(index: int) -> None:
            async def run() -> None:
                for i in range(per_thread):
                    await manager.add_turn(session.id, role="user", content=f"t{index}-{i}")
                    await manager.add_intent_seen(session.id, f"t{index}-{i}")

            try:
                asyncio.run(run())
            except Exception as exc:  # noqa: BLE001 - collected, then reported by the assertion below
                errors.append(exc)

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        assert not errors, errors
        total = per_thread * threads
        turns = await manager.get_turns(session.id)
        assert [t.turn_number for t in turns] == list(range(1, total + 1))
        state = await manager.get_state(session.id)
        assert [i.order for i in state.intents_seen] == list(range(1, total + 1))
        assert (await manager.get_session(session.id)).version == 1 + 2 * total


def _turn(content: str, *, role: str = "user", turn_number: int | None = None) -> NewTurn:
    return NewTurn(role=Role(role), content=content, turn_number=turn_number)
