"""`frontdesk sessions`: list, show, delete, purge and erase the sessions of a workspace."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import ValidationError
from ..models import SessionStatus
from ._errors import one_line_errors
from ._output import count

if TYPE_CHECKING:
    from ..lifecycle import SessionPage
    from ..models import Session, Turn
    from ..sessions import SessionManager

__all__ = ["command", "parse_duration"]

T = TypeVar("T")

WORKSPACE_ENV = "FRONTDESK_WORKSPACE"

_NOT_PARSED = "no duration was read from it"
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

MEMORY_NOTE = (
    "the memory storage holds nothing between processes, so there are no sessions to "
    "{what}; set FRONTDESK_STORAGE (or --storage) to sqlite, postgres or supabase."
)


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s` or `2w` as a timedelta; `ValidationError` otherwise.

    >>> parse_duration("30d")
    datetime.timedelta(days=30)
    """
    from ..sessions import MAX_INACTIVE_FOR

    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValidationError(
            "duration",
            f"{text!r} is not a duration: use a number and s, m, h, d or w (30d)",
            outcome=_NOT_PARSED,
        )
    too_long = ValidationError(
        "duration",
        f"{text.strip()!r} is too long: at most {MAX_INACTIVE_FOR.days}d",
        limit=f"{MAX_INACTIVE_FOR.days}d",
        outcome=_NOT_PARSED,
    )
    try:
        value = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        # Beyond timedelta's own range (about 2.7 million years).
        raise too_long from None
    if value > MAX_INACTIVE_FOR:
        raise too_long
    return value


class _Duration(click.ParamType[timedelta]):
    """A duration longer than zero: `0d` would make every idle session "inactive"."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            duration = parse_duration(str(value))
        except ValidationError as exc:
            self.fail(exc.problem, param, ctx)
        if duration <= timedelta(0):
            self.fail(
                f"{str(value).strip()!r} is no time at all: give a duration longer than zero "
                "(30d, 12h, ...)",
                param,
                ctx,
            )
        return duration


class _Time(click.ParamType[datetime]):
    """An ISO 8601 time; without an offset it is UTC, the zone sessions are stored in."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (2024-05-01T12:00:00Z)", param, ctx)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _where(function: Callable[..., T]) -> Callable[..., T]:
    """The options every subcommand shares: which workspace, in which storage."""
    function = click.option(
        "--storage",
        "storage_name",
        envvar="FRONTDESK_STORAGE",
        default="memory",
        # The default shown would be wrong whenever the variable is set: name the variable.
        show_default=False,
        help="Storage backend by name (sqlite, postgres, supabase, ...). "
        "Default: $FRONTDESK_STORAGE, else memory.",
    )(function)
    return click.option(
        "--workspace",
        envvar=WORKSPACE_ENV,
        default="",
        help=f"The workspace whose sessions these are; also ${WORKSPACE_ENV}.",
    )(function)


