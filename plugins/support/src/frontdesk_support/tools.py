"""The `support` agent's tools, over a small knowledge base bundled with the package.

`search_knowledge_base` and `get_order_status` read `knowledge.json`; the ticket lives in
the session's `state.data["ticket"]` (`create_ticket`, `update_ticket`) and an escalation
in `state.data["escalation"]`, written by the engine in the run's one `complete` call. A
company replaces these with tools over its own help desk, registered in code with
`AgentRegistry.register_tool` (which wins over the package's).
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from typing import Any

from frontdesk import Tool, ToolContext, ToolResult

__all__ = ["TOOLS", "load_knowledge"]


@cache
def load_knowledge() -> Mapping[str, Any]:
    """The bundled knowledge base: articles with steps or a policy, and demo orders."""
    data: Mapping[str, Any] = json.loads(
        files(__package__).joinpath("knowledge.json").read_text(encoding="utf-8")
    )
    return data


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def search_knowledge_base(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    words = {_fold(w).strip(".,!?¿¡") for w in str(arguments.get("query", "")).split()}
    found = []
    for article in load_knowledge()["articles"]:
        score = len(words & {_fold(k) for k in article["keywords"]})
        if score:
            found.append((score, article))
    found.sort(key=lambda item: -item[0])
    return {"articles": [article for _, article in found[:2]]}


def get_order_status(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    number = str(arguments.get("order_number", "")).strip().lstrip("#")
    order = load_knowledge()["orders"].get(number)
    if order is None:
        return {"error": f"no order {number!r}; ask the customer to check the number"}
    return {"order_number": number, **order}


def create_ticket(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    existing = context.session.state.data.get("ticket")
    if isinstance(existing, Mapping) and existing.get("status") == "open":
        return {"ticket": existing["number"], "note": "this case already has an open ticket"}
    ticket = {
        "number": f"T-{context.session.id[:8].upper()}",
        "status": "open",
        "summary": str(arguments.get("summary", "")),
        "product": str(arguments.get("product", "")),
        "notes": [],
    }
    return ToolResult({"ticket": ticket["number"]}, data={"ticket": ticket})


def update_ticket(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    ticket = context.session.state.data.get("ticket")
    if not isinstance(ticket, Mapping):
        return {"error": "there is no ticket yet: call create_ticket first"}
    notes = [*ticket.get("notes", [])]
    if arguments.get("note"):
        notes.append(str(arguments["note"]))
    resolution = arguments.get("resolution")
    updated = {
        **ticket,
        "notes": notes,
        "status": "closed" if resolution else ticket.get("status", "open"),
        **({"resolution": str(resolution)} if resolution else {}),
    }
    return ToolResult(
        {"ticket": updated["number"], "status": updated["status"]}, data={"ticket": updated}
    )


def escalate_to_human(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    ticket = context.session.state.data.get("ticket")
    escalation = {
        "ticket": ticket.get("number") if isinstance(ticket, Mapping) else None,
        "reason": str(arguments.get("reason", "")),
        "summary": str(arguments.get("summary", "")),
    }
    return ToolResult({"escalated": True, **escalation}, data={"escalation": escalation})


def _object(properties: Mapping[str, Any], *required: str) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties), "required": list(required)}


_TEXT = {"type": "string"}

TOOLS = (
    Tool(
        "search_knowledge_base",
        search_knowledge_base,
        description="Official guides (ordered steps) and policies matching a problem.",
        parameters=_object({"query": _TEXT}, "query"),
    ),
    Tool(
        "get_order_status",
        get_order_status,
        description="Status and tracking of an order, by its number.",
        parameters=_object({"order_number": {"type": "string", "minLength": 1}}, "order_number"),
    ),
    Tool(
        "create_ticket",
        create_ticket,
        description="Opens the case's ticket (one per case) and returns its number.",
        parameters=_object({"summary": _TEXT, "product": _TEXT}, "summary"),
    ),
    Tool(
        "update_ticket",
        update_ticket,
        description="Adds a note (a step tried and its result), or closes with a resolution.",
        parameters=_object({"note": _TEXT, "resolution": _TEXT}),
    ),
    Tool(
        "escalate_to_human",
        escalate_to_human,
        description="Hands the case to a person with the reason and a summary of what was tried.",
        parameters=_object({"reason": _TEXT, "summary": _TEXT}, "reason", "summary"),
    ),
)
"""Every tool `support.toml` names, in its order."""
