"""`SupabaseStorage`: sessions in a Supabase (PostgREST) database, one RPC per operation.

Install with `pip install 'frontdesk[supabase]'`, apply the migrations (`frontdesk db
migrate --dsn ...`, or paste `frontdesk db sql` into the SQL editor), then:

    storage = await SupabaseStorage.from_env()  # SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY
    manager = SessionManager(storage, workspace_id="acme")
    ...
    await storage.aclose()

Each primitive is one call to a Postgres function (see `sql/`), which PostgREST runs in
one transaction: one HTTP request per `SessionManager` operation, all-or-nothing. Domain
errors come back as PTnnn statuses with a JSON `detail` whose `kind` is mapped to the
frontdesk error.

Failures are classified by what can be known about them (docs/supabase.md, "When a
request fails", has the full table); `StorageUnavailableError.may_have_applied` is False
only when the write provably did not apply:

    where it failed                                   may_have_applied (writes)
    not connected / nothing sent (ConnectError,       False
      ConnectTimeout, httpx PoolTimeout)
    sent, no answer (ReadTimeout, connection closed)  True
    PostgREST: PGRST000 (no database connection),     False
      PGRST002 (schema cache), PGRST003 (pool timeout)
    PostgREST: PGRST001 (connection lost mid-request) True
    PostgREST: SQLSTATE 08*, 57P01, 57P02, 57P04,     True (the connection ended around
      40003                                             COMMIT: its answer may be lost)
    PostgREST: other SQLSTATEs (40001, 53*, ...)      False (an ERROR rolled it back)
    a proxy in front: 429                             False
    a proxy in front: 5xx (502, 503, 504, ...)        True

Reads change nothing (always False). A read that failed because its connection was lost
(a dead pooled connection: 57P01, PGRST001, a dropped HTTP connection) is retried once;
timeouts are not retried, so `request_timeout` bounds what a caller waits for an answer.
A create is idempotent by id, so a create that may have applied is retried once; if that
retry fails too, the error still says the session may exist.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, SupabaseException, acreate_client

from ..errors import (
    SessionNotFoundError,
    StorageAccessDeniedError,
    StorageError,
    StorageUnavailableError,
)
from ..lifecycle import ErasureReport, SessionMigration, SessionQuery, SessionSummary
from ..models import Session, SessionStatus, Turn, TurnStats
from ..pipeline import Completion, Receipt, Run
from ._pgjson import (
    commit_function,
    commit_params,
    commit_result_from_json,
    complete_params,
    completion_from_json,
    list_sessions_params,
    migrate_session_params,
    policies_json,
    raised_error,
    receipt_from_json,
    receive_params,
    run_from_json,
)
from ._pgjson import is_uuid as _is_uuid
from ._pgjson import session_from_json as _session
from ._pgjson import summary_from_json as _summary
from ._pgjson import turn_from_json as _turn
from ._sqlstate import Phase, classify
from .base import Commit, CommitResult, Delivery, NewSession, RunPolicy

__all__ = ["SupabaseStorage"]

URL_ENV = "SUPABASE_URL"
KEY_ENV = "SUPABASE_SERVICE_ROLE_KEY"


class SupabaseStorage:
    """The `StorageBackend` for Supabase, over supabase-py's `AsyncClient`.

    Create one per process and reuse it: it holds one HTTP connection pool. Pass an
    existing client, or let `from_env()` make one (then `aclose()` closes it).
    """

    capabilities: frozenset[str] = frozenset()

    def __init__(
        self, client: AsyncClient, *, http_client: httpx.AsyncClient | None = None
    ) -> None:
        _check_url(str(client.supabase_url), "the client's supabase_url")
        self.client = client
        self._http_client = http_client

    def __repr__(self) -> str:
        return f"<SupabaseStorage url={self.client.supabase_url!r}>"

    @classmethod
    async def from_env(
        cls,
        *,
        url: str | None = None,
        key: str | None = None,
        request_timeout: float = 10.0,
    ) -> SupabaseStorage:
        """Connect with SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY (or the arguments).

        `request_timeout` bounds each HTTP request, in seconds.

        The service-role key is needed: the tables have row-level security with no
        policy, so the public (anon) key sees nothing.
        """
        url_source = "the url argument" if url else URL_ENV
        key_source = "the key argument" if key else KEY_ENV
        url = url or os.environ.get(URL_ENV, "")
        key = key or os.environ.get(KEY_ENV, "")
        missing = [name for name, value in ((URL_ENV, url), (KEY_ENV, key)) if not value]
        if missing:
            raise StorageError(
                f"set {' and '.join(missing)} to use the Supabase backend "
                "(Project Settings > API: the project URL and the service_role secret)."
            )
        _check_url(url, url_source)
        _check_key(key, key_source)
        # Our own httpx client, so that its connections are closed by aclose(): supabase-py
        # never closes the one it makes itself.
        http_client = httpx.AsyncClient(timeout=request_timeout)
        try:
            client = await acreate_client(
                url, key, options=AsyncClientOptions(httpx_client=http_client)
            )
        except (SupabaseException, ValueError) as exc:  # its checks, should they outgrow ours
            await http_client.aclose()
            raise StorageError(f"the Supabase client refused the settings: {exc}") from exc
        except BaseException:
            await http_client.aclose()
            raise
        return cls(client, http_client=http_client)

    async def aclose(self) -> None:
        """Close the HTTP connections made by `from_env()` (a passed-in client is yours)."""
        if self._http_client is not None:
            await self._http_client.aclose()

    async def __aenter__(self) -> SupabaseStorage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the primitives --------------------------------------------------------------------

    async def create_session(
        self, new: NewSession, *, return_existing: bool = False
    ) -> tuple[Session, bool]:
        # A create is idempotent by id (the SQL function returns the session it made on a
        # repeat), so a create whose answer was lost is retried once, safely.
        try:
            return await self._create(new, return_existing=return_existing)
        except StorageUnavailableError as first:
            if not first.may_have_applied:
                raise
            try:
                return await self._create(new, return_existing=return_existing)
            except StorageUnavailableError as retry:
                # The first attempt may have created the session, whatever the retry's
                # own failure says about the retry.
                raise StorageUnavailableError(
                    first.operation,
                    f"{first.detail}; the retry failed too: {retry.detail}",
                    may_have_applied=True,
                ) from retry

    async def _create(self, new: NewSession, *, return_existing: bool) -> tuple[Session, bool]:
        data = await self._rpc(
            "frontdesk_create_session",
            {
                "p_id": new.id,
                "p_workspace_id": new.workspace_id,
                "p_agent_id": new.agent_id,
                "p_conversation_id": new.conversation_id,
                "p_contact_id": new.contact_id,
                "p_current_mode": new.current_mode,
                "p_state": new.state.to_json(),
                "p_return_existing": return_existing,
                "p_agent_version": new.agent_version,
            },
            session_id=new.id,
            extra={"conversation_id": new.conversation_id, "agent_id": new.agent_id},
        )
        return _session(data["session"]), bool(data["created"])

    async def get_session(self, workspace_id: str, session_id: str) -> Session | None:
        if not _is_uuid(session_id):
            return None
        data = await self._rpc(
            "frontdesk_get_session",
            {"p_workspace_id": workspace_id, "p_session_id": session_id},
            session_id=session_id,
            read=True,
        )
        return None if data is None else _session(data)

    async def find_active_session(
        self, workspace_id: str, conversation_id: str, agent_id: str
    ) -> Session | None:
        data = await self._rpc(
            "frontdesk_find_active_session",
            {
                "p_workspace_id": workspace_id,
                "p_conversation_id": conversation_id,
                "p_agent_id": agent_id,
            },
            read=True,
        )
        return None if data is None else _session(data)

    async def commit(self, workspace_id: str, session_id: str, commit: Commit) -> CommitResult:
        if not _is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        data = await self._rpc(
            commit_function(commit),
            commit_params(workspace_id, session_id, commit),
            session_id=session_id,
            extra={"expected_version": commit.expected_version},
        )
        return commit_result_from_json(data)

    # -- the message pipeline --------------------------------------------------------------

    async def receive(self, delivery: Delivery) -> Receipt:
        new = delivery.new_session
        data = await self._rpc(
            "frontdesk_receive",
            receive_params(delivery),
            session_id=new.id,
            extra={"conversation_id": new.conversation_id, "agent_id": new.agent_id},
        )
        return receipt_from_json(data)

    async def complete(
        self,
        workspace_id: str,
        session_id: str,
        token: int,
        commit: Commit,
        policy: RunPolicy,
    ) -> Completion:
        if not _is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        data = await self._rpc(
            "frontdesk_complete",
            complete_params(workspace_id, session_id, token, commit, policy),
            session_id=session_id,
            extra={"expected_version": commit.expected_version, "token": token},
        )
        return completion_from_json(data)

    async def extend_run(
        self, workspace_id: str, session_id: str, token: int, lease_seconds: float
    ) -> datetime:
        if not _is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        data = await self._rpc(
            "frontdesk_extend_run",
            {
                "p_workspace_id": workspace_id,
                "p_session_id": session_id,
                "p_token": token,
                "p_lease_seconds": lease_seconds,
            },
            session_id=session_id,
            extra={"token": token},
        )
        return datetime.fromisoformat(data["expires_at"])

    async def resume_abandoned(
        self, workspace_id: str, policies: Mapping[str, RunPolicy], limit: int
    ) -> Sequence[Run]:
        data = await self._rpc(
            "frontdesk_resume_abandoned",
            {
                "p_workspace_id": workspace_id,
                "p_policies": policies_json(policies),
                "p_limit": limit,
            },
        )
        return [run for run in map(run_from_json, data) if run is not None]

    async def list_turns(
        self, workspace_id: str, session_id: str, *, limit: int | None = None
    ) -> Sequence[Turn]:
        if not _is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        params: dict[str, Any] = {"p_workspace_id": workspace_id, "p_session_id": session_id}
        if limit is not None:
            params["p_limit"] = limit
        data = await self._rpc("frontdesk_list_turns", params, session_id=session_id, read=True)
        return [_turn(turn) for turn in data]

    async def turn_stats(self, workspace_id: str, session_id: str) -> TurnStats:
        if not _is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        data = await self._rpc(
            "frontdesk_turn_stats",
            {"p_workspace_id": workspace_id, "p_session_id": session_id},
            session_id=session_id,
            read=True,
        )
        return TurnStats(count=int(data["count"]), tokens_used=int(data["tokens_used"]))

    # -- lifecycle: listing, removal, migration -------------------------------------------

    async def list_sessions(
        self, workspace_id: str, query: SessionQuery
    ) -> Sequence[SessionSummary]:
        params = list_sessions_params(workspace_id, query)
        json_params = {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in params.items()
        }
        data = await self._rpc("frontdesk_list_sessions", json_params, read=True)
        return [_summary(item) for item in data]

    async def delete_session(self, workspace_id: str, session_id: str) -> bool:
        if not _is_uuid(session_id):
            return False
        data = await self._rpc(
            "frontdesk_delete_session",
            {"p_workspace_id": workspace_id, "p_session_id": session_id},
            session_id=session_id,
        )
        return bool(data)

    async def purge_sessions(
        self,
        workspace_id: str,
        *,
        inactive_for: timedelta,
        status: SessionStatus | None,
        limit: int,
    ) -> int:
        params: dict[str, Any] = {
            "p_workspace_id": workspace_id,
            "p_inactive_seconds": inactive_for.total_seconds(),
            "p_limit": limit,
        }
        if status is not None:
            params["p_status"] = str(status)
        return int(await self._rpc("frontdesk_purge_sessions", params))

    async def erase_contact(self, workspace_id: str, contact_id: str) -> ErasureReport:
        data = await self._rpc(
            "frontdesk_erase_contact",
            {"p_workspace_id": workspace_id, "p_contact_id": contact_id},
        )
        return ErasureReport(sessions=int(data["sessions"]), turns=int(data["turns"]))

    async def migrate_session(
        self, workspace_id: str, session_id: str, migration: SessionMigration
    ) -> Session:
        if not _is_uuid(session_id):
            raise SessionNotFoundError(session_id)
        params = migrate_session_params(workspace_id, session_id, migration)
        data = await self._rpc(
            "frontdesk_migrate_session",
            params,
            session_id=session_id,
            extra={"expected_version": migration.expected_version},
        )
        return _session(data)

    async def health(self) -> dict[str, Any]:
        """What the database reports about itself: callable functions, row-level security, exposure."""
        data: dict[str, Any] = await self._rpc("frontdesk_health", {}, read=True)
        return data

    # -- the one request -------------------------------------------------------------------

    async def _rpc(
        self,
        function: str,
        params: dict[str, Any],
        *,
        session_id: str | None = None,
        read: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call one Postgres function with one HTTP request; map its failures.

        Every call is a POST: with GET, PostgREST would read arguments such as `in` or
        `eq.1` as filters. Reads are STABLE functions, which PostgREST runs read-only; one
        whose connection was lost is retried once (supabase-py retries only GETs).
        """
        attempts = _READ_ATTEMPTS if read else 1
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                response = await self.client.rpc(function, params).execute()
            except APIError as exc:
                if attempt == attempts or not _connection_lost(exc):
                    raise _domain_error(exc, function, session_id, extra or {}, read=read) from exc
            except httpx.TransportError as exc:
                if attempt == attempts or not _connection_lost(exc):
                    elapsed = time.monotonic() - started
                    raise _transport_error(exc, function, elapsed, read=read) from exc
            else:
                return response.data
            await asyncio.sleep(_READ_RETRY_PAUSE_S)
        raise AssertionError("unreachable")  # pragma: no cover


