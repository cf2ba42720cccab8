"""One run of an agent: intent, thresholds, orchestrator and tools, decided without storage.

`run_agent` is a function of the agent's config, what the run sees (session, history,
the user turns it answers) and the models: it calls the models and the tools and returns
a `RunResult` whose `change` is everything to record in the run's one `complete` call.
It never touches storage, so the pipeline stays at two storage requests per message.

1. The intent detector classifies the inputs (`INTENT_SCHEMA`).
2. The agent's thresholds choose: proceed, re-analyse once with twice the history (a
   second answer in the re-analyse band counts as clarify), clarify, or hand off.
3. Proceed: the orchestrator answers (`ORCHESTRATOR_SCHEMA`), calling tools for a
   bounded number of rounds; a `next_mode` the state machine does not allow gets one
   repair request, then the mode stays. Clarify: the orchestrator asks one question.
   Hand off: no orchestrator call; the agent's `handoff_message` is the reply.

Failures of the conversation end in a hand-off with the reason in
`state.data["handoff_reason"]`: an answer that does not match its schema after one repair
request, a model that keeps failing transiently (timeouts, rate limits, server errors: each
call is retried with backoff, a bounded number of times), or a request the provider
refuses as such (HTTP 400, 413, 422). Failures of the setup are raised instead, before
anything is recorded, so that no customer is handed off for them: an `EngineError` (a
missing API key, a model nobody serves, a provider answering 401, 403 or 404) and
programming errors (`TypeError`, `AttributeError`, `LookupError`, ...). The run then expires and is
answered once the setup is fixed (the conversation's next message, or
`SessionManager.resume_abandoned`).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from attrs import frozen

from .. import validation
from ..config import AgentConfig, ModelConfig
from ..errors import EngineError, ModelOutputError, ToolError, ValidationError
from ..models import JSON, NewTurn, Session, SessionStatus, ToolCall, Turn
from ..sessions import SessionChange
from ..storage.base import AppendIntent, MergeCapturedData, MergeData, StateOp
from ..tools import Tool, ToolContext, ToolResult
from .client import ModelClient, ModelMessage, ModelRequest, ModelResponse, Usage
from .schema import CLARIFY_SCHEMA, INTENT_SCHEMA, ORCHESTRATOR_SCHEMA, check, parse_json
from .tracing import Tracing

__all__ = ["Decision", "EngineSettings", "RunResult", "RunView", "run_agent"]

logger = logging.getLogger(__name__)

HANDOFF_REASON_KEY = "handoff_reason"
"""The `state.data` key where a hand-off records why it happened."""


class Decision(enum.StrEnum):
    """What a run did with the message: acted on it, asked what it meant, or handed off."""

    PROCEED = "proceed"
    CLARIFY = "clarify"
    HANDOFF = "handoff"


def _setting(value: object, attribute: Any, positive: bool) -> None:
    """Refuse a setting that is not a number, or out of range, naming it (`ValidationError`)."""
    wanted = "a number > 0" if positive else "a number >= 0"
    if attribute.type in ("int", int):
        wanted = "a whole number > 0" if positive else "a whole number >= 0"
        number = isinstance(value, int) and not isinstance(value, bool)
    else:
        number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (value > 0 if positive else value >= 0):  # type: ignore[operator]
        raise ValidationError(
            f"EngineSettings.{attribute.name}",
            f"must be {wanted}, got {value!r}",
            outcome="no EngineSettings was made",
        )


def _positive(_: object, attribute: Any, value: float) -> None:
    _setting(value, attribute, positive=True)


def _not_negative(_: object, attribute: Any, value: float) -> None:
    _setting(value, attribute, positive=False)


@frozen
class EngineSettings:
    """The engine's limits. Every wait is bounded: nothing hangs.

    - `model_attempts`: tries per model call (errors and timeouts are retried);
    - `model_timeout`: seconds one model call may take;
    - `backoff`, `max_backoff`: the wait before retry n is random in
      [0, min(max_backoff, backoff * 2**(n-1))] (full jitter);
    - `tool_timeout`: seconds one tool call may take (a `Tool.timeout` overrides it);
    - `max_tool_rounds`: rounds of tool calls the orchestrator may make in one run;
    - `intent_history`: history turns the intent detector sees (twice as many when it
      re-analyses; the orchestrator sees all the run's history).
    """

    model_attempts: int = attrs.field(default=3, validator=_positive)
    model_timeout: float = attrs.field(default=60.0, validator=_positive)
    backoff: float = attrs.field(default=0.5, validator=_not_negative)
    max_backoff: float = attrs.field(default=8.0, validator=_not_negative)
    tool_timeout: float = attrs.field(default=15.0, validator=_positive)
    max_tool_rounds: int = attrs.field(default=3, validator=_not_negative)
    intent_history: int = attrs.field(default=10, validator=_not_negative)


class RunView(Protocol):
    """What a run sees: the pipeline's `Run` has these attributes."""

    @property
    def session(self) -> Session: ...

    @property
    def history(self) -> Sequence[Turn]: ...

    @property
    def inputs(self) -> Sequence[Turn]: ...


@frozen
class RunResult:
    """What one run decided, and the `change` that records it."""

    decision: Decision
    intent: str | None
    confidence: float | None
    reply: str
    mode: str
    tokens_used: int
    tools_called: tuple[ToolCall, ...]
    handoff_reason: str | None
    change: SessionChange


@frozen
class _Outcome:
    decision: Decision
    intent: str | None
    confidence: float | None
    reply: str
    reason: str | None = None
    mode: str | None = None
    failed: bool = False


class _RunFailedError(Exception):
    """A model or its output failed beyond what the engine repairs: the run hands off."""


ModelLookup = Callable[[str], ModelClient]

_PROGRAMMING_ERRORS = (
    AttributeError,
    TypeError,
    NameError,
    AssertionError,
    NotImplementedError,
    ImportError,
    RecursionError,
    LookupError,
)
"""Errors that mean a bug or a wrong setup in code, not a failing model: raised as they are,
never retried. `LookupError` (`KeyError`, `IndexError`) is one: a client that cannot find
what it serves (an agent, a model, a key in its own tables) fails the same way every time,
and a provider library reports a failing provider with its own exceptions."""

_CONFIGURATION_STATUSES = frozenset({401, 403, 404})
"""HTTP statuses a provider answers for a bad key, a forbidden or unknown model."""

_TRANSIENT = frozenset({408, 409, 425, 429})
"""4xx statuses worth retrying (timeouts, conflicts, rate limits); every 5xx is too."""


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status of a provider library's error (openai, anthropic, httpx), if any."""
    for holder in (exc, getattr(exc, "response", None)):
        status = getattr(holder, "status_code", None)
        if isinstance(status, int) and not isinstance(status, bool):
            return status
    return None


async def run_agent(
    agent: AgentConfig,
    view: RunView,
    *,
    models: ModelLookup,
    tools: Mapping[str, Tool],
    settings: EngineSettings | None = None,
    tracing: Tracing | None = None,
) -> RunResult:
    """Decide one run of `agent` (see the module's docstring); storage is not touched.

    `models` maps a config's model id to the client that serves it; `tools` are the
    agent's tool implementations by name.
    """
    run = _Run(agent, view, models, tools, settings or EngineSettings(), tracing or Tracing())
    return await run.decide()


class _Run:
    def __init__(
        self,
        agent: AgentConfig,
        view: RunView,
        models: ModelLookup,
        tools: Mapping[str, Tool],
        settings: EngineSettings,
        tracing: Tracing,
    ) -> None:
        self.agent = agent
        self.session = view.session
        self.history = tuple(view.history)
        self.inputs = tuple(view.inputs)
        self.models = models
        self.tools = tools
        self.settings = settings
        self.tracing = tracing
        self.usage = Usage()
        self.tools_called: list[ToolCall] = []
        self.tool_data: dict[str, JSON] = {}
        self.captured: dict[str, str] = {}

    # -- the decision ----------------------------------------------------------------------

    async def decide(self) -> RunResult:
        agent = self.agent
        with self.tracing.agent(agent.id, agent.name, self.session.id) as span:
            result = await self._decide()
            span.set_attribute("frontdesk.decision", str(result.decision))
            if result.failed:
                self.tracing.failed(span, "handoff")
        try:
            return self._build(result)
        except ValidationError as exc:
            # The models' answers cannot be stored as they are (an intent name too long, a
            # reply with a NUL, ...): hand off, recording only what is known to be safe.
            self.captured.clear()
            self.tool_data.clear()
            self.tools_called.clear()
            reason = f"the run's outcome cannot be stored: {exc}"
            logger.warning("agent %r: %s", self.agent.id, reason)
            handoff = _Outcome(Decision.HANDOFF, None, result.confidence, "", reason)
            return self._build(handoff)

    async def _decide(self) -> _Outcome:
        intent: str | None = None
        confidence: float | None = None
        try:
            intent, confidence, band = await self._detect_intent()
            if band == "handoff":
                reason = (
                    f"intent {intent!r} detected with confidence {confidence:g}, below the "
                    f"clarify threshold ({self.agent.thresholds.clarify:g})"
                )
                return _Outcome(Decision.HANDOFF, intent, confidence, "", reason)
            if band == "clarify":
                reply = await self._clarify(intent, confidence)
                return _Outcome(Decision.CLARIFY, intent, confidence, reply)
            reply, mode = await self._orchestrate(intent, confidence)
            return _Outcome(Decision.PROCEED, intent, confidence, reply, mode=mode)
        except _RunFailedError as failure:
            return _Outcome(Decision.HANDOFF, intent, confidence, "", str(failure), failed=True)

    async def _detect_intent(self) -> tuple[str, float, str]:
        thresholds = self.agent.thresholds
        first = self.settings.intent_history
        answer = await self._ask(
            self.agent.intent_detector,
            [self._user(self._intent_context(_last(self.history, first)))],
            INTENT_SCHEMA,
        )
        band = thresholds.decide(answer["confidence"])
        if band == "reanalyze":
            answer = await self._ask(
                self.agent.intent_detector,
                [self._user(self._intent_context(_last(self.history, 2 * first)))],
                INTENT_SCHEMA,
            )
            band = thresholds.decide(answer["confidence"])
            if band == "reanalyze":
                band = "clarify"  # never a third call
        self.captured.update(_fields(answer.get("fields") or {}))
        return answer["intent"], float(answer["confidence"]), band

    async def _clarify(self, intent: str, confidence: float) -> str:
        context = self._orchestrator_context(intent, confidence, tools=False)
        instruction = (
            "You are not sure what the customer means: the intent detector's best guess is "
            f"{intent!r} with confidence {confidence:g}. Do not act on it. Ask ONE short, "
            "specific question that helps you understand, in the customer's language. "
            'Answer with a JSON object: {"reply": "<your question>"}.'
        )
        answer = await self._ask(
            self.agent.orchestrator, [self._user(f"{context}\n\n{instruction}")], CLARIFY_SCHEMA
        )
        reply: str = answer["reply"]
        return reply

    async def _orchestrate(self, intent: str, confidence: float) -> tuple[str, str]:
        orchestrator = self.agent.orchestrator
        messages = [self._user(self._orchestrator_context(intent, confidence, tools=True))]
        answer = await self._ask(orchestrator, messages, ORCHESTRATOR_SCHEMA)
        rounds = 0
        while answer.get("tool_calls") and rounds < self.settings.max_tool_rounds:
            rounds += 1
            results = [await self._call_tool(call) for call in answer["tool_calls"]]
            last = rounds == self.settings.max_tool_rounds
            note = " No more tool calls are available: answer the customer now." if last else ""
            messages += [
                ModelMessage("assistant", json.dumps(answer, ensure_ascii=False)),
                self._user(f"Tool results:\n{json.dumps(results, ensure_ascii=False)}{note}"),
            ]
            answer = await self._ask(orchestrator, messages, ORCHESTRATOR_SCHEMA)
        if answer.get("tool_calls"):
            logger.warning(
                "agent %r asked for tools after %d rounds; the calls were not run",
                self.agent.id,
                rounds,
            )
        mode = self.session.current_mode
        states = self.agent.states
        if not states.can_move(mode, answer["next_mode"]):
            allowed = ", ".join((mode, *states.allowed_from(mode)))
            messages += [
                ModelMessage("assistant", json.dumps(answer, ensure_ascii=False)),
                self._user(
                    f"next_mode {answer['next_mode']!r} is not allowed from mode {mode!r}. "
                    f"The allowed modes are: {allowed}. Answer again with the same JSON "
                    "shape, an allowed next_mode and no tool_calls."
                ),
            ]
            repaired = await self._ask(orchestrator, messages, ORCHESTRATOR_SCHEMA)
            if states.can_move(mode, repaired["next_mode"]):
                answer = repaired
            else:
                answer = {**repaired, "next_mode": mode, "captured_data": {}}
        self.captured.update(answer.get("captured_data") or {})
        return answer["reply"], answer["next_mode"]

    # -- model calls -----------------------------------------------------------------------

    async def _ask(
        self, config: ModelConfig, messages: list[ModelMessage], schema: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A JSON answer that matches `schema`, with one repair request if needed."""
        request = ModelRequest(
            model=config.model,
            system=config.system_prompt,
            messages=messages,
            output_schema=schema,
            max_tokens=config.max_tokens,
            temperature=config.temperature,
        )
        text, value, problems = await self._answer(request)
        if not problems:
            return value  # type: ignore[no-any-return]
        repair = attrs.evolve(
            request,
            messages=(
                *request.messages,
                ModelMessage("assistant", text),
                self._user(
                    "Your answer does not match the required JSON schema: "
                    f"{'; '.join(problems)}. Answer again with only a JSON object matching "
                    f"this schema: {json.dumps(schema, ensure_ascii=False)}"
                ),
            ),
        )
        text, value, problems = await self._answer(repair)
        if problems:
            raise _RunFailedError(
                f"model {config.model!r} answered twice with output that does not match the "
                f"{schema.get('title', 'requested')} schema: {'; '.join(problems)}"
            )
        return value  # type: ignore[no-any-return]

    async def _answer(self, request: ModelRequest) -> tuple[str, Any, list[str]]:
        try:
            response = await self._call(request)
        except ModelOutputError as exc:
            # A client that checks the schema itself (the llm adapter) reports it so.
            self.usage += Usage(exc.input_tokens, exc.output_tokens)
            return exc.text, None, list(exc.problems)
        value, problems = parse_json(response.text)
        if not problems and request.output_schema is not None:
            problems = check(value, request.output_schema)
        return response.text, value, problems

    async def _call(self, request: ModelRequest) -> ModelResponse:
        """One model call, retried with backoff on errors and timeouts, a bounded number of times."""
        settings = self.settings
        client = self.models(request.model)
        failure = ""
        for attempt in range(1, settings.model_attempts + 1):
            with self.tracing.chat(request, self.session.id) as span:
                try:
                    async with asyncio.timeout(settings.model_timeout):
                        response = await client.complete(request)
                except ModelOutputError:
                    raise
                except EngineError as exc:
                    # A missing key, a model nobody serves: the configuration is wrong, and
                    # neither a retry nor a hand-off helps. Nothing is recorded; the run
                    # expires and is answered once the configuration is fixed.
                    self.tracing.failed(span, type(exc).__name__)
                    raise
                except _PROGRAMMING_ERRORS:
                    raise  # a bug in a client or a tool of ours: not the customer's problem
                except TimeoutError:
                    failure = f"timed out after {settings.model_timeout:g}s"
                    self.tracing.failed(span, "timeout")
                except Exception as exc:  # any provider error: sorted below
                    self.tracing.failed(span, type(exc).__name__)
                    status = _status_code(exc)
                    if status in _CONFIGURATION_STATUSES:
                        raise EngineError(
                            f"model {request.model!r} refused the request with HTTP {status} "
                            f"({type(exc).__name__}: {exc}); check the model id, its API key "
                            "and the agent's model options: retrying cannot help"
                        ) from exc
                    failure = f"{type(exc).__name__}: {exc}"
                    if status is not None and 400 <= status < 500 and status not in _TRANSIENT:
                        # This request cannot be answered (too long, refused by a filter):
                        # retrying it changes nothing, a person can.
                        raise _RunFailedError(
                            f"model {request.model!r} refused the request: {failure}"
                        ) from exc
                else:
                    if not isinstance(response, ModelResponse):
                        # The client is wrong, not the model: a setup failure, like a bad key.
                        raise EngineError(
                            f"{type(client).__name__}.complete() returned "
                            f"{type(response).__name__}, expected a ModelResponse; fix the "
                            f"client that serves model {request.model!r}"
                        )
                    self.tracing.model_answered(span, response)
                    self.usage += response.usage
                    return response
            logger.warning(
                "model %r call %d/%d failed: %s",
                request.model,
                attempt,
                settings.model_attempts,
                failure,
            )
            if attempt < settings.model_attempts:
                ceiling = min(settings.max_backoff, settings.backoff * 2 ** (attempt - 1))
                await asyncio.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not secrets
        raise _RunFailedError(
            f"model {request.model!r} failed {settings.model_attempts} times; last: {failure}"
        )

    # -- tools -----------------------------------------------------------------------------

    async def _call_tool(self, call: Mapping[str, Any]) -> dict[str, JSON]:
        name: str = call["name"]
        arguments: dict[str, Any] = call.get("arguments") or {}
        with self.tracing.tool(name, arguments, self.session.id) as span:
            output, error = await self._run_tool(name, arguments)
            self.tracing.tool_answered(span, output, error)
        self.tools_called.append(ToolCall(name=name, input=arguments, output=output))
        return {"name": name, "arguments": arguments, "output": output}

    async def _run_tool(self, name: str, arguments: dict[str, Any]) -> tuple[JSON, str | None]:
        """The tool's output, or an error the model is told about (and the type of error)."""
        agent = self.agent
        tool = self.tools.get(name)
        if name not in agent.tools:
            error = ToolError(
                name,
                agent.id,
                f"{name!r} is not one of agent {agent.id!r}'s tools "
                f"({', '.join(agent.tools) or 'it has none'})",
            )
            return {"error": str(error)}, "ToolError"
        if tool is None:
            error = ToolError(
                name,
                agent.id,
                f"tool {name!r} of agent {agent.id!r} has no implementation installed; "
                "the agent's package must provide it with the register_tools hook",
            )
            logger.warning("%s", error)
            return {"error": str(error)}, "ToolError"
        if tool.parameters is not None:
            problems = check(arguments, tool.parameters, "arguments")
            if problems:
                return {"error": f"invalid arguments: {'; '.join(problems)}"}, "InvalidArguments"
        timeout = tool.timeout or self.settings.tool_timeout
        context = ToolContext(
            agent=agent,
            session=self.session,
            captured_data={**self.session.state.captured_data, **self.captured},
        )
        try:
            async with asyncio.timeout(timeout):
                result = await _invoke(tool, arguments, context)
        except TimeoutError:
            return {"error": f"tool {name!r} timed out after {timeout:g}s"}, "timeout"
        except Exception as exc:  # noqa: BLE001 - reported to the model, which may recover
            logger.warning("tool %r of agent %r failed: %r", name, agent.id, exc)
            return {"error": f"tool {name!r} failed: {type(exc).__name__}: {exc}"}, type(
                exc
            ).__name__
        output = result.output if isinstance(result, ToolResult) else result
        try:
            validation.check_json(f"output of tool {name!r}", output)
        except ValidationError as exc:
            return {"error": str(exc)}, "InvalidOutput"
        if isinstance(result, ToolResult):
            self.tool_data.update(result.data)
        return output, None

    # -- building the answer ---------------------------------------------------------------

    def _build(self, outcome: _Outcome) -> RunResult:
        decision, intent, reason = outcome.decision, outcome.intent, outcome.reason
        mode = outcome.mode or self.session.current_mode
        reply = self.agent.handoff_message if decision is Decision.HANDOFF else outcome.reply
        if reason is not None:
            logger.info("agent %r hands session %s off: %s", self.agent.id, self.session.id, reason)
        ops: list[StateOp] = []
        if intent is not None:
            ops.append(AppendIntent(intent))
        if self.captured:
            ops.append(MergeCapturedData(self.captured))
        data = dict(self.tool_data)
        if reason is not None:
            data[HANDOFF_REASON_KEY] = reason
        if data:
            ops.append(MergeData(data))
        turn = NewTurn(
            role="assistant",
            content=reply,
            tokens_used=self.usage.total,
            tools_called=self.tools_called,
        )
        change = SessionChange(
            current_mode=mode if mode != self.session.current_mode else None,
            status=SessionStatus.HANDED_OFF if decision is Decision.HANDOFF else None,
            state_ops=ops,
            turns=[turn],
            inputs_intent=intent,
            inputs_confidence=outcome.confidence if intent is not None else None,
        )
        return RunResult(
            decision=decision,
            intent=intent,
            confidence=outcome.confidence,
            reply=reply,
            mode=mode,
            tokens_used=self.usage.total,
            tools_called=tuple(self.tools_called),
            handoff_reason=reason,
            change=change,
        )

    # -- what the models are told ----------------------------------------------------------

    @staticmethod
    def _user(content: str) -> ModelMessage:
        return ModelMessage("user", content)

    def _intent_context(self, history: Sequence[Turn]) -> str:
        return "\n\n".join(
            [
                f"Current mode: {self.session.current_mode}",
                _transcript("Conversation so far", history),
                _transcript("Classify the latest message(s)", self.inputs),
                'Answer with a JSON object: {"intent": "<intent>", "confidence": <0 to 1>, '
                '"fields": {<what the message gives>}}.',
            ]
        )

    def _orchestrator_context(self, intent: str, confidence: float, *, tools: bool) -> str:
        mode = self.session.current_mode
        state = self.session.state
        allowed = self.agent.states.allowed_from(mode)
        captured = {**state.captured_data, **self.captured}
        moves = (
            f"{', '.join(allowed)} (or stay in {mode})"
            if allowed
            else f"none: {mode} is final, stay in it"
        )
        parts = [
            f"Current mode: {mode}",
            f"Modes allowed next: {moves}",
            f"Captured data: {json.dumps(captured, ensure_ascii=False)}",
            "Intents seen so far: "
            + (", ".join(seen.intent for seen in state.intents_seen) or "none"),
            f"State data: {json.dumps(dict(state.data), ensure_ascii=False)}",
            f"Detected intent: {intent} (confidence {confidence:g})",
            _transcript("Conversation so far", self.history),
            _transcript("The customer's new message(s)", self.inputs),
        ]
        if tools:
            parts.append(self._tools_text())
            parts.append(
                'Answer with a JSON object: {"reply": "<message to the customer>", '
                '"next_mode": "<mode>", "captured_data": {<name>: <text>}, "tool_calls": '
                '[{"name": "<tool>", "arguments": {...}}]}. To call tools, list them in '
                "tool_calls: you get their results and answer again."
            )
        return "\n\n".join(parts)

    def _tools_text(self) -> str:
        if not self.agent.tools:
            return "Tools: none."
        lines = ["Tools you may call:"]
        for name in self.agent.tools:
            tool = self.tools.get(name)
            if tool is None:
                lines.append(f"- {name} (not available)")
                continue
            line = f"- {name}: {tool.description}" if tool.description else f"- {name}"
            if tool.parameters is not None:
                line += f" Arguments: {json.dumps(tool.parameters, ensure_ascii=False)}"
            lines.append(line)
        return "\n".join(lines)


async def _invoke(tool: Tool, arguments: Mapping[str, Any], context: ToolContext) -> Any:
    if inspect.iscoroutinefunction(tool.function):
        return await tool.function(arguments, context)
    # A sync tool runs in a thread, so that its timeout holds and the loop keeps serving.
    result = await asyncio.to_thread(tool.function, arguments, context)
    if inspect.isawaitable(result):
        return await result
    return result


def _last(turns: Sequence[Turn], count: int) -> Sequence[Turn]:
    return turns[-count:] if count else ()


def _transcript(title: str, turns: Sequence[Turn]) -> str:
    if not turns:
        return f"{title}: (none)"
    lines = "\n".join(f"[{turn.role}] {turn.content}" for turn in turns)
    return f"{title}:\n{lines}"


def _fields(fields: Mapping[str, Any]) -> dict[str, str]:
    """The intent's extracted fields as captured data (text); nulls are left out."""
    return {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in fields.items()
        if value is not None and value != ""
    }
