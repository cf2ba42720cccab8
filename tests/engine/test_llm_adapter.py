"""The `llm` adapter, offline: `llm-echo` and a model defined in this test, through `llm` itself."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import llm
import pytest

from frontdesk import (
    AgentRegistry,
    Engine,
    EngineError,
    InboundMessage,
    InMemoryStorage,
    ModelConfig,
    ModelMessage,
    ModelOutputError,
    ModelRequest,
    SessionManager,
    Usage,
)
from frontdesk.engine import Decision, EngineSettings, ModelProviders, run_agent
from frontdesk.engine.llm_adapter import LLMModel, get_model_client
from frontdesk.engine.schema import INTENT_SCHEMA
from frontdesk.testing import make_test_agent

from .conftest import View


@pytest.fixture(autouse=True)
def llm_user_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`llm` reads keys and aliases from here, not from the user's own directory."""
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path))
    monkeypatch.delenv("LLM_ECHO_NEEDS_KEY_KEY", raising=False)
    return tmp_path


class _Scripted(llm.AsyncModel):
    """An `llm` model that answers from a class-level script and records its prompts."""

    can_stream = False
    answers: ClassVar[list[str]] = []
    prompts: ClassVar[list[Any]] = []

    class Options(llm.Options):
        max_tokens: int | None = None
        temperature: float | None = None

    async def execute(
        self, prompt: Any, stream: bool, response: Any, conversation: Any = None
    ) -> AsyncIterator[str]:
        type(self).prompts.append(prompt)
        response.set_usage(input=40, output=8)
        yield type(self).answers.pop(0)


class SchemaModel(_Scripted):
    model_id = "frontdesk-test-schema"
    supports_schema = True


class PlainModel(_Scripted):
    model_id = "frontdesk-test-plain"
    supports_schema = False


class _Plugin:
    @llm.hookimpl
    def register_models(self, register: Any) -> None:
        register(SchemaModel(), SchemaModel())
        register(PlainModel(), PlainModel())


@pytest.fixture
def test_models() -> Iterator[None]:
    """Register the test's models with `llm` for one test."""
    plugin = _Plugin()
    llm.plugins.pm.register(plugin, name="frontdesk-test-models")
    _Scripted.answers.clear()
    _Scripted.prompts.clear()
    try:
        yield
    finally:
        llm.plugins.pm.unregister(plugin)


def request(model: str, *contents: str, schema: Any = None, **options: Any) -> ModelRequest:
    roles = ["user", "assistant"]
    return ModelRequest(
        model=model,
        system="You classify messages.",
        messages=[ModelMessage(roles[i % 2], c) for i, c in enumerate(contents)],  # type: ignore[arg-type]
        output_schema=schema,
        **options,
    )


def echo_raw(text: str) -> str:
    """A prompt that makes `llm-echo` answer exactly `text`."""
    return json.dumps({"prompt": "hi", "raw": text})


# -- claiming model ids ----------------------------------------------------------------------


def test_the_adapter_claims_the_models_llm_knows() -> None:
    assert isinstance(get_model_client("echo"), LLMModel)
    assert get_model_client("no-such-model-anywhere") is None


def test_the_adapter_is_an_installed_model_provider() -> None:
    providers = ModelProviders()
    assert "llm" in providers.names
    assert isinstance(providers.resolve("echo"), LLMModel)


# -- llm-echo: a model without native schemas ------------------------------------------------


async def test_messages_and_system_reach_the_model() -> None:
    client = get_model_client("echo")
    assert client is not None
    response = await client.complete(request("echo", "hola", "¿qué buscas?", "camisetas"))

    sent = json.loads(response.text)
    assert sent["system"] == "You classify messages."
    assert sent["prompt"] == "[user]\nhola\n\n[assistant]\n¿qué buscas?\n\n[user]\ncamisetas"
    assert response.model == "echo"
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0


async def test_without_native_schemas_the_schema_goes_in_the_prompt() -> None:
    client = get_model_client("echo")
    assert client is not None
    # llm-echo answers with what it was sent, which is no intent: refused, with its text.
    with pytest.raises(ModelOutputError) as caught:
        await client.complete(request("echo", "hola", schema=INTENT_SCHEMA))

    sent = json.loads(caught.value.text)
    assert sent["system"].startswith("You classify messages.\n\nAnswer with one JSON object")
    assert json.dumps(dict(INTENT_SCHEMA)) in sent["system"]
    assert "$.intent is required" in caught.value.problems


async def test_a_schema_answer_is_checked_and_returned_as_json() -> None:
    client = get_model_client("echo")
    assert client is not None
    good = '```json\n{"intent": "greeting", "confidence": 0.9}\n```'
    response = await client.complete(request("echo", echo_raw(good), schema=INTENT_SCHEMA))

    assert json.loads(response.text) == {"intent": "greeting", "confidence": 0.9}


