"""A PostgREST-protocol gateway for tests: PostgREST's RPC subset over real HTTP.

No PostgREST binary can be installed here, so the Supabase backend's tests talk to this
instead: a small HTTP server (stdlib `ThreadingHTTPServer`, one thread per connection) in
front of a real PostgreSQL, that implements `/rest/v1/rpc/{function}` the way PostgREST does
(docs/supabase.md lists the facts it follows): JWT authentication and role switching, one
READ COMMITTED transaction per request with the request's GUCs, named arguments chosen by
the body's keys, PostgREST's result shapes and its error bodies and SQLSTATE -> HTTP status
table, and its connection pool: at most `pool_size` database connections, and a request that
waits longer than `pool_timeout` for one is answered 504 `PGRST003`, as PostgREST does after
its `db-pool-acquisition-timeout`.

The SQL it runs is PostgREST's own shape (QueryBuilder.callPlanToQuery): the arguments are
converted by `json_to_record` with the function's declared argument types, so a JSON value
becomes an argument exactly as in PostgREST, and the result is aggregated to JSON by the
database. Values never become SQL text; identifiers are quoted by `psycopg.sql`, and type
names come from the catalog.

Where it differs from PostgREST:
- No schema cache: functions are looked up in the catalog on every request, so a function
  created or changed is visible at once (PostgREST needs `NOTIFY pgrst` or a restart), and
  PGRST002 ("no schema cache") never happens.
- Per-role settings are not applied: PostgREST applies `ALTER ROLE ... SET` settings (such
  as `statement_timeout`) of the JWT's role in each transaction; the gateway only switches
  the role.
- Only `/rest/v1/rpc/{function}`, JSON answers and the headers listed in `_check_negotiation`;
  anything else answers PGRST127 "Feature not implemented", never silently something else.

Fault injection, for tests of what a client makes of failures (each consumes the next
request, or the next one to `/rpc/{function}` when `function` is given):
- `fail_next("drop_before")`: close the HTTP connection without running anything.
- `fail_next("drop_after_commit")`: run the transaction to its end (commit, or rollback on
  error), then close the HTTP connection without answering: the answer is lost after the
  commit.
- `fail_next("terminate_before_commit")`: run the function, then terminate the database
  backend (`pg_terminate_backend`) before COMMIT; the answer is PostgREST's for it (503
  `57P01`) and nothing is committed.
- `fail_next("terminate_after_commit")`: COMMIT, then terminate the backend before answering;
  the answer is the same 503 `57P01`, although the transaction committed (as when a
  connection ends around COMMIT, e.g. during a synchronous-replication wait).
- `fail_next("lose_commit_answer")`: send COMMIT, then cut the database connection before
  reading its answer; the answer is PostgREST's for a connection that failed under it (503
  `PGRST001`), and the transaction committed (the server reads COMMIT before the cut).
- `hold_next()`: the request takes its database connection, then waits before its
  transaction until `release()` (a slow request: for client timeouts and pool exhaustion).
- `terminate_backends()`: terminate the idle pooled database connections, as a restart or
  a DBA would; the next request on each finds it dead (503 `57P01`), as in PostgREST.
- `wait_idle()`: wait until no request is being served (what a request did after its client
  gave up is then in the database).
Also: `request_count`/`requests` (how many HTTP requests an operation made) and `delay`
(seconds slept at the start of every request: simulated network latency).

    with PostgrestGateway(authenticator_dsn, jwt_secret) as gateway:
        client = await acreate_client(gateway.url, gateway.make_jwt("service_role"), ...)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt
import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

__all__ = [
    "FailMode",
    "Hold",
    "PostgrestGateway",
    "RecordedRequest",
    "sign_jwt",
    "status_for_sqlstate",
]

logger = logging.getLogger(__name__)

FailMode = Literal[
    "drop_before",
    "drop_after_commit",
    "terminate_before_commit",
    "terminate_after_commit",
    "lose_commit_answer",
]
_FAIL_MODES = frozenset(
    {
        "drop_before",
        "drop_after_commit",
        "terminate_before_commit",
        "terminate_after_commit",
        "lose_commit_answer",
    }
)

REST_PREFIX = "/rest/v1"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
MIN_SECRET_LENGTH = 32  # PostgREST refuses shorter JWT secrets (and PyJWT warns about them)
JWT_LEEWAY_S = 30  # PostgREST allows 30 s of clock skew on exp/nbf/iat
POOL_TIMEOUT_S = 10.0  # PostgREST's default db-pool-acquisition-timeout
HOLD_LIMIT_S = 60.0  # a held request goes on by itself after this: a forgotten release()
# Run as the login role: the request's role (set_config('role', ...)) may not signal it.
_TERMINATE_SELF = "RESET ROLE; SELECT pg_terminate_backend(pg_backend_pid())"
# PostgREST reads a GET parameter as a filter on the result, not as an argument, when its key
# has a dot or ends in one of these words, or its value starts with an operator (QueryParams.hs).
_RESERVED_SUFFIXES = frozenset({"order", "limit", "offset", "and", "or"})
_FILTER_OPERATORS = frozenset(
    {
        "eq", "gte", "gt", "lte", "lt", "neq", "like", "ilike", "cs", "cd", "ov", "sl", "sr",
        "nxr", "nxl", "adj", "match", "imatch", "fts", "plfts", "phfts", "wfts", "not", "is", "in",
    }
)  # fmt: skip
# Media types PostgREST serves or accepts that this gateway does not implement.
_UNIMPLEMENTED_MEDIA_TYPES = frozenset(
    {
        "application/vnd.pgrst.object+json",
        "application/vnd.pgrst.array+json",
        "application/vnd.pgrst.plan",
        "application/octet-stream",
        "text/csv",
        "text/plain",
        "text/xml",
    }
)
_ISOLATION_LEVELS = {  # from a function's `SET default_transaction_isolation`
    "read committed": "READ COMMITTED",
    "repeatable read": "REPEATABLE READ",
    "serializable": "SERIALIZABLE",
}


def sign_jwt(secret: str, claims: dict[str, Any]) -> str:
    """An HS256 JWT, as Supabase's API keys and user tokens are."""
    return jwt.encode(claims, secret, algorithm="HS256")


