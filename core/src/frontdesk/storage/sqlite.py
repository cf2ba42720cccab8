"""`SQLiteStorage`: sessions in one SQLite file, shared by the processes of one machine.

The durable embedded backend: no server, nothing to install (SQLite ships with Python).
Several processes may use one file at once (a webhook with four workers): the file is in
WAL mode, every write is one `BEGIN IMMEDIATE` transaction (SQLite's write lock, taken
before anything is read, so a write decides on data no one else can change meanwhile), and
every read is one read transaction (a consistent snapshot). The decisions themselves are
the reference logic `InMemoryStorage` uses (`frontdesk.storage._reference`).

    storage = SQLiteStorage("sessions.db")        # or SQLiteStorage.from_env()
    manager = SessionManager(storage, workspace_id="acme")
    ...
    await storage.aclose()

The blocking `sqlite3` calls run in a small thread pool, off the event loop, each thread
with its own connection. A write waits at most `timeout` seconds for another process's
write lock, then fails with `StorageUnavailableError` (nothing written).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs

from ..errors import (
    FrontdeskError,
    SessionClosedError,
    SessionNotFoundError,
    StorageError,
    StorageUnavailableError,
    VersionConflictError,
)
from ..lifecycle import ErasureReport, SessionMigration, SessionQuery, SessionSummary
from ..models import Role, Session, SessionState, SessionStatus, ToolCall, Turn, TurnStats
from ._reference import committed, create_outcome, new_session, refuse_commit
from .base import Capability, Commit, CommitResult, NewSession

__all__ = ["DEFAULT_PATH", "PATH_ENV", "SQLiteStorage"]

PATH_ENV = "FRONTDESK_SQLITE_PATH"
DEFAULT_PATH = "frontdesk.db"
"""The file `from_env()` uses when FRONTDESK_SQLITE_PATH is not set (in the working directory)."""

_SCHEMA_VERSION = 2

_SCHEMA = """
create table if not exists agent_sessions (
    id               text primary key,
    workspace_id     text not null,
    agent_id         text not null,
    conversation_id  text not null,
    contact_id       text not null,
    version          integer not null,
    status           text not null,
    current_mode     text not null,
    state            text not null,
    turn_count       integer not null default 0,
    tokens_used      integer not null default 0,
    created_at       text not null,
    updated_at       text not null,
    last_activity_at text not null
);
create unique index if not exists agent_sessions_one_active
    on agent_sessions (workspace_id, conversation_id, agent_id) where status = 'active';
create table if not exists agent_turns (
    session_id      text not null references agent_sessions (id) on delete cascade,
    turn_number     integer not null,
    role            text not null,
    content         text not null,
    intent_detected text,
    confidence      real,
    tools_called    text not null,
    tokens_used     integer not null,
    created_at      text not null,
    primary key (session_id, turn_number)
) without rowid;
"""

# Schema 2, the session lifecycle: the agent version, and one index per listing filter,
# each ending in the listing order (last_activity_at, id).
_SCHEMA_2 = """
alter table agent_sessions add column agent_version text;
create index if not exists agent_sessions_by_activity
    on agent_sessions (workspace_id, last_activity_at, id);
create index if not exists agent_sessions_by_agent_activity
    on agent_sessions (workspace_id, agent_id, last_activity_at, id);
create index if not exists agent_sessions_by_status_activity
    on agent_sessions (workspace_id, status, last_activity_at, id);
create index if not exists agent_sessions_by_mode_activity
    on agent_sessions (workspace_id, current_mode, last_activity_at, id);
create index if not exists agent_sessions_by_contact_activity
    on agent_sessions (workspace_id, contact_id, last_activity_at, id);
create index if not exists agent_sessions_by_conversation_activity
    on agent_sessions (workspace_id, conversation_id, last_activity_at, id);
