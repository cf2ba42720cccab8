"""What storage stores: sessions, their state document, and turns (frozen attrs values).

Values are immutable: a write returns a new `Session`, it never changes the one you hold.
`SessionState` round-trips through JSON with cattrs, so any backend can keep it as one
document (`state.to_json()` / `SessionState.from_json(...)`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import cattrs
from attrs import field, frozen
from cattrs.v import format_exception

from .errors import ValidationError
from .validation import (
    MAX_INT32,
    check_choice,
    check_datetime,
    check_fraction,
    check_id,
    check_int,
    check_optional_id,
    check_optional_int,
    check_text,
)

__all__ = [
    "MAX_TOKENS_PER_TURN",
    "IntentSeen",
    "NewTurn",
    "Role",
    "Session",
    "SessionState",
    "SessionStatus",
    "ToolCall",
    "Turn",
    "TurnStats",
]

JSON = Any
"""A JSON value: dict, list, str, int, float, bool or None."""


class SessionStatus(enum.StrEnum):
    """A session is active until it is closed or handed off to a human; then it is final."""

    ACTIVE = "active"
    CLOSED = "closed"
    HANDED_OFF = "handed_off"


class Role(enum.StrEnum):
    """Who said a turn."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


def _utc(value: object) -> datetime:
    return check_datetime("timestamp", value)


# Converters naming their field, so that each error says which value was refused.
def _intent(value: object) -> str:
    return check_id("intent", value)


def _order(value: object) -> int:
    return check_int("order", value, minimum=1)


def _seen_at(value: object) -> datetime:
    return check_datetime("seen_at", value)


def _status(value: object) -> SessionStatus:
    return check_choice("status", value, SessionStatus)


def _tool_name(value: object) -> str:
    return check_id("name", value)


def _role(value: object) -> Role:
    return check_choice("role", value, Role)


def _content(value: object) -> str:
    return check_text("content", value)


def _turn_number(value: object) -> int | None:
    return check_optional_int("turn_number", value, minimum=1)


def _intent_detected(value: object) -> str | None:
    return check_optional_id("intent_detected", value)


def _confidence(value: object) -> float | None:
    return check_fraction("confidence", value)


def _tokens_used(value: object) -> int:
    return check_int("tokens_used", value, minimum=0, maximum=MAX_INT32)


@frozen
class IntentSeen:
    """An intent detected in the conversation, with its 1-based order of appearance."""

    intent: str = field(converter=_intent)
    order: int = field(converter=_order)
    seen_at: datetime = field(converter=_seen_at)


def _intents(items: object) -> tuple[IntentSeen, ...]:
    result = tuple(_iterate("intents_seen", items))
    for index, item in enumerate(result):
        if not isinstance(item, IntentSeen):
            raise ValidationError(
                f"intents_seen[{index}]", f"must be an IntentSeen, got {type(item).__name__}"
            )
    return result


def _templates(items: object) -> tuple[str, ...]:
    return tuple(
        check_id(f"templates_sent[{index}]", item)
        for index, item in enumerate(_iterate("templates_sent", items))
    )


def _iterate(name: str, items: object) -> Iterable[Any]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise ValidationError(name, f"must be a list, got {type(items).__name__}")
    return items


def _captured(value: object) -> dict[str, str]:
    # Only the types here, cheaply (states are also built on every read); the characters
    # and the size are checked where a state is handed to storage.
    if not isinstance(value, Mapping):
        raise ValidationError("captured_data", f"must be a mapping, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ValidationError(
                "captured_data", f"maps strings to strings; bad entry {key!r}: {item!r}"
            )
    return dict(value)


def _data(value: object) -> Mapping[str, JSON]:
    if not isinstance(value, Mapping):
        raise ValidationError("data", f"must be a mapping, got {type(value).__name__}")
    return value


