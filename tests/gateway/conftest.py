"""Fixtures for the gateway's own tests: a module database with Supabase's roles, a gateway in
front of it, raw HTTP and supabase-py clients."""

from __future__ import annotations

import contextlib
import ssl
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from tests.support.gateway import PostgrestGateway
from tests.support.postgres import setup_supabase_roles

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

JWT_SECRET = "frontdesk-gateway-tests-jwt-secret-0123456789"

# Every httpx client loads the CA bundle into a new SSL context (~30 ms); the gateway is plain
# HTTP, so the clients share one context instead.
_TLS = ssl.create_default_context()


@pytest.fixture(scope="module")
def authenticator_dsn(module_database: str) -> str:
    """The module database, with Supabase's roles; the DSN the gateway logs in with."""
    return setup_supabase_roles(module_database)


@pytest.fixture(scope="module")
def gateway(authenticator_dsn: str) -> Iterator[PostgrestGateway]:
    with PostgrestGateway(authenticator_dsn, JWT_SECRET) as gateway:
        yield gateway


@pytest.fixture
def clean_gateway(gateway: PostgrestGateway) -> Iterator[PostgrestGateway]:
    """The gateway, with no recorded request; afterwards no planned failure, hold or delay."""
    gateway.reset_request_count()
    yield gateway
    unused = gateway.pending_failures
    holds = gateway.pending_holds
    gateway.clear_failures()
    gateway.delay = 0.0
    gateway.wait_idle()
    assert not unused, f"planned failures no request consumed: {unused}"
    assert not holds, f"planned holds no request reached: {holds}"


@pytest.fixture
async def admin(module_database: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[Any, ...]]]:
    """A superuser connection to the module database, to look behind the gateway."""
    async with await psycopg.AsyncConnection.connect(module_database, autocommit=True) as conn:
        yield conn


@pytest.fixture
def service_key(gateway: PostgrestGateway) -> str:
    return gateway.make_jwt("service_role")


@pytest.fixture
def anon_key(gateway: PostgrestGateway) -> str:
    return gateway.make_jwt("anon")


@pytest.fixture
async def http(gateway: PostgrestGateway) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client on the REST base URL (`/rpc/fn` relative paths)."""
    async with httpx.AsyncClient(base_url=gateway.rest_url, timeout=30, verify=_TLS) as client:
        yield client


@pytest.fixture
async def make_supabase(
    gateway: PostgrestGateway,
) -> AsyncIterator[Callable[[str], Awaitable[AsyncClient]]]:
    """Build supabase-py AsyncClients with a given key; their httpx clients are closed after."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(key: str) -> AsyncClient:
            http_client = await stack.enter_async_context(
                httpx.AsyncClient(timeout=30, verify=_TLS)
            )
            return await acreate_client(
                gateway.url, key, options=AsyncClientOptions(httpx_client=http_client)
            )

        yield make


@pytest.fixture
async def supabase(
    make_supabase: Callable[[str], Awaitable[AsyncClient]], service_key: str
) -> AsyncClient:
    """A supabase-py client with the service-role key."""
    return await make_supabase(service_key)