def status_for_sqlstate(sqlstate: str, message: str, *, anon: bool) -> int:
    """PostgREST's HTTP status for a PostgreSQL error (Error.hs mapSQLtoHTTP)."""
    exact = {
        "23503": 409,  # foreign_key_violation
        "23505": 409,  # unique_violation
        "25006": 405,  # read_only_sql_transaction
        "53400": 500,  # configuration_limit_exceeded
        "57P01": 503,  # admin_shutdown
        "P0001": 400,  # plain RAISE EXCEPTION
        "42883": 404,  # undefined_function
        "42P01": 404,  # undefined_table
        "42P17": 500,  # invalid_object_definition (infinite recursion)
        "42501": 401 if anon else 403,  # insufficient_privilege
    }
    if sqlstate in exact:
        return exact[sqlstate]
    if sqlstate == "21000":  # cardinality_violation; pg-safeupdate's refusal is a client error
        return 400 if message.endswith("requires a WHERE clause") else 500
    if sqlstate == "22023":  # invalid_parameter_value; a JWT role that doesn't exist is a 401
        return 401 if message.startswith("role") and message.endswith("does not exist") else 400
    if sqlstate.startswith("PT"):  # custom status: RAISE ... USING ERRCODE = 'PT409'
        return int(sqlstate[2:]) if sqlstate[2:].isdigit() else 500
    by_class = {
        "08": 503, "09": 500, "0L": 403, "0P": 403, "25": 500, "28": 403, "2D": 500, "38": 500,
        "39": 500, "3B": 500, "40": 500, "53": 503, "54": 500, "55": 500, "57": 500, "58": 500,
        "F0": 500, "HV": 500, "P0": 500, "XX": 500,
    }  # fmt: skip
    return by_class.get(sqlstate[:2], 400)


# --- requests, responses, errors --------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the gateway received (`function` is None off /rest/v1/rpc/)."""

    method: str
    path: str
    function: str | None


