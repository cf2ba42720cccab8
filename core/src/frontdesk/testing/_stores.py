"""Fresh, empty stores of each kind for the pytest plugin's `frontdesk_storage` fixture.

- `memory`: a new `InMemoryStorage`.
- `sqlite`: a new file in the test's temporary directory.
- `postgres`: a database of its own, copied from a migrated template (made once per test
  session) on the server of `--frontdesk-postgres-dsn` / FRONTDESK_TEST_POSTGRES_DSN, and
  dropped after the test. The DSN's role needs CREATEDB.
- `supabase`: the project in SUPABASE_URL / SUPABASE_SERVICE_ROLE_KEY, shared by every
  test; each works in a workspace of its own, whose sessions are purged afterwards.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ..storage.base import StorageBackend
from ..storage.memory import InMemoryStorage

__all__ = [
    "KINDS",
    "POSTGRES_DSN_ENV",
    "SHARED_KINDS",
    "PostgresTemplate",
    "fresh_store",
    "postgres_admin_dsn",
]

KINDS = ("memory", "postgres", "sqlite", "supabase")
SHARED_KINDS = frozenset({"supabase"})
"""Kinds whose store is shared between tests: isolated by workspace, purged after each."""
POSTGRES_DSN_ENV = "FRONTDESK_TEST_POSTGRES_DSN"


class PostgresTemplate:
    """A migrated template database on a server; copies of it, one per test."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.name = f"frontdesk_template_{secrets.token_hex(6)}"
        self._created = False

    def _sql(self) -> Any:
        try:
            import psycopg
            from psycopg import sql
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise pytest.UsageError(
                "--frontdesk-storage postgres needs psycopg: pip install 'frontdesk[postgres]'"
            ) from exc
        return psycopg, sql

    def _dsn(self, dbname: str) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.admin_dsn, dbname=dbname)

    def create(self) -> None:
        from ..storage.migrations import apply_migrations

        psycopg, sql = self._sql()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(self.name)))
        self._created = True
        apply_migrations(self._dsn(self.name))

    def drop(self) -> None:
        if self._created:
            self._drop(self.name)

    @contextlib.contextmanager
    def copy(self) -> Iterator[str]:
        """A new database copied from the template; its DSN. Dropped afterwards."""
        psycopg, sql = self._sql()
        name = f"frontdesk_test_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(name), sql.Identifier(self.name)
                )
            )
        try:
            yield self._dsn(name)
        finally:
            self._drop(name)

    def _drop(self, name: str) -> None:
        psycopg, sql = self._sql()
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def postgres_admin_dsn(config: pytest.Config) -> str:
    """The DSN the plugin makes Postgres test databases with; a usage error if none."""
    dsn = config.getoption("frontdesk_postgres_dsn") or os.environ.get(POSTGRES_DSN_ENV, "")
    if not dsn.strip():
        raise pytest.UsageError(
            "--frontdesk-storage postgres needs a server to make test databases on: pass "
            f"--frontdesk-postgres-dsn URL or set {POSTGRES_DSN_ENV} (a role with CREATEDB)."
        )
    return dsn.strip()


@contextlib.asynccontextmanager
async def fresh_store(
    kind: str, tmp_path: Path, template: PostgresTemplate | None, *, workspace_id: str
) -> AsyncIterator[StorageBackend]:
    """A fresh, empty store of `kind`, closed and removed afterwards.

    A shared store (`SHARED_KINDS`) is empty as seen from `workspace_id`, and the
    sessions of that workspace are purged afterwards.
    """
    if kind == "memory":
        yield InMemoryStorage()
    elif kind == "sqlite":
        from ..storage.sqlite import SQLiteStorage

        sqlite = SQLiteStorage(tmp_path / "frontdesk.db")
        try:
            yield sqlite
        finally:
            await sqlite.aclose()
    elif kind == "postgres":
        from ..storage.postgres import PostgresStorage

        assert template is not None  # the plugin makes one whenever postgres is chosen
        with template.copy() as dsn:
            postgres = await PostgresStorage.connect(dsn, max_size=20)
            try:
                yield postgres
            finally:
                await postgres.aclose()
    elif kind == "supabase":
        from ..storage.supabase import SupabaseStorage

        supabase = await SupabaseStorage.from_env()
        try:
            yield supabase
            # Everything the test made lives in its own workspace: purge it all.
            while await supabase.purge_sessions(
                workspace_id, inactive_for=timedelta(0), status=None, limit=1000
            ):
                pass
        finally:
            await supabase.aclose()
    else:  # pragma: no cover - refused when pytest starts
        raise pytest.UsageError(f"unknown frontdesk test storage {kind!r}")
