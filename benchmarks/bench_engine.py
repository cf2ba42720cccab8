"""Benchmark: the agent engine's own cost per message, and storage requests per message.

Each message is answered two ways, over the same storage and with the same model time:

- `baseline`: what the engine cannot avoid: `receive`, the time of two model calls (the
  intent detector's and the orchestrator's, each a plain sleep of the model latency), and
  `complete` with a ready-made change (the reply turn, the intent, the captured data, the
  mode change);
- `engine`: `Engine.handle` with a `ScriptedModel` that sleeps the same latency per call
  and answers a confident intent and a valid orchestrator answer (so the run proceeds:
  prompts built, answers parsed and checked against their schemas, the change built,
  spans made when OpenTelemetry is installed).

Conversations run concurrently, messages within one conversation one after the other;
the two ways alternate round by round so that noise hits them alike. Storage is
`InMemoryStorage` behind `InstrumentedStorage`, which counts the requests and adds
`--storage-ms` to each. The ratio is the engine's time over the baseline's (the goal: under
1.05 at 300 ms of model latency); the engine's cost is also given in microseconds.

    uv run python benchmarks/bench_engine.py [--model-ms 0 300] [--storage-ms 2] [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable

from benchmarks._common import (
    bench_registry,
    fmt_ratio,
    mean,
    new_manager,
    percentile,
    print_header,
    print_ratios,
    print_table,
    ratio,
)
from frontdesk import (
    Engine,
    InboundMessage,
    InMemoryStorage,
    ModelRequest,
    ModelResponse,
    NewTurn,
    SessionChange,
    SessionManager,
    Usage,
)
from frontdesk.engine import EngineSettings
from frontdesk.storage import AppendIntent, MergeCapturedData
from frontdesk.testing import InstrumentedStorage, ScriptedModel

INTENT = json.dumps({"intent": "provides_data", "confidence": 0.95, "fields": {"city": "Sevilla"}})
ANSWER = json.dumps(
    {"reply": "¡Gracias! ¿A qué nombre?", "next_mode": "collecting", "captured_data": {}}
)
MODES = ("collecting", "confirming")


def message(conversation: str, number: int) -> InboundMessage:
    return InboundMessage(
        agent_id="test-agent",
        conversation_id=conversation,
        contact_id=conversation,
        message_id=f"{conversation}:{number}",
        content=f"Soy de Sevilla ({number})",
    )


def scripted(latency: float) -> ScriptedModel:
    async def respond(request: ModelRequest) -> ModelResponse:
        await asyncio.sleep(latency)
        text = (
            INTENT
            if request.output_schema and request.output_schema["title"] == "intent"
            else ANSWER
        )
        return ModelResponse(text, Usage(500, 40), request.model)

    return ScriptedModel(respond)


async def baseline(manager: SessionManager, msg: InboundMessage, latency: float) -> None:
    receipt = await manager.receive(msg)
    run = receipt.run
    while run is not None:
        await asyncio.sleep(latency)  # the intent detector
        await asyncio.sleep(latency)  # the orchestrator
        mode = "collecting" if run.session.current_mode == "greeting" else None
        change = SessionChange(
            current_mode=mode,
            state_ops=[AppendIntent("provides_data"), MergeCapturedData({"city": "Sevilla"})],
            turns=[NewTurn(role="assistant", content="¡Gracias! ¿A qué nombre?", tokens_used=1080)],
        )
        run = (await manager.complete(run, change)).next_run


async def conversation_times(
    handle: Callable[[InboundMessage], Awaitable[object]], conversations: int, messages: int
) -> list[float]:
    async def one(conversation: str) -> list[float]:
        times = []
        for number in range(messages):
            start = time.perf_counter()
            await handle(message(conversation, number))
            times.append(time.perf_counter() - start)
        return times

    results = await asyncio.gather(*(one(f"bench:{uuid.uuid4()}") for _ in range(conversations)))
    return [t for times in results for t in times]


async def measure(args: argparse.Namespace, model_ms: float) -> dict[str, list[float]]:
    latency = model_ms / 1000
    registry = bench_registry()
    times: dict[str, list[float]] = {"baseline": [], "engine": []}
    requests: dict[str, int] = {"baseline": 0, "engine": 0}
    for _ in range(args.rounds):
        for way in ("baseline", "engine"):
            storage = InstrumentedStorage(InMemoryStorage(), delay=args.storage_ms / 1000)
            manager = new_manager(storage, registry, way)
            if way == "engine":
                engine = Engine(manager, model=scripted(latency), settings=EngineSettings())
                handle: Callable[[InboundMessage], Awaitable[object]] = engine.handle
            else:

                async def handle(msg: InboundMessage, manager: SessionManager = manager) -> None:
                    await baseline(manager, msg, latency)

            times[way] += await conversation_times(handle, args.conversations, args.messages)
            requests[way] += storage.total
    total = args.rounds * args.conversations * args.messages
    for way, count in requests.items():
        per_message = count / total
        if per_message != 2:
            raise SystemExit(f"{way}: {per_message} storage requests per message, expected 2")
    times["requests"] = [requests["engine"] / total]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-ms", type=float, nargs="+", default=[0.0, 300.0])
    parser.add_argument("--storage-ms", type=float, default=2.0)
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a tiny run, for the smoke test")
    args = parser.parse_args()
    if args.quick:
        args.model_ms, args.conversations, args.messages, args.rounds = [0.0, 5.0], 3, 2, 1
    print_header("The engine's own cost per message", args)
    rows = []
    ratios = []
    for model_ms in args.model_ms:
        times = asyncio.run(measure(args, model_ms))
        base, engine = times["baseline"], times["engine"]
        cost_us = (mean(engine) - mean(base)) * 1e6
        rows.append(
            [
                f"{model_ms:g}",
                mean(base) * 1000,
                mean(engine) * 1000,
                percentile(engine, 95) * 1000,
                cost_us,
                times["requests"][0],
            ]
        )
        ratios.append(
            f"engine/baseline time per message at {model_ms:g} ms model latency: "
            f"{fmt_ratio(ratio(mean(engine), mean(base)))} "
            f"(the engine's own cost: {cost_us:.0f} us per message)"
        )
    print_table(
        [
            "model ms",
            "baseline ms/msg",
            "engine ms/msg",
            "engine p95 ms",
            "engine cost us",
            "requests/msg",
        ],
        rows,
    )
    print_ratios(ratios)


if __name__ == "__main__":
    main()
