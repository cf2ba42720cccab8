"""Printing for people: rich consoles (imported only when used) and warnings on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "warn"]


def console(**options: Any) -> Console:
    """A rich console; rich is imported here so that `--json` output does not pay for it."""
    from rich.console import Console

    return Console(**options)


def warn(message: str) -> None:
    """Print `warning: message` on stderr."""
    click.secho(f"warning: {message}", fg="yellow", err=True)
