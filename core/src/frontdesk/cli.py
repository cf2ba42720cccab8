"""The `frontdesk` command: inspect installed agents and agent packages.

Built by `create_cli()` so that importing this module does nothing; `main` is the console
script. Listings take `--json` for scripts; errors are one line on stderr with exit code 1.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from . import __version__
from .config import AgentConfig
from .errors import FrontdeskError
from .registry import AgentRegistry, PluginStatus, get_default_registry

__all__ = ["create_cli", "main"]


def create_cli() -> click.Group:
    """Build the `frontdesk` command group."""

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="frontdesk")
    @click.option("-v", "--verbose", is_flag=True, help="Log what frontdesk does to stderr.")
    def cli(verbose: bool) -> None:
        """frontdesk: conversational agents on durable sessions.

        Agents come from installed packages (pip install frontdesk-sales); see them with
        `frontdesk agents` and the packages with `frontdesk plugins`.
        """
        # The library never configures logging; the command line is an application.
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.ERROR,
            format="%(levelname)s %(name)s: %(message)s",
        )

    cli.add_command(_agents_group())
    cli.add_command(_plugins_command())
    return cli


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
        config = _guard(lambda: _registry().get(agent_id))
        if as_json:
            click.echo(json.dumps(_agent_record(config, full=True), indent=2, ensure_ascii=False))
        else:
            _print_agent(config)

    return agents


def _registry() -> AgentRegistry:
    registry = get_default_registry()
    _guard(lambda: len(registry))  # discovery errors (strict mode) become one clean line
    return registry


def _guard(call: Any) -> Any:
    try:
        return call()
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
        console = Console()
        if not agents and not conflicts:
            console.print(
                "No agents installed. Install an agent package (pip install frontdesk-sales) "
                "or register one in code."
            )
        else:
            table = Table("ID", "Name", "Modes", "Distribution", "Version", box=None)
            for config in agents:
                source = config.source
                table.add_row(
                    config.id,
                    config.name,
                    str(len(config.states.modes)),
                    source.distribution if source else "(in code)",
                    source.version if source else "",
                )
            console.print(table)
        for agent_id, by in sorted(conflicts.items()):
            _warn(f"agent {agent_id!r} is unusable: claimed by {' and '.join(by)}")
    if failed:
        names = ", ".join(p.distribution for p in failed)
        _warn(f"{len(failed)} agent package(s) failed to load: {names} (see `frontdesk plugins`)")


def _print_agent(config: AgentConfig) -> None:
    console = Console(highlight=False)
    source = config.source
    origin = f"{source.distribution} {source.version}" if source else "registered in code"
    console.print(f"[bold]{config.name}[/bold] ({config.id}) from {origin}")
    if config.description:
        console.print(config.description)
    console.print()
    states = config.states
    console.print(f"[bold]Modes[/bold] (initial: {states.initial})")
    for mode in states.modes:
        moves = ", ".join(states.allowed_from(mode)) or "(final)"
        console.print(f"  {mode} -> {moves}")
    t = config.thresholds
    console.print(
        f"[bold]Thresholds[/bold] proceed {t.proceed}, reanalyze {t.reanalyze}, "
        f"clarify {t.clarify}; below clarify: hand off"
    )
    console.print(f"[bold]Tools[/bold] {', '.join(config.tools) or '(none)'}")
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
        console.print(f"[bold]{role}[/bold]: {model.model}{extra}")
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
        console = Console(highlight=False)
        if not infos:
            console.print("No agent packages installed (entry-point group frontdesk.agents).")
            return
        table = Table("Distribution", "Version", "Status", "Agents", "Error", box=None)
        colour = {"loaded": "green", "failed": "red", "blocked": "yellow"}
        for info in infos:
            table.add_row(
                info.distribution,
                info.version,
                f"[{colour[info.status]}]{info.status}[/]",
                ", ".join(info.agent_ids),
                info.error or "",
            )
        console.print(table)

    return plugins


def _warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)
