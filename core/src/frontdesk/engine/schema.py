"""The JSON answers the engine asks models for: their schemas, and a checker for them.

The checker covers the part of JSON Schema these schemas (and tools' parameter schemas)
use: `type`, `properties`, `required`, `additionalProperties: false`, `items`, `enum`,
`minimum`, `maximum` and `minLength`; other keywords are ignored. It reports every
problem at once, each with its JSON path, so that one repair request can name them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CLARIFY_SCHEMA",
    "INTENT_SCHEMA",
    "ORCHESTRATOR_SCHEMA",
    "check",
    "parse_json",
]

INTENT_SCHEMA: Mapping[str, Any] = {
    "title": "intent",
    "type": "object",
    "properties": {
        "intent": {"type": "string", "minLength": 1},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        },
    },
    "required": ["intent", "confidence"],
}

ORCHESTRATOR_SCHEMA: Mapping[str, Any] = {
    "title": "orchestrator",
    "type": "object",
    "properties": {
        "reply": {"type": "string"},
        "next_mode": {"type": "string", "minLength": 1},
        "captured_data": {"type": "object", "additionalProperties": {"type": "string"}},
        "tool_calls": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "arguments": {"type": "object"},
                },
                "required": ["name"],
            },
        },
    },
    "required": ["reply", "next_mode"],
}

CLARIFY_SCHEMA: Mapping[str, Any] = {
    "title": "clarify",
    "type": "object",
    "properties": {"reply": {"type": "string", "minLength": 1}},
    "required": ["reply"],
}

_TYPES: Mapping[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}

_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


def parse_json(text: str) -> tuple[Any, list[str]]:
    """The JSON value in a model's text, tolerating a code fence around it.

    Returns the value and no problems, or None and what is wrong.
    """
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        return json.loads(stripped), []
    except ValueError:
        pass
    # Some models put a sentence before or after the object: take the outermost braces.
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        try:
            return json.loads(stripped[start : end + 1]), []
        except ValueError:
            pass
    preview = stripped[:80] + ("..." if len(stripped) > 80 else "")
    return None, [f"the answer is not a JSON object: {preview!r}"]


def check(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Every way `value` breaks `schema` (empty when it matches)."""
    problems: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        names: Sequence[str] = [expected] if isinstance(expected, str) else expected
        if not any(_is(value, name) for name in names):
            problems.append(f"{path} must be {' or '.join(names)}, got {_kind(value)}")
            return problems
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(json.dumps(choice) for choice in schema["enum"])
        problems.append(f"{path} must be one of {choices}, got {json.dumps(value)}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        problems.append(f"{path} must not be empty")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path} must be >= {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path} must be <= {schema['maximum']}, got {value}")
    if isinstance(value, dict):
        problems.extend(_check_object(value, schema, path))
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            problems.extend(check(item, schema["items"], f"{path}[{index}]"))
    return problems


def _check_object(value: dict[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    problems = [
        f"{path}.{name} is required" for name in schema.get("required", ()) if name not in value
    ]
    properties: Mapping[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            problems.extend(check(item, properties[name], f"{path}.{name}"))
        elif extra is False:
            problems.append(f"{path}.{name} is not allowed")
        elif isinstance(extra, Mapping):
            problems.extend(check(item, extra, f"{path}.{name}"))
    return problems


def _is(value: Any, name: str) -> bool:
    if name in ("number", "integer") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, ()))


def _kind(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is(value, name):
            return name
    return type(value).__name__
