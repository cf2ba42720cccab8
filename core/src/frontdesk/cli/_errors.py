"""How the command line reports frontdesk's errors: one line on stderr, exit code 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..errors import FrontdeskError

__all__ = ["one_line_errors"]


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A `FrontdeskError` becomes click's one-line `Error: ...` with exit code 1."""
    try:
        yield
    except FrontdeskError as exc:
        raise click.ClickException(str(exc).splitlines()[0]) from exc
