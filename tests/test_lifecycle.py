"""The session lifecycle through the manager: versions, migrations, hooks, argument checks.

The storage side (listing, deleting, purging, erasing on every backend) is the contract
suite's lifecycle module; these tests cover what the manager and the registry add.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import attrs
import psycopg
import pytest

from frontdesk import (
    AgentChangedError,
    AgentConfig,
    AgentRegistry,
    ErasureReport,
    InMemoryStorage,
    InvalidAgentConfigError,
    InvalidCursorError,
    InvalidTransitionError,
    SessionChange,
    SessionManager,
    SessionPage,
    SessionSummary,
    ValidationError,
)
from frontdesk.sessions import MIGRATIONS_KEY
from frontdesk.storage import MergeData
from frontdesk.storage import sqlite as sqlite_module
from frontdesk.storage.migrations import apply_migrations, migrations
from frontdesk.storage.postgres import PostgresStorage
from frontdesk.storage.sqlite import SQLiteStorage
from frontdesk.testing import TEST_AGENT_ID, make_test_agent
from tests.support.postgres import create_app_database

from .conftest import DistributionMaker

OLD_ID = "7a1e3c52-0d4b-4a57-9a55-1f6f8c1b2e10"

V2_STATES = attrs.evolve(
    make_test_agent().states,
    modes=("greeting", "gathering", "confirming", "done"),
    transitions={
        "greeting": ("gathering",),
        "gathering": ("confirming",),
        "confirming": ("gathering", "done"),
    },
)

MIGRATING_PACKAGE = """
from frontdesk import SessionChange, hookimpl
from frontdesk.storage import MergeData
from frontdesk.testing import make_test_agent
import attrs

STATES = attrs.evolve(
    make_test_agent().states,
    modes=("greeting", "gathering", "confirming", "done"),
    transitions={"greeting": ("gathering",), "gathering": ("confirming",),
                 "confirming": ("gathering", "done")},
)

@hookimpl
def register_agents():
    return [make_test_agent(states=STATES)]

@hookimpl
def migrate_session(agent, session):
    if session.current_mode in agent.states.modes:
        return None
    return SessionChange(current_mode="gathering", state_ops=[MergeData({"migrated": True})])
