"""The PostgREST-protocol gateway against the facts in docs/supabase.md, through real HTTP.

Raw protocol facts are checked with httpx; client-facing facts with supabase-py's AsyncClient,
the client the Supabase backend uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import psycopg
import pytest
from postgrest import APIError

from tests.gateway.conftest import JWT_SECRET
from tests.support.gateway import PostgrestGateway, sign_jwt, status_for_sqlstate

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from supabase import AsyncClient

SCHEMA = """
CREATE TABLE items (
    id integer PRIMARY KEY,
    name text NOT NULL UNIQUE,
    parent integer REFERENCES items (id)
);
CREATE TYPE pair AS (x integer, label text);

CREATE FUNCTION echo_int(n integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT n';
CREATE FUNCTION echo_bigint(n bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS 'SELECT n';
CREATE FUNCTION echo_text(s text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT s';
CREATE FUNCTION echo_bool(b boolean) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT b';
CREATE FUNCTION echo_numeric(n numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT n';
CREATE FUNCTION echo_jsonb(doc jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS 'SELECT doc';
CREATE FUNCTION echo_json(doc json) RETURNS json LANGUAGE sql IMMUTABLE AS 'SELECT doc';
CREATE FUNCTION echo_uuid(u uuid) RETURNS uuid LANGUAGE sql IMMUTABLE AS 'SELECT u';
CREATE FUNCTION echo_int_array(a integer[]) RETURNS integer[] LANGUAGE sql IMMUTABLE AS 'SELECT a';
CREATE FUNCTION echo_text_array(a text[]) RETURNS text[] LANGUAGE sql IMMUTABLE AS 'SELECT a';
CREATE FUNCTION null_int() RETURNS integer LANGUAGE sql AS 'SELECT NULL::integer';
CREATE FUNCTION jsonb_type(doc jsonb) RETURNS text LANGUAGE sql AS 'SELECT jsonb_typeof(doc)';

CREATE FUNCTION make_pair(x integer, label text) RETURNS pair
    LANGUAGE sql AS 'SELECT x, label';
CREATE FUNCTION no_pair() RETURNS pair LANGUAGE sql AS 'SELECT NULL::pair';
CREATE FUNCTION out_params(n integer, OUT doubled integer, OUT label text)
    LANGUAGE sql AS $$SELECT n * 2, 'n=' || n$$;
CREATE FUNCTION series(n integer) RETURNS SETOF integer
    LANGUAGE sql AS 'SELECT generate_series(1, n)';
CREATE FUNCTION pairs(n integer) RETURNS TABLE (x integer, label text)
    LANGUAGE sql AS $$SELECT g, 'p' || g FROM generate_series(1, n) AS g$$;
CREATE FUNCTION pair_set(n integer) RETURNS SETOF pair
    LANGUAGE sql AS $$SELECT g, 'p' || g FROM generate_series(1, n) AS g$$;
CREATE FUNCTION one_column(n integer) RETURNS TABLE (x integer)
    LANGUAGE sql AS 'SELECT generate_series(1, n)';
CREATE FUNCTION do_nothing() RETURNS void LANGUAGE sql AS '';

CREATE FUNCTION add(a integer, b integer DEFAULT 10, c integer DEFAULT 100) RETURNS integer
    LANGUAGE sql AS 'SELECT a + b + coalesce(c, -1)';
CREATE FUNCTION pick(a integer) RETURNS text LANGUAGE sql AS $$SELECT 'integer'$$;
CREATE FUNCTION pick(a text) RETURNS text LANGUAGE sql AS $$SELECT 'text'$$;
CREATE FUNCTION pick(a integer, b integer) RETURNS text LANGUAGE sql AS $$SELECT 'two'$$;
CREATE FUNCTION pick() RETURNS text LANGUAGE sql AS $$SELECT 'none'$$;
CREATE FUNCTION unnamed(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1';
CREATE FUNCTION "Mixed Case"("Odd Name" text) RETURNS text LANGUAGE sql AS 'SELECT $1';

CREATE FUNCTION insert_item(id integer, name text, parent integer DEFAULT NULL) RETURNS integer
    LANGUAGE sql AS 'INSERT INTO items VALUES (id, name, parent) RETURNING id';
CREATE FUNCTION insert_item_stable(id integer, name text) RETURNS void
    LANGUAGE plpgsql STABLE AS 'BEGIN INSERT INTO items VALUES (id, name); END';
CREATE FUNCTION insert_then_fail(id integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO items VALUES (id, 'doomed-' || id);
    RAISE EXCEPTION 'failed after inserting %', id;
END $$;
CREATE FUNCTION transaction_state() RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'read_only', current_setting('transaction_read_only'),
        'isolation', current_setting('transaction_isolation'))$$;
CREATE FUNCTION transaction_state_stable() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'read_only', current_setting('transaction_read_only'),
        'isolation', current_setting('transaction_isolation'))$$;
CREATE FUNCTION serializable_state() RETURNS text LANGUAGE sql
    SET default_transaction_isolation = 'serializable'
    AS $$SELECT current_setting('transaction_isolation')$$;

CREATE FUNCTION fail_plain() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'plain failure' USING DETAIL = 'the detail', HINT = 'the hint';
END $$;
CREATE FUNCTION fail_with(code text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'failed with %', code USING ERRCODE = code, DETAIL = 'details of ' || code,
        HINT = 'hint for ' || code;
END $$;
CREATE FUNCTION fail_without_extras() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'bare';
END $$;

CREATE FUNCTION whoami() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'user', current_user,
        'claims', current_setting('request.jwt.claims', true)::jsonb,
        'method', current_setting('request.method', true),
        'path', current_setting('request.path', true),
        'headers', current_setting('request.headers', true)::jsonb,
        'search_path', current_setting('search_path'))$$;

-- Supabase's default privileges grant EXECUTE to anon and authenticated: revoke them.
CREATE FUNCTION private_fn() RETURNS text LANGUAGE sql AS $$SELECT 'secret'$$;
REVOKE EXECUTE ON FUNCTION private_fn() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION private_fn() TO service_role;
"""


pytestmark = pytest.mark.usefixtures("clean_gateway")


@pytest.fixture(scope="module", autouse=True)
def _schema(authenticator_dsn: str, module_database: str) -> None:
    """The module's functions, created by the superuser once the API roles exist."""
    with psycopg.connect(module_database, autocommit=True) as conn:
        conn.execute(SCHEMA)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def item_names(admin: psycopg.AsyncConnection[tuple[Any, ...]]) -> set[str]:
    cursor = await admin.execute("SELECT name FROM items")
    return {row[0] for row in await cursor.fetchall()}


# --- result shapes ----------------------------------------------------------------------------

UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"


@pytest.mark.parametrize(
    ("function", "args", "expected"),
    [
        pytest.param("echo_int", {"n": 42}, 42, id="integer"),
        pytest.param("echo_bigint", {"n": 2**40}, 2**40, id="bigint"),
        pytest.param("echo_text", {"s": 'héllo "world"'}, 'héllo "world"', id="text"),
        pytest.param("echo_bool", {"b": True}, True, id="boolean"),
        pytest.param("echo_numeric", {"n": 1.5}, 1.5, id="numeric"),
        pytest.param(
            "echo_jsonb", {"doc": {"a": [1, None, "x"]}}, {"a": [1, None, "x"]}, id="jsonb-object"
        ),
        pytest.param("echo_jsonb", {"doc": [1, 2]}, [1, 2], id="jsonb-array"),
        pytest.param("echo_jsonb", {"doc": "s"}, "s", id="jsonb-string"),
        pytest.param("echo_json", {"doc": {"k": "v"}}, {"k": "v"}, id="json"),
        pytest.param("echo_uuid", {"u": UUID}, UUID, id="uuid"),
        pytest.param("echo_int_array", {"a": [3, 1, 2]}, [3, 1, 2], id="integer-array"),
        pytest.param(
            "echo_text_array",
            {
                "a": ["a,b", 'q"'],
            },
            ["a,b", 'q"'],
            id="text-array",
        ),
        pytest.param("echo_int", {"n": None}, None, id="explicit-null"),
        pytest.param("null_int", {}, None, id="null-scalar"),
        pytest.param("echo_int", {"n": "7"}, 7, id="string-to-integer"),
        pytest.param("jsonb_type", {"doc": {"a": 1}}, "object", id="jsonb-stays-object"),
        pytest.param("Mixed Case", {"Odd Name": "quoted"}, "quoted", id="quoted-identifiers"),
    ],
)
async def test_scalar_results(
    http: httpx.AsyncClient, service_key: str, function: str, args: dict[str, Any], expected: Any
) -> None:
    response = await http.post(f"/rpc/{function}", json=args, headers=auth(service_key))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json() == expected


@pytest.mark.parametrize(
    ("function", "args", "expected"),
    [
        pytest.param(
            "make_pair", {"x": 1, "label": "one"}, {"x": 1, "label": "one"}, id="composite"
        ),
        pytest.param("no_pair", {}, {"x": None, "label": None}, id="null-composite"),
        pytest.param("out_params", {"n": 4}, {"doubled": 8, "label": "n=4"}, id="out-params"),
        pytest.param("series", {"n": 3}, [1, 2, 3], id="setof-scalar"),
        pytest.param("series", {"n": 0}, [], id="setof-scalar-empty"),
        pytest.param(
            "pairs", {"n": 2}, [{"x": 1, "label": "p1"}, {"x": 2, "label": "p2"}], id="table"
        ),
        pytest.param("pairs", {"n": 0}, [], id="table-empty"),
        pytest.param("pair_set", {"n": 1}, [{"x": 1, "label": "p1"}], id="setof-composite"),
        pytest.param("one_column", {"n": 2}, [{"x": 1}, {"x": 2}], id="one-column-table"),
    ],
)
async def test_row_results(
    supabase: AsyncClient, function: str, args: dict[str, Any], expected: Any
) -> None:
    response = await supabase.rpc(function, args).execute()
    assert response.data == expected


async def test_void_is_204_without_body(
    http: httpx.AsyncClient, supabase: AsyncClient, service_key: str
) -> None:
    response = await http.post("/rpc/do_nothing", json={}, headers=auth(service_key))
    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers
    assert (await supabase.rpc("do_nothing", {}).execute()).data == []


async def test_empty_body_is_an_empty_object(http: httpx.AsyncClient) -> None:
    response = await http.post("/rpc/pick")
    assert response.json() == "none"


# --- arguments and overloads ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param({"a": 1}, 111, id="defaults-apply"),
        pytest.param({"a": 1, "c": 1000}, 1011, id="skip-a-default"),
        pytest.param({"a": 1, "b": 2, "c": 3}, 6, id="all-given"),
        pytest.param({"a": 1, "c": None}, 10, id="explicit-null-is-not-the-default"),
    ],
)
async def test_named_arguments_and_defaults(
    supabase: AsyncClient, args: dict[str, Any], expected: int
) -> None:
    assert (await supabase.rpc("add", args).execute()).data == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param({"a": 1, "b": 2}, "two", id="two-keys"),
        pytest.param({}, "none", id="no-keys"),
    ],
)
async def test_overload_chosen_by_keys(
    supabase: AsyncClient, args: dict[str, Any], expected: str
) -> None:
    assert (await supabase.rpc("pick", args).execute()).data == expected


async def test_overload_ambiguity_is_300(http: httpx.AsyncClient, supabase: AsyncClient) -> None:
    response = await http.post("/rpc/pick", json={"a": 1})
    assert response.status_code == 300
    body = response.json()
    assert body["code"] == "PGRST203"
    assert "public.pick(a => integer)" in body["message"]
    assert "public.pick(a => text)" in body["message"]
    assert body["hint"]
    with pytest.raises(APIError) as info:
        await supabase.rpc("pick", {"a": 1}).execute()
    assert info.value.code == "PGRST203"


@pytest.mark.parametrize(
    ("function", "args", "message"),
    [
        pytest.param(
            "missing",
            {},
            "Could not find the function public.missing without parameters in the schema cache",
            id="unknown-function",
        ),
        pytest.param(
            "add",
            {"a": 1, "z": 2},
            "Could not find the function public.add(a, z) in the schema cache",
            id="unknown-key",
        ),
        pytest.param(
            "add",
            {"b": 1},
            "Could not find the function public.add(b) in the schema cache",
            id="missing-required",
        ),
        pytest.param(
            "unnamed",
            {},
            "Could not find the function public.unnamed without parameters in the schema cache",
            id="unnamed-parameter",
        ),
    ],
)
async def test_no_matching_function_is_404(
    supabase: AsyncClient, function: str, args: dict[str, Any], message: str
) -> None:
    with pytest.raises(APIError) as info:
        await supabase.rpc(function, args).execute()
    assert info.value.code == "PGRST202"
    assert info.value.message == message
    assert info.value.details is not None
    assert "but no matches were found in the schema cache" in info.value.details


async def test_invalid_argument_value_is_400(supabase: AsyncClient) -> None:
    with pytest.raises(APIError) as info:
        await supabase.rpc("echo_int", {"n": "not a number"}).execute()
    assert info.value.code == "22P02"


async def test_invalid_json_body_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/rpc/echo_int", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["code"] == "PGRST102"
    assert response.json()["message"] == "Empty or invalid json"


@pytest.mark.parametrize("body", [b"42", b"[]", b'"text"'], ids=["number", "empty-array", "string"])
async def test_non_object_json_body_means_no_arguments(
    http: httpx.AsyncClient, body: bytes
) -> None:
    # PostgREST truncates a body that is neither an object nor an array of objects.
    response = await http.post(
        "/rpc/pick", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.json() == "none"


async def test_form_body_arguments(http: httpx.AsyncClient) -> None:
    response = await http.post("/rpc/add", data={"a": "1", "b": "2"})
    assert response.status_code == 200
    assert response.json() == 103


async def test_unknown_content_type_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/rpc/echo_int", content=b"<n>1</n>", headers={"Content-Type": "text/html"}
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Content-Type not acceptable: text/html"


@pytest.mark.parametrize(
    ("accept", "status", "code"),
    [
        pytest.param("text/html", 406, "PGRST107", id="unknown"),
        pytest.param("application/vnd.pgrst.object+json", 400, "PGRST127", id="not-implemented"),
    ],
)
async def test_unavailable_media_types(
    http: httpx.AsyncClient, accept: str, status: int, code: str
) -> None:
    response = await http.post("/rpc/echo_int", json={"n": 1}, headers={"Accept": accept})
    assert (response.status_code, response.json()["code"]) == (status, code)


@pytest.mark.parametrize(
    "query",
    [{"n": "eq.1"}, {"limit": "1"}, {"select": "x"}, {"x.y": "1"}],
    ids=["filter", "limit", "select", "embedded"],
)
async def test_unimplemented_query_parameters_fail_loudly(
    http: httpx.AsyncClient, query: dict[str, str]
) -> None:
    response = await http.get("/rpc/series", params={"n": "2", **query})
    assert response.status_code == 400
    assert response.json()["code"] == "PGRST127"


# --- transactions -----------------------------------------------------------------------------


async def test_get_runs_read_only_with_query_string_arguments(
    http: httpx.AsyncClient, supabase: AsyncClient
) -> None:
    response = await http.get("/rpc/add", params={"a": "1", "b": "2"})
    assert response.status_code == 200
    assert response.json() == 103
    state = await supabase.rpc("transaction_state", {}, get=True).execute()
    assert state.data == {"read_only": "on", "isolation": "read committed"}


async def test_head_runs_without_body(http: httpx.AsyncClient) -> None:
    response = await http.head("/rpc/add", params={"a": "1"})
    assert response.status_code == 200
    assert response.content == b""


async def test_write_in_get_fails_with_405(
    supabase: AsyncClient, admin: psycopg.AsyncConnection[tuple[Any, ...]]
) -> None:
    with pytest.raises(APIError) as info:
        await supabase.rpc("insert_item", {"id": 1, "name": "via-get"}, get=True).execute()
    assert info.value.code == "25006"
    assert "via-get" not in await item_names(admin)


@pytest.mark.parametrize(
    ("function", "read_only"),
    [("transaction_state", "off"), ("transaction_state_stable", "on")],
    ids=["volatile-read-write", "stable-read-only"],
)
async def test_post_access_mode_follows_volatility(
    supabase: AsyncClient, function: str, read_only: str
) -> None:
    state = await supabase.rpc(function, {}).execute()
    assert state.data == {"read_only": read_only, "isolation": "read committed"}


async def test_function_isolation_setting_is_honoured(supabase: AsyncClient) -> None:
    assert (await supabase.rpc("serializable_state", {}).execute()).data == "serializable"


async def test_write_in_stable_function_fails(
    http: httpx.AsyncClient, service_key: str, admin: psycopg.AsyncConnection[tuple[Any, ...]]
) -> None:
    response = await http.post(
        "/rpc/insert_item_stable", json={"id": 2, "name": "stable"}, headers=auth(service_key)
    )
    assert response.status_code == 400
    assert response.json()["code"] == "0A000"
    assert "stable" not in await item_names(admin)


async def test_success_commits_and_error_rolls_back(
    supabase: AsyncClient, admin: psycopg.AsyncConnection[tuple[Any, ...]]
) -> None:
    assert (await supabase.rpc("insert_item", {"id": 3, "name": "kept"}).execute()).data == 3
    with pytest.raises(APIError) as info:
        await supabase.rpc("insert_then_fail", {"id": 4}).execute()
    assert info.value.code == "P0001"
    names = await item_names(admin)
    assert "kept" in names
    assert "doomed-4" not in names


# --- errors -----------------------------------------------------------------------------------


async def test_raise_exception_is_400_with_detail_and_hint(supabase: AsyncClient) -> None:
    with pytest.raises(APIError) as info:
        await supabase.rpc("fail_plain", {}).execute()
    error = info.value
    assert (error.code, error.message, error.details, error.hint) == (
        "P0001",
        "plain failure",
        "the detail",
        "the hint",
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        pytest.param("PT409", 409, id="PT409"),
        pytest.param("PT418", 418, id="PT418"),
        pytest.param("PTABC", 500, id="PT-not-a-number"),
        pytest.param("P0002", 500, id="other-P0"),
        pytest.param("23514", 400, id="check-violation"),
        pytest.param("40001", 500, id="serialization-failure"),
        pytest.param("42501", 403, id="insufficient-privilege-authed"),
        pytest.param("08006", 503, id="connection-failure"),
    ],
)
async def test_raised_sqlstate_sets_status(
    http: httpx.AsyncClient, service_key: str, code: str, status: int
) -> None:
    response = await http.post("/rpc/fail_with", json={"code": code}, headers=auth(service_key))
    assert response.status_code == status
    assert response.json() == {
        "code": code,
        "message": f"failed with {code}",
        "details": f"details of {code}",
        "hint": f"hint for {code}",
    }
    assert response.headers["proxy-status"] == f"PostgREST; error={code}"


async def test_custom_status_reaches_the_client(supabase: AsyncClient) -> None:
    with pytest.raises(APIError) as info:
        await supabase.rpc("fail_with", {"code": "PT409"}).execute()
    error = info.value
    assert (error.code, error.message, error.details, error.hint) == (
        "PT409",
        "failed with PT409",
        "details of PT409",
        "hint for PT409",
    )


async def test_error_body_has_all_four_keys(http: httpx.AsyncClient, supabase: AsyncClient) -> None:
    response = await http.post("/rpc/fail_without_extras")
    assert response.json() == {"code": "P0001", "message": "bare", "details": None, "hint": None}
    with pytest.raises(APIError) as info:
        await supabase.rpc("fail_without_extras", {}).execute()
    assert (info.value.code, info.value.details, info.value.hint) == ("P0001", None, None)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        pytest.param({"id": 10, "name": "dup"}, "23505", id="unique-violation"),
        pytest.param(
            {"id": 11, "name": "orphan", "parent": 999}, "23503", id="foreign-key-violation"
        ),
    ],
)
async def test_constraint_violations_are_409(
    supabase: AsyncClient,
    http: httpx.AsyncClient,
    service_key: str,
    args: dict[str, Any],
    code: str,
) -> None:
    with contextlib.suppress(APIError):  # the first parameter case inserts it
        await supabase.rpc("insert_item", {"id": 9, "name": "dup"}).execute()
    response = await http.post("/rpc/insert_item", json=args, headers=auth(service_key))
    assert response.status_code == 409
    assert response.json()["code"] == code
    with pytest.raises(APIError) as info:
        await supabase.rpc("insert_item", args).execute()
    assert info.value.code == code


