"""Printing for people: rich consoles (imported only when used), warnings, plurals."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "count", "warn"]


# Output that goes to a file or a pipe is not wrapped: a line is a line, for grep and less.
_PIPED_WIDTH = 1_000


def console(**options: Any) -> Console:
    """A rich console; rich is imported here so that `--json` output does not pay for it.

    On a terminal it wraps at the terminal's width; piped, it never breaks a line.
    """
    out = _console_class()(**options)
    if not out.is_terminal and "width" not in options:
        out.width = _PIPED_WIDTH
    return out


@functools.cache
def _console_class() -> type[Console]:
    from rich.console import Console

    class PipedConsole(Console):
        """A console that leaves a closed pipe to the command line (rich alone exits 1)."""

        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return PipedConsole


def warn(message: str) -> None:
    """Print `warning: message` on stderr."""
    click.secho(f"warning: {message}", fg="yellow", err=True)


def count(n: int, noun: str) -> str:
    """`1 session`, `2 sessions`: a number and its noun, in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
