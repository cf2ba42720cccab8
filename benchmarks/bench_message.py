"""Benchmark 1: storage calls and wall time per processed message.

One inbound message, processed the way an engine does: find the session, record the user
turn, note the intent, merge the captured data, change mode, record the reply. Three ways,
over the same storage object, message by message in rotating order (so that noise hits
them alike):

- `baseline`: the original design's call pattern, written with frontdesk's own storage
  primitives. Every state helper reads the session and writes the whole state back
  (`addIntentSeen`: get session, append, write state; `updateCapturedData`: get session
  again, merge, write state), with no version check. It is given the benefit of every doubt:
  turn numbers come from an in-process counter (a stateless worker would have to read
  them: one more request per message), the mode change is a plain write decided from the
  session found at the start, and the first message of a conversation costs a find and a
  create (two requests; the original also wrote the initial state separately).
- `frontdesk`: one `SessionManager` call per step -- `get_or_create_session`, `add_turn`,
  `add_intent_seen`, `update_captured_data`, `update_session_with_version` (at the version
  the previous call returned), `add_turn`.
- `fused`: what one commit per step group allows: `get_or_create_session`, `add_turn` for
  the user turn (recorded before the model calls), then ONE `SessionManager.commit` with
  the intent and the captured data as `state_ops`, the mode change and the reply (the
  state-machine check included).
- `pipeline`: the message pipeline: `receive` (finds or creates the session, records the
  user turn keyed by the message id, starts the run) and `complete` (the intent, the
  captured data, the mode change and the reply, ending the run). Two requests, always.

Requests are counted by a wrapper around the storage (memory, SQLite, PostgreSQL: one
statement per call) and by the gateway (Supabase; the wrapper's count is checked against it). Every run is checked for lost writes.

    uv run python benchmarks/bench_message.py [--backend memory|sqlite|postgres|supabase|all]
        [--delay-ms 20 0]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import attrs

from benchmarks._common import (
    add_backend_arguments,
    bench_registry,
    chosen_backends,
    fmt_ratio,
    mean,
    new_manager,
    percentile,
    postgres_stack,
    print_header,
    print_ratios,
    print_table,
    ratio,
    sqlite_stack,
    supabase_stack,
)
from frontdesk import AgentRegistry, InboundMessage, SessionChange, SessionManager
from frontdesk.models import IntentSeen, NewTurn, Role, Session
from frontdesk.storage import AppendIntent, Commit, MergeCapturedData, NewSession, StorageBackend
from frontdesk.testing import TEST_AGENT_ID, InstrumentedStorage

VARIANTS = ("baseline", "frontdesk", "fused", "pipeline")
INTENTS = ("greeting", "product_question", "price_question", "order", "thanks")
# The test agent: greeting -> collecting -> confirming -> collecting -> ...
NEXT_MODE = {"greeting": "collecting", "collecting": "confirming", "confirming": "collecting"}


@dataclass(frozen=True)
class Message:
    conversation_id: str
    message_id: str
    text: str
    intent: str
    captured: dict[str, str]
    reply: str


def make_messages(count: int, per_conversation: int) -> list[Message]:
    conversations = max(1, -(-count // per_conversation))
    return [
        Message(
            conversation_id=f"whatsapp:+3460000{i % conversations:04d}",
            message_id=f"wamid.{i}",
            text=f"message {i}: do you have size M?",
            intent=INTENTS[i % len(INTENTS)],
            captured={f"field{i % 4}": f"value {i}"},
            reply=f"reply {i}: yes, we do.",
        )
        for i in range(count)
    ]


class Engine:
    name = ""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.storage = manager.storage
        self.workspace_id = manager.workspace_id

    async def handle(self, message: Message) -> None:
        raise NotImplementedError


class BaselineEngine(Engine):
    """The original design's call pattern: read-modify-write per helper, no checks."""

    name = "baseline"

    def __init__(self, manager: SessionManager) -> None:
        super().__init__(manager)
        self.turn_counts: dict[str, int] = {}  # given for free; see the module docstring

    async def handle(self, message: Message) -> None:
        storage, ws = self.storage, self.workspace_id
        # getSessionByConversation, then createSession on the first message.
        session = await storage.find_active_session(ws, message.conversation_id, TEST_AGENT_ID)
        if session is None:
            session, _ = await storage.create_session(
                NewSession(
                    id=_uuid(),
                    workspace_id=ws,
                    agent_id=TEST_AGENT_ID,
                    conversation_id=message.conversation_id,
                    contact_id=message.conversation_id,
                    current_mode="greeting",
                )
            )
        sid = session.id
        turns = self.turn_counts.get(sid, 0)
        # addTurn(user), numbered by the caller.
        await storage.commit(ws, sid, Commit(turns=(_turn(Role.USER, message.text, turns + 1),)))
        # addIntentSeen: getSession, append, write the state back.
        current = await _get(storage, ws, sid)
        state = current.state
        seen = IntentSeen(message.intent, len(state.intents_seen) + 1, datetime.now(UTC))
        state = attrs.evolve(state, intents_seen=(*state.intents_seen, seen))
        await storage.commit(ws, sid, Commit(state=state))
        # updateCapturedData: getSession again, merge, write the state back.
        current = await _get(storage, ws, sid)
        state = current.state
        state = attrs.evolve(state, captured_data={**state.captured_data, **message.captured})
        await storage.commit(ws, sid, Commit(state=state))
        # updateSession(mode), decided from the session found at the start.
        await storage.commit(ws, sid, Commit(current_mode=NEXT_MODE[session.current_mode]))
        # addTurn(assistant).
        await storage.commit(
            ws, sid, Commit(turns=(_turn(Role.ASSISTANT, message.reply, turns + 2),))
        )
        self.turn_counts[sid] = turns + 2


