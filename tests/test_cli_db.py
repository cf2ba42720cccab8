"""`frontdesk db`: print the schema, apply it, check a project (through click's runner)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from frontdesk.cli import create_cli
from frontdesk.storage._pgjson import CALLED_FUNCTIONS
from frontdesk.storage.migrations import migrations
from frontdesk.storage.sqlite import SQLiteStorage
from tests.support.gateway import PostgrestGateway
from tests.support.postgres import setup_supabase_roles

JWT_SECRET = "frontdesk-cli-db-tests-jwt-secret-0123456789"


def run(*args: str) -> Result:
    return CliRunner().invoke(create_cli(), list(args), prog_name="frontdesk")


def test_sql_prints_every_migration() -> None:
    result = run("db", "sql")
    assert result.exit_code == 0
    for migration in migrations():
        assert f"-- ==== {migration.name} ====" in result.stdout
        assert migration.sql.strip() in result.stdout


def test_migrate_applies_once(fresh_database: str) -> None:
    setup_supabase_roles(fresh_database)
    first = run("db", "migrate", "--dsn", fresh_database)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [f"applied {m.name}" for m in migrations()]
    second = run("db", "migrate", "--dsn", fresh_database)
    assert second.stdout.strip() == "up to date: no migration to apply"


def test_migrate_reports_a_bad_dsn_in_one_line() -> None:
    result = run("db", "migrate", "--dsn", "postgresql://nobody@127.0.0.1:9/none")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot connect to the database")
    assert len(result.stderr.splitlines()) == 1


@pytest.fixture
def project(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgrestGateway]:
    """A migrated database behind the gateway, named by the Supabase environment variables."""
    authenticator = setup_supabase_roles(fresh_database)
    assert run("db", "migrate", "--dsn", fresh_database).exit_code == 0
    with PostgrestGateway(authenticator, JWT_SECRET) as gateway:
        monkeypatch.setenv("SUPABASE_URL", gateway.url)
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", gateway.make_jwt("service_role"))
        yield gateway


def test_check_a_healthy_project(
    project: PostgrestGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_ANON_KEY", project.make_jwt("anon"))
    result = run("db", "check", "--requests", "3")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("ok  reachable: <SupabaseStorage" in line for line in lines)
    assert any(
        f"ok  functions: all {len(CALLED_FUNCTIONS)} callable by this role" in line
        for line in lines
    )
    assert any(
        "ok  row-level security: agent_sessions=True, agent_turns=True" in line for line in lines
    )
    assert any("ok  anon key denied: refused" in line for line in lines)
    assert any("round trip: median" in line and "over 3 requests" in line for line in lines)


def test_check_without_anon_key_skips_that_check(project: PostgrestGateway) -> None:
    result = run("db", "check")
    assert result.exit_code == 0
    assert "skip  anon key denied: set SUPABASE_ANON_KEY" in result.stdout


def test_check_an_unmigrated_project(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    authenticator = setup_supabase_roles(fresh_database)
    with PostgrestGateway(authenticator, JWT_SECRET) as gateway:
        monkeypatch.setenv("SUPABASE_URL", gateway.url)
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", gateway.make_jwt("service_role"))
        result = run("db", "check")
    assert result.exit_code == 1
    assert "FAIL  reachable" in result.stdout
    assert "frontdesk db migrate" in result.stdout


@pytest.mark.parametrize("applied", [1, 4], ids=["at-0001", "at-0004"])
def test_check_names_the_functions_an_older_schema_lacks(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch, applied: int
) -> None:
    """A project migrated by hand up to an older file is not reported as migrated."""
    authenticator = setup_supabase_roles(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        for migration in migrations()[:applied]:
            conn.execute(migration.sql)  # type: ignore[call-overload]  # a whole trusted script
    with PostgrestGateway(authenticator, JWT_SECRET) as gateway:
        monkeypatch.setenv("SUPABASE_URL", gateway.url)
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", gateway.make_jwt("service_role"))
        result = run("db", "check")
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.stdout.splitlines() if "functions:" in line]
    assert "FAIL  functions: the database predates this frontdesk" in line
    assert "frontdesk db migrate" in line


def test_check_names_a_function_the_role_cannot_call(
    project: PostgrestGateway, fresh_database: str
) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("revoke execute on function public.frontdesk_receive from service_role")
    result = run("db", "check")
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.stdout.splitlines() if "functions:" in line]
    assert "FAIL  functions: missing or not callable: frontdesk_receive: run" in line


def test_check_without_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    result = run("db", "check")
    assert result.exit_code == 1
    assert "set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY" in result.stderr


@pytest.mark.parametrize("url", ["not-a-url", "supabase.co", "https://", "http://host:99999"])
def test_check_with_a_malformed_url_fails_in_one_line(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("SUPABASE_URL", url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "some-key")
    result = run("db", "check")
    assert result.exit_code == 1
    assert result.stderr == f"Error: SUPABASE_URL is not a valid URL ({url!r}); use the " + (
        "project URL from Project Settings > API, such as https://abcdefghijklmnop.supabase.co\n"
    )
    assert result.stdout == ""


def test_check_counts_only_a_refusal_as_anon_denied(
    project: PostgrestGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_ANON_KEY", project.make_jwt("anon"))
    for _ in range(5):  # every attempt of the anon key's request (reads are retried)
        project.fail_next("drop_before", function="frontdesk_get_session")
    result = run("db", "check")
    assert result.exit_code == 1
    (line,) = [line for line in result.stdout.splitlines() if "anon key denied" in line]
    assert "FAIL  anon key denied: could not tell: storage operation" in line
    assert "'frontdesk_get_session' failed" in line


def test_check_reports_an_anon_key_that_can_call(
    project: PostgrestGateway, fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        # What Supabase's default privileges would do if the migrations did not revoke them.
        conn.execute("grant execute on all functions in schema public to anon")
        conn.execute("grant select on all tables in schema public to anon")
    monkeypatch.setenv("SUPABASE_ANON_KEY", project.make_jwt("anon"))
    result = run("db", "check")
    assert result.exit_code == 1, result.output
    assert "FAIL  anon key denied: the anon key can call frontdesk's functions" in result.stdout


# -- the other backends -----------------------------------------------------------------------


def test_check_plain_postgres(postgres_project: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDESK_STORAGE", "postgres")
    result = run("db", "check", "--requests", "2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "ok  migrations: all applied" in out
    assert f"ok  functions: all {len(CALLED_FUNCTIONS)} callable by this role" in out
    assert "ok  row-level security: agent_sessions=True, agent_turns=True" in out
    assert "ok  anon/authenticated privileges: none" in out
    assert "over 2 requests" in out


def test_check_postgres_lists_missing_migrations(
    app_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTDESK_POSTGRES_DSN", app_database)
    result = run("db", "check", "--storage", "postgres")
    assert result.exit_code == 1
    assert f"FAIL  migrations: missing {', '.join(m.name for m in migrations())}" in (
        result.stdout.replace("\n", " ")
    )


def test_check_postgres_that_is_down_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDESK_POSTGRES_DSN", "postgresql://nobody@127.0.0.1:9/none")
    result = run("db", "check", "--storage", "postgres")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: storage operation 'connect' failed")
    assert len(result.stderr.splitlines()) == 1


def test_check_supabase_reports_privileges_granted_to_anon(
    project: PostgrestGateway, fresh_database: str
) -> None:
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("grant truncate on public.frontdesk_migrations to anon")
    result = run("db", "check")
    assert result.exit_code == 1
    assert "FAIL  anon/authenticated privileges: anon: TRUNCATE on frontdesk_migrations" in (
        result.stdout
    )


def test_check_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SQLiteStorage(tmp_path / "s.db").close()
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(tmp_path / "s.db"))
    result = run("db", "check", "--storage", "sqlite", "--requests", "2")
    assert result.exit_code == 0, result.output
    assert re.search(r"ok  file: .*s\.db \(schema version \d+\)", result.stdout)
    assert "ok  WAL mode: wal" in result.stdout
    assert "ok  write lock: taken and released" in result.stdout


def test_check_sqlite_that_another_process_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "busy.db"
    SQLiteStorage(path).close()
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(path))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("begin immediate")  # held past the default 5 s wait
    try:
        result = run("db", "check", "--storage", "sqlite")
    finally:
        blocker.execute("rollback")
        blocker.close()
    assert result.exit_code == 1
    assert "FAIL  write lock" in result.stdout
    assert "locked" in result.stdout


def test_check_sqlite_on_a_missing_file_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "typo.db"
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(path))
    result = run("db", "check", "--storage", "sqlite")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: no database at {str(path)!r}")
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_check_postgres_with_an_unparseable_dsn_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FRONTDESK_POSTGRES_DSN", "garbage")
    result = run("db", "check", "--storage", "postgres")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert "configuration error" in result.stderr
    assert "FRONTDESK_POSTGRES_DSN" in result.stderr
    assert "safe to retry" not in result.stderr


def test_check_memory_has_nothing_to_check() -> None:
    result = run("db", "check", "--storage", "memory")
    assert result.exit_code == 1
    assert "memory storage keeps no database" in result.stderr


def test_check_an_unknown_backend_lists_the_names() -> None:
    result = run("db", "check", "--storage", "nonsense")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: there is no storage backend 'nonsense' to check: use one of postgres, "
        "sqlite, supabase."
    )


def test_help_names_the_variable_not_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDESK_STORAGE", "sqlite")
    result = run("db", "check", "--help")
    assert "[default: supabase]" not in result.stdout
    assert "$FRONTDESK_STORAGE" in result.stdout


def test_migrate_reads_the_variables_the_postgres_backend_reads(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup_supabase_roles(fresh_database)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("FRONTDESK_POSTGRES_DSN", fresh_database)
    first = run("db", "migrate")
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [f"applied {m.name}" for m in migrations()]
    monkeypatch.delenv("FRONTDESK_POSTGRES_DSN")
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    second = run("db", "migrate")
    assert second.exit_code == 0, second.output
    assert second.stdout.strip() == "up to date: no migration to apply"


def test_migrate_without_a_database_names_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRONTDESK_POSTGRES_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv(
        "FRONTDESK_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none"
    )  # never read
    result = run("db", "migrate")
    assert result.exit_code == 2
    assert (
        "Error: name the database with --dsn postgresql://..., or set FRONTDESK_POSTGRES_DSN "
        "(or DATABASE_URL)" in result.stderr
    )


@pytest.mark.parametrize("dsn", ["", "   "])
def test_migrate_refuses_an_empty_dsn(dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # libpq would take it for "the local server, by its defaults".
    monkeypatch.setenv("FRONTDESK_POSTGRES_DSN", "postgresql://nobody@127.0.0.1:9/none")
    result = run("db", "migrate", "--dsn", dsn)
    assert result.exit_code == 2
    assert "Error: --dsn is empty: give a connection string, postgresql://..." in result.stderr


@pytest.mark.parametrize("dsn", ["sqlite:///frontdesk.db", "frontdesk.db", "./data/s.sqlite3"])
def test_migrate_says_sqlite_needs_no_migration(dsn: str, tmp_path: Path) -> None:
    result = run("db", "migrate", "--dsn", dsn)
    assert result.exit_code == 2
    assert (
        f"Error: --dsn ({dsn!r}) is not a PostgreSQL connection string: `db migrate` is for "
        "PostgreSQL and Supabase (postgresql://...); a SQLite database needs no migration, "
        "frontdesk upgrades it when a program opens it"
    ) in " ".join(result.stderr.split())


def test_migrate_says_so_when_the_variable_names_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRONTDESK_POSTGRES_DSN", raising=False)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///app.db")
    result = run("db", "migrate")
    assert result.exit_code == 2
    assert "$DATABASE_URL ('sqlite:///app.db') is not a PostgreSQL connection string" in (
        " ".join(result.stderr.split())
    )


@pytest.mark.parametrize("requests", ["0", "-3", "10001"])
def test_check_requests_is_a_positive_count(
    requests: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SQLiteStorage(tmp_path / "s.db").close()
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(tmp_path / "s.db"))
    result = run("db", "check", "--storage", "sqlite", "--requests", requests)
    assert result.exit_code == 2
    assert "Invalid value for '--requests'" in result.stderr


@pytest.mark.parametrize("kind", ["other tables", "empty"])
def test_check_sqlite_reports_a_file_that_is_not_frontdesks_unchanged(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "other.db"
    path.touch()
    if kind == "other tables":
        with sqlite3.connect(path) as conn:
            conn.execute("create table foo (x)")
        conn.close()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(path))
    result = run("db", "check", "--storage", "sqlite")
    assert result.exit_code == 1
    [line] = result.stdout.splitlines()
    assert re.match(r"\s+FAIL  file: ", line)
    expected = "the file is empty" if kind == "empty" else "is not a frontdesk database"
    assert expected in line
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
