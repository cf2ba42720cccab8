"""The stored values: JSON round-trips and the checks their constructors make."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from frontdesk import IntentSeen, NewTurn, Role, SessionState, ToolCall, ValidationError
from frontdesk.validation import check_json


def test_state_round_trips_through_json_text() -> None:
    state = SessionState(
        intents_seen=(
            IntentSeen("greeting", 1, datetime(2026, 1, 1, 10, 0, tzinfo=UTC)),
            IntentSeen("compra", 2, datetime(2026, 1, 1, 10, 5, 30, 123456, tzinfo=UTC)),
        ),
        templates_sent=("bienvenida",),
        captured_data={"nombre": "José Ñúñez"},
        data={"cart": [{"sku": "A", "qty": 2}], "vip": True, "note": None},
    )
    text = json.dumps(state.to_json(), ensure_ascii=False)
    assert "José Ñúñez" in text
    assert SessionState.from_json(json.loads(text)) == state


def test_state_from_partial_json_takes_defaults() -> None:
    assert SessionState.from_json({}) == SessionState()
    assert SessionState.from_json({"templates_sent": ["a"]}).templates_sent == ("a",)


@pytest.mark.parametrize(
    ("document", "problems"),
    [
        (None, ["must be a mapping made by SessionState.to_json(), got NoneType"]),
        (["a"], ["must be a mapping made by SessionState.to_json(), got list"]),
        ({"captured_data": 3}, ["expected a mapping @ state.captured_data"]),
        (
            {"intents_seen": [{"intent": "x", "order": 1, "seen_at": "yesterday"}]},
            ["expected datetime @ state.intents_seen[0].seen_at"],
        ),
        (
            {"intents_seen": [{"intent": "x"}]},
            [
                "required field missing @ state.intents_seen[0].order",
                "required field missing @ state.intents_seen[0].seen_at",
            ],
        ),
        ({"templates_sent": [""]}, ["templates_sent[0] must be a non-empty string"]),
    ],
)
def test_a_document_that_is_no_state_is_a_validation_error(
    document: object, problems: list[str]
) -> None:
    with pytest.raises(ValidationError) as caught:
        SessionState.from_json(document)  # type: ignore[arg-type]

    assert caught.value.field == "state"
    for problem in problems:
        assert problem in caught.value.problem
    assert str(caught.value).endswith("; no state was loaded.")


def test_timestamps_are_normalised_to_utc() -> None:
    madrid = timezone(timedelta(hours=1))
    seen = IntentSeen("x", 1, datetime(2026, 1, 1, 11, 0, tzinfo=madrid))
    assert seen.seen_at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert seen.seen_at.tzinfo is UTC


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        IntentSeen("x", 1, datetime(2026, 1, 1))


def test_new_turn_converts_and_checks() -> None:
    turn = NewTurn(role="tool", content="{}", tools_called=[ToolCall("lookup", {"q": 1}, None)])  # type: ignore[arg-type]
    assert turn.role is Role.TOOL
    assert turn.tools_called == (ToolCall("lookup", {"q": 1}, None),)
    for bad in ({"confidence": -0.1}, {"tokens_used": 1.5}, {"tokens_used": True}):
        with pytest.raises(ValidationError, match="must be"):
            NewTurn(role=Role.USER, content="x", **bad)  # type: ignore[arg-type]


def test_state_sequences_are_tuples_and_captured_data_is_text() -> None:
    templates = ["welcome"]
    state = SessionState(templates_sent=templates)  # type: ignore[arg-type]
    templates.append("changed later")
    assert state.templates_sent == ("welcome",)
    with pytest.raises(ValidationError, match="strings to strings"):
        SessionState(captured_data={"n": 1})  # type: ignore[dict-item]


def test_json_keys_must_be_strings() -> None:
    with pytest.raises(ValidationError, match="string keys") as excinfo:
        check_json("data", {"a": {1: "x"}})
    assert excinfo.value.field == "data['a']"