class FrontdeskEngine(Engine):
    """One SessionManager call per step."""

    name = "frontdesk"

    async def handle(self, message: Message) -> None:
        manager = self.manager
        session, _ = await manager.get_or_create_session(
            agent_id=TEST_AGENT_ID,
            conversation_id=message.conversation_id,
            contact_id=message.conversation_id,
        )
        sid = session.id
        await manager.add_turn(sid, role="user", content=message.text)
        await manager.add_intent_seen(sid, message.intent)
        session = await manager.update_captured_data(sid, message.captured)
        await manager.update_session_with_version(
            sid, expected_version=session.version, current_mode=NEXT_MODE[session.current_mode]
        )
        await manager.add_turn(sid, role="assistant", content=message.reply)


class FusedEngine(Engine):
    """The user turn first, then everything the reply decides in one commit."""

    name = "fused"

    async def handle(self, message: Message) -> None:
        manager = self.manager
        session, _ = await manager.get_or_create_session(
            agent_id=TEST_AGENT_ID,
            conversation_id=message.conversation_id,
            contact_id=message.conversation_id,
        )
        sid = session.id
        await manager.add_turn(sid, role="user", content=message.text)
        await manager.commit(
            sid,
            SessionChange(
                current_mode=NEXT_MODE[session.current_mode],
                state_ops=(AppendIntent(message.intent), MergeCapturedData(message.captured)),
                turns=(NewTurn(role=Role.ASSISTANT, content=message.reply),),
            ),
            expected_version=None,
        )


class PipelineEngine(Engine):
    """receive, then complete: two requests per message."""

    name = "pipeline"

    async def handle(self, message: Message) -> None:
        manager = self.manager
        receipt = await manager.receive(
            InboundMessage(
                agent_id=TEST_AGENT_ID,
                conversation_id=message.conversation_id,
                contact_id=message.conversation_id,
                message_id=message.message_id,
                content=message.text,
            )
        )
        run = receipt.run
        if run is None:
            raise AssertionError("one message at a time: every message starts a run")
        done = await manager.complete(
            run,
            SessionChange(
                current_mode=NEXT_MODE[run.session.current_mode],
                state_ops=(AppendIntent(message.intent), MergeCapturedData(message.captured)),
                turns=(NewTurn(role=Role.ASSISTANT, content=message.reply),),
            ),
        )
        if done.next_run is not None:
            raise AssertionError("nothing arrived during the run")


