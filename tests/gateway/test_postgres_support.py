"""The PostgreSQL test helpers the gateway's tests stand on (tests.support.postgres)."""

from __future__ import annotations

import psycopg
import pytest

from tests.support import postgres
from tests.support.postgres import (
    PostgresUnavailableError,
    create_database,
    database_name,
    drop_database,
    setup_supabase_roles,
)


def test_supabase_roles(fresh_database: str) -> None:
    authenticator = setup_supabase_roles(fresh_database)
    assert setup_supabase_roles(fresh_database) == authenticator  # idempotent
    with psycopg.connect(fresh_database) as conn:
        roles = {
            name: (login, inherit, bypassrls)
            for name, login, inherit, bypassrls in conn.execute(
                "SELECT rolname, rolcanlogin, rolinherit, rolbypassrls FROM pg_roles"
                " WHERE rolname IN ('anon', 'authenticated', 'service_role', 'authenticator')"
            )
        }
        members = {
            row[0]
            for row in conn.execute(
                "SELECT r.rolname FROM pg_auth_members m"
                " JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member"
                " WHERE u.rolname = 'authenticator'"
            )
        }
        usage = conn.execute(
            "SELECT bool_and(has_schema_privilege(r, 'public', 'USAGE'))"
            " FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r"
        ).fetchone()
    assert roles == {
        "anon": (False, False, False),
        "authenticated": (False, False, False),
        "service_role": (False, False, True),
        "authenticator": (True, False, False),
    }
    assert members == {"anon", "authenticated", "service_role"}
    assert usage == (True,)
    with psycopg.connect(authenticator) as conn:  # a real password login
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (
            "authenticator",
            database_name(fresh_database),
        )


def test_create_and_drop_database(postgres_dsn: str) -> None:
    dsn = create_database(postgres_dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE t (x int)")
    # Dropping disconnects whoever is still connected.
    lingering = psycopg.connect(dsn)
    try:
        drop_database(postgres_dsn, database_name(dsn))
    finally:
        lingering.close()
    with psycopg.connect(postgres_dsn) as conn:
        exists = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", [database_name(dsn)]
        ).fetchone()
    assert exists == (0,)


def test_missing_binaries_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(postgres.DSN_ENV, raising=False)
    monkeypatch.setattr(postgres, "find_postgres_bindir", lambda: None)
    with (
        pytest.raises(PostgresUnavailableError, match="no PostgreSQL binaries found"),
        postgres.postgres_server(),
    ):
        pass


def test_dsn_from_the_environment_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(postgres.DSN_ENV, "host=db.invalid dbname=x")
    monkeypatch.setattr(postgres, "find_postgres_bindir", lambda: None)
    with postgres.postgres_server() as dsn:
        assert dsn == "host=db.invalid dbname=x"


@pytest.mark.parametrize(
    ("value", "required"),
    [("1", True), ("true", True), ("", False), ("0", False)],
)
def test_require_flag(monkeypatch: pytest.MonkeyPatch, value: str, required: bool) -> None:
    monkeypatch.setenv(postgres.REQUIRE_ENV, value)
    assert postgres.postgres_required() is required
