"""The rules every value must meet before any storage backend sees it.

Every backend stores exactly what the others store, so a value one of them could not
keep (a NUL character, which PostgreSQL `text` and `jsonb` cannot hold; a turn number
beyond a 32-bit column; JSON nested too deep for a recursive decoder) is refused here,
once, at the public boundary, with a `ValidationError` naming the field, what is wrong
and the limit. A refused value never reaches storage, so nothing is written.

The message ends with what the refusal means for the call: `WRITTEN` ("nothing was
written", the default) for a write; a read passes `outcome=READ` ("nothing was read") or
`outcome=LISTED` ("nothing was listed"), so that it never suggests it could have written.

The limits are constants, documented in the README:

- `MAX_ID_LENGTH`: characters in an id or a name (workspace, conversation, contact and
  session ids; modes, intents, template and tool names);
- `MAX_CONTENT_LENGTH`: characters in a turn's content;
- `MAX_JSON_DEPTH`: nesting of a JSON value (`{"a": [1]}` is 2 deep);
- `MAX_JSON_SIZE`: bytes of one JSON value sent in one call, as compact UTF-8 JSON;
- `MAX_INT32`: the largest version, turn number, token count or limit (32-bit columns).

Other code validates a new value by calling the `check_*` function for its kind with the
name the caller knows the value by, and keeping what it returns (some normalise: a
datetime comes back in UTC, a mapping as a dict):

    from frontdesk import validation

    message_id = validation.check_id("message_id", message_id)
    payload = validation.check_json("payload", payload)
    received_at = validation.check_datetime("received_at", received_at)
    session_id = validation.check_id("session_id", session_id, outcome=validation.READ)

Each function raises `ValidationError` and nothing else. The ones a read may use (ids,
text, integers, datetimes, choices) take `outcome=`.
"""

from __future__ import annotations

import enum
import json
import math
import re
import reprlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from .errors import ValidationError

__all__ = [
    "LISTED",
    "MAX_CONTENT_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_INT32",
    "MAX_JSON_DEPTH",
    "MAX_JSON_SIZE",
    "READ",
    "WRITTEN",
    "check_choice",
    "check_datetime",
    "check_fraction",
    "check_id",
    "check_int",
    "check_json",
    "check_json_object",
    "check_optional_id",
    "check_optional_int",
    "check_seconds",
    "check_text",
    "check_text_map",
]

MAX_ID_LENGTH = 256
"""Characters in an id or a name (three ids share one database index entry)."""

MAX_CONTENT_LENGTH = 65_536
"""Characters in a turn's content."""

MAX_JSON_DEPTH = 64
"""How deeply a JSON value may nest: `{}` and `[]` are 1 deep, `{"a": [1]}` is 2."""

MAX_JSON_SIZE = 1_048_576
"""Bytes of one JSON value sent in one call (state, merged data, a turn's tool calls)."""

MAX_INT32 = 2**31 - 1
"""The largest version, turn number, token count or limit: SQL backends keep them in `integer`."""

WRITTEN = "nothing was written"
"""How a refused write's message ends (the default)."""

READ = "nothing was read"
"""How a refused read's message ends (`get_session`, `get_turns`, ...)."""

LISTED = "nothing was listed"
"""How a refused listing's message ends (`list_sessions`)."""

E = TypeVar("E", bound=enum.Enum)

_SURROGATE = re.compile("[\ud800-\udfff]")
_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40


def _describe(value: object) -> str:
    """`int 123`, `str 'aaaa...'`: the type and a short repr, whatever the value's size."""
    return f"{type(value).__name__} {_short.repr(value)}"


def _check_chars(field: str, value: str, outcome: str = WRITTEN) -> None:
    if "\x00" in value:
        raise ValidationError(
            field,
            "contains a NUL character (\\x00), which PostgreSQL text and JSON cannot hold",
            outcome=outcome,
        )
    if not value.isascii() and _SURROGATE.search(value):
        raise ValidationError(
            field, "contains a lone surrogate, which is not valid Unicode", outcome=outcome
        )


