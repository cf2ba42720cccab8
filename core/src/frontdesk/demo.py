"""`frontdesk demo`: simulated WhatsApp traffic answered by the installed agents, then checked.

Many conversations run at once; users double- and triple-text, so several workers handle
one conversation at the same moment, and the webhook redelivers some messages (2-3 times,
some at the same moment). Each delivery is processed the way a webhook handler would, with
the message pipeline only:

1. `receive` records the message (a redelivery is a duplicate: nothing to do) and says
   whether this worker answers now;
2. the `Engine` answers each run handed to the worker with the offline model
   (`frontdesk.testing.OfflineModel`: keyword intents and labelled template replies, no
   key, no network): intent, thresholds, the orchestrator and the next mode from the
   agent's state machine, all recorded by one `complete`, which hands over whatever
   arrived meanwhile.

One worker crashes mid-run: its messages are picked up after the run expires (by the
conversation's next message, or by `resume_abandoned` at the end). Some customers ask for
a person mid-conversation: the engine hands the conversation off, and their later
messages are held for that person (recorded, answered by no run). When a conversation's
messages are all answered it is closed, or handed off to a human. Then every conversation
is checked: each message stored once, and answered once by a run or held for a person,
turn numbers without gaps, the version counting every write. Nothing is assumed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import attrs
from attrs import define, field, frozen

from .config import AgentConfig, DoubleTexting, RunsConfig
from .engine import Decision, Engine, EngineSettings, RunOutcome
from .errors import (
    ConversationBusyError,
    FrontdeskError,
    RunSupersededError,
    StorageError,
    ValidationError,
)
from .models import Role, Session, SessionStatus, Turn
from .pipeline import Completion, InboundMessage, Run
from .registry import AgentRegistry
from .sessions import SessionChange, SessionManager
from .storage.base import StorageBackend
from .storage.memory import InMemoryStorage
from .testing.instrumented import InstrumentedStorage
from .testing.offline import OfflineModel

__all__ = [
    "MAX_CONVERSATIONS",
    "MAX_MESSAGES",
    "MAX_TOTAL_MESSAGES",
    "MAX_WORKERS",
    "DemoCheck",
    "DemoReport",
    "check_demo_sizes",
    "run_demo",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@frozen
class _Line:
    text: str


# What customers say, by agent. The engine, with the offline model, decides what each
# message means and where the conversation goes; the checks compare what it decided with
# what was stored.
_SCRIPTS: dict[str, tuple[_Line, ...]] = {
    "sales": tuple(
        _Line(text)
        for text in (
            "Hola! 👋",
            "¿Tenéis la crema de caléndula en 200 ml?",
            "¿Cuánto cuesta?",
            "Vale, me la llevo",
            "Sí, el pack de 3 me interesa",
            "Soy Lucía Pérez",
            "Calle Feria 14, 2ºB",
            "Sevilla, 41003",
            "Mi móvil es 600 111 222",
            "Todo correcto, confirmo",
        )
    ),
    "support": tuple(
        _Line(text)
        for text in (
            "Hi, my order arrived broken",
            "Order number is 48213",
            "The lid is cracked and it leaks",
            "I tried tightening it, still leaks",
            "Photo sent",
            "Can I get a replacement?",
            "Email is sam@example.com",
            "Thanks, that worked",
        )
    ),
}
_HUMAN_MODES = frozenset({"handoff", "escalated", "human"})

# What a customer who wants a person says (the offline model hands such a message off).
_ASKS_FOR_A_PERSON: dict[str, _Line] = {
    "sales": _Line("¿Puedo hablar con una persona?"),
    "support": _Line("Can I talk to a person, please?"),
}
_GENERIC_ASK = _Line("I would like to talk to a person")


def _generic_script(agent: AgentConfig) -> tuple[_Line, ...]:
    return tuple(_Line(f"message {i} for {agent.name}") for i in range(1, 9))


@define
class _Stats:
    duplicates: int = 0  # redeliveries recognised by receive
    refused: int = 0  # deliveries refused under the reject policy (the sender retries)
    runs: int = 0  # runs completed
    resumed: int = 0  # runs claimed by resume_abandoned
    errors: Counter[str] = field(factory=Counter)  # by message, each with its count


RUN_TIMEOUT = 1.0
"""`runs.timeout` of the demo's agents, in seconds: how soon a crashed worker's run expires."""


@frozen
class _Message:
    conversation: int
    index: int
    line: _Line
    crash: bool = False  # this delivery's worker dies after receiving, before completing


@define
class _Conversation:
    number: int
    agent: AgentConfig
    lines: tuple[_Line, ...]
    ending: SessionStatus
    session_ids: set[str] = field(factory=set)
    remaining: int = 0
    final_status: SessionStatus | None = None  # what the committed ending chose
    answered: Counter[int] = field(factory=Counter)  # message index -> completed runs
    intents: Counter[str] = field(factory=Counter)  # what the engine decided, per run
    turn_intents: dict[int, str | None] = field(factory=dict)  # message index -> its run's
    decided: tuple[int, str] = (0, "")  # (version, mode) of the latest completed run
    writes: int = 1  # the create, then each receive, complete and ending that applied
    crashed: tuple[int, ...] = ()  # messages a crashed worker's run held


@frozen
class DemoCheck:
    """One verified property of the run."""

    name: str
    passed: bool
    detail: str


@frozen
class DemoReport:
    """What the demo did and what it verified."""

    seed: int
    storage: str
    conversations: int
    messages: int
    sessions: int
    turns: int
    deliveries: int
    duplicates: int
    refused: int
    runs: int
    superseded: int
    resumed: int
    policy: str
    storage_calls: int
    latency_ms: dict[str, float]
    elapsed: float
    checks: tuple[DemoCheck, ...]

    lost_updates: int
    workspace: str = ""
    held: int = 0
    """Messages that arrived after their conversation was handed off: stored on the
    handed-off session for a person, answered by no run (counted from the stored turns)."""
    removed_sessions: int | None = None
    """How many sessions the clean-up removed at the end; None when the workspace was kept."""

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(check.passed for check in self.checks)

    @property
    def calls_per_message(self) -> float:
        """Storage requests per message (redeliveries and retries included)."""
        return self.storage_calls / self.messages if self.messages else 0.0


# The most the demo simulates: it keeps the traffic and what it expects in memory.
MAX_CONVERSATIONS = 100_000
MAX_MESSAGES = 100  # per conversation
MAX_WORKERS = 1_000
MAX_TOTAL_MESSAGES = 200_000  # conversations x messages: about 0.5 GB of turns in memory


def check_demo_sizes(conversations: int, messages: int, workers: int) -> None:
    """Raise `ValidationError` (naming the size and its bound) unless the sizes are runnable."""
    for name, value, most in (
        ("conversations", conversations, MAX_CONVERSATIONS),
        ("messages", messages, MAX_MESSAGES),
        ("workers", workers, MAX_WORKERS),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise ValidationError(
                name, f"must be a whole number from 1 to {most:,}, got {value!r}", limit=most
            )
    if conversations * messages > MAX_TOTAL_MESSAGES:
        raise ValidationError(
            "conversations x messages",
            f"{conversations:,} x {messages:,} is too many messages",
            limit=f"{MAX_TOTAL_MESSAGES:,}",
        )


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run_demo(
    storage: StorageBackend,
    registry: AgentRegistry,
    *,
    conversations: int = 200,
    messages: int = 8,
    workers: int = 16,
    seed: int | None = None,
    storage_name: str = "memory",
    on_progress: Callable[[int, int], None] | None = None,
    keep: bool = True,
    policy: str = DoubleTexting.MERGE,
    on_start: Callable[[str], None] | None = None,
) -> DemoReport:
    """Run the simulation on `storage` with the agents of `registry`, and check it.

    It writes to a workspace of its own, `demo-SEED-XXXXXXXX`, passed to `on_start` once
    the storage has answered, before any traffic; with `keep=False` every session in it is
    deleted once the checks are done, or when the demo stops early (an error, or a
    cancellation such as Ctrl-C under `asyncio.run`).

    `messages` is the most a conversation sends (each sends between half of it and all).
    The same `seed` gives the same traffic: who says what, in which bursts, in which order
    they arrive. How the workers interleave, and so the conflicts and the order of turns
    within a burst, depends on timing and varies from run to run; the checks hold for all.
    `on_progress(done, total)` is called after each delivery. `policy` is the
    double-texting policy every agent runs with (merge, enqueue, interrupt, reject).

    Three steps, each its own unit: the traffic (`_plan` and `_arrivals`), the workers
    (`_run_workers`, each message handled by `_handle_message`), the checks (`_verify`).
    Before any traffic, one read checks that the storage answers at all.

        report = await run_demo(InMemoryStorage(), agent_registry, conversations=50)
        assert report.ok, [check for check in report.checks if not check.passed]
    """
    check_demo_sizes(conversations, messages, workers)
    policy = DoubleTexting(policy)
    if not registry.list():
        raise FrontdeskError("no agents installed: pip install frontdesk-sales (or another)")
    registry = _with_runs(registry, policy)
    agents = registry.list()
    seed = seed if seed is not None else random.SystemRandom().randrange(1, 1_000_000)
    rng = random.Random(seed)  # noqa: S311 - reproducible traffic, not secrets
    workspace = f"demo-{seed}-{uuid.uuid4().hex[:8]}"
    await _check_reachable(storage, storage_name, workspace, agents[0].id)

    plans = _plan(agents, conversations, messages, rng)
    arrivals = _arrivals(plans, rng)
    stats = _Stats()
    measured = _SettlingStorage(storage)
    manager = _DemoManager(measured, workspace_id=workspace, registry=registry)
    # The offline model stands in for the agents' language models: no key, no network.
    engine = Engine(manager, model=OfflineModel(agents), settings=EngineSettings(backoff=0))

    if on_start is not None:
        on_start(workspace)
    try:
        started = time.perf_counter()
        await _run_workers(
            arrivals,
            lambda message: _handle_message(engine, plans[message.conversation], message, stats),
            workers=workers,
            errors=stats.errors,
            on_progress=on_progress,
        )
        await _resume_crashed(engine, plans, stats)
        elapsed = time.perf_counter() - started
        calls_during_run = measured.total
        latencies = [s for values in measured.durations.values() for s in values]

        verified = await _verify(manager, plans, stats.errors)
    except BaseException:
        # Interrupted (Ctrl-C cancels this task) or failed: what was written goes too.
        if not keep:
            await measured.settle()  # writes already sent land first, then go too
            await _clean_up_after_stop(manager, workspace)
        raise
    removed = None if keep else await _clean_up(manager)
    return DemoReport(
        seed=seed,
        storage=storage_name,
        conversations=conversations,
        messages=sum(len(plan.lines) for plan in plans),
        sessions=verified.sessions,
        turns=verified.turns,
        deliveries=len(arrivals),
        duplicates=stats.duplicates,
        refused=stats.refused,
        runs=stats.runs,
        superseded=manager.superseded,
        resumed=stats.resumed,
        policy=str(policy),
        storage_calls=calls_during_run,
        latency_ms={
            "p50": _percentile(latencies, 0.5) * 1000,
            "p95": _percentile(latencies, 0.95) * 1000,
            "p99": _percentile(latencies, 0.99) * 1000,
            "max": max(latencies, default=0.0) * 1000,
        },
        elapsed=elapsed,
        checks=verified.checks,
        lost_updates=verified.lost,
        workspace=workspace,
        held=verified.held,
        removed_sessions=removed,
    )


async def _clean_up(manager: SessionManager) -> int:
    """Delete every session of the demo's workspace; return how many."""
    removed = await manager.purge(inactive_for=timedelta(0))
    # A session active in the very instant of the purge is not "older than now": delete
    # what is left one by one.
    while page := (await manager.list_sessions(limit=100)).items:
        for item in page:
            removed += await manager.delete_session(item.id)
    return removed


