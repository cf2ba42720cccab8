"""The message pipeline on SQLite beyond the contract: a file from before it is upgraded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from frontdesk import AgentRegistry, InboundMessage, NewTurn, SessionChange, SessionManager
from frontdesk.storage.sqlite import _SCHEMA, SQLiteStorage
from frontdesk.testing import TEST_AGENT_ID, make_test_agent

SESSION_ID = "00000000-0000-4000-8000-000000000001"
T0 = "2026-05-01T12:00:00.000000+00:00"


def _write_version_1(path: Path) -> None:
    """A file as the first SQLite release left it: one session with two turns."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "insert into agent_sessions values (?, 'w', ?, 'wa:1', 'u', 3, 'active',"
            " 'collecting', '{}', 2, 8, ?, ?, ?)",
            (SESSION_ID, TEST_AGENT_ID, T0, T0, T0),
        )
        for number, role, content in ((1, "user", "hola"), (2, "assistant", "¡hola!")):
            conn.execute(
                "insert into agent_turns values (?, ?, ?, ?, null, null, '[]', 4, ?)",
                (SESSION_ID, number, role, content, T0),
            )
        conn.execute("pragma user_version = 1")
    finally:
        conn.close()


async def test_a_version_1_file_is_upgraded_without_losing_sessions(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _write_version_1(path)
    storage = SQLiteStorage(path)
    try:
        registry = AgentRegistry()
        registry.register(make_test_agent())
        manager = SessionManager(storage, workspace_id="w", registry=registry)
        session = await manager.get_session(SESSION_ID)
        assert (session.version, session.current_mode) == (3, "collecting")
        turns = await manager.get_turns(SESSION_ID)
        assert [(t.content, t.message_id) for t in turns] == [("hola", None), ("¡hola!", None)]
        assert await manager.get_total_tokens_used(SESSION_ID) == 8
        receipt = await manager.receive(
            InboundMessage(
                agent_id=TEST_AGENT_ID,
                conversation_id="wa:1",
                contact_id="u",
                message_id="wamid.3",
                content="¿talla M?",
            )
        )
        assert receipt.session.id == SESSION_ID
        assert receipt.run is not None
        assert [t.turn_number for t in receipt.run.history] == [1, 2]
        reply = SessionChange(turns=[NewTurn(role="assistant", content="Sí")])
        done = await manager.complete(receipt.run, reply)
        assert done.session.version == 5
    finally:
        await storage.aclose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("pragma user_version").fetchone() == (4,)
