"""`PostgresStorage`: sessions in your own PostgreSQL, through a psycopg connection pool.

Install with `pip install 'frontdesk[postgres]'`, apply the migrations once (`frontdesk db
migrate --dsn URL`: plain PostgreSQL, RDS, Cloud SQL, Neon, or a Supabase database by its
connection string), then:

    storage = await PostgresStorage.connect("postgresql://app@db.internal/app")
    # or: await PostgresStorage.from_env()   # FRONTDESK_POSTGRES_DSN, else DATABASE_URL
    manager = SessionManager(storage, workspace_id="acme")
    ...
    await storage.aclose()

Each primitive is one call of the same plpgsql function the Supabase backend calls through
PostgREST (see `sql/`): one round trip, one transaction, the same rules, so a fix in SQL is
a fix for both. Domain errors (SQLSTATE PTnnn) become the frontdesk errors; a lost
connection becomes `StorageUnavailableError`, which says whether a write may have been
applied. Every wait is bounded: for a free connection (`pool_timeout`), for the database's answer
(`statement_timeout`).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from ..errors import StorageError, StorageUnavailableError, ValidationError
from ..validation import check_int, check_seconds
from ._functions import SQLFunctionStorage
from ._pgjson import (
    raised_error,
)
from ._sqlstate import Phase, classify

__all__ = ["DSN_ENV", "FALLBACK_DSN_ENV", "PostgresStorage"]

DSN_ENV = "FRONTDESK_POSTGRES_DSN"
FALLBACK_DSN_ENV = "DATABASE_URL"

# The SQL type of every parameter of the functions called here: each argument is sent as
# text and cast, so PostgreSQL resolves the function exactly (an int sent as bigint would
# not match an `integer` parameter).
_SIGNATURES: dict[str, dict[str, str]] = {
    "frontdesk_create_session": {
        "p_id": "uuid",
        "p_workspace_id": "text",
        "p_agent_id": "text",
        "p_conversation_id": "text",
        "p_contact_id": "text",
        "p_current_mode": "text",
        "p_state": "jsonb",
        "p_return_existing": "boolean",
        "p_agent_version": "text",
    },
    "frontdesk_get_session": {"p_workspace_id": "text", "p_session_id": "uuid"},
    "frontdesk_find_active_session": {
        "p_workspace_id": "text",
        "p_conversation_id": "text",
        "p_agent_id": "text",
    },
    "frontdesk_commit": {
        "p_workspace_id": "text",
        "p_session_id": "uuid",
        "p_expected_version": "integer",
        "p_current_mode": "text",
        "p_mode_allowed_from": "jsonb",
        "p_status": "text",
        "p_last_activity_at": "timestamptz",
        "p_state": "jsonb",
        "p_state_ops": "jsonb",
        "p_turns": "jsonb",
    },
    "frontdesk_commit_once": {
        "p_idempotency_key": "text",
        "p_workspace_id": "text",
        "p_session_id": "uuid",
        "p_expected_version": "integer",
        "p_current_mode": "text",
        "p_mode_allowed_from": "jsonb",
        "p_status": "text",
        "p_last_activity_at": "timestamptz",
        "p_state": "jsonb",
        "p_state_ops": "jsonb",
        "p_turns": "jsonb",
    },
    "frontdesk_receive": {
        "p_workspace_id": "text",
        "p_session_id": "uuid",
        "p_agent_id": "text",
        "p_conversation_id": "text",
        "p_contact_id": "text",
        "p_current_mode": "text",
        "p_message_id": "text",
        "p_content": "text",
        "p_policy": "text",
        "p_timeout": "double precision",
        "p_history_turns": "integer",
        "p_received_at": "timestamptz",
        "p_idempotency_key": "text",
        "p_state": "jsonb",
        "p_agent_version": "text",
    },
    "frontdesk_complete": {
        "p_workspace_id": "text",
        "p_session_id": "uuid",
        "p_token": "bigint",
        "p_policy": "text",
        "p_timeout": "double precision",
        "p_history_turns": "integer",
        "p_idempotency_key": "text",
        "p_expected_version": "integer",
        "p_current_mode": "text",
        "p_mode_allowed_from": "jsonb",
        "p_status": "text",
        "p_last_activity_at": "timestamptz",
        "p_state": "jsonb",
        "p_state_ops": "jsonb",
        "p_turns": "jsonb",
        "p_inputs_intent": "text",
        "p_inputs_confidence": "double precision",
    },
    "frontdesk_extend_run": {
        "p_workspace_id": "text",
        "p_session_id": "uuid",
        "p_token": "bigint",
        "p_lease_seconds": "double precision",
    },
    "frontdesk_resume_abandoned": {
        "p_workspace_id": "text",
        "p_policies": "jsonb",
        "p_limit": "integer",
    },
    "frontdesk_list_turns": {
        "p_workspace_id": "text",
        "p_session_id": "uuid",
        "p_limit": "integer",
    },
    "frontdesk_turn_stats": {"p_workspace_id": "text", "p_session_id": "uuid"},
    "frontdesk_health": {},
    "frontdesk_list_sessions": {
        "p_workspace_id": "text",
        "p_limit": "integer",
        "p_agent_id": "text",
        "p_status": "text",
        "p_mode": "text",
        "p_contact_id": "text",
        "p_conversation_id": "text",
        "p_updated_after": "timestamptz",
        "p_updated_before": "timestamptz",
        "p_after_activity": "timestamptz",
        "p_after_id": "uuid",
    },
    "frontdesk_delete_session": {"p_workspace_id": "text", "p_session_id": "uuid"},
    "frontdesk_purge_sessions": {
        "p_workspace_id": "text",
        "p_inactive_seconds": "double precision",
        "p_status": "text",
        "p_limit": "integer",
    },
    "frontdesk_erase_contact": {"p_workspace_id": "text", "p_contact_id": "text"},
    "frontdesk_migrate_session": {
        "p_workspace_id": "text",
        "p_session_id": "uuid",
        "p_expected_version": "integer",
        "p_current_mode": "text",
        "p_state": "jsonb",
        "p_agent_version": "text",
    },
}

_READ_ATTEMPTS = 3

_NOT_OPENED = "no storage was opened"


def _check_timeouts(pool_timeout: object, statement_timeout: object) -> None:
    check_seconds("pool_timeout", pool_timeout, outcome=_NOT_OPENED)
    check_seconds("statement_timeout", statement_timeout, outcome=_NOT_OPENED)


class PostgresStorage(SQLFunctionStorage):
    """The `StorageBackend` for PostgreSQL, over a `psycopg_pool.AsyncConnectionPool`.

    Make one per process with `connect()` or `from_env()` and reuse it. A pool passed to
    the constructor must make autocommit connections; it stays yours to close. A bad
    argument raises `ValidationError` naming it, before any connection is made.
    """

    capabilities: frozenset[str] = frozenset()

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        *,
        pool_timeout: float = 10.0,
        statement_timeout: float = 30.0,
        owns_pool: bool = False,
    ) -> None:
        if not isinstance(pool, AsyncConnectionPool):
            raise ValidationError(
                "pool",
                "must be a psycopg_pool.AsyncConnectionPool (or open one with "
                f"await PostgresStorage.connect(dsn)), got {type(pool).__name__}",
                outcome=_NOT_OPENED,
            )
        _check_timeouts(pool_timeout, statement_timeout)
        self.pool = pool
        self._pool_timeout = pool_timeout
        self._statement_timeout = statement_timeout
        self._owns_pool = owns_pool
        self._queries: dict[tuple[str, tuple[str, ...]], str] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pool={self.pool.name!r} max_size={self.pool.max_size}>"

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        pool_timeout: float = 10.0,
        statement_timeout: float = 30.0,
        **connection_options: Any,
    ) -> PostgresStorage:
        """Open a pool of `min_size`..`max_size` connections to `dsn`.

        `pool_timeout` bounds, in seconds, both opening the pool and each wait for a free
        connection; `statement_timeout` bounds each call in the database (and, with a few
        seconds' margin, the wait for its answer). `connection_options` go to
        `psycopg.AsyncConnection.connect` (e.g. `prepare_threshold=None` behind a
        transaction-mode pgbouncer). A database that cannot be reached raises
        `StorageUnavailableError` naming it, within `pool_timeout`.
        """
        check_int("min_size", min_size, minimum=0, maximum=10_000, outcome=_NOT_OPENED)
        check_int(
            "max_size", max_size, minimum=max(1, min_size), maximum=10_000, outcome=_NOT_OPENED
        )
        _check_timeouts(pool_timeout, statement_timeout)
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(int(pool_timeout), 1),
            "options": f"-c statement_timeout={int(statement_timeout * 1000)}",
            **connection_options,
        }
        try:
            where = _describe(conninfo_to_dict(dsn))
        except psycopg.Error as exc:
            # Nothing to retry: the string itself is wrong.
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(
                f"the PostgreSQL DSN is not a connection string ({detail}): this is "
                f"a configuration error; set {DSN_ENV} (or pass a DSN) such as "
                "postgresql://user:password@host:5432/dbname"
            ) from exc
        # One connection first, to report why the database cannot be reached (the pool
        # only logs it and retries until its timeout).
        try:
            async with asyncio.timeout(pool_timeout):
                first = await psycopg.AsyncConnection.connect(dsn, **kwargs)
        except (psycopg.Error, TimeoutError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "timed out"
            raise StorageUnavailableError(
                "connect",
                f"cannot connect to PostgreSQL at {where}: {detail}",
                may_have_applied=False,
            ) from exc
        await first.close()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=pool_timeout,
            kwargs=kwargs,
            open=False,
            name=f"frontdesk {where}",
        )
        try:
            await pool.open(wait=True, timeout=pool_timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise StorageUnavailableError(
                "connect",
                f"cannot open {min_size} connection(s) to PostgreSQL at {where} "
                f"in {pool_timeout:g} s",
                may_have_applied=False,
            ) from exc
        return cls(
            pool,
            pool_timeout=pool_timeout,
            statement_timeout=statement_timeout,
            owns_pool=True,
        )

    @classmethod
    async def from_env(cls, **options: Any) -> PostgresStorage:
        """`connect()` to FRONTDESK_POSTGRES_DSN, else DATABASE_URL."""
        dsn = os.environ.get(DSN_ENV, "").strip() or os.environ.get(FALLBACK_DSN_ENV, "").strip()
        if not dsn:
            raise StorageError(
                f"set {DSN_ENV} (or {FALLBACK_DSN_ENV}) to a PostgreSQL connection string, "
                "e.g. postgresql://user:password@host:5432/dbname, to use the postgres backend."
            )
        return await cls.connect(dsn, **options)

    async def aclose(self) -> None:
        """Close the pool made by `connect()` (a pool passed in is yours to close)."""
        if self._owns_pool:
            await self.pool.close()

    async def __aenter__(self) -> PostgresStorage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the one round trip ----------------------------------------------------------------

    async def _call(
        self,
        function: str,
        params: dict[str, Any],
        *,
        session_id: str | None = None,
        read: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call one frontdesk function in one round trip (its own transaction); map failures.

        Reads (STABLE functions) are retried when the connection was lost; a write is never
        retried here, since it may have committed.
        """
        query = self._query(function, tuple(params))
        values = {name: _encode(value) for name, value in params.items()}
        attempts = _READ_ATTEMPTS if read else 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._execute(function, query, values, read=read)
            except psycopg.Error as exc:
                error = _error(exc, function, session_id, extra or {}, read=read)
                sqlstate = exc.sqlstate or None
                lost = classify(sqlstate, Phase.TRANSACTION).connection_lost
                retry = read and lost and attempt < attempts
                if not retry:
                    raise error from exc
            await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _execute(
        self, function: str, query: str, values: dict[str, Any], *, read: bool
    ) -> Any:
        try:
            async with self.pool.connection(timeout=self._pool_timeout) as conn:
                try:
                    async with asyncio.timeout(self._statement_timeout + 5):
                        cursor = await conn.execute(query, values)
                        row = await cursor.fetchone()
                except TimeoutError as exc:
                    raise StorageUnavailableError(
                        function,
                        f"no answer from PostgreSQL within {self._statement_timeout + 5:g} s",
                        may_have_applied=not read,
                    ) from exc
        except PoolTimeout as exc:
            raise StorageUnavailableError(
                function,
                f"no free database connection within {self._pool_timeout:g} s (all "
                f"{self.pool.max_size} in use, or the database is down)",
                may_have_applied=False,
            ) from exc
        except PoolClosed as exc:
            raise StorageError(f"{self!r} is closed; open a new PostgresStorage") from exc
        return None if row is None else row[0]

    def _query(self, function: str, names: tuple[str, ...]) -> str:
        key = (function, names)
        query = self._queries.get(key)
        if query is None:
            types = _SIGNATURES[function]
            args = ", ".join(f"{name} => %({name})s::{types[name]}" for name in names)
            query = self._queries[key] = f"select public.{function}({args})"
        return query


def _encode(value: Any) -> Any:
    """JSON parameters as text (cast to jsonb in the query); the rest as they are."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def _describe(parts: dict[str, Any]) -> str:
    """host:port/dbname of a parsed DSN, without its password."""
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"{host}:{port}/{parts.get('dbname') or parts.get('user') or ''}"


# -- failures ----------------------------------------------------------------------------------

_MISSING_SCHEMA = {"42883", "42P01", "3F000"}


def _error(
    exc: psycopg.Error,
    function: str,
    session_id: str | None,
    extra: Mapping[str, Any],
    *,
    read: bool,
) -> Exception:
    """The frontdesk error for a psycopg failure of `function`."""
    sqlstate = exc.sqlstate or ""
    diag = exc.diag
    if sqlstate.startswith("PT") and diag.message_hint == "frontdesk":
        return raised_error(
            _detail(diag.message_detail), diag.message_primary or "", session_id, extra
        )
    if sqlstate in _MISSING_SCHEMA:
        return StorageError(
            f"the database lacks frontdesk's functions ({function}): apply the migrations "
            "with `frontdesk db migrate --dsn ...`."
        )
    if sqlstate == "42501":
        return StorageError(
            f"the database role may not call {function} ({diag.message_primary}); connect "
            "as the role that ran `frontdesk db migrate`, or grant this one EXECUTE on "
            "frontdesk's functions and access to its tables."
        )
    message = (diag.message_primary or str(exc)).strip().splitlines()
    detail = f"{sqlstate + ': ' if sqlstate else ''}{message[0] if message else type(exc).__name__}"
    # One statement in autocommit mode: its COMMIT is implicit, so once it is sent a write
    # is in the COMMIT phase (see _sqlstate); a read never wrote anything.
    failure = classify(sqlstate or None, Phase.TRANSACTION if read else Phase.COMMIT)
    if failure.error is StorageUnavailableError:
        what = f"connection lost ({detail})" if failure.connection_lost else detail
        return StorageUnavailableError(function, what, may_have_applied=failure.may_have_applied)
    return StorageError(f"{function} failed ({detail})")


def _detail(details: object) -> dict[str, Any]:
    try:
        parsed = json.loads(str(details))
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}
