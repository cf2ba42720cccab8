"""Storage contract clauses on bad input: refused alike by every backend, and nothing written.

Each case hands the public API a value some backend could not store (a NUL character, a
lone surrogate, an over-long id, JSON nested too deep, a bool where an integer belongs, a
naive datetime, ...). Every backend must refuse it with the same `ValidationError`, naming
the same field, and the session must be exactly as it was: same version, no turns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from attrs import frozen

from ...errors import InvalidTransitionError, ValidationError
from ...models import NewTurn, Role, Session, SessionState, ToolCall
from ...sessions import SessionChange, SessionManager
from ...storage.base import AppendIntent, MergeCapturedData, MergeData, StorageBackend
from ...validation import (
    MAX_CONTENT_LENGTH,
    MAX_ID_LENGTH,
    MAX_INT32,
    MAX_JSON_DEPTH,
    MAX_JSON_SIZE,
)
from ..agents import TEST_AGENT_ID
from ._base import ContractBase

Call = Callable[[SessionManager, Session], Awaitable[Any]]

NUL = "nul\x00byte"
SURROGATE = "lone\udcffsurrogate"
LONG_ID = "x" * (MAX_ID_LENGTH + 1)
TEN_KB = "k" * 10_240
NOT_A_STATE: Any = {"data": {}}
NOT_A_CHANGE: Any = {"turns": []}
NAIVE = datetime(2026, 1, 1, 12, 0)  # naive on purpose: it must be refused


def _deep(depth: int) -> Any:
    """A string inside `depth` nested lists: JSON `depth` levels deep."""
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def _mutated_captured() -> MergeCapturedData:
    """An operation made valid, then changed in place: the boundary must still see it."""
    op = MergeCapturedData({"name": "Ana"})
    op.data["age"] = 41  # type: ignore[index]
    return op


@frozen
class BadInput:
    """One bad value: where it goes, and the field the `ValidationError` must name."""

    id: str
    field: str
    call: Call


def _each(call: Callable[[SessionManager, Session, Any], Awaitable[Any]], value: Any) -> Call:
    return lambda m, s: call(m, s, value)


def _case(case_id: str, field: str, call: Call) -> Any:
    return pytest.param(BadInput(case_id, field, call), id=case_id)


def _create(**overrides: Any) -> Call:
    arguments: dict[str, Any] = {
        "agent_id": TEST_AGENT_ID,
        "conversation_id": "bad-input-create",
        "contact_id": "contact-1",
        **overrides,
    }
    return lambda m, s: m.create_session(**arguments)


def _get_or_create(**overrides: Any) -> Call:
    arguments: dict[str, Any] = {
        "agent_id": TEST_AGENT_ID,
        "conversation_id": "bad-input-create",
        "contact_id": "contact-1",
        **overrides,
    }
    return lambda m, s: m.get_or_create_session(**arguments)


def _turn(**overrides: Any) -> Call:
    arguments: dict[str, Any] = {"role": "user", "content": "hi", **overrides}
    return lambda m, s: m.add_turn(s.id, **arguments)


def _commit(change: Callable[[], SessionChange], version: Any = 1) -> Call:
    return lambda m, s: m.commit(s.id, change(), expected_version=version)


def _move(version: Any = 1, **fields: Any) -> Call:
    return lambda m, s: m.update_session_with_version(s.id, expected_version=version, **fields)


async def _in_workspace(workspace_id: Any, m: SessionManager) -> Any:
    SessionManager(m.storage, workspace_id=workspace_id, registry=m.registry)


_NOT_INTEGERS = [("str", "1"), ("bool", True), ("float", 1.0), ("nan", float("nan"))]
_OUT_OF_RANGE = [("zero", 0), ("negative", -1), ("int64", 2**40), ("int32-plus-1", MAX_INT32 + 1)]

CASES = [
    # -- ids and names -----------------------------------------------------------------------
    *(
        _case(
            f"workspace-{name}", "workspace_id", _each(lambda m, s, v: _in_workspace(v, m), value)
        )
        for name, value in [
            ("nul", NUL),
            ("surrogate", SURROGATE),
            ("10kb", TEN_KB),
            ("none", None),
        ]
    ),
    *(
        _case(f"create-{field}-{name}", field, _create(**{field: value}))
        for field in ("conversation_id", "contact_id")
        for name, value in [
            ("nul", NUL),
            ("surrogate", SURROGATE),
            ("10kb", TEN_KB),
            ("too-long", LONG_ID),
            ("empty", ""),
            ("none", None),
            ("int", 123),
        ]
    ),
    _case("create-agent-id-int", "agent_id", _create(agent_id=7)),
    _case("create-initial-mode-nul", "initial_mode", _create(initial_mode=NUL)),
    _case("get-or-create-conversation-nul", "conversation_id", _get_or_create(conversation_id=NUL)),
    _case("get-or-create-contact-surrogate", "contact_id", _get_or_create(contact_id=SURROGATE)),
    _case(
        "create-initial-state-deep",
        "initial_state.data",
        _create(initial_state=SessionState(data={"deep": _deep(500)})),
    ),
    _case(
        "create-initial-state-nul",
        "initial_state.captured_data",
        _create(initial_state=SessionState(captured_data={"name": NUL})),
    ),
    _case("create-initial-state-dict", "initial_state", _create(initial_state={"data": {}})),
    _case(
        "find-conversation-nul",
        "conversation_id",
        lambda m, s: m.get_session_by_conversation(NUL, TEST_AGENT_ID),
    ),
    _case(
        "find-agent-10kb",
        "agent_id",
        lambda m, s: m.get_session_by_conversation("conv-1", TEN_KB),
    ),
    *(
        _case(f"session-id-{name}", "session_id", _each(lambda m, s, v: m.get_session(v), value))
        for name, value in [("nul", NUL), ("surrogate", SURROGATE), ("10kb", TEN_KB), ("int", 5)]
    ),
    _case(
        "add-turn-session-id-nul",
        "session_id",
        lambda m, s: m.add_turn(s.id + "\x00", role="user", content="hi"),
    ),
    # -- turns -------------------------------------------------------------------------------
    *(
        _case(f"content-{name}", "content", _turn(content=value))
        for name, value in [
            ("none", None),
            ("int", 123),
            ("nul", NUL),
            ("surrogate", SURROGATE),
            ("too-long", "c" * (MAX_CONTENT_LENGTH + 1)),
        ]
    ),
    *(
        _case(f"role-{name}", "role", _turn(role=value))
        for name, value in [("unknown", "robot"), ("none", None), ("int", 1)]
    ),
    *(
        _case(f"intent-detected-{name}", "intent_detected", _turn(intent_detected=value))
        for name, value in [("nul", NUL), ("surrogate", SURROGATE), ("too-long", LONG_ID)]
    ),
    *(
        _case(f"confidence-{name}", "confidence", _turn(confidence=value))
        for name, value in [
            ("bool", True),
            ("str", "0.5"),
            ("nan", float("nan")),
            ("above-one", 1.5),
            ("negative", -0.1),
        ]
    ),
    *(
        _case(f"turn-number-{name}", "turn_number", _turn(turn_number=value))
        for name, value in [*_NOT_INTEGERS, *_OUT_OF_RANGE]
    ),
    *(
        _case(f"tokens-used-{name}", "tokens_used", _turn(tokens_used=value))
        for name, value in [
            ("negative", -1),
            ("int32-plus-1", MAX_INT32 + 1),
            ("bool", True),
            ("float", 1.5),
        ]
    ),
    _case("tools-called-dict", "tools_called[0]", _turn(tools_called=[{"name": "lookup"}])),
    _case("tools-called-none", "tools_called", _turn(tools_called=None)),
    _case(
        "tool-name-nul",
        "name",
        lambda m, s: m.add_turn(s.id, role="tool", content="x", tools_called=[ToolCall(NUL)]),
    ),
    _case(
        "tool-input-deep",
        "tools_called[0].input",
        _turn(tools_called=[ToolCall("lookup", input=_deep(900))]),
    ),
    _case(
        "tool-output-nan",
        "tools_called[0].output",
        _turn(tools_called=[ToolCall("lookup", output={"score": float("nan")})]),
    ),
    _case(
        "tool-input-set",
        "tools_called[0].input",
        _turn(tools_called=[ToolCall("lookup", input={"ids": {1, 2}})]),
    ),
    # -- state helpers -----------------------------------------------------------------------
    *(
        _case(f"intent-{name}", "intent", _each(lambda m, s, v: m.add_intent_seen(s.id, v), value))
        for name, value in [("nul", NUL), ("empty", ""), ("too-long", LONG_ID), ("none", None)]
    ),
    _case(
        "template-surrogate",
        "template_name",
        lambda m, s: m.add_template_sent(s.id, SURROGATE),
    ),
    *(
        _case(
            f"captured-{name}", field, _each(lambda m, s, v: m.update_captured_data(s.id, v), value)
        )
        for name, field, value in [
            ("int-value", "data['age']", {"age": 41}),
            ("nul-value", "data['name']", {"name": NUL}),
            ("nul-key", "data['a\\x00']", {"a\x00": "x"}),
            ("list", "data", ["name", "Ana"]),
        ]
    ),
    *(
        _case(f"data-{name}", "data", _each(lambda m, s, v: m.update_data(s.id, v), value))
        for name, value in [
            ("depth-500", {"deep": _deep(500)}),
            ("depth-900", {"deep": _deep(900)}),
            ("depth-1200", {"deep": _deep(1200)}),
            ("depth-limit-plus-1", {"deep": _deep(MAX_JSON_DEPTH)}),
            ("too-big", {"blob": "b" * MAX_JSON_SIZE}),
            ("nan", {"x": float("nan")}),
            ("infinity", {"x": [float("inf")]}),
            ("int-key", {"x": {1: "one"}}),
            ("object", {"x": object()}),
            ("nul-string", {"x": ["ok", NUL]}),
            ("surrogate-key", {SURROGATE: 1}),
            ("array", [1, 2]),
            ("none", None),
        ]
    ),
    # -- versions, fields and commits --------------------------------------------------------
    *(
        _case(
            f"expected-version-{name}", "expected_version", _move(value, current_mode="collecting")
        )
        for name, value in [*_NOT_INTEGERS, *_OUT_OF_RANGE, ("none", None)]
    ),
    *(
        _case(
            f"close-version-{name}",
            "expected_version",
            _each(lambda m, s, v: m.close_session(s.id, expected_version=v), value),
        )
        for name, value in [("str", "1"), ("bool", True), ("zero", 0)]
    ),
    *(
        _case(
            f"update-state-version-{name}",
            "expected_version",
            _each(lambda m, s, v: m.update_state(s.id, SessionState(), expected_version=v), value),
        )
        for name, value in [("float", 1.0), ("int64", 2**40), ("none", None)]
    ),
    *(
        _case(f"commit-version-{name}", "expected_version", _commit(SessionChange, value))
        for name, value in [("bool", True), ("negative", -1), ("str", "1")]
    ),
    _case(
        "update-state-not-a-state",
        "state",
        lambda m, s: m.update_state(s.id, NOT_A_STATE, expected_version=1),
    ),
    _case(
        "update-state-nan",
        "state.data",
        lambda m, s: m.update_state(
            s.id, SessionState(data={"x": float("nan")}), expected_version=1
        ),
    ),
    _case(
        "update-state-deep",
        "state.data",
        lambda m, s: m.update_state(
            s.id, SessionState(data={"d": _deep(1200)}), expected_version=1
        ),
    ),
    _case(
        "update-state-template-nul",
        "templates_sent[0]",
        lambda m, s: m.update_state(s.id, SessionState(templates_sent=(NUL,)), expected_version=1),
    ),
    _case("mode-nul", "current_mode", _move(current_mode=NUL)),
    _case("mode-10kb", "current_mode", _move(current_mode=TEN_KB)),
    _case("mode-int", "current_mode", _move(current_mode=3)),
    _case("status-unknown", "status", _move(status="archived")),
    _case("last-activity-naive", "last_activity_at", _move(last_activity_at=NAIVE)),
    _case("last-activity-str", "last_activity_at", _move(last_activity_at="2026-01-01T00:00:00Z")),
    _case(
        "commit-not-a-change",
        "change",
        lambda m, s: m.commit(s.id, NOT_A_CHANGE, expected_version=1),
    ),
    _case("commit-turn-dict", "turns[0]", _commit(lambda: SessionChange(turns=[{"role": "user"}]))),
    _case("commit-op-str", "state_ops[0]", _commit(lambda: SessionChange(state_ops=["greeting"]))),
    _case(
        "commit-turn-content",
        "content",
        _commit(lambda: SessionChange(turns=[NewTurn(role=Role.USER, content=NUL)])),
    ),
    _case(
        "commit-merge-deep",
        "state_ops[1].data",
        _commit(
            lambda: SessionChange(
                state_ops=[AppendIntent("fine"), MergeData({"d": _deep(MAX_JSON_DEPTH + 5)})]
            )
        ),
    ),
    _case(
        "commit-captured-changed-in-place",
        "state_ops[0].data['age']",
        _commit(lambda: SessionChange(state_ops=[_mutated_captured()])),
    ),
    _case(
        "commit-tool-output-deep",
        "turns[1].tools_called[0].output",
        _commit(
            lambda: SessionChange(
                turns=[
                    NewTurn(role=Role.USER, content="fine"),
                    NewTurn(
                        role=Role.TOOL,
                        content="x",
                        tools_called=[ToolCall("lookup", output=_deep(600))],
                    ),
                ]
            )
        ),
    ),
    _case(
        "commit-state-without-version",
        "expected_version",
        _commit(lambda: SessionChange(state=SessionState()), None),
    ),
    # -- reads -------------------------------------------------------------------------------
    *(
        _case(f"limit-{name}", "limit", _each(lambda m, s, v: m.get_turns(s.id, limit=v), value))
        for name, value in [("negative", -1), ("bool", True), ("int64", 2**40), ("str", "5")]
    ),
]


class BadInputContract(ContractBase):
    """Bad input: refused alike by every backend, with the same field, and nothing written."""

    # -- bad input ---------------------------------------------------------------------------

    @pytest.mark.parametrize("case", CASES)
    async def test_bad_input_is_refused_and_writes_nothing(
        self, manager: SessionManager, session: Session, case: BadInput
    ) -> None:
        before = await manager.get_session(session.id)
        with pytest.raises(ValidationError) as excinfo:
            await case.call(manager, session)
        error = excinfo.value
        assert error.field == case.field or error.field.startswith(
            (f"{case.field}[", f"{case.field}.")
        ), f"{case.id}: the error names {error.field!r}, not {case.field!r}: {error}"
        assert isinstance(error, ValueError)
        assert await manager.get_session(session.id) == before
        assert await manager.get_turn_count(session.id) == 0
        assert await manager.get_session_by_conversation("bad-input-create", TEST_AGENT_ID) is None

    async def test_unknown_mode_does_not_exist_in_the_agent(
        self, manager: SessionManager, session: Session
    ) -> None:
        with pytest.raises(InvalidTransitionError) as excinfo:
            await manager.update_session_with_version(
                session.id, expected_version=1, current_mode="undeclared"
            )
        error = excinfo.value
        assert error.modes == ("greeting", "collecting", "confirming", "done")
        assert "has no mode 'undeclared'" in str(error)
        assert "greeting, collecting, confirming, done" in str(error)
        with pytest.raises(InvalidTransitionError, match="has no mode 'nope'"):
            await manager.create_session(
                agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u", initial_mode="nope"
            )
        assert await manager.get_session(session.id) == session

    async def test_status_and_role_errors_list_the_valid_values(
        self, manager: SessionManager, session: Session
    ) -> None:
        with pytest.raises(ValidationError, match="one of active, closed, handed_off"):
            await manager.update_session_with_version(
                session.id, expected_version=1, status="archived"
            )
        with pytest.raises(ValidationError, match="one of user, assistant, system, tool"):
            await manager.add_turn(session.id, role="robot", content="x")
        assert await manager.get_session(session.id) == session

    async def test_values_at_the_limits_are_stored_alike(
        self, manager: SessionManager, storage: StorageBackend, session: Session
    ) -> None:
        """The largest accepted values round-trip on every backend."""
        long_id = "i" * MAX_ID_LENGTH
        wide_id = "🚀" * MAX_ID_LENGTH  # four bytes each in UTF-8
        other = SessionManager(storage, workspace_id=wide_id, registry=manager.registry)
        created = await other.create_session(
            agent_id=TEST_AGENT_ID, conversation_id=wide_id, contact_id=wide_id
        )
        assert await other.get_session_by_conversation(wide_id, TEST_AGENT_ID) == created
        deepest = _deep(MAX_JSON_DEPTH - 1)  # under "d": exactly MAX_JSON_DEPTH deep
        written = await manager.update_data(session.id, {"d": deepest})
        assert written.state.data == {"d": deepest}
        turn = await manager.add_turn(
            session.id,
            role="user",
            content="c" * MAX_CONTENT_LENGTH,
            turn_number=1,
            tokens_used=MAX_INT32,
            confidence=1,
            intent_detected=long_id,
        )
        assert (turn.turn_number, turn.tokens_used, turn.confidence) == (1, MAX_INT32, 1.0)
        assert isinstance(turn.confidence, float)  # 1 given, a float stored, on every backend
        assert isinstance((await manager.get_turns(session.id))[0].confidence, float)
        assert list(await manager.get_turns(session.id, limit=MAX_INT32)) == [turn]
        assert await manager.get_total_tokens_used(session.id) == MAX_INT32
