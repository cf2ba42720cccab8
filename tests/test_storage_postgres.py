"""PostgresStorage on a real, plain PostgreSQL (no Supabase roles), as an ordinary role.

The database is owned by an ordinary login role, which runs the migrations and then the
backend, as an application does on RDS, Cloud SQL or Neon.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from frontdesk import (
    AgentRegistry,
    SessionManager,
    StorageError,
    StorageUnavailableError,
    ValidationError,
    open_storage,
)
from frontdesk.storage import Commit, StorageBackend
from frontdesk.storage.migrations import apply_migrations
from frontdesk.storage.postgres import DSN_ENV, FALLBACK_DSN_ENV, PostgresStorage
from frontdesk.testing import TEST_AGENT_ID, StorageContractTests, make_test_agent
from tests.support.postgres import create_app_database


@pytest.fixture(scope="module")
def database(plain_postgres_dsn: str) -> Iterator[str]:
    """A migrated database on the plain server, shared by this module; the app role's DSN."""
    with create_app_database(plain_postgres_dsn) as dsn:
        apply_migrations(dsn)
        yield dsn


class TestPostgresContract(StorageContractTests):
    """The whole contract: psycopg -> PostgreSQL, the same SQL functions as Supabase."""

    @pytest.fixture
    async def storage(self, database: str) -> AsyncIterator[PostgresStorage]:
        storage = await PostgresStorage.connect(database, max_size=self.concurrency)
        yield storage
        await storage.aclose()


@pytest.fixture
async def storage(database: str) -> AsyncIterator[PostgresStorage]:
    storage = await PostgresStorage.connect(database, max_size=4)
    yield storage
    await storage.aclose()


@pytest.fixture
def manager(storage: PostgresStorage) -> SessionManager:
    registry = AgentRegistry()
    registry.register(make_test_agent())
    return SessionManager(storage, workspace_id=f"ws-{uuid.uuid4()}", registry=registry)


def test_implements_the_protocol(storage: PostgresStorage) -> None:
    assert isinstance(storage, StorageBackend)


async def test_each_operation_is_one_statement(manager: SessionManager) -> None:
    """One round trip per operation: count the statements the server ran for each."""
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    storage = manager.storage
    assert isinstance(storage, PostgresStorage)
    calls: list[str] = []
    original = psycopg.AsyncConnection.execute

    async def counting(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(str(query))
        return await original(self, query, params, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.AsyncConnection, "execute", counting)
        await manager.add_turn(session.id, role="user", content="hola")
        await manager.get_session(session.id)
        await manager.get_turns(session.id)
        await manager.add_intent_seen(session.id, "greeting")
    assert len(calls) == 4
    assert all(call.startswith("select public.frontdesk_") for call in calls)


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"min_size": -1}, "min_size", "must be from 0 to 10000, got -1"),
        ({"min_size": 5, "max_size": 2}, "max_size", "must be from 5 to 10000, got 2"),
        ({"min_size": 0, "max_size": 0}, "max_size", "must be from 1 to 10000, got 0"),
        ({"pool_timeout": 0}, "pool_timeout", "must be a number of seconds > 0, got 0"),
        ({"statement_timeout": "30"}, "statement_timeout", "must be a number of seconds > 0"),
    ],
)
async def test_a_bad_argument_is_refused_before_connecting(
    kwargs: dict[str, object], field: str, problem: str
) -> None:
    # Port 9 (discard) accepts no PostgreSQL: reaching it would be a StorageUnavailableError.
    with pytest.raises(ValidationError) as caught:
        await PostgresStorage.connect("postgresql://nobody@127.0.0.1:9/none", **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert problem in str(caught.value)
    assert str(caught.value).endswith("; no storage was opened.")


def test_the_constructor_takes_a_pool() -> None:
    with pytest.raises(
        ValidationError, match=r"must be a psycopg_pool\.AsyncConnectionPool"
    ) as caught:
        PostgresStorage("postgresql://nobody@127.0.0.1:9/none")  # type: ignore[arg-type]
    assert caught.value.field == "pool"


async def test_a_database_that_is_down_fails_in_one_line_and_in_bounded_time() -> None:
    with pytest.raises(StorageUnavailableError) as excinfo:
        await asyncio.wait_for(
            PostgresStorage.connect("postgresql://nobody@127.0.0.1:9/none", pool_timeout=2), 10
        )
    message = str(excinfo.value)
    assert "cannot connect to PostgreSQL at 127.0.0.1:9/none" in message
    assert excinfo.value.may_have_applied is False
    assert "\n" not in message


async def test_an_exhausted_pool_fails_in_bounded_time(database: str) -> None:
    storage = await PostgresStorage.connect(database, max_size=1, pool_timeout=0.5)
    try:
        async with storage.pool.connection():  # the only connection, held
            with pytest.raises(StorageUnavailableError) as excinfo:
                await asyncio.wait_for(storage.find_active_session("w", "c", "a"), 10)
        assert excinfo.value.may_have_applied is False
        assert "no free database connection within 0.5 s" in str(excinfo.value)
    finally:
        await storage.aclose()


async def test_a_statement_timeout_writes_nothing(database: str, manager: SessionManager) -> None:
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="slow", contact_id="u"
    )
    storage = await PostgresStorage.connect(database, max_size=1, statement_timeout=0.3)
    try:
        with psycopg.connect(database, autocommit=True) as blocker, blocker.transaction():
            blocker.execute(
                "select 1 from public.agent_sessions where id = %s for update", (session.id,)
            )
            with pytest.raises(StorageUnavailableError) as excinfo:
                await storage.commit(manager.workspace_id, session.id, Commit(current_mode="x"))
        assert excinfo.value.may_have_applied is False  # cancelled and rolled back
        assert "57014" in str(excinfo.value)
    finally:
        await storage.aclose()
    assert (await manager.get_session(session.id)).version == 1


