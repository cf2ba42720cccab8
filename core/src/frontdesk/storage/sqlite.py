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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs

from ..errors import (
    ConflictError,
    ConversationBusyError,
    FrontdeskError,
    RunSupersededError,
    SessionClosedError,
    SessionNotFoundError,
    StorageError,
    StorageUnavailableError,
    ValidationError,
    VersionConflictError,
)
from ..lifecycle import ErasureReport, SessionMigration, SessionQuery, SessionSummary
from ..models import (
    NewTurn,
    Role,
    Session,
    SessionState,
    SessionStatus,
    ToolCall,
    Turn,
    TurnStats,
)
from ..pipeline import Completion, Receipt, Run
from ..validation import check_int, check_seconds
from ._pgjson import (
    commit_result_from_json,
    completion_from_json,
    receipt_from_json,
    result_to_json,
)
from ._reference import (
    committed,
    create_outcome,
    leaves_active,
    new_session,
    reactivates,
    refuse_commit,
)
from .base import Capability, Commit, CommitResult, Delivery, NewSession, RunPolicy
from .runs import (
    ReceivePlan,
    RunState,
    can_resume,
    end_run,
    is_current,
    pick_history,
    plan_receive,
    start_run,
)

__all__ = ["DEFAULT_PATH", "PATH_ENV", "SQLiteStorage"]

PATH_ENV = "FRONTDESK_SQLITE_PATH"
DEFAULT_PATH = "frontdesk.db"
"""The file `from_env()` uses when FRONTDESK_SQLITE_PATH is not set (in the working directory)."""

_SCHEMA_VERSION = 4

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


# Schema 3, the message pipeline (run bookkeeping, message ids, idempotency records).
_PIPELINE_SCHEMA = """
alter table agent_sessions add column run_token integer not null default 0;
alter table agent_sessions add column run_expires_at text;
alter table agent_sessions add column run_inputs text not null default '[]';
alter table agent_turns add column message_id text;
alter table agent_turns add column pending integer not null default 0;
create unique index if not exists agent_turns_message_once
    on agent_turns (session_id, message_id) where message_id is not null;
create index if not exists agent_turns_by_message
    on agent_turns (message_id) where message_id is not null;
create table if not exists agent_idempotency (
    session_id text not null references agent_sessions (id) on delete cascade,
    key        text not null,
    operation  text not null,
    result     text not null,
    primary key (session_id, key)
) without rowid;
"""

# Schema 4, a handed-off conversation stays with its person: the newest session of a
# conversation is looked up, and sessions already closed or handed off lose the run and
# pending messages they kept (a session handed back would answer them otherwise).
_SCHEMA_4 = """
create index if not exists agent_sessions_by_conversation_created
    on agent_sessions (workspace_id, conversation_id, agent_id, created_at);
update agent_turns set pending = 0 where pending = 1 and session_id in
    (select id from agent_sessions where status <> 'active');
update agent_sessions set run_expires_at = null, run_inputs = '[]'
    where status <> 'active' and run_expires_at is not null
"""

_UPGRADES = {1: _SCHEMA, 2: _SCHEMA_2, 3: _PIPELINE_SCHEMA, 4: _SCHEMA_4}

_SESSION_COLUMNS = (
    "id, workspace_id, agent_id, conversation_id, contact_id, version, status, current_mode, "
    "state, turn_count, tokens_used, created_at, updated_at, last_activity_at, agent_version"
)
_TURN_COLUMNS = (
    "session_id, turn_number, role, content, intent_detected, confidence, tools_called, "
    "tokens_used, created_at, message_id"
)

T = TypeVar("T")


_NOT_OPENED = "no storage was opened"


def _now() -> datetime:
    return datetime.now(UTC)


