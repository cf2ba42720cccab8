"""pytest fixtures for a real PostgreSQL (see `tests.support.postgres`).

Enable them from a conftest with::

    pytest_plugins = ["tests.support.pg_fixtures"]

(only in the root conftest, as pytest requires for `pytest_plugins`), or import the fixtures
by name into any conftest::

    from tests.support.pg_fixtures import fresh_database, module_database, postgres_dsn

Fixtures:

- `postgres_dsn` (session): superuser DSN of the server's maintenance database.
- `module_database` (module): superuser DSN of a fresh, empty database for the test module.
- `fresh_database` (function): superuser DSN of a fresh, empty database for one test.
- `plain_postgres_dsn` (session): superuser DSN of a second server that never gets Supabase's
  roles (`anon`, `service_role`, ...: roles are per server), as a user's own PostgreSQL.
- `app_database` (function): a fresh database on that server, owned by an ordinary role
  (no superuser, no CREATEDB), and that role's DSN: how an application connects to RDS.

Without PostgreSQL they skip, or fail when FRONTDESK_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest

from tests.support.postgres import (
    REQUIRE_ENV,
    PostgresUnavailableError,
    create_app_database,
    postgres_required,
    postgres_server,
    temporary_database,
    temporary_postgres_server,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "app_database",
    "fresh_database",
    "module_database",
    "plain_postgres_dsn",
    "postgres_dsn",
]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL superuser DSN, for the whole session."""
    with contextlib.ExitStack() as stack:
        try:
            dsn = stack.enter_context(postgres_server())
        except PostgresUnavailableError as exc:
            _unavailable(exc)
        yield dsn


@pytest.fixture(scope="session")
def plain_postgres_dsn() -> Iterator[str]:
    """A second throwaway server, which never gets Supabase's roles (superuser DSN)."""
    with contextlib.ExitStack() as stack:
        try:
            dsn = stack.enter_context(temporary_postgres_server())
        except PostgresUnavailableError as exc:
            _unavailable(exc)
        yield dsn


@pytest.fixture
def app_database(plain_postgres_dsn: str) -> Iterator[str]:
    """A fresh database on the plain server, owned by an ordinary role; that role's DSN."""
    with create_app_database(plain_postgres_dsn) as dsn:
        yield dsn


def _unavailable(exc: Exception) -> None:
    if postgres_required():
        pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}=1) but unavailable: {exc}")
    pytest.skip(f"PostgreSQL unavailable: {exc}")


@pytest.fixture(scope="module")
def module_database(postgres_dsn: str) -> Iterator[str]:
    """A fresh, empty database shared by the tests of one module (superuser DSN)."""
    with temporary_database(postgres_dsn) as dsn:
        yield dsn


@pytest.fixture
def fresh_database(postgres_dsn: str) -> Iterator[str]:
    """A fresh, empty database for one test (superuser DSN), dropped afterwards."""
    with temporary_database(postgres_dsn) as dsn:
        yield dsn
