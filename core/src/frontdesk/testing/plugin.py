"""The pytest plugin (entry point `pytest11: frontdesk`): fixtures that swap storage in.

async def test_my_handler(frontdesk_manager):
    session, _ = await frontdesk_manager.get_or_create_session(
        agent_id="test-agent", conversation_id="c1", contact_id="u1"
    )

The storage is in memory unless `--frontdesk-storage NAME` (or FRONTDESK_TEST_STORAGE)
names another kind: `sqlite` (a temporary file per test) or `postgres` (a database per test,
copied from a migrated template on the server of `--frontdesk-postgres-dsn` or
FRONTDESK_TEST_POSTGRES_DSN) or `supabase` (the project in SUPABASE_URL, shared: each test
works in a workspace of its own, purged after it). Every test gets a fresh, empty store.
Run the same application tests on memory locally and on the backend you deploy in CI.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..registry import AgentRegistry, use_default_registry
from ..sessions import SessionManager
from ..storage.base import StorageBackend
from ..storage.memory import InMemoryStorage
from ._stores import KINDS, SHARED_KINDS, PostgresTemplate, fresh_store, postgres_admin_dsn
from .agents import make_test_agent

__all__ = [
    "frontdesk_manager",
    "frontdesk_registry",
    "frontdesk_storage_name",
    "frontdesk_workspace_id",
    "pytest_addoption",
    "pytest_configure",
]

TEST_WORKSPACE_ID = "test-workspace"
TEST_STORAGE_ENV = "FRONTDESK_TEST_STORAGE"

_TEMPLATE = pytest.StashKey[PostgresTemplate]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("frontdesk")
    group.addoption(
        "--frontdesk-storage",
        dest="frontdesk_storage",
        default=None,
        choices=KINDS,
        help=f"the storage behind the frontdesk_storage fixture (default: ${TEST_STORAGE_ENV}, "
        "else memory)",
    )
    group.addoption(
        "--frontdesk-postgres-dsn",
        dest="frontdesk_postgres_dsn",
        default=None,
        help="the PostgreSQL server to make per-test databases on (a role with CREATEDB; "
        "default: $FRONTDESK_TEST_POSTGRES_DSN)",
    )


def _storage_kind(config: pytest.Config) -> str:
    kind = config.getoption("frontdesk_storage") or os.environ.get(TEST_STORAGE_ENV) or "memory"
    if kind not in KINDS:
        raise pytest.UsageError(
            f"{TEST_STORAGE_ENV}={kind!r} is not a test storage; choose one of {', '.join(KINDS)}."
        )
    return str(kind)


def pytest_configure(config: pytest.Config) -> None:
    # Check the choice (and make the Postgres template) once, before any test runs.
    if _storage_kind(config) == "postgres":
        template = PostgresTemplate(postgres_admin_dsn(config))
        template.create()
        config.stash[_TEMPLATE] = template
        config.add_cleanup(template.drop)


@pytest.fixture
def frontdesk_storage_name(request: pytest.FixtureRequest) -> str:
    """The kind of storage the tests run on: memory, sqlite, postgres or supabase."""
    return _storage_kind(request.config)


@pytest.fixture
def frontdesk_workspace_id(frontdesk_storage_name: str) -> str:
    """The workspace of `frontdesk_manager`: `test-workspace` in a store of the test's own.

    On a shared store (supabase: one project for every test), a workspace of its own per
    test, whose sessions are purged after the test: an empty store as the test sees it.
    """
    if frontdesk_storage_name in SHARED_KINDS:
        return f"{TEST_WORKSPACE_ID}-{uuid.uuid4().hex[:12]}"
    return TEST_WORKSPACE_ID


# The fixtures plugin works without pytest-asyncio too, in memory only.
_HAS_PYTEST_ASYNCIO = importlib.util.find_spec("pytest_asyncio") is not None

if not _HAS_PYTEST_ASYNCIO:

    @pytest.fixture(name="frontdesk_storage")
    def _memory_storage(frontdesk_storage_name: str) -> StorageBackend:
        """An empty in-memory storage, new for each test."""
        if frontdesk_storage_name != "memory":
            raise pytest.UsageError(
                f"the {frontdesk_storage_name} test storage needs pytest-asyncio: "
                "pip install 'frontdesk[testing]'"
            )
        return InMemoryStorage()

else:
    import pytest_asyncio

    @pytest_asyncio.fixture(name="frontdesk_storage")
    async def _any_storage(
        request: pytest.FixtureRequest,
        frontdesk_storage_name: str,
        frontdesk_workspace_id: str,
        tmp_path: Path,
    ) -> AsyncIterator[StorageBackend]:
        """An empty storage of the chosen kind (memory by default), new for each test."""
        template: Any = request.config.stash.get(_TEMPLATE, None)
        async with fresh_store(
            frontdesk_storage_name, tmp_path, template, workspace_id=frontdesk_workspace_id
        ) as storage:
            yield storage


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
    frontdesk_storage: StorageBackend,
    frontdesk_registry: AgentRegistry,
    frontdesk_workspace_id: str,
) -> SessionManager:
    """A `SessionManager` over the fixtures above, in `frontdesk_workspace_id`."""
    return SessionManager(
        frontdesk_storage, workspace_id=frontdesk_workspace_id, registry=frontdesk_registry
    )