@dataclass
class _Request:
    method: str
    path: str  # below /rest/v1, e.g. "/rpc/fn" (what PostgREST sees behind Supabase's gateway)
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in reversed(self.headers) if k.lower() == name), None)


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _ApiError(Exception):
    """An error response: PostgREST's four-key body, status and extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.hint, self.headers = details, hint, headers or {}

    def response(self) -> _Response:
        body = {"code": self.code, "details": self.details, "hint": self.hint}
        body["message"] = self.message
        headers = {
            "Content-Type": JSON_CONTENT_TYPE,
            "Proxy-Status": f"PostgREST; error={self.code}",
            **self.headers,
        }
        if self.status == 401 and "WWW-Authenticate" not in headers:
            headers["WWW-Authenticate"] = "Bearer"
        return _Response(self.status, json.dumps(body).encode(), headers)


def _jwt_error(code: str, message: str) -> _ApiError:
    # PGRST301: the token can't be decoded/verified; PGRST303: its claims are not acceptable.
    www = f'Bearer error="invalid_token", error_description={json.dumps(message)}'
    return _ApiError(401, code, message, headers={"WWW-Authenticate": www})


# --- the database side ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Param:
    name: str
    type: str  # the catalog's spelling (format_type), used in json_to_record's column list
    required: bool
    variadic: bool


@dataclass(frozen=True)
class _Routine:
    schema: str
    name: str
    params: tuple[_Param, ...]  # input parameters, in declaration order
    volatility: str  # 'v' volatile, 's' stable, 'i' immutable
    returns_set: bool
    returns_void: bool
    returns_composite: bool  # a row type, or OUT/INOUT/TABLE parameters (PostgREST's rule)
    isolation_level: str | None

    def accepts(self, keys: frozenset[str]) -> bool:
        """PostgREST's overload rule: every required parameter given, every key a parameter."""
        names = {p.name for p in self.params}
        return {p.name for p in self.params if p.required} <= keys <= names

    def signature(self) -> str:
        args = ", ".join(f"{p.name} => {p.type}" for p in self.params)
        return f"{self.schema}.{self.name}({args})"


# One row per function `schema.name`. Input parameters are the IN/INOUT/VARIADIC ones; the
# last `pronargdefaults` of them have defaults. The return type is resolved through a domain.
_ROUTINES_SQL = """
SELECT
    p.provolatile::text AS volatility,
    p.proretset AS returns_set,
    p.prorettype = 'pg_catalog.void'::pg_catalog.regtype AS returns_void,
    (t.typtype = 'c' OR coalesce(p.proargmodes::text[] && '{t,b,o}', false)) AS returns_composite,
    (SELECT lower(split_part(setting, '=', 2))
       FROM unnest(p.proconfig) AS setting
      WHERE starts_with(setting, 'default_transaction_isolation=')) AS isolation_level,
    coalesce((
        SELECT json_agg(json_build_object(
                   'name', a.name,
                   'type', pg_catalog.format_type(a.type, NULL),
                   'required', a.position <= p.pronargs - p.pronargdefaults,
                   'variadic', a.mode = 'v') ORDER BY a.position)
          FROM (SELECT arg.name, arg.type, coalesce(arg.mode, 'i') AS mode,
                       row_number() OVER (ORDER BY arg.ord) AS position
                  FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),
                              p.proargnames,
                              p.proargmodes::text[]) WITH ORDINALITY AS arg(type, name, mode, ord)
                 WHERE coalesce(arg.mode, 'i') IN ('i', 'b', 'v')) AS a
    ), '[]') AS params
FROM pg_catalog.pg_proc AS p
JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_type AS rt ON rt.oid = p.prorettype
JOIN pg_catalog.pg_type AS t ON t.oid = coalesce(nullif(rt.typbasetype, 0), rt.oid)
WHERE n.nspname = %(schema)s AND p.proname = %(name)s AND p.prokind = 'f'
  AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
ORDER BY p.oid
"""

_SET_REQUEST_GUCS = sql.SQL(
    "SELECT set_config('search_path', %s, true), set_config('role', %s, true),"
    " set_config('request.jwt.claims', %s, true), set_config('request.method', %s, true),"
    " set_config('request.path', %s, true), set_config('request.headers', %s, true)"
)


class _ConnectionPool:
    """A minimal thread-safe pool of autocommit connections (at most `size` at once)."""

    def __init__(self, dsn: str, size: int, search_path: str, timeout: float) -> None:
        self._dsn, self._search_path, self._timeout = dsn, search_path, timeout
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        if not self._slots.acquire(timeout=self._timeout):
            raise _ApiError(504, "PGRST003", "Timed out acquiring connection from connection pool.")
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                try:
                    conn = psycopg.connect(
                        self._dsn, autocommit=True, application_name="frontdesk-test-gateway"
                    )
                    # The session search_path is the exposed schema, so the catalog's type
                    # names (format_type) resolve the same way inside the transactions.
                    conn.execute("SELECT set_config('search_path', %s, false)", [self._search_path])
                except psycopg.Error as exc:
                    raise _ApiError(
                        503, "PGRST000", "Database connection error. Retrying the connection.",
                        details=str(exc),
                    ) from exc  # fmt: skip
            try:
                yield conn
            finally:
                reusable = (
                    not conn.closed
                    and not conn.broken
                    and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                )
                if reusable:
                    with self._lock:
                        self._idle.append(conn)
                else:
                    conn.close()
        finally:
            self._slots.release()

    def idle_backend_pids(self) -> list[int]:
        """The server process ids of the idle pooled connections."""
        with self._lock:
            return [conn.info.backend_pid for conn in self._idle if not conn.closed]

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


