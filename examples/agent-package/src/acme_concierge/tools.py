"""The concierge's tools: a small bundled guide, and bookings kept in the session.

A tool is a function of the model's arguments and a `ToolContext` (the agent, the session
as the run claimed it, the data captured so far). It returns JSON for the model, or a
`ToolResult` whose `data` the engine merges into the session's `state.data` in the run's
one `complete` call: tools never write to storage themselves. A real hotel replaces these
with tools over its own systems, registered in code with `AgentRegistry.register_tool`
(which wins over the package's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from frontdesk import Tool, ToolContext, ToolResult

__all__ = ["GUIDE", "TOOLS"]

GUIDE: tuple[dict[str, str], ...] = (
    {
        "name": "Casa Lola",
        "kind": "restaurant",
        "about": "Seafood and rice dishes by the harbour; dinner from 8pm, closed Mondays.",
    },
    {
        "name": "La Huerta",
        "kind": "restaurant",
        "about": "Vegetarian tasting menu in a garden; lunch and dinner, book ahead.",
    },
    {
        "name": "Old Town walk",
        "kind": "sight",
        "about": "Cathedral, market and castle walls: two hours on foot from the hotel.",
    },
    {
        "name": "Playa Norte",
        "kind": "beach",
        "about": "A sandy beach ten minutes away by taxi; loungers from 10am to 7pm.",
    },
)
"""The places the concierge recommends."""


def search_guide(arguments: Mapping[str, Any], context: ToolContext) -> dict[str, Any]:
    """The guide's entries that share a word with the query (all of them for none)."""
    words = {word.lower() for word in str(arguments.get("query", "")).split()}
    found = [
        entry
        for entry in GUIDE
        if not words or words & set(" ".join(entry.values()).lower().replace(",", " ").split())
    ]
    return {"results": [dict(entry) for entry in found or GUIDE]}


def _booked(context: ToolContext, kind: str, booking: dict[str, Any]) -> ToolResult:
    """Add `booking` to the session's `state.data["bookings"]` and give the model its reference."""
    earlier = context.session.state.data.get("bookings")
    bookings = list(earlier) if isinstance(earlier, list) else []
    reference = f"{kind[0].upper()}{len(bookings) + 1:03d}"
    bookings.append({"reference": reference, "kind": kind, **booking})
    return ToolResult({"booked": True, "reference": reference}, data={"bookings": bookings})


def book_table(arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
    """Book a table; the booking is kept in the session."""
    return _booked(
        context,
        "table",
        {
            "restaurant": arguments["restaurant"],
            "time": arguments["time"],
            "people": arguments["people"],
        },
    )


def book_taxi(arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
    """Book a taxi from the hotel; the booking is kept in the session."""
    return _booked(
        context,
        "taxi",
        {"destination": arguments["destination"], "time": arguments["time"]},
    )


def call_reception(arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
    """Ask reception to take over, with the reason: kept in the session for them."""
    request: dict[str, Any] = {"reason": arguments["reason"]}
    return ToolResult({"called": True}, data={"reception_request": request})


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_TEXT = {"type": "string", "minLength": 1}

TOOLS = (
    Tool(
        "search_guide",
        search_guide,
        description="Restaurants, sights and beaches near the hotel matching a query.",
        parameters=_object({"query": {"type": "string"}}),
    ),
    Tool(
        "book_table",
        book_table,
        description="Books a table (after the guest confirmed it); returns its reference.",
        parameters=_object(
            {"restaurant": _TEXT, "time": _TEXT, "people": {"type": "integer", "minimum": 1}},
            "restaurant",
            "time",
            "people",
        ),
    ),
    Tool(
        "book_taxi",
        book_taxi,
        description="Books a taxi from the hotel (after the guest confirmed it).",
        parameters=_object({"destination": _TEXT, "time": _TEXT}, "destination", "time"),
    ),
    Tool(
        "call_reception",
        call_reception,
        description="Asks reception to take over the conversation, with the reason.",
        parameters=_object({"reason": _TEXT}, "reason"),
    ),
)
"""Every tool `concierge.toml` names."""