class _SettlingStorage(InstrumentedStorage):
    """The demo's measured storage, which can also wait for the calls still in flight.

    A cancelled caller stops waiting, but its call goes on (in SQLite's threads, or on
    the server): each call runs as a task of its own, shielded, so that `settle()` can
    wait for it to land before the demo's sessions are deleted. The in-memory storage
    works on the event loop alone, so nothing of a cancelled call goes on: its calls run
    as they are, without the task's cost.
    """

    def __init__(self, inner: StorageBackend) -> None:
        super().__init__(inner)
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._on_the_loop = isinstance(inner, InMemoryStorage)

    async def _call(self, name: str, call: Callable[[], Awaitable[T]]) -> T:
        if self._on_the_loop:
            return await super()._call(name, call)
        task = asyncio.ensure_future(super()._call(name, call))
        self._in_flight.add(task)
        task.add_done_callback(self._landed)
        return await asyncio.shield(task)

    def _landed(self, task: asyncio.Future[Any]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled():
            task.exception()  # its caller, if still waiting, has it; if not, nobody needs it

    async def settle(self) -> None:
        """Wait until every call made so far has finished, however it ended."""
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))


async def _clean_up_after_stop(manager: SessionManager, workspace: str) -> None:
    """`_clean_up` for a demo that stopped early; a failure is logged, not raised, so that
    the reason the demo stopped is the error the caller sees."""
    try:
        removed = await _clean_up(manager)
    except Exception as exc:  # noqa: BLE001 - the original error goes on; this one is logged
        logger.error(
            "the demo stopped and its workspace %s could not be deleted (%s); delete it with "
            "`frontdesk sessions purge --workspace %s --inactive-for 1s --yes`",
            workspace,
            _describe(exc),
            workspace,
        )
    else:
        logger.info("the demo stopped; deleted workspace %s (%d sessions)", workspace, removed)