# --- the HTTP side ----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect
    # Headers and body go out in separate writes: with Nagle's algorithm on, the second
    # waits for the client's delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    # http.server dispatches on do_<METHOD>: every method goes through _serve.
    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET  # noqa: N815

    def _serve(self) -> None:
        gateway = self.server.gateway
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "invalid Content-Length")
            return
        # Always read the whole body first: closing a socket with unread input makes the
        # kernel send RST, which the client would see as a reset rather than a clean drop.
        body = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        with gateway._serving():
            failure, hold = gateway._on_request(self.command, url.path)
            if failure == "drop_before":
                self.close_connection = True  # closes the socket without a response
                return
            if gateway.delay > 0:
                time.sleep(gateway.delay)
            request = _Request(
                method=self.command,
                path=url.path.removeprefix(REST_PREFIX) or "/",
                query=parse_qsl(url.query, keep_blank_values=True),
                headers=list(self.headers.items()),
                body=body,
            )
            response = gateway._respond(
                request, rest=url.path.startswith(REST_PREFIX + "/"), failure=failure, hold=hold
            )
        if failure == "drop_after_commit":  # the transaction has ended: committed if it succeeded
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD" and response.status != 204:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    # Non-daemon handler threads are joined by server_close(): stop() leaves no thread behind.
    daemon_threads = False
    # socketserver's default listen backlog is 5: a burst of concurrent clients would overflow
    # it, and their connections would stall for a SYN retransmit or be reset.
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address: tuple[str, int], gateway: PostgrestGateway) -> None:
        self.gateway = gateway
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall on DNS.
        super(ThreadingHTTPServer, self).server_bind()  # TCPServer.server_bind
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake the threads waiting on idle keep-alive connections, so that they end."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client went away: nothing to report
        super().handle_error(request, client_address)


# --- the gateway ------------------------------------------------------------------------------


class Hold:
    """A planned pause of one request (see `PostgrestGateway.hold_next`)."""

    def __init__(self, function: str | None) -> None:
        self.function = function
        self._started = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        """Let the held request go on (with its transaction)."""
        self._released.set()

    def wait_started(self, timeout: float = 30.0) -> bool:
        """Wait until a request is held (it then has its database connection)."""
        return self._started.wait(timeout)

    @property
    def started(self) -> bool:
        return self._started.is_set()

    def _hold(self) -> None:
        self._started.set()
        self._released.wait(HOLD_LIMIT_S)