class SQLiteStorage:
    """The `StorageBackend` on one SQLite file (created, with its tables, if missing).

    `timeout` bounds the wait for another writer's lock, in seconds; `threads` is the size
    of the thread pool the blocking calls run in; `clock` replaces the wall clock.
    `create=False` opens an existing frontdesk database only, for tools that only read: a
    missing file is a `StorageError` saying "no database at PATH" instead of a new, empty
    database, and an empty file or one holding only other tables is refused unchanged
    instead of receiving frontdesk's tables. A file with another program's schema version
    (`pragma user_version`) and no frontdesk tables is refused either way.
    A bad argument raises `ValidationError` naming it, before any file is touched.
    """

    capabilities: frozenset[str] = frozenset({Capability.THREADS})

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_PATH,
        *,
        timeout: float = 5.0,
        threads: int = 4,
        clock: Callable[[], datetime] = _now,
        create: bool = True,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise ValidationError(
                "path",
                f"must be a file path (str or Path), got {type(path).__name__}",
                outcome=_NOT_OPENED,
            )
        check_seconds("timeout", timeout, positive=False, outcome=_NOT_OPENED)
        check_int("threads", threads, minimum=1, maximum=256, outcome=_NOT_OPENED)
        self.path = Path(path)
        self._create = create
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
            return _insert_session(conn, new, self._clock()), True

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
            if _select_session(conn, workspace_id, session_id) is None:
                raise SessionNotFoundError(session_id)
            stored = _replay(conn, session_id, commit.idempotency_key, "commit")
            if stored is not None:
                return commit_result_from_json(stored)
            result = _apply_commit(conn, workspace_id, session_id, commit, self._clock())
            _remember(conn, session_id, commit.idempotency_key, "commit", result)
            return result

        return await self._run("commit", write, write=True)

    # -- the message pipeline --------------------------------------------------------------

    async def receive(self, delivery: Delivery) -> Receipt:
        new = delivery.new_session
        policy = delivery.policy

        def write(conn: sqlite3.Connection) -> Receipt:
            found = _find_message(conn, new, delivery.message_id)
            if found is not None:
                holder, number = found
                stored = _replay(conn, holder.id, delivery.idempotency_key, "receive")
                if stored is not None:
                    return receipt_from_json(stored)
                return Receipt(holder, _select_turn(conn, holder.id, number), True, None)
            now = self._clock()
            active = conn.execute(
                "select id from agent_sessions where workspace_id = ? and conversation_id = ?"
                " and agent_id = ? and status = 'active'",
                (new.workspace_id, new.conversation_id, new.agent_id),
            ).fetchone()
            user_turn = NewTurn(role=Role.USER, content=delivery.content)
            commit = Commit(turns=(user_turn,), last_activity_at=delivery.received_at)
            handed_off = _handed_off(conn, new) if active is None else None
            if handed_off is not None:
                # The conversation is with a person: the message is theirs to answer. It
                # is recorded (and deduplicated) but waits for no run.
                result = _apply_commit(conn, new.workspace_id, handed_off, commit, now, held=True)
                turn = attrs.evolve(result.turns[0], message_id=delivery.message_id)
                conn.execute(
                    "update agent_turns set message_id = ?"
                    " where session_id = ? and turn_number = ?",
                    (delivery.message_id, handed_off, turn.turn_number),
                )
                receipt = Receipt(result.session, turn, duplicate=False, run=None)
                _remember(conn, handed_off, delivery.idempotency_key, "receive", receipt)
                return receipt
            session_id = new.id if active is None else str(active[0])
            run_state = RunState() if active is None else _run_state(conn, session_id)
            plan = plan_receive(run_state, policy.double_texting, now)
            if plan is ReceivePlan.BUSY:
                raise ConversationBusyError(
                    session_id, conversation_id=new.conversation_id, agent_id=new.agent_id
                )
            if active is None:
                if conn.execute("select 1 from agent_sessions where id = ?", (new.id,)).fetchone():
                    raise ConflictError(
                        f"session id {new.id} is taken; create sessions with fresh ids.",
                        session_id=new.id,
                    )
                _insert_session(conn, new, now)
            result = _apply_commit(conn, new.workspace_id, session_id, commit, now)
            number = result.turns[0].turn_number
            conn.execute(
                "update agent_turns set message_id = ?, pending = 1"
                " where session_id = ? and turn_number = ?",
                (delivery.message_id, session_id, number),
            )
            turn = attrs.evolve(result.turns[0], message_id=delivery.message_id)
            run = None
            if plan is ReceivePlan.START:
                pending = _pending(conn, session_id)
                run_state = start_run(
                    run_state, policy.double_texting, policy.timeout, pending, now
                )
                _save_run(conn, session_id, run_state)
                run = _load_run(conn, result.session, run_state, policy)
            receipt = Receipt(result.session, turn, duplicate=False, run=run)
            _remember(conn, session_id, delivery.idempotency_key, "receive", receipt)
            return receipt

        return await self._run("receive", write, write=True)

    async def complete(
        self,
        workspace_id: str,
        session_id: str,
        token: int,
        commit: Commit,
        policy: RunPolicy,
    ) -> Completion:
        def write(conn: sqlite3.Connection) -> Completion:
            if _select_session(conn, workspace_id, session_id) is None:
                raise SessionNotFoundError(session_id)
            stored = _replay(conn, session_id, commit.idempotency_key, "complete")
            if stored is not None:
                return completion_from_json(stored)
            run_state = _run_state(conn, session_id)
            if not is_current(run_state, token):
                raise RunSupersededError(session_id, token, run_state.token)
            now = self._clock()
            result = _apply_commit(conn, workspace_id, session_id, commit, now)
            conn.executemany(
                "update agent_turns set pending = 0,"
                " intent_detected = coalesce(?, intent_detected),"
                " confidence = coalesce(?, confidence)"
                " where session_id = ? and turn_number = ?",
                [
                    (commit.inputs_intent, commit.inputs_confidence, session_id, number)
                    for number in run_state.inputs
                ],
            )
            next_run = None
            if result.session.is_active:
                pending = _pending(conn, session_id)
                run_state = end_run(run_state, policy.double_texting, policy.timeout, pending, now)
                if run_state.held():
                    next_run = _load_run(conn, result.session, run_state, policy)
            else:
                run_state = RunState(run_state.token)
            _save_run(conn, session_id, run_state)
            completion = Completion(result.session, result.turns, next_run)
            _remember(conn, session_id, commit.idempotency_key, "complete", completion)
            return completion

        return await self._run("complete", write, write=True)

    async def extend_run(
        self, workspace_id: str, session_id: str, token: int, lease_seconds: float
    ) -> datetime:
        def write(conn: sqlite3.Connection) -> datetime:
            if _select_session(conn, workspace_id, session_id) is None:
                raise SessionNotFoundError(session_id)
            run_state = _run_state(conn, session_id)
            if not is_current(run_state, token):
                raise RunSupersededError(session_id, token, run_state.token)
            expires_at = self._clock() + timedelta(seconds=lease_seconds)
            _save_run(conn, session_id, attrs.evolve(run_state, expires_at=expires_at))
            return expires_at

        return await self._run("extend_run", write, write=True)

    async def resume_abandoned(
        self, workspace_id: str, policies: Mapping[str, RunPolicy], limit: int
    ) -> Sequence[Run]:
        def write(conn: sqlite3.Connection) -> list[Run]:
            now = self._clock()
            rows = conn.execute(
                "select id, agent_id from agent_sessions where workspace_id = ?"
                " and status = 'active' and run_expires_at is not null"
                " and run_expires_at <= ? order by run_expires_at, id",
                (workspace_id, _time(now)),
            ).fetchall()
            runs: list[Run] = []
            for session_id, agent_id in rows:
                if len(runs) >= limit:
                    break
                policy = policies.get(agent_id)
                if policy is None:
                    continue
                run_state = _run_state(conn, session_id)
                pending = _pending(conn, session_id)
                if not can_resume(run_state, pending, now):
                    continue
                run_state = start_run(
                    run_state, policy.double_texting, policy.timeout, pending, now
                )
                _save_run(conn, session_id, run_state)
                found = _select_session(conn, workspace_id, session_id)
                assert found is not None  # noqa: S101 - read in this same transaction
                runs.append(_load_run(conn, found[0], run_state, policy))
            return runs

        return await self._run("resume_abandoned", write, write=True)

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
            now = self._clock()
            cutoff = _time(now - inactive_for)
            status_filter = "" if status is None else " and status = ?"
            chosen = () if status is None else (str(status),)
            # What `runs.purgeable` says: no live run, no message awaiting an answer.
            cursor = conn.execute(
                "delete from agent_sessions where id in (select id from agent_sessions s"  # noqa: S608 - fixed names
                f" where workspace_id = ? and last_activity_at < ?{status_filter}"
                " and (run_expires_at is null or run_expires_at <= ?)"
                " and not exists (select 1 from agent_turns t"
                " where t.session_id = s.id and t.pending = 1)"
                " order by last_activity_at, id limit ?)",
                (workspace_id, cutoff, *chosen, _time(now), limit),
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
        # mode=rw opens the file only if it exists, so nothing can create it in between.
        target: str | Path = (
            f"{self.path.absolute().as_uri()}?mode=rw" if not self._create else self.path
        )
        try:
            conn = sqlite3.connect(
                target,
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=not self._create,
            )
            conn.execute("pragma foreign_keys = on")
            conn.execute(f"pragma busy_timeout = {int(self._timeout * 1000)}")
        except sqlite3.Error as exc:
            if not self._create and not self.path.exists():
                raise StorageError(
                    f"no database at {str(self.path)!r}: check the path ({PATH_ENV}); "
                    "the first program that writes sessions to it creates it"
                ) from exc
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
            # Before anything is written (WAL mode included): refuse a file that is not
            # frontdesk's to change.
            self._check_is_frontdesk(conn)
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

    def _check_is_frontdesk(self, conn: sqlite3.Connection) -> None:
        """Refuse a file whose schema is not frontdesk's, before anything touches it.

        A frontdesk database has a schema version (`pragma user_version`) of 1 or more and
        the `agent_sessions` table. Any other file holding a version is another program's,
        refused always: its version is not frontdesk's to upgrade. A file without a
        version (a new or empty one, or one holding only other tables) is where
        `create=True` creates the tables, next to any others; with `create=False` it is
        refused instead, so that a tool that only reads never changes a file it was
        pointed at by mistake.
        """
        version = int(conn.execute("pragma user_version").fetchone()[0])
        tables = sorted(
            str(row[0])
            for row in conn.execute(
                "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
            )
        )
        path = str(self.path)
        if version > 0 and "agent_sessions" in tables:
            return  # frontdesk's own: upgraded below if it is older
        if version > 0:
            raise StorageError(
                f"{path!r} is not a frontdesk database: it has schema version {version} but no "
                f"frontdesk tables (it holds {_listed(tables)}); nothing was changed. Check "
                f"the path ({PATH_ENV}): frontdesk needs a file of its own."
            )
        if self._create:
            return  # a new file, or one frontdesk shares with other tables: create them
        if not tables:
            raise StorageError(
                f"no frontdesk database in {path!r}: the file is empty; the first program "
                "that writes sessions to it creates the tables"
            )
        raise StorageError(
            f"{path!r} is not a frontdesk database: it holds {_listed(tables)} and no "
            f"frontdesk schema; nothing was changed. Check the path ({PATH_ENV})."
        )

    def _close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=True)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _listed(tables: Sequence[str]) -> str:
    """`no table`, `table foo`, `tables a, b, c and 4 more`: a file's tables, briefly."""
    if not tables:
        return "no table"
    shown = ", ".join(tables[:3])
    more = f" and {len(tables) - 3} more" if len(tables) > 3 else ""
    return f"table {shown}" if len(tables) == 1 else f"tables {shown}{more}"


