"""OpenTelemetry spans for runs, model calls and tool calls (GenAI semantic conventions).

Spans are made only when `opentelemetry-api` is installed (`pip install
'frontdesk[otel]'`); without it every span is a no-op. One run is an `invoke_agent
{agent}` span holding a `chat {model}` span per model call and an `execute_tool {tool}`
span per tool call, with `gen_ai.conversation.id` set to the session id and the tokens
of each call in `gen_ai.usage.input_tokens` / `gen_ai.usage.output_tokens`. Message
content (prompts, replies, tool arguments and results) is recorded only when the engine
is built with `capture_content=True`: it is personal data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .client import ModelRequest, ModelResponse

__all__ = ["Tracing"]


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        pass


_NO_SPAN = _NoSpan()


class Tracing:
    """Makes the engine's spans with a tracer from `tracer_provider` (or the global one)."""

    def __init__(self, tracer_provider: Any = None, *, capture_content: bool = False) -> None:
        self.capture_content = capture_content
        self._provider = tracer_provider
        self._tracer: Any = None
        self._tracer_of: Any = None
        try:
            from opentelemetry import trace
        except ImportError:
            self._trace: Any = None
            return
        from .. import __version__

        self._trace = trace
        self._version = __version__

    def _current_tracer(self) -> Any:
        """The tracer to use now, or None when spans would be no-ops anyway.

        Without an explicit provider the global one is looked up at each span, so that one
        configured after the engine was built is used; while none is configured (the API's
        proxy), no span is made at all, which saves their cost.
        """
        if self._trace is None:
            return None
        provider = self._provider
        if provider is None:
            provider = self._trace.get_tracer_provider()
            if isinstance(provider, self._trace.ProxyTracerProvider):
                return None
        if provider is not self._tracer_of:
            self._tracer_of = provider
            self._tracer = provider.get_tracer("frontdesk", self._version)
        return self._tracer

    @contextmanager
    def agent(self, agent_id: str, agent_name: str, session_id: str) -> Iterator[Any]:
        """The `invoke_agent` span of one run."""
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.id": agent_id,
            "gen_ai.agent.name": agent_name,
            "gen_ai.conversation.id": session_id,
        }
        with self._span(f"invoke_agent {agent_id}", attributes, internal=True) as span:
            yield span

    @contextmanager
    def chat(self, request: ModelRequest, session_id: str) -> Iterator[Any]:
        """The `chat` span of one model call; finish it with `model_answered`."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": request.model,
            "gen_ai.conversation.id": session_id,
            "gen_ai.output.type": "json" if request.output_schema is not None else "text",
        }
        if request.max_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_tokens
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        if self.capture_content:
            attributes["gen_ai.system_instructions"] = json.dumps(
                [{"type": "text", "content": request.system}], ensure_ascii=False
            )
            attributes["gen_ai.input.messages"] = json.dumps(
                [
                    {"role": m.role, "parts": [{"type": "text", "content": m.content}]}
                    for m in request.messages
                ],
                ensure_ascii=False,
            )
        with self._span(f"chat {request.model}", attributes, internal=False) as span:
            yield span

    def model_answered(self, span: Any, response: ModelResponse) -> None:
        """Record a model's answer on its `chat` span."""
        if response.model:
            span.set_attribute("gen_ai.response.model", response.model)
        span.set_attribute("gen_ai.usage.input_tokens", response.usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", response.usage.output_tokens)
        if self.capture_content:
            span.set_attribute(
                "gen_ai.output.messages",
                json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": response.text}]}],
                    ensure_ascii=False,
                ),
            )

    @contextmanager
    def tool(self, name: str, arguments: Any, session_id: str) -> Iterator[Any]:
        """The `execute_tool` span of one tool call."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.conversation.id": session_id,
        }
        if self.capture_content:
            attributes["gen_ai.tool.call.arguments"] = json.dumps(arguments, ensure_ascii=False)
        with self._span(f"execute_tool {name}", attributes, internal=True) as span:
            yield span

    def tool_answered(self, span: Any, output: Any, error: str | None) -> None:
        """Record a tool's result (content only when captured) or its error."""
        if error is not None:
            span.set_attribute("error.type", error)
        if self.capture_content:
            span.set_attribute("gen_ai.tool.call.result", json.dumps(output, ensure_ascii=False))

    def failed(self, span: Any, error_type: str) -> None:
        """Mark a span as failed (the run handed off, a model call gave up)."""
        span.set_attribute("error.type", error_type)
        if span is not _NO_SPAN:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error_type))

    @contextmanager
    def _span(self, name: str, attributes: dict[str, Any], *, internal: bool) -> Iterator[Any]:
        tracer = self._current_tracer()
        if tracer is None:
            yield _NO_SPAN
            return
        kinds = self._trace.SpanKind
        kind = kinds.INTERNAL if internal else kinds.CLIENT
        with tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
            yield span