def check_text(
    field: str,
    value: object,
    *,
    max_length: int = MAX_CONTENT_LENGTH,
    blank: bool = True,
    outcome: str = WRITTEN,
) -> str:
    """A string of at most `max_length` characters, without NUL or lone surrogates.

    With `blank=False` it must also have a character other than whitespace.
    """
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, got {_describe(value)}", outcome=outcome)
    if len(value) > max_length:
        raise ValidationError(
            field,
            f"is {len(value)} characters long",
            limit=f"{max_length} characters",
            outcome=outcome,
        )
    if not blank and not value.strip():
        raise ValidationError(field, f"must be a non-empty string, got {value!r}", outcome=outcome)
    _check_chars(field, value, outcome)
    return value


def check_id(field: str, value: object, *, outcome: str = WRITTEN) -> str:
    """An id or a name: a non-blank string of at most `MAX_ID_LENGTH` characters."""
    return check_text(field, value, max_length=MAX_ID_LENGTH, blank=False, outcome=outcome)


def check_optional_id(field: str, value: object, *, outcome: str = WRITTEN) -> str | None:
    """None, or what `check_id` accepts."""
    return None if value is None else check_id(field, value, outcome=outcome)


def check_int(
    field: str, value: object, *, minimum: int, maximum: int = MAX_INT32, outcome: str = WRITTEN
) -> int:
    """An integer from `minimum` to `maximum`. A bool is not an integer here, nor is 1.0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, got {_describe(value)}", outcome=outcome)
    if not minimum <= value <= maximum:
        raise ValidationError(
            field,
            f"must be from {minimum} to {maximum}, got {_short.repr(value)}",
            limit=f"{minimum}..{maximum}",
            outcome=outcome,
        )
    return int(value)


def check_optional_int(
    field: str, value: object, *, minimum: int, maximum: int = MAX_INT32, outcome: str = WRITTEN
) -> int | None:
    """None, or what `check_int` accepts."""
    if value is None:
        return None
    return check_int(field, value, minimum=minimum, maximum=maximum, outcome=outcome)


def check_fraction(field: str, value: object) -> float | None:
    """None, or a finite number from 0 to 1 (a confidence), returned as a float."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, f"must be a number from 0 to 1, got {_describe(value)}")
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValidationError(field, f"must be from 0 to 1, got {value!r}", limit="0..1")
    return float(value)


def check_seconds(
    field: str, value: object, *, positive: bool = True, outcome: str = WRITTEN
) -> float:
    """A finite number of seconds, > 0 (or >= 0 with `positive=False`), returned as a float."""
    wanted = "> 0" if positive else ">= 0"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not (value > 0 if positive else value >= 0)
    ):
        raise ValidationError(
            field,
            f"must be a number of seconds {wanted}, got {_short.repr(value)}",
            outcome=outcome,
        )
    return float(value)


