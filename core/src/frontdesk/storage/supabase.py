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
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from postgrest.exceptions import APIError
from supabase import AsyncClient, AsyncClientOptions, SupabaseException, acreate_client

from ..errors import (
    StorageAccessDeniedError,
    StorageError,
    StorageUnavailableError,
    ValidationError,
)
from ..validation import check_seconds
from ._functions import SQLFunctionStorage
from ._pgjson import (
    raised_error,
)
from ._sqlstate import Phase, classify

__all__ = ["SupabaseStorage"]

URL_ENV = "SUPABASE_URL"
KEY_ENV = "SUPABASE_SERVICE_ROLE_KEY"


class SupabaseStorage(SQLFunctionStorage):
    """The `StorageBackend` for Supabase, over supabase-py's `AsyncClient`.

    Create one per process and reuse it: it holds one HTTP connection pool. Pass an
    existing client, or let `from_env()` make one (then `aclose()` closes it).
    """

    capabilities: frozenset[str] = frozenset()

    def __init__(
        self, client: AsyncClient, *, http_client: httpx.AsyncClient | None = None
    ) -> None:
        if not isinstance(client, AsyncClient):
            raise ValidationError(
                "client",
                "must be supabase-py's AsyncClient (await supabase.acreate_client(url, key)), "
                f"or use await SupabaseStorage.from_env(); got {type(client).__name__}",
                outcome="no storage was opened",
            )
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
        check_seconds("request_timeout", request_timeout, outcome="no storage was opened")
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

    # -- the one request -------------------------------------------------------------------

    async def _call(
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
        # JSON over HTTP: datetimes (the listing's bounds) go as ISO 8601 text.
        params = {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in params.items()
        }
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
