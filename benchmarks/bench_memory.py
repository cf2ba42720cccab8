"""Benchmark 4: what `InMemoryStorage` costs over a bare dict and a lock.

Operations per second, single task, one session whose state holds N intents (10 and 100 by
default), 5 captured fields and a small `data` object:

- `merge`: a commit that merges one captured-data key (what `update_captured_data` does);
- `turn`: a commit that appends one turn;
- `get`: reading the session.

Five ways, measured in rotating order, each for a fixed time, the median of the repeats:

- `dict+copies`: the baseline. A dict of records behind a `threading.Lock`, the state kept
  as a dict whose immutable parts (the intents and templates, as tuples) are shared and
  whose mutable parts are copied, as `InMemoryStorage` does: `captured_data` copied,
  `data` deep-copied, on the way in (to build the new state) and again on the way out, so
  nothing the caller holds aliases stored data. It also bumps the version and stamps the
  time. It returns dicts.
- `InMemoryStorage`: the storage primitive (`commit` with a `MergeCapturedData` operation /
  with one `NewTurn`; `get_session`).
- `SessionManager`: the same through the manager (`update_captured_data`, `add_turn`,
  `get_session`) over an `InMemoryStorage`.
- `dict+copies+yield`: the baseline plus one `await asyncio.sleep(0)` per call, which
  `InMemoryStorage` does before each primitive so that tasks interleave as they would over
  a network: the part of the difference that is that deliberate yield.
- `dict, no copies`: the floor: the baseline without the deep copies (unsafe: callers
  alias stored data), to show what the copies themselves cost.

All are coroutines awaited in a loop, one task. The ratios are against `dict+copies`.

    uv run python benchmarks/bench_memory.py [--intents 10 100] [--seconds 0.2] [--repeat 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import copy
import statistics
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from benchmarks._common import (
    bench_registry,
    fmt_ratio,
    print_header,
    print_ratios,
    print_table,
    ratio,
)
from frontdesk import InMemoryStorage, SessionManager, SessionState
from frontdesk.models import IntentSeen, NewTurn, Role
from frontdesk.storage import Commit, MergeCapturedData
from frontdesk.storage.memory import _copy_json
from frontdesk.testing import TEST_AGENT_ID

OPERATIONS = ("merge", "turn", "get")
VARIANTS = (
    "dict+copies",
    "InMemoryStorage",
    "SessionManager",
    "dict+copies+yield",
    "dict, no copies",
)
DICT_VARIANTS = ("dict+copies", "dict+copies+yield", "dict, no copies")
BASELINE = "dict+copies"
WORKSPACE = "bench"

Op = Callable[[int], Awaitable[Any]]


def initial_state(intents: int) -> SessionState:
    now = datetime.now(UTC)
    return SessionState(
        intents_seen=tuple(IntentSeen(f"intent-{i}", i + 1, now) for i in range(intents)),
        templates_sent=("welcome",),
        captured_data={f"field{i}": f"captured value {i}" for i in range(5)},
        data={"cart": [{"sku": "SOCK-M", "qty": 2}], "locale": "es"},
    )


class DictStorage:
    """The baseline: a dict and a lock, its state copied the way InMemoryStorage copies."""

    def __init__(self, *, copies: bool = True, yields: bool = False) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        self._copy = _copy_state if copies else _no_copy
        self._yields = yields

    def create(self, workspace_id: str, state: SessionState) -> str:
        session_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        self._records[session_id] = {
            "session": {
                "id": session_id,
                "workspace_id": workspace_id,
                "agent_id": TEST_AGENT_ID,
                "conversation_id": "c",
                "contact_id": "u",
                "version": 1,
                "status": "active",
                "current_mode": "greeting",
                "created_at": now,
                "updated_at": now,
                "last_activity_at": now,
            },
            "state": {
                "intents_seen": tuple((i.intent, i.order, i.seen_at) for i in state.intents_seen),
                "templates_sent": tuple(state.templates_sent),
                "captured_data": dict(state.captured_data),
                "data": copy.deepcopy(dict(state.data)),
            },
            "turns": [],
        }
        return session_id

    def _find(self, workspace_id: str, session_id: str) -> dict[str, Any]:
        record = self._records.get(session_id)
        if record is None or record["session"]["workspace_id"] != workspace_id:
            raise KeyError(session_id)
        return record

    async def merge(self, workspace_id: str, session_id: str, data: dict[str, str]) -> Any:
        if self._yields:
            await asyncio.sleep(0)
        with self._lock:
            record = self._find(workspace_id, session_id)
            state = self._copy(record["state"])
            state["captured_data"].update(data)
            return self._write(record, state)

    async def add_turn(self, workspace_id: str, session_id: str, content: str) -> Any:
        if self._yields:
            await asyncio.sleep(0)
        with self._lock:
            record = self._find(workspace_id, session_id)
            state = self._copy(record["state"])
            now = datetime.now(UTC)
            turn = {
                "session_id": session_id,
                "turn_number": len(record["turns"]) + 1,
                "role": "user",
                "content": content,
                "intent_detected": None,
                "confidence": None,
                "tools_called": [],
                "tokens_used": 0,
                "created_at": now,
            }
            record["turns"].append(turn)
            record["session"]["last_activity_at"] = now
            return self._write(record, state), dict(turn)

    async def get(self, workspace_id: str, session_id: str) -> Any:
        if self._yields:
            await asyncio.sleep(0)
        with self._lock:
            record = self._find(workspace_id, session_id)
            return {**record["session"], "state": self._copy(record["state"])}

    def _write(self, record: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        session = record["session"]
        session["version"] += 1
        session["updated_at"] = datetime.now(UTC)
        record["state"] = state
        return {**session, "state": self._copy(state)}


def _copy_state(state: dict[str, Any]) -> dict[str, Any]:
    # Tuples are shared (immutable); the dicts are copied, `data` all the way down, with the
    # same JSON copier InMemoryStorage uses.
    return {
        **state,
        "captured_data": dict(state["captured_data"]),
        "data": _copy_json(state["data"]),
    }


def _no_copy(value: Any) -> Any:
    return value


async def make_ops(variant: str, intents: int) -> dict[str, Op]:
    """The three operations of one variant, each on a session of its own."""
    state = initial_state(intents)
    merge = {"field0": "changed value"}
    if variant in DICT_VARIANTS:
        store = DictStorage(
            copies=variant != "dict, no copies", yields=variant == "dict+copies+yield"
        )
        sids = {op: store.create(WORKSPACE, state) for op in OPERATIONS}
        return {
            "merge": lambda i: store.merge(WORKSPACE, sids["merge"], merge),
            "turn": lambda i: store.add_turn(WORKSPACE, sids["turn"], f"turn {i}"),
            "get": lambda i: store.get(WORKSPACE, sids["get"]),
        }
    storage = InMemoryStorage()
    manager = SessionManager(storage, workspace_id=WORKSPACE, registry=bench_registry())
    sids = {}
    for op in OPERATIONS:
        session = await manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id=op, contact_id="u", initial_state=state
        )
        sids[op] = session.id
    if variant == "InMemoryStorage":
        merge_commit = Commit(state_ops=(MergeCapturedData(merge),))
        return {
            "merge": lambda i: storage.commit(WORKSPACE, sids["merge"], merge_commit),
            "turn": lambda i: storage.commit(
                WORKSPACE,
                sids["turn"],
                Commit(turns=(NewTurn(role=Role.USER, content=f"turn {i}"),)),
            ),
            "get": lambda i: storage.get_session(WORKSPACE, sids["get"]),
        }
    return {
        "merge": lambda i: manager.update_captured_data(sids["merge"], merge),
        "turn": lambda i: manager.add_turn(sids["turn"], role="user", content=f"turn {i}"),
        "get": lambda i: manager.get_session(sids["get"]),
    }


async def rate(op: Op, seconds: float) -> float:
    """Operations per second of `op`, run for at least `seconds` (and 20 times)."""
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(20):
            await op(count)
            count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


async def main_async(args: argparse.Namespace) -> None:
    rows: list[list[object]] = []
    ratios: list[str] = []
    for intents in args.intents:
        ops = {variant: await make_ops(variant, intents) for variant in VARIANTS}
        for variant in VARIANTS:  # warm-up
            for op in OPERATIONS:
                await rate(ops[variant][op], args.seconds / 10)
        samples: dict[tuple[str, str], list[float]] = {}
        for repeat in range(args.repeat):
            for op in OPERATIONS:
                shift = repeat % len(VARIANTS)
                for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                    value = await rate(ops[variant][op], args.seconds)
                    samples.setdefault((op, variant), []).append(value)
        for op in OPERATIONS:
            base = statistics.median(samples[(op, BASELINE)])
            for variant in VARIANTS:
                value = statistics.median(samples[(op, variant)])
                rows.append(
                    [intents, op, variant, value, 1e6 / value, fmt_ratio(ratio(value, base))]
                )
            for variant in ("InMemoryStorage", "SessionManager"):
                value = statistics.median(samples[(op, variant)])
                ratios.append(
                    f"ops/s {variant}/{BASELINE} [{op}, {intents} intents]: "
                    f"{fmt_ratio(ratio(value, base))}"
                )
    print_table(("intents", "operation", "variant", "ops/s", "us/op", "vs dict+copies"), rows)
    print_ratios(ratios)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--intents",
        type=int,
        nargs="+",
        default=[10, 100],
        help="intents in the session's state (default 10 100)",
    )
    parser.add_argument(
        "--seconds", type=float, default=0.2, help="time per measurement (default 0.2)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="measurements per operation and variant (default 5)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.intents, args.seconds, args.repeat = [10], 0.01, 1
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print_header("bench_memory: InMemoryStorage against a dict and a lock", args)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
