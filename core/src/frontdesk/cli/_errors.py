"""How the command line reports frontdesk's errors: one line on stderr, exit code 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..errors import FrontdeskError, ModelNotFoundError

__all__ = ["OFFLINE_HINT", "one_line", "one_line_errors"]

OFFLINE_HINT = "or use --model offline (keyword matching): it needs no key"
"""How a command that takes `--model` says to run without a key."""


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A `FrontdeskError` becomes click's one-line `Error: ...` with exit code 1."""
    try:
        yield
    except ModelNotFoundError as exc:
        # Its advice for running without a key is the command's option, not Python's.
        hinted = exc.with_offline_hint(OFFLINE_HINT)
        raise click.ClickException(one_line(str(hinted))) from exc
    except FrontdeskError as exc:
        raise click.ClickException(one_line(str(exc))) from exc


def one_line(text: str) -> str:
    """A message on one line, keeping every part of it.

    The listed problems of a multi-line message (such as `InvalidAgentConfigError`'s
    `  - field: what is wrong`) are joined with semicolons after its first line.

    >>> one_line("invalid agent 'x' (2 problems):\\n  - id: empty\\n  - name: empty")
    "invalid agent 'x' (2 problems): id: empty; name: empty"
    """
    lines = [line.strip().removeprefix("- ") for line in text.splitlines() if line.strip()]
    if not lines:
        return text.strip()
    return " ".join([lines[0], "; ".join(lines[1:])]) if len(lines) > 1 else lines[0]
