"""Defence in depth: `frontdesk_commit` itself refuses malformed input (migration 0002).

frontdesk never sends these values (its validation refuses them first), so they are sent
here the way another client would: straight to the SQL function, and through the
Supabase backend with a value changed after the manager's checks would have run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from frontdesk import MergeCapturedData, ValidationError
from frontdesk.storage import Commit, NewSession
from frontdesk.storage.migrations import apply_migrations
from frontdesk.storage.supabase import SupabaseStorage
from frontdesk.testing import TEST_AGENT_ID
from tests.support.gateway import PostgrestGateway
from tests.support.postgres import setup_supabase_roles

JWT_SECRET = "frontdesk-sql-checks-tests-jwt-secret-0123456789"
WORKSPACE = "sql-checks"
_JSON_PARAMETERS = {"p_state", "p_state_ops", "p_turns", "p_mode_allowed_from"}


@pytest.fixture(scope="module")
def database(module_database: str) -> str:
    setup_supabase_roles(module_database)
    apply_migrations(module_database)
    return module_database


@pytest.fixture
def conn(database: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database, autocommit=True) as connection:
        yield connection


@pytest.fixture
def session_id(conn: psycopg.Connection[Any]) -> str:
    new_id = str(uuid.uuid4())
    conn.execute(
        "select public.frontdesk_create_session(%s, %s, %s, %s, %s, %s)",
        (new_id, WORKSPACE, TEST_AGENT_ID, f"conv-{new_id}", "contact", "greeting"),
    )
    return new_id


def _commit(conn: psycopg.Connection[Any], session_id: str, **parameters: Any) -> Any:
    arguments = {"p_workspace_id": WORKSPACE, "p_session_id": session_id, **parameters}
    call = sql.SQL("select public.frontdesk_commit({})").format(
        sql.SQL(", ").join(
            sql.SQL("{} => {}").format(sql.Identifier(name), sql.Placeholder())
            for name in arguments
        )
    )
    values = [
        Jsonb(value) if name in _JSON_PARAMETERS else value for name, value in arguments.items()
    ]
    row = conn.execute(call, values).fetchone()
    assert row is not None
    return row[0]


def _row(conn: psycopg.Connection[Any], session_id: str) -> tuple[Any, ...]:
    row = conn.execute(
        "select version, status, current_mode, state, turn_count, tokens_used, "
        "(select count(*) from public.agent_turns where session_id = s.id) "
        "from public.agent_sessions s where id = %s",
        (session_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _turn(**fields: Any) -> dict[str, Any]:
    return {"role": "user", "content": "hi", **fields}


CASES = [
    ("merge-captured-array", "state_ops[0].data", {"p_state_ops": [{"op": "merge_captured_data", "data": [{}, 1, 2]}]}),
    ("merge-captured-int", "state_ops[0].data['age']", {"p_state_ops": [{"op": "merge_captured_data", "data": {"name": "Ana", "age": 41}}]}),
    ("merge-data-string", "state_ops[1].data", {"p_state_ops": [{"op": "append_intent", "intent": "ok"}, {"op": "merge_data", "data": "x"}]}),
    ("op-unknown", "state_ops[0].op", {"p_state_ops": [{"op": "drop_everything"}]}),
    ("op-missing", "state_ops[0].op", {"p_state_ops": [{"data": {}}]}),
    ("op-not-object", "state_ops[0]", {"p_state_ops": ["append_intent"]}),
    ("ops-not-array", "state_ops", {"p_state_ops": {"op": "merge_data", "data": {}}}),
    ("intent-number", "state_ops[0].intent", {"p_state_ops": [{"op": "append_intent", "intent": 7}]}),
    ("template-missing", "state_ops[0].name", {"p_state_ops": [{"op": "append_template"}]}),
    ("state-array", "state", {"p_state": [], "p_expected_version": 1}),
    ("state-captured-int", "state.captured_data['n']", {"p_state": {"captured_data": {"n": 1}}, "p_expected_version": 1}),
    ("state-data-array", "state.data", {"p_state": {"data": [1]}, "p_expected_version": 1}),
    ("state-templates-int", "state.templates_sent[1]", {"p_state": {"templates_sent": ["a", 1]}, "p_expected_version": 1}),
    ("state-intent-order", "state.intents_seen[0].order", {"p_state": {"intents_seen": [{"intent": "x", "order": 0, "seen_at": "2026-01-01T00:00:00+00:00"}]}, "p_expected_version": 1}),
    ("turns-not-array", "turns", {"p_turns": {"role": "user"}}),
    ("turn-not-object", "turns[0]", {"p_turns": ["hi"]}),
    ("turn-role", "turns[0].role", {"p_turns": [_turn(role="robot")]}),
    ("turn-content-missing", "turns[0].content", {"p_turns": [{"role": "user"}]}),
    ("turn-content-number", "turns[0].content", {"p_turns": [_turn(content=123)]}),
    ("turn-number-zero", "turns[0].turn_number", {"p_turns": [_turn(turn_number=0)]}),
    ("turn-number-fraction", "turns[0].turn_number", {"p_turns": [_turn(turn_number=1.5)]}),
    ("turn-number-string", "turns[0].turn_number", {"p_turns": [_turn(turn_number="1")]}),
    ("turn-number-int64", "turns[0].turn_number", {"p_turns": [_turn(turn_number=2**40)]}),
    ("turn-number-bool", "turns[0].turn_number", {"p_turns": [_turn(turn_number=True)]}),
    ("tokens-negative", "turns[0].tokens_used", {"p_turns": [_turn(tokens_used=-1)]}),
    ("confidence-above-one", "turns[0].confidence", {"p_turns": [_turn(confidence=2)]}),
    ("confidence-string", "turns[0].confidence", {"p_turns": [_turn(confidence="0.5")]}),
    ("intent-detected-number", "turns[0].intent_detected", {"p_turns": [_turn(intent_detected=5)]}),
    ("tools-object", "turns[0].tools_called", {"p_turns": [_turn(tools_called={"name": "x"})]}),
    ("second-turn-bad", "turns[1].role", {"p_turns": [_turn(), _turn(role=None)]}),
    ("expected-version-zero", "expected_version", {"p_expected_version": 0}),
    ("status-unknown", "status", {"p_status": "archived"}),
    ("mode-blank", "current_mode", {"p_current_mode": " "}),
    ("mode-rules-array", "mode_allowed_from", {"p_current_mode": "collecting", "p_mode_allowed_from": []}),
]  # fmt: skip


@pytest.mark.parametrize(("field", "parameters"), [pytest.param(f, p, id=i) for i, f, p in CASES])
def test_malformed_input_is_refused_and_writes_nothing(
    conn: psycopg.Connection[Any], session_id: str, field: str, parameters: dict[str, Any]
) -> None:
    before = _row(conn, session_id)
    with pytest.raises(psycopg.Error) as excinfo:
        _commit(conn, session_id, **parameters)
    diag = excinfo.value.diag
    assert (diag.sqlstate, diag.message_hint) == ("PT422", "frontdesk"), diag.message_primary
    detail = json.loads(diag.message_detail or "{}")
    assert detail["kind"] == "invalid_input"
    assert detail["field"] == field, detail
    assert detail["problem"]
    assert _row(conn, session_id) == before


def test_well_formed_input_still_commits(conn: psycopg.Connection[Any], session_id: str) -> None:
    result = _commit(
        conn,
        session_id,
        p_expected_version=1,
        p_state={"captured_data": {"name": "Ana"}, "data": {"cart": [1]}},
        p_state_ops=[
            {"op": "append_intent", "intent": "greeting"},
            {"op": "append_template", "name": "welcome"},
            {"op": "merge_captured_data", "data": {"city": "Sevilla"}},
            {"op": "merge_data", "data": {"vip": True}},
        ],
        p_turns=[
            _turn(turn_number=1, tokens_used=3, confidence=0.5, intent_detected="greeting"),
            _turn(role="tool", tools_called=[{"name": "lookup", "input": {}, "output": None}]),
        ],
    )
    assert result["session"]["version"] == 2
    assert result["session"]["state"]["captured_data"] == {"name": "Ana", "city": "Sevilla"}
    assert [t["turn_number"] for t in result["turns"]] == [1, 2]


# -- through the Supabase backend --------------------------------------------------------------


@pytest.fixture
async def storage(database: str) -> AsyncIterator[SupabaseStorage]:
    authenticator = setup_supabase_roles(database)
    with PostgrestGateway(authenticator, JWT_SECRET) as gateway:
        storage = await SupabaseStorage.from_env(
            url=gateway.url, key=gateway.make_jwt("service_role")
        )
        yield storage
        await storage.aclose()


async def test_the_backend_raises_the_databases_refusal_as_validation_error(
    storage: SupabaseStorage,
) -> None:
    session, _ = await storage.create_session(
        NewSession(
            id=str(uuid.uuid4()),
            workspace_id=WORKSPACE,
            agent_id=TEST_AGENT_ID,
            conversation_id="through-the-backend",
            contact_id="contact",
            current_mode="greeting",
        )
    )
    op = MergeCapturedData({"name": "Ana"})
    op.data["age"] = 41  # type: ignore[index] - changed in place, after its own checks
    with pytest.raises(ValidationError) as excinfo:
        await storage.commit(WORKSPACE, session.id, Commit(state_ops=(op,)))
    assert excinfo.value.field == "state_ops[0].data['age']"
    assert "must be a string" in excinfo.value.problem
    assert await storage.get_session(WORKSPACE, session.id) == session