ENGINES: dict[str, Callable[[SessionManager], Engine]] = {
    "baseline": BaselineEngine,
    "frontdesk": FrontdeskEngine,
    "fused": FusedEngine,
    "pipeline": PipelineEngine,
}


def _uuid() -> str:
    return str(uuid.uuid4())


def _turn(role: Role, content: str, number: int) -> NewTurn:
    return NewTurn(role=role, content=content, turn_number=number)


async def _get(storage: StorageBackend, workspace_id: str, session_id: str) -> Session:
    session = await storage.get_session(workspace_id, session_id)
    if session is None:
        raise LookupError(session_id)
    return session


@dataclass
class Result:
    backend: str
    variant: str
    times: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    first_requests: list[int] = field(default_factory=list)


async def run(
    backend: str,
    storage: InstrumentedStorage,
    registry: AgentRegistry,
    messages: Sequence[Message],
    request_count: Callable[[], int],
) -> dict[str, Result]:
    engines = [ENGINES[v](new_manager(storage, registry, v)) for v in VARIANTS]
    results = {v: Result(backend, v) for v in VARIANTS}
    seen: set[str] = set()
    for index, message in enumerate(messages):
        first = message.conversation_id not in seen
        seen.add(message.conversation_id)
        shift = index % len(engines)
        for engine in engines[shift:] + engines[:shift]:  # rotate who goes first
            calls, requests = storage.total, request_count()
            started = time.perf_counter()
            await engine.handle(message)
            elapsed = time.perf_counter() - started
            made = request_count() - requests
            if made != storage.total - calls:
                raise AssertionError(
                    f"{engine.name}: {made} requests for {storage.total - calls} storage calls"
                )
            result = results[engine.name]
            (result.first_requests if first else result.requests).append(made)
            result.times.append(elapsed)
    for engine in engines:
        await check(engine, messages)
    return results


async def check(engine: Engine, messages: Sequence[Message]) -> None:
    """Every turn, intent and captured field of every message is there."""
    by_conversation: dict[str, list[Message]] = {}
    for message in messages:
        by_conversation.setdefault(message.conversation_id, []).append(message)
    manager = engine.manager
    for conversation_id, sent in by_conversation.items():
        session = await manager.get_session_by_conversation(conversation_id, TEST_AGENT_ID)
        assert session is not None, (engine.name, conversation_id)
        turns = await manager.get_turns(session.id)
        expected_turns = [text for m in sent for text in (m.text, m.reply)]
        assert [t.content for t in turns] == expected_turns, engine.name
        assert [t.turn_number for t in turns] == list(range(1, len(expected_turns) + 1))
        assert [i.intent for i in session.state.intents_seen] == [m.intent for m in sent]
        captured: dict[str, str] = {}
        for m in sent:
            captured.update(m.captured)
        assert dict(session.state.captured_data) == captured, engine.name


def summarise(results: dict[str, Result]) -> dict[str, tuple[float, float]]:
    """Per variant: (requests per message, mean seconds per message)."""
    out = {}
    for variant, result in results.items():
        every = result.requests + result.first_requests
        out[variant] = (mean(every), mean(result.times))
    return out


def table_rows(label: str, results: dict[str, Result]) -> list[list[object]]:
    rows: list[list[object]] = []
    for variant, r in results.items():
        every = r.requests + r.first_requests
        first = f"{max(r.first_requests)}" if r.first_requests else "-"
        later = f"{max(r.requests)}" if r.requests else "-"
        rows.append(
            [
                label,
                variant,
                len(r.times),
                mean(every),
                f"{first} / {later}",
                mean(r.times) * 1000,
                percentile(r.times, 50) * 1000,
                percentile(r.times, 99) * 1000,
            ]
        )
    return rows


