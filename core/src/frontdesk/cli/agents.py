"""`frontdesk agents`: list the installed agents, show one agent's configuration."""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import AgentConfig
from ..registry import AgentRegistry, PluginStatus
from ._errors import one_line_errors
from ._output import console, warn
from ._registry import load_registry

__all__ = ["command"]


def command() -> click.Group:
    """Build the `agents` group: `agents` (or `agents list`) and `agents show ID`."""

    @click.group("agents", invoke_without_command=True)
    @click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
    @click.pass_context
    def agents(ctx: click.Context, as_json: bool) -> None:
        """List the installed agents (or: agents show ID)."""
        if ctx.invoked_subcommand is None:
            _list_agents(load_registry(), as_json=as_json)

    @agents.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
    def list_(as_json: bool) -> None:
        """List the installed agents with their distribution and version."""
        _list_agents(load_registry(), as_json=as_json)

    @agents.command("show")
    @click.argument("agent_id")
    @click.option("--json", "as_json", is_flag=True, help="Print the config as JSON.")
    def show(agent_id: str, as_json: bool) -> None:
        """Print one agent's configuration, prompts included."""
        with one_line_errors():
            config = load_registry().get(agent_id)
        if as_json:
            click.echo(json.dumps(_agent_record(config, full=True), indent=2, ensure_ascii=False))
        else:
            _print_agent(config)

    return agents


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
        out = console()
        if not agents and not conflicts:
            out.print(
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
            out.print(table)
        for agent_id, by in sorted(conflicts.items()):
            warn(f"agent {agent_id!r} is unusable: claimed by {' and '.join(by)}")
    if failed:
        names = ", ".join(p.distribution for p in failed)
        warn(f"{len(failed)} agent package(s) failed to load: {names} (see `frontdesk plugins`)")


def _print_agent(config: AgentConfig) -> None:
    from rich.markup import escape

    out = console(highlight=False)
    source = config.source
    origin = f"{source.distribution} {source.version}" if source else "registered in code"
    out.print(f"[bold]{escape(config.name)}[/bold] ({escape(config.id)}) from {escape(origin)}")
    if config.description:
        out.print(config.description, markup=False)
    out.print()
    states = config.states
    out.print(f"[bold]Modes[/bold] (initial: {escape(states.initial)})")
    for mode in states.modes:
        moves = ", ".join(states.allowed_from(mode)) or "(final)"
        out.print(f"  {mode} -> {moves}", markup=False)
    t = config.thresholds
    out.print(
        f"[bold]Thresholds[/bold] proceed {t.proceed}, reanalyze {t.reanalyze}, "
        f"clarify {t.clarify}; below clarify: hand off"
    )
    out.print(f"[bold]Tools[/bold] {escape(', '.join(config.tools) or '(none)')}")
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
        out.print()
        out.print(f"[bold]{role}[/bold]: {escape(model.model)}{extra}")
        out.print(model.system_prompt.rstrip(), markup=False, soft_wrap=True)
