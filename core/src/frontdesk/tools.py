"""Tools: the functions an agent's orchestrator may call, provided by agent packages.

An agent's config names its tools; the implementations come from the package that ships
the agent, through the `register_tools` hook (or `AgentRegistry.register_tool` in code):

    from frontdesk import Tool, hookimpl

    def check_stock(arguments, context):
        return {"sku": arguments["sku"], "available": 3}

    @hookimpl
    def register_tools():
        return [Tool("check_stock", check_stock, description="Units in stock of a SKU.")]

A tool function takes the arguments the model gave (a JSON object) and a `ToolContext`,
may be sync or async, and returns JSON, or a `ToolResult` whose `data` the engine merges
into the session's `state.data` in the run's one `complete` call (tools never write to
storage themselves: a message stays two storage requests). A `Tool` checks its fields
when it is built (`ValidationError` naming the field).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

from attrs import field, frozen

from . import validation
from .config import AgentConfig
from .errors import ValidationError
from .models import JSON, Session

__all__ = ["Tool", "ToolContext", "ToolFunction", "ToolResult"]


@frozen
class ToolContext:
    """What a tool may know about the run that calls it (read-only)."""

    agent: AgentConfig
    session: Session
    captured_data: Mapping[str, str]
    """The session's captured data with what this run captured so far."""


def _data(value: Mapping[str, JSON]) -> dict[str, JSON]:
    return validation.check_json_object("data", value)


@frozen
class ToolResult:
    """A tool's output for the model, and JSON to merge into the session's `state.data`."""

    output: JSON
    data: Mapping[str, JSON] = field(factory=dict, converter=_data)


ToolFunction: TypeAlias = Callable[
    [Mapping[str, Any], ToolContext], "JSON | ToolResult | Awaitable[JSON | ToolResult]"
]


_NOT_MADE = "no Tool was made"


def _check_name(_: object, __: Any, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            "Tool.name",
            f"must be a non-empty string (the name the agent's config lists), got {value!r}",
            outcome=_NOT_MADE,
        )
    validation.check_id("Tool.name", value, outcome=_NOT_MADE)


def _check_function(_: object, __: Any, value: Any) -> None:
    if not callable(value):
        raise ValidationError(
            "Tool.function",
            "must be a function taking (arguments, context), sync or async; got "
            f"{type(value).__name__}",
            outcome=_NOT_MADE,
        )


def _check_parameters(_: object, __: Any, value: Any) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise ValidationError(
            "Tool.parameters",
            f"must be a JSON schema (a mapping) or None, got {type(value).__name__}",
            outcome=_NOT_MADE,
        )


def _check_timeout(_: object, __: Any, value: float | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValidationError(
            "Tool.timeout",
            f"must be a positive number of seconds, or None for the engine's, got {value!r}",
            outcome=_NOT_MADE,
        )


@frozen
class Tool:
    """A named function an orchestrator may call.

    `parameters` is the JSON schema of its arguments (shown to the model, and checked
    before the call); `timeout` (seconds) overrides the engine's per-call timeout.
    """

    name: str = field(validator=_check_name)
    function: ToolFunction = field(eq=False, validator=_check_function)
    description: str = ""
    parameters: Mapping[str, Any] | None = field(default=None, validator=_check_parameters)
    timeout: float | None = field(default=None, validator=_check_timeout)
