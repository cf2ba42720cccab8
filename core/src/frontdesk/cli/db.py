"""`frontdesk db`: print and apply the Postgres / Supabase schema; check a database."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import FrontdeskError, StorageAccessDeniedError
from ..storage.base import StorageBackend
from ._errors import one_line, one_line_errors
from ._output import console

if TYPE_CHECKING:
    from ..storage.sqlite import SQLiteStorage

__all__ = ["command"]


def command() -> click.Group:
    """Build the `db` group: `db sql`, `db migrate`, `db check`."""

    @click.group("db")
    def db() -> None:
        """Print and apply the Postgres / Supabase schema; check a backend's database."""

    @db.command("sql")
    def sql() -> None:
        """Print the migrations, to paste into the Supabase SQL editor."""
        from ..storage.migrations import render_sql

        click.echo(render_sql(), nl=False)

    @db.command("migrate")
    @click.option(
        "--dsn",
        help="PostgreSQL connection string, postgresql://... (Supabase: Project Settings > "
        "Database). Default: $FRONTDESK_POSTGRES_DSN, else $DATABASE_URL.",
    )
    def migrate(dsn: str | None) -> None:
        """Apply the migrations the database lacks (running it twice is a no-op).

        For PostgreSQL and Supabase; a SQLite file needs no migration: frontdesk upgrades
        it when a program opens it.
        """
        from ..storage.migrations import apply_migrations

        dsn = _migration_dsn(dsn)
        with one_line_errors():
            applied = apply_migrations(dsn)
        if applied:
            for name in applied:
                click.echo(f"applied {name}")
        else:
            click.echo("up to date: no migration to apply")

    @db.command("check")
    @click.option(
        "--requests",
        "count",
        type=click.IntRange(1, 10_000),
        default=5,
        show_default=True,
        help="Round trips to time.",
    )
    @click.option(
        "--storage",
        "storage_name",
        envvar="FRONTDESK_STORAGE",
        default="supabase",
        # The default shown would be wrong whenever the variable is set: name the variable.
        show_default=False,
        help="The backend to check (supabase, postgres, sqlite). "
        "Default: $FRONTDESK_STORAGE, else supabase.",
    )
    def check(count: int, storage_name: str) -> None:
        """Check the database of the backend in use, and report what is missing.

        supabase (SUPABASE_URL / SUPABASE_SERVICE_ROLE_KEY): reachable, migrated, row-level
        security on, no privilege for anon/authenticated, the anon key (SUPABASE_ANON_KEY,
        if set) refused. postgres (FRONTDESK_POSTGRES_DSN, else DATABASE_URL): reachable,
        every migration applied, functions callable by this role, row-level security on,
        no privilege for anon/authenticated. sqlite (FRONTDESK_SQLITE_PATH): the file (never
        created; one that is not a frontdesk database is a FAIL, left unchanged), its
        schema, WAL mode, the write lock. Then the round-trip latency.
        """
        checks = {"supabase": _check_project, "postgres": _check_postgres, "sqlite": _check_sqlite}
        if storage_name == "memory":
            raise click.ClickException(
                "the memory storage keeps no database, so there is nothing to check; "
                f"db check knows {', '.join(sorted(checks))}."
            )
        if storage_name not in checks:
            raise click.ClickException(
                f"there is no storage backend {storage_name!r} to check: use one of "
                f"{', '.join(sorted(checks))}."
            )
        ok = asyncio.run(checks[storage_name](count))
        if not ok:
            raise SystemExit(1)

    return db


