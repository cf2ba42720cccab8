"""`Engine`: an installed agent answers each inbound message, end to end.

`handle` is the whole job of a webhook worker: `receive` the message (one storage call),
run the agent for every run the pipeline hands this worker (models and tools, outside
storage), and `complete` each run (one storage call) with everything it decided:

    engine = Engine(SessionManager(storage, workspace_id="acme"))
    for outcome in await engine.handle(InboundMessage(
        agent_id="sales", conversation_id="wa:+34600111222", contact_id="+34600111222",
        message_id="wamid.HBgM...", content="hola, ¿tenéis la talla M?",
    )):
        await whatsapp.send(outcome.session.contact_id, outcome.reply)

Models come from the agent's config through the installed model providers (or `model=`,
which serves every call: tests and offline runs); tools from the agent's package.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from attrs import frozen

from ..config import AgentConfig
from ..errors import RunSupersededError, ValidationError
from ..models import Session, ToolCall, Turn
from ..pipeline import InboundMessage, Run
from ..sessions import SessionManager
from ..tools import Tool
from .client import ModelClient
from .providers import ModelProviders
from .run import Decision, EngineSettings, run_agent
from .tracing import Tracing

__all__ = ["Engine", "RunOutcome"]

logger = logging.getLogger(__name__)


_MODEL_CLIENT = (
    "a ModelClient (an object with an async complete(request) method) or None; "
    "for the offline model pass frontdesk.testing.OfflineModel(registry.list())"
)


def _kind(value: object) -> str:
    text = repr(value)
    shown = text if len(text) <= 40 else f"{text[:37]}..."
    return f"{type(value).__name__} {shown}"


def _check(value: object, kind: Any, name: str, wanted: str) -> None:
    """Refuse a constructor argument of the wrong kind now, not in the middle of a run."""
    if not isinstance(value, kind):
        raise ValidationError(name, f"must be {wanted}, got {_kind(value)}")


def _check_model(model: object) -> None:
    """Refuse a model that would fail at its first call: a class, or no async `complete`.

    `ModelClient` is a runtime Protocol, so `isinstance` accepts the class itself
    (`model=OfflineModel`), whose `complete` is then called unbound; and any object with a
    `complete` attribute, callable or not.
    """
    _check(model, ModelClient, "model", _MODEL_CLIENT)
    if isinstance(model, type):
        raise ValidationError(
            "model",
            f"must be an instance, got the class {model.__name__}; build one first, such "
            f"as {model.__name__}(...) (for the offline model: OfflineModel(registry.list()))",
        )
    complete = getattr(model, "complete", None)
    if not callable(complete):
        raise ValidationError(
            "model", f"must have an async complete(request) method, got {_kind(complete)}"
        )
    plain = inspect.isfunction(complete) or inspect.ismethod(complete)
    if plain and not inspect.iscoroutinefunction(complete):
        raise ValidationError(
            "model",
            f"{type(model).__name__}.complete must be a coroutine function "
            "(async def complete(self, request))",
        )


def _check_message(value: object, name: str, kind: type, wanted: str) -> None:
    """The same refusal `SessionManager.receive` gives, before anything else is tried."""
    if not isinstance(value, kind):
        raise ValidationError(name, f"must be {wanted}, got {type(value).__name__}")


@frozen
class RunOutcome:
    """What one run did: the session after it, and what the agent decided and said.

    `decision` is proceed, clarify or handoff; `intent` and `confidence` are the intent
    detector's (None when the model failed before answering); `mode` is the session's mode
    after the run; `tokens_used` sums every model call of the run; `inputs` are the user
    turns the run answered.
    """

    session: Session
    decision: Decision
    intent: str | None
    confidence: float | None
    reply: str
    mode: str
    tokens_used: int
    inputs: tuple[Turn, ...] = ()
    tools_called: tuple[ToolCall, ...] = ()
    handoff_reason: str | None = None


class Engine:
    """Runs installed agents on inbound messages, over a `SessionManager`.

    - `model`: a `ModelClient` that serves every model call (tests, offline runs); by
      default each config's model id is resolved by the installed model providers.
    - `providers`: the `ModelProviders` to resolve with (default: the installed ones).
    - `tools`: tool implementations that win over the agents' packages' (same names).
    - `settings`: limits and retries (`EngineSettings`).
    - `tracer_provider`, `capture_content`: OpenTelemetry spans (see `Tracing`).
    """

    def __init__(
        self,
        manager: SessionManager,
        *,
        model: ModelClient | None = None,
        providers: ModelProviders | None = None,
        tools: Iterable[Tool] = (),
        settings: EngineSettings | None = None,
        tracer_provider: Any = None,
        capture_content: bool = False,
    ) -> None:
        _check(manager, SessionManager, "manager", "a SessionManager")
        if model is not None:
            _check_model(model)
        if providers is not None:
            _check(providers, ModelProviders, "providers", "a ModelProviders or None")
        if settings is not None:
            _check(settings, EngineSettings, "settings", "an EngineSettings or None")
        given: object = tools
        if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
            raise ValidationError("tools", f"must be an iterable of Tool, got {_kind(given)}")
        tools = tuple(tools)
        for index, tool in enumerate(tools):
            _check(tool, Tool, f"tools[{index}]", "a Tool")
        _check(capture_content, bool, "capture_content", "True or False")
        self.manager = manager
        self.model = model
        self.providers = providers if providers is not None else ModelProviders()
        self.tools = {tool.name: tool for tool in tools}
        self.settings = settings if settings is not None else EngineSettings()
        self.tracing = Tracing(tracer_provider, capture_content=capture_content)

    def __repr__(self) -> str:
        return f"<Engine manager={self.manager!r} model={self.model!r}>"

    def model_for(self, model_id: str) -> ModelClient:
        """The client that serves `model_id` (`ModelNotFoundError` if none does)."""
        return self.model if self.model is not None else self.providers.resolve(model_id)

    async def handle(self, message: InboundMessage) -> list[RunOutcome]:
        """Receive `message`, then answer every run handed to this worker, in order.

        Returns one outcome per completed run: none for a duplicate delivery, a message
        that waits for the run in flight (that run's worker answers it) or a message held
        for the person a conversation was handed off to (recorded on the handed-off
        session; nothing else is written until the session is handed back), several when
        messages arrived during a run. A run taken over by another worker (the
        `interrupt` policy) stops without writing. The agent's models are resolved
        before anything is recorded, so a model nobody serves, or one without its API key,
        fails here, cleanly. A wrong setup found during a run (a key rejected by the
        provider) raises `EngineError` without writing the run: it expires, and its
        messages are answered once the setup is fixed.
        """
        _check_message(message, "message", InboundMessage, "an InboundMessage")
        agent = self.manager.registry.get(message.agent_id)
        self.resolve_models(agent)
        receipt = await self.manager.receive(message)
        return await self._answer(agent, receipt.run)

    async def answer(self, run: Run) -> list[RunOutcome]:
        """Answer `run` (one from `SessionManager.resume_abandoned`, say) and the runs after it."""
        _check_message(run, "run", Run, "a Run (from receive or resume_abandoned)")
        agent = self.manager.registry.get(run.session.agent_id)
        self.resolve_models(agent)
        return await self._answer(agent, run)

    async def _answer(self, agent: AgentConfig, run: Run | None) -> list[RunOutcome]:
        outcomes: list[RunOutcome] = []
        tools = {**self.manager.registry.tools_for(agent.id), **self.tools}
        tools = {name: tool for name, tool in tools.items() if name in agent.tools}
        while run is not None:
            async with self._heartbeat(agent, run):
                result = await run_agent(
                    agent,
                    run,
                    models=self.model_for,
                    tools=tools,
                    settings=self.settings,
                    tracing=self.tracing,
                )
            try:
                done = await self.manager.complete(run, result.change)
            except RunSupersededError:
                logger.info(
                    "run %d of session %s was taken over; its answer is dropped",
                    run.token,
                    run.session.id,
                )
                break
            outcomes.append(
                RunOutcome(
                    session=done.session,
                    decision=result.decision,
                    intent=result.intent,
                    confidence=result.confidence,
                    reply=result.reply,
                    mode=done.session.current_mode,
                    tokens_used=result.tokens_used,
                    inputs=tuple(run.inputs),
                    tools_called=result.tools_called,
                    handoff_reason=result.handoff_reason,
                )
            )
            run = done.next_run
        return outcomes

    @contextlib.asynccontextmanager
    async def _heartbeat(self, agent: AgentConfig, run: Run) -> AsyncIterator[None]:
        """Keep a long run ours: `extend` it every half `runs.timeout` while it lasts.

        A run that ends within half its timeout (almost every run) costs no request.
        """

        async def beat() -> None:
            current = run
            while True:
                await asyncio.sleep(agent.runs.timeout / 2)
                try:
                    current = await self.manager.extend(current)
                except RunSupersededError:
                    return
                except Exception as exc:  # noqa: BLE001 - the run goes on; complete decides
                    logger.warning("could not extend run %d: %s", current.token, exc)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def resolve_models(self, agent: AgentConfig) -> Mapping[str, ModelClient]:
        """The clients of `agent`'s intent detector and orchestrator models, by model id.

        Raises what `model_for` raises (`ModelNotFoundError`, or an `EngineError` for a
        setup problem such as a missing API key), before anything is recorded.
        """
        return {
            model_id: self.model_for(model_id)
            for model_id in dict.fromkeys((agent.intent_detector.model, agent.orchestrator.model))
        }
