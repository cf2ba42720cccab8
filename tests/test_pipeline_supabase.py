"""The message pipeline on Supabase beyond the contract: requests, lost answers, the upgrade.

Lost answers are real here: the PostgREST-protocol gateway runs the function, lets its
transaction commit, then drops the connection before answering; the manager, not knowing
whether the write applied, sends it again with the same idempotency key.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from frontdesk import (
    AgentRegistry,
    InboundMessage,
    NewTurn,
    SessionChange,
    SessionManager,
    StorageUnavailableError,
)
from frontdesk.storage.migrations import applied_migrations, apply_migrations, migrations
from frontdesk.storage.supabase import SupabaseStorage
from frontdesk.testing import TEST_AGENT_ID, make_test_agent
from tests.support.gateway import PostgrestGateway
from tests.support.postgres import setup_supabase_roles

JWT_SECRET = "frontdesk-pipeline-tests-jwt-secret-0123456789"
PIPELINE = "0003_pipeline.sql"


@pytest.fixture(scope="module")
def gateway(module_database: str) -> Iterator[PostgrestGateway]:
    authenticator = setup_supabase_roles(module_database)
    apply_migrations(module_database)
    with PostgrestGateway(authenticator, JWT_SECRET, pool_size=8) as gateway:
        yield gateway


@pytest.fixture
async def storage(gateway: PostgrestGateway) -> AsyncIterator[SupabaseStorage]:
    storage = await SupabaseStorage.from_env(url=gateway.url, key=gateway.make_jwt("service_role"))
    yield storage
    await storage.aclose()


@pytest.fixture
def manager(storage: SupabaseStorage) -> SessionManager:
    registry = AgentRegistry()
    registry.register(make_test_agent())
    return SessionManager(storage, workspace_id=f"ws-{uuid.uuid4()}", registry=registry)


def inbound(text: str) -> InboundMessage:
    return InboundMessage(
        agent_id=TEST_AGENT_ID,
        conversation_id="wa:+34600111222",
        contact_id="+34600111222",
        message_id=f"wamid.{text}",
        content=text,
    )


def answer(text: str) -> SessionChange:
    return SessionChange(turns=[NewTurn(role="assistant", content=text)])


async def test_a_message_costs_two_requests(
    manager: SessionManager, gateway: PostgrestGateway
) -> None:
    gateway.reset_request_count()
    receipt = await manager.receive(inbound("hola"))
    assert receipt.run is not None
    await manager.complete(receipt.run, answer("¡hola!"))
    assert gateway.request_count == 2
    gateway.reset_request_count()
    again = await manager.receive(inbound("hola"))
    assert again.duplicate
    assert gateway.request_count == 1


@pytest.mark.parametrize(
    ("function", "operation"),
    [
        ("frontdesk_receive", "receive"),
        ("frontdesk_complete", "complete"),
        ("frontdesk_commit_once", "add_turn"),
    ],
)
async def test_a_lost_answer_is_retried_into_exactly_once(
    manager: SessionManager, gateway: PostgrestGateway, function: str, operation: str
) -> None:
    if operation == "receive":
        gateway.fail_next("drop_after_commit", function=function)
    receipt = await manager.receive(inbound("hola"))
    assert not receipt.duplicate
    assert receipt.run is not None
    if operation == "complete":
        gateway.fail_next("drop_after_commit", function=function)
    done = await manager.complete(receipt.run, answer("¡hola!"))
    assert done.turns[0].turn_number == 2
    if operation == "add_turn":
        gateway.fail_next("drop_after_commit", function=function)
        await manager.add_turn(receipt.session.id, role="system", content="note")
    assert not gateway.pending_failures
    turns = await manager.get_turns(receipt.session.id)
    expected = ["hola", "¡hola!"] + (["note"] if operation == "add_turn" else [])
    assert [t.content for t in turns] == expected
    session = await manager.get_session(receipt.session.id)
    assert session.version == 1 + len(expected)


async def test_a_lost_answer_with_retries_off_says_it_may_have_applied(
    storage: SupabaseStorage, gateway: PostgrestGateway
) -> None:
    registry = AgentRegistry()
    registry.register(make_test_agent())
    once = SessionManager(
        storage, workspace_id=f"ws-{uuid.uuid4()}", registry=registry, write_attempts=1
    )
    gateway.fail_next("drop_after_commit", function="frontdesk_receive")
    with pytest.raises(StorageUnavailableError) as caught:
        await once.receive(inbound("hola"))
    assert caught.value.may_have_applied
    again = await once.receive(inbound("hola"))
    assert again.duplicate  # it had landed; a retry without the key sees a redelivery


def test_the_idempotency_table_is_closed_to_the_api_roles(module_database: str) -> None:
    with psycopg.connect(module_database) as conn:
        row = conn.execute(
            "select relrowsecurity, has_table_privilege('anon', oid, 'select'), "
            "has_table_privilege('authenticated', oid, 'select') "
            "from pg_class where relname = 'agent_idempotency'"
        ).fetchone()
    assert row == (True, False, False)


def _migrate_until(dsn: str, last: str) -> None:
    """Apply the shipped migrations up to `last` (excluded), as an older release did."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "create table if not exists public.frontdesk_migrations ("
            " name text primary key, applied_at timestamptz not null default now())"
        )
        for migration in migrations():
            if migration.name >= last:
                break
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "insert into public.frontdesk_migrations (name) values (%s)",
                    (migration.name,),
                )


