"""An application's tests, with the fixtures frontdesk's pytest plugin provides."""

from __future__ import annotations

import os

from frontdesk import AgentRegistry, SessionManager
from frontdesk.storage import StorageBackend
from frontdesk.testing import make_test_agent


async def handle_message(manager: SessionManager, phone: str, text: str) -> int:
    """The application code under test: record an inbound WhatsApp message."""
    session, _ = await manager.get_or_create_session(
        agent_id="support-bot", conversation_id=f"whatsapp:{phone}", contact_id=phone
    )
    turn = await manager.add_turn(session.id, role="user", content=text)
    return turn.turn_number


async def test_messages_are_numbered_per_conversation(
    frontdesk_manager: SessionManager, frontdesk_registry: AgentRegistry
) -> None:
    frontdesk_registry.register(make_test_agent(id="support-bot"))

    assert await handle_message(frontdesk_manager, "+34600000001", "hola") == 1
    assert await handle_message(frontdesk_manager, "+34600000001", "¿hay alguien?") == 2
    assert await handle_message(frontdesk_manager, "+34600000002", "hello") == 1


async def test_each_test_starts_empty(frontdesk_manager: SessionManager) -> None:
    found = await frontdesk_manager.get_session_by_conversation(
        "whatsapp:+34600000001", "test-agent"
    )
    assert found is None


async def test_the_storage_is_the_chosen_kind(
    frontdesk_storage: StorageBackend, frontdesk_storage_name: str
) -> None:
    """`--frontdesk-storage sqlite` (or FRONTDESK_TEST_STORAGE) swaps the backend in."""
    kinds = {
        "memory": "InMemoryStorage",
        "sqlite": "SQLiteStorage",
        "postgres": "PostgresStorage",
        "supabase": "SupabaseStorage",
    }
    assert type(frontdesk_storage).__name__ == kinds[frontdesk_storage_name]
    expected = os.environ.get("EXPECTED_FRONTDESK_STORAGE")
    if expected is not None:
        assert frontdesk_storage_name == expected