async def test_not_null_violation_is_400(http: httpx.AsyncClient, service_key: str) -> None:
    response = await http.post(
        "/rpc/insert_item", json={"id": 12, "name": None}, headers=auth(service_key)
    )
    assert response.status_code == 400
    assert response.json()["code"] == "23502"


@pytest.mark.parametrize(
    ("role", "status"),
    [("anon", 401), ("authenticated", 403)],
    ids=["anon-401", "authenticated-403"],
)
async def test_insufficient_privilege(
    http: httpx.AsyncClient, gateway: PostgrestGateway, role: str, status: int
) -> None:
    response = await http.post("/rpc/private_fn", headers=auth(gateway.make_jwt(role)))
    assert response.status_code == status
    assert response.json()["code"] == "42501"
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    allowed = await http.post("/rpc/private_fn", headers=auth(gateway.make_jwt("service_role")))
    assert allowed.json() == "secret"


async def test_insufficient_privilege_without_token_is_401(
    http: httpx.AsyncClient, make_supabase: Callable[[str], Awaitable[AsyncClient]], anon_key: str
) -> None:
    response = await http.post("/rpc/private_fn")
    assert (response.status_code, response.json()["code"]) == (401, "42501")
    client = await make_supabase(anon_key)
    with pytest.raises(APIError) as info:
        await client.rpc("private_fn", {}).execute()
    assert info.value.code == "42501"