_OLD_SESSION_COLUMNS = (
    "id, workspace_id, agent_id, conversation_id, contact_id, version, status, current_mode,"
    " state, turn_count, tokens_used, created_at, updated_at, last_activity_at"
)
_OLD_TURN_COLUMNS = (
    "session_id, turn_number, role, content, intent_detected, confidence, tools_called,"
    " tokens_used, created_at"
)


def _rows(dsn: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Every session and turn, in the columns the first release had."""
    with psycopg.connect(dsn) as conn:
        sessions = conn.execute(
            f"select {_OLD_SESSION_COLUMNS} from public.agent_sessions order by id"  # noqa: S608
        ).fetchall()
        turns = conn.execute(
            f"select {_OLD_TURN_COLUMNS} from public.agent_turns"  # noqa: S608
            " order by session_id, turn_number"
        ).fetchall()
    return sessions, turns


async def test_upgrading_a_database_that_holds_sessions_keeps_them(fresh_database: str) -> None:
    authenticator = setup_supabase_roles(fresh_database)
    _migrate_until(fresh_database, PIPELINE)
    assert PIPELINE not in applied_migrations(fresh_database)
    session_id = str(uuid.uuid4())
    # Written as the previous release wrote them, with its own functions.
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(
            "select public.frontdesk_create_session(%s, 'upgrade', %s, 'wa:+34600111222',"
            " '+34600111222', 'greeting')",
            (session_id, TEST_AGENT_ID),
        )
        conn.execute(
            "select public.frontdesk_commit(p_workspace_id => 'upgrade', p_session_id => %s,"
            " p_state_ops => %s::jsonb)",
            (session_id, '[{"op": "append_intent", "intent": "greeting"}]'),
        )
        conn.execute(
            "select public.frontdesk_commit(p_workspace_id => 'upgrade', p_session_id => %s,"
            " p_expected_version => 2, p_current_mode => 'collecting', p_turns => %s::jsonb)",
            (
                session_id,
                '[{"role": "user", "content": "hola", "tokens_used": 3},'
                ' {"role": "assistant", "content": "¡hola!", "tokens_used": 5}]',
            ),
        )
    before = _rows(fresh_database)
    assert len(before[0]) == 1
    assert len(before[1]) == 2

    applied = apply_migrations(fresh_database)
    assert applied[0] == PIPELINE

    assert _rows(fresh_database) == before
    registry = AgentRegistry()
    registry.register(make_test_agent())
    with PostgrestGateway(authenticator, JWT_SECRET) as gateway:
        storage = await SupabaseStorage.from_env(
            url=gateway.url, key=gateway.make_jwt("service_role")
        )
        try:
            manager = SessionManager(storage, workspace_id="upgrade", registry=registry)
            turns = await manager.get_turns(session_id)
            assert [(t.content, t.message_id) for t in turns] == [
                ("hola", None),
                ("¡hola!", None),
            ]
            assert await manager.get_total_tokens_used(session_id) == 8
            # The old session takes part in the pipeline at once.
            receipt = await manager.receive(inbound("¿tenéis la talla M?"))
            assert receipt.session.id == session_id
            assert receipt.turn.turn_number == 3
            assert receipt.run is not None
            assert [t.turn_number for t in receipt.run.history] == [1, 2]
            done = await manager.complete(receipt.run, answer("Sí"))
            assert done.session.version == 5
            assert done.session.state.intents_seen[0].intent == "greeting"
        finally:
            await storage.aclose()
