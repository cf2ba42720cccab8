"""`Tool` refuses a field no engine could use, naming it, when the tool is built."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from frontdesk import Tool, ToolContext, ValidationError


def lookup(arguments: Mapping[str, Any], context: ToolContext) -> dict[str, Any]:
    return {"found": True}


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"name": ""}, "Tool.name", "must be a non-empty string"),
        ({"name": "   "}, "Tool.name", "must be a non-empty string"),
        ({"name": 3}, "Tool.name", "must be a non-empty string"),
        ({"name": "x" * 300}, "Tool.name", "is 300 characters long"),
        ({"name": "a\x00b"}, "Tool.name", "NUL character"),
        ({"function": "lookup"}, "Tool.function", "must be a function taking (arguments, context)"),
        ({"parameters": ["sku"]}, "Tool.parameters", "must be a JSON schema (a mapping) or None"),
        ({"timeout": 0}, "Tool.timeout", "must be a positive number of seconds"),
        ({"timeout": -1.5}, "Tool.timeout", "must be a positive number of seconds"),
        ({"timeout": True}, "Tool.timeout", "must be a positive number of seconds"),
        ({"timeout": "5"}, "Tool.timeout", "must be a positive number of seconds"),
    ],
)
def test_a_bad_field_is_a_validation_error_naming_it(
    kwargs: dict[str, Any], field: str, problem: str
) -> None:
    arguments: dict[str, Any] = {"name": "lookup", "function": lookup, **kwargs}
    with pytest.raises(ValidationError) as caught:
        Tool(**arguments)

    assert caught.value.field == field
    assert problem in str(caught.value)
    assert str(caught.value).endswith("; no Tool was made.")
    assert isinstance(caught.value, ValueError)


def test_a_good_tool_is_built() -> None:
    tool = Tool("lookup", lookup, parameters={"type": "object"}, timeout=2)
    assert (tool.name, tool.timeout) == ("lookup", 2)
