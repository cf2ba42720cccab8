"""`frontdesk plugins`: the agent packages found, and what became of each."""

from __future__ import annotations

import json

import click

from ._output import console, warn
from ._registry import load_registry, warn_conflicts

__all__ = ["command"]


def command() -> click.Command:
    """Build the `plugins` command."""

    @click.command("plugins")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
    def plugins(as_json: bool) -> None:
        """List the agent packages found, with their status: loaded, failed or blocked.

        Also the tools each package implements, and a warning for every agent that names
        a tool nothing implements (calling it fails).
        """
        registry = load_registry()
        infos = registry.plugins
        conflicts = registry.conflicts
        missing = {
            info.distribution: {
                agent_id: registry.missing_tools(agent_id)
                for agent_id in info.agent_ids
                if registry.has(agent_id) and agent_id not in conflicts
            }
            for info in infos
        }
        if as_json:
            records = [
                {
                    "distribution": info.distribution,
                    "version": info.version,
                    "entry_point": info.entry_point,
                    "status": str(info.status),
                    "agents": list(info.agent_ids),
                    "conflicts": [i for i in info.agent_ids if i in conflicts],
                    "tools": list(info.tool_names),
                    "missing_tools": {
                        agent_id: list(names)
                        for agent_id, names in missing[info.distribution].items()
                        if names
                    },
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

        table = Table("Distribution", "Version", "Status", "Agents", "Tools", "Error", box=None)
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
                str(len(info.tool_names)),
                Text("; ".join(problems)),
            )
        out.print(table)
        warn_conflicts(registry)
        for distribution, by_agent in missing.items():
            for agent_id, names in by_agent.items():
                if names:
                    warn(
                        f"agent {agent_id!r} ({distribution}) names tools nothing implements: "
                        f"{', '.join(names)}; calls to them fail"
                    )

    return plugins
