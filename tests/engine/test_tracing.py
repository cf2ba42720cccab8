"""OpenTelemetry spans of a run, read back with the SDK's in-memory exporter."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from frontdesk import AgentConfig, ModelResponse, Tool, ToolContext, Usage
from frontdesk.engine import EngineSettings, Tracing, run_agent
from frontdesk.testing import ScriptedModel

from .conftest import View


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def lookup(arguments: Mapping[str, Any], context: ToolContext) -> Any:
    return {"stock": 3}


def script() -> ScriptedModel:
    return ScriptedModel.answering(
        ModelResponse('{"intent": "q", "confidence": 0.9}', Usage(100, 10), "small-2024"),
        ModelResponse(
            '{"reply": "...", "next_mode": "greeting", "tool_calls": '
            '[{"name": "lookup", "arguments": {"sku": "M"}}]}',
            Usage(200, 20),
            "large-2024",
        ),
        ModelResponse(
            '{"reply": "Quedan 3.", "next_mode": "greeting"}', Usage(300, 30), "large-2024"
        ),
    )


async def traced_run(
    agent: AgentConfig, view: View, model: ScriptedModel, tracing: Tracing
) -> None:
    await run_agent(
        agent,
        view,
        models=lambda _: model,
        tools={"lookup": Tool("lookup", lookup)},
        settings=EngineSettings(backoff=0),
        tracing=tracing,
    )


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


async def test_a_run_makes_genai_spans(
    agent: AgentConfig,
    make_view: Callable[..., View],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    view = make_view("¿hay talla M?")
    await traced_run(agent, view, script(), Tracing(provider))

    spans = by_name(exporter.get_finished_spans())
    [root] = spans["invoke_agent test-agent"]
    assert root.kind is SpanKind.INTERNAL
    assert root.attributes is not None
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["gen_ai.agent.id"] == "test-agent"
    assert root.attributes["gen_ai.conversation.id"] == view.session.id

    [detector] = spans["chat test-small"]
    orchestrator = spans["chat test-large"]
    assert len(orchestrator) == 2
    assert detector.kind is SpanKind.CLIENT
    assert detector.attributes is not None
    assert detector.attributes["gen_ai.operation.name"] == "chat"
    assert detector.attributes["gen_ai.request.model"] == "test-small"
    assert detector.attributes["gen_ai.response.model"] == "small-2024"
    assert detector.attributes["gen_ai.usage.input_tokens"] == 100
    assert detector.attributes["gen_ai.usage.output_tokens"] == 10
    assert detector.attributes["gen_ai.conversation.id"] == view.session.id
    assert [s.attributes["gen_ai.usage.input_tokens"] for s in orchestrator] == [200, 300]  # type: ignore[index]

    [tool] = spans["execute_tool lookup"]
    assert tool.attributes is not None
    assert tool.attributes["gen_ai.tool.name"] == "lookup"
    for span in (detector, *orchestrator, tool):
        assert span.parent is not None
        assert span.parent.span_id == root.context.span_id


async def test_message_content_is_off_by_default(
    agent: AgentConfig,
    make_view: Callable[..., View],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    await traced_run(agent, make_view("mi DNI es 12345678Z"), script(), Tracing(provider))

    for span in exporter.get_finished_spans():
        recorded = json.dumps(dict(span.attributes or {}))
        assert "12345678Z" not in recorded
        assert "gen_ai.input.messages" not in recorded
        assert "gen_ai.tool.call.arguments" not in recorded


async def test_content_is_recorded_when_asked_for(
    agent: AgentConfig,
    make_view: Callable[..., View],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    tracing = Tracing(provider, capture_content=True)
    await traced_run(agent, make_view("¿hay talla M?"), script(), tracing)

    spans = by_name(exporter.get_finished_spans())
    [detector] = spans["chat test-small"]
    assert detector.attributes is not None
    messages = json.loads(str(detector.attributes["gen_ai.input.messages"]))
    assert "¿hay talla M?" in messages[0]["parts"][0]["content"]
    assert json.loads(str(detector.attributes["gen_ai.output.messages"]))[0]["role"] == "assistant"
    [tool] = spans["execute_tool lookup"]
    assert tool.attributes is not None
    assert json.loads(str(tool.attributes["gen_ai.tool.call.arguments"])) == {"sku": "M"}
    assert json.loads(str(tool.attributes["gen_ai.tool.call.result"])) == {"stock": 3}


async def test_a_failing_model_call_is_an_error_span(
    agent: AgentConfig,
    make_view: Callable[..., View],
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    model = ScriptedModel.answering(*[ConnectionError("reset")] * 3)
    await traced_run(agent, make_view(), model, Tracing(provider))

    spans = by_name(exporter.get_finished_spans())
    failed = spans["chat test-small"]
    assert len(failed) == 3
    for span in failed:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == "ConnectionError"
    [root] = spans["invoke_agent test-agent"]
    assert root.attributes is not None
    assert root.attributes["error.type"] == "handoff"
