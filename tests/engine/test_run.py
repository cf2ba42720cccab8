"""One run's decision (`run_agent`) with scripted models: every band, repair and failure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from frontdesk import (
    AgentConfig,
    EngineError,
    ModelOutputError,
    ModelRequest,
    ModelResponse,
    SessionStatus,
    Thresholds,
    Tool,
    ToolContext,
    ToolResult,
    Usage,
    ValidationError,
)
from frontdesk.engine import Decision, EngineSettings, RunResult, run_agent
from frontdesk.engine.schema import CLARIFY_SCHEMA, INTENT_SCHEMA, ORCHESTRATOR_SCHEMA
from frontdesk.storage import AppendIntent, MergeCapturedData, MergeData
from frontdesk.testing.scripted import ScriptedModel

from .conftest import View


def intent(name: str = "provides_data", confidence: float = 0.95, **fields: Any) -> dict[str, Any]:
    return {"intent": name, "confidence": confidence, "fields": fields}


def answer(reply: str = "Perfecto.", next_mode: str = "greeting", **extra: Any) -> dict[str, Any]:
    return {"reply": reply, "next_mode": next_mode, **extra}


async def run(
    agent: AgentConfig,
    view: View,
    model: ScriptedModel,
    settings: EngineSettings,
    tools: Mapping[str, Tool] | None = None,
) -> RunResult:
    return await run_agent(
        agent, view, models=lambda _: model, tools=tools or {}, settings=settings
    )


def ops_of(result: RunResult, kind: type) -> list[Any]:
    return [op for op in result.change.state_ops if isinstance(op, kind)]


# -- the threshold bands ---------------------------------------------------------------------


async def test_a_confident_intent_proceeds_to_the_orchestrator(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(
        intent("provides_data", 0.95, city="Sevilla"),
        answer("¡Gracias! ¿Tu nombre?", "collecting", captured_data={"city": "Sevilla"}),
    )
    result = await run(agent, make_view("Soy de Sevilla"), model, settings)

    assert result.decision is Decision.PROCEED
    assert (result.intent, result.confidence) == ("provides_data", 0.95)
    assert result.reply == "¡Gracias! ¿Tu nombre?"
    assert result.mode == "collecting"
    assert result.change.current_mode == "collecting"
    assert result.change.status is None
    [turn] = result.change.turns
    assert (turn.role, turn.content, turn.tokens_used) == ("assistant", result.reply, 30)
    assert ops_of(result, AppendIntent) == [AppendIntent("provides_data")]
    assert ops_of(result, MergeCapturedData) == [MergeCapturedData({"city": "Sevilla"})]
    assert (result.change.inputs_intent, result.change.inputs_confidence) == (
        "provides_data",
        0.95,
    )

    detector, orchestrator = model.requests
    assert detector.model == agent.intent_detector.model
    assert detector.system == agent.intent_detector.system_prompt
    assert detector.output_schema == INTENT_SCHEMA
    assert "Soy de Sevilla" in detector.messages[-1].content
    assert orchestrator.model == agent.orchestrator.model
    assert orchestrator.system == agent.orchestrator.system_prompt
    assert orchestrator.output_schema == ORCHESTRATOR_SCHEMA
    context = orchestrator.messages[0].content
    assert "Current mode: greeting" in context
    assert "Modes allowed next: collecting" in context
    assert "Detected intent: provides_data (confidence 0.95)" in context


@pytest.mark.parametrize(
    ("confidence", "decision", "calls"),
    [
        (0.85, Decision.PROCEED, 2),  # exactly `proceed`
        (0.4, Decision.CLARIFY, 2),  # exactly `clarify`
        (0.64, Decision.CLARIFY, 2),
        (0.39, Decision.HANDOFF, 1),
        (0.0, Decision.HANDOFF, 1),
    ],
    ids=["at-proceed", "at-clarify", "below-reanalyze", "below-clarify", "zero"],
)
async def test_each_band_decides_as_the_thresholds_say(
    agent: AgentConfig,
    make_view: Callable[..., View],
    settings: EngineSettings,
    confidence: float,
    decision: Decision,
    calls: int,
) -> None:
    assert agent.thresholds == Thresholds(proceed=0.85, reanalyze=0.65, clarify=0.4)
    follow_up = (
        answer("¿Me confirmas el pedido?", "collecting")
        if decision is Decision.PROCEED
        else {"reply": "¿Te refieres a la talla M?"}
    )
    model = ScriptedModel.answering(intent("maybe", confidence), follow_up)
    result = await run(agent, make_view(), model, settings)

    assert result.decision is decision
    assert len(model.requests) == calls
    assert result.confidence == confidence


async def test_a_clarify_asks_one_question_and_keeps_the_mode(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(intent("maybe", 0.5), {"reply": "¿Quieres la M o la L?"})
    result = await run(agent, make_view("esa", mode="collecting"), model, settings)

    assert result.decision is Decision.CLARIFY
    assert result.reply == "¿Quieres la M o la L?"
    assert result.mode == "collecting"
    assert result.change.current_mode is None
    clarify = model.requests[1]
    assert clarify.output_schema == CLARIFY_SCHEMA
    assert clarify.system == agent.orchestrator.system_prompt
    assert "Ask ONE short" in clarify.messages[0].content
    assert ops_of(result, AppendIntent) == [AppendIntent("maybe")]


async def test_a_low_confidence_hands_off_without_calling_the_orchestrator(
    make_agent: Callable[..., AgentConfig],
    make_view: Callable[..., View],
    settings: EngineSettings,
) -> None:
    agent = make_agent(handoff_message="Te paso con Lucía, de la tienda.")
    model = ScriptedModel.answering(intent("other", 0.1))
    result = await run(agent, make_view(config=agent), model, settings)

    assert result.decision is Decision.HANDOFF
    assert len(model.requests) == 1
    assert result.reply == "Te paso con Lucía, de la tienda."
    assert result.change.status is SessionStatus.HANDED_OFF
    assert result.change.turns[0].content == "Te paso con Lucía, de la tienda."
    [data] = ops_of(result, MergeData)
    assert "below the clarify threshold" in data.data["handoff_reason"]
    assert result.handoff_reason == data.data["handoff_reason"]


async def test_an_agent_without_a_handoff_message_uses_the_default(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(intent("other", 0.1))
    result = await run(agent, make_view(), model, settings)

    assert result.reply == agent.handoff_message
    assert "person" in agent.handoff_message


# -- re-analysis -----------------------------------------------------------------------------


async def test_reanalysis_asks_again_with_twice_the_history(
    agent: AgentConfig, make_view: Callable[..., View]
) -> None:
    settings = EngineSettings(backoff=0, intent_history=2)
    history = [f"turn {n}" for n in range(1, 9)]
    model = ScriptedModel.answering(
        intent("provides_data", 0.7), intent("provides_data", 0.9), answer()
    )
    result = await run(agent, make_view("la M", history=history), model, settings)

    assert result.decision is Decision.PROCEED
    assert result.confidence == 0.9
    first, second, orchestrator = model.requests
    assert first.output_schema == second.output_schema == INTENT_SCHEMA
    assert "turn 7" in first.messages[0].content
    assert "turn 8" in first.messages[0].content
    assert "turn 6" not in first.messages[0].content
    assert all(f"turn {n}" in second.messages[0].content for n in (5, 6, 7, 8))
    assert "turn 4" not in second.messages[0].content
    assert orchestrator.output_schema == ORCHESTRATOR_SCHEMA


async def test_a_second_answer_in_the_reanalyze_band_clarifies_with_no_third_call(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(
        intent("maybe", 0.7), intent("maybe", 0.8), {"reply": "¿Cuál de las dos?"}
    )
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.CLARIFY
    assert [r.output_schema for r in model.requests] == [
        INTENT_SCHEMA,
        INTENT_SCHEMA,
        CLARIFY_SCHEMA,
    ]
    assert result.confidence == 0.8


async def test_a_second_answer_below_clarify_hands_off(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(intent("maybe", 0.7), intent("other", 0.2))
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.HANDOFF
    assert len(model.requests) == 2


# -- schema repair ---------------------------------------------------------------------------


async def test_output_that_breaks_the_schema_gets_one_repair_request(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(
        "Claro, es un saludo.",
        intent("greeting", 0.9),
        {"reply": "Hola"},  # no next_mode
        answer("¡Hola! ¿Qué buscas?"),
    )
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.PROCEED
    assert result.reply == "¡Hola! ¿Qué buscas?"
    assert len(model.requests) == 4
    repair = model.requests[1]
    assert [m.role for m in repair.messages] == ["user", "assistant", "user"]
    assert repair.messages[1].content == "Claro, es un saludo."
    assert "not a JSON object" in repair.messages[2].content
    assert "$.next_mode is required" in model.requests[3].messages[-1].content
    assert result.tokens_used == 4 * 15


async def test_a_fenced_json_answer_is_accepted(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(
        '```json\n{"intent": "greeting", "confidence": 0.9}\n```', answer()
    )
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.PROCEED
    assert len(model.requests) == 2


async def test_output_still_broken_after_the_repair_hands_off_with_the_reason(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(
        intent("greeting", 0.9), {"reply": 3}, {"reply": "ok", "next_mode": ""}
    )
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.HANDOFF
    assert result.change.status is SessionStatus.HANDED_OFF
    assert result.intent == "greeting"
    assert "answered twice with output that does not match" in (result.handoff_reason or "")
    assert "$.next_mode must not be empty" in (result.handoff_reason or "")
    assert result.tokens_used == 3 * 15


async def test_a_client_that_checks_the_schema_itself_gets_the_repair_too(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(
        ModelOutputError("m", ["$.intent is required"], text="{}", input_tokens=7, output_tokens=1),
        intent("greeting", 0.9),
        answer(),
    )
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.PROCEED
    assert "$.intent is required" in model.requests[1].messages[-1].content
    assert result.tokens_used == 8 + 2 * 15


# -- the next mode ---------------------------------------------------------------------------


async def test_a_next_mode_the_state_machine_forbids_gets_one_repair(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(
        intent("wants_to_buy", 0.9),
        answer("¡Hecho!", "done"),
        answer("¿A qué nombre?", "collecting", captured_data={"product": "M"}),
    )
    result = await run(agent, make_view(), model, settings)

    assert result.mode == "collecting"
    assert result.reply == "¿A qué nombre?"
    repair = model.requests[2].messages[-1].content
    assert "'done' is not allowed from mode 'greeting'" in repair
    assert "allowed modes are: greeting, collecting" in repair
    assert ops_of(result, MergeCapturedData) == [MergeCapturedData({"product": "M"})]


async def test_a_next_mode_still_forbidden_after_the_repair_keeps_the_mode(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(
        intent("wants_to_buy", 0.9),
        answer("¡Hecho!", "done"),
        answer("¡Hecho, de verdad!", "nowhere", captured_data={"product": "M"}),
    )
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.PROCEED
    assert result.mode == "greeting"
    assert result.change.current_mode is None
    assert result.reply == "¡Hecho, de verdad!"
    assert ops_of(result, MergeCapturedData) == []
    assert len(model.requests) == 3


# -- tools -----------------------------------------------------------------------------------


def lookup_tool(calls: list[tuple[Mapping[str, Any], ToolContext]], **options: Any) -> Tool:
    def lookup(arguments: Mapping[str, Any], context: ToolContext) -> Any:
        calls.append((arguments, context))
        return {"sku": arguments.get("sku"), "stock": 3}

    return Tool("lookup", lookup, description="Stock of a SKU.", **options)


async def test_tool_results_go_back_to_the_orchestrator(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    calls: list[tuple[Mapping[str, Any], ToolContext]] = []
    model = ScriptedModel.answering(
        intent("product_question", 0.9, product="camiseta"),
        answer("Miro...", tool_calls=[{"name": "lookup", "arguments": {"sku": "TS-M"}}]),
        answer("Quedan 3 en talla M.", "collecting"),
    )
    result = await run(agent, make_view(), model, settings, {"lookup": lookup_tool(calls)})

    assert result.reply == "Quedan 3 en talla M."
    [(arguments, context)] = calls
    assert arguments == {"sku": "TS-M"}
    assert context.agent == agent
    assert context.captured_data == {"product": "camiseta"}
    assert [(c.name, c.input, c.output) for c in result.tools_called] == [
        ("lookup", {"sku": "TS-M"}, {"sku": "TS-M", "stock": 3})
    ]
    assert result.change.turns[0].tools_called == result.tools_called
    second = model.requests[2]
    assert second.messages[-1].content.startswith("Tool results:")
    assert '"stock": 3' in second.messages[-1].content
    assert "lookup: Stock of a SKU." in model.requests[1].messages[0].content


async def test_tool_rounds_are_bounded(agent: AgentConfig, make_view: Callable[..., View]) -> None:
    settings = EngineSettings(backoff=0, max_tool_rounds=2)
    calls: list[tuple[Mapping[str, Any], ToolContext]] = []
    again = answer("...", tool_calls=[{"name": "lookup", "arguments": {"sku": "X"}}])
    model = ScriptedModel.answering(intent("q", 0.9), again, again, again)
    result = await run(agent, make_view(), model, settings, {"lookup": lookup_tool(calls)})

    assert len(calls) == 2
    assert len(model.requests) == 4
    assert "No more tool calls are available" in model.requests[3].messages[-1].content
    assert result.decision is Decision.PROCEED
    assert len(result.tools_called) == 2


async def test_a_tool_result_can_record_data_in_the_session(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    async def lookup(arguments: Mapping[str, Any], context: ToolContext) -> ToolResult:
        return ToolResult({"order": "A-1"}, data={"order": {"id": "A-1", "total": 20}})

    model = ScriptedModel.answering(
        intent("q", 0.9),
        answer("...", tool_calls=[{"name": "lookup"}]),
        answer("Pedido A-1 hecho."),
    )
    result = await run(agent, make_view(), model, settings, {"lookup": Tool("lookup", lookup)})

    assert ops_of(result, MergeData) == [MergeData({"order": {"id": "A-1", "total": 20}})]
    assert result.tools_called[0].output == {"order": "A-1"}


def failing(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    raise KeyError("no such sku")


async def slow(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    await asyncio.sleep(5)


@pytest.mark.parametrize(
    ("tool_name", "tools", "error"),
    [
        ("lookup", {}, "has no implementation installed"),
        ("delete_everything", {}, "is not one of agent 'test-agent''s tools"),
        ("lookup", {"lookup": Tool("lookup", failing)}, "failed: KeyError"),
        ("lookup", {"lookup": Tool("lookup", slow, timeout=0.05)}, "timed out after 0.05s"),
        (
            "lookup",
            {
                "lookup": Tool(
                    "lookup",
                    failing,
                    parameters={"type": "object", "required": ["sku"]},
                )
            },
            "invalid arguments: arguments.sku is required",
        ),
    ],
    ids=["not-implemented", "not-the-agents", "raises", "times-out", "bad-arguments"],
)
async def test_a_tool_that_cannot_run_tells_the_model_why(
    agent: AgentConfig,
    make_view: Callable[..., View],
    settings: EngineSettings,
    tool_name: str,
    tools: Mapping[str, Tool],
    error: str,
) -> None:
    model = ScriptedModel.answering(
        intent("q", 0.9),
        answer("...", tool_calls=[{"name": tool_name, "arguments": {}}]),
        answer("Lo consulto con el equipo."),
    )
    result = await run(agent, make_view(), model, settings, tools)

    assert result.decision is Decision.PROCEED
    [call] = result.tools_called
    assert error in call.output["error"]
    assert error in model.requests[2].messages[-1].content


# -- failing models --------------------------------------------------------------------------


async def test_a_model_error_is_retried(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(ConnectionError("reset"), intent("q", 0.9), answer())
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.PROCEED
    assert len(model.requests) == 3


async def test_a_model_that_keeps_failing_ends_in_a_handoff_with_the_reason(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(*[ConnectionError("reset")] * 3)
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.HANDOFF
    assert len(model.requests) == settings.model_attempts == 3
    assert result.intent is None
    assert result.change.status is SessionStatus.HANDED_OFF
    assert result.handoff_reason == (
        f"model {agent.intent_detector.model!r} failed 3 times; last: ConnectionError: reset"
    )
    assert ops_of(result, AppendIntent) == []
    assert result.tokens_used == 0


async def test_a_model_that_hangs_times_out_and_is_retried(
    agent: AgentConfig, make_view: Callable[..., View]
) -> None:
    settings = EngineSettings(backoff=0, model_timeout=0.05, model_attempts=2)
    calls = 0

    async def respond(request: ModelRequest) -> ModelResponse:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    result = await run(agent, make_view(), ScriptedModel(respond), settings)

    assert calls == 2
    assert result.decision is Decision.HANDOFF
    assert "timed out after 0.05s" in (result.handoff_reason or "")


async def test_an_orchestrator_failure_hands_off_keeping_the_intent(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(intent("q", 0.9), *[TimeoutError()] * 3)
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.HANDOFF
    assert result.intent == "q"
    assert ops_of(result, AppendIntent) == [AppendIntent("q")]
    assert result.tokens_used == 15


async def test_a_configuration_error_is_raised_not_retried_nor_handed_off(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(EngineError("model 'x' needs an API key"))
    with pytest.raises(EngineError, match="needs an API key"):
        await run(agent, make_view(), model, settings)

    assert len(model.requests) == 1


class _ProviderError(Exception):
    """Shaped like openai's and anthropic's APIStatusError: the HTTP status as an attribute."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class _HTTPStatusError(Exception):
    """Shaped like httpx's HTTPStatusError: the status on `.response`."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.response = _Response(status_code)


@pytest.mark.parametrize(
    "error",
    [_ProviderError(401), _ProviderError(403), _HTTPStatusError(404)],
    ids=["unauthorized", "forbidden", "unknown-model"],
)
async def test_a_provider_refusing_the_setup_is_a_configuration_error(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings, error: Exception
) -> None:
    model = ScriptedModel.answering(error)
    with pytest.raises(EngineError, match="retrying cannot help") as caught:
        await run(agent, make_view(), model, settings)

    assert caught.value.__cause__ is error
    assert len(model.requests) == 1


@pytest.mark.parametrize(
    "error",
    [_ProviderError(429), _ProviderError(503), _HTTPStatusError(500), ConnectionResetError()],
    ids=["rate-limited", "unavailable", "server-error", "connection"],
)
async def test_a_transient_provider_error_is_retried_then_hands_off(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings, error: Exception
) -> None:
    model = ScriptedModel.answering(*[error] * settings.model_attempts)
    result = await run(agent, make_view(), model, settings)

    assert len(model.requests) == settings.model_attempts
    assert result.decision is Decision.HANDOFF
    assert f"failed {settings.model_attempts} times" in (result.handoff_reason or "")


async def test_a_request_the_provider_refuses_hands_off_without_retrying(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(_ProviderError(400))
    result = await run(agent, make_view(), model, settings)

    assert len(model.requests) == 1
    assert result.decision is Decision.HANDOFF
    assert "refused the request: _ProviderError: HTTP 400" in (result.handoff_reason or "")


@pytest.mark.parametrize(
    "error",
    [AttributeError("'str' object has no attribute 'x'"), TypeError("bad"), NameError("y")],
    ids=["attribute", "type", "name"],
)
async def test_a_programming_error_is_raised_as_it_is(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings, error: Exception
) -> None:
    model = ScriptedModel.answering(error)
    with pytest.raises(type(error)) as caught:
        await run(agent, make_view(), model, settings)

    assert caught.value is error
    assert len(model.requests) == 1


# -- tokens ----------------------------------------------------------------------------------


async def test_tokens_are_the_sum_of_every_model_call_of_the_run(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    usages = iter([Usage(100, 10), Usage(120, 12), Usage(300, 40), Usage(350, 45)])
    texts = iter(
        [
            '{"intent": "q", "confidence": 0.7}',
            '{"intent": "q", "confidence": 0.9}',
            '{"reply": "...", "next_mode": "greeting", "tool_calls": [{"name": "lookup"}]}',
            '{"reply": "Listo", "next_mode": "greeting"}',
        ]
    )

    def respond(request: ModelRequest) -> ModelResponse:
        return ModelResponse(next(texts), next(usages), request.model)

    result = await run(
        agent,
        make_view(),
        ScriptedModel(respond),
        settings,
        {"lookup": Tool("lookup", lambda arguments, context: 1)},
    )

    assert result.tokens_used == 110 + 132 + 340 + 395
    assert result.change.turns[0].tokens_used == result.tokens_used


async def test_answers_that_cannot_be_stored_hand_off_instead(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(
        intent("x" * 300, 0.9), answer("Hola\x00", captured_data={"name": "Ana"})
    )
    result = await run(agent, make_view(), model, settings)

    assert result.decision is Decision.HANDOFF
    assert result.intent is None
    assert result.reply == agent.handoff_message
    assert "cannot be stored" in (result.handoff_reason or "")
    assert ops_of(result, MergeCapturedData) == []
    assert ops_of(result, AppendIntent) == []
    assert result.tokens_used == 30


# -- refused settings and clients -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "wanted"),
    [
        ("model_attempts", 0, "a whole number > 0"),
        ("model_attempts", 1.5, "a whole number > 0"),
        ("model_attempts", True, "a whole number > 0"),
        ("model_timeout", "60", "a number > 0"),
        ("backoff", -0.1, "a number >= 0"),
        ("tool_timeout", float("nan"), "a number > 0"),
        ("max_tool_rounds", -1, "a whole number >= 0"),
        ("intent_history", None, "a whole number >= 0"),
    ],
)
def test_engine_settings_refuse_a_bad_value_naming_it(field: str, value: Any, wanted: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EngineSettings(**{field: value})

    assert caught.value.field == f"EngineSettings.{field}"
    assert f"must be {wanted}, got {value!r}" in str(caught.value)
    assert "nothing was written" not in str(caught.value)
    assert isinstance(caught.value, ValueError)  # `except ValueError` keeps working


async def test_a_client_answering_something_else_is_a_setup_error_not_retried(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel(lambda request: "not a response")  # type: ignore[arg-type,return-value]
    with pytest.raises(EngineError, match=r"returned str, expected a ModelResponse; fix the"):
        await run(agent, make_view(), model, settings)

    assert len(model.requests) == 1


async def test_a_scripted_model_out_of_answers_is_raised_not_handed_off(
    agent: AgentConfig, make_view: Callable[..., View], settings: EngineSettings
) -> None:
    model = ScriptedModel.answering(intent())  # the orchestrator's call has no answer
    with pytest.raises(EngineError, match="ran out of answers"):
        await run(agent, make_view(), model, settings)

    assert len(model.requests) == 2
