"""The SQL migrations shipped with frontdesk, and applying them to a Postgres database.

`frontdesk db sql` prints them (for the Supabase SQL editor or `supabase db push`);
`frontdesk db migrate --dsn URL` applies the ones a database lacks and records them in
`frontdesk_migrations`, so running it twice is a no-op. Applying needs psycopg
(`pip install frontdesk[postgres]`, also part of `frontdesk[supabase]`).
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

from attrs import frozen

from ..errors import StorageError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "Migration",
    "applied_migrations",
    "apply_migrations",
    "migrations",
    "missing_migrations",
    "render_sql",
]

_TRACKING_TABLE = """
create table if not exists public.frontdesk_migrations (
    name       text primary key,
    applied_at timestamptz not null default now()
);
alter table public.frontdesk_migrations enable row level security;
"""

# Serialises concurrent `db migrate` runs (an arbitrary, fixed advisory-lock key).
_LOCK_KEY = 0x66726F6E74


@frozen
class Migration:
    """One numbered SQL file: `name` is its file name, e.g. `0001_sessions.sql`."""

    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration shipped with this version of frontdesk, in order."""
    folder = resources.files("frontdesk.storage.sql")
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f.name, f.read_text(encoding="utf-8")) for f in files]


def render_sql() -> str:
    """All migrations as one script, each under a header naming it."""
    parts = [f"-- ==== {m.name} ====\n{m.sql.rstrip()}\n" for m in migrations()]
    return "\n".join(parts)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise StorageError(
            "applying migrations needs psycopg: pip install 'frontdesk[postgres]'"
        ) from None
    return psycopg


def _connect(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    driver = _psycopg()
    try:
        connection: psycopg.Connection[tuple[object, ...]] = driver.connect(dsn)
    except driver.Error as exc:
        raise StorageError(f"cannot connect to the database: {exc}".strip()) from exc
    return connection


def applied_migrations(dsn: str) -> list[str]:
    """The names of the migrations already applied to the database at `dsn`."""
    with _connect(dsn) as conn:
        row = conn.execute(
            "select to_regclass('public.frontdesk_migrations') is not null"
        ).fetchone()
        if not row or not row[0]:
            return []
        rows = conn.execute("select name from public.frontdesk_migrations order by name")
        return [str(name) for (name,) in rows]


def apply_migrations(dsn: str, *, lock_timeout: float = 60.0) -> list[str]:
    """Apply, in order, each migration the database lacks; return the names applied.

    Each migration commits together with its record, so a failure leaves the database at
    the last migration that succeeded. Concurrent runs are serialised by an advisory lock:
    one applies, the others wait for it (at most `lock_timeout` seconds, which also bounds
    each wait for a table lock) and then find nothing left to do. Works on plain
    PostgreSQL and on Supabase (see `frontdesk_secure()` in `0001_sessions.sql`).
    """
    driver = _psycopg()
    applied: list[str] = []
    with _connect(dsn) as conn:
        conn.autocommit = True
        conn.execute(f"set lock_timeout = {max(int(lock_timeout * 1000), 1)}")
        try:
            conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        except driver.errors.LockNotAvailable as exc:
            raise StorageError(
                f"another `frontdesk db migrate` held the migration lock for over "
                f"{lock_timeout:g} s; wait for it to finish and run this again."
            ) from exc
        try:
            with conn.transaction():
                conn.execute(_TRACKING_TABLE)
            for migration in migrations():
                with conn.transaction():
                    done = conn.execute(
                        "select 1 from public.frontdesk_migrations where name = %s",
                        (migration.name,),
                    ).fetchone()
                    if done:
                        continue
                    try:
                        conn.execute(migration.sql.encode())
                    except driver.Error as exc:
                        raise StorageError(f"migration {migration.name} failed: {exc}") from exc
                    conn.execute(
                        "insert into public.frontdesk_migrations (name) values (%s)",
                        (migration.name,),
                    )
                applied.append(migration.name)
            with conn.transaction():
                # Lock down again even when nothing was applied: repairs the privileges of
                # a database migrated by an older frontdesk, or altered by hand.
                conn.execute(
                    "select public.frontdesk_secure()"
                    " where to_regprocedure('public.frontdesk_secure()') is not null"
                )
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def missing_migrations(dsn: str) -> list[str]:
    """The names of the shipped migrations the database at `dsn` lacks, in order."""
    applied = set(applied_migrations(dsn))
    return [m.name for m in migrations() if m.name not in applied]