def check_datetime(field: str, value: object, *, outcome: str = WRITTEN) -> datetime:
    """A timezone-aware datetime, returned in UTC."""
    if not isinstance(value, datetime):
        raise ValidationError(field, f"must be a datetime, got {_describe(value)}", outcome=outcome)
    if value.utcoffset() is None:
        raise ValidationError(
            field,
            "must be timezone-aware (use datetime.now(UTC)), got a naive datetime",
            outcome=outcome,
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(
            field, f"is out of range in UTC: {value.isoformat()}", outcome=outcome
        ) from None


def check_choice(field: str, value: object, choices: type[E], *, outcome: str = WRITTEN) -> E:
    """A member of the enum `choices`, given as a member or as its value."""
    try:
        return choices(value)
    except (ValueError, TypeError):
        valid = ", ".join(str(member.value) for member in choices)
        raise ValidationError(
            field, f"must be one of {valid}; got {_short.repr(value)}", outcome=outcome
        ) from None


def check_json(
    field: str, value: object, *, max_depth: int = MAX_JSON_DEPTH, max_size: int = MAX_JSON_SIZE
) -> Any:
    """Plain JSON data every backend stores alike, returned unchanged.

    Dicts with string keys, lists (or tuples), strings, finite numbers, booleans and
    None; nested at most `max_depth` deep and at most `max_size` bytes as compact UTF-8
    JSON; no NUL and no lone surrogate in any string or key.
    """
    if not _plain(value, max_depth):
        _walk(field, value, max_depth)  # finds what is wrong, and where, or accepts subclasses
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:  # e.g. an integer too long to print
        raise ValidationError(field, f"is not plain JSON data: {exc}") from None
    size = len(text.encode("utf-8"))
    if size > max_size:
        raise ValidationError(field, f"is {size} bytes as JSON", limit=f"{max_size} bytes")
    return value


def check_json_object(
    field: str, value: object, *, max_depth: int = MAX_JSON_DEPTH, max_size: int = MAX_JSON_SIZE
) -> dict[str, Any]:
    """What `check_json` accepts, and a mapping at the top: returned as a (shallow) dict."""
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"must be a mapping, got {_describe(value)}")
    result = dict(value)
    check_json(field, result, max_depth=max_depth, max_size=max_size)
    return result


def check_text_map(field: str, value: object, *, max_size: int = MAX_JSON_SIZE) -> dict[str, str]:
    """A mapping of strings to strings (captured data), returned as a dict."""
    if not isinstance(value, Mapping):
        raise ValidationError(
            field, f"must be a mapping of strings to strings, got {_describe(value)}"
        )
    result = dict(value)
    for key, item in result.items():
        if not isinstance(key, str):
            raise ValidationError(field, f"maps strings to strings; a key is {_describe(key)}")
        if not isinstance(item, str):
            raise ValidationError(f"{field}[{key!r}]", f"must be a string, got {_describe(item)}")
    check_json(field, result, max_size=max_size)
    return result


def _plain(value: object, max_depth: int) -> bool:
    """Whether `value` is plain JSON of exact builtin types: the fast path, keeping no paths."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        kind = type(item)
        if kind is str:
            if "\x00" in item or (not item.isascii() and _SURROGATE.search(item)):
                return False
        elif kind is dict:
            if depth >= max_depth:
                return False
            for key, child in item.items():
                if type(key) is not str or "\x00" in key:
                    return False
                if not key.isascii() and _SURROGATE.search(key):
                    return False
                push((child, depth + 1))
        elif kind is list or kind is tuple:
            if depth >= max_depth:
                return False
            for child in item:
                push((child, depth + 1))
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif not (item is None or kind is int or kind is bool):
            return False
    return True


def _walk(field: str, value: object, max_depth: int) -> None:
    """Check types, keys, strings and depth without recursion (deep input cannot crash it)."""
    stack: list[tuple[object, int, tuple[object, ...]]] = [(value, 0, ())]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            _check_chars(_path(field, path), item)
        elif item is None or isinstance(item, bool | int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(
                    _path(field, path), f"must be a finite number (JSON has no {item!r})"
                )
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise ValidationError(
                    _path(field, path),
                    f"nests deeper than {max_depth} levels",
                    limit=f"{max_depth} levels",
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise ValidationError(
                            _path(field, path), f"must have string keys, not {_describe(key)}"
                        )
                    _check_chars(_path(field, (*path, key)), key)
                    stack.append((child, depth + 1, (*path, key)))
            else:
                stack.extend((child, depth + 1, (*path, i)) for i, child in enumerate(item))
        else:
            raise ValidationError(_path(field, path), f"must be JSON data, got {_describe(item)}")


def _path(field: str, path: tuple[object, ...]) -> str:
    return field + "".join(f"[{key!r}]" for key in path)
