"""The `frontdesk` command: inspect installed agents and agent packages.

Built by `create_cli()` so that importing this module does nothing; `main` is the console
script. Listings take `--json` for scripts; errors are one line on stderr with exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .config import AgentConfig
from .errors import FrontdeskError
from .registry import AgentRegistry, PluginStatus, get_default_registry

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["create_cli", "main"]


def create_cli() -> click.Group:
    """Build the `frontdesk` command group."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="frontdesk")
    @click.option("-v", "--verbose", is_flag=True, help="Log what frontdesk does to stderr.")
    def cli(verbose: bool) -> None:
        """frontdesk: conversational agents on durable sessions.

        Agents come from installed packages (pip install frontdesk-sales); see them with
        `frontdesk agents` and the packages with `frontdesk plugins`. `frontdesk demo`
        shows the session manager at work under concurrent traffic.
        """
        # The library never configures logging; the command line is an application.
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.ERROR,
            format="%(levelname)s %(name)s: %(message)s",
        )

    cli.add_command(_agents_group())
    cli.add_command(_plugins_command())
    cli.add_command(_db_group())
    cli.add_command(_demo_command())
    return cli


def _console(**options: Any) -> Console:
    # rich is imported only to print for people: `--json` output does not pay for it.
    from rich.console import Console

    return Console(**options)


def main() -> None:
    """Entry point of the `frontdesk` console script."""
    create_cli()(prog_name="frontdesk")


# -- agents ----------------------------------------------------------------------------------


