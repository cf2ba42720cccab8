"""The migrations on plain PostgreSQL and on a Supabase-like database; concurrent runs."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import time

import psycopg
import pytest
from psycopg import sql

from frontdesk import StorageError
from frontdesk.storage import _functions as sql_function_storage
from frontdesk.storage import postgres as postgres_storage
from frontdesk.storage._pgjson import CALLED_FUNCTIONS, commit_function
from frontdesk.storage.migrations import (
    _LOCK_KEY,
    applied_migrations,
    apply_migrations,
    migrations,
    missing_migrations,
)
from tests.support.postgres import setup_supabase_roles

NAMES = [m.name for m in migrations()]


def test_migrations_are_numbered_and_in_order() -> None:
    assert sorted(NAMES) == NAMES
    assert NAMES[0] == "0001_sessions.sql"
    assert all(name[:4].isdigit() and name[4] == "_" for name in NAMES)


def test_plain_postgres_as_an_ordinary_role(app_database: str) -> None:
    """No Supabase roles, no superuser: applies, once; the role owns what it made."""
    assert missing_migrations(app_database) == NAMES
    assert apply_migrations(app_database) == NAMES
    assert apply_migrations(app_database) == []
    assert applied_migrations(app_database) == NAMES
    assert missing_migrations(app_database) == []
    with psycopg.connect(app_database) as conn:
        # Nobody but the owner may call the functions or touch the tables.
        public_exec = conn.execute(
            "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname = 'public' and p.proname like 'frontdesk%%'"
            " and has_function_privilege('public', p.oid, 'EXECUTE')"
        ).fetchone()
        assert public_exec == (0,)
        rls = conn.execute(
            "select relname, relrowsecurity from pg_class where relname in"
            " ('agent_sessions', 'agent_turns', 'frontdesk_migrations') order by relname"
        ).fetchall()
        assert rls == [
            ("agent_sessions", True),
            ("agent_turns", True),
            ("frontdesk_migrations", True),
        ]


def _migrate_command(dsn: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    return subprocess.Popen(  # noqa: S603 - this interpreter, the frontdesk CLI
        [
            sys.executable,
            "-c",
            "from frontdesk.cli import main; main()",
            "db",
            "migrate",
            "--dsn",
            dsn,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_migrating_at_once(app_database: str, plain_postgres_dsn: str) -> None:
    """One applies everything; the other waits for the lock and then finds nothing to do."""
    with psycopg.connect(app_database, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        runs = [_migrate_command(app_database) for _ in range(2)]
        # Both are waiting for the migration lock before either has done anything.
        deadline = time.monotonic() + 60
        while True:
            with psycopg.connect(plain_postgres_dsn, autocommit=True) as admin:
                waiting = admin.execute(
                    "select count(*) from pg_locks where locktype = 'advisory' and not granted"
                    " and objid = %s",
                    (_LOCK_KEY & 0xFFFFFFFF,),
                ).fetchone()
            if waiting == (2,):
                break
            assert all(run.poll() is None for run in runs), [r.communicate() for r in runs]
            assert time.monotonic() < deadline, "the two runs never waited for the lock"
            time.sleep(0.05)
        assert applied_migrations(app_database) == []
        holder.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    outputs = sorted(run.communicate(timeout=120)[0] for run in runs)
    assert [run.returncode for run in runs] == [0, 0]
    assert outputs == sorted(
        ["".join(f"applied {name}\n" for name in NAMES), "up to date: no migration to apply\n"]
    )
    assert applied_migrations(app_database) == NAMES


def test_a_migration_lock_held_too_long_is_one_clear_error(app_database: str) -> None:
    with psycopg.connect(app_database, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        with pytest.raises(StorageError, match=r"held the migration lock for over 0\.2 s"):
            apply_migrations(app_database, lock_timeout=0.2)


# -- Supabase's roles ------------------------------------------------------------------------

ANON_ROLES = ("anon", "authenticated")


def _privileges(dsn: str) -> list[tuple[str, str, str]]:
    """Every privilege anon/authenticated hold on a frontdesk table, sequence or function."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            select r.rolname, c.relname, p.privilege
            from pg_roles r, pg_class c join pg_namespace n on n.oid = c.relnamespace,
                 unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES',
                              'TRIGGER']) p(privilege)
            where r.rolname in ('anon', 'authenticated') and n.nspname = 'public'
              and c.relkind in ('r', 'p')
              and (c.relname like 'agent%%' or c.relname like 'frontdesk%%')
              and has_table_privilege(r.oid, c.oid, p.privilege)
            union all
            select r.rolname, f.proname, 'EXECUTE'
            from pg_roles r, pg_proc f join pg_namespace n on n.oid = f.pronamespace
            where r.rolname in ('anon', 'authenticated') and n.nspname = 'public'
              and f.proname like 'frontdesk%%' and has_function_privilege(r.oid, f.oid, 'EXECUTE')
            """
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def test_supabase_roles_get_nothing_despite_default_privileges(fresh_database: str) -> None:
    setup_supabase_roles(fresh_database)  # with Supabase's ALTER DEFAULT PRIVILEGES
    assert apply_migrations(fresh_database) == NAMES
    assert _privileges(fresh_database) == []
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        for role in ANON_ROLES:
            conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
            for table in ("frontdesk_migrations", "agent_sessions", "agent_turns"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql.SQL("truncate {}").format(sql.Identifier("public", table)))
            conn.execute("reset role")
        # service_role keeps what the backend needs.
        conn.execute("set role service_role")
        assert conn.execute("select public.frontdesk_health() ->> 'exposed'").fetchone() == ("[]",)
        conn.execute("reset role")


def test_migrate_repairs_privileges_granted_later(fresh_database: str) -> None:
    setup_supabase_roles(fresh_database)
    apply_migrations(fresh_database)
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute("grant all on public.frontdesk_migrations, public.agent_turns to anon")
        exposed = conn.execute("select public.frontdesk_health() -> 'exposed'").fetchone()
        assert exposed is not None
        assert "anon: TRUNCATE on frontdesk_migrations" in exposed[0]
    assert apply_migrations(fresh_database) == []
    assert _privileges(fresh_database) == []


def test_db_check_expects_every_function_the_backends_call() -> None:
    """`CALLED_FUNCTIONS` (what `db check` looks for) is what the SQL backends really call."""
    called_by_postgres = set(postgres_storage._SIGNATURES)
    # Both backends call the functions named in their shared primitives, and commit through
    # `commit_function`.
    sources = inspect.getsource(sql_function_storage) + inspect.getsource(commit_function)
    called_by_both = set(re.findall(r'"(frontdesk_[a-z_]+)"', sources))
    assert called_by_postgres == CALLED_FUNCTIONS
    assert called_by_both == CALLED_FUNCTIONS