HEADERS = (
    "backend",
    "variant",
    "messages",
    "requests/msg",
    "first/later",
    "ms/msg",
    "p50 ms",
    "p99 ms",
)


async def main_async(args: argparse.Namespace) -> None:
    registry = bench_registry()
    rows: list[list[object]] = []
    ratios: list[str] = []

    def add(label: str, results: dict[str, Result]) -> None:
        rows.extend(table_rows(label, results))
        summary = summarise(results)
        (b_req, b_time), (f_req, f_time), (u_req, u_time), (p_req, p_time) = (
            summary[v] for v in VARIANTS
        )
        ratios.append(
            f"requests/message baseline/frontdesk [{label}]: {fmt_ratio(ratio(b_req, f_req))}"
        )
        ratios.append(
            f"time/message baseline/frontdesk [{label}]: {fmt_ratio(ratio(b_time, f_time))}"
        )
        ratios.append(
            f"requests/message frontdesk/fused [{label}]: {fmt_ratio(ratio(f_req, u_req))}"
        )
        ratios.append(f"time/message frontdesk/fused [{label}]: {fmt_ratio(ratio(f_time, u_time))}")
        ratios.append(
            f"requests/message baseline/pipeline [{label}]: {fmt_ratio(ratio(b_req, p_req))}"
        )
        ratios.append(
            f"time/message baseline/pipeline [{label}]: {fmt_ratio(ratio(b_time, p_time))}"
        )

    backends = chosen_backends(args)
    if "memory" in backends:
        from frontdesk import InMemoryStorage

        storage = InstrumentedStorage(InMemoryStorage())
        messages = make_messages(args.memory_messages, args.per_conversation)
        await run("memory", storage, registry, messages[:20], lambda: storage.total)  # warm-up
        storage = InstrumentedStorage(InMemoryStorage())
        results = await run("memory", storage, registry, messages, lambda: storage.total)
        add("memory", results)
    if "sqlite" in backends:
        async with sqlite_stack() as sqlite:
            storage = InstrumentedStorage(sqlite)
            messages = make_messages(args.messages, args.per_conversation)
            await run("sqlite", storage, registry, messages[:6], lambda: storage.total)
            add("sqlite", await run("sqlite", storage, registry, messages, lambda: storage.total))
    if "postgres" in backends:
        async with postgres_stack() as (postgres, version):
            print(f"# PostgreSQL {version} (postgres: psycopg, no network delay added)")
            storage = InstrumentedStorage(postgres)
            messages = make_messages(args.messages, args.per_conversation)
            await run("postgres", storage, registry, messages[:6], lambda: storage.total)
            results = await run("postgres", storage, registry, messages, lambda: storage.total)
            add("postgres", results)
    if "supabase" in backends:
        async with supabase_stack() as stack:
            print(f"# PostgreSQL {stack.server_version}")
            storage = InstrumentedStorage(stack.storage)
            gateway = stack.gateway
            messages = make_messages(args.messages, args.per_conversation)
            stack.set_delay_ms(0)
            await run("supabase", storage, registry, messages[:6], lambda: gateway.request_count)
            for delay in args.delay_ms:
                stack.set_delay_ms(delay)
                results = await run(
                    "supabase", storage, registry, messages, lambda: gateway.request_count
                )
                add(f"supabase {delay:g} ms", results)
    print_table(HEADERS, rows)
    print()
    print("first/later: requests for a conversation's first message / for the others")
    print_ratios(ratios)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages",
        type=int,
        default=60,
        help="messages per variant on sqlite, postgres and supabase (default 60)",
    )
    parser.add_argument(
        "--memory-messages",
        type=int,
        default=3000,
        help="messages per variant in memory (default 3000)",
    )
    parser.add_argument(
        "--per-conversation",
        type=int,
        default=10,
        help="messages per conversation; the messages go to the conversations round robin "
        "(default 10)",
    )
    add_backend_arguments(parser, delay_ms=(20, 0))
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.memory_messages, args.per_conversation = 6, 30, 3
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print_header("bench_message: storage requests and wall time per processed message", args)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