def _insert_session(conn: sqlite3.Connection, new: NewSession, now: datetime) -> Session:
    session = new_session(new, now)
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
    return _with_state(session, state_json)


def _apply_commit(
    conn: sqlite3.Connection,
    workspace_id: str,
    session_id: str,
    commit: Commit,
    now: datetime,
    *,
    held: bool = False,
) -> CommitResult:
    """Check and apply `commit` inside the caller's write transaction.

    `held`: the commit records a message for the person a session was handed off to
    (receive's own write, which a handed-off session takes without a status change).
    """
    found = _select_session(conn, workspace_id, session_id)
    if found is None:
        raise SessionNotFoundError(session_id)
    current, turn_count, tokens_used = found
    if not held:
        active_id = None
        if reactivates(current, commit):
            row = conn.execute(
                "select id from agent_sessions where workspace_id = ? and conversation_id = ?"
                " and agent_id = ? and status = 'active'",
                (current.workspace_id, current.conversation_id, current.agent_id),
            ).fetchone()
            active_id = None if row is None else str(row[0])
        refuse_commit(current, turn_count, commit, active_id=active_id)
    session, turns = committed(current, turn_count, commit, now)
    state_json = _dumps(session.state.to_json())
    turn_rows = [_turn_row(turn) for turn in turns]
    conn.executemany(
        f"insert into agent_turns ({_TURN_COLUMNS}) "  # noqa: S608 - fixed names
        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    if leaves_active(current, commit):
        # No run and nothing waiting for one on a session that is no longer active.
        _save_run(conn, session_id, RunState(_run_state(conn, session_id).token))
        conn.execute(
            "update agent_turns set pending = 0 where session_id = ? and pending = 1",
            (session_id,),
        )
    # What is returned is read back from what was stored: it aliases nothing.
    return CommitResult(_with_state(session, state_json), tuple(_turn(row) for row in turn_rows))


def _handed_off(conn: sqlite3.Connection, new: NewSession) -> str | None:
    """The id of the conversation's newest session if it is handed off (it takes messages)."""
    row = conn.execute(
        "select id, status from agent_sessions where workspace_id = ? and conversation_id = ?"
        " and agent_id = ? order by created_at desc, rowid desc limit 1",
        (new.workspace_id, new.conversation_id, new.agent_id),
    ).fetchone()
    if row is None or row[1] != str(SessionStatus.HANDED_OFF):
        return None
    return str(row[0])


def _find_message(
    conn: sqlite3.Connection, new: NewSession, message_id: str
) -> tuple[Session, int] | None:
    row = conn.execute(
        "select t.session_id, t.turn_number from agent_turns t"
        " join agent_sessions s on s.id = t.session_id"
        " where t.message_id = ? and s.workspace_id = ? and s.conversation_id = ?"
        " and s.agent_id = ? limit 1",
        (message_id, new.workspace_id, new.conversation_id, new.agent_id),
    ).fetchone()
    if row is None:
        return None
    found = _select_session(conn, new.workspace_id, row[0])
    assert found is not None  # noqa: S101 - read in this same transaction
    return found[0], int(row[1])


def _select_turn(conn: sqlite3.Connection, session_id: str, number: int) -> Turn:
    row = conn.execute(
        f"select {_TURN_COLUMNS} from agent_turns "  # noqa: S608 - fixed names
        "where session_id = ? and turn_number = ?",
        (session_id, number),
    ).fetchone()
    return _turn(row)


def _run_state(conn: sqlite3.Connection, session_id: str) -> RunState:
    row = conn.execute(
        "select run_token, run_expires_at, run_inputs from agent_sessions where id = ?",
        (session_id,),
    ).fetchone()
    expires = None if row[1] is None else datetime.fromisoformat(row[1])
    return RunState(int(row[0]), expires, tuple(json.loads(row[2])))


def _save_run(conn: sqlite3.Connection, session_id: str, run: RunState) -> None:
    conn.execute(
        "update agent_sessions set run_token = ?, run_expires_at = ?, run_inputs = ? where id = ?",
        (
            run.token,
            None if run.expires_at is None else _time(run.expires_at),
            _dumps(list(run.inputs)),
            session_id,
        ),
    )


def _pending(conn: sqlite3.Connection, session_id: str) -> list[int]:
    rows = conn.execute(
        "select turn_number from agent_turns where session_id = ? and pending = 1"
        " order by turn_number",
        (session_id,),
    ).fetchall()
    return [int(row[0]) for row in rows]


def _load_run(conn: sqlite3.Connection, session: Session, run: RunState, policy: RunPolicy) -> Run:
    assert run.expires_at is not None  # noqa: S101 - only called for a held run
    inputs = tuple(_select_turn(conn, session.id, number) for number in run.inputs)
    rows = conn.execute(
        f"select {_TURN_COLUMNS} from (select * from agent_turns "  # noqa: S608 - fixed names
        "where session_id = ? and pending = 0 order by turn_number desc limit ?)"
        " order by turn_number",
        (session.id, max(policy.history_turns, 0)),
    ).fetchall()
    history = pick_history([_turn(row) for row in rows], (), policy.history_turns)
    return Run(run.token, session, inputs, tuple(history), run.expires_at)


def _replay(
    conn: sqlite3.Connection, session_id: str, key: str | None, operation: str
) -> dict[str, Any] | None:
    """The stored answer of a write with this idempotency key on this session, or None."""
    if key is None:
        return None
    row = conn.execute(
        "select operation, result from agent_idempotency where session_id = ? and key = ?",
        (session_id, key),
    ).fetchone()
    if row is None:
        return None
    if row[0] != operation:
        raise ConflictError(
            f"idempotency key {key!r} was used for a different operation ({row[0]}) on "
            f"session {session_id}; use a new key for each write.",
            session_id=session_id,
        )
    stored: dict[str, Any] = json.loads(row[1])
    return stored


def _remember(
    conn: sqlite3.Connection,
    session_id: str,
    key: str | None,
    operation: str,
    result: CommitResult | Receipt | Completion,
) -> None:
    if key is not None:
        conn.execute(
            "insert into agent_idempotency (session_id, key, operation, result)"
            " values (?, ?, ?, ?)",
            (session_id, key, operation, _dumps(result_to_json(result))),
        )


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
        turn.message_id,
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
        message_id=row[9],
    )
