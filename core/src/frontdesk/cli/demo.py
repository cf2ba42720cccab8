"""`frontdesk demo`: simulated concurrent traffic answered by the installed agents, checked."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

import click

from ..config import DoubleTexting
from ..demo import (
    MAX_CONVERSATIONS,
    MAX_MESSAGES,
    MAX_WORKERS,
    check_demo_sizes,
)
from ..errors import ValidationError
from ._errors import one_line_errors
from ._output import console
from ._registry import load_registry, warn_conflicts

if TYPE_CHECKING:
    from ..demo import DemoReport

__all__ = ["ProgressLines", "command"]


def command() -> click.Command:
    """Build the `demo` command."""

    @click.command("demo")
    @click.option(
        "--conversations",
        type=click.IntRange(1, MAX_CONVERSATIONS),
        default=200,
        show_default=True,
        help=f"Conversations to simulate (at most {MAX_CONVERSATIONS:,}).",
    )
    @click.option(
        "--messages",
        type=click.IntRange(1, MAX_MESSAGES),
        default=8,
        show_default=True,
        help=f"Most messages per conversation (at most {MAX_MESSAGES}).",
    )
    @click.option(
        "--workers",
        type=click.IntRange(1, MAX_WORKERS),
        default=16,
        show_default=True,
        help=f"Concurrent workers (at most {MAX_WORKERS:,}).",
    )
    @click.option(
        "--seed", type=int, default=None, help="Random seed: the same seed sends the same traffic."
    )
    @click.option(
        "--storage",
        "storage_name",
        envvar="FRONTDESK_STORAGE",
        default="memory",
        # The default shown would be wrong whenever the variable is set: name the variable.
        show_default=False,
        help="Storage backend by name (memory, sqlite, postgres, supabase, ...). "
        "Default: $FRONTDESK_STORAGE, else memory.",
    )
    @click.option(
        "--keep", is_flag=True, help="Keep the demo's sessions instead of deleting them at the end."
    )
    @click.option(
        "--policy",
        type=click.Choice([str(p) for p in DoubleTexting]),
        default=str(DoubleTexting.MERGE),
        show_default=True,
        help="What a message that arrives during a run does (the agents' runs.double_texting).",
    )
    def demo(
        conversations: int,
        messages: int,
        workers: int,
        seed: int | None,
        storage_name: str,
        keep: bool,
        policy: str,
    ) -> None:
        """Simulate busy WhatsApp traffic, answered by the installed agents, then check it.

        Users double- and triple-text, so several workers handle one conversation at
        once; the webhook redelivers some messages; one worker crashes mid-run. Every
        message goes through the pipeline (receive, then complete) and the engine answers
        each run with the offline model (keyword intents, labelled template replies; no
        key, no language model). Some customers ask for a person: their conversation is
        handed off, and what they send next is held for a human (answered by no run).
        Then every message is looked for in the stored turns and state: the run fails
        (exit 1) if anything was lost, duplicated, answered twice (or neither answered nor
        held) or misnumbered. Progress goes to
        stderr: a bar on a terminal, otherwise a line every few seconds on long runs.

        With --storage sqlite, postgres or supabase the sessions are written to that
        database (FRONTDESK_SQLITE_PATH, FRONTDESK_POSTGRES_DSN, SUPABASE_URL), in a
        workspace of their own, demo-SEED-XXXXXXXX (named on stderr at the start), and
        deleted at the end, or when the demo is interrupted (Ctrl-C); with --keep they
        stay, to look at with `frontdesk sessions list --workspace demo-...`.
        """
        try:
            check_demo_sizes(conversations, messages, workers)
        except ValidationError as exc:
            raise click.UsageError(str(exc)) from exc
        report, durable = asyncio.run(
            _run(conversations, messages, workers, seed, storage_name, keep, policy)
        )
        _print_report(report, durable=durable)
        if not report.ok:
            raise SystemExit(1)

    return demo


async def _run(
    conversations: int,
    messages: int,
    workers: int,
    seed: int | None,
    storage_name: str,
    keep: bool,
    policy: str,
) -> tuple[DemoReport, bool]:
    """Run the demo; return its report and whether the storage outlives this process."""
    from ..demo import run_demo
    from ..storage import open_storage
    from ..storage.memory import InMemoryStorage

    registry = load_registry()
    warn_conflicts(registry)  # the demo runs without those agents: say so
    if not registry.list():
        raise click.ClickException(
            "no agents installed: pip install frontdesk-sales (or another agent package)"
        )
    with one_line_errors():
        storage = await open_storage(storage_name)
    durable = not isinstance(storage, InMemoryStorage)

    def on_start(workspace: str) -> None:
        # Durable storages only: a workspace the user may have to find, if all else fails.
        if durable:
            fate = "kept (--keep)" if keep else "deleted at the end, or if interrupted"
            click.echo(f"demo: workspace {workspace} on {storage_name}: {fate}", err=True)

    try:
        with _progress() as on_progress, one_line_errors():
            report = await run_demo(
                storage,
                registry,
                conversations=conversations,
                messages=messages,
                workers=workers,
                seed=seed,
                storage_name=storage_name,
                on_progress=on_progress,
                keep=keep,
                policy=policy,
                on_start=on_start,
            )
    finally:
        await storage.aclose()
    return report, durable


class ProgressLines:
    """Progress for a stderr that is not a terminal: a line every `every` seconds.

    Short runs print nothing; a long one says how far it got, so a log shows it is alive.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._every = every
        self._clock = clock
        self._started = clock()
        self._next = self._started + every

    def __call__(self, done: int, total: int) -> None:
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._every
        elapsed = now - self._started
        self._stream.write(
            f"demo: {done:,} of {total:,} messages ({done * 100 // total}%), {elapsed:.0f} s\n"
        )
        self._stream.flush()


@contextmanager
def _progress() -> Iterator[Callable[[int, int], None]]:
    """The progress reporter for this stderr: a rich bar on a terminal, else `ProgressLines`."""
    if not sys.stderr.isatty():
        yield ProgressLines(sys.stderr)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("messages", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _print_report(report: DemoReport, *, durable: bool) -> None:
    from rich.table import Table

    out = console(highlight=False)
    title = f"frontdesk demo ({report.storage}, seed {report.seed}, policy {report.policy})"
    table = Table(title=title, box=None)
    table.add_column("")
    table.add_column("", justify="right")
    rows = [
        ("answered by", "engine, offline model (keyword matching)"),
        ("conversations", f"{report.conversations}"),
        ("messages", f"{report.messages}"),
        ("sessions", f"{report.sessions}"),
        ("turns", f"{report.turns}"),
        ("deliveries (redeliveries included)", f"{report.deliveries}"),
        ("duplicate deliveries recognised", f"{report.duplicates}"),
        ("runs completed", f"{report.runs}"),
        ("runs superseded (interrupt)", f"{report.superseded}"),
        ("deliveries refused (reject)", f"{report.refused}"),
        ("runs resumed after a crash", f"{report.resumed}"),
        ("messages held for a human (handed off)", f"{report.held}"),
        ("lost updates", f"{report.lost_updates}"),
        ("storage requests per message", f"{report.calls_per_message:.2f}"),
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
    if report.removed_sessions is None and not durable:
        out.print(
            f"--keep: nothing to keep, the {report.storage} storage ends with the process "
            "(--storage sqlite, postgres or supabase keeps the sessions)"
        )
    elif report.removed_sessions is None:
        out.print(f"kept workspace {report.workspace}")
    else:
        out.print(
            f"deleted workspace {report.workspace} ({report.removed_sessions} sessions); "
            "--keep keeps it"
        )