def command() -> click.Group:
    """Build the `sessions` group: list, show, delete, purge, erase-contact."""

    @click.group("sessions")
    def sessions() -> None:
        """See and remove the sessions of a workspace (listing, retention, erasure).

        Choose the workspace with --workspace or FRONTDESK_WORKSPACE, and the storage as
        everywhere with --storage or FRONTDESK_STORAGE.
        """

    @sessions.command("list")
    @_where
    @click.option("--agent", "agent_id", help="Only this agent's sessions.")
    @click.option("--status", type=click.Choice([str(s) for s in SessionStatus]))
    @click.option("--mode", help="Only sessions in this mode.")
    @click.option("--contact", "contact_id", help="Only this contact's sessions.")
    @click.option("--conversation", "conversation_id", help="Only this conversation's.")
    @click.option(
        "--updated-after",
        type=_Time(),
        help="Last activity after this ISO 8601 time; one without an offset is UTC.",
    )
    @click.option(
        "--updated-before",
        type=_Time(),
        help="Last activity before this ISO 8601 time; one without an offset is UTC.",
    )
    @click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
    @click.option("--cursor", help="The next-page cursor a previous listing printed.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON: items and next_cursor.")
    def list_(workspace: str, storage_name: str, limit: int, as_json: bool, **filters: Any) -> None:
        """List sessions, newest activity first, one page at a time."""
        page: SessionPage = _run(
            workspace,
            storage_name,
            "list",
            lambda manager: manager.list_sessions(limit=limit, **filters),
        )
        if as_json:
            record = {
                "items": [_session_record(item) for item in page.items],
                "next_cursor": page.next_cursor,
            }
            click.echo(json.dumps(record, indent=2, ensure_ascii=False))
            return
        _print_page(page)

    @sessions.command("show")
    @_where
    @click.argument("session_id")
    @click.option("--turns", type=click.IntRange(0, 1000), default=10, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print the session as JSON.")
    def show(workspace: str, storage_name: str, session_id: str, turns: int, as_json: bool) -> None:
        """Show a session: its fields, its state and its last turns."""

        async def read(manager: SessionManager) -> tuple[Session, int, list[Turn]]:
            session = await manager.get_session(session_id)
            count = await manager.get_turn_count(session_id)
            last = list(await manager.get_turns(session_id, limit=turns)) if turns else []
            return session, count, last

        session, count, last = _run(workspace, storage_name, "show", read)
        if as_json:
            record = _session_record(session) | {
                "turn_count": count,
                "turns": [_turn_record(turn) for turn in last],
            }
            click.echo(json.dumps(record, indent=2, ensure_ascii=False))
            return
        _print_session(session, count, last)

    @sessions.command("delete")
    @_where
    @click.argument("session_id")
    def delete(workspace: str, storage_name: str, session_id: str) -> None:
        """Delete a session and its turns."""
        deleted: bool = _run(
            workspace, storage_name, "delete", lambda m: m.delete_session(session_id)
        )
        if not deleted:
            raise click.ClickException(_not_found(session_id, workspace))
        click.echo(f"deleted session {session_id}")

    @sessions.command("purge")
    @_where
    @click.option(
        "--inactive-for",
        type=_Duration(),
        required=True,
        help="Delete sessions with no activity for this long: 30d, 12h, 2w, ...",
    )
    @click.option(
        "--status",
        type=click.Choice([str(s) for s in SessionStatus]),
        help="Only sessions in this status (closed, handed_off, active).",
    )
    @click.option("--limit", type=click.IntRange(min=1), help="Delete at most this many.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def purge(
        workspace: str,
        storage_name: str,
        inactive_for: timedelta,
        status: str | None,
        limit: int | None,
        yes: bool,
    ) -> None:
        """Delete the sessions idle for longer than --inactive-for (retention).

        Sessions with a run in progress or messages not yet answered are kept.
        """
        if storage_name.strip() == "memory":
            raise click.ClickException(MEMORY_NOTE.format(what="purge"))
        if not workspace.strip():
            raise click.UsageError(f"choose a workspace with --workspace or {WORKSPACE_ENV}")
        if not yes:
            which = f"{status} " if status else ""
            at_most = f"up to {limit} " if limit else "every "
            click.confirm(
                f"Delete {at_most}{which}session of workspace {workspace!r} idle for "
                f"{_duration_text(inactive_for)}, with all their turns? This cannot be undone",
                abort=True,
            )
        removed: int = _run(
            workspace,
            storage_name,
            "purge",
            lambda m: m.purge(inactive_for=inactive_for, status=status, limit=limit),
        )
        which = f"{status} " if status else ""
        idle = _duration_text(inactive_for)
        click.echo(f"purged {count(removed, which + 'session')} idle for {idle}")

    @sessions.command("erase-contact")
    @_where
    @click.argument("contact_id")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def erase_contact(workspace: str, storage_name: str, contact_id: str, yes: bool) -> None:
        """Erase everything the workspace holds about a contact (a deletion request)."""
        if storage_name.strip() == "memory":
            raise click.ClickException(MEMORY_NOTE.format(what="erase"))
        if not workspace.strip():
            raise click.UsageError(f"choose a workspace with --workspace or {WORKSPACE_ENV}")
        if not yes:
            click.confirm(
                f"Erase every session of contact {contact_id!r} in workspace {workspace!r}, "
                "with all their turns? This cannot be undone",
                abort=True,
            )
        report = _run(workspace, storage_name, "erase", lambda m: m.erase_contact(contact_id))
        sessions, turns = count(report.sessions, "session"), count(report.turns, "turn")
        click.echo(f"erased contact {contact_id!r}: {sessions}, {turns}")

    return sessions


# -- running one operation -------------------------------------------------------------------


def _run(
    workspace: str,
    storage_name: str,
    what: str,
    operation: Callable[[SessionManager], Awaitable[T]],
) -> T:
    """Open the storage, refuse the in-memory one, run `operation` on a manager, close."""
    from ..errors import SessionNotFoundError

    if not workspace.strip():
        raise click.UsageError(f"choose a workspace with --workspace or {WORKSPACE_ENV}")
    with one_line_errors():
        try:
            return asyncio.run(_open_and_run(workspace, storage_name, what, operation))
        except SessionNotFoundError as exc:
            # The library's message speaks of the SessionManager's workspace_id.
            raise click.ClickException(_not_found(exc.session_id, workspace)) from exc


def _not_found(session_id: str | None, workspace: str) -> str:
    return (
        f"no session {session_id} in workspace {workspace!r}: check the id, and the workspace "
        f"(--workspace or {WORKSPACE_ENV})"
    )


async def _open_and_run(
    workspace: str,
    storage_name: str,
    what: str,
    operation: Callable[[SessionManager], Awaitable[T]],
) -> T:
    from ..sessions import SessionManager
    from ..storage import open_storage
    from ..storage.memory import InMemoryStorage
    from ._registry import load_registry

    # The commands only read or remove: a mistyped SQLite path must not become a new,
    # empty database that answers "no sessions".
    options = {"create": False} if storage_name == "sqlite" else {}
    storage = await open_storage(storage_name, **options)
    try:
        if isinstance(storage, InMemoryStorage):
            raise click.ClickException(MEMORY_NOTE.format(what=what))
        manager = SessionManager(storage, workspace_id=workspace, registry=load_registry())
        return await operation(manager)
    finally:
        await storage.aclose()


# -- printing ---------------------------------------------------------------------------------


def _session_record(session: Session) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": session.id,
        "agent_id": session.agent_id,
        "agent_version": session.agent_version,
        "conversation_id": session.conversation_id,
        "contact_id": session.contact_id,
        "status": str(session.status),
        "current_mode": session.current_mode,
        "version": session.version,
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
        "last_activity_at": session.last_activity_at.isoformat(),
        "state": session.state.to_json(),
    }
    for extra in ("turn_count", "tokens_used"):
        if hasattr(session, extra):
            record[extra] = getattr(session, extra)
    return record


