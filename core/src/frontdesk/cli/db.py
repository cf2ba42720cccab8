"""`frontdesk db`: the Supabase / Postgres schema: print it, apply it, check a project."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import click

from ..errors import FrontdeskError, StorageAccessDeniedError
from ._errors import one_line, one_line_errors
from ._output import console

__all__ = ["command"]


def command() -> click.Group:
    """Build the `db` group: `db sql`, `db migrate`, `db check`."""

    @click.group("db")
    def db() -> None:
        """The Supabase / Postgres schema: print it, apply it, check a project."""

    @db.command("sql")
    def sql() -> None:
        """Print the migrations, to paste into the Supabase SQL editor."""
        from ..storage.migrations import render_sql

        click.echo(render_sql(), nl=False)

    @db.command("migrate")
    @click.option(
        "--dsn",
        envvar="FRONTDESK_DATABASE_URL",
        required=True,
        help="Postgres connection string (Supabase: Project Settings > Database). "
        "Default: $FRONTDESK_DATABASE_URL.",
    )
    def migrate(dsn: str) -> None:
        """Apply the migrations the database lacks (running it twice is a no-op)."""
        from ..storage.migrations import apply_migrations

        with one_line_errors():
            applied = apply_migrations(dsn)
        if applied:
            for name in applied:
                click.echo(f"applied {name}")
        else:
            click.echo("up to date: no migration to apply")

    @db.command("check")
    @click.option("--requests", "count", default=5, show_default=True, help="Round trips to time.")
    def check(count: int) -> None:
        """Check the Supabase project in SUPABASE_URL / SUPABASE_SERVICE_ROLE_KEY.

        Reports: reachable, migrations applied, row-level security on, the anon key
        (SUPABASE_ANON_KEY, if set) refused, and the round-trip latency.
        """
        ok = asyncio.run(_check_project(count))
        if not ok:
            raise SystemExit(1)

    return db


async def _check_project(count: int) -> bool:
    try:
        from ..storage.supabase import SupabaseStorage
    except ImportError as exc:
        raise click.ClickException(
            f"the Supabase backend is not installed ({exc}): pip install 'frontdesk[supabase]'"
        ) from exc

    def report(name: str, passed: bool | None, detail: str) -> None:
        mark = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[yellow]skip[/]"}[passed]
        # soft_wrap: each check stays on one line, whatever the width, so it can be grepped.
        console(highlight=False, soft_wrap=True).print(f"{mark:>18}  {name}: {detail}")

    results: list[bool] = []
    with one_line_errors():
        storage = await SupabaseStorage.from_env()
    async with storage as backend:
        try:
            health = await backend.health()
        except FrontdeskError as exc:
            report("reachable and migrated", False, str(exc))
            return False
        report("reachable and migrated", True, f"schema version {health.get('schema_version')}")
        rls = health.get("rls") or {}
        rls_on = bool(rls) and all(rls.values())
        report("row-level security", rls_on, ", ".join(f"{t}={v}" for t, v in sorted(rls.items())))
        results.append(rls_on)
        anon_key = os.environ.get("SUPABASE_ANON_KEY")
        if anon_key:
            denied, detail = await _anon_denied(anon_key)
            report("anon key denied", denied, detail)
            results.append(denied)
        else:
            report("anon key denied", None, "set SUPABASE_ANON_KEY to check it")
        timings = []
        for _ in range(max(count, 1)):
            start = time.perf_counter()
            await backend.find_active_session("frontdesk-db-check", "-", "-")
            timings.append((time.perf_counter() - start) * 1000)
        timings.sort()
        report(
            "round trip",
            True,
            f"median {timings[len(timings) // 2]:.1f} ms, max {timings[-1]:.1f} ms "
            f"over {len(timings)} requests",
        )
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
