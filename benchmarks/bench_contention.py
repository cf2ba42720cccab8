"""Benchmark 2: K workers writing to one session.

K asyncio workers (1, 2, 4, 8, 16 by default) share one storage object and write to the
same session, splitting a fixed number of operations between them (`--ops`, `--memory-ops`;
each run is repeated `--repeat` times on a fresh session and the repeats are added up).
Three ways of writing:

- `helpers`: the atomic state helpers -- each operation is `add_turn` or `add_intent_seen`
  (alternately), one storage call that never conflicts;
- `retry`: read-decide-write through `SessionManager.retry_on_conflict` with its defaults
  (5 attempts, jittered backoff from 10 ms up to 250 ms; `--attempts`, `--backoff`
  change them): `decide` reads a counter in
  `state.data` and commits the state with the counter + 1 at the version it read. It
  awaits once (`asyncio.sleep(0)`), as any real decision does, so that other workers run
  between the read and the commit on the memory backend too;
- `unchecked`: the original design's read-modify-write, for reference: get the session,
  write the state with the counter + 1, no version. It is expected to lose updates.

- then, **bursts through the message pipeline**: K messages delivered at once to one
  conversation (a user double- and triple-texting, a webhook redelivering in parallel),
  each by its own worker through `receive` and `complete`, under each double-texting
  policy (merge, enqueue, interrupt, reject). Counted per policy and K: messages answered
  per second and the ratio to K = 1, storage requests per message, runs completed,
  messages refused (reject only), gave up (neither answered nor refused: the goal is 0),
  lost (sent, not refused, not stored) and duplicated (stored or answered twice).

For each run: commits per second and the ratio to one worker, conflicts (decide runs that
hit `VersionConflictError`), retries per commit, operations that gave up after the last
attempt, p50/p99 latency of an operation (first read to successful commit), and lost
updates, counted from the stored session: the turns and intents present and numbered
without gaps, the counter equal to the number of successful commits, the version equal to
1 + every commit. frontdesk's modes must lose nothing: the script exits with status 1 if
they do.

    uv run python benchmarks/bench_contention.py [--backend memory|sqlite|postgres|supabase|all] [--workers 1 2 4]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import attrs

from benchmarks._common import (
    add_backend_arguments,
    bench_registry,
    chosen_backends,
    fmt_ratio,
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
from frontdesk import (
    AgentRegistry,
    ConversationBusyError,
    DoubleTexting,
    FrontdeskError,
    InboundMessage,
    NewTurn,
    RunsConfig,
    RunSupersededError,
    SessionChange,
    SessionManager,
    VersionConflictError,
)
from frontdesk.models import Session
from frontdesk.storage import Commit, StorageBackend
from frontdesk.testing import TEST_AGENT_ID, InstrumentedStorage, make_test_agent

MODES = ("helpers", "retry", "unchecked")
CHECKED_MODES = ("helpers", "retry")


@dataclass
class Run:
    backend: str
    mode: str
    workers: int
    operations: int
    attempts: int = 5
    backoff: float = 0.01
    elapsed: float = 0.0
    commits: int = 0
    decides: int = 0
    gave_up: int = 0
    lost: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.commits / self.elapsed if self.elapsed else 0.0

    @property
    def conflicts(self) -> int:
        return self.decides - self.commits if self.mode == "retry" else 0

    @property
    def retries_per_commit(self) -> float:
        if self.mode != "retry":
            return 0.0
        return ratio(self.decides - self.operations, self.commits)


def _split(total: int, workers: int) -> list[int]:
    return [total // workers + (1 if w < total % workers else 0) for w in range(workers)]


async def _new_session(manager: SessionManager) -> Session:
    session, _ = await manager.get_or_create_session(
        agent_id=TEST_AGENT_ID, conversation_id="one-hot-conversation", contact_id="contact"
    )
    return session


async def run_helpers(manager: SessionManager, run: Run) -> None:
    session = await _new_session(manager)
    sid = session.id

    async def worker(w: int, count: int) -> None:
        for i in range(count):
            started = time.perf_counter()
            if i % 2 == 0:
                await manager.add_turn(sid, role="user", content=f"worker {w} turn {i}")
            else:
                await manager.add_intent_seen(sid, f"w{w}-{i}")
            run.latencies.append(time.perf_counter() - started)
            run.commits += 1
            run.decides += 1

    counts = _split(run.operations, run.workers)
    started = time.perf_counter()
    await asyncio.gather(*(worker(w, n) for w, n in enumerate(counts)))
    run.elapsed = time.perf_counter() - started

    after = await manager.get_session(sid)
    turns = await manager.get_turns(sid)
    expected_turns = sum((n + 1) // 2 for n in counts)
    expected_intents = sum(n // 2 for n in counts)
    intents = after.state.intents_seen
    run.lost = abs(expected_turns - len(turns)) + abs(expected_intents - len(intents))
    run.lost += abs(after.version - (1 + run.operations))
    if [t.turn_number for t in turns] != list(range(1, len(turns) + 1)):
        run.lost += 1
    if [i.order for i in intents] != list(range(1, len(intents) + 1)):
        run.lost += 1
    wanted = {f"w{w}-{i}" for w, n in enumerate(counts) for i in range(1, n, 2)}
    run.lost += len(wanted - {i.intent for i in intents})


def _bump(session: Session) -> SessionChange:
    data = dict(session.state.data)
    data["counter"] = int(data.get("counter", 0)) + 1
    return SessionChange(state=attrs.evolve(session.state, data=data))


async def run_retry(manager: SessionManager, run: Run) -> None:
    session = await _new_session(manager)
    sid = session.id

    async def decide(current: Session) -> SessionChange:
        run.decides += 1
        await asyncio.sleep(0)
        return _bump(current)

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            try:
                await manager.retry_on_conflict(
                    sid, decide, attempts=run.attempts, backoff=run.backoff
                )
            except VersionConflictError:
                run.gave_up += 1
                continue
            run.latencies.append(time.perf_counter() - started)
            run.commits += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in _split(run.operations, run.workers)))
    run.elapsed = time.perf_counter() - started
    after = await manager.get_session(sid)
    run.lost = abs(run.commits - int(after.state.data.get("counter", 0)))
    run.lost += abs(after.version - (1 + run.commits))


async def run_unchecked(manager: SessionManager, run: Run) -> None:
    session = await _new_session(manager)
    sid, ws = session.id, manager.workspace_id
    storage: StorageBackend = manager.storage

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            current = await storage.get_session(ws, sid)
            assert current is not None
            run.decides += 1
            await asyncio.sleep(0)
            change = _bump(current)
            await storage.commit(ws, sid, Commit(state=change.state))
            run.latencies.append(time.perf_counter() - started)
            run.commits += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in _split(run.operations, run.workers)))
    run.elapsed = time.perf_counter() - started
    after = await manager.get_session(sid)
    run.lost = run.commits - int(after.state.data.get("counter", 0))


RUNNERS = {"helpers": run_helpers, "retry": run_retry, "unchecked": run_unchecked}


async def measure(
    backend: str,
    storage: StorageBackend,
    registry: AgentRegistry,
    args: argparse.Namespace,
    operations: int,
) -> list[Run]:
    """Every (mode, workers) run, `args.repeat` times, each on a new session, the worker
    counts in rising order, then falling, and so on (so that a steady drift of the machine's
    speed biases the ratios less); the repeats of a run are added up."""
    # A short warm-up (connections, caches), not counted.
    for mode in args.modes:
        await RUNNERS[mode](new_manager(storage, registry, "warmup"), Run(backend, mode, 2, 4))
    totals: dict[tuple[int, str], Run] = {}
    for repeat in range(args.repeat):
        order = args.workers if repeat % 2 == 0 else args.workers[::-1]
        for k in order:
            for mode in args.modes:
                run = Run(backend, mode, k, max(operations, k), args.attempts, args.backoff)
                await RUNNERS[mode](new_manager(storage, registry, f"{mode}-{k}"), run)
                total = totals.setdefault(
                    (k, mode), Run(backend, mode, k, 0, args.attempts, args.backoff)
                )
                total.operations += run.operations
                total.elapsed += run.elapsed
                total.commits += run.commits
                total.decides += run.decides
                total.gave_up += run.gave_up
                total.lost += run.lost
                total.latencies += run.latencies
    return [totals[(k, mode)] for k in args.workers for mode in args.modes]


# -- bursts through the message pipeline ------------------------------------------------------


@dataclass
class Burst:
    backend: str
    policy: str
    k: int
    bursts: int = 0
    sent: int = 0
    answered: int = 0
    refused: int = 0
    gave_up: int = 0
    lost: int = 0
    duplicated: int = 0
    runs: int = 0
    requests: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def handled_per_second(self) -> float:
        return (self.answered + self.refused) / self.elapsed if self.elapsed else 0.0


def burst_agent(policy: str) -> str:
    return f"bench-{policy}"


def burst_registry() -> AgentRegistry:
    registry = bench_registry()
    for policy in DoubleTexting:
        runs = RunsConfig(double_texting=policy, timeout=60)
        registry.register(make_test_agent(id=burst_agent(policy), runs=runs))
    return registry


async def one_burst(manager: SessionManager, result: Burst, conversation: str) -> None:
    """K messages at once to one conversation, each delivered by its own worker."""
    agent = burst_agent(result.policy)
    answered: list[int] = []
    refused: list[str] = []
    failed: list[str] = []

    async def deliver(i: int) -> None:
        started = time.perf_counter()
        message = InboundMessage(
            agent_id=agent,
            conversation_id=conversation,
            contact_id=conversation,
            message_id=f"{conversation}-{i}",
            content=f"message {i}",
        )
        try:
            receipt = await manager.receive(message)
        except ConversationBusyError:
            refused.append(message.message_id)
            return
        except FrontdeskError:
            failed.append(message.message_id)
            return
        run = receipt.run
        while run is not None:
            reply = SessionChange(turns=[NewTurn(role="assistant", content="ok")])
            try:
                done = await manager.complete(run, reply)
            except RunSupersededError:
                break  # the run that took over answers these messages
            except FrontdeskError:
                failed.append(message.message_id)
                break
            answered.extend(turn.turn_number for turn in run.inputs)
            result.runs += 1
            run = done.next_run
        result.latencies.append(time.perf_counter() - started)

    storage = manager.storage
    assert isinstance(storage, InstrumentedStorage)
    calls = storage.total
    started = time.perf_counter()
    await asyncio.gather(*(deliver(i) for i in range(result.k)))
    result.elapsed += time.perf_counter() - started
    result.requests += storage.total - calls

    session = await manager.get_session_by_conversation(conversation, agent)
    users = []
    if session is not None:
        users = [t for t in await manager.get_turns(session.id) if t.role == "user"]
    stored_ids = [t.message_id for t in users]
    numbers = {t.turn_number for t in users}
    result.bursts += 1
    result.sent += result.k
    result.refused += len(refused)
    result.answered += len(set(answered) & numbers)
    result.duplicated += (len(stored_ids) - len(set(stored_ids))) + (
        len(answered) - len(set(answered))
    )
    result.lost += max(0, result.k - len(refused) - len(set(stored_ids)))
    result.gave_up += len(numbers - set(answered))


async def measure_bursts(
    backend: str, storage: StorageBackend, args: argparse.Namespace, messages: int
) -> list[Burst]:
    """For each policy and K: bursts of K messages until about `messages` were sent."""
    registry = burst_registry()
    counted = InstrumentedStorage(storage)
    results = []
    for policy in args.policies:
        for k in args.workers:
            result = Burst(backend, policy, k)
            manager = new_manager(counted, registry, f"burst-{policy}-{k}")
            for b in range(max(1, messages // k)):
                await one_burst(manager, result, f"wa:{policy}-{k}-{b}")
            results.append(result)
    return results


BURST_HEADERS = (
    "backend",
    "policy",
    "K",
    "sent",
    "answered",
    "refused",
    "gave up",
    "lost",
    "duplicated",
    "runs",
    "requests/msg",
    "handled/s",
    "vs K=1",
    "p99 ms",
)


def burst_rows_and_ratios(label: str, results: list[Burst]) -> tuple[list[list[object]], list[str]]:
    rows: list[list[object]] = []
    ratios: list[str] = []
    single = {r.policy: r.handled_per_second for r in results if r.k == 1}
    for r in results:
        rows.append(
            [
                label,
                r.policy,
                r.k,
                r.sent,
                r.answered,
                r.refused,
                r.gave_up,
                r.lost,
                r.duplicated,
                r.runs,
                ratio(r.requests, r.sent),
                r.handled_per_second,
                fmt_ratio(ratio(r.handled_per_second, single.get(r.policy, float("nan")))),
                percentile(r.latencies, 99) * 1000,
            ]
        )
    for policy in dict.fromkeys(r.policy for r in results):
        mine = [r for r in results if r.policy == policy]
        top = max(mine, key=lambda r: r.k)
        ratios.append(
            f"bursts [{label}, {policy}]: gave up {sum(r.gave_up for r in mine)}, lost "
            f"{sum(r.lost for r in mine)}, duplicated {sum(r.duplicated for r in mine)} of "
            f"{sum(r.sent for r in mine)} messages; requests/message at K={top.k}: "
            f"{ratio(top.requests, top.sent):.2f}"
        )
    return rows, ratios


HEADERS = (
    "backend",
    "mode",
    "workers",
    "commits",
    "gave up",
    "commits/s",
    "vs 1 worker",
    "conflicts",
    "retries/commit",
    "p50 ms",
    "p99 ms",
    "lost",
)


def rows_and_ratios(label: str, runs: list[Run]) -> tuple[list[list[object]], list[str]]:
    rows: list[list[object]] = []
    ratios: list[str] = []
    single = {r.mode: r.throughput for r in runs if r.workers == 1}
    for r in runs:
        base = single.get(r.mode, float("nan"))
        rows.append(
            [
                label,
                r.mode,
                r.workers,
                r.commits,
                r.gave_up,
                r.throughput,
                fmt_ratio(ratio(r.throughput, base)),
                r.conflicts,
                r.retries_per_commit,
                percentile(r.latencies, 50) * 1000,
                percentile(r.latencies, 99) * 1000,
                r.lost,
            ]
        )
    for mode in dict.fromkeys(r.mode for r in runs):
        mine = [r for r in runs if r.mode == mode and r.workers != 1]
        base = single.get(mode, float("nan"))
        parts = " ".join(f"{r.workers}={fmt_ratio(ratio(r.throughput, base))}" for r in mine)
        ratios.append(f"throughput vs 1 worker [{label}, {mode}]: {parts}")
    checked = [r for r in runs if r.mode in CHECKED_MODES]
    ratios.append(
        f"lost updates [{label}, helpers+retry]: {sum(r.lost for r in checked)} of "
        f"{sum(r.commits for r in checked)} commits"
    )
    unchecked = [r for r in runs if r.mode == "unchecked"]
    if unchecked:
        ratios.append(
            f"lost updates [{label}, unchecked]: {sum(r.lost for r in unchecked)} of "
            f"{sum(r.commits for r in unchecked)} writes"
        )
    return rows, ratios


async def main_async(args: argparse.Namespace) -> int:
    registry = bench_registry()
    rows: list[list[object]] = []
    ratios: list[str] = []
    burst_rows: list[list[object]] = []
    lost = 0

    async def bursts(label: str, storage: StorageBackend, messages: int) -> None:
        nonlocal lost
        if not args.policies:
            return
        results = await measure_bursts(label, storage, args, messages)
        more_rows, more_ratios = burst_rows_and_ratios(label, results)
        burst_rows.extend(more_rows)
        ratios.extend(more_ratios)
        lost += sum(r.gave_up + r.lost + r.duplicated for r in results)

    backends = chosen_backends(args)
    if "memory" in backends:
        from frontdesk import InMemoryStorage

        runs = await measure("memory", InMemoryStorage(), registry, args, args.memory_ops)
        more_rows, more_ratios = rows_and_ratios("memory", runs)
        rows += more_rows
        ratios += more_ratios
        lost += sum(r.lost for r in runs if r.mode in CHECKED_MODES)
        await bursts("memory", InMemoryStorage(), args.memory_ops)
    if "sqlite" in backends:
        async with sqlite_stack() as sqlite:
            runs = await measure("sqlite", sqlite, registry, args, args.ops)
            more_rows, more_ratios = rows_and_ratios("sqlite", runs)
            rows += more_rows
            ratios += more_ratios
            lost += sum(r.lost for r in runs if r.mode in CHECKED_MODES)
            await bursts("sqlite", sqlite, args.ops)
    if "postgres" in backends:
        async with postgres_stack(pool_size=max(args.workers) + 8) as (postgres, version):
            print(f"# PostgreSQL {version} (postgres: psycopg, no network delay added)")
            runs = await measure("postgres", postgres, registry, args, args.ops)
            more_rows, more_ratios = rows_and_ratios("postgres", runs)
            rows += more_rows
            ratios += more_ratios
            lost += sum(r.lost for r in runs if r.mode in CHECKED_MODES)
            await bursts("postgres", postgres, args.ops)
    if "supabase" in backends:
        async with supabase_stack(pool_size=max(args.workers) + 8) as stack:
            print(f"# PostgreSQL {stack.server_version}")
            for delay in args.delay_ms:
                stack.set_delay_ms(delay)
                label = f"supabase {delay:g} ms"
                runs = await measure(label, stack.storage, registry, args, args.ops)
                more_rows, more_ratios = rows_and_ratios(label, runs)
                rows += more_rows
                ratios += more_ratios
                lost += sum(r.lost for r in runs if r.mode in CHECKED_MODES)
                await bursts(label, stack.storage, args.ops)
    print_table(HEADERS, rows)
    print()
    print(
        "conflicts: decide runs that hit a VersionConflictError; gave up: operations whose "
        "last attempt conflicted too; lost: updates missing from the stored session"
    )
    if burst_rows:
        print()
        print_table(BURST_HEADERS, burst_rows)
        print()
        print(
            "bursts: K messages at once to one conversation through receive/complete; "
            "answered: stored messages a completed run answered; gave up: stored, never "
            "answered; lost: sent, not refused, not stored; handled/s: answered + refused"
        )
    if lost:
        print(f"FAILED: frontdesk lost {lost} update(s) or message(s)", file=sys.stderr)
    print_ratios(ratios)
    return 1 if lost else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8, 16],
        help="worker counts (default 1 2 4 8 16; include 1 for the ratios)",
    )
    parser.add_argument(
        "--ops", type=int, default=80, help="operations per run on Supabase (default 80)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs of each (mode, workers), added up (default 2)",
    )
    parser.add_argument(
        "--memory-ops", type=int, default=600, help="operations per run in memory (default 600)"
    )
    parser.add_argument(
        "--attempts",
        type=int,
        default=5,
        help="retry_on_conflict's attempts (default 5, the library's default)",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=0.01,
        help="retry_on_conflict's first backoff ceiling, in seconds (default 0.01, the "
        "library's default; it doubles up to 0.25)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="ways of writing to measure (default: all)",
    )
    parser.add_argument(
        "--policies",
        nargs="*",
        choices=[str(p) for p in DoubleTexting],
        default=[str(p) for p in DoubleTexting],
        help="double-texting policies of the burst runs (default: all; none to skip them)",
    )
    add_backend_arguments(parser, delay_ms=(20,))
    args = parser.parse_args(argv)
    if args.quick:
        args.workers, args.ops, args.memory_ops, args.repeat = [1, 2, 4], 12, 40, 1
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print_header("bench_contention: K workers writing to one session", args)
    raise SystemExit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
