"""A WhatsApp-style webhook as a small ASGI app: the shape of production use.

Each inbound message is recorded through the session manager: the user's turn, the
intent, the captured data, then the mode change and the reply in one atomic commit,
retried on conflict (users double-text, so two requests of one conversation often run at
the same moment). The model calls happen outside the retried function.

Run it with any ASGI server, on the storage FRONTDESK_STORAGE names (memory by default);
a storage that cannot be opened stops the server at startup, with the reason:

    uv run --with uvicorn uvicorn examples.webhook:app
    curl -s localhost:8000/webhook -d '{"from": "+34600111222", "text": "Hola!"}'
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from frontdesk import (
    AgentRegistry,
    FrontdeskError,
    NewTurn,
    Role,
    Session,
    SessionChange,
    SessionClosedError,
    SessionManager,
    StorageBackend,
    open_storage,
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

AGENT = "sales"
WORKSPACE = "whatsapp-shop"


def detect_intent(text: str) -> tuple[str, dict[str, str]]:
    """Stand-in for the intent-detector model call: an intent and the data it extracted."""
    lowered = text.lower()
    if "@" in text:
        return "provides_delivery_data", {"email": text.strip()}
    if any(word in lowered for word in ("precio", "cuánto", "price")):
        return "price_question", {}
    if any(word in lowered for word in ("quiero", "buy", "me lo llevo")):
        return "wants_to_buy", {}
    if any(word in lowered for word in ("hola", "hello", "hi")):
        return "greeting", {}
    return "product_question", {}


NEXT_MODE = {
    "price_question": "product_questions",
    "product_question": "product_questions",
    "wants_to_buy": "offering_packs",
    "provides_delivery_data": "collecting_delivery_data",
}


def compose_reply(intent: str) -> str:
    """Stand-in for the orchestrator model call."""
    return {
        "greeting": "¡Hola! ¿En qué te puedo ayudar?",
        "price_question": "Te digo el precio ahora mismo.",
        "wants_to_buy": "¡Genial! ¿Te interesa el pack de 3 con descuento?",
        "provides_delivery_data": "Gracias, lo he apuntado.",
    }.get(intent, "Déjame mirarlo.")


def create_app(
    storage: StorageBackend | None = None, registry: AgentRegistry | None = None
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app. Without `storage`, it opens FRONTDESK_STORAGE's backend on startup."""
    state: dict[str, StorageBackend] = {}
    if storage is not None:
        state["storage"] = storage

    async def handle(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        phone, text = body.get("from"), body.get("text")
        if not isinstance(phone, str) or not isinstance(text, str) or not text.strip():
            return 400, {"error": "expected JSON with string fields 'from' and 'text'"}
        if "storage" not in state:
            state["storage"] = await open_storage()
        manager = SessionManager(state["storage"], workspace_id=WORKSPACE, registry=registry)
        session, _ = await manager.get_or_create_session(
            agent_id=AGENT, conversation_id=f"whatsapp:{phone}", contact_id=phone
        )
        user_turn = await manager.add_turn(session.id, role="user", content=text)
        intent, captured = detect_intent(text)  # a model call: outside any retry
        await manager.add_intent_seen(session.id, intent)
        if captured:
            await manager.update_captured_data(session.id, captured)
        reply = compose_reply(intent)  # a model call: outside any retry
        agent = manager.registry.get(AGENT)

        def decide(current: Session) -> SessionChange:
            # Re-run on every attempt with a fresh read: decide from what is stored now.
            target = NEXT_MODE.get(intent)
            moves = target is not None and agent.states.can_move(current.current_mode, target)
            return SessionChange(
                current_mode=target if moves else None,
                turns=[NewTurn(role=Role.ASSISTANT, content=reply)],
            )

        result = await manager.retry_on_conflict(session.id, decide)
        assert result is not None
        return 200, {
            "session_id": session.id,
            "turn": user_turn.turn_number,
            "mode": result.session.current_mode,
            "reply": reply,
        }

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] != "/webhook":
            await respond(send, 404, {"error": "not found"})
            return
        if scope["method"] != "POST":
            await respond(send, 405, {"error": "use POST"})
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw)
        except ValueError:
            await respond(send, 400, {"error": "the body is not JSON"})
            return
        try:
            status, payload = await handle(body if isinstance(body, dict) else {})
        except SessionClosedError as exc:
            status, payload = 409, {"error": str(exc)}
        except ValueError as exc:  # text no storage accepts (NUL, lone surrogates, ...)
            status, payload = 400, {"error": str(exc)}
        except FrontdeskError as exc:
            status, payload = 503, {"error": str(exc)}
        await respond(send, status, payload)

    async def lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if "storage" not in state:
                        state["storage"] = await open_storage()
                except FrontdeskError as exc:
                    # Refuse to start (the server exits with this message) rather than
                    # answer 503 to every request.
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if storage is None and "storage" in state:
                    await state.pop("storage").aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


async def respond(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json; charset=utf-8")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


app = create_app()
