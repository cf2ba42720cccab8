"""InMemoryStorage: the whole storage contract, plus what is particular to it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from frontdesk import (
    AgentRegistry,
    ConflictError,
    InboundMessage,
    SessionChange,
    SessionManager,
    SessionStatus,
)
from frontdesk.storage import Capability, Commit, NewSession, StorageBackend
from frontdesk.storage.memory import InMemoryStorage
from frontdesk.testing import TEST_AGENT_ID, StorageContractTests, make_test_agent


class TestInMemoryContract(StorageContractTests):
    concurrency = 50

    @pytest.fixture
    def storage(self) -> InMemoryStorage:
        return InMemoryStorage()


def test_implements_the_protocol() -> None:
    storage = InMemoryStorage()
    assert isinstance(storage, StorageBackend)
    assert Capability.THREADS in storage.capabilities


async def test_clock_stamps_every_write() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    storage = InMemoryStorage(clock=lambda: now)
    session, created = await storage.create_session(
        NewSession(
            id="s1",
            workspace_id="w",
            agent_id="a",
            conversation_id="c",
            contact_id="u",
            current_mode="m",
        )
    )
    assert created
    assert session.created_at == session.updated_at == now
    result = await storage.commit("w", "s1", Commit())
    assert result.session.updated_at == now
    assert result.session.version == 2


async def test_an_id_is_never_reused() -> None:
    storage = InMemoryStorage()
    new = NewSession(
        id="s1",
        workspace_id="w",
        agent_id="a",
        conversation_id="c",
        contact_id="u",
        current_mode="m",
    )
    await storage.create_session(new)
    await storage.commit("w", "s1", Commit(status=None))
    await storage.commit("w", "s1", Commit(status=SessionStatus.CLOSED))
    with pytest.raises(ConflictError, match="is taken"):
        await storage.create_session(new)


def test_repr_names_the_class_a_subclass_included() -> None:
    class Audited(InMemoryStorage):
        pass

    assert repr(InMemoryStorage()) == "<InMemoryStorage sessions=0>"
    assert repr(Audited()) == "<Audited sessions=0>"


async def test_erasing_a_contact_leaves_nothing_of_its_conversations() -> None:
    registry = AgentRegistry()
    registry.register(make_test_agent())
    storage = InMemoryStorage()
    manager = SessionManager(storage, workspace_id="w", registry=registry)
    message = InboundMessage(
        agent_id=TEST_AGENT_ID,
        conversation_id="wa:+34600111222",
        contact_id="+34600111222",
        message_id="wamid.1",
        content="hola",
    )
    receipt = await manager.receive(message)
    assert receipt.run is not None
    await manager.complete(receipt.run, SessionChange(), idempotency_key="k")
    report = await manager.erase_contact("+34600111222")
    assert report.sessions == 1
    assert "+34600111222" not in repr(vars(storage))  # no index, record or key keeps it
    again = await manager.receive(message)  # a new conversation: not a duplicate
    assert not again.duplicate