def test_status_table() -> None:
    cases = {
        ("23503", False): 409, ("23505", False): 409, ("P0001", False): 400,
        ("P0004", False): 500, ("42501", True): 401, ("42501", False): 403,
        ("42883", False): 404, ("42P01", False): 404, ("08000", False): 503,
        ("53100", False): 503, ("53400", False): 500, ("57P01", False): 503,
        ("57014", False): 500, ("40P01", False): 500, ("25006", False): 405,
        ("25001", False): 500, ("28000", False): 403, ("0L000", False): 403,
        ("0P000", False): 403, ("09000", False): 500, ("2D000", False): 500,
        ("38000", False): 500, ("39000", False): 500, ("3B000", False): 500,
        ("54000", False): 500, ("55000", False): 500, ("58000", False): 500,
        ("F0000", False): 500, ("HV000", False): 500, ("XX000", False): 500,
        ("42P17", False): 500, ("21000", False): 500, ("23502", False): 400,
        ("23514", False): 400, ("22P02", False): 400, ("0A000", False): 400,
        ("PT404", False): 404,
    }  # fmt: skip
    actual = {key: status_for_sqlstate(key[0], "msg", anon=key[1]) for key in cases}
    assert actual == cases


# --- authentication and request context -------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "code", "message"),
    [
        pytest.param("not-a-jwt", "PGRST301", "Expected 3 parts in JWT; got 1", id="not-a-jwt"),
        pytest.param(
            sign_jwt("another-secret-of-at-least-32-characters!", {"role": "service_role"}),
            "PGRST301",
            "JWT cryptographic operation failed",
            id="wrong-secret",
        ),
        pytest.param(
            jwt.encode({"role": "service_role"}, None, algorithm="none"),
            "PGRST301",
            "Wrong or unsupported encoding algorithm",
            id="alg-none",
        ),
        pytest.param("expired", "PGRST303", "JWT expired", id="expired"),
    ],
)
async def test_bad_tokens_are_401(
    http: httpx.AsyncClient,
    make_supabase: Callable[[str], Awaitable[AsyncClient]],
    gateway: PostgrestGateway,
    token: str,
    code: str,
    message: str,
) -> None:
    if token == "expired":
        token = gateway.make_jwt("service_role", exp=int(time.time()) - 3600)
    response = await http.post("/rpc/whoami", headers=auth(token))
    assert response.status_code == 401
    assert response.json() == {"code": code, "message": message, "details": None, "hint": None}
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    client = await make_supabase(token)
    with pytest.raises(APIError) as info:
        await client.rpc("whoami", {}).execute()
    assert (info.value.code, info.value.message) == (code, message)