def _agents_group() -> click.Group:
    @click.group("agents", invoke_without_command=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
    @click.pass_context
    def agents(ctx: click.Context, as_json: bool) -> None:
        """List the installed agents (or: agents show ID)."""
        if ctx.invoked_subcommand is None:
            _list_agents(_registry(), as_json=as_json)

    @agents.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
    def list_(as_json: bool) -> None:
        """List the installed agents with their distribution and version."""
        _list_agents(_registry(), as_json=as_json)

    @agents.command("show")
    @click.argument("agent_id")
    @click.option("--json", "as_json", is_flag=True, help="Print the config as JSON.")
    def show(agent_id: str, as_json: bool) -> None:
        """Print one agent's configuration, prompts included."""
        with _one_line_errors():
            config = _registry().get(agent_id)
        if as_json:
            click.echo(json.dumps(_agent_record(config, full=True), indent=2, ensure_ascii=False))
        else:
            _print_agent(config)

    return agents


def _registry() -> AgentRegistry:
    registry = get_default_registry()
    with _one_line_errors():  # discovery errors (strict mode) become one clean line
        len(registry)
    return registry


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A `FrontdeskError` becomes click's one-line `Error: ...` with exit code 1."""
    try:
        yield
    except FrontdeskError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from exc


def _agent_record(config: AgentConfig, *, full: bool = False) -> dict[str, Any]:
    source = config.source
    record: dict[str, Any] = {
        "id": config.id,
        "name": config.name,
        "distribution": source.distribution if source else None,
        "version": source.version if source else None,
        "description": config.description,
        "initial_mode": config.states.initial,
        "modes": list(config.states.modes),
        "tools": list(config.tools),
    }
    if full:
        record["entry_point"] = source.entry_point if source else None
        record["config"] = config.to_dict()
    return record


def _list_agents(registry: AgentRegistry, *, as_json: bool) -> None:
    agents = registry.list()
    conflicts = registry.conflicts
    failed = [p for p in registry.plugins if p.status is PluginStatus.FAILED]
    if as_json:
        records = [_agent_record(config) for config in agents]
        records += [
            {"id": agent_id, "distribution": None, "status": "conflict", "claimed_by": list(by)}
            for agent_id, by in sorted(conflicts.items())
        ]
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
    else:
        console = _console()
        if not agents and not conflicts:
            console.print(
                "No agents installed. Install an agent package (pip install frontdesk-sales) "
                "or register one in code."
            )
        else:
            from rich.table import Table
            from rich.text import Text

            table = Table("ID", "Name", "Modes", "Distribution", "Version", box=None)
            for config in agents:
                source = config.source
                table.add_row(
                    Text(config.id),
                    Text(config.name),
                    str(len(config.states.modes)),
                    Text(source.distribution if source else "(in code)"),
                    Text(source.version if source else ""),
                )
            console.print(table)
        for agent_id, by in sorted(conflicts.items()):
            _warn(f"agent {agent_id!r} is unusable: claimed by {' and '.join(by)}")
    if failed:
        names = ", ".join(p.distribution for p in failed)
        _warn(f"{len(failed)} agent package(s) failed to load: {names} (see `frontdesk plugins`)")


def _print_agent(config: AgentConfig) -> None:
    from rich.markup import escape

    console = _console(highlight=False)
    source = config.source
    origin = f"{source.distribution} {source.version}" if source else "registered in code"
    console.print(f"[bold]{escape(config.name)}[/bold] ({escape(config.id)}) from {escape(origin)}")
    if config.description:
        console.print(config.description, markup=False)
    console.print()
    states = config.states
    console.print(f"[bold]Modes[/bold] (initial: {escape(states.initial)})")
    for mode in states.modes:
        moves = ", ".join(states.allowed_from(mode)) or "(final)"
        console.print(f"  {mode} -> {moves}", markup=False)
    t = config.thresholds
    console.print(
        f"[bold]Thresholds[/bold] proceed {t.proceed}, reanalyze {t.reanalyze}, "
        f"clarify {t.clarify}; below clarify: hand off"
    )
    console.print(f"[bold]Tools[/bold] {escape(', '.join(config.tools) or '(none)')}")
    for role, model in (
        ("Intent detector", config.intent_detector),
        ("Orchestrator", config.orchestrator),
    ):
        limits = [
            f"{name} {value}"
            for name, value in (
                ("max_tokens", model.max_tokens),
                ("temperature", model.temperature),
            )
            if value is not None
        ]
        extra = f" ({', '.join(limits)})" if limits else ""
        console.print()
        console.print(f"[bold]{role}[/bold]: {escape(model.model)}{extra}")
        console.print(model.system_prompt.rstrip(), markup=False, soft_wrap=True)


# -- plugins ---------------------------------------------------------------------------------


def _plugins_command() -> click.Command:
    @click.command("plugins")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
    def plugins(as_json: bool) -> None:
        """List the agent packages found, with their status: loaded, failed or blocked."""
        infos = _registry().plugins
        if as_json:
            records = [
                {
                    "distribution": info.distribution,
                    "version": info.version,
                    "entry_point": info.entry_point,
                    "status": str(info.status),
                    "agents": list(info.agent_ids),
                    "error": info.error,
                }
                for info in infos
            ]
            click.echo(json.dumps(records, indent=2, ensure_ascii=False))
            return
        console = _console(highlight=False)
        if not infos:
            console.print("No agent packages installed (entry-point group frontdesk.agents).")
            return
        from rich.table import Table
        from rich.text import Text

        table = Table("Distribution", "Version", "Status", "Agents", "Error", box=None)
        colour = {"loaded": "green", "failed": "red", "blocked": "yellow"}
        for info in infos:
            table.add_row(
                Text(info.distribution),
                Text(info.version),
                Text(str(info.status), style=colour[info.status]),
                Text(", ".join(info.agent_ids)),
                Text(info.error or ""),
            )
        console.print(table)

    return plugins


# -- demo ------------------------------------------------------------------------------------


def _demo_command() -> click.Command:
    @click.command("demo")
    @click.option(
        "--conversations", default=200, show_default=True, help="Conversations to simulate."
    )
    @click.option(
        "--messages", default=8, show_default=True, help="Most messages per conversation."
    )
    @click.option("--workers", default=16, show_default=True, help="Concurrent workers.")
    @click.option(
        "--seed", type=int, default=None, help="Random seed: the same seed sends the same traffic."
    )
    @click.option(
        "--storage",
        "storage_name",
        envvar="FRONTDESK_STORAGE",
        default="memory",
        show_default=True,
        help="Storage backend by name (memory, supabase, ...); also $FRONTDESK_STORAGE.",
    )
    def demo(
        conversations: int, messages: int, workers: int, seed: int | None, storage_name: str
    ) -> None:
        """Simulate busy WhatsApp traffic against the installed agents, then check it.

        Users double- and triple-text, so several workers write to one conversation at
        once. Every message is then looked for in the stored turns and state: the run
        fails (exit 1) if anything was lost, duplicated or misnumbered.

        With --storage supabase the sessions are written to that project, in a workspace
        named demo-SEED-XXXXXXXX, and left there to look at.
        """
        for name, value in (
            ("--conversations", conversations),
            ("--messages", messages),
            ("--workers", workers),
        ):
            if value < 1:
                raise click.BadParameter("must be at least 1", param_hint=name)
        report = asyncio.run(_run_demo(conversations, messages, workers, seed, storage_name))
        _print_report(report)
        if not report.ok:
            raise SystemExit(1)

    return demo


async def _run_demo(
    conversations: int, messages: int, workers: int, seed: int | None, storage_name: str
) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from .demo import run_demo
    from .storage import open_storage

    registry = _registry()
    if not registry.list():
        raise click.ClickException(
            "no agents installed: pip install frontdesk-sales (or another agent package)"
        )
    with _one_line_errors():
        storage = await open_storage(storage_name)
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task("messages", total=None)
            with _one_line_errors():
                return await run_demo(
                    storage,
                    registry,
                    conversations=conversations,
                    messages=messages,
                    workers=workers,
                    seed=seed,
                    storage_name=storage_name,
                    on_message=lambda: progress.advance(task),
                )
    finally:
        await storage.aclose()


def _print_report(report: Any) -> None:
    from rich.table import Table

    console = _console(highlight=False)
    table = Table(title=f"frontdesk demo ({report.storage}, seed {report.seed})", box=None)
    table.add_column("")
    table.add_column("", justify="right")
    rows = [
        ("conversations", f"{report.conversations}"),
        ("messages", f"{report.messages}"),
        ("sessions", f"{report.sessions}"),
        ("turns", f"{report.turns}"),
        ("version conflicts detected", f"{report.conflicts}"),
        ("commits that needed a retry", f"{report.retries}"),
        ("lost updates", f"{report.lost_updates}"),
        ("storage calls per message", f"{report.calls_per_message:.2f}"),
        (
            "storage call latency",
            "p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms".format(**report.latency_ms),
        ),
        ("time", f"{report.elapsed:.2f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for check in report.checks:
        mark = "[green]ok[/]" if check.passed else "[red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}")


# -- db --------------------------------------------------------------------------------------


def _db_group() -> click.Group:
    @click.group("db")
    def db() -> None:
        """The Supabase / Postgres schema: print it, apply it, check a project."""

    @db.command("sql")
    def sql() -> None:
        """Print the migrations, to paste into the Supabase SQL editor."""
        from .storage.migrations import render_sql

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
        from .storage.migrations import apply_migrations

        with _one_line_errors():
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
        from .storage.supabase import SupabaseStorage
    except ImportError as exc:
        raise click.ClickException(
            f"the Supabase backend is not installed ({exc}): pip install 'frontdesk[supabase]'"
        ) from exc

    def report(name: str, passed: bool | None, detail: str) -> None:
        mark = {True: "[green]ok[/]", False: "[red]FAIL[/]", None: "[yellow]skip[/]"}[passed]
        _console(highlight=False).print(f"{mark:>18}  {name}: {detail}")

    results: list[bool] = []
    with _one_line_errors():
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
            anon = await SupabaseStorage.from_env(key=anon_key)
            async with anon:
                try:
                    await anon.health()
                    denied = False
                except FrontdeskError:
                    denied = True
            report(
                "anon key denied",
                denied,
                "refused" if denied else "the anon key can call frontdesk's functions",
            )
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


def _warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)