class PostgrestGateway:
    """PostgREST's RPC endpoint over real HTTP on 127.0.0.1, in front of a real PostgreSQL.

    `dsn` logs in as the authenticator role (see `tests.support.postgres.setup_supabase_roles`);
    `jwt_secret` (HS256, at least 32 characters) verifies bearer tokens; requests without one
    run as `anon_role`. `schema` is the one exposed schema. At most `pool_size` database
    connections are used at once; a request that waits `pool_timeout` seconds for one is
    answered 504 PGRST003. `delay` seconds are slept at the start of every request
    (simulated network latency; may be changed at any time).
    """

    def __init__(
        self,
        dsn: str,
        jwt_secret: str,
        *,
        anon_role: str = "anon",
        schema: str = "public",
        delay: float = 0.0,
        pool_size: int = 10,
        pool_timeout: float = POOL_TIMEOUT_S,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if len(jwt_secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET_LENGTH} characters")
        self.jwt_secret, self.anon_role, self.schema = jwt_secret, anon_role, schema
        self.delay = delay
        self._host, self._port = host, port
        self._dsn = dsn
        self._pool = _ConnectionPool(
            dsn, pool_size, search_path=sql.Identifier(schema).as_string(), timeout=pool_timeout
        )
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._failures: list[tuple[FailMode, str | None]] = []
        self._holds: list[Hold] = []  # planned
        self._reached: list[Hold] = []  # taken by a request
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the gateway is already running")
        self._server = _Server((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"postgrest-gateway:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.clear_failures()  # releases the holds, so that their threads can end
        server.shutdown()  # stop accepting
        server.close_connections()  # end idle keep-alive connections
        server.server_close()  # close the listener, join the handler threads
        thread.join()
        self._pool.close()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the gateway is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The Supabase project URL to give to `acreate_client`."""
        return f"http://{self._host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return self.url + REST_PREFIX

    def make_jwt(self, role: str | None = None, **claims: Any) -> str:
        """A token signed with this gateway's secret (`role` goes in the `role` claim)."""
        if role is not None:
            claims["role"] = role
        return sign_jwt(self.jwt_secret, claims)

    # -- test hooks

    @property
    def request_count(self) -> int:
        """HTTP requests received (of any kind, including dropped ones) since the last reset."""
        with self._lock:
            return len(self._requests)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def reset_request_count(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def pending_failures(self) -> list[tuple[FailMode, str | None]]:
        """Failures planned by `fail_next` that no request has consumed yet."""
        with self._lock:
            return list(self._failures)

    def clear_failures(self) -> None:
        """Forget the planned failures; release every hold, planned or holding a request."""
        with self._lock:
            self._failures.clear()
            holds, self._holds, self._reached = self._holds + self._reached, [], []
        for hold in holds:
            hold.release()

    def fail_next(self, mode: FailMode, *, function: str | None = None) -> None:
        """Make the next request (to `/rpc/{function}`, if given) fail.

        "drop_before": close the socket without running anything. "drop_after_commit": run
        the request's transaction to its end (commit, or rollback on error), then close the
        socket without answering. "terminate_before_commit": run the function, then
        terminate the database backend before COMMIT (503 57P01, nothing committed).
        "terminate_after_commit": COMMIT, then terminate the backend and answer its 503
        57P01 instead of the result (committed). "lose_commit_answer": send COMMIT, then
        cut the database connection before its answer (503 PGRST001, committed). Several
        calls queue several failures, in order.
        """
        if mode not in _FAIL_MODES:
            raise ValueError(f"unknown failure mode {mode!r}")
        with self._lock:
            self._failures.append((mode, function))

    def hold_next(self, *, function: str | None = None) -> Hold:
        """Hold the next request (to `/rpc/{function}`, if given) until `release()`.

        The request takes a database connection from the pool, then waits before its
        transaction begins: its client sees no answer (and may time out), and other
        requests find one connection fewer. Released, it runs as usual (after
        `HOLD_LIMIT_S`, it goes on by itself; `stop()` releases every hold).
        """
        hold = Hold(function)
        with self._lock:
            self._holds.append(hold)
        return hold

    def terminate_backends(self) -> int:
        """Terminate the idle pooled database connections; returns how many.

        As when the database restarts or an administrator runs `pg_terminate_backend`: the
        gateway does not notice until a request uses one, which then fails as PostgREST's
        does (503 57P01). Waits until the backends have ended.
        """
        pids = self._pool.idle_backend_pids()
        if not pids:
            return 0
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            # The timeout argument makes pg_terminate_backend wait for each backend to end.
            conn.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM unnest(%s::int[]) AS pid", [pids]
            )
        return len(pids)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no request is being served (held requests included: release them)."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError(f"{self._in_flight} request(s) still running after {timeout} s")

    @property
    def pending_holds(self) -> list[Hold]:
        """Holds planned by `hold_next` that no request has reached yet."""
        with self._lock:
            return list(self._holds)

    @contextlib.contextmanager
    def _serving(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    def _on_request(self, method: str, path: str) -> tuple[FailMode | None, Hold | None]:
        """Record a request; return the failure and the hold planned for it, if any."""
        rpc_prefix = REST_PREFIX + "/rpc/"
        function = unquote(path[len(rpc_prefix) :]) if path.startswith(rpc_prefix) else None
        failure: FailMode | None = None
        hold: Hold | None = None
        with self._lock:
            self._requests.append(RecordedRequest(method, path, function))
            for i, (mode, wanted) in enumerate(self._failures):
                if wanted is None or wanted == function:
                    del self._failures[i]
                    failure = mode
                    break
            for i, planned in enumerate(self._holds):
                if planned.function is None or planned.function == function:
                    hold = self._holds.pop(i)
                    self._reached.append(hold)
                    break
        return failure, hold

    # -- the protocol

    def _respond(
        self, request: _Request, *, rest: bool, failure: FailMode | None, hold: Hold | None
    ) -> _Response:
        try:
            role, claims = self._authenticate(request)
            if not rest:
                raise _ApiError(404, "PGRST125", "Invalid path specified in request URL")
            return self._call(request, role, claims, failure=failure, hold=hold)
        except _ApiError as error:
            return error.response()
        except Exception as exc:  # a bug here must become a 500, not a hung client
            logger.exception("gateway failure")
            return _ApiError(500, "PGRSTX00", f"test gateway failure: {exc!r}").response()

    def _authenticate(self, request: _Request) -> tuple[str, dict[str, Any]]:
        """The role and claims of a request; only `Authorization: Bearer` counts (not apikey)."""
        scheme, _, token = (request.header("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return self.anon_role, {"role": self.anon_role}
        token = token.strip()
        if not token:
            raise _jwt_error("PGRST301", "Empty JWT is sent in Authorization header")
        if token.count(".") != 2:
            raise _jwt_error("PGRST301", f"Expected 3 parts in JWT; got {token.count('.') + 1}")
        try:
            claims = jwt.decode(
                token,
                self.jwt_secret,
                algorithms=["HS256"],
                leeway=JWT_LEEWAY_S,
                options={"verify_aud": False},  # PostgREST checks `aud` only if configured
            )
        except jwt.InvalidSignatureError as exc:
            raise _jwt_error("PGRST301", "JWT cryptographic operation failed") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise _jwt_error("PGRST301", "Wrong or unsupported encoding algorithm") from exc
        except jwt.ExpiredSignatureError as exc:
            raise _jwt_error("PGRST303", "JWT expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise _jwt_error("PGRST303", "JWT not yet valid") from exc
        except jwt.InvalidIssuedAtError as exc:
            raise _jwt_error("PGRST303", "JWT issued at future") from exc
        except jwt.InvalidTokenError as exc:
            raise _jwt_error("PGRST301", "JWT couldn't be decoded") from exc
        role = claims.setdefault("role", self.anon_role)
        if not isinstance(role, str):
            raise _jwt_error("PGRST303", "Parsing claims failed")
        return role, claims

    def _call(
        self,
        request: _Request,
        role: str,
        claims: dict[str, Any],
        *,
        failure: FailMode | None = None,
        hold: Hold | None = None,
    ) -> _Response:
        if not request.path.startswith("/rpc/") or request.path.count("/") != 2:
            raise _ApiError(
                404, "PGRST125", "Invalid path specified in request URL",
                hint="the test gateway implements only /rest/v1/rpc/{function}",
            )  # fmt: skip
        name = unquote(request.path.removeprefix("/rpc/"))
        method = request.method
        if method == "OPTIONS":
            return _Response(200, headers={"Allow": "OPTIONS,GET,HEAD,POST"})
        if method not in ("GET", "HEAD", "POST"):
            raise _ApiError(405, "PGRST101", f"Cannot use the {method} method on RPC")
        read = method in ("GET", "HEAD")
        self._check_negotiation(request, read=read)
        args = self._arguments(request, read=read)

        with self._pool.connection() as conn:
            if hold is not None:
                hold._hold()
            try:
                routine = self._resolve(conn, name, frozenset(args), read=read)
                # READ ONLY for GET/HEAD, and for STABLE/IMMUTABLE functions even on POST.
                access = "READ WRITE" if routine.volatility == "v" and not read else "READ ONLY"
                isolation = _ISOLATION_LEVELS.get(routine.isolation_level or "", "READ COMMITTED")
                # Both words come from the fixed tables above, never from the request.
                conn.execute(sql.SQL(f"BEGIN ISOLATION LEVEL {isolation} {access}"))
                conn.execute(
                    _SET_REQUEST_GUCS,
                    [
                        sql.Identifier(self.schema).as_string(),
                        role,
                        json.dumps(claims),
                        method,
                        request.path,
                        json.dumps({k.lower(): v for k, v in request.headers}),
                    ],
                )
                row = conn.execute(*self._call_query(routine, args)).fetchone()
                if failure == "terminate_before_commit":
                    conn.execute(_TERMINATE_SELF)  # raises AdminShutdown (57P01)
                if failure == "lose_commit_answer":
                    raise self._lose_commit_answer(conn)
                conn.execute("COMMIT")
                if failure == "terminate_after_commit":
                    conn.execute(_TERMINATE_SELF)
            except psycopg.Error as exc:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                raise self._database_error(exc, anon=role == self.anon_role) from exc

        if routine.returns_void:
            return _Response(204)
        body = row[0] if row else "null"
        return _Response(200, body.encode(), {"Content-Type": JSON_CONTENT_TYPE})

    def _check_negotiation(self, request: _Request, *, read: bool) -> None:
        """The schema profile header, the Accept media types and the Prefer header."""
        profile = request.header("Accept-Profile" if read else "Content-Profile")
        if profile is not None and profile != self.schema:
            raise _ApiError(
                406, "PGRST106", f"Invalid schema: {profile}",
                hint=f"Only the following schemas are exposed: {self.schema}",
            )  # fmt: skip
        accept = request.header("Accept")
        if accept:
            ranges = {_media_type(part) for part in accept.split(",")}
            if not ranges & {"*/*", "application/*", "application/json"}:
                if ranges & _UNIMPLEMENTED_MEDIA_TYPES:
                    raise _not_implemented(f"responses as {accept}")
                raise _ApiError(
                    406, "PGRST107", f"None of these media types are available: {accept}"
                )
        if "count=" in (request.header("Prefer") or ""):
            raise _not_implemented("Prefer: count=... (Content-Range counts)")

    def _arguments(self, request: _Request, *, read: bool) -> dict[str, Any]:
        """The call's named arguments: the query string for GET/HEAD, the body for POST."""
        query: dict[str, str] = {}
        for key, value in request.query:  # a repeated key keeps its last value, as in PostgREST
            last_word = key.rsplit(".", 1)[-1]
            if key == "select" and value in ("", "*"):
                continue  # the default
            if key in ("select", "columns", "on_conflict") or last_word in _RESERVED_SUFFIXES:
                raise _not_implemented(f"the {key!r} query parameter")
            if "." in key or value.split(".", 1)[0] in _FILTER_OPERATORS:
                raise _not_implemented(f"filters on a function's result ({key}={value})")
            query[key] = value
        if read:
            return query  # strings, typed by json_to_record, exactly as PostgREST does
        if query:
            raise _not_implemented("filters on a function's result")
        content_type = _media_type(request.header("Content-Type") or "application/json")
        if content_type == "application/x-www-form-urlencoded":
            return dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        if content_type in _UNIMPLEMENTED_MEDIA_TYPES:
            raise _not_implemented(f"{content_type} bodies (single unnamed parameter functions)")
        if content_type != "application/json":
            raise _ApiError(400, "PGRST102", f"Content-Type not acceptable: {content_type}")
        if not request.body:
            return {}  # an empty body is an empty object for RPC
        try:
            body = json.loads(request.body)
        except ValueError as exc:
            raise _ApiError(400, "PGRST102", "Empty or invalid json") from exc
        if isinstance(body, list) and body:
            raise _not_implemented("a JSON array body (one call per element)")
        # PostgREST truncates any other JSON value (a scalar, []) to "no arguments".
        return body if isinstance(body, dict) else {}

    def _resolve(
        self, conn: psycopg.Connection[Any], name: str, keys: frozenset[str], *, read: bool
    ) -> _Routine:
        """The one function `schema.name` whose parameters fit `keys` (PGRST202/PGRST203)."""
        candidates: list[_Routine] = []
        for volatility, setof, void, composite, isolation, params in conn.execute(
            _ROUTINES_SQL, {"schema": self.schema, "name": name}
        ):
            if any(not p["name"] for p in params):
                continue  # unnamed parameters: not callable with named arguments
            candidates.append(
                _Routine(
                    schema=self.schema,
                    name=name,
                    params=tuple(
                        _Param(p["name"], p["type"], p["required"], p["variadic"]) for p in params
                    ),
                    volatility=volatility,
                    returns_set=setof,
                    returns_void=void,
                    returns_composite=composite,
                    isolation_level=isolation,
                )
            )
        matches = [r for r in candidates if r.accepts(keys)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise _ApiError(
                300, "PGRST203",
                "Could not choose the best candidate function between: "
                + ", ".join(r.signature() for r in matches),
                hint="Try renaming the parameters or the function itself in the database so "
                "function overloading can be resolved",
            )  # fmt: skip
        function = f"{self.schema}.{name}"
        listed = ", ".join(sorted(keys))
        searched = (
            f" with parameter{'s' if len(keys) > 1 else ''} {listed}"
            if keys
            else " without parameters"
        )
        raise _ApiError(
            404, "PGRST202",
            f"Could not find the function {function}"
            + (f"({listed})" if keys else " without parameters") + " in the schema cache",
            details=f"Searched for the function {function}{searched}"
            + ("" if read else " or with a single unnamed json/jsonb parameter")
            + ", but no matches were found in the schema cache.",
        )  # fmt: skip

    def _call_query(
        self, routine: _Routine, args: dict[str, Any]
    ) -> tuple[sql.Composed, list[Any]]:
        """PostgREST's call: `json_to_record` types the arguments, the database builds the JSON."""
        function = sql.Identifier(routine.schema, routine.name)
        used = [p for p in routine.params if p.name in args]  # absent keys: SQL defaults apply
        call_args = sql.SQL(", ").join(
            sql.SQL("{}{} := pgrst_body.{}").format(
                sql.SQL("VARIADIC " if p.variadic else ""),
                sql.Identifier(p.name),
                sql.Identifier(p.name),
            )
            for p in used
        )
        scalar = not routine.returns_composite
        if scalar:
            call = sql.SQL("(SELECT {}({}) AS pgrst_scalar) AS pgrst_call").format(
                function, call_args
            )
            selected = sql.SQL("pgrst_call.pgrst_scalar")
        else:
            call = sql.SQL("{}({}) AS pgrst_call").format(function, call_args)
            selected = sql.SQL("pgrst_call.*")
        params: list[Any] = []
        if used:
            columns = sql.SQL(", ").join(
                # The type name is the catalog's own output (format_type), not request data.
                sql.SQL("{} {}").format(sql.Identifier(p.name), sql.SQL(p.type))
                for p in used
            )
            source = sql.SQL("FROM json_to_record(%s::json) AS pgrst_body({}), LATERAL {}").format(
                columns, call
            )
            params.append(json.dumps({p.name: args[p.name] for p in used}))
        else:
            source = sql.SQL("FROM {}").format(call)
        aggregate = "json_agg(_postgrest_t.pgrst_scalar)" if scalar else "json_agg(_postgrest_t)"
        if routine.returns_set:
            body = f"coalesce({aggregate}, '[]')"
        else:
            body = f"coalesce({aggregate}->0, 'null')"
        query = sql.SQL(
            "WITH pgrst_source AS (SELECT {} {}) "
            "SELECT ({})::text FROM (SELECT * FROM pgrst_source) AS _postgrest_t"
        ).format(selected, source, sql.SQL(body))
        return query, params

    def _lose_commit_answer(self, conn: psycopg.Connection[Any]) -> _ApiError:
        """Send COMMIT, cut the connection before its answer; wait until the server is done.

        The server reads the whole COMMIT message before the end of the stream, so it
        commits, then finds the client gone and ends the backend; once the backend has
        ended, the commit is visible to everyone.
        """
        pgconn, pid = conn.pgconn, conn.info.backend_pid
        pgconn.send_query(b"COMMIT")
        while pgconn.flush():  # a nonblocking connection may queue part of the message
            time.sleep(0.001)
        with socket.socket(fileno=os.dup(pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        with psycopg.connect(self._dsn, autocommit=True) as observer:
            deadline = time.monotonic() + 10
            while observer.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]
            ).fetchone():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"backend {pid} did not end after its client was cut")
                time.sleep(0.005)
        return _ApiError(
            503, "PGRST001", "Database client error. Retrying the connection.",
            details="server closed the connection unexpectedly",
        )  # fmt: skip

    @staticmethod
    def _database_error(exc: psycopg.Error, *, anon: bool) -> _ApiError:
        """PostgREST's error for a database error: SQLSTATE as code, message, detail, hint."""
        if exc.sqlstate is None:  # the connection failed under us
            return _ApiError(
                503, "PGRST001", "Database client error. Retrying the connection.", details=str(exc)
            )
        diag = exc.diag
        message = diag.message_primary or str(exc)
        return _ApiError(
            status_for_sqlstate(exc.sqlstate, message, anon=anon),
            exc.sqlstate,
            message,
            details=diag.message_detail,
            hint=diag.message_hint,
        )


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _not_implemented(what: str) -> _ApiError:
    return _ApiError(
        400,
        "PGRST127",
        "Feature not implemented",
        details=f"the test gateway does not implement {what}",
    )
