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
storage themselves: a message stays two storage requests).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias

from attrs import field, frozen

from . import validation
from .config import AgentConfig
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


def _check_name(_: object, __: Any, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a tool name must be a non-empty string, got {value!r}")


def _check_timeout(_: object, __: Any, value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise ValueError(f"a tool timeout must be a positive number of seconds, got {value!r}")


@frozen
class Tool:
    """A named function an orchestrator may call.

    `parameters` is the JSON schema of its arguments (shown to the model, and checked
    before the call); `timeout` (seconds) overrides the engine's per-call timeout.
    """

    name: str = field(validator=_check_name)
    function: ToolFunction = field(eq=False)
    description: str = ""
    parameters: Mapping[str, Any] | None = None
    timeout: float | None = field(default=None, validator=_check_timeout)
