"""`SupabaseStorage`: sessions in a Supabase (PostgREST) database, one RPC per operation.

Install with `pip install 'frontdesk[supabase]'`, apply the migrations (`frontdesk db
migrate --dsn ...`, or paste `frontdesk db sql` into the SQL editor), then:

    storage = await SupabaseStorage.from_env()  # SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY
    manager = SessionManager(storage, workspace_id="acme")
    ...
    await storage.aclose()

Each primitive is one call to a Postgres function (see `sql/`), which PostgREST runs in
one transaction: one HTTP request per `SessionManager` operation, all-or-nothing (reads
are retried on a transport failure, and so is a create, which is idempotent by id). Domain
errors come back as PTnnn statuses with a JSON `detail` whose `kind` is mapped to the
frontdesk error; transport failures become `StorageUnavailableError`, which says whether
a write may have been applied.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from ..errors import SessionNotFoundError, StorageError, StorageUnavailableError
from ..models import Session, Turn, TurnStats
from ._pgjson import is_uuid as _is_uuid
from ._pgjson import new_turn_json as _new_turn_json
from ._pgjson import op_json as _op_json
from ._pgjson import raised_error
from ._pgjson import session_from_json as _session
from ._pgjson import turn_from_json as _turn
from .base import Commit, CommitResult, NewSession

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
        url = url or os.environ.get(URL_ENV, "")
        key = key or os.environ.get(KEY_ENV, "")
        missing = [name for name, value in ((URL_ENV, url), (KEY_ENV, key)) if not value]
        if missing:
            raise StorageError(
                f"set {' and '.join(missing)} to use the Supabase backend "
                "(Project Settings > API: the project URL and the service_role secret)."
            )
        # Our own httpx client, so that its connections are closed by aclose(): supabase-py
        # never closes the one it makes itself.
        http_client = httpx.AsyncClient(timeout=request_timeout)
        try:
            client = await acreate_client(
                url, key, options=AsyncClientOptions(httpx_client=http_client)
            )
        except Exception:
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
        except StorageUnavailableError as exc:
            if not exc.may_have_applied:
                raise
            return await self._create(new, return_existing=return_existing)

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
        params: dict[str, Any] = {
            "p_workspace_id": workspace_id,
            "p_session_id": session_id,
            "p_state_ops": [_op_json(op) for op in commit.state_ops],
            "p_turns": [_new_turn_json(turn) for turn in commit.turns],
        }
        # Parameters left out take their SQL defaults (NULL: "leave as it is").
        optional = {
            "p_expected_version": commit.expected_version,
            "p_current_mode": commit.current_mode,
            "p_status": str(commit.status) if commit.status is not None else None,
            "p_last_activity_at": (
                commit.last_activity_at.isoformat() if commit.last_activity_at else None
            ),
            "p_state": commit.state.to_json() if commit.state is not None else None,
            "p_mode_allowed_from": (
                {agent: sorted(modes) for agent, modes in commit.mode_allowed_from.items()}
                if commit.mode_allowed_from is not None
                else None
            ),
        }
        params.update({name: value for name, value in optional.items() if value is not None})
        data = await self._rpc(
            "frontdesk_commit",
            params,
            session_id=session_id,
            extra={"expected_version": commit.expected_version},
        )
        return CommitResult(
            session=_session(data["session"]),
            turns=tuple(_turn(turn) for turn in data["turns"]),
        )

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

    async def health(self) -> dict[str, Any]:
        """What the database reports about itself (schema version, row-level security)."""
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
        `eq.1` as filters. Reads are STABLE functions, which PostgREST runs read-only, and
        are retried here on transport failures (supabase-py retries only GETs).
        """
        attempts = _READ_ATTEMPTS if read else 1
        for attempt in range(1, attempts + 1):
            try:
                response = await self.client.rpc(function, params).execute()
            except APIError as exc:
                raise _domain_error(exc, function, session_id, extra or {}, read=read) from exc
            except httpx.TransportError as exc:
                error = _transport_error(exc, function, read=read)
                if attempt == attempts:
                    raise error from exc
                await asyncio.sleep(0.05 * attempt)
            else:
                return response.data
        raise AssertionError("unreachable")  # pragma: no cover


_READ_ATTEMPTS = 3


def _transport_error(exc: httpx.TransportError, function: str, *, read: bool) -> StorageError:
    """What a failed request means for the data: could the write have reached the database?"""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        # Nothing was sent: no connection, or none free in the pool.
        return StorageUnavailableError(function, f"cannot connect: {exc!r}", may_have_applied=False)
    # Sent, and then the answer was lost (timeout, dropped connection): a write may have landed.
    return StorageUnavailableError(
        function, f"{type(exc).__name__}: {exc}", may_have_applied=not read
    )


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
        return StorageError(
            f"the key was refused ({code}: {exc.message}); use the service_role secret key "
            "in SUPABASE_SERVICE_ROLE_KEY."
        )
    if isinstance(exc.code, int) or (len(code) == 3 and code.isdigit()):
        # Not PostgREST's answer (its errors carry a SQLSTATE or PGRST code) but the HTTP
        # status of something in front of it: what it means depends on the status.
        return _proxy_error(int(code), str(exc.message), function, read=read)
    if exc.code is None:
        # A JSON error without a code: not from PostgREST either (an API gateway's own
        # refusal, such as an unknown key), so the request never reached the database.
        return StorageError(
            f"{function} was refused before reaching the database: {exc.message}. "
            "Check SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY."
        )
    if code.startswith(("08", "53", "57", "40", "PGRST0")):
        # PostgREST answered with a server-side failure: its transaction was rolled back.
        return StorageUnavailableError(function, f"{code}: {exc.message}", may_have_applied=False)
    return StorageError(f"{function} failed ({code}): {exc.message}")


def _proxy_error(status: int, message: str, function: str, *, read: bool) -> Exception:
    if status in {401, 403}:
        return StorageError(
            f"the key was refused (HTTP {status}); use the service_role secret key in "
            "SUPABASE_SERVICE_ROLE_KEY."
        )
    if status in {502, 504} or status >= 520:
        # A gateway gave up waiting: the database may still have committed the write.
        return StorageUnavailableError(
            function, f"HTTP {status}: {message}", may_have_applied=not read
        )
    if status in {429, 503} or status >= 500:
        # Refused or failed in front of the database: nothing was applied.
        return StorageUnavailableError(
            function, f"HTTP {status}: {message}", may_have_applied=False
        )
    return StorageError(f"{function} was refused (HTTP {status}): {message}")


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
