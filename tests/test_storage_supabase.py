"""SupabaseStorage through the real supabase-py client, over real HTTP, on real PostgreSQL.

The database is a throwaway PostgreSQL (or FRONTDESK_TEST_POSTGRES_DSN) with Supabase's
roles and frontdesk's migrations; in front of it, the PostgREST-protocol gateway in
`tests/support/gateway.py`, itself tested against PostgREST's documented behaviour. With
SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY set, the contract suite also runs against that
live project.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from supabase import AsyncClientOptions, acreate_client, create_client

from frontdesk import (
    AgentRegistry,
    SessionManager,
    SessionNotFoundError,
    StorageError,
    StorageUnavailableError,
    ValidationError,
    open_storage,
)
from frontdesk.storage import Commit
from frontdesk.storage.migrations import applied_migrations, apply_migrations, migrations
from frontdesk.storage.supabase import SupabaseStorage
from frontdesk.testing import TEST_AGENT_ID, StorageContractTests, make_test_agent
from tests.support.gateway import PostgrestGateway
from tests.support.postgres import setup_supabase_roles

JWT_SECRET = "frontdesk-supabase-tests-jwt-secret-0123456789"


@pytest.fixture(scope="module")
def migrated_database(module_database: str) -> str:
    """The module's database with Supabase's roles and frontdesk's migrations."""
    setup_supabase_roles(module_database)
    apply_migrations(module_database)
    return module_database


@pytest.fixture(scope="module")
def gateway(migrated_database: str) -> Iterator[PostgrestGateway]:
    authenticator = setup_supabase_roles(migrated_database)
    with PostgrestGateway(authenticator, JWT_SECRET, pool_size=24) as gateway:
        yield gateway


async def _storage(gateway: PostgrestGateway, key: str) -> SupabaseStorage:
    return await SupabaseStorage.from_env(url=gateway.url, key=key)


@pytest.fixture
async def storage(gateway: PostgrestGateway) -> AsyncIterator[SupabaseStorage]:
    storage = await _storage(gateway, gateway.make_jwt("service_role"))
    yield storage
    await storage.aclose()


@pytest.fixture
def manager(storage: SupabaseStorage) -> SessionManager:
    registry = AgentRegistry()
    registry.register(make_test_agent())
    return SessionManager(storage, workspace_id=f"ws-{uuid.uuid4()}", registry=registry)


class TestSupabaseContract(StorageContractTests):
    """The whole contract: supabase-py -> HTTP -> gateway -> PostgreSQL."""

    @pytest.fixture
    async def storage(self, gateway: PostgrestGateway) -> AsyncIterator[SupabaseStorage]:
        storage = await _storage(gateway, gateway.make_jwt("service_role"))
        yield storage
        await storage.aclose()


LIVE = bool(os.environ.get("SUPABASE_URL") and os.environ.get("SUPABASE_SERVICE_ROLE_KEY"))

if LIVE:

    class TestLiveSupabaseContract(StorageContractTests):
        """The contract against the live project in SUPABASE_URL (migrations applied)."""

        concurrency = 10

        @pytest.fixture
        async def storage(self) -> AsyncIterator[SupabaseStorage]:
            storage = await SupabaseStorage.from_env()
            yield storage
            await storage.aclose()

else:

    def test_live_supabase_contract() -> None:
        pytest.skip(
            "live Supabase: set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY to run the "
            "contract suite against a project with frontdesk's migrations applied"
        )


# -- one request per operation ---------------------------------------------------------------


