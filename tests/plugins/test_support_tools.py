"""The `support` agent's tools: knowledge base, orders, and the ticket kept in the session."""

from __future__ import annotations

from typing import Any

import pytest

from frontdesk import AgentConfig, AgentRegistry, Tool, ToolContext, ToolResult
from tests.engine.conftest import make_session


@pytest.fixture(scope="module")
def support() -> tuple[AgentConfig, dict[str, Tool]]:
    registry = AgentRegistry()
    registry.discover()
    return registry.get("support"), registry.tools_for("support")


def call(
    support: tuple[AgentConfig, dict[str, Tool]], name: str, data: Any = None, **arguments: Any
) -> Any:
    agent, tools = support
    session = make_session(agent, data=data or {})
    context = ToolContext(agent=agent, session=session, captured_data={})
    return tools[name].function(arguments, context)


def test_every_configured_tool_is_implemented(
    support: tuple[AgentConfig, dict[str, Tool]],
) -> None:
    agent, tools = support
    assert set(tools) == set(agent.tools)


def test_the_knowledge_base_finds_guides_and_policies(
    support: tuple[AgentConfig, dict[str, Tool]],
) -> None:
    [guide, *_] = call(support, "search_knowledge_base", query="el router no da internet")[
        "articles"
    ]
    assert guide["id"] == "KB-101"
    assert len(guide["steps"]) == 4
    [policy] = call(support, "search_knowledge_base", query="quiero un reembolso")["articles"]
    assert "billing team" in policy["policy"]


def test_order_status(support: tuple[AgentConfig, dict[str, Tool]]) -> None:
    assert call(support, "get_order_status", order_number="#90017")["status"] == "in transit"
    assert "no order" in call(support, "get_order_status", order_number="1")["error"]


def test_the_ticket_lives_in_the_session(support: tuple[AgentConfig, dict[str, Tool]]) -> None:
    created = call(support, "create_ticket", summary="router error 651", product="router")
    assert isinstance(created, ToolResult)
    ticket = created.data["ticket"]
    assert ticket["status"] == "open"
    assert created.output == {"ticket": ticket["number"]}

    again = call(support, "create_ticket", data={"ticket": ticket}, summary="x")
    assert again["note"] == "this case already has an open ticket"

    noted = call(support, "update_ticket", data={"ticket": ticket}, note="restart: no change")
    assert noted.data["ticket"]["notes"] == ["restart: no change"]
    closed = call(
        support, "update_ticket", data={"ticket": noted.data["ticket"]}, resolution="reset fixed it"
    )
    assert closed.output == {"ticket": ticket["number"], "status": "closed"}
    assert "create_ticket first" in call(support, "update_ticket", note="x")["error"]


def test_escalation_names_the_ticket(support: tuple[AgentConfig, dict[str, Tool]]) -> None:
    ticket = {"number": "T-1", "status": "open", "notes": []}
    result = call(
        support, "escalate_to_human", data={"ticket": ticket}, reason="safety", summary="smoke"
    )
    assert result.data == {"escalation": {"ticket": "T-1", "reason": "safety", "summary": "smoke"}}