def _migration_dsn(given: str | None) -> str:
    """The connection string `db migrate` uses: --dsn, else the variables the postgres
    backend reads (FRONTDESK_POSTGRES_DSN, else DATABASE_URL); a usage error when there is
    none, or when it names a SQLite database."""
    from ..storage.postgres import DSN_ENV, FALLBACK_DSN_ENV

    if given is None:
        dsn = os.environ.get(DSN_ENV, "").strip() or os.environ.get(FALLBACK_DSN_ENV, "").strip()
        if not dsn:
            raise click.UsageError(
                f"name the database with --dsn postgresql://..., or set {DSN_ENV} "
                f"(or {FALLBACK_DSN_ENV})"
            )
        source = f"${DSN_ENV}" if os.environ.get(DSN_ENV, "").strip() else f"${FALLBACK_DSN_ENV}"
    else:
        dsn, source = given.strip(), "--dsn"
        if not dsn:
            # libpq would read an empty string as "the local server, by its defaults".
            raise click.UsageError("--dsn is empty: give a connection string, postgresql://...")
    # libpq takes a URI (postgresql://...) or key=value pairs; anything else is a mistake,
    # most likely a SQLite URL or file.
    if dsn.lower().startswith("sqlite") or ("://" not in dsn and "=" not in dsn):
        raise click.UsageError(
            f"{source} ({dsn!r}) is not a PostgreSQL connection string: `db migrate` is for "
            "PostgreSQL and Supabase (postgresql://...); a SQLite database needs no "
            "migration, frontdesk upgrades it when a program opens it"
        )
    return dsn


def _report(name: str, passed: bool | None, detail: str) -> None:
    mark = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[yellow]skip[/]"}[passed]
    console(highlight=False).print(f"{mark:>18}  {name}: {detail}", soft_wrap=True)


def _report_exposed(health: Mapping[str, Any]) -> bool:
    """Report the privileges Supabase's API roles hold on frontdesk's objects (want: none)."""
    exposed = health.get("exposed")
    if exposed is None:
        _report("anon/authenticated privileges", None, "unknown: run `frontdesk db migrate`")
        return True
    _report(
        "anon/authenticated privileges",
        not exposed,
        "none" if not exposed else f"{', '.join(exposed)}: run `frontdesk db migrate`",
    )
    return not exposed


def _report_functions(health: Mapping[str, Any]) -> bool:
    """Report the frontdesk functions the backends call that this role cannot execute."""
    from ..storage._pgjson import CALLED_FUNCTIONS

    present = health.get("functions")
    if present is None:  # a frontdesk_health from before 0006 cannot list them
        _report(
            "functions", False, "the database predates this frontdesk: run `frontdesk db migrate`"
        )
        return False
    missing = sorted(CALLED_FUNCTIONS - set(present))
    _report(
        "functions",
        not missing,
        f"all {len(CALLED_FUNCTIONS)} callable by this role"
        if not missing
        else f"missing or not callable: {', '.join(missing)}: run `frontdesk db migrate`",
    )
    return not missing


async def _round_trips(backend: StorageBackend, count: int) -> None:
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        await backend.find_active_session("frontdesk-db-check", "-", "-")
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    _report(
        "round trip",
        True,
        f"median {timings[len(timings) // 2]:.1f} ms, max {timings[-1]:.1f} ms "
        f"over {len(timings)} requests",
    )


async def _check_postgres(count: int) -> bool:
    try:
        from ..storage.migrations import missing_migrations
        from ..storage.postgres import DSN_ENV, FALLBACK_DSN_ENV, PostgresStorage
    except ImportError as exc:
        raise click.ClickException(
            f"the postgres backend is not installed ({exc}): pip install 'frontdesk[postgres]'"
        ) from exc
    with one_line_errors():
        storage = await PostgresStorage.from_env(min_size=1, max_size=1)
    async with storage as backend:
        _report("reachable", True, repr(backend))
        dsn = os.environ.get(DSN_ENV, "").strip() or os.environ.get(FALLBACK_DSN_ENV, "").strip()
        try:
            missing = await asyncio.to_thread(missing_migrations, dsn)
        except FrontdeskError as exc:
            _report("migrations", False, str(exc))
            return False
        _report(
            "migrations",
            not missing,
            "all applied"
            if not missing
            else f"missing {', '.join(missing)}: run `frontdesk db migrate --dsn ...`",
        )
        if missing:
            return False
        try:
            health = await backend.health()
        except FrontdeskError as exc:
            _report("functions", False, str(exc))
            return False
        if not _report_functions(health):
            return False
        rls = health.get("rls") or {}
        rls_on = bool(rls) and all(rls.values())
        _report("row-level security", rls_on, ", ".join(f"{t}={v}" for t, v in sorted(rls.items())))
        exposed_ok = _report_exposed(health)
        await _round_trips(backend, count)
    return rls_on and exposed_ok


