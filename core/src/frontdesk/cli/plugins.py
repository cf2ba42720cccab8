"""`frontdesk plugins`: the agent packages found, and what became of each."""

from __future__ import annotations

import json

import click

from ._output import console
from ._registry import load_registry, warn_conflicts

__all__ = ["command"]


def command() -> click.Command:
    """Build the `plugins` command."""

    @click.command("plugins")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
    def plugins(as_json: bool) -> None:
        """List the agent packages found, with their status: loaded, failed or blocked."""
        registry = load_registry()
        infos = registry.plugins
        conflicts = registry.conflicts
        if as_json:
            records = [
                {
                    "distribution": info.distribution,
                    "version": info.version,
                    "entry_point": info.entry_point,
                    "status": str(info.status),
                    "agents": list(info.agent_ids),
                    "conflicts": [i for i in info.agent_ids if i in conflicts],
                    "error": info.error,
                }
                for info in infos
            ]
            click.echo(json.dumps(records, indent=2, ensure_ascii=False))
            return
        out = console(highlight=False)
        if not infos:
            out.print("No agent packages installed (entry-point group frontdesk.agents).")
            return
        from rich.table import Table
        from rich.text import Text

        table = Table("Distribution", "Version", "Status", "Agents", "Error", box=None)
        colour = {"loaded": "green", "failed": "red", "blocked": "yellow"}
        for info in infos:
            agents = Text()
            problems = [info.error] if info.error else []
            for n, agent_id in enumerate(info.agent_ids):
                contested = agent_id in conflicts
                agents.append(", " if n else "")
                agents.append(
                    agent_id + (" (conflict)" if contested else ""), "red" if contested else ""
                )
                if contested:
                    others = [
                        c for c in conflicts[agent_id] if not c.startswith(f"{info.distribution} ")
                    ]
                    problems.append(f"{agent_id!r} is also claimed by {' and '.join(others)}")
            table.add_row(
                Text(info.distribution),
                Text(info.version),
                Text(str(info.status), style=colour[info.status]),
                agents,
                Text("; ".join(problems)),
            )
        out.print(table)
        warn_conflicts(registry)

    return plugins
