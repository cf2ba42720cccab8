"""The webhook of `webhook.py` in several worker processes sharing one PostgreSQL.

What `uvicorn examples.webhook:app --workers 4` does in production, with the HTTP server
left out so that this runs with nothing but frontdesk installed: four worker processes,
each with its own copy of the webhook app and its own connection pool, take the requests
of a burst of WhatsApp messages from one queue (a load balancer's job) in whatever order
they come, users double- and triple-texting included. Afterwards, every message must be
stored exactly once, in a gapless numbering, whichever worker handled it.

    frontdesk db migrate --dsn "$FRONTDESK_POSTGRES_DSN"
    FRONTDESK_STORAGE=postgres FRONTDESK_POSTGRES_DSN=postgresql://... \\
        uv run python examples/webhook_workers.py

It works on any storage that several processes can share: `FRONTDESK_STORAGE=sqlite` too
(one machine). With uvicorn the same app runs behind real HTTP:
`uv run --with uvicorn uvicorn examples.webhook:app --workers 4`.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

WORKERS = 4
CONVERSATIONS = 6
MESSAGES_PER_CONVERSATION = 8
WORKSPACE = "whatsapp-shop"
AGENT = "sales"


def worker(requests: Any, answers: Any) -> None:
    """One worker process: its own app (and storage pool), serving requests until None."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from examples.webhook import create_app

    async def serve() -> None:
        app = create_app()
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        started = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()

        # The app's lifespan runs beside the requests, as under an ASGI server.
        lifespan = asyncio.create_task(app({"type": "lifespan"}, inbox.get, send))
        await inbox.put({"type": "lifespan.startup"})
        await asyncio.wait(
            [lifespan, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        if lifespan.done():
            lifespan.result()  # startup failed: raise why
        while (body := await asyncio.to_thread(requests.get)) is not None:
            answers.put(await post(app, body))
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan

    asyncio.run(serve())


async def post(app: Any, body: dict[str, Any]) -> int:
    """POST /webhook to the ASGI app in this process; its status code."""
    raw = json.dumps(body).encode()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/webhook", "headers": []}
    await app(scope, receive, send)
    return int(sent[0]["status"])


def burst() -> list[dict[str, Any]]:
    """Messages interleaved across conversations, as they arrive from WhatsApp."""
    return [
        {"from": f"+3460000{c:04d}", "text": f"mensaje {m} de {c}", "id": f"wamid.{c}.{m}"}
        for m in range(MESSAGES_PER_CONVERSATION)
        for c in range(CONVERSATIONS)
    ]


async def check(messages: list[dict[str, Any]]) -> list[str]:
    """What went wrong: every message stored once, turns gapless (empty when all is well)."""
    from frontdesk import SessionManager, open_storage

    storage = await open_storage()
    problems = []
    try:
        manager = SessionManager(storage, workspace_id=WORKSPACE)
        for c in range(CONVERSATIONS):
            phone = f"+3460000{c:04d}"
            session = await manager.get_session_by_conversation(f"whatsapp:{phone}", AGENT)
            if session is None:
                problems.append(f"{phone}: no session")
                continue
            turns = await manager.get_turns(session.id)
            if [t.turn_number for t in turns] != list(range(1, len(turns) + 1)):
                problems.append(f"{phone}: turn numbers have gaps")
            stored = sorted(t.content for t in turns if t.role == "user")
            sent = sorted(m["text"] for m in messages if m["from"] == phone)
            if stored != sent:
                problems.append(f"{phone}: stored {len(stored)} user turns for {len(sent)} sent")
    finally:
        await storage.aclose()
    return problems


def main() -> int:
    context = multiprocessing.get_context("spawn")  # fresh processes, as a server's workers
    requests, answers = context.Queue(), context.Queue()
    processes = [context.Process(target=worker, args=(requests, answers)) for _ in range(WORKERS)]
    for process in processes:
        process.start()
    messages = burst()
    for body in messages:
        requests.put(body)
    for _ in processes:
        requests.put(None)
    statuses = [answers.get(timeout=120) for _ in messages]
    for process in processes:
        process.join(timeout=60)
    storage = os.environ.get("FRONTDESK_STORAGE", "memory")
    print(f"{len(messages)} messages, {WORKERS} worker processes, storage {storage}")
    print(f"answered 200: {statuses.count(200)} of {len(messages)}")
    problems = asyncio.run(check(messages))
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print("every message stored exactly once, turns gapless: ok")
    return 0 if statuses.count(200) == len(messages) and not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