def _open_sqlite() -> SQLiteStorage | str:
    """The SQLite database to check, or why the file there is not one (a failed check).

    A check inspects: a mistyped path is an error, not a new file, and a file that is not a
    frontdesk database is reported, not given frontdesk's tables.
    """
    from ..storage.sqlite import DEFAULT_PATH, PATH_ENV, SQLiteStorage

    try:
        return SQLiteStorage.from_env(create=False)
    except FrontdeskError as exc:
        if not Path(os.environ.get(PATH_ENV, "").strip() or DEFAULT_PATH).exists():
            raise click.ClickException(one_line(str(exc))) from exc
        return one_line(str(exc))


async def _check_sqlite(count: int) -> bool:
    storage = _open_sqlite()
    if isinstance(storage, str):
        _report("file", False, storage)
        return False
    async with storage as backend:
        health = await backend.health()
        _report("file", True, f"{health['path']} (schema version {health['schema_version']})")
        wal = bool(health["journal_mode"] == "wal")
        _report("WAL mode", wal, str(health["journal_mode"]))
        try:
            await backend.check_write_lock()
        except FrontdeskError as exc:
            _report("write lock", False, str(exc))
            return False
        _report("write lock", True, "taken and released")
        await _round_trips(backend, count)
    return wal


async def _check_project(count: int) -> bool:
    try:
        from ..storage.supabase import SupabaseStorage
    except ImportError as exc:
        raise click.ClickException(
            f"the Supabase backend is not installed ({exc}): pip install 'frontdesk[supabase]'"
        ) from exc

    report = _report
    results: list[bool] = []
    with one_line_errors():
        storage = await SupabaseStorage.from_env()
    async with storage as backend:
        try:
            health = await backend.health()
        except FrontdeskError as exc:
            report("reachable", False, str(exc))
            return False
        report("reachable", True, repr(backend))
        results.append(_report_functions(health))
        rls = health.get("rls") or {}
        rls_on = bool(rls) and all(rls.values())
        report("row-level security", rls_on, ", ".join(f"{t}={v}" for t, v in sorted(rls.items())))
        results.append(rls_on)
        results.append(_report_exposed(health))
        anon_key = os.environ.get("SUPABASE_ANON_KEY")
        if anon_key:
            denied, detail = await _anon_denied(anon_key)
            report("anon key denied", denied, detail)
            results.append(denied)
        else:
            report("anon key denied", None, "set SUPABASE_ANON_KEY to check it")
        await _round_trips(backend, count)
    return all(results)


async def _anon_denied(anon_key: str) -> tuple[bool, str]:
    """Whether the store refuses the anon key, and what it answered.

    The key tries to read a session, as a stranger holding the public key would. Only a
    refusal of the key counts: a network failure or a missing function proves nothing
    about the key, so it fails the check instead of passing it.
    """
    from ..storage.supabase import SupabaseStorage

    async with await SupabaseStorage.from_env(key=anon_key) as anon:
        try:
            await anon.get_session("frontdesk-db-check", str(uuid.uuid4()))
        except StorageAccessDeniedError:
            return True, "refused"
        except FrontdeskError as exc:
            return False, f"could not tell: {one_line(str(exc))}"
    return False, "the anon key can call frontdesk's functions"
