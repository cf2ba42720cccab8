"""Storage contract clauses on the session lifecycle: listing, deleting, purging, erasing, migrating."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from ...config import DoubleTexting
from ...errors import (
    AgentChangedError,
    InvalidCursorError,
    SessionClosedError,
    SessionNotFoundError,
    VersionConflictError,
)
from ...lifecycle import ErasureReport, SessionMigration, SessionSummary
from ...models import NewTurn, Role, Session, SessionState, SessionStatus, Turn
from ...pipeline import InboundMessage
from ...sessions import SessionChange, SessionManager
from ...storage.base import StorageBackend
from ..agents import TEST_AGENT_ID, make_test_agent
from ._base import SHORT_RUNS_AGENT, ContractBase, gather_outcomes, pipeline_agent

OTHER_AGENT_ID = "test-agent-two"
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


async def _listed(manager: SessionManager, *, limit: int = 1000, **filters: object) -> list[str]:
    """The ids of every page of a listing, in order."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = await manager.list_sessions(limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        ids.extend(item.id for item in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def _backdate(manager: SessionManager, session: Session, when: datetime) -> Session:
    current = await manager.get_session(session.id)
    return await manager.update_session_with_version(
        session.id, expected_version=current.version, last_activity_at=when
    )


class LifecycleContract(ContractBase):
    """The session lifecycle: listing, deleting, purging, erasing, migrating."""

    async def _create(
        self,
        manager: SessionManager,
        conversation: str,
        *,
        contact: str = "contact-1",
        agent: str = TEST_AGENT_ID,
    ) -> Session:
        if agent not in manager.registry:
            manager.registry.register(make_test_agent(id=agent, version="2.0"))
        return await manager.create_session(
            agent_id=agent, conversation_id=conversation, contact_id=contact
        )

    # -- listing ---------------------------------------------------------------------------

    async def test_list_is_newest_activity_first_with_totals(self, manager: SessionManager) -> None:
        sessions = [await self._create(manager, f"c{i}") for i in range(5)]
        await manager.add_turn(sessions[1].id, role="user", content="hi", tokens_used=10)
        await manager.add_turn(sessions[1].id, role="assistant", content="hello", tokens_used=5)
        page = await manager.list_sessions()
        assert page.next_cursor is None
        assert {item.id for item in page.items} == {s.id for s in sessions}
        assert page.items[0].id == sessions[1].id, "the session with the newest turn comes first"
        keys = [(item.last_activity_at, item.id) for item in page.items]
        assert keys == sorted(keys, reverse=True)
        for item in page.items:
            assert isinstance(item, SessionSummary)
            session = await manager.get_session(item.id)
            fields = attrs.asdict(item, recurse=False)
            turns, tokens = fields.pop("turn_count"), fields.pop("tokens_used")
            assert fields == attrs.asdict(session, recurse=False)
            expected = (2, 15) if item.id == sessions[1].id else (0, 0)
            assert (turns, tokens) == expected

    async def test_empty_listing(self, manager: SessionManager) -> None:
        page = await manager.list_sessions()
        assert page.items == ()
        assert page.next_cursor is None

    async def test_pages_cover_every_session_once(self, manager: SessionManager) -> None:
        sessions = [await self._create(manager, f"c{i}") for i in range(7)]
        # Equal activity times must not lose or repeat sessions at page boundaries.
        same = datetime(2024, 5, 1, tzinfo=UTC)
        for session in sessions[:4]:
            await _backdate(manager, session, same)
        for size in (1, 2, 3, 7, 8):
            ids = await _listed(manager, limit=size)
            assert sorted(ids) == sorted(s.id for s in sessions), f"pages of {size}"
        first = await manager.list_sessions(limit=7)
        assert first.next_cursor is None, "a full last page has no next cursor"

    async def test_listing_while_others_write(self, manager: SessionManager) -> None:
        sessions = [await self._create(manager, f"c{i}") for i in range(24)]
        touched = sessions[::2]  # only these are written during the listing
        stop = asyncio.Event()

        async def writer(index: int) -> int:
            writes = 0
            while not stop.is_set():
                target = touched[(index + writes) % len(touched)]
                await manager.add_turn(target.id, role="user", content=f"w{index}-{writes}")
                await self._create(manager, f"new-{index}-{writes}")
                writes += 1
            return writes

        async def lister() -> list[str]:
            try:
                return await _listed(manager, limit=3)
            finally:
                stop.set()

        writers = [asyncio.create_task(writer(i)) for i in range(3)]
        seen = await lister()
        writes = await asyncio.gather(*writers)
        assert sum(writes) > 0, "the writers never ran during the listing"
        repeated = sorted({sid for sid in seen if seen.count(sid) > 1})
        assert not repeated, f"listed twice: {repeated}"
        untouched = {s.id for s in sessions} - {s.id for s in touched}
        missing = untouched - set(seen)
        assert not missing, f"sessions not written during the listing are missing: {missing}"

    async def test_filters_combine(self, manager: SessionManager) -> None:
        base = datetime(2024, 1, 1, tzinfo=UTC)
        made: list[Session] = []
        for i in range(12):
            session = await self._create(
                manager,
                f"conv-{i % 6}",
                contact=f"contact-{i % 2}",
                agent=TEST_AGENT_ID if i < 6 else OTHER_AGENT_ID,
            )
            if i % 3 == 1:
                session = await manager.update_session_with_version(
                    session.id, expected_version=session.version, current_mode="collecting"
                )
            session = await _backdate(manager, session, base + timedelta(hours=i))
            if i % 5 == 0:
                session = await manager.close_session(session.id, expected_version=session.version)
            made.append(session)
        cases: list[dict[str, object]] = [
            {},
            {"agent_id": OTHER_AGENT_ID},
            {"status": "closed"},
            {"status": SessionStatus.ACTIVE, "agent_id": TEST_AGENT_ID},
            {"mode": "collecting"},
            {"mode": "collecting", "contact_id": "contact-1"},
            {"contact_id": "contact-0", "conversation_id": "conv-0"},
            {"conversation_id": "conv-1", "agent_id": OTHER_AGENT_ID},
            {"updated_after": base + timedelta(hours=3)},
            {"updated_before": base + timedelta(hours=3)},
            {
                "updated_after": base + timedelta(hours=2),
                "updated_before": base + timedelta(hours=9),
                "agent_id": TEST_AGENT_ID,
                "status": "active",
            },
            {"agent_id": "nobody"},
        ]
        for filters in cases:
            expected = [s for s in made if _matches(s, filters)]
            expected.sort(key=lambda s: (s.last_activity_at, s.id), reverse=True)
            assert await _listed(manager, limit=2, **filters) == [s.id for s in expected], filters

    async def test_cursor_is_bound_to_its_filters(
        self, manager: SessionManager, other_manager: SessionManager
    ) -> None:
        for i in range(3):
            await self._create(manager, f"c{i}")
        page = await manager.list_sessions(status="active", limit=1)
        assert page.next_cursor is not None
        again = await manager.list_sessions(status="active", limit=1, cursor=page.next_cursor)
        assert again.items[0].id != page.items[0].id
        with pytest.raises(InvalidCursorError, match="other filters"):
            await manager.list_sessions(status="closed", limit=1, cursor=page.next_cursor)
        with pytest.raises(InvalidCursorError, match="other filters"):
            await manager.list_sessions(limit=1, cursor=page.next_cursor)
        with pytest.raises(InvalidCursorError):
            await other_manager.list_sessions(status="active", cursor=page.next_cursor)
        for forged in ("garbage", page.next_cursor[:-2] + "AA", ""):
            with pytest.raises(InvalidCursorError):
                await manager.list_sessions(status="active", cursor=forged)

    @pytest.mark.parametrize(
        ("bad", "field"),
        [
            ({"limit": 0}, "limit"),
            ({"limit": 1001}, "limit"),
            ({"limit": True}, "limit"),
            ({"status": "open"}, "status"),
            ({"agent_id": ""}, "agent_id"),
            ({"updated_after": datetime(2024, 1, 1)}, "updated_after"),
        ],
        ids=["limit-0", "limit-1001", "limit-bool", "status", "empty-agent", "naive-time"],
    )
    async def test_list_refuses_bad_arguments(
        self, manager: SessionManager, bad: dict[str, object], field: str
    ) -> None:
        with pytest.raises(ValueError, match=field):
            await manager.list_sessions(**bad)  # type: ignore[arg-type]

    async def test_listing_stays_in_its_workspace(
        self, manager: SessionManager, other_manager: SessionManager
    ) -> None:
        mine = await self._create(manager, "c")
        await self._create(other_manager, "c")
        assert await _listed(manager) == [mine.id]

    # -- deleting --------------------------------------------------------------------------

    async def test_delete_removes_session_and_turns(
        self, manager: SessionManager, other_manager: SessionManager
    ) -> None:
        session = await self._create(manager, "c")
        await manager.add_turn(session.id, role="user", content="bye")
        assert not await other_manager.delete_session(session.id), "another workspace's"
        assert await manager.delete_session(session.id)
        with pytest.raises(SessionNotFoundError):
            await manager.get_session(session.id)
        with pytest.raises(SessionNotFoundError):
            await manager.get_turns(session.id)
        with pytest.raises(SessionNotFoundError):
            await manager.add_turn(session.id, role="user", content="late")
        assert await _listed(manager) == []
        assert not await manager.delete_session(session.id)
        fresh = await self._create(manager, "c")  # the conversation is free again
        assert await manager.get_turn_count(fresh.id) == 0

    async def test_no_write_lands_after_delete(self, manager: SessionManager) -> None:
        session = await self._create(manager, "c")
        half = self.concurrency // 2
        writes = [
            manager.add_turn(session.id, role="user", content=f"m{i}") for i in range(half)
        ] + [manager.add_intent_seen(session.id, f"i{i}") for i in range(half)]
        outcomes = await gather_outcomes(*writes[:half], manager.delete_session(session.id))
        outcomes += await gather_outcomes(*writes[half:])
        assert outcomes[half] is True
        for outcome in outcomes[:half] + outcomes[half + 1 :]:
            assert isinstance(outcome, Turn | Session | SessionNotFoundError), outcome
        assert all(isinstance(o, SessionNotFoundError) for o in outcomes[half + 1 :])
        with pytest.raises(SessionNotFoundError):
            await manager.get_session(session.id)
        assert await manager.get_session_by_conversation("c", TEST_AGENT_ID) is None
        assert await _listed(manager) == []

    # -- purging ---------------------------------------------------------------------------

    async def test_purge_by_inactivity_and_status(
        self, manager: SessionManager, other_manager: SessionManager
    ) -> None:
        old_active = await _backdate(manager, await self._create(manager, "a"), LONG_AGO)
        old_closed = await _backdate(manager, await self._create(manager, "b"), LONG_AGO)
        await manager.close_session(old_closed.id, expected_version=old_closed.version)
        recent = await self._create(manager, "c")
        month = datetime.now(UTC) - timedelta(days=10)
        recent_closed = await _backdate(manager, await self._create(manager, "d"), month)
        await manager.close_session(recent_closed.id, expected_version=recent_closed.version)
        elsewhere = await _backdate(other_manager, await self._create(other_manager, "a"), LONG_AGO)

        assert await manager.purge(inactive_for=timedelta(days=30), status="closed") == 1
        assert sorted(await _listed(manager)) == sorted(
            [old_active.id, recent.id, recent_closed.id]
        )
        assert await manager.purge(inactive_for=timedelta(days=30)) == 1
        assert sorted(await _listed(manager)) == sorted([recent.id, recent_closed.id])
        assert await manager.purge(inactive_for=timedelta(days=30)) == 0
        assert (await other_manager.get_session(elsewhere.id)).id == elsewhere.id

    async def test_purge_in_batches_and_up_to_a_limit(self, manager: SessionManager) -> None:
        old = []
        for i in range(7):
            session = await self._create(manager, f"c{i}")
            old.append(await _backdate(manager, session, LONG_AGO + timedelta(days=i)))
        keep = await self._create(manager, "fresh")
        assert await manager.purge(inactive_for=timedelta(days=1), limit=2, batch_size=5) == 2
        left = set(await _listed(manager))
        assert left == {s.id for s in old[2:]} | {keep.id}, "the oldest go first"
        assert await manager.purge(inactive_for=timedelta(days=1), batch_size=2) == 5
        assert await _listed(manager) == [keep.id]

    async def test_purge_keeps_sessions_the_pipeline_is_working_on(
        self, manager: SessionManager
    ) -> None:
        def inbound(agent_id: str, conversation: str, text: str) -> InboundMessage:
            return InboundMessage(
                agent_id=agent_id,
                conversation_id=conversation,
                contact_id="contact-1",
                message_id=f"wamid.{conversation}.{text}",
                content=text,
            )

        answer = SessionChange(turns=[NewTurn(role=Role.ASSISTANT, content="hello")])
        merge = pipeline_agent(DoubleTexting.MERGE)
        live = await manager.receive(inbound(merge, "live", "hola"))
        assert live.run is not None
        crashed = await manager.receive(inbound(SHORT_RUNS_AGENT, "abandoned", "hola"))
        assert crashed.run is not None
        idle = await self._create(manager, "idle")
        await asyncio.sleep(self.run_timeout * 1.5)  # the short run expires, unanswered

        assert await manager.purge(inactive_for=timedelta(0)) == 1
        assert sorted(await _listed(manager)) == sorted([live.session.id, crashed.session.id])
        assert idle.id not in await _listed(manager)
        done = await manager.complete(live.run, answer)  # its worker finishes: nothing lost
        assert done.next_run is None
        assert await manager.purge(inactive_for=timedelta(0)) == 1
        assert await _listed(manager) == [crashed.session.id], "its message is unanswered"

    # -- erasing ---------------------------------------------------------------------------

    async def test_erase_contact_removes_everything_of_the_contact(
        self, manager: SessionManager, other_manager: SessionManager
    ) -> None:
        theirs = [
            await self._create(manager, "c1", contact="erase-me"),
            await self._create(manager, "c2", contact="erase-me"),
            await self._create(manager, "c1", contact="erase-me", agent=OTHER_AGENT_ID),
        ]
        for index, session in enumerate(theirs):
            await manager.add_turn(session.id, role="user", content="my address is ...")
            await manager.update_captured_data(session.id, {"address": "Calle Mayor 1"})
            if index == 0:
                await manager.add_turn(session.id, role="assistant", content="noted")
        closed = await manager.get_session(theirs[1].id)
        await manager.close_session(closed.id, expected_version=closed.version)
        kept = await self._create(manager, "c3", contact="someone-else")
        await manager.add_turn(kept.id, role="user", content="hi")
        elsewhere = await self._create(other_manager, "c1", contact="erase-me")

        report = await manager.erase_contact("erase-me")
        assert report == ErasureReport(sessions=3, turns=4)
        for session in theirs:
            with pytest.raises(SessionNotFoundError):
                await manager.get_session(session.id)
            with pytest.raises(SessionNotFoundError):
                await manager.get_turns(session.id)
        assert await _listed(manager, contact_id="erase-me") == []
        assert await _listed(manager) == [kept.id]
        assert await manager.get_turn_count(kept.id) == 1
        assert (await other_manager.get_session(elsewhere.id)).contact_id == "erase-me"
        assert await manager.erase_contact("erase-me") == ErasureReport(sessions=0, turns=0)
        again = await self._create(manager, "c1", contact="erase-me")
        assert await manager.get_turn_count(again.id) == 0

    async def test_erase_contact_forgets_messages_runs_and_idempotency_keys(
        self, manager: SessionManager
    ) -> None:
        message = InboundMessage(
            agent_id=TEST_AGENT_ID,
            conversation_id="wa:erase-me",
            contact_id="erase-me",
            message_id="wamid.1",
            content="my address is Calle Mayor 1",
        )
        first = await manager.receive(message, idempotency_key="delivery-1")
        assert first.run is not None
        await manager.add_turn(
            first.session.id, role="assistant", content="noted", idempotency_key="k"
        )
        report = await manager.erase_contact("erase-me")
        assert report == ErasureReport(sessions=1, turns=2)
        with pytest.raises(SessionNotFoundError):
            await manager.complete(first.run, SessionChange(turns=[NewTurn("assistant", "late")]))
        # Nothing remembers the message or the delivery: both come back as new.
        again = await manager.receive(message, idempotency_key="delivery-1")
        assert not again.duplicate
        assert again.session.id != first.session.id
        assert [t.content for t in await manager.get_turns(again.session.id)] == [message.content]

    async def test_no_write_lands_after_delete_during_a_run(self, manager: SessionManager) -> None:
        message = InboundMessage(
            agent_id=TEST_AGENT_ID,
            conversation_id="wa:1",
            contact_id="u",
            message_id="wamid.1",
            content="hola",
        )
        receipt = await manager.receive(message)
        assert receipt.run is not None
        reply = SessionChange(turns=[NewTurn("assistant", "hi")])
        outcomes = await gather_outcomes(
            manager.complete(receipt.run, reply), manager.delete_session(receipt.session.id)
        )
        assert outcomes[1] is True
        assert not isinstance(outcomes[0], BaseException) or isinstance(
            outcomes[0], SessionNotFoundError
        ), outcomes[0]
        with pytest.raises(SessionNotFoundError):
            await manager.get_session(receipt.session.id)
        redelivered = await manager.receive(message)
        assert not redelivered.duplicate, "the deleted session's message ids were kept"

    # -- agent versions and migrations -----------------------------------------------------

    async def test_session_records_agent_version(self, manager: SessionManager) -> None:
        unversioned = await self._create(manager, "c1")
        versioned = await self._create(manager, "c2", agent=OTHER_AGENT_ID)
        assert unversioned.agent_version is None
        assert versioned.agent_version == "2.0"
        assert (await manager.get_session(versioned.id)).agent_version == "2.0"
        listed = {item.id: item.agent_version for item in (await manager.list_sessions()).items}
        assert listed == {unversioned.id: None, versioned.id: "2.0"}
        received = await manager.receive(
            InboundMessage(
                agent_id=OTHER_AGENT_ID,
                conversation_id="c3",
                contact_id="u",
                message_id="wamid.1",
                content="hola",
            )
        )
        assert received.session.agent_version == "2.0"
        assert (await manager.get_session(received.session.id)).agent_version == "2.0"

    async def test_migration_is_one_versioned_commit(
        self, manager: SessionManager, storage: StorageBackend, workspace_id: str
    ) -> None:
        session = await self._create(manager, "c")
        await manager.add_turn(session.id, role="user", content="hi")
        current = await manager.get_session(session.id)
        state = SessionState(captured_data={"name": "Ana"})
        stale = SessionMigration(current.version - 1, "9.0", "collecting", state)
        with pytest.raises(VersionConflictError):
            await storage.migrate_session(workspace_id, session.id, stale)
        assert await manager.get_session(session.id) == current, "a refused migration wrote"
        fresh = SessionMigration(current.version, "9.0", "collecting", state)
        migrated = await storage.migrate_session(workspace_id, session.id, fresh)
        assert migrated.version == current.version + 1
        assert (migrated.current_mode, migrated.agent_version) == ("collecting", "9.0")
        assert migrated.state == state
        assert migrated.last_activity_at == current.last_activity_at
        assert await manager.get_session(session.id) == migrated
        assert await manager.get_turn_count(session.id) == 1
        closed = await manager.close_session(session.id, expected_version=migrated.version)
        with pytest.raises(SessionClosedError):
            await storage.migrate_session(
                workspace_id, session.id, SessionMigration(closed.version, "9.1", "done", state)
            )
        with pytest.raises(SessionNotFoundError):
            await storage.migrate_session(
                f"{workspace_id}-other", session.id, SessionMigration(1, "9.1", "done", state)
            )

    async def test_changed_agent_refuses_moves_then_migrates(self, manager: SessionManager) -> None:
        registry = manager.registry
        registry.register(make_test_agent(version="1.0"), replace=True)
        session = await self._create(manager, "c")
        session = await manager.update_session_with_version(
            session.id, expected_version=session.version, current_mode="collecting"
        )
        assert session.agent_version == "1.0"
        # 2.0 renames "collecting" to "gathering".
        states = attrs.evolve(
            make_test_agent().states,
            modes=("greeting", "gathering", "confirming", "done"),
            transitions={
                "greeting": ("gathering",),
                "gathering": ("confirming",),
                "confirming": ("gathering", "done"),
            },
        )
        new_agent = make_test_agent(version="2.0", states=states)
        registry.register(new_agent, replace=True)
        with pytest.raises(AgentChangedError) as excinfo:
            await manager.update_session_with_version(
                session.id, expected_version=session.version, current_mode="confirming"
            )
        error = excinfo.value
        assert (error.session_agent_version, error.installed_agent_version) == ("1.0", "2.0")
        assert "1.0" in str(error)
        assert "2.0" in str(error)
        assert await manager.get_session(session.id) == session, "the refusal wrote"

        def rename(agent: object, old: Session) -> SessionChange:
            return SessionChange(current_mode={"collecting": "gathering"}[old.current_mode])

        registry.register(new_agent, replace=True, migrate=rename)
        result = await manager.commit(
            session.id, SessionChange(current_mode="confirming"), expected_version=None
        )
        after = result.session
        assert after.current_mode == "confirming"
        assert after.agent_version == "2.0"
        assert after.version == session.version + 2, "one commit to migrate, one to move"
        record = after.state.data["frontdesk.migrations"]
        assert [(r["from"], r["to"], r["from_mode"], r["to_mode"]) for r in record] == [
            ("1.0", "2.0", "collecting", "gathering")
        ]


def _matches(session: Session, filters: dict[str, object]) -> bool:
    activity = session.last_activity_at
    after = filters.get("updated_after")
    before = filters.get("updated_before")
    return (
        filters.get("agent_id", session.agent_id) == session.agent_id
        and str(filters.get("status", session.status)) == str(session.status)
        and filters.get("mode", session.current_mode) == session.current_mode
        and filters.get("contact_id", session.contact_id) == session.contact_id
        and filters.get("conversation_id", session.conversation_id) == session.conversation_id
        and (not isinstance(after, datetime) or activity > after)
        and (not isinstance(before, datetime) or activity < before)
    )