async def _check_reachable(
    storage: StorageBackend, storage_name: str, workspace: str, agent_id: str
) -> None:
    """One read before any traffic, so an unreachable store fails once, not per message."""
    try:
        await storage.find_active_session(workspace, "demo-reachability-check", agent_id)
    except FrontdeskError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StorageError(
            f"the {storage_name} storage did not answer, so the demo did not start: {reason}"
        ) from exc


# -- the traffic ------------------------------------------------------------------------------


def _plan(
    agents: Sequence[AgentConfig], conversations: int, messages: int, rng: random.Random
) -> list[_Conversation]:
    """Who talks to which agent, what they say, and how each conversation should end."""
    plans: list[_Conversation] = []
    for number in range(conversations):
        agent = agents[number % len(agents)]
        script = _SCRIPTS.get(agent.id) or _generic_script(agent)
        count = rng.randint(max(1, messages // 2), messages)
        lines = tuple(script[i % len(script)] for i in range(count))  # long chats repeat
        ending = SessionStatus.HANDED_OFF if rng.random() < 0.2 else SessionStatus.CLOSED
        # Half of those to be handed off ask for a person mid-conversation, and write
        # again after it: the engine hands off there, and what follows is held for a human.
        if ending is SessionStatus.HANDED_OFF and count >= 3 and rng.random() < 0.5:
            asks = rng.randint(1, count - 2)
            ask = _ASKS_FOR_A_PERSON.get(agent.id, _GENERIC_ASK)
            lines = (*lines[:asks], ask, *lines[asks + 1 :])
        plans.append(_Conversation(number, agent, lines, ending, remaining=count))
    return plans


def _arrivals(plans: Sequence[_Conversation], rng: random.Random) -> list[_Message]:
    """Every message, in the order it arrives.

    Users double- and triple-text: a conversation's messages arrive in bursts of 1-3, and
    the bursts of all conversations are interleaved.
    """
    bursts: list[list[_Message]] = []
    for plan in plans:
        index = 0
        while index < len(plan.lines):
            size = rng.choice((1, 1, 2, 3))
            end = min(index + size, len(plan.lines))
            bursts.append([_Message(plan.number, i, plan.lines[i]) for i in range(index, end)])
            index = end
    rng.shuffle(bursts)
    arrivals = [message for burst in bursts for message in burst]
    # Webhooks redeliver: about one message in six is delivered again, at once (beside the
    # first delivery, so both run at the same moment) or later (after it was answered).
    for message in list(arrivals):
        if rng.random() < 1 / 6:
            for _ in range(rng.choice((1, 2))):
                at = arrivals.index(message) + 1 if rng.random() < 0.5 else len(arrivals)
                arrivals.insert(at, message)
    # One worker crashes: the first delivery of one conversation's first message.
    if plans:
        victim = rng.randrange(len(plans))
        first = next(i for i, m in enumerate(arrivals) if m.conversation == victim)
        arrivals[first] = attrs.evolve(arrivals[first], crash=True)
    return arrivals


# -- the workers ------------------------------------------------------------------------------


async def _run_workers(
    arrivals: Sequence[_Message],
    handle: Callable[[_Message], Awaitable[None]],
    *,
    workers: int,
    errors: Counter[str],
    on_progress: Callable[[int, int], None] | None,
) -> None:
    """`workers` tasks take the messages in arrival order and `handle` each one.

    A failed message is counted in `errors` (reported as a failed check), never a crash.
    """
    queue: asyncio.Queue[_Message | None] = asyncio.Queue()
    for message in arrivals:
        queue.put_nowait(message)
    done = 0

    async def worker() -> None:
        nonlocal done
        while (message := await queue.get()) is not None:
            try:
                await handle(message)
            except Exception as exc:  # noqa: BLE001 - reported as a failed check, not a crash
                errors[_describe(exc)] += 1
            done += 1
            if on_progress is not None:
                on_progress(done, len(arrivals))

    for _ in range(workers):
        queue.put_nowait(None)
    # A task group, not gather: however this task is stopped (Ctrl-C cancels it), every
    # worker has stopped before it returns, so no write starts after the clean-up.
    async with asyncio.TaskGroup() as group:
        for _ in range(workers):
            group.create_task(worker())


def _describe(exc: BaseException) -> str:
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


async def _handle_message(
    engine: Engine, plan: _Conversation, message: _Message, stats: _Stats
) -> None:
    """What a webhook handler does with one delivery: receive it, answer every run it is
    handed; under `reject`, a refused message is sent again a moment later."""
    inbound = InboundMessage(
        agent_id=plan.agent.id,
        conversation_id=f"whatsapp:+3460{plan.number:07d}",
        contact_id=f"+3460{plan.number:07d}",
        message_id=f"demo-{plan.number}-{message.index}",
        content=f"[m{message.index}] {message.line.text}",
    )
    while True:
        try:
            receipt = await engine.manager.receive(inbound)
            break
        except ConversationBusyError:
            stats.refused += 1
            await asyncio.sleep(0.02)  # the sender tries again
    plan.session_ids.add(receipt.session.id)
    if receipt.duplicate:
        stats.duplicates += 1
        return
    plan.writes += 1
    if receipt.run is not None and message.crash:
        # The worker dies here: the run it holds expires after RUN_TIMEOUT.
        plan.crashed = tuple(_index(turn) for turn in receipt.run.inputs)
        return
    await _answer(engine, plan, receipt.run, stats)


async def _answer(engine: Engine, plan: _Conversation, run: Run | None, stats: _Stats) -> None:
    """The engine answers `run` and every run handed over after it; the conversation ends
    after its last message."""
    if run is None:
        return
    outcomes = await engine.answer(run)
    for outcome in outcomes:
        _record(plan, outcome, stats)
    if not outcomes:
        return
    last = outcomes[-1].session
    if len(plan.answered) < len(plan.lines) or plan.final_status is not None:
        return
    if last.status is not SessionStatus.ACTIVE:  # the engine handed it off
        plan.final_status = last.status
        return
    human = last.current_mode in _HUMAN_MODES
    plan.final_status = SessionStatus.HANDED_OFF if human else plan.ending
    await engine.manager.commit(
        last.id, SessionChange(status=plan.final_status), expected_version=None
    )
    plan.writes += 1


def _record(plan: _Conversation, outcome: RunOutcome, stats: _Stats) -> None:
    """What the engine decided for one completed run, to compare with what was stored."""
    stats.runs += 1
    plan.writes += 1
    indexes = [_index(turn) for turn in outcome.inputs]
    plan.answered.update(indexes)
    for index in indexes:
        plan.turn_intents[index] = outcome.intent
    if outcome.intent is not None:
        plan.intents[outcome.intent] += 1
    if outcome.decision is Decision.HANDOFF:
        plan.final_status = SessionStatus.HANDED_OFF
    plan.decided = max(plan.decided, (outcome.session.version, outcome.mode))


def _index(turn: Turn) -> int:
    """The message index a user turn carries in its `[mN]` tag."""
    return int(turn.content[2 : turn.content.index("]")])


class _DemoManager(SessionManager):
    """A `SessionManager` that counts the runs taken over (the `interrupt` policy)."""

    superseded = 0

    async def complete(self, run: Run, change: SessionChange, **options: Any) -> Completion:
        try:
            return await super().complete(run, change, **options)
        except RunSupersededError:
            self.superseded += 1
            raise


async def _resume_crashed(engine: Engine, plans: Sequence[_Conversation], stats: _Stats) -> None:
    """After the traffic, what crashed workers left: wait for their runs to expire, then
    claim and answer them, as `frontdesk runs resume` does."""
    waiting = [
        plan
        for plan in plans
        if len(plan.answered) < len(plan.lines) and plan.final_status is None  # not handed off
    ]
    if not waiting:
        return
    await asyncio.sleep(RUN_TIMEOUT * 1.2)
    by_session = {sid: plan for plan in plans for sid in plan.session_ids}
    while runs := await engine.manager.resume_abandoned(limit=100):
        stats.resumed += len(runs)
        for run in runs:
            await _answer(engine, by_session[run.session.id], run, stats)


def _with_runs(registry: AgentRegistry, policy: DoubleTexting) -> AgentRegistry:
    """A registry of the same agents, each running with `policy` and a short run timeout."""
    demo = AgentRegistry()
    for agent in registry.list():
        runs = RunsConfig(double_texting=policy, timeout=RUN_TIMEOUT, history_turns=10)
        demo.register(attrs.evolve(agent, runs=runs))
    return demo


# -- the checks -------------------------------------------------------------------------------


@frozen
class _Verified:
    checks: tuple[DemoCheck, ...]
    turns: int
    sessions: int
    lost: int
    held: int


@define
class _Findings:
    """Problems found per check, and how many conversations could be read back at all."""

    problems: dict[str, list[str]] = field(factory=dict)
    unchecked: list[str] = field(factory=list)

    def add(self, check: str, problem: str) -> None:
        self.problems.setdefault(check, []).append(problem)

    def check(self, name: str, ok: str, *, per_conversation: bool = True) -> DemoCheck:
        problems = list(self.problems.get(name, []))
        if per_conversation and self.unchecked:
            # A conversation nothing could be read of proves nothing: never an "ok".
            problems.append(f"{_count(len(self.unchecked), 'conversation')} not checked")
        detail = ok if not problems else f"{len(problems)}: " + "; ".join(problems[:3])
        return DemoCheck(name, not problems, detail)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


async def _verify(
    manager: SessionManager, plans: Sequence[_Conversation], errors: Counter[str]
) -> _Verified:
    """Read everything back and compare it with what was sent."""
    findings = _Findings()
    turns = 0
    held = 0
    for plan in plans:
        name = f"conversation {plan.number}"
        if len(plan.session_ids) != 1:
            count = _count(len(plan.session_ids), "session")
            findings.add("one session per conversation", f"{name}: {count}")
            findings.unchecked.append(name)
            continue
        (session_id,) = plan.session_ids
        try:
            session = await manager.get_session(session_id)
            stored = await manager.get_turns(session_id)
        except FrontdeskError as exc:
            findings.add("every message processed", f"{name}: cannot read it back: {exc}")
            findings.unchecked.append(name)
            continue
        turns += len(stored)
        held += _compare(findings, name, plan, session, stored)
    sessions = sum(len(plan.session_ids) for plan in plans)
    for error, times in sorted(errors.items(), key=lambda item: -item[1]):
        findings.add("every message processed", error if times == 1 else f"{error} ({times}x)")
    checks = (
        findings.check("every message processed", "no errors", per_conversation=False),
        findings.check(
            "one session per conversation",
            _count(sessions, "session"),
            per_conversation=False,
        ),
        findings.check("lost updates", "0: every message found exactly once"),
        findings.check("duplicate turns", "0: every redelivery recognised"),
        findings.check(
            "messages answered exactly once",
            f"each by one completed run, or held for a human ({held} on handed-off sessions)",
        ),
        findings.check("crashed worker's messages picked up", "answered after its run expired"),
        findings.check("gapless numbering", "turns and intents numbered 1..n"),
        findings.check("versions count every write", "all match"),
        findings.check("modes as decided", "every stored mode is the last one decided"),
        findings.check("conversations ended", "closed or handed off, as decided"),
    )
    lost = len(findings.problems.get("lost updates", [])) + len(findings.unchecked)
    return _Verified(checks, turns, sessions, lost, held)


def _compare(
    findings: _Findings, name: str, plan: _Conversation, session: Session, turns: Sequence[Turn]
) -> int:
    """Compare one conversation's stored session and turns with what it sent.

    Returns how many of its messages are held for a person: stored on its handed-off
    session after every message a run answered, with no intent recorded, and answered by
    no run.
    """
    sent = Counter(f"[m{i}] {line.text}" for i, line in enumerate(plan.lines))
    user_turns = [t for t in turns if t.role is Role.USER]
    stored_user = Counter(t.content for t in user_turns)
    intents = Counter(i.intent for i in session.state.intents_seen)
    turn_intents = {_index(t): t.intent_detected for t in user_turns}
    message_ids = [t.message_id for t in user_turns]
    if len(message_ids) != len(set(message_ids)) or any(
        times > 1 for times in stored_user.values()
    ):
        findings.add("duplicate turns", name)
    held = _held(plan, session, user_turns)
    if held is None or any(
        plan.answered[i] != (0 if i in held else 1) for i in range(len(plan.lines))
    ):
        findings.add("messages answered exactly once", name)
    if plan.crashed and not all(plan.answered[i] == 1 for i in plan.crashed):
        findings.add("crashed worker's messages picked up", name)
    answered_intents = {i: intent for i, intent in turn_intents.items() if i not in (held or ())}
    if (
        set(stored_user) != set(sent)
        or intents != plan.intents
        or answered_intents != plan.turn_intents
    ):
        findings.add("lost updates", name)
    if [t.turn_number for t in turns] != list(range(1, len(turns) + 1)) or [
        i.order for i in session.state.intents_seen
    ] != list(range(1, len(session.state.intents_seen) + 1)):
        findings.add("gapless numbering", name)
    # The create, then every receive, complete and ending that applied.
    writes = plan.writes
    if session.version != writes:
        findings.add(
            "versions count every write", f"{name}: version {session.version}, expected {writes}"
        )
    if session.status != plan.final_status:
        findings.add(
            "conversations ended", f"{name}: {session.status}, expected {plan.final_status}"
        )
    decided = plan.decided[1]
    if session.current_mode != decided:
        findings.add("modes as decided", f"{name}: mode {session.current_mode}, decided {decided}")
    return len(held or ())


def _held(plan: _Conversation, session: Session, user_turns: Sequence[Turn]) -> set[int] | None:
    """The messages held for a person, by what was stored; None if storage contradicts it.

    A message no run answered is held when the session is handed off, its stored turn has
    no intent (no run recorded one on it) and it comes after every message a run answered.
    """
    unanswered = {i for i in range(len(plan.lines)) if plan.answered[i] == 0}
    if not unanswered:
        return set()
    if session.status is not SessionStatus.HANDED_OFF:
        return None
    by_index = {_index(t): t for t in user_turns}
    if not unanswered <= by_index.keys():
        return None
    last_answered = max(
        (by_index[i].turn_number for i in plan.answered if i in by_index), default=0
    )
    if any(
        by_index[i].intent_detected is not None or by_index[i].turn_number < last_answered
        for i in unanswered
    ):
        return None
    return unanswered