async def test_a_schema_answer_that_does_not_match_raises_with_the_text() -> None:
    client = get_model_client("echo")
    assert client is not None
    bad = '{"intent": "greeting", "confidence": 7}'
    with pytest.raises(ModelOutputError) as caught:
        await client.complete(request("echo", echo_raw(bad), schema=INTENT_SCHEMA))

    assert caught.value.problems == ("$.confidence must be <= 1, got 7",)
    assert caught.value.text == bad
    assert caught.value.input_tokens > 0


def test_a_model_that_needs_a_missing_key_is_refused_when_resolved() -> None:
    with pytest.raises(EngineError, match=r"needs an API key.*LLM_USER_PATH") as caught:
        get_model_client("echo-needs-key")
    assert "'echo-needs-key'" in str(caught.value)


async def test_a_key_removed_after_resolving_says_how_to_set_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_ECHO_NEEDS_KEY_KEY", "sk-test")
    client = get_model_client("echo-needs-key")
    assert client is not None
    response = await client.complete(request("echo-needs-key", "hola"))
    assert json.loads(response.text)["key"] == "sk-test"

    monkeypatch.delenv("LLM_ECHO_NEEDS_KEY_KEY")
    with pytest.raises(EngineError, match=r"needs an API key.*LLM_USER_PATH"):
        await client.complete(request("echo-needs-key", "hola"))


async def test_a_missing_key_fails_the_engine_before_anything_is_recorded() -> None:
    agent = make_test_agent(
        intent_detector=ModelConfig(model="echo-needs-key", system_prompt="Classify."),
        orchestrator=ModelConfig(model="echo-needs-key", system_prompt="Answer."),
    )
    registry = AgentRegistry()
    registry.register(agent)
    manager = SessionManager(InMemoryStorage(), workspace_id="tests", registry=registry)
    engine = Engine(manager, providers=ModelProviders())
    message = InboundMessage(
        agent_id=agent.id,
        conversation_id="wa:+34600111222",
        contact_id="+34600111222",
        message_id="wamid.1",
        content="hola",
    )

    with pytest.raises(EngineError, match="needs an API key"):
        await engine.handle(message)

    assert (await manager.list_sessions()).items == ()


# -- a model defined here: native schemas and options ----------------------------------------


@pytest.mark.usefixtures("test_models")
async def test_a_model_with_native_schemas_gets_the_schema_as_such() -> None:
    _Scripted.answers.append('{"intent": "greeting", "confidence": 0.9}')
    client = get_model_client("frontdesk-test-schema")
    assert client is not None
    response = await client.complete(
        request(
            "frontdesk-test-schema", "hola", schema=INTENT_SCHEMA, max_tokens=50, temperature=0.2
        )
    )

    [prompt] = _Scripted.prompts
    assert prompt.schema == dict(INTENT_SCHEMA)
    assert prompt.system == "You classify messages."
    assert prompt.options.max_tokens == 50
    assert prompt.options.temperature == 0.2
    assert response.usage == Usage(40, 8)


@pytest.mark.usefixtures("test_models")
async def test_a_model_without_native_schemas_is_told_the_schema() -> None:
    _Scripted.answers.append('Sure! {"intent": "greeting", "confidence": 0.9}')
    client = get_model_client("frontdesk-test-plain")
    assert client is not None
    response = await client.complete(request("frontdesk-test-plain", "hola", schema=INTENT_SCHEMA))

    [prompt] = _Scripted.prompts
    assert prompt.schema is None
    assert prompt.system.startswith("You classify messages.\n\nAnswer with one JSON object")
    assert json.dumps(dict(INTENT_SCHEMA)) in prompt.system
    assert json.loads(response.text)["intent"] == "greeting"


@pytest.mark.usefixtures("test_models")
async def test_an_agent_runs_on_llm_models(make_view: Any) -> None:
    agent = make_test_agent(
        intent_detector=ModelConfig(model="frontdesk-test-plain", system_prompt="Classify."),
        orchestrator=ModelConfig(model="frontdesk-test-schema", system_prompt="Answer."),
    )
    _Scripted.answers.extend(
        [
            '{"intent": "greeting", "confidence": 0.95}',
            '{"reply": "¡Hola! ¿En qué te ayudo?", "next_mode": "collecting"}',
        ]
    )
    view: View = make_view("hola", config=agent)
    result = await run_agent(
        agent,
        view,
        models=ModelProviders().resolve,
        tools={},
        settings=EngineSettings(backoff=0),
    )

    assert result.decision is Decision.PROCEED
    assert result.reply == "¡Hola! ¿En qué te ayudo?"
    assert result.mode == "collecting"
    assert result.tokens_used == 2 * 48