def _turn_record(turn: Turn) -> dict[str, Any]:
    return {
        "turn_number": turn.turn_number,
        "role": str(turn.role),
        "content": turn.content,
        "intent_detected": turn.intent_detected,
        "tokens_used": turn.tokens_used,
        "created_at": turn.created_at.isoformat(),
    }


def _print_page(page: SessionPage) -> None:
    # Plain columns, never wrapped: ids and the cursor must survive a copy and paste.
    if not page.items:
        click.echo("no sessions match")
        return
    rows = [("id", "agent", "status", "mode", "turns", "last activity", "contact", "conversation")]
    for item in page.items:
        agent = f"{item.agent_id} {item.agent_version}" if item.agent_version else item.agent_id
        rows.append(
            (
                item.id,
                agent,
                str(item.status),
                item.current_mode,
                str(item.turn_count),
                item.last_activity_at.strftime("%Y-%m-%d %H:%M:%S"),
                item.contact_id,
                item.conversation_id,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))
    if page.next_cursor:
        click.echo(f"next page: --cursor {page.next_cursor}")


def _print_session(session: Session, count: int, turns: list[Turn]) -> None:
    version = f" {session.agent_version}" if session.agent_version else ""
    for name, value in (
        ("session", session.id),
        ("agent", f"{session.agent_id}{version}"),
        ("contact", session.contact_id),
        ("conversation", session.conversation_id),
        ("status", str(session.status)),
        ("mode", session.current_mode),
        ("version", str(session.version)),
        ("created", session.created_at.isoformat()),
        ("last activity", session.last_activity_at.isoformat()),
        ("turns", str(count)),
    ):
        click.echo(f"{name:>13}  {value}")
    state = json.dumps(session.state.to_json(), indent=2, ensure_ascii=False)
    click.echo("        state  " + state.replace("\n", "\n" + " " * 15))
    if turns:
        click.echo(f"   last turns  (the last {len(turns)} of {count})")
    for turn in turns:
        click.echo(f"  #{turn.turn_number} {turn.role}: {turn.content}")


def _duration_text(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
