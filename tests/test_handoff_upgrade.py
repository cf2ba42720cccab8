"""Upgrading a store that holds handed-off conversations: they stay with their person.

The previous release left a hand-off's waiting messages pending (and a run recorded on a
session handed off mid-run). After the upgrade (migration 0009, SQLite schema 4) they are
the person's: handing the session back does not answer them, and the conversation's next
message is held, not answered.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import psycopg

from frontdesk import (
    AgentRegistry,
    InboundMessage,
    NewTurn,
    SessionChange,
    SessionManager,
    SessionStatus,
)
from frontdesk.storage import StorageBackend
from frontdesk.storage import sqlite as sqlite_module
from frontdesk.storage.migrations import apply_migrations, migrations
from frontdesk.storage.postgres import PostgresStorage
from frontdesk.storage.sqlite import SQLiteStorage
from frontdesk.testing import TEST_AGENT_ID, make_test_agent
from tests.support.postgres import create_app_database

HANDOFF_MIGRATION = "0009_handoff_stays_with_the_person.sql"


def inbound(text: str) -> InboundMessage:
    return InboundMessage(
        agent_id=TEST_AGENT_ID,
        conversation_id="wa:1",
        contact_id="u",
        message_id=f"wamid.{text}",
        content=text,
    )


def _manager(storage: StorageBackend) -> SessionManager:
    registry = AgentRegistry()
    registry.register(make_test_agent())
    return SessionManager(storage, workspace_id="w", registry=registry)


async def _hand_off_with_a_message_waiting(storage: StorageBackend) -> str:
    """What the previous release did: the hand-off's run leaves the waiting message pending."""
    manager = _manager(storage)
    first = await manager.receive(inbound("hola"))
    waiting = await manager.receive(inbound("¿sigues?"))
    assert first.run is not None
    assert waiting.run is None
    handoff = SessionChange(
        status="handed_off", turns=[NewTurn(role="assistant", content="Te paso con Lucía.")]
    )
    done = await manager.complete(first.run, handoff)
    assert done.session.status is SessionStatus.HANDED_OFF
    return first.session.id


async def _check_the_conversation_stays_with_the_person(
    storage: StorageBackend, session_id: str
) -> None:
    manager = _manager(storage)
    held = await manager.receive(inbound("¿hola?"))
    assert held.session.id == session_id
    assert held.run is None
    session = await manager.get_session(session_id)
    await manager.update_session_with_version(
        session_id, expected_version=session.version, status="active"
    )
    receipt = await manager.receive(inbound("gracias"))
    assert receipt.session.id == session_id
    assert receipt.run is not None
    # Neither the message that waited at the hand-off nor the held one is the agent's.
    assert [t.content for t in receipt.run.inputs] == ["gracias"]


async def _upgrade(
    old: Callable[[], Awaitable[StorageBackend]],
    upgrade: Callable[[], None],
    new: Callable[[], Awaitable[StorageBackend]],
) -> None:
    storage = await old()
    try:
        session_id = await _hand_off_with_a_message_waiting(storage)
    finally:
        await storage.aclose()
    upgrade()
    storage = await new()
    try:
        await _check_the_conversation_stays_with_the_person(storage, session_id)
    finally:
        await storage.aclose()


async def test_postgres_at_0008_is_upgraded(plain_postgres_dsn: str) -> None:
    with create_app_database(plain_postgres_dsn) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "create table public.frontdesk_migrations (name text primary key,"
                " applied_at timestamptz not null default now())"
            )
            for migration in migrations():
                if migration.name >= HANDOFF_MIGRATION:
                    break
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "insert into public.frontdesk_migrations (name) values (%s)",
                        (migration.name,),
                    )

        async def connect() -> StorageBackend:
            return await PostgresStorage.connect(dsn, max_size=2)

        def pending() -> object:
            with psycopg.connect(dsn) as conn:
                return conn.execute(
                    "select count(*) from public.agent_turns where pending"
                ).fetchone()

        def upgrade() -> None:
            assert pending() == (1,)  # the message that waited at the hand-off
            assert apply_migrations(dsn)[0] == HANDOFF_MIGRATION
            assert pending() == (0,)

        await _upgrade(connect, upgrade, connect)


SESSION_ID = "00000000-0000-4000-8000-000000000001"
T0 = "2026-05-01T12:00:00.000000+00:00"
T1 = "2026-05-01T12:00:30.000000+00:00"


def _write_schema_3(path: Path) -> None:
    """A file as the previous SQLite release left a hand-off with a message waiting."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for step in (1, 2, 3):
            for statement in sqlite_module._UPGRADES[step].split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(
            "insert into agent_sessions (id, workspace_id, agent_id, conversation_id,"
            " contact_id, version, status, current_mode, state, turn_count, tokens_used,"
            " created_at, updated_at, last_activity_at, run_token, run_expires_at, run_inputs)"
            " values (?, 'w', ?, 'wa:1', 'u', 4, 'handed_off', 'greeting', '{}', 3, 0,"
            " ?, ?, ?, 1, ?, '[2]')",
            (SESSION_ID, TEST_AGENT_ID, T0, T0, T0, T1),
        )
        for number, role, content, pending in (
            (1, "user", "hola", 0),
            (2, "user", "¿sigues?", 1),
            (3, "assistant", "Te paso con Lucía.", 0),
        ):
            conn.execute(
                "insert into agent_turns (session_id, turn_number, role, content,"
                " tools_called, tokens_used, created_at, message_id, pending)"
                " values (?, ?, ?, ?, '[]', 0, ?, ?, ?)",
                (SESSION_ID, number, role, content, T0, f"wamid.{content}", pending),
            )
        conn.execute("pragma user_version = 3")
    finally:
        conn.close()


async def test_sqlite_of_schema_3_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _write_schema_3(path)
    storage = SQLiteStorage(path)
    try:
        with sqlite3.connect(path) as conn:
            assert conn.execute("pragma user_version").fetchone() == (4,)
            left = conn.execute(
                "select (select count(*) from agent_turns where pending = 1), run_expires_at"
                " from agent_sessions"
            ).fetchone()
        assert left == (0, None)
        await _check_the_conversation_stays_with_the_person(storage, SESSION_ID)
    finally:
        await storage.aclose()
