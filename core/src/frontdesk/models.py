"""What storage stores: sessions, their state document, and turns (frozen attrs values).

Values are immutable: a write returns a new `Session`, it never changes the one you hold.
`SessionState` round-trips through JSON with cattrs, so any backend can keep it as one
document (`state.to_json()` / `SessionState.from_json(...)`).
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import cattrs
from attrs import field, frozen

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
    "check_portable",
    "check_text_map",
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


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (use datetime.now(UTC))")
    return value.astimezone(UTC)


@frozen
class IntentSeen:
    """An intent detected in the conversation, with its 1-based order of appearance."""

    intent: str
    order: int
    seen_at: datetime = field(converter=_utc)


def _intents(items: Iterable[IntentSeen]) -> tuple[IntentSeen, ...]:
    return tuple(items)


def _strings(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def check_text_map(value: Mapping[str, str], what: str) -> None:
    """Refuse a mapping that is not strings to strings (captured data is text)."""
    bad = [
        key for key, item in value.items() if not isinstance(key, str) or not isinstance(item, str)
    ]
    if bad:
        raise ValueError(f"{what} maps strings to strings; bad keys: {bad!r}")


@frozen
class SessionState:
    """The state document of a session.

    `intents_seen`, `templates_sent` and `captured_data` are what the engines of the
    original design track; `data` holds anything else an agent needs (JSON values).
    """

    intents_seen: tuple[IntentSeen, ...] = field(default=(), converter=_intents)
    templates_sent: tuple[str, ...] = field(default=(), converter=_strings)
    captured_data: Mapping[str, str] = field(
        factory=dict, validator=lambda _, __, value: check_text_map(value, "captured_data")
    )
    data: Mapping[str, JSON] = field(factory=dict)

    def to_json(self) -> dict[str, JSON]:
        """A JSON-ready dict (timestamps as ISO 8601 strings)."""
        result: dict[str, JSON] = _json.unstructure(self)
        return result

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> SessionState:
        """Rebuild a state from `to_json()` output (missing keys take their defaults)."""
        return _json.structure(data, cls)


@frozen
class Session:
    """One conversation between a contact and an agent, as stored.

    `version` starts at 1 and grows by exactly 1 with every successful write; pass the
    version you read as `expected_version` to make a write conditional on it.
    """

    id: str
    workspace_id: str
    agent_id: str
    conversation_id: str
    contact_id: str
    version: int
    status: SessionStatus = field(converter=SessionStatus)
    current_mode: str
    state: SessionState
    created_at: datetime = field(converter=_utc)
    updated_at: datetime = field(converter=_utc)
    last_activity_at: datetime = field(converter=_utc)

    @property
    def is_active(self) -> bool:
        """Whether the session still accepts writes."""
        return self.status == SessionStatus.ACTIVE


def _confidence(_: object, attribute: Any, value: float | None) -> None:
    if value is not None and not (0.0 <= value <= 1.0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be between 0 and 1 or None, got {value!r}")


MAX_TOKENS_PER_TURN = 2**31 - 1
"""The largest `tokens_used` of one turn (a 32-bit column in SQL backends)."""


def _tokens(_: object, attribute: Any, value: int) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_TOKENS_PER_TURN
    ):
        raise ValueError(
            f"{attribute.name} must be an integer from 0 to {MAX_TOKENS_PER_TURN}, got {value!r}"
        )


def check_portable(value: JSON, what: str) -> None:
    """Refuse what some backend could not store: non-JSON values, NaN, NUL, lone surrogates.

    Every backend stores the same documents, so the rules are checked before any write,
    not discovered later as one backend's error.
    """
    _check_keys(value, what)
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be plain JSON data (no NaN or infinity): {exc}") from None
    if "\\u0000" in text:
        raise ValueError(f"{what} must not contain NUL characters (\\x00)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must be valid Unicode (it has a lone surrogate)") from None


def _check_keys(value: JSON, what: str) -> None:
    # json.dumps would turn 1 into "1" silently: one backend would keep 1, another "1".
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{what} must have string keys, not {key!r}")
            _check_keys(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_keys(item, what)


def _portable(_: object, attribute: Any, value: JSON) -> None:
    check_portable(value, attribute.name)


@frozen
class ToolCall:
    """A tool the agent called during a turn, with its JSON input and output."""

    name: str
    input: JSON = None
    output: JSON = None


def _tool_calls(calls: Iterable[ToolCall]) -> tuple[ToolCall, ...]:
    return tuple(calls)


def _portable_calls(_: object, attribute: Any, calls: tuple[ToolCall, ...]) -> None:
    check_portable([[call.name, call.input, call.output] for call in calls], attribute.name)


@frozen
class NewTurn:
    """A turn to record; storage gives it its number (unless one is asked for) and its time.

    A `turn_number` asked for must be the session's next one: a taken number raises
    `TurnNumberConflictError` and nothing is written.
    """

    role: Role = field(converter=Role)
    content: str = field(validator=_portable)
    turn_number: int | None = None
    intent_detected: str | None = None
    confidence: float | None = field(default=None, validator=_confidence)
    tools_called: tuple[ToolCall, ...] = field(
        default=(), converter=_tool_calls, validator=_portable_calls
    )
    tokens_used: int = field(default=0, validator=_tokens)


@frozen
class Turn:
    """A recorded turn. Numbers start at 1 and have no gaps within a session."""

    session_id: str
    turn_number: int
    role: Role
    content: str
    intent_detected: str | None
    confidence: float | None
    tools_called: tuple[ToolCall, ...]
    tokens_used: int
    created_at: datetime = field(converter=_utc)


@frozen
class TurnStats:
    """Totals over a session's turns, computed by the backend."""

    count: int
    tokens_used: int


def _make_json_converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(datetime, lambda d: d.isoformat())
    converter.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    converter.register_structure_hook(Any, lambda v, _: v)
    return converter


_json = _make_json_converter()  # pure: builds hook tables, touches nothing outside