_READ_ATTEMPTS = 2
_SQLSTATE = re.compile(r"[0-9A-Z]{5}")
_READ_RETRY_PAUSE_S = 0.05

# PostgREST's own codes for failures to reach the database, and whether a write may have
# applied: PGRST000 could not connect, PGRST002 has no schema cache yet, PGRST003 timed out
# waiting for a pooled connection (all before any SQL ran); PGRST001 lost the connection
# while using it, possibly with COMMIT sent.
_POSTGREST_UNAVAILABLE = {
    "PGRST000": False,
    "PGRST001": True,
    "PGRST002": False,
    "PGRST003": False,
}


def _connection_lost(exc: APIError | httpx.TransportError) -> bool:
    """Whether a request died with its connection, before any answer: worth a second try."""
    if isinstance(exc, httpx.TransportError):
        # Not a timeout: the caller's request_timeout bounds the wait, retrying would double it.
        return not isinstance(exc, httpx.TimeoutException)
    code = str(exc.code)
    if code == "PGRST001":
        return True
    return _is_sqlstate(code) and classify(code, Phase.COMMIT).connection_lost


def _is_sqlstate(code: str) -> bool:
    return _SQLSTATE.fullmatch(code) is not None


def _transport_error(
    exc: httpx.TransportError, function: str, elapsed: float, *, read: bool
) -> StorageUnavailableError:
    """What a failed request means for the data: could the write have reached the database?"""
    took = f"{type(exc).__name__} after {elapsed:.2f} s"
    limits = _timeouts(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        detail = f"could not connect within {limits.get('connect', '?')} s: {took}"
        return StorageUnavailableError(function, detail, may_have_applied=False)
    if isinstance(exc, httpx.PoolTimeout):
        detail = f"no free connection in the HTTP client's pool: {took}"
        return StorageUnavailableError(function, detail, may_have_applied=False)
    if isinstance(exc, httpx.ConnectError):
        # Nothing was sent: no connection could be made.
        detail = f"cannot connect, {took}: {str(exc) or 'connection refused'}"
        return StorageUnavailableError(function, detail, may_have_applied=False)
    if isinstance(exc, httpx.ReadTimeout):
        detail = f"no answer within {limits.get('read', '?')} s: {took}"
    elif isinstance(exc, httpx.WriteTimeout):
        detail = f"the request could not be sent within {limits.get('write', '?')} s: {took}"
    else:
        detail = f"{took}: {str(exc) or 'the connection closed without an answer'}"
    # Sent, or partly sent, and the answer lost: a write may have landed.
    return StorageUnavailableError(function, detail, may_have_applied=not read)


def _timeouts(exc: httpx.TransportError) -> dict[str, Any]:
    """The timeouts (seconds, by phase) the failed request was sent with, if known."""
    try:
        timeouts = exc.request.extensions.get("timeout", {})
    except RuntimeError:  # an error raised without its request
        return {}
    return dict(timeouts) if isinstance(timeouts, Mapping) else {}


def _domain_error(
    exc: APIError,
    function: str,
    session_id: str | None,
    extra: Mapping[str, Any],
    *,
    read: bool,
) -> Exception:
    code = str(exc.code)
    if code.startswith("PT") and exc.hint == "frontdesk":
        return _frontdesk_error(exc, _detail(exc.details), session_id, extra)
    if code in {"PGRST202", "42883", "42P01"}:
        return StorageError(
            f"the database lacks frontdesk's functions ({function}): apply the migrations "
            "with `frontdesk db migrate --dsn ...` or paste `frontdesk db sql` into the "
            "Supabase SQL editor."
        )
    if code in {"PGRST301", "PGRST302", "PGRST303", "42501"}:
        return StorageAccessDeniedError(function, f"{code}: {exc.message}")
    if isinstance(exc.code, int) or (len(code) == 3 and code.isdigit()):
        # Not PostgREST's answer (its errors carry a SQLSTATE or PGRST code) but the HTTP
        # status of something in front of it: what it means depends on the status.
        return _proxy_error(int(code), str(exc.message), function, read=read)
    if exc.code is None:
        # A JSON error without a code: not from PostgREST but from a gateway in front of it
        # (an unknown key, a route, a failure upstream), whose status supabase-py drops.
        return StorageError(
            f"{function} failed in front of the database: {exc.message}. Check SUPABASE_URL "
            "and SUPABASE_SERVICE_ROLE_KEY; if it was a write, re-read before retrying it."
        )
    if code in _POSTGREST_UNAVAILABLE:
        return StorageUnavailableError(
            function,
            f"{code}: {exc.message}",
            may_have_applied=_POSTGREST_UNAVAILABLE[code] and not read,
        )
    if _is_sqlstate(code):
        failure = classify(code, Phase.COMMIT)  # PostgREST ran the whole transaction
        if failure.error is StorageUnavailableError:
            return StorageUnavailableError(
                function,
                f"{code}: {exc.message}",
                may_have_applied=failure.may_have_applied and not read,
            )
    return StorageError(f"{function} failed ({code}): {exc.message}")


def _proxy_error(status: int, message: str, function: str, *, read: bool) -> Exception:
    if status in {401, 403}:
        return StorageAccessDeniedError(function, f"HTTP {status}")
    if status == 429:
        # Rate limited: refused before being passed on, so nothing was applied.
        return StorageUnavailableError(
            function, f"HTTP {status}: {message}", may_have_applied=False
        )
    if status >= 500:
        # A proxy failed or gave up (502, 503, 504, 52x): it may have passed the request on
        # before failing, and the database may have committed it.
        return StorageUnavailableError(
            function, f"HTTP {status}: {message}", may_have_applied=not read
        )
    return StorageError(f"{function} was refused (HTTP {status}): {message}")


def _check_url(url: str, source: str) -> None:
    """Refuse a Supabase URL that cannot work, before any client is made."""
    try:
        parts = urlsplit(url)
        valid = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and (parts.port is None or parts.port > 0)
            and url.isascii()
            and url.isprintable()
            and not any(c.isspace() for c in url)
        )
    except ValueError:  # a port out of range, a broken IPv6 address
        valid = False
    if not valid:
        raise StorageError(
            f"{source} is not a valid URL ({url!r}); use the project URL from Project "
            "Settings > API, such as https://abcdefghijklmnop.supabase.co"
        )


def _check_key(key: str, source: str) -> None:
    """Refuse a key that cannot be sent in an HTTP header (a stray newline, a space)."""
    if not (key.isascii() and key.isprintable()) or any(c.isspace() for c in key):
        raise StorageError(
            f"{source} contains spaces or characters a key never has; paste the "
            "service_role secret from Project Settings > API again."
        )


def _frontdesk_error(
    exc: APIError, detail: Mapping[str, Any], session_id: str | None, extra: Mapping[str, Any]
) -> Exception:
    """The frontdesk error for a `frontdesk_raise` in SQL, from its JSON detail."""
    return raised_error(detail, str(exc.message), session_id, extra)


def _detail(details: object) -> dict[str, Any]:
    try:
        parsed = json.loads(str(details))
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}
