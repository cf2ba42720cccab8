"""The `sales` agent's tools, over a small catalog bundled with the package (`catalog.json`).

Stock, packs and delivery prices come from the catalog; `create_order` records the order
in the session's `state.data["orders"]` and `request_human` the request in
`state.data["human_request"]`, both written by the engine in the run's one `complete`
call. A shop replaces these with tools over its own systems, registered in code with
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

__all__ = ["TOOLS", "load_catalog"]


@cache
def load_catalog() -> Mapping[str, Any]:
    """The bundled catalog: products (sku, price, stock, packs), delivery, payment."""
    data: Mapping[str, Any] = json.loads(
        files(__package__).joinpath("catalog.json").read_text(encoding="utf-8")
    )
    return data


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _product(sku: str) -> Mapping[str, Any] | None:
    wanted = sku.strip().upper()
    return next((p for p in load_catalog()["products"] if p["sku"] == wanted), None)


def _unknown(sku: str) -> dict[str, Any]:
    return {"error": f"no product with sku {sku!r}; use search_catalog to find one"}


def _money(amount: float) -> dict[str, Any]:
    return {"amount": round(amount, 2), "currency": load_catalog()["currency"]}


def search_catalog(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    words = {_fold(word) for word in str(arguments.get("query", "")).split() if word.strip()}
    scored = []
    for product in load_catalog()["products"]:
        keywords = {_fold(k) for k in product["keywords"]} | set(_fold(product["name"]).split())
        score = len(words & keywords)
        if score:
            scored.append((score, product))
    scored.sort(key=lambda item: -item[0])
    return {
        "products": [
            {"sku": p["sku"], "name": p["name"], "price": _money(p["price"])} for _, p in scored[:3]
        ]
    }


def get_product(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    product = _product(arguments["sku"])
    if product is None:
        return _unknown(arguments["sku"])
    return {
        "sku": product["sku"],
        "name": product["name"],
        "description": product["description"],
        "price": _money(product["price"]),
    }


def check_stock(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    product = _product(arguments["sku"])
    if product is None:
        return _unknown(arguments["sku"])
    quantity = int(arguments.get("quantity", 1))
    return {
        "sku": product["sku"],
        "in_stock": product["stock"],
        "available": product["stock"] >= quantity,
        "low_stock": 0 < product["stock"] <= 3,
    }


def quote_pack(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    product = _product(arguments["sku"])
    if product is None:
        return _unknown(arguments["sku"])
    quantity = int(arguments.get("quantity", 1))
    # The largest pack that fits what the customer asked for, or the next one up.
    fitting = [p for p in product["packs"] if p["quantity"] >= quantity]
    if not fitting:
        return {"sku": product["sku"], "pack": None}
    pack = min(fitting, key=lambda p: p["quantity"])
    separately = product["price"] * pack["quantity"]
    return {
        "sku": product["sku"],
        "pack": {
            "quantity": pack["quantity"],
            "price": _money(pack["price"]),
            "saving": _money(separately - pack["price"]),
        },
    }


def quote_delivery(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    catalog = load_catalog()
    city = str(arguments.get("city", ""))
    rate = catalog["delivery"].get(_fold(city).strip(), catalog["delivery_elsewhere"])
    return {
        "city": city,
        "cost": _money(rate["cost"]),
        "delivery_time": rate["days"],
        "payment_methods": catalog["payment_methods"],
    }


def create_order(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    lines = []
    total = 0.0
    for item in arguments.get("items", []):
        product = _product(str(item.get("sku", "")))
        if product is None:
            return _unknown(str(item.get("sku", "")))
        quantity = int(item.get("quantity", 1))
        if product["stock"] < quantity:
            return {"error": f"only {product['stock']} of {product['sku']} in stock"}
        pack = next((p for p in product["packs"] if p["quantity"] == quantity), None)
        price = pack["price"] if pack else product["price"] * quantity
        lines.append({"sku": product["sku"], "quantity": quantity, "price": round(price, 2)})
        total += price
    if not lines:
        return {"error": "an order needs at least one item"}
    customer = {**context.captured_data, **(arguments.get("customer") or {})}
    missing = [k for k in ("name", "phone", "address", "city") if not customer.get(k)]
    if missing:
        return {"error": f"missing delivery data: {', '.join(missing)}"}
    delivery = quote_delivery({"city": customer["city"]}, context)
    total += delivery["cost"]["amount"]
    previous = context.session.state.data.get("orders", [])
    number = f"{context.session.id[:8].upper()}-{len(previous) + 1}"
    order = {
        "number": number,
        "items": lines,
        "delivery": delivery,
        "total": _money(total),
        "customer": {k: customer[k] for k in ("name", "phone", "address", "city")},
    }
    return ToolResult(
        {
            "order_number": number,
            "total": _money(total),
            "delivery_time": delivery["delivery_time"],
        },
        data={"orders": [*previous, order]},
    )


def request_human(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    request = {
        "reason": str(arguments.get("reason", "")),
        "summary": str(arguments.get("summary", "")),
    }
    return ToolResult({"requested": True}, data={"human_request": request})


def _object(properties: Mapping[str, Any], *required: str) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties), "required": list(required)}


_SKU = {"type": "string", "minLength": 1}
_QUANTITY = {"type": "integer", "minimum": 1}

TOOLS = (
    Tool(
        "search_catalog",
        search_catalog,
        description="Products matching a description (up to 3, with sku and price).",
        parameters=_object({"query": {"type": "string"}}, "query"),
    ),
    Tool(
        "get_product",
        get_product,
        description="Details and price of one product.",
        parameters=_object({"sku": _SKU}, "sku"),
    ),
    Tool(
        "check_stock",
        check_stock,
        description="Units in stock, and whether the quantity asked is available.",
        parameters=_object({"sku": _SKU, "quantity": _QUANTITY}, "sku"),
    ),
    Tool(
        "quote_pack",
        quote_pack,
        description="The pack (bundle) for a product and quantity, its price and saving, or null.",
        parameters=_object({"sku": _SKU, "quantity": _QUANTITY}, "sku"),
    ),
    Tool(
        "quote_delivery",
        quote_delivery,
        description="Delivery cost, time and payment methods for a city.",
        parameters=_object({"city": {"type": "string", "minLength": 1}}, "city"),
    ),
    Tool(
        "create_order",
        create_order,
        description=(
            "Places the order (only after the customer confirmed the summary); the delivery "
            "data defaults to what the customer gave. Returns the order number and total."
        ),
        parameters=_object(
            {
                "items": {
                    "type": "array",
                    "items": _object({"sku": _SKU, "quantity": _QUANTITY}, "sku", "quantity"),
                },
                "customer": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "items",
        ),
    ),
    Tool(
        "request_human",
        request_human,
        description="Asks a person from the shop to take over, with a reason and a summary.",
        parameters=_object({"reason": {"type": "string"}, "summary": {"type": "string"}}, "reason"),
    ),
)
"""Every tool `sales.toml` names, in its order."""