async def test_a_connection_killed_during_a_write_may_have_applied(
    database: str, plain_postgres_dsn: str, manager: SessionManager
) -> None:
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="killed", contact_id="u"
    )
    storage = await PostgresStorage.connect(database, max_size=1)
    try:
        with psycopg.connect(database, autocommit=True) as blocker, blocker.transaction():
            blocker.execute(
                "select 1 from public.agent_sessions where id = %s for update", (session.id,)
            )
            write = asyncio.create_task(
                storage.commit(manager.workspace_id, session.id, Commit(current_mode="x"))
            )
            await _wait_for_lock_waiter(plain_postgres_dsn)
            with psycopg.connect(plain_postgres_dsn, autocommit=True) as admin:
                admin.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity"
                    " where wait_event_type = 'Lock' and query like '%frontdesk_commit%'"
                )
            with pytest.raises(StorageUnavailableError) as excinfo:
                await write
        assert excinfo.value.may_have_applied is True
        assert "re-read" in str(excinfo.value)
        # Reads get past the dead pooled connection by themselves.
        assert (await storage.get_session(manager.workspace_id, session.id)) is not None
    finally:
        await storage.aclose()


async def _wait_for_lock_waiter(admin_dsn: str) -> None:
    for _ in range(200):
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            row = admin.execute(
                "select count(*) from pg_stat_activity"
                " where wait_event_type = 'Lock' and query like '%frontdesk_commit%'"
            ).fetchone()
        if row and row[0]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the write never waited for the row lock")


async def test_missing_migrations_say_what_to_do(app_database: str) -> None:
    storage = await PostgresStorage.connect(app_database)
    try:
        with pytest.raises(StorageError, match="frontdesk db migrate"):
            await storage.find_active_session("w", "c", "a")
    finally:
        await storage.aclose()


async def test_from_env_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DSN_ENV, raising=False)
    monkeypatch.delenv(FALLBACK_DSN_ENV, raising=False)
    with pytest.raises(StorageError, match="set FRONTDESK_POSTGRES_DSN"):
        await PostgresStorage.from_env()


@pytest.mark.parametrize("variable", [DSN_ENV, FALLBACK_DSN_ENV])
async def test_open_storage_by_name(
    database: str, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.delenv(DSN_ENV, raising=False)
    monkeypatch.delenv(FALLBACK_DSN_ENV, raising=False)
    monkeypatch.setenv(variable, database)
    storage = await open_storage("postgres")
    try:
        assert isinstance(storage, PostgresStorage)
        assert await storage.find_active_session("w", "c", "a") is None
    finally:
        await storage.aclose()
