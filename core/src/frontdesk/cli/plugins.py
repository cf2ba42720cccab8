"""`frontdesk plugins`: the agent packages found, and what became of each."""

from __future__ import annotations

import json

import click

from ._output import console
from ._registry import load_registry

__all__ = ["command"]


def command() -> click.Command:
    """Build the `plugins` command."""

    @click.command("plugins")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
    def plugins(as_json: bool) -> None:
        """List the agent packages found, with their status: loaded, failed or blocked."""
        infos = load_registry().plugins
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
        out = console(highlight=False)
        if not infos:
            out.print("No agent packages installed (entry-point group frontdesk.agents).")
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
        out.print(table)

    return plugins
