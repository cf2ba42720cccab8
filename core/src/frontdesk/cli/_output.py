"""Printing for people: rich consoles (imported only when used), warnings, plurals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "count", "warn"]


def console(**options: Any) -> Console:
    """A rich console; rich is imported here so that `--json` output does not pay for it."""
    from rich.console import Console

    return Console(**options)


def warn(message: str) -> None:
    """Print `warning: message` on stderr."""
    click.secho(f"warning: {message}", fg="yellow", err=True)


def count(n: int, noun: str) -> str:
    """`1 session`, `2 sessions`: a number and its noun, in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
