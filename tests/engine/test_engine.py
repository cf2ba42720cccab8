"""`Engine.handle` end to end: receive, the run, complete, on real in-memory storage."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from frontdesk import (
    AgentConfig,
    AgentRegistry,
    Engine,
    EngineError,
    InboundMessage,
    InMemoryStorage,
    ModelNotFoundError,
    ModelRequest,
    ModelResponse,
    Role,
    RunsConfig,
    SessionManager,
    SessionStatus,
    Tool,
    Usage,
    ValidationError,
)
from frontdesk.engine import Decision, EngineSettings, ModelProviders
from frontdesk.testing import InstrumentedStorage, OfflineModel, ScriptedModel, make_test_agent

SETTINGS = EngineSettings(backoff=0, model_timeout=1.0, tool_timeout=1.0)
_ids = itertools.count(1)


def message(content: str = "hola", **overrides: Any) -> InboundMessage:
    fields: dict[str, Any] = {
        "agent_id": "test-agent",
        "conversation_id": "wa:+34600111222",
        "contact_id": "+34600111222",
        "message_id": f"wamid.{next(_ids)}",
        "content": content,
    }
    fields.update(overrides)
    return InboundMessage(**fields)


def intent(name: str = "provides_data", confidence: float = 0.95, **fields: Any) -> str:
    import json

    return json.dumps({"intent": name, "confidence": confidence, "fields": fields})


def answer(reply: str = "¿Tu nombre?", next_mode: str = "collecting", **extra: Any) -> str:
    import json

    return json.dumps({"reply": reply, "next_mode": next_mode, **extra})


@pytest.fixture
def storage() -> InstrumentedStorage:
    return InstrumentedStorage(InMemoryStorage())


@pytest.fixture
def make_engine(
    storage: InstrumentedStorage,
) -> Callable[..., tuple[Engine, SessionManager, AgentRegistry]]:
    def make(
        model: Any, *, agent: AgentConfig | None = None, **options: Any
    ) -> tuple[Engine, SessionManager, AgentRegistry]:
        registry = AgentRegistry()
        registry.register(agent or make_test_agent())
        manager = SessionManager(storage, workspace_id="tests", registry=registry)
        options.setdefault("settings", SETTINGS)
        return Engine(manager, model=model, **options), manager, registry

    return make


async def test_a_message_is_answered_in_two_storage_requests(
    make_engine: Callable[..., Any], storage: InstrumentedStorage
) -> None:
    model = ScriptedModel.answering(
        intent("provides_data", 0.95, city="Sevilla"),
        answer("¡Gracias! ¿Tu nombre?", "collecting", captured_data={"zone": "sur"}),
    )
    engine, manager, _ = make_engine(model)
    storage.reset()
    [outcome] = await engine.handle(message("Soy de Sevilla"))

    assert storage.total == 2
    assert outcome.decision is Decision.PROCEED
    assert (outcome.intent, outcome.confidence) == ("provides_data", 0.95)
    assert outcome.reply == "¡Gracias! ¿Tu nombre?"
    assert outcome.mode == "collecting"
    assert outcome.tokens_used == 30
    session = outcome.session
    assert session.current_mode == "collecting"
    assert [seen.intent for seen in session.state.intents_seen] == ["provides_data"]
    assert session.state.captured_data == {"city": "Sevilla", "zone": "sur"}
    turns = await manager.get_turns(session.id)
    assert [(t.role, t.content) for t in turns] == [
        (Role.USER, "Soy de Sevilla"),
        (Role.ASSISTANT, "¡Gracias! ¿Tu nombre?"),
    ]
    assert turns[1].tokens_used == 30
    assert (turns[0].intent_detected, turns[0].confidence) == ("provides_data", 0.95)
    assert await manager.get_total_tokens_used(session.id) == outcome.tokens_used
    assert [t.content for t in outcome.inputs] == ["Soy de Sevilla"]


@pytest.mark.parametrize(
    ("answers", "decision", "status", "mode"),
    [
        ([intent("q", 0.9), answer()], Decision.PROCEED, SessionStatus.ACTIVE, "collecting"),
        (
            [intent("q", 0.7), intent("q", 0.9), answer()],
            Decision.PROCEED,
            SessionStatus.ACTIVE,
            "collecting",
        ),
        (
            [intent("q", 0.7), intent("q", 0.7), '{"reply": "¿Cuál?"}'],
            Decision.CLARIFY,
            SessionStatus.ACTIVE,
            "greeting",
        ),
        (
            [intent("q", 0.5), '{"reply": "¿Cuál?"}'],
            Decision.CLARIFY,
            SessionStatus.ACTIVE,
            "greeting",
        ),
        ([intent("q", 0.1)], Decision.HANDOFF, SessionStatus.HANDED_OFF, "greeting"),
    ],
    ids=["proceed", "reanalyse-then-proceed", "reanalyse-then-clarify", "clarify", "handoff"],
)
async def test_each_band_is_recorded(
    make_engine: Callable[..., Any],
    answers: list[str],
    decision: Decision,
    status: SessionStatus,
    mode: str,
) -> None:
    model = ScriptedModel.answering(*answers)
    engine, manager, _ = make_engine(model)
    [outcome] = await engine.handle(message())

    assert outcome.decision is decision
    assert outcome.session.status is status
    assert outcome.mode == mode
    assert len(model.requests) == len(answers)
    turns = await manager.get_turns(outcome.session.id)
    assert turns[-1].role is Role.ASSISTANT
    assert turns[-1].content == outcome.reply
    if decision is Decision.HANDOFF:
        assert outcome.reply == make_test_agent().handoff_message
        assert "below the clarify threshold" in outcome.session.state.data["handoff_reason"]


async def test_a_failing_model_ends_in_a_recorded_handoff(
    make_engine: Callable[..., Any],
) -> None:
    model = ScriptedModel.answering(intent("q", 0.9), *[ConnectionError("reset")] * 3)
    engine, manager, _ = make_engine(model)
    [outcome] = await engine.handle(message())

    assert outcome.decision is Decision.HANDOFF
    session = await manager.get_session(outcome.session.id)
    assert session.status is SessionStatus.HANDED_OFF
    assert session.state.data["handoff_reason"].endswith("ConnectionError: reset")
    assert [seen.intent for seen in session.state.intents_seen] == ["q"]
    turns = await manager.get_turns(session.id)
    assert turns[-1].content == make_test_agent().handoff_message


async def test_schema_repair_and_next_mode_repair_end_to_end(
    make_engine: Callable[..., Any],
) -> None:
    model = ScriptedModel.answering(
        "no sé", intent("q", 0.9), answer("¡Hecho!", "done"), answer("¿Tu nombre?", "collecting")
    )
    engine, _, _ = make_engine(model)
    [outcome] = await engine.handle(message())

    assert outcome.mode == "collecting"
    assert outcome.reply == "¿Tu nombre?"
    assert outcome.tokens_used == 4 * 15


async def test_tool_rounds_end_to_end(make_engine: Callable[..., Any]) -> None:
    seen: list[Any] = []

    def lookup(arguments: Any, context: Any) -> Any:
        seen.append(context.session.id)
        return {"stock": 2}

    model = ScriptedModel.answering(
        intent("q", 0.9),
        answer("...", "greeting", tool_calls=[{"name": "lookup", "arguments": {"sku": "M"}}]),
        answer("Quedan 2.", "collecting"),
    )
    engine, manager, registry = make_engine(model)
    registry.register_tool(Tool("lookup", lookup))
    [outcome] = await engine.handle(message())

    assert outcome.reply == "Quedan 2."
    assert seen == [outcome.session.id]
    turns = await manager.get_turns(outcome.session.id)
    [call] = turns[-1].tools_called
    assert (call.name, call.input, call.output) == ("lookup", {"sku": "M"}, {"stock": 2})


async def test_engine_tools_win_over_the_registrys(make_engine: Callable[..., Any]) -> None:
    model = ScriptedModel.answering(
        intent("q", 0.9),
        answer("...", "greeting", tool_calls=[{"name": "lookup"}]),
        answer("Listo."),
    )
    engine, _, registry = make_engine(
        model, tools=[Tool("lookup", lambda arguments, context: "engine")]
    )
    registry.register_tool(Tool("lookup", lambda arguments, context: "registry"))
    [outcome] = await engine.handle(message())

    assert [call.output for call in outcome.tools_called] == ["engine"]


async def test_a_duplicate_delivery_is_not_answered_again(
    make_engine: Callable[..., Any],
) -> None:
    model = ScriptedModel.answering(intent("q", 0.9), answer())
    engine, _, _ = make_engine(model)
    first = message()
    assert len(await engine.handle(first)) == 1
    assert await engine.handle(first) == []
    assert len(model.requests) == 2


async def test_messages_arriving_during_a_run_are_answered_by_the_same_worker(
    make_engine: Callable[..., Any], storage: InstrumentedStorage
) -> None:
    manager_box: list[SessionManager] = []
    texts = iter(
        [intent("q", 0.9), answer("¿Talla?"), intent("q", 0.9), answer("Hay M y L.", "collecting")]
    )

    async def respond(request: ModelRequest) -> ModelResponse:
        if len(model.requests) == 1:  # a double text, while the first run thinks
            await manager_box[0].receive(message("¿y en negro?"))
        return ModelResponse(next(texts), Usage(10, 5), request.model)

    model = ScriptedModel(respond)
    engine, manager, _ = make_engine(model)
    manager_box.append(manager)
    storage.reset()
    outcomes = await engine.handle(message("¿tenéis sudaderas?"))

    assert [o.reply for o in outcomes] == ["¿Talla?", "Hay M y L."]
    assert [[t.content for t in o.inputs] for o in outcomes] == [
        ["¿tenéis sudaderas?"],
        ["¿y en negro?"],
    ]
    assert storage.total == 4  # two messages: a receive and a complete each
    turns = await manager.get_turns(outcomes[-1].session.id)
    assert [t.role for t in turns] == [Role.USER, Role.USER, Role.ASSISTANT, Role.ASSISTANT]
    assert [(t.intent_detected, t.confidence) for t in turns[:2]] == [("q", 0.9), ("q", 0.9)]


async def test_a_superseded_run_stops_without_writing(
    make_engine: Callable[..., Any],
) -> None:
    agent = make_test_agent(runs=RunsConfig(double_texting="interrupt"))
    receipts: list[Any] = []

    async def respond(request: ModelRequest) -> ModelResponse:
        if not receipts:  # the user writes again: under interrupt, a new run takes over
            receipts.append(await manager.receive(message("¡espera! en negro")))
        return ModelResponse(
            intent("q", 0.9) if request.output_schema["title"] == "intent" else answer(),  # type: ignore[index]
            Usage(10, 5),
            request.model,
        )

    model = ScriptedModel(respond)
    engine, manager, _ = make_engine(model, agent=agent)
    assert await engine.handle(message("hola")) == []

    session = receipts[0].session
    turns = await manager.get_turns(session.id)
    assert [t.role for t in turns] == [Role.USER, Role.USER]  # nothing written by the old run
    [outcome] = await engine.answer(receipts[0].run)
    assert [t.content for t in outcome.inputs] == ["hola", "¡espera! en negro"]
    turns = await manager.get_turns(session.id)
    assert [t.role for t in turns] == [Role.USER, Role.USER, Role.ASSISTANT]


async def test_a_model_nobody_serves_fails_before_anything_is_recorded(
    storage: InstrumentedStorage,
) -> None:
    registry = AgentRegistry()
    registry.register(make_test_agent())
    manager = SessionManager(storage, workspace_id="tests", registry=registry)
    engine = Engine(manager, providers=ModelProviders(autodiscover=False))
    storage.reset()
    with pytest.raises(ModelNotFoundError, match="test-small"):
        await engine.handle(message())
    assert storage.total == 0


async def test_a_long_run_keeps_the_conversation(
    make_engine: Callable[..., Any], storage: InstrumentedStorage
) -> None:
    agent = make_test_agent(runs=RunsConfig(timeout=0.2))
    later: list[Any] = []

    async def respond(request: ModelRequest) -> ModelResponse:
        if not later:
            await asyncio.sleep(0.35)  # beyond the run's timeout: only extend keeps it
            later.append(await manager.receive(message("¿sigues ahí?")))
        text = intent("q", 0.9) if request.output_schema["title"] == "intent" else answer()  # type: ignore[index]
        return ModelResponse(text, Usage(10, 5), request.model)

    engine, manager, _ = make_engine(ScriptedModel(respond), agent=agent)
    outcomes = await engine.handle(message("hola"))

    assert later[0].run is None  # the run was still live: the message waited for it
    assert [[t.content for t in o.inputs] for o in outcomes] == [["hola"], ["¿sigues ahí?"]]


# -- the setup: refused early, never turned into a hand-off ----------------------------------


class SyncComplete:
    """A client whose `complete` is not a coroutine function."""

    def complete(self, request: ModelRequest) -> ModelResponse:
        return ModelResponse("{}")


class NotCallable:
    complete = "not a method"


@pytest.mark.parametrize("given", ["hola", None, {"content": "hola"}], ids=repr)
async def test_handle_refuses_what_is_not_a_message_as_receive_does(
    make_engine: Callable[..., Any], storage: InstrumentedStorage, given: Any
) -> None:
    engine, manager, _ = make_engine(ScriptedModel.answering(intent(), answer()))
    storage.reset()
    with pytest.raises(ValidationError) as from_engine:
        await engine.handle(given)
    with pytest.raises(ValidationError) as from_receive:
        await manager.receive(given)

    assert str(from_engine.value) == str(from_receive.value)
    assert from_engine.value.field == "message"
    with pytest.raises(ValidationError) as caught:
        await engine.answer(given)
    assert caught.value.field == "run"
    assert storage.total == 0


async def test_an_offline_model_without_the_agent_raises_and_hands_nobody_off(
    storage: InstrumentedStorage,
) -> None:
    registry = AgentRegistry()
    registry.register(make_test_agent())
    manager = SessionManager(storage, workspace_id="tests", registry=registry)
    engine = Engine(manager, model=OfflineModel([]), settings=SETTINGS)
    with pytest.raises(EngineError, match="OfflineModel was not given the agent"):
        await engine.handle(message("hola"))

    [summary] = (await manager.list_sessions()).items
    session = await manager.get_session(summary.id)
    assert session.status is SessionStatus.ACTIVE
    assert "handoff_reason" not in session.state.data
    assert [t.role for t in await manager.get_turns(session.id)] == [Role.USER]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"manager": None}, "manager"),
        ({"model": "offline"}, "model"),
        ({"model": OfflineModel}, "model"),
        ({"model": ScriptedModel}, "model"),
        ({"model": SyncComplete()}, "model"),
        ({"model": NotCallable()}, "model"),
        ({"providers": "llm"}, "providers"),
        ({"settings": {"model_attempts": 1}}, "settings"),
        ({"tools": "lookup"}, "tools"),
        ({"tools": [object()]}, "tools[0]"),
        ({"capture_content": "yes"}, "capture_content"),
    ],
    ids=[
        "manager",
        "model",
        "model-class",
        "scripted-model-class",
        "sync-complete",
        "complete-not-callable",
        "providers",
        "settings",
        "tools",
        "tool",
        "capture_content",
    ],
)
def test_the_constructor_refuses_arguments_of_the_wrong_kind(
    storage: InstrumentedStorage, arguments: dict[str, Any], field: str
) -> None:
    manager = SessionManager(storage, workspace_id="tests", registry=AgentRegistry())
    given = {"manager": manager, **arguments}
    with pytest.raises(ValidationError) as caught:
        Engine(given.pop("manager"), **given)

    assert caught.value.field == field


async def test_a_configuration_error_is_raised_and_the_run_answered_later(
    make_engine: Callable[..., Any],
) -> None:
    agent = make_test_agent(runs=RunsConfig(timeout=0.2))
    broken = ScriptedModel.answering(EngineError("model 'test-small' needs an API key"))
    engine, manager, _ = make_engine(broken, agent=agent)
    with pytest.raises(EngineError, match="needs an API key"):
        await engine.handle(message("hola"))

    [summary] = (await manager.list_sessions()).items
    session = await manager.get_session(summary.id)
    assert session.status is SessionStatus.ACTIVE
    assert "handoff_reason" not in session.state.data
    assert [t.role for t in await manager.get_turns(session.id)] == [Role.USER]

    await asyncio.sleep(0.3)  # the run expires; the fixed setup picks its message up
    fixed = Engine(manager, model=ScriptedModel.answering(intent("q", 0.9), answer()))
    [run] = await manager.resume_abandoned(limit=10)
    [outcome] = await fixed.answer(run)
    assert outcome.decision is Decision.PROCEED
    assert [t.content for t in outcome.inputs] == ["hola"]


@pytest.mark.parametrize(
    "error",
    [
        AttributeError("'str' object has no attribute 'complete'"),
        KeyError("sales"),
        LookupError("no such agent in this client"),
        IndexError("list index out of range"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_programming_error_is_raised_not_retried_nor_handed_off(
    make_engine: Callable[..., Any], error: Exception
) -> None:
    model = ScriptedModel.answering(error)
    engine, manager, _ = make_engine(model)
    with pytest.raises(type(error)):
        await engine.handle(message("hola"))

    assert len(model.requests) == 1
    [summary] = (await manager.list_sessions()).items
    session = await manager.get_session(summary.id)
    assert session.status is SessionStatus.ACTIVE