"""


@pytest.fixture
def registry() -> AgentRegistry:
    registry = AgentRegistry()
    registry.register(make_test_agent(version="1.0"))
    return registry


@pytest.fixture
def manager(registry: AgentRegistry) -> SessionManager:
    return SessionManager(InMemoryStorage(), workspace_id="acme", registry=registry)


async def _collecting_session(manager: SessionManager) -> str:
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    await manager.update_session_with_version(
        session.id, expected_version=1, current_mode="collecting"
    )
    return session.id


# -- agent versions --------------------------------------------------------------------------


def test_config_version_is_validated_and_round_trips() -> None:
    agent = make_test_agent(version="2.1.0")
    assert agent.release == "2.1.0"
    assert AgentConfig.from_dict(agent.to_dict()) == agent
    assert "version" not in make_test_agent().to_dict()
    assert make_test_agent().release is None
    with pytest.raises(InvalidAgentConfigError, match="version"):
        make_test_agent(version="")
    with pytest.raises(InvalidAgentConfigError, match="version"):
        make_test_agent(version="x" * 65)


def test_distribution_version_is_the_release_unless_the_config_sets_one(
    make_distribution: DistributionMaker,
) -> None:
    make_distribution(
        "frontdesk-migrating",
        version="3.4",
        modules={"migrating_agents": MIGRATING_PACKAGE},
        agents={"migrating": "migrating_agents"},
    )
    registry = AgentRegistry()
    registry.discover()
    assert registry.get(TEST_AGENT_ID).release == "3.4"


# -- migrations ------------------------------------------------------------------------------


async def test_changed_agent_without_hook_refuses_and_writes_nothing(
    manager: SessionManager, registry: AgentRegistry
) -> None:
    session_id = await _collecting_session(manager)
    before = await manager.get_session(session_id)
    registry.register(make_test_agent(version="2.0", states=V2_STATES), replace=True)
    with pytest.raises(AgentChangedError) as excinfo:
        await manager.update_session_with_version(
            session_id, expected_version=2, current_mode="confirming"
        )
    assert excinfo.value.mode == "collecting"
    assert excinfo.value.session_agent_version == "1.0"
    assert excinfo.value.installed_agent_version == "2.0"
    with pytest.raises(AgentChangedError):
        await manager.migrate_session(session_id)
    assert await manager.get_session(session_id) == before
    # Writes that do not move the session still work on the old mode.
    await manager.add_turn(session_id, role="user", content="still here")


async def test_plain_refusals_stay_invalid_transitions(manager: SessionManager) -> None:
    session_id = await _collecting_session(manager)
    with pytest.raises(InvalidTransitionError) as excinfo:
        await manager.update_session_with_version(
            session_id, expected_version=2, current_mode="done"
        )
    assert not isinstance(excinfo.value, AgentChangedError)


async def test_explicit_migration_records_itself(
    manager: SessionManager, registry: AgentRegistry
) -> None:
    session_id = await _collecting_session(manager)

    def migrate(agent: AgentConfig, session: object) -> SessionChange:
        return SessionChange(current_mode="gathering", state_ops=[MergeData({"v": 2})])

    registry.register(
        make_test_agent(version="2.0", states=V2_STATES), replace=True, migrate=migrate
    )
    migrated = await manager.migrate_session(session_id)
    assert migrated.version == 3
    assert (migrated.current_mode, migrated.agent_version) == ("gathering", "2.0")
    assert migrated.state.data["v"] == 2
    (record,) = migrated.state.data[MIGRATIONS_KEY]
    assert (record["from"], record["to"], record["from_mode"]) == ("1.0", "2.0", "collecting")
    assert await manager.migrate_session(session_id) == migrated, "nothing left to migrate"


async def test_hook_from_an_installed_package_migrates_its_sessions(
    make_distribution: DistributionMaker,
) -> None:
    make_distribution(
        "frontdesk-migrating",
        version="2.0",
        modules={"migrating_agents": MIGRATING_PACKAGE},
        agents={"migrating": "migrating_agents"},
    )
    registry = AgentRegistry()
    registry.register(make_test_agent(version="1.0"))
    storage = InMemoryStorage()
    old = SessionManager(storage, workspace_id="acme", registry=registry)
    session_id = await _collecting_session(old)
    registry.unregister(TEST_AGENT_ID)
    registry.discover()  # the upgrade: now the package's 2.0 serves the agent
    new = SessionManager(storage, workspace_id="acme", registry=registry)
    result = await new.commit(
        session_id, SessionChange(current_mode="confirming"), expected_version=None
    )
    assert result.session.current_mode == "confirming"
    assert result.session.agent_version == "2.0"
    assert result.session.state.data["migrated"] is True


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (SessionChange(current_mode="nowhere"), InvalidTransitionError),
        (SessionChange(status="closed"), ValidationError),
        ("gathering", ValidationError),
    ],
    ids=["unknown-mode", "status", "not-a-change"],
)
async def test_bad_migrations_are_refused(
    manager: SessionManager, registry: AgentRegistry, change: object, error: type[Exception]
) -> None:
    session_id = await _collecting_session(manager)
    before = await manager.get_session(session_id)
    registry.register(
        make_test_agent(version="2.0", states=V2_STATES),
        replace=True,
        migrate=lambda agent, session: change,  # type: ignore[arg-type,return-value]
    )
    with pytest.raises(error):
        await manager.migrate_session(session_id)
    assert await manager.get_session(session_id) == before


# -- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"inactive_for": timedelta(days=-1)},
        {"inactive_for": 30},
        {"inactive_for": timedelta(days=40000)},
        {"inactive_for": timedelta(days=1), "status": "gone"},
        {"inactive_for": timedelta(days=1), "limit": -1},
        {"inactive_for": timedelta(days=1), "batch_size": 0},
    ],
    ids=["negative", "not-timedelta", "too-long", "status", "limit", "batch"],
)
async def test_purge_refuses_bad_arguments(
    manager: SessionManager, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match=r"inactive_for|status|limit|batch_size"):
        await manager.purge(**kwargs)  # type: ignore[arg-type]


async def test_page_values(manager: SessionManager) -> None:
    await manager.create_session(agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u")
    page = await manager.list_sessions()
    assert isinstance(page, SessionPage)
    assert isinstance(page.items[0], SessionSummary)
    assert page.items[0].agent_version == "1.0"
    with pytest.raises(InvalidCursorError) as excinfo:
        await manager.list_sessions(cursor="not-a-cursor")
    assert isinstance(excinfo.value, ValueError)
    for name in ("erase_contact", "delete_session"):
        with pytest.raises(ValueError, match="must be a non-empty string"):
            await getattr(manager, name)("")


# -- upgrading stores that hold sessions -----------------------------------------------------


async def test_sqlite_file_of_schema_1_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(sqlite_module._SCHEMA)  # what frontdesk wrote before the lifecycle
        conn.execute(
            "insert into agent_sessions values (?, 'acme', ?, 'c', 'u', 3, 'active', 'greeting',"
            " '{}', 2, 7, ?, ?, ?)",
            (OLD_ID, TEST_AGENT_ID, *["2024-01-01T00:00:00.000000+00:00"] * 3),
        )
        conn.execute("pragma user_version = 1")
    storage = SQLiteStorage(path)
    try:
        registry = AgentRegistry()
        registry.register(make_test_agent())
        manager = SessionManager(storage, workspace_id="acme", registry=registry)
        (item,) = (await manager.list_sessions()).items
        assert (item.id, item.agent_version, item.turn_count, item.tokens_used) == (
            OLD_ID,
            None,
            2,
            7,
        )
        assert await manager.purge(inactive_for=timedelta(days=1)) == 1
    finally:
        await storage.aclose()


async def test_postgres_database_at_0001_is_upgraded_keeping_its_sessions(
    plain_postgres_dsn: str,
) -> None:
    first, *rest = migrations()
    with create_app_database(plain_postgres_dsn) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(first.sql.encode())
            conn.execute(
                "create table public.frontdesk_migrations (name text primary key,"
                " applied_at timestamptz not null default now())"
            )
            conn.execute(
                "insert into public.frontdesk_migrations (name) values (%s)", (first.name,)
            )
            conn.execute(
                "select public.frontdesk_create_session(%s, 'acme', %s, 'c', 'u', 'greeting')",
                (OLD_ID, TEST_AGENT_ID),
            )
        assert apply_migrations(dsn) == [m.name for m in rest]
        storage = await PostgresStorage.connect(dsn, max_size=2)
        try:
            registry = AgentRegistry()
            registry.register(make_test_agent(version="2.0"))
            manager = SessionManager(storage, workspace_id="acme", registry=registry)
            (item,) = (await manager.list_sessions(agent_id=TEST_AGENT_ID)).items
            assert (item.id, item.agent_version) == (OLD_ID, None)
            new = await manager.create_session(
                agent_id=TEST_AGENT_ID, conversation_id="c2", contact_id="u"
            )
            assert new.agent_version == "2.0"
            assert await manager.erase_contact("u") == ErasureReport(sessions=2, turns=0)
        finally:
            await storage.aclose()


async def test_each_lifecycle_operation_is_one_statement(plain_postgres_dsn: str) -> None:
    with create_app_database(plain_postgres_dsn) as dsn:
        apply_migrations(dsn)
        storage = await PostgresStorage.connect(dsn, max_size=2)
        try:
            registry = AgentRegistry()
            registry.register(make_test_agent())
            manager = SessionManager(storage, workspace_id="acme", registry=registry)
            for i in range(3):
                await manager.create_session(
                    agent_id=TEST_AGENT_ID, conversation_id=f"c{i}", contact_id="u"
                )
            calls: list[str] = []
            original = psycopg.AsyncConnection.execute

            async def counting(self, query, params=None, **kwargs):  # type: ignore[no-untyped-def]
                calls.append(str(query))
                return await original(self, query, params, **kwargs)

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(psycopg.AsyncConnection, "execute", counting)
                page = await manager.list_sessions(limit=2, status="active")
                await manager.list_sessions(limit=2, status="active", cursor=page.next_cursor)
                await manager.delete_session(page.items[0].id)
                await manager.purge(inactive_for=timedelta(days=1))
                await manager.erase_contact("u")
            assert [call.split("(")[0] for call in calls] == [
                "select public.frontdesk_list_sessions",
                "select public.frontdesk_list_sessions",
                "select public.frontdesk_delete_session",
                "select public.frontdesk_purge_sessions",
                "select public.frontdesk_erase_contact",
            ]
        finally:
            await storage.aclose()
