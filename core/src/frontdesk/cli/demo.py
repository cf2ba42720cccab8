"""`frontdesk demo`: simulated concurrent traffic against the installed agents, checked."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from ._errors import one_line_errors
from ._output import console
from ._registry import load_registry

if TYPE_CHECKING:
    from ..demo import DemoReport

__all__ = ["command"]


def command() -> click.Command:
    """Build the `demo` command."""

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
        report = asyncio.run(_run(conversations, messages, workers, seed, storage_name))
        _print_report(report)
        if not report.ok:
            raise SystemExit(1)

    return demo


async def _run(
    conversations: int, messages: int, workers: int, seed: int | None, storage_name: str
) -> DemoReport:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ..demo import run_demo
    from ..storage import open_storage

    registry = load_registry()
    if not registry.list():
        raise click.ClickException(
            "no agents installed: pip install frontdesk-sales (or another agent package)"
        )
    with one_line_errors():
        storage = await open_storage(storage_name)
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task("messages", total=None)
            with one_line_errors():
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


def _print_report(report: DemoReport) -> None:
    from rich.table import Table

    out = console(highlight=False)
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
    out.print(table)
    for check in report.checks:
        mark = "[green]ok[/]" if check.passed else "[red]FAIL[/]"
        out.print(f"{mark} {check.name}: {check.detail}")