async def test_each_operation_is_one_http_request(
    manager: SessionManager, gateway: PostgrestGateway
) -> None:
    async def count(operation: Any) -> int:
        gateway.reset_request_count()
        await operation
        return gateway.request_count

    assert (
        await count(
            manager.create_session(agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u")
        )
        == 1
    )
    session = await manager.get_session_by_conversation("c", TEST_AGENT_ID)
    assert session is not None
    sid = session.id
    operations = {
        "get_or_create_session": manager.get_or_create_session(
            agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
        ),
        "get_session": manager.get_session(sid),
        "get_state": manager.get_state(sid),
        "add_intent_seen": manager.add_intent_seen(sid, "greeting"),
        "update_captured_data": manager.update_captured_data(sid, {"name": "Ana"}),
        "add_turn": manager.add_turn(sid, role="user", content="hola", tokens_used=5),
        "get_turns": manager.get_turns(sid, limit=5),
        "get_total_tokens_used": manager.get_total_tokens_used(sid),
        "get_turn_count": manager.get_turn_count(sid),
        "update_session_with_version": manager.update_session_with_version(
            sid, expected_version=4, current_mode="collecting"
        ),
        "close_session": manager.close_session(sid, expected_version=5),
    }
    counts = {name: await count(operation) for name, operation in operations.items()}
    assert counts == dict.fromkeys(operations, 1)


# -- keys and roles --------------------------------------------------------------------------


async def test_anon_key_is_refused(gateway: PostgrestGateway, manager: SessionManager) -> None:
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    anon = await _storage(gateway, gateway.make_jwt("anon"))
    try:
        with pytest.raises(StorageError, match="key was refused"):
            await anon.get_session(manager.workspace_id, session.id)
        with pytest.raises(StorageError, match="key was refused"):
            await anon.commit(manager.workspace_id, session.id, _empty_commit())
    finally:
        await anon.aclose()
    assert (await manager.get_session(session.id)).version == 1


async def test_anon_cannot_read_the_tables(migrated_database: str) -> None:
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        conn.execute("set role anon")
        for table in ("agent_sessions", "agent_turns"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("select * from {}").format(sql.Identifier("public", table)))
        conn.execute("reset role")


async def test_wrong_key_is_refused(gateway: PostgrestGateway) -> None:
    other = PostgrestGateway.__new__(PostgrestGateway)
    other.jwt_secret = "another-projects-secret-0123456789-abcdefgh"
    forged = PostgrestGateway.make_jwt(other, "service_role")
    storage = await _storage(gateway, forged)
    try:
        with pytest.raises(StorageError, match="key was refused"):
            await storage.find_active_session("w", "c", TEST_AGENT_ID)
    finally:
        await storage.aclose()


# -- failures --------------------------------------------------------------------------------


@pytest.fixture
def once(storage: SupabaseStorage) -> SessionManager:
    """A manager that sends each write once: the backend's own failure classes show."""
    registry = AgentRegistry()
    registry.register(make_test_agent())
    return SessionManager(
        storage, workspace_id=f"ws-{uuid.uuid4()}", registry=registry, write_attempts=1
    )


async def test_write_dropped_after_commit_is_consistent(
    once: SessionManager, gateway: PostgrestGateway
) -> None:
    manager = once
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    gateway.fail_next("drop_after_commit", function="frontdesk_commit_once")
    with pytest.raises(StorageUnavailableError) as excinfo:
        await manager.add_turn(session.id, role="user", content="did it land?", tokens_used=7)
    assert excinfo.value.may_have_applied is True
    assert "re-read" in str(excinfo.value)
    after = await manager.get_session(session.id)
    turns = await manager.get_turns(session.id)
    # It landed whole: one version, one turn, counters that agree with the turns.
    assert after.version == 2
    assert [t.content for t in turns] == ["did it land?"]
    assert await manager.get_turn_count(session.id) == 1
    assert await manager.get_total_tokens_used(session.id) == 7


async def test_write_dropped_before_it_ran_leaves_nothing(
    once: SessionManager, gateway: PostgrestGateway
) -> None:
    manager = once
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    gateway.fail_next("drop_before", function="frontdesk_commit_once")
    with pytest.raises(StorageUnavailableError) as excinfo:
        await manager.add_intent_seen(session.id, "lost")
    assert excinfo.value.may_have_applied is True  # the client cannot tell the two apart
    assert await manager.get_session(session.id) == session


async def test_unreachable_server(manager: SessionManager) -> None:
    storage = await SupabaseStorage.from_env(url="http://127.0.0.1:9", key="k")
    try:
        with pytest.raises(StorageUnavailableError) as excinfo:
            await storage.find_active_session("w", "c", "a")
        assert excinfo.value.may_have_applied is False
        with pytest.raises(StorageUnavailableError) as write:
            await storage.commit("w", str(uuid.uuid4()), _empty_commit())
        assert write.value.may_have_applied is False  # refused before anything was sent
        assert re.search(r"cannot connect, ConnectError after \d+\.\d\d s: .+", str(write.value))
    finally:
        await storage.aclose()


# -- failures injected at the database, behind the gateway -----------------------------------


async def _stored(manager: SessionManager, session_id: str) -> tuple[int, list[str]]:
    """What is really stored: the session's version and its turns' contents."""
    session = await manager.get_session(session_id)
    return session.version, [turn.content for turn in await manager.get_turns(session_id)]


@pytest.fixture
def small_gateway(migrated_database: str) -> Iterator[PostgrestGateway]:
    """A gateway of its own with one database connection, given up on after 50 ms."""
    authenticator = setup_supabase_roles(migrated_database)
    with PostgrestGateway(authenticator, JWT_SECRET, pool_size=1, pool_timeout=0.05) as gateway:
        yield gateway


@pytest.fixture
async def small_manager(small_gateway: PostgrestGateway) -> AsyncIterator[SessionManager]:
    storage = await _storage(small_gateway, small_gateway.make_jwt("service_role"))
    registry = AgentRegistry()
    registry.register(make_test_agent())
    # Each write sent once: the backend's own failure classes show.
    yield SessionManager(
        storage, workspace_id=f"ws-{uuid.uuid4()}", registry=registry, write_attempts=1
    )
    small_gateway.clear_failures()
    await asyncio.to_thread(small_gateway.wait_idle)
    await storage.aclose()


async def test_backend_terminated_before_commit(
    once: SessionManager, gateway: PostgrestGateway
) -> None:
    manager = once
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    gateway.fail_next("terminate_before_commit", function="frontdesk_commit_once")
    with pytest.raises(StorageUnavailableError, match="57P01") as excinfo:
        await manager.add_turn(session.id, role="user", content="cut off", tokens_used=3)
    # 57P01 can also come after the commit record (see the next test): the client cannot
    # tell which, so a write is never called safe to retry.
    assert excinfo.value.may_have_applied is True
    assert await _stored(manager, session.id) == (1, [])


async def test_backend_terminated_after_commit(
    once: SessionManager, gateway: PostgrestGateway
) -> None:
    manager = once
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    gateway.fail_next("terminate_after_commit", function="frontdesk_commit_once")
    with pytest.raises(StorageUnavailableError, match="57P01") as excinfo:
        await manager.add_turn(session.id, role="user", content="landed", tokens_used=3)
    assert excinfo.value.may_have_applied is True
    assert "re-read" in str(excinfo.value)
    assert await _stored(manager, session.id) == (2, ["landed"])


async def test_commit_answer_lost_on_the_database_connection(
    once: SessionManager, gateway: PostgrestGateway
) -> None:
    manager = once
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    gateway.fail_next("lose_commit_answer", function="frontdesk_commit_once")
    with pytest.raises(StorageUnavailableError, match="PGRST001") as excinfo:
        await manager.add_turn(session.id, role="user", content="committed", tokens_used=2)
    assert excinfo.value.may_have_applied is True
    assert await _stored(manager, session.id) == (2, ["committed"])


async def test_a_read_whose_database_connection_failed_is_retried(
    manager: SessionManager, gateway: PostgrestGateway
) -> None:
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    gateway.fail_next("lose_commit_answer", function="frontdesk_get_session")
    gateway.reset_request_count()
    assert await manager.get_session(session.id) == session
    assert gateway.request_count == 2  # PGRST001, then a fresh connection


async def test_a_dead_pooled_connection_fails_a_write_as_unknown(
    small_manager: SessionManager, small_gateway: PostgrestGateway
) -> None:
    session = await small_manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    assert small_gateway.terminate_backends() == 1
    with pytest.raises(StorageUnavailableError, match="57P01") as excinfo:
        await small_manager.add_intent_seen(session.id, "greeting")
    assert excinfo.value.may_have_applied is True
    assert await _stored(small_manager, session.id) == (1, [])


async def test_a_read_on_a_dead_pooled_connection_is_retried_once(
    small_manager: SessionManager, small_gateway: PostgrestGateway
) -> None:
    session = await small_manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    assert small_gateway.terminate_backends() == 1
    small_gateway.reset_request_count()
    assert await small_manager.get_session(session.id) == session
    assert small_gateway.request_count == 2  # 57P01, then a fresh connection


async def test_a_read_is_retried_only_once(
    small_manager: SessionManager, small_gateway: PostgrestGateway
) -> None:
    session = await small_manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    for _ in range(3):
        small_gateway.fail_next("terminate_before_commit", function="frontdesk_get_session")
    small_gateway.reset_request_count()
    with pytest.raises(StorageUnavailableError, match="57P01") as excinfo:
        await small_manager.get_session(session.id)
    assert excinfo.value.may_have_applied is False  # a read changes nothing
    assert small_gateway.request_count == 2
    assert len(small_gateway.pending_failures) == 1


async def test_an_exhausted_pool_is_safe_to_retry(
    small_manager: SessionManager, small_gateway: PostgrestGateway
) -> None:
    session = await small_manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    hold = small_gateway.hold_next(function="frontdesk_turn_stats")
    busy = asyncio.create_task(small_manager.get_turn_count(session.id))
    assert await asyncio.to_thread(hold.wait_started)  # it has the only connection
    try:
        with pytest.raises(StorageUnavailableError, match="PGRST003") as excinfo:
            await small_manager.add_turn(session.id, role="user", content="no room")
    finally:
        hold.release()
    assert excinfo.value.may_have_applied is False
    assert "safe to retry" in str(excinfo.value)
    assert await busy == 0
    assert await _stored(small_manager, session.id) == (1, [])


async def test_a_write_that_timed_out_may_still_apply(gateway: PostgrestGateway) -> None:
    storage = await SupabaseStorage.from_env(
        url=gateway.url, key=gateway.make_jwt("service_role"), request_timeout=0.2
    )
    registry = AgentRegistry()
    registry.register(make_test_agent())
    manager = SessionManager(
        storage, workspace_id=f"ws-{uuid.uuid4()}", registry=registry, write_attempts=1
    )
    try:
        session = await manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
        )
        hold = gateway.hold_next(function="frontdesk_commit_once")
        try:
            with pytest.raises(StorageUnavailableError) as excinfo:
                await manager.add_turn(session.id, role="user", content="slow", tokens_used=1)
        finally:
            hold.release()
        assert excinfo.value.may_have_applied is True
        assert excinfo.value.operation == "frontdesk_commit_once"
        assert re.search(
            r"'frontdesk_commit_once' failed \(no answer within 0\.2 s: ReadTimeout after \d+\.\d\d s\)",
            str(excinfo.value),
        )
        # The client gave up; the database had not. Once the request ends, it has applied.
        await asyncio.to_thread(gateway.wait_idle)
        assert await _stored(manager, session.id) == (2, ["slow"])
    finally:
        gateway.clear_failures()
        await storage.aclose()


