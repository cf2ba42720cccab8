"""A WhatsApp-style webhook as a small ASGI app: the shape of production use.

Each inbound message goes through the message pipeline: `receive` records it (keyed by
the channel's message id, so a redelivery is answered 200 without any work) and says
whether this request answers it now; the model calls run outside storage; `complete`
records the reply, the intents, the captured data and the mode in one atomic write, and
hands over the messages the user sent meanwhile (users double-text: under the agent's
default `merge` policy, a burst is answered once). Two storage requests per message.

Run it with any ASGI server, on the storage FRONTDESK_STORAGE names (memory by default);
a storage that cannot be opened stops the server at startup, with the reason:

    uv run --with uvicorn uvicorn examples.webhook:app
    curl -s localhost:8000/webhook -d '{"from": "+34600111222", "text": "Hola!", "id": "wamid.1"}'
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from frontdesk import (
    AgentRegistry,
    AppendIntent,
    ConversationBusyError,
    FrontdeskError,
    InboundMessage,
    MergeCapturedData,
    NewTurn,
    Role,
    Run,
    RunSupersededError,
    SessionChange,
    SessionClosedError,
    SessionManager,
    StateOp,
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


def respond_to(registry: AgentRegistry, run: Run) -> tuple[str, SessionChange]:
    """The reply to a run's messages and what it changes: each message's intent and data,
    the reply to the last one, and the mode it leads to (if the state machine allows it)."""
    ops: list[StateOp] = []
    intent = "product_question"
    for turn in run.inputs:
        intent, captured = detect_intent(turn.content)
        ops.append(AppendIntent(intent))
        if captured:
            ops.append(MergeCapturedData(captured))
    target = NEXT_MODE.get(intent)
    agent = registry.get(AGENT)
    moves = target is not None and agent.states.can_move(run.session.current_mode, target)
    reply = compose_reply(intent)
    change = SessionChange(
        current_mode=target if moves else None,
        state_ops=ops,
        turns=[NewTurn(role=Role.ASSISTANT, content=reply)],
    )
    return reply, change


def create_app(
    storage: StorageBackend | None = None, registry: AgentRegistry | None = None
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app. Without `storage`, it opens FRONTDESK_STORAGE's backend on startup."""
    state: dict[str, StorageBackend] = {}
    if storage is not None:
        state["storage"] = storage

    async def handle(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        phone, text, message_id = body.get("from"), body.get("text"), body.get("id")
        if not all(isinstance(v, str) for v in (phone, text, message_id)) or not str(text).strip():
            return 400, {"error": "expected JSON with string fields 'from', 'text' and 'id'"}
        if "storage" not in state:
            state["storage"] = await open_storage()
        manager = SessionManager(state["storage"], workspace_id=WORKSPACE, registry=registry)
        receipt = await manager.receive(
            InboundMessage(
                agent_id=AGENT,
                conversation_id=f"whatsapp:{phone}",
                contact_id=str(phone),
                message_id=str(message_id),
                content=str(text),
            )
        )
        answer: dict[str, Any] = {
            "session_id": receipt.session.id,
            "turn": receipt.turn.turn_number,
            "duplicate": receipt.duplicate,  # a redelivery: 200, nothing done
            "replies": [],
        }
        run = receipt.run  # None: another request is answering this conversation
        while run is not None:
            reply, change = respond_to(manager.registry, run)  # model calls: outside storage
            try:
                done = await manager.complete(run, change)
            except RunSupersededError:
                break  # a newer run took the conversation over and answers these too
            answer["replies"].append(reply)
            answer["mode"] = done.session.current_mode
            run = done.next_run  # what the user sent meanwhile
        return 200, answer

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
        except (SessionClosedError, ConversationBusyError) as exc:
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
