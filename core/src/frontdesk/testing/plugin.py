"""The pytest plugin (entry point `pytest11: frontdesk`): fixtures that swap storage in.

async def test_my_handler(frontdesk_manager):
    session, _ = await frontdesk_manager.get_or_create_session(
        agent_id="test-agent", conversation_id="c1", contact_id="u1"
    )
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..registry import AgentRegistry, use_default_registry
from ..sessions import SessionManager
from ..storage.memory import InMemoryStorage
from .agents import make_test_agent

__all__ = ["frontdesk_manager", "frontdesk_registry", "frontdesk_storage"]

TEST_WORKSPACE_ID = "test-workspace"


@pytest.fixture
def frontdesk_storage() -> InMemoryStorage:
    """An empty in-memory storage, new for each test."""
    return InMemoryStorage()


@pytest.fixture
def frontdesk_registry() -> Iterator[AgentRegistry]:
    """A registry holding only the test agent, which is the default during the test.

    Register your own agents on it; they are gone after the test. Nothing is discovered.
    """
    registry = AgentRegistry()
    registry.register(make_test_agent())
    with use_default_registry(registry):
        yield registry


@pytest.fixture
def frontdesk_manager(
    frontdesk_storage: InMemoryStorage, frontdesk_registry: AgentRegistry
) -> SessionManager:
    """A `SessionManager` for workspace `test-workspace` over the two fixtures above."""
    return SessionManager(
        frontdesk_storage, workspace_id=TEST_WORKSPACE_ID, registry=frontdesk_registry
    )
