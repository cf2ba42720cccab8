"""The `frontdesk` command: inspect installed agents and agent packages, run the demo.

Built by `create_cli()` so that importing this package does nothing; `main` is the console
script. Listings take `--json` for scripts; frontdesk's own errors are one line on stderr
with exit code 1 (usage errors are click's, exit code 2).

One module per command group; each defines `command() -> click.Command` and nothing runs
at import. Adding a group is two lines here: import its module below, and add
`<module>.command` to `_COMMANDS`. Every command gets `-v/--verbose` by itself, so that
`frontdesk agents -v` works as `frontdesk -v agents` does. Shared pieces live in the private
modules: `_errors` (one-line errors), `_output` (consoles, warnings, plurals), `_registry`
(the registry the commands read, its problems warned about).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

import click

from .. import __version__
from . import agents, chat, db, demo, plugins, runs, sessions

__all__ = ["create_cli", "main"]

# The command groups, in the order `frontdesk --help` lists them.
_COMMANDS = (
    agents.command,
    plugins.command,
    sessions.command,
    runs.command,
    chat.command,
    db.command,
    demo.command,
)


def create_cli() -> click.Group:
    """Build the `frontdesk` command group.

    >>> create_cli().name
    'frontdesk'
    """

    @click.group(
        "frontdesk", cls=_Frontdesk, context_settings={"help_option_names": ["-h", "--help"]}
    )
    @click.version_option(__version__, prog_name="frontdesk")
    @click.option("-v", "--verbose", is_flag=True, help="Log what frontdesk does to stderr.")
    def cli(verbose: bool) -> None:
        """frontdesk: conversational agents on durable sessions.

        Agents come from installed packages (pip install frontdesk-sales); see them with
        `frontdesk agents` and the packages with `frontdesk plugins`. `frontdesk chat
        AGENT` talks with one; `frontdesk demo` has the installed agents answer busy
        simulated traffic through the engine (offline model, no key) and checks it.
        """
        # The library never configures logging; the command line is an application.
        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
        if verbose:
            _log_everything()

    for build in _COMMANDS:
        command = build()
        _add_verbose(command)
        cli.add_command(command)
    return cli


# The statuses of a process ended by a signal, as shells report them (128 + the signal).
EXIT_INTERRUPTED = 128 + signal.SIGINT
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


class _Frontdesk(click.Group):
    """The group, ending the way Unix tools end when interrupted or cut off.

    Ctrl-C prints click's `Aborted!` and exits 130; a reader that goes away (`frontdesk demo
    | head -1`) ends the output quietly with 141, as if SIGPIPE had ended the process (the
    recipe of Python's `signal` documentation). Click alone would exit 1 for both, which
    the demo uses for a failed check.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a broken pipe surfaces here, not at interpreter exit
        except KeyboardInterrupt:
            click.echo(err=True)  # close the terminal's ^C echo
            click.echo("Aborted!", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # Whatever is still buffered goes nowhere, so the exit itself cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None
        return result


def _add_verbose(command: click.Command) -> None:
    """Give `command` and its subcommands a `-v` of their own (the group's is parsed only
    before the subcommand's name)."""
    if not any(param.name == "verbose" for param in command.params):
        command.params.append(
            click.Option(
                ["-v", "--verbose"],
                is_flag=True,
                expose_value=False,
                callback=lambda _ctx, _param, value: _log_everything() if value else None,
                help="Log what frontdesk does to stderr.",
            )
        )
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _add_verbose(subcommand)


def _log_everything() -> None:
    logging.getLogger().setLevel(logging.DEBUG)


def main() -> None:
    """Entry point of the `frontdesk` console script."""
    create_cli()(prog_name="frontdesk")
