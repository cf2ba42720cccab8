"""`frontdesk agents`: list the installed agents, show one agent's configuration."""

from __future__ import annotations

import json
from typing import Any

import click

from ..config import AgentConfig
from ..errors import AgentNotFoundError, FrontdeskError
from ..registry import LOAD_PLUGINS_ENV, AgentRegistry
from ._errors import one_line
from ._output import console, warn
from ._registry import failed_packages_note, load_registry, warn_conflicts

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
        registry = load_registry()
        try:
            config = registry.get(agent_id)
        except AgentNotFoundError as exc:
            # When no package is known to provide it, one that failed to load may.
            note = failed_packages_note(registry) if exc.reason is None else None
            raise click.ClickException(one_line(str(exc)) + (f" {note}." if note else "")) from exc
        except FrontdeskError as exc:
            raise click.ClickException(one_line(str(exc))) from exc
        missing = registry.missing_tools(agent_id)
        if as_json:
            record = _agent_record(config, full=True)
            record["missing_tools"] = list(missing)
            click.echo(json.dumps(record, indent=2, ensure_ascii=False))
        else:
            _print_agent(config, missing)

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
    if as_json:
        records = [_agent_record(config) for config in agents]
        records += [
            {"id": agent_id, "distribution": None, "status": "conflict", "claimed_by": list(by)}
            for agent_id, by in sorted(conflicts.items())
        ]
        click.echo(json.dumps(records, indent=2, ensure_ascii=False))
    elif not agents and not conflicts:
        click.echo(_nothing_listed(registry))
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table("ID", "Name", "Modes", "Distribution", "Version", box=None)
        rows: list[tuple[str, tuple[Text | str, ...]]] = []
        for config in agents:
            source = config.source
            cells: tuple[Text | str, ...] = (
                Text(config.id),
                Text(config.name),
                str(len(config.states.modes)),
                Text(source.distribution if source else "(in code)"),
                Text(source.version if source else ""),
            )
            rows.append((config.id, cells))
        for agent_id, by in conflicts.items():
            red = "red"
            cells = (
                Text(agent_id, style=red),
                Text("(unusable: claimed twice)", style=red),
                "",
                Text(" and ".join(by), style=red),
                "",
            )
            rows.append((agent_id, cells))
        for _, cells in sorted(rows, key=lambda row: row[0]):
            table.add_row(*cells)
        console().print(table)
    if not as_json:
        warn_conflicts(registry)
    note = failed_packages_note(registry)
    if note:
        warn(note)


def _nothing_listed(registry: AgentRegistry) -> str:
    """Why the listing is empty, and what to do."""
    allowed = registry.load_filter
    if allowed is not None:
        names = ", ".join(sorted(allowed)) or "none"
        return (
            f"No agents loaded: {LOAD_PLUGINS_ENV} is set, and only these agent packages may "
            f"load: {names}. Unset it to load every installed package."
        )
    return (
        "No agents installed. Install an agent package (pip install frontdesk-sales) "
        "or register one in code."
    )


def _print_agent(config: AgentConfig, missing: tuple[str, ...]) -> None:
    from rich.markup import escape

    # soft_wrap: a long line is the terminal's to wrap; piped output keeps every line whole.
    out = console(highlight=False, soft_wrap=True)
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
    tools = [f"{t} (not implemented)" if t in missing else t for t in config.tools]
    out.print(f"[bold]Tools[/bold] {escape(', '.join(tools) or '(none)')}")
    if missing:
        warn(
            f"agent {config.id!r} names tools nothing implements: {', '.join(missing)}; "
            "calls to them fail (the agent's package provides tools with register_tools)"
        )
    out.print(f"[bold]Hand-off message[/bold] {escape(config.handoff_message)}")
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
        out.print(model.system_prompt.rstrip(), markup=False)