async def test_a_read_that_timed_out_is_not_retried(gateway: PostgrestGateway) -> None:
    storage = await SupabaseStorage.from_env(
        url=gateway.url, key=gateway.make_jwt("service_role"), request_timeout=0.2
    )
    try:
        hold = gateway.hold_next(function="frontdesk_find_active_session")
        gateway.reset_request_count()
        try:
            with pytest.raises(StorageUnavailableError, match="ReadTimeout after") as excinfo:
                await storage.find_active_session("w", "c", "a")
        finally:
            hold.release()
        assert excinfo.value.may_have_applied is False
        assert gateway.request_count == 1  # request_timeout bounds the wait
    finally:
        gateway.clear_failures()
        await asyncio.to_thread(gateway.wait_idle)
        await storage.aclose()


class _RefuseAfter(httpx.AsyncBaseTransport):
    """The network: real HTTP, except that connections are refused once `refuse()` is true."""

    def __init__(self, refuse: Callable[[httpx.Request], bool]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._refuse = refuse

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._refuse(request):
            raise httpx.ConnectError("connection refused", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_create_retry_that_cannot_connect_still_says_it_may_have_applied(
    gateway: PostgrestGateway, manager: SessionManager
) -> None:
    creates = 0

    def refuse_the_retry(request: httpx.Request) -> bool:
        nonlocal creates
        creates += request.url.path.endswith("/frontdesk_create_session")
        return creates == 2

    async with httpx.AsyncClient(transport=_RefuseAfter(refuse_the_retry)) as http:
        client = await acreate_client(
            gateway.url,
            gateway.make_jwt("service_role"),
            options=AsyncClientOptions(httpx_client=http),
        )
        flaky = SessionManager(
            SupabaseStorage(client),
            workspace_id=manager.workspace_id,
            registry=manager.registry,
            write_attempts=1,
        )
        gateway.fail_next("terminate_after_commit", function="frontdesk_create_session")
        with pytest.raises(StorageUnavailableError) as excinfo:
            await flaky.create_session(agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u")
    assert creates == 2
    assert excinfo.value.may_have_applied is True
    assert "57P01" in str(excinfo.value)
    assert "the retry failed too: cannot connect" in str(excinfo.value)
    # The first attempt had committed: the session is there.
    assert await manager.get_session_by_conversation("c", TEST_AGENT_ID) is not None


async def test_missing_migrations_say_what_to_do(fresh_database: str) -> None:
    authenticator = setup_supabase_roles(fresh_database)
    with PostgrestGateway(authenticator, JWT_SECRET) as bare:
        storage = await _storage(bare, bare.make_jwt("service_role"))
        try:
            with pytest.raises(StorageError, match="frontdesk db migrate"):
                await storage.find_active_session("w", "c", "a")
        finally:
            await storage.aclose()


async def test_a_session_id_that_is_not_a_uuid_is_missing(manager: SessionManager) -> None:
    with pytest.raises(SessionNotFoundError):
        await manager.get_session("not-a-uuid")
    with pytest.raises(SessionNotFoundError):
        await manager.add_turn("not-a-uuid", role="user", content="x")


# -- configuration ---------------------------------------------------------------------------


async def test_from_env_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    with pytest.raises(StorageError, match="set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"):
        await SupabaseStorage.from_env()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("not-a-url", id="no-scheme"),
        pytest.param("ftp://example.supabase.co", id="other-scheme"),
        pytest.param("https://", id="no-host"),
        pytest.param("http://127.0.0.1:99999", id="bad-port"),
        pytest.param("https://exa mple.supabase.co", id="space"),
        pytest.param("https://example.supabase.co\n", id="newline"),
        pytest.param("http://[::1", id="broken-ipv6"),
    ],
)
async def test_a_malformed_url_is_refused_before_connecting(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StorageError, match=r"^the url argument is not a valid URL") as excinfo:
        await SupabaseStorage.from_env(url=url, key="k")
    assert repr(url) in str(excinfo.value)
    monkeypatch.setenv("SUPABASE_URL", url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "k")
    with pytest.raises(StorageError, match=r"^SUPABASE_URL is not a valid URL"):
        await open_storage("supabase")


async def test_a_client_that_is_not_an_async_client_is_refused() -> None:
    client = create_client("https://example.supabase.co", "k")  # the sync client
    with pytest.raises(ValidationError, match="must be supabase-py's AsyncClient") as caught:
        SupabaseStorage(client)  # type: ignore[arg-type]
    assert caught.value.field == "client"


@pytest.mark.parametrize("seconds", [0, -1, "10"])
async def test_a_request_timeout_is_a_number_of_seconds(seconds: object) -> None:
    with pytest.raises(ValidationError, match="must be a number of seconds > 0") as caught:
        await SupabaseStorage.from_env(
            url="https://example.supabase.co",
            key="k",
            request_timeout=seconds,  # type: ignore[arg-type]
        )
    assert caught.value.field == "request_timeout"


async def test_a_client_with_a_url_that_cannot_work_is_refused() -> None:
    client = await acreate_client("https://exa mple.supabase.co", "k")
    with pytest.raises(StorageError, match="the client's supabase_url is not a valid URL"):
        SupabaseStorage(client)


@pytest.mark.parametrize("key", ["two words", "line\n", "\u00e9l\u00e8ve"])
async def test_a_key_that_cannot_be_sent_is_refused(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
    with pytest.raises(StorageError, match="SUPABASE_SERVICE_ROLE_KEY contains spaces"):
        await SupabaseStorage.from_env(url="https://example.supabase.co")


async def test_open_storage_by_name(
    gateway: PostgrestGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_URL", gateway.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", gateway.make_jwt("service_role"))
    monkeypatch.setenv("FRONTDESK_STORAGE", "supabase")
    storage = await open_storage()
    try:
        assert isinstance(storage, SupabaseStorage)
        assert await storage.find_active_session("w", "c", "a") is None
    finally:
        await storage.aclose()


async def test_a_client_of_your_own(gateway: PostgrestGateway) -> None:
    async with httpx.AsyncClient() as http:
        client = await acreate_client(
            gateway.url,
            gateway.make_jwt("service_role"),
            options=AsyncClientOptions(httpx_client=http),
        )
        storage = SupabaseStorage(client)
        assert await storage.get_session("w", str(uuid.uuid4())) is None
        await storage.aclose()  # leaves a passed-in client open
        assert not http.is_closed


# -- the schema ------------------------------------------------------------------------------


def test_migrations_apply_once(fresh_database: str) -> None:
    setup_supabase_roles(fresh_database)
    names = [m.name for m in migrations()]
    assert names == sorted(names)
    assert names[0] == "0001_sessions.sql"
    assert apply_migrations(fresh_database) == names
    assert apply_migrations(fresh_database) == []
    assert applied_migrations(fresh_database) == names


def test_security_settings(migrated_database: str) -> None:
    with psycopg.connect(migrated_database) as conn:
        rls = dict(
            conn.execute(
                "select relname, relrowsecurity from pg_class "
                "where relname in ('agent_sessions', 'agent_turns', 'frontdesk_migrations')"
            ).fetchall()
        )
        assert rls == {"agent_sessions": True, "agent_turns": True, "frontdesk_migrations": True}
        policies = conn.execute(
            "select count(*) from pg_policies where tablename like 'agent_%'"
        ).fetchone()
        assert policies == (0,)
        functions = conn.execute(
            "select p.oid::regprocedure::text, p.prosecdef, "
            "has_function_privilege('anon', p.oid, 'execute'), "
            "has_function_privilege('authenticated', p.oid, 'execute'), "
            "has_function_privilege('service_role', p.oid, 'execute') "
            "from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
            "where n.nspname = 'public' and p.proname like 'frontdesk\\_%'"
        ).fetchall()
        assert len(functions) >= 8
        for name, definer, anon, authenticated, service in functions:
            assert (definer, anon, authenticated, service) == (False, False, False, True), name


def test_queries_use_the_indexes(fresh_database: str) -> None:
    setup_supabase_roles(fresh_database)
    apply_migrations(fresh_database)
    with psycopg.connect(fresh_database) as conn:
        # Enough rows, spread over workspaces and conversations, for real plans.
        conn.execute(
            "insert into public.agent_sessions "
            "(id, workspace_id, agent_id, conversation_id, contact_id, status, current_mode) "
            "select gen_random_uuid(), 'w' || (i % 20), 'a', 'c' || i, 'u' || i, "
            "case when i % 3 = 0 then 'closed' else 'active' end, 'm' "
            "from generate_series(1, 20000) i"
        )
        conn.execute(
            "insert into public.agent_turns (session_id, turn_number, role, content) "
            "select s.id, n, 'user', 'x' from "
            "(select id from public.agent_sessions limit 2000) s, generate_series(1, 20) n"
        )
        conn.execute("analyze public.agent_sessions")
        conn.execute("analyze public.agent_turns")
        some = conn.execute("select id from public.agent_sessions limit 1").fetchone()
        assert some is not None
        session_id = sql.Literal(str(some[0]))
        plans = {
            "agent_sessions_one_active": sql.SQL(
                "select * from public.agent_sessions where workspace_id = 'w1' "
                "and conversation_id = 'c1' and agent_id = 'a' and status = 'active'"
            ),
            "agent_sessions_pkey": sql.SQL(
                "select * from public.agent_sessions where id = {} and workspace_id = 'w1'"
            ).format(session_id),
            "agent_turns_pkey": sql.SQL(
                "select * from public.agent_turns where session_id = {} "
                "order by turn_number desc limit 10"
            ).format(session_id),
        }
        for index, query in plans.items():
            rows = conn.execute(sql.SQL("explain {}").format(query)).fetchall()
            plan = "\n".join(str(row[0]) for row in rows)
            assert f"using {index} on" in plan, plan


def _empty_commit() -> Commit:
    return Commit()


# -- what failures mean ----------------------------------------------------------------------
# These replace the network (not frontdesk) with httpx's MockTransport, to produce answers
# no local server gives: a proxy's HTML error page, a timeout while connecting.


def _responding(handler: Any) -> Any:
    async def make() -> SupabaseStorage:
        http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        client = await acreate_client(
            "http://project.invalid", "key", options=AsyncClientOptions(httpx_client=http)
        )
        return SupabaseStorage(client, http_client=http)

    return make


def _postgrest_error(code: str, status: int) -> Any:
    body = {"code": code, "message": "refused", "details": None, "hint": None}
    return lambda request: httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("handler", "error", "applied_on_write"),
    [
        pytest.param(
            lambda request: httpx.Response(504, text="<html>Gateway Timeout</html>"),
            StorageUnavailableError,
            True,
            id="proxy-504-page",
        ),
        pytest.param(
            lambda request: httpx.Response(502, text="<html>Bad Gateway</html>"),
            StorageUnavailableError,
            True,
            id="proxy-502-page",
        ),
        pytest.param(
            lambda request: httpx.Response(429, text="Too Many Requests"),
            StorageUnavailableError,
            False,
            id="rate-limited",
        ),
        pytest.param(
            lambda request: httpx.Response(401, json={"message": "Invalid API key"}),
            StorageError,
            None,
            id="gateway-refuses-key",
        ),
        pytest.param(
            lambda request: httpx.Response(403, text="<html>Forbidden</html>"),
            StorageError,
            None,
            id="forbidden-page",
        ),
        pytest.param(
            lambda request: httpx.Response(503, text="upstream connect error"),
            StorageUnavailableError,
            True,
            id="proxy-503-page",
        ),
        pytest.param(_postgrest_error("23514", 400), StorageError, None, id="check-violation"),
        pytest.param(_postgrest_error("22003", 400), StorageError, None, id="out-of-range"),
        pytest.param(_postgrest_error("XX000", 500), StorageError, None, id="internal-error"),
        pytest.param(
            _postgrest_error("40001", 500), StorageUnavailableError, False, id="serialization"
        ),
        pytest.param(_postgrest_error("40P01", 500), StorageUnavailableError, False, id="deadlock"),
        pytest.param(
            _postgrest_error("40003", 500), StorageUnavailableError, True, id="completion-unknown"
        ),
        pytest.param(
            _postgrest_error("53300", 503), StorageUnavailableError, False, id="too-many-conns"
        ),
        pytest.param(
            _postgrest_error("57014", 500), StorageUnavailableError, False, id="statement-timeout"
        ),
        pytest.param(
            _postgrest_error("57P01", 503), StorageUnavailableError, True, id="admin-shutdown"
        ),
        pytest.param(
            _postgrest_error("57P02", 500), StorageUnavailableError, True, id="crash-shutdown"
        ),
        pytest.param(
            _postgrest_error("08006", 503), StorageUnavailableError, True, id="connection-failure"
        ),
        pytest.param(
            _postgrest_error("PGRST000", 503), StorageUnavailableError, False, id="db-down"
        ),
        pytest.param(
            _postgrest_error("PGRST001", 503), StorageUnavailableError, True, id="connection-lost"
        ),
        pytest.param(
            _postgrest_error("PGRST002", 503), StorageUnavailableError, False, id="no-schema-cache"
        ),
        pytest.param(
            _postgrest_error("PGRST003", 504), StorageUnavailableError, False, id="pool-timeout"
        ),
    ],
)
async def test_failure_mapping(
    handler: Any, error: type[Exception], applied_on_write: bool | None
) -> None:
    storage = await _responding(handler)()
    try:
        with pytest.raises(error) as excinfo:
            await storage.commit("w", str(uuid.uuid4()), _empty_commit())
        if applied_on_write is None:
            assert not isinstance(excinfo.value, StorageUnavailableError)
        else:
            assert isinstance(excinfo.value, StorageUnavailableError)
            assert excinfo.value.may_have_applied is applied_on_write
        if isinstance(excinfo.value, StorageUnavailableError):
            with pytest.raises(StorageUnavailableError) as read:
                await storage.get_session("w", str(uuid.uuid4()))
            assert read.value.may_have_applied is False
    finally:
        await storage.aclose()


async def test_connect_timeout_means_nothing_was_sent() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("no route", request=request)

    storage = await _responding(refuse)()
    try:
        with pytest.raises(StorageUnavailableError) as excinfo:
            await storage.commit("w", str(uuid.uuid4()), _empty_commit())
        assert excinfo.value.may_have_applied is False
    finally:
        await storage.aclose()


async def test_reads_are_retried_after_a_dropped_connection(
    manager: SessionManager, gateway: PostgrestGateway
) -> None:
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    gateway.fail_next("drop_before", function="frontdesk_get_session")
    assert await manager.get_session(session.id) == session


async def test_a_create_whose_answer_was_lost_is_retried_safely(
    manager: SessionManager, gateway: PostgrestGateway
) -> None:
    gateway.fail_next("drop_after_commit", function="frontdesk_create_session")
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    assert session.version == 1
    found = await manager.get_session_by_conversation("c", TEST_AGENT_ID)
    assert found == session


@pytest.mark.parametrize("variant", ["upper", "braces", "urn"])
async def test_only_canonical_session_ids(manager: SessionManager, variant: str) -> None:
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    other = {
        "upper": session.id.upper(),
        "braces": "{" + session.id + "}",
        "urn": "urn:uuid:" + session.id,
    }[variant]
    with pytest.raises(SessionNotFoundError):
        await manager.get_session(other)