@pytest.mark.parametrize(
    ("claims", "user"),
    [
        pytest.param({"role": "service_role"}, "service_role", id="service_role"),
        pytest.param({"role": "authenticated"}, "authenticated", id="authenticated"),
        pytest.param({"role": "anon"}, "anon", id="anon"),
        pytest.param({"sub": "user-1"}, "anon", id="no-role-claim"),
    ],
)
async def test_role_switching(
    make_supabase: Callable[[str], Awaitable[AsyncClient]],
    gateway: PostgrestGateway,
    claims: dict[str, Any],
    user: str,
) -> None:
    client = await make_supabase(gateway.make_jwt(**claims))
    result = (await client.rpc("whoami", {}).execute()).data
    assert result["user"] == user
    assert result["claims"] == {**claims, "role": user}


async def test_no_token_is_anon_and_apikey_does_not_authorize(
    http: httpx.AsyncClient, service_key: str
) -> None:
    response = await http.post("/rpc/whoami", headers={"apikey": service_key})
    assert response.json()["user"] == "anon"
    assert response.json()["claims"] == {"role": "anon"}
    response = await http.post(
        "/rpc/whoami", headers={"apikey": service_key, "Authorization": "Bearer bad"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("role", "status", "code"),
    [("ghost", 401, "22023"), ("postgres", 403, "42501")],
    ids=["unknown-role", "role-not-granted"],
)
async def test_roles_the_authenticator_cannot_become(
    http: httpx.AsyncClient, gateway: PostgrestGateway, role: str, status: int, code: str
) -> None:
    response = await http.post("/rpc/whoami", headers=auth(gateway.make_jwt(role)))
    assert response.status_code == status
    assert response.json()["code"] == code


async def test_request_settings_are_visible_to_functions(
    make_supabase: Callable[[str], Awaitable[AsyncClient]], gateway: PostgrestGateway
) -> None:
    token = gateway.make_jwt("authenticated", sub="user-42", email="a@example.com")
    client = await make_supabase(token)
    result = (await client.rpc("whoami", {}).execute()).data
    assert result["claims"] == {"role": "authenticated", "sub": "user-42", "email": "a@example.com"}
    assert result["method"] == "POST"
    assert result["path"] == "/rpc/whoami"
    assert result["search_path"] == '"public"'
    headers = result["headers"]
    assert headers["authorization"] == f"Bearer {token}"
    assert headers["apikey"] == token
    assert headers["content-profile"] == "public"
    assert headers["x-client-info"].startswith("supabase-py/")


async def test_settings_do_not_leak_between_requests(
    http: httpx.AsyncClient, gateway: PostgrestGateway
) -> None:
    # One connection of the pool serves both: the role and claims are transaction-local.
    first = await http.post("/rpc/whoami", headers=auth(gateway.make_jwt("service_role")))
    second = await http.post("/rpc/whoami")
    assert first.json()["user"] == "service_role"
    assert second.json()["user"] == "anon"
    assert second.json()["claims"] == {"role": "anon"}


# --- protocol details -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_other_methods_are_405(http: httpx.AsyncClient, method: str) -> None:
    response = await http.request(method, "/rpc/echo_int", json={"n": 1})
    assert response.status_code == 405
    assert response.json() == {
        "code": "PGRST101",
        "message": f"Cannot use the {method} method on RPC",
        "details": None,
        "hint": None,
    }


async def test_options_lists_the_allowed_methods(http: httpx.AsyncClient) -> None:
    response = await http.options("/rpc/echo_int")
    assert response.status_code == 200
    assert response.headers["allow"] == "OPTIONS,GET,HEAD,POST"


async def test_unknown_schema_profile_is_406(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/rpc/echo_int", json={"n": 1}, headers={"Content-Profile": "private"}
    )
    assert response.status_code == 406
    assert response.json()["code"] == "PGRST106"


async def test_paths_outside_rpc_are_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/items")
    assert response.status_code == 404
    assert set(response.json()) == {"code", "message", "details", "hint"}


# --- test hooks -------------------------------------------------------------------------------


async def test_request_count(gateway: PostgrestGateway, supabase: AsyncClient) -> None:
    assert gateway.request_count == 0
    await supabase.rpc("echo_int", {"n": 1}).execute()
    await supabase.rpc("series", {"n": 2}).execute()
    with pytest.raises(APIError):
        await supabase.rpc("missing", {}).execute()
    assert gateway.request_count == 3
    assert [r.function for r in gateway.requests] == ["echo_int", "series", "missing"]
    assert {r.method for r in gateway.requests} == {"POST"}
    gateway.reset_request_count()
    assert gateway.request_count == 0


async def test_concurrent_requests(gateway: PostgrestGateway, supabase: AsyncClient) -> None:
    results = await asyncio.gather(
        *(supabase.rpc("echo_int", {"n": i}).execute() for i in range(40))
    )
    assert [r.data for r in results] == list(range(40))
    assert gateway.request_count == 40


async def test_delay_comes_before_the_transaction(
    gateway: PostgrestGateway,
    service_key: str,
    admin: psycopg.AsyncConnection[tuple[Any, ...]],
) -> None:
    # A client that waits a tenth of the delay gets no answer; the request still runs to its
    # end afterwards: latency in front of the database, not a failure.
    gateway.delay = 1.0
    async with httpx.AsyncClient(base_url=gateway.rest_url, timeout=0.1) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post(
                "/rpc/insert_item", json={"id": 30, "name": "delayed"}, headers=auth(service_key)
            )
    await asyncio.to_thread(gateway.wait_idle)
    assert "delayed" in await item_names(admin)


async def test_hold_keeps_a_request_until_released(
    gateway: PostgrestGateway,
    supabase: AsyncClient,
    admin: psycopg.AsyncConnection[tuple[Any, ...]],
) -> None:
    hold = gateway.hold_next(function="insert_item")
    held = asyncio.create_task(supabase.rpc("insert_item", {"id": 31, "name": "held"}).execute())
    assert await asyncio.to_thread(hold.wait_started)
    # Other requests go on meanwhile; the held one has not run its transaction yet.
    assert (await supabase.rpc("echo_int", {"n": 7}).execute()).data == 7
    assert "held" not in await item_names(admin)
    assert not held.done()
    hold.release()
    assert (await held).data == 31
    assert "held" in await item_names(admin)


async def test_terminate_before_commit_keeps_nothing(
    gateway: PostgrestGateway,
    supabase: AsyncClient,
    admin: psycopg.AsyncConnection[tuple[Any, ...]],
) -> None:
    gateway.fail_next("terminate_before_commit", function="insert_item")
    with pytest.raises(APIError) as info:
        await supabase.rpc("insert_item", {"id": 32, "name": "terminated"}).execute()
    assert info.value.code == "57P01"
    assert "terminated" not in await item_names(admin)
    # The dead connection left the pool: the next request is served.
    assert (await supabase.rpc("insert_item", {"id": 32, "name": "next"}).execute()).data == 32


async def test_terminate_after_commit_keeps_the_write(
    gateway: PostgrestGateway,
    http: httpx.AsyncClient,
    service_key: str,
    admin: psycopg.AsyncConnection[tuple[Any, ...]],
) -> None:
    gateway.fail_next("terminate_after_commit")
    response = await http.post(
        "/rpc/insert_item", json={"id": 33, "name": "committed"}, headers=auth(service_key)
    )
    assert response.status_code == 503
    assert response.json()["code"] == "57P01"
    assert "committed" in await item_names(admin)


async def test_lose_commit_answer_keeps_the_write(
    gateway: PostgrestGateway,
    http: httpx.AsyncClient,
    service_key: str,
    admin: psycopg.AsyncConnection[tuple[Any, ...]],
) -> None:
    gateway.fail_next("lose_commit_answer", function="insert_item")
    response = await http.post(
        "/rpc/insert_item", json={"id": 34, "name": "answer-lost"}, headers=auth(service_key)
    )
    assert response.status_code == 503
    assert response.json()["code"] == "PGRST001"
    assert "answer-lost" in await item_names(admin)
    # The cut connection left the pool.
    ok = await http.post("/rpc/echo_int", json={"n": 5}, headers=auth(service_key))
    assert ok.json() == 5


async def test_terminated_idle_connections_each_fail_one_request(
    gateway: PostgrestGateway,
    http: httpx.AsyncClient,
    service_key: str,
) -> None:
    await http.post("/rpc/echo_int", json={"n": 1}, headers=auth(service_key))
    dead = gateway.terminate_backends()
    assert dead >= 1
    codes = []
    for _ in range(dead + 1):
        response = await http.post("/rpc/echo_int", json={"n": 2}, headers=auth(service_key))
        codes.append(response.json() if response.status_code == 200 else response.json()["code"])
    assert codes == ["57P01"] * dead + [2]


async def test_an_exhausted_pool_answers_504_after_its_timeout(
    authenticator_dsn: str, service_key: str
) -> None:
    with PostgrestGateway(authenticator_dsn, JWT_SECRET, pool_size=1, pool_timeout=0.05) as small:
        hold = small.hold_next()
        async with httpx.AsyncClient(base_url=small.rest_url, timeout=30) as client:
            held = asyncio.create_task(
                client.post("/rpc/echo_int", json={"n": 1}, headers=auth(service_key))
            )
            assert await asyncio.to_thread(hold.wait_started)
            refused = await client.post("/rpc/echo_int", json={"n": 2}, headers=auth(service_key))
            hold.release()
            served = await held
        assert refused.status_code == 504
        assert refused.json() == {
            "code": "PGRST003",
            "details": None,
            "hint": None,
            "message": "Timed out acquiring connection from connection pool.",
        }
        assert refused.headers["Proxy-Status"] == "PostgREST; error=PGRST003"
        assert served.json() == 1


async def test_drop_before_runs_nothing(
    gateway: PostgrestGateway,
    supabase: AsyncClient,
    admin: psycopg.AsyncConnection[tuple[Any, ...]],
) -> None:
    gateway.fail_next("drop_before", function="insert_item")
    assert (await supabase.rpc("echo_int", {"n": 1}).execute()).data == 1  # not targeted
    with pytest.raises(httpx.RemoteProtocolError):
        await supabase.rpc("insert_item", {"id": 20, "name": "dropped-before"}).execute()
    assert "dropped-before" not in await item_names(admin)
    assert gateway.request_count == 2
    # Only the next matching request was dropped.
    assert (await supabase.rpc("insert_item", {"id": 20, "name": "retried"}).execute()).data == 20


async def test_drop_after_commit_keeps_the_write(
    gateway: PostgrestGateway,
    supabase: AsyncClient,
    admin: psycopg.AsyncConnection[tuple[Any, ...]],
) -> None:
    gateway.fail_next("drop_after_commit")
    with pytest.raises(httpx.RemoteProtocolError):
        await supabase.rpc("insert_item", {"id": 21, "name": "dropped-after"}).execute()
    assert "dropped-after" in await item_names(admin)
    # A blind retry of the write now conflicts: what the backend must be ready for.
    with pytest.raises(APIError) as info:
        await supabase.rpc("insert_item", {"id": 21, "name": "dropped-after"}).execute()
    assert info.value.code == "23505"


async def test_drop_after_a_failed_transaction_keeps_nothing(
    gateway: PostgrestGateway,
    http: httpx.AsyncClient,
    admin: psycopg.AsyncConnection[tuple[Any, ...]],
) -> None:
    gateway.fail_next("drop_after_commit")
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post("/rpc/insert_then_fail", json={"id": 22})
    assert "doomed-22" not in await item_names(admin)


def test_fail_next_rejects_unknown_modes(gateway: PostgrestGateway) -> None:
    with pytest.raises(ValueError, match="unknown failure mode"):
        gateway.fail_next("explode")  # type: ignore[arg-type]


def test_short_secrets_are_refused(authenticator_dsn: str) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        PostgrestGateway(authenticator_dsn, "too-short")