@frozen
class SessionState:
    """The state document of a session.

    `intents_seen`, `templates_sent` and `captured_data` are what the engines of the
    original design track; `data` holds anything else an agent needs (JSON values).
    """

    intents_seen: tuple[IntentSeen, ...] = field(default=(), converter=_intents)
    templates_sent: tuple[str, ...] = field(default=(), converter=_templates)
    captured_data: Mapping[str, str] = field(factory=dict, converter=_captured)
    data: Mapping[str, JSON] = field(factory=dict, converter=_data)

    def to_json(self) -> dict[str, JSON]:
        """A JSON-ready dict (timestamps as ISO 8601 strings)."""
        result: dict[str, JSON] = _json.unstructure(self)
        return result

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> SessionState:
        """Rebuild a state from `to_json()` output (missing keys take their defaults).

        A document that is not such output raises `ValidationError` (field `state`) listing
        every problem, each with its path (`state.intents_seen[0].seen_at`).
        """
        if not isinstance(data, Mapping):
            raise ValidationError(
                "state",
                f"must be a mapping made by SessionState.to_json(), got {type(data).__name__}",
                outcome=_NOT_LOADED,
            )
        try:
            return _json.structure(data, cls)
        except cattrs.BaseValidationError as exc:
            problems = cattrs.transform_error(exc, path="state", format_exception=_describe)
            raise ValidationError("state", "; ".join(problems), outcome=_NOT_LOADED) from None


@frozen
class Session:
    """One conversation between a contact and an agent, as stored.

    `version` starts at 1 and grows by exactly 1 with every successful write; pass the
    version you read as `expected_version` to make a write conditional on it.
    `agent_version` is the version of the agent that made the session (or last migrated
    it): its config's `version`, else its distribution's; None if neither is known.
    """

    id: str
    workspace_id: str
    agent_id: str
    conversation_id: str
    contact_id: str
    version: int
    status: SessionStatus = field(converter=_status)
    current_mode: str
    state: SessionState
    created_at: datetime = field(converter=_utc)
    updated_at: datetime = field(converter=_utc)
    last_activity_at: datetime = field(converter=_utc)
    agent_version: str | None = None

    @property
    def is_active(self) -> bool:
        """Whether the session still accepts writes."""
        return self.status == SessionStatus.ACTIVE


MAX_TOKENS_PER_TURN = MAX_INT32
"""The largest `tokens_used` of one turn (a 32-bit column in SQL backends)."""


@frozen
class ToolCall:
    """A tool the agent called during a turn, with its JSON input and output.

    `input` and `output` are checked (plain JSON, depth and size limits) when the turn is
    handed to storage: they may be changed in place until then.
    """

    name: str = field(converter=_tool_name)
    input: JSON = None
    output: JSON = None


def _tool_calls(calls: object) -> tuple[ToolCall, ...]:
    result = tuple(_iterate("tools_called", calls))
    for index, call in enumerate(result):
        if not isinstance(call, ToolCall):
            raise ValidationError(
                f"tools_called[{index}]",
                f"must be a ToolCall(name, input, output), got {type(call).__name__}",
            )
    return result


@frozen
class NewTurn:
    """A turn to record; storage gives it its number (unless one is asked for) and its time.

    A `turn_number` asked for must be the session's next one: a taken number raises
    `TurnNumberConflictError` and nothing is written. Each field is checked when the turn
    is built (`ValidationError` naming it).
    """

    role: Role = field(converter=_role)
    content: str = field(converter=_content)
    turn_number: int | None = field(
        default=None,
        converter=_turn_number,
    )
    intent_detected: str | None = field(default=None, converter=_intent_detected)
    confidence: float | None = field(default=None, converter=_confidence)
    tools_called: tuple[ToolCall, ...] = field(default=(), converter=_tool_calls)
    tokens_used: int = field(
        default=0,
        converter=_tokens_used,
    )


@frozen
class Turn:
    """A recorded turn. Numbers start at 1 and have no gaps within a session.

    `message_id` is the channel's id of the inbound message the turn records (set by
    `SessionManager.receive`), or None for turns written without one.
    """

    session_id: str
    turn_number: int
    role: Role
    content: str
    intent_detected: str | None
    confidence: float | None
    tools_called: tuple[ToolCall, ...]
    tokens_used: int
    created_at: datetime = field(converter=_utc)
    message_id: str | None = None


@frozen
class TurnStats:
    """Totals over a session's turns, computed by the backend."""

    count: int
    tokens_used: int


_NOT_LOADED = "no state was loaded"


def _describe(exc: BaseException, type_: type | None) -> str:
    """One problem of a state document; a field's own check says which field, and why."""
    if isinstance(exc, ValidationError):
        return f"{exc.field} {exc.problem}"
    return format_exception(exc, type_)


def _make_json_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(datetime, lambda d: d.isoformat())
    converter.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    converter.register_structure_hook(Any, lambda v, _: v)
    return converter


_json = _make_json_converter()  # pure: builds hook tables, touches nothing outside