"""

_UPGRADES = {1: _SCHEMA, 2: _SCHEMA_2}

_SESSION_COLUMNS = (
    "id, workspace_id, agent_id, conversation_id, contact_id, version, status, current_mode, "
    "state, turn_count, tokens_used, created_at, updated_at, last_activity_at, agent_version"
)
_TURN_COLUMNS = (
    "session_id, turn_number, role, content, intent_detected, confidence, tools_called, "
    "tokens_used, created_at"
)

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


class SQLiteStorage:
    """The `StorageBackend` on one SQLite file (created, with its tables, if missing).

    `timeout` bounds the wait for another writer's lock, in seconds; `threads` is the size
    of the thread pool the blocking calls run in; `clock` replaces the wall clock.
    """

    capabilities: frozenset[str] = frozenset({Capability.THREADS})

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        timeout: float = 5.0,
        threads: int = 4,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.path = Path(path)
        self._timeout = timeout
        self._clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="frontdesk-sqlite")
        self._closed = False
        try:
            self._create_schema()
        except BaseException:
            self._close()
            raise

    @classmethod
    def from_env(cls, **options: Any) -> SQLiteStorage:
        """Open the file named by FRONTDESK_SQLITE_PATH, else `frontdesk.db` here."""
        path = os.environ.get(PATH_ENV, "").strip() or DEFAULT_PATH
        return cls(path, **options)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} path={str(self.path)!r}>"

    async def aclose(self) -> None:
        """Close the connections and the thread pool; the file stays."""
        await asyncio.to_thread(self._close)

    def close(self) -> None:
        """`aclose()` for code without an event loop."""
        self._close()

    async def __aenter__(self) -> SQLiteStorage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the primitives --------------------------------------------------------------------

    async def create_session(
        self, new: NewSession, *, return_existing: bool = False
    ) -> tuple[Session, bool]:
        def create(conn: sqlite3.Connection) -> tuple[Session, bool]:
            active = conn.execute(
                "select id from agent_sessions where workspace_id = ? and conversation_id = ?"
                " and agent_id = ? and status = 'active'",
                (new.workspace_id, new.conversation_id, new.agent_id),
            ).fetchone()
            taken = conn.execute("select 1 from agent_sessions where id = ?", (new.id,)).fetchone()
            outcome = create_outcome(
                new,
                active_id=None if active is None else active[0],
                id_taken=taken is not None,
                return_existing=return_existing,
            )
            if outcome.existing_id is not None:
                found = _select_session(conn, new.workspace_id, outcome.existing_id)
                assert found is not None  # noqa: S101 - read in this same transaction
                return found[0], outcome.created
            session = new_session(new, self._clock())
            state_json = _dumps(session.state.to_json())
            conn.execute(
                f"insert into agent_sessions ({_SESSION_COLUMNS}) "  # noqa: S608 - fixed names
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?)",
                (
                    session.id,
                    session.workspace_id,
                    session.agent_id,
                    session.conversation_id,
                    session.contact_id,
                    session.version,
                    str(session.status),
                    session.current_mode,
                    state_json,
                    _time(session.created_at),
                    _time(session.updated_at),
                    _time(session.last_activity_at),
                    session.agent_version,
                ),
            )
            return _with_state(session, state_json), True

        return await self._run("create_session", create, write=True)

    async def get_session(self, workspace_id: str, session_id: str) -> Session | None:
        def get(conn: sqlite3.Connection) -> Session | None:
            found = _select_session(conn, workspace_id, session_id)
            return None if found is None else found[0]

        return await self._run("get_session", get, write=False)

    async def find_active_session(
        self, workspace_id: str, conversation_id: str, agent_id: str
    ) -> Session | None:
        def find(conn: sqlite3.Connection) -> Session | None:
            row = conn.execute(
                f"select {_SESSION_COLUMNS} from agent_sessions "  # noqa: S608 - fixed names
                "where workspace_id = ? and conversation_id = ? and agent_id = ?"
                " and status = 'active'",
                (workspace_id, conversation_id, agent_id),
            ).fetchone()
            return None if row is None else _session(row)[0]

        return await self._run("find_active_session", find, write=False)

    async def commit(self, workspace_id: str, session_id: str, commit: Commit) -> CommitResult:
        def write(conn: sqlite3.Connection) -> CommitResult:
            found = _select_session(conn, workspace_id, session_id)
            if found is None:
                raise SessionNotFoundError(session_id)
            current, turn_count, tokens_used = found
            refuse_commit(current, turn_count, commit)
            session, turns = committed(current, turn_count, commit, self._clock())
            state_json = _dumps(session.state.to_json())
            turn_rows = [_turn_row(turn) for turn in turns]
            conn.executemany(
                f"insert into agent_turns ({_TURN_COLUMNS}) "  # noqa: S608 - fixed names
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                turn_rows,
            )
            conn.execute(
                "update agent_sessions set version = ?, status = ?, current_mode = ?,"
                " state = ?, turn_count = ?, tokens_used = ?, updated_at = ?,"
                " last_activity_at = ? where id = ?",
                (
                    session.version,
                    str(session.status),
                    session.current_mode,
                    state_json,
                    turn_count + len(turns),
                    tokens_used + sum(turn.tokens_used for turn in turns),
                    _time(session.updated_at),
                    _time(session.last_activity_at),
                    session_id,
                ),
            )
            # What is returned is read back from what was stored: it aliases nothing.
            return CommitResult(
                _with_state(session, state_json), tuple(_turn(row) for row in turn_rows)
            )

        return await self._run("commit", write, write=True)

    async def list_turns(
        self, workspace_id: str, session_id: str, *, limit: int | None = None
    ) -> Sequence[Turn]:
        def read(conn: sqlite3.Connection) -> list[Turn]:
            _require_session(conn, workspace_id, session_id)
            rows = conn.execute(
                f"select {_TURN_COLUMNS} from (select * from agent_turns "  # noqa: S608
                "where session_id = ? order by turn_number desc limit ?) order by turn_number",
                (session_id, -1 if limit is None else limit),
            ).fetchall()
            return [_turn(row) for row in rows]

        return await self._run("list_turns", read, write=False)

    async def turn_stats(self, workspace_id: str, session_id: str) -> TurnStats:
        def read(conn: sqlite3.Connection) -> TurnStats:
            row = conn.execute(
                "select turn_count, tokens_used from agent_sessions"
                " where id = ? and workspace_id = ?",
                (session_id, workspace_id),
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(session_id)
            return TurnStats(count=int(row[0]), tokens_used=int(row[1]))

        return await self._run("turn_stats", read, write=False)

    # -- lifecycle: listing, removal, migration -------------------------------------------

    async def list_sessions(
        self, workspace_id: str, query: SessionQuery
    ) -> Sequence[SessionSummary]:
        where = ["workspace_id = ?"]
        values: list[Any] = [workspace_id]
        for column, value in (
            ("agent_id", query.agent_id),
            ("status", query.status and str(query.status)),
            ("current_mode", query.mode),
            ("contact_id", query.contact_id),
            ("conversation_id", query.conversation_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                values.append(value)
        if query.updated_after is not None:
            where.append("last_activity_at > ?")
            values.append(_time(query.updated_after))
        if query.updated_before is not None:
            where.append("last_activity_at < ?")
            values.append(_time(query.updated_before))
        if query.after is not None:
            where.append("(last_activity_at, id) < (?, ?)")
            values += [_time(query.after.last_activity_at), query.after.session_id]
        sql = (
            f"select {_SESSION_COLUMNS} from agent_sessions "  # noqa: S608 - fixed names
            f"where {' and '.join(where)} order by last_activity_at desc, id desc limit ?"
        )

        def read(conn: sqlite3.Connection) -> list[SessionSummary]:
            rows = conn.execute(sql, (*values, query.limit)).fetchall()
            summaries = []
            for row in rows:
                session, turn_count, tokens_used = _session(row)
                summaries.append(SessionSummary.of(session, TurnStats(turn_count, tokens_used)))
            return summaries

        return await self._run("list_sessions", read, write=False)

    async def delete_session(self, workspace_id: str, session_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "delete from agent_sessions where id = ? and workspace_id = ?",
                (session_id, workspace_id),
            )
            return cursor.rowcount > 0

        return await self._run("delete_session", delete, write=True)

    async def purge_sessions(
        self,
        workspace_id: str,
        *,
        inactive_for: timedelta,
        status: SessionStatus | None,
        limit: int,
    ) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            cutoff = _time(self._clock() - inactive_for)
            status_filter = "" if status is None else " and status = ?"
            chosen = () if status is None else (str(status),)
            cursor = conn.execute(
                "delete from agent_sessions where id in (select id from agent_sessions"  # noqa: S608 - fixed names
                f" where workspace_id = ? and last_activity_at < ?{status_filter}"
                " order by last_activity_at, id limit ?)",
                (workspace_id, cutoff, *chosen, limit),
            )
            return cursor.rowcount

        return await self._run("purge_sessions", purge, write=True)

    async def erase_contact(self, workspace_id: str, contact_id: str) -> ErasureReport:
        def erase(conn: sqlite3.Connection) -> ErasureReport:
            sessions, turns = conn.execute(
                "select count(*), coalesce(sum(turn_count), 0) from agent_sessions"
                " where workspace_id = ? and contact_id = ?",
                (workspace_id, contact_id),
            ).fetchone()
            conn.execute(
                "delete from agent_sessions where workspace_id = ? and contact_id = ?",
                (workspace_id, contact_id),
            )
            return ErasureReport(sessions=int(sessions), turns=int(turns))

        return await self._run("erase_contact", erase, write=True)

    async def migrate_session(
        self, workspace_id: str, session_id: str, migration: SessionMigration
    ) -> Session:
        def migrate(conn: sqlite3.Connection) -> Session:
            found = _select_session(conn, workspace_id, session_id)
            if found is None:
                raise SessionNotFoundError(session_id)
            current = found[0]
            if current.status != SessionStatus.ACTIVE:
                raise SessionClosedError(session_id, current.status)
            if migration.expected_version != current.version:
                raise VersionConflictError(session_id, migration.expected_version, current.version)
            session = attrs.evolve(
                current,
                version=current.version + 1,
                current_mode=migration.current_mode,
                agent_version=migration.agent_version,
                state=migration.state,
                updated_at=max(self._clock(), current.updated_at),
            )
            state_json = _dumps(session.state.to_json())
            conn.execute(
                "update agent_sessions set version = ?, current_mode = ?, state = ?,"
                " agent_version = ?, updated_at = ? where id = ?",
                (
                    session.version,
                    session.current_mode,
                    state_json,
                    session.agent_version,
                    _time(session.updated_at),
                    session_id,
                ),
            )
            return _with_state(session, state_json)

        return await self._run("migrate_session", migrate, write=True)

    async def health(self) -> dict[str, Any]:
        """What `frontdesk db check` reports: the file, its schema version, its journal mode."""

        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            return {
                "path": str(self.path),
                "schema_version": int(conn.execute("pragma user_version").fetchone()[0]),
                "journal_mode": str(conn.execute("pragma journal_mode").fetchone()[0]),
            }

        return await self._run("health", read, write=False)

    async def check_write_lock(self) -> None:
        """Take the write lock and release it, writing nothing (bounded by `timeout`)."""
        await self._run("check_write_lock", lambda conn: None, write=True)

    # -- transactions ----------------------------------------------------------------------

    async def _run(
        self, operation: str, work: Callable[[sqlite3.Connection], T], *, write: bool
    ) -> T:
        if self._closed:
            raise StorageError(f"{self!r} is closed; open a new SQLiteStorage")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._transaction, operation, work, write)

    def _transaction(
        self, operation: str, work: Callable[[sqlite3.Connection], T], write: bool
    ) -> T:
        """Run `work` in one transaction of this thread's connection; map SQLite's errors."""
        conn = self._connection()
        try:
            # IMMEDIATE takes the write lock up front (waiting up to `timeout` for it), so
            # two writers never both read and then collide; a read takes a snapshot.
            conn.execute("begin immediate" if write else "begin")
        except sqlite3.Error as exc:
            raise _unavailable(operation, exc, self.path) from exc
        try:
            result = work(conn)
        except BaseException as exc:
            if conn.in_transaction:  # some errors end the transaction themselves
                conn.execute("rollback")
            if isinstance(exc, sqlite3.Error):  # rolled back: nothing was written
                raise _unavailable(operation, exc, self.path) from exc
            raise
        try:
            conn.execute("commit")
        except sqlite3.Error as exc:
            # A failed COMMIT (an I/O error, say) may have left its frames in the WAL: only
            # a read can tell. A rollback, if the transaction is still open, cleans up.
            if conn.in_transaction:
                conn.execute("rollback")
            raise _unavailable(operation, exc, self.path, may_have_applied=write) from exc
        return result

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("pragma foreign_keys = on")
            conn.execute(f"pragma busy_timeout = {int(self._timeout * 1000)}")
        except sqlite3.Error as exc:
            raise StorageError(
                f"cannot open the SQLite database {str(self.path)!r} ({exc}); check that its "
                f"folder exists and is writable, or set {PATH_ENV}."
            ) from exc
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _create_schema(self) -> None:
        conn = self._open()
        try:
            # WAL lets readers and one writer work at once, across processes; the setting
            # is stored in the file.
            mode = conn.execute("pragma journal_mode = wal").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise StorageError(
                    f"the SQLite database {str(self.path)!r} cannot use WAL mode (got {mode}); "
                    "put it on a local disk."
                )
            if int(conn.execute("pragma user_version").fetchone()[0]) == _SCHEMA_VERSION:
                return  # the usual case: no need to wait for the write lock
            conn.execute("begin immediate")
            try:
                version = int(conn.execute("pragma user_version").fetchone()[0])
                if version > _SCHEMA_VERSION:
                    raise StorageError(
                        f"the SQLite database {str(self.path)!r} was written by a newer "
                        f"frontdesk (schema {version}, this one knows {_SCHEMA_VERSION}); "
                        "upgrade frontdesk."
                    )
                for step in range(version + 1, _SCHEMA_VERSION + 1):
                    for statement in _UPGRADES[step].split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"pragma user_version = {step}")
                conn.execute("commit")
            except BaseException:
                conn.execute("rollback")
                raise
        except sqlite3.Error as exc:
            raise StorageError(
                f"cannot prepare the SQLite database {str(self.path)!r}: {exc}"
            ) from exc
        finally:
            with self._connections_lock:
                self._connections.remove(conn)
            conn.close()

    def _close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=True)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _unavailable(
    operation: str, exc: sqlite3.Error, path: Path, *, may_have_applied: bool = False
) -> FrontdeskError:
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        detail = f"the database {str(path)!r} stayed locked by another writer: {exc}"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    return StorageUnavailableError(operation, detail, may_have_applied=may_have_applied)


# -- rows --------------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _time(value: datetime) -> str:
    # Fixed width, so that text order is time order.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _select_session(
    conn: sqlite3.Connection, workspace_id: str, session_id: str
) -> tuple[Session, int, int] | None:
    row = conn.execute(
        f"select {_SESSION_COLUMNS} from agent_sessions "  # noqa: S608 - fixed names
        "where id = ? and workspace_id = ?",
        (session_id, workspace_id),
    ).fetchone()
    return None if row is None else _session(row)


def _require_session(conn: sqlite3.Connection, workspace_id: str, session_id: str) -> None:
    found = conn.execute(
        "select 1 from agent_sessions where id = ? and workspace_id = ?",
        (session_id, workspace_id),
    ).fetchone()
    if found is None:
        raise SessionNotFoundError(session_id)


def _session(row: Sequence[Any]) -> tuple[Session, int, int]:
    """The session of a row, with its turn count and token total."""
    session = Session(
        id=row[0],
        workspace_id=row[1],
        agent_id=row[2],
        conversation_id=row[3],
        contact_id=row[4],
        version=int(row[5]),
        status=SessionStatus(row[6]),
        current_mode=row[7],
        state=SessionState.from_json(json.loads(row[8])),
        created_at=datetime.fromisoformat(row[11]),
        updated_at=datetime.fromisoformat(row[12]),
        last_activity_at=datetime.fromisoformat(row[13]),
        agent_version=row[14],
    )
    return session, int(row[9]), int(row[10])


def _with_state(session: Session, state_json: str) -> Session:
    return attrs.evolve(session, state=SessionState.from_json(json.loads(state_json)))


def _turn_row(turn: Turn) -> tuple[Any, ...]:
    calls = [{"name": c.name, "input": c.input, "output": c.output} for c in turn.tools_called]
    return (
        turn.session_id,
        turn.turn_number,
        str(turn.role),
        turn.content,
        turn.intent_detected,
        turn.confidence,
        _dumps(calls),
        turn.tokens_used,
        _time(turn.created_at),
    )


def _turn(row: Sequence[Any]) -> Turn:
    return Turn(
        session_id=row[0],
        turn_number=int(row[1]),
        role=Role(row[2]),
        content=row[3],
        intent_detected=row[4],
        confidence=row[5],
        tools_called=tuple(
            ToolCall(call["name"], call.get("input"), call.get("output"))
            for call in json.loads(row[6])
        ),
        tokens_used=int(row[7]),
        created_at=datetime.fromisoformat(row[8]),
    )
