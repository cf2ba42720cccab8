"""The `sales` agent's tools: catalog, stock, packs, delivery, and an order in the session."""

from __future__ import annotations

from typing import Any

import pytest

from frontdesk import AgentConfig, AgentRegistry, Tool, ToolContext, ToolResult
from frontdesk.engine import Decision, EngineSettings, run_agent
from frontdesk.storage import MergeData
from frontdesk.testing.scripted import ScriptedModel
from tests.engine.conftest import View, make_session, make_turns


@pytest.fixture(scope="module")
def sales() -> tuple[AgentConfig, dict[str, Tool]]:
    registry = AgentRegistry()
    registry.discover()
    return registry.get("sales"), registry.tools_for("sales")


def call(sales: tuple[AgentConfig, dict[str, Tool]], name: str, **arguments: Any) -> Any:
    agent, tools = sales
    context = ToolContext(agent=agent, session=make_session(agent), captured_data={})
    return tools[name].function(arguments, context)


def test_every_configured_tool_is_implemented(sales: tuple[AgentConfig, dict[str, Tool]]) -> None:
    agent, tools = sales
    assert set(tools) == set(agent.tools)


def test_search_finds_products_by_the_customers_words(
    sales: tuple[AgentConfig, dict[str, Tool]],
) -> None:
    found = call(sales, "search_catalog", query="kit de uñas")["products"]
    assert found[0]["sku"] == "NAIL-KIT"
    assert found[0]["price"] == {"amount": 18.5, "currency": "EUR"}
    assert call(sales, "search_catalog", query="bicicleta")["products"] == []


def test_stock_and_packs(sales: tuple[AgentConfig, dict[str, Tool]]) -> None:
    assert call(sales, "check_stock", sku="hoodie-blk-l", quantity=1)["available"] is False
    assert call(sales, "check_stock", sku="HOODIE-BLK-M", quantity=1)["low_stock"] is True
    pack = call(sales, "quote_pack", sku="ALOE-200", quantity=2)["pack"]
    assert pack == {
        "quantity": 3,
        "price": {"amount": 32.0, "currency": "EUR"},
        "saving": {"amount": 6.7, "currency": "EUR"},
    }
    assert call(sales, "quote_pack", sku="HOODIE-BLK-M", quantity=1)["pack"] is None
    assert "no product" in call(sales, "get_product", sku="NOPE")["error"]


def test_delivery_by_city(sales: tuple[AgentConfig, dict[str, Tool]]) -> None:
    assert call(sales, "quote_delivery", city="Sevilla")["cost"]["amount"] == 4.5
    assert call(sales, "quote_delivery", city="Cuenca")["delivery_time"] == "3-5 days"


def test_an_order_needs_the_delivery_data(sales: tuple[AgentConfig, dict[str, Tool]]) -> None:
    result = call(sales, "create_order", items=[{"sku": "ALOE-200", "quantity": 3}])
    assert result == {"error": "missing delivery data: name, phone, address, city"}


async def test_an_order_is_recorded_in_the_session(
    sales: tuple[AgentConfig, dict[str, Tool]],
) -> None:
    agent, tools = sales
    customer = {"name": "Ana", "phone": "+34600111222", "address": "Calle Mayor 5"}
    view = View(
        make_session(agent, mode="order_summary", captured_data={**customer, "city": "Madrid"}),
        make_turns("quiero 3 cremas de aloe", "Resumen: 3 x crema... ¿Confirmas el pedido?"),
        make_turns("sí, confirmo", start=3),
    )
    model = ScriptedModel.answering(
        {"intent": "confirms_order", "confidence": 0.97},
        {
            "reply": "Un momento...",
            "next_mode": "order_summary",
            "tool_calls": [
                {
                    "name": "create_order",
                    "arguments": {"items": [{"sku": "ALOE-200", "quantity": 3}]},
                }
            ],
        },
        {"reply": "¡Pedido confirmado!", "next_mode": "purchase_confirmed"},
    )
    result = await run_agent(
        agent, view, models=lambda _: model, tools=tools, settings=EngineSettings(backoff=0)
    )

    assert result.decision is Decision.PROCEED
    assert result.mode == "purchase_confirmed"
    [order_call] = result.tools_called
    number = order_call.output["order_number"]
    assert order_call.output["total"] == {"amount": 35.5, "currency": "EUR"}
    [data] = [op for op in result.change.state_ops if isinstance(op, MergeData)]
    [order] = data.data["orders"]
    assert order["number"] == number
    assert order["customer"]["city"] == "Madrid"
    assert order["items"] == [{"sku": "ALOE-200", "quantity": 3, "price": 32.0}]


def test_request_human_records_the_request(sales: tuple[AgentConfig, dict[str, Tool]]) -> None:
    result = call(sales, "request_human", reason="complaint", summary="broken on arrival")
    assert isinstance(result, ToolResult)
    assert result.data == {"human_request": {"reason": "complaint", "summary": "broken on arrival"}}


def test_sales_has_its_own_handoff_message(sales: tuple[AgentConfig, dict[str, Tool]]) -> None:
    agent, _ = sales
    assert "persona de la tienda" in agent.handoff_message
