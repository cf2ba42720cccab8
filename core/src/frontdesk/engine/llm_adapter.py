"""Models through simonw's `llm` library: `pip install 'frontdesk[llm]'`.

Any model `llm` knows serves an agent: OpenAI's are built in, Claude comes with
`llm install llm-anthropic`, local models with `llm-ollama`. The model id is the one `llm`
uses (`llm models` lists them, aliases included). Keys follow `llm`'s rules: the
provider's environment variable (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, ...) or
`llm keys set openai`, stored under `llm`'s user directory. On a server, set
`LLM_USER_PATH` to a directory the service may read, so that keys, aliases and installed
plugins do not depend on a home directory.

A model with native schema support (`supports_schema`) gets the JSON schema as such;
for one without it, the schema goes into the system prompt and the answer is checked
against it here, raising `ModelOutputError` (the engine then asks once for a repair).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import EngineError, ModelOutputError
from ..hookspecs import hookimpl
from .client import ModelClient, ModelMessage, ModelRequest, ModelResponse, Usage
from .schema import check, parse_json

__all__ = ["LLMModel", "get_model_client"]


@hookimpl
def get_model_client(model_id: str) -> ModelClient | None:
    """Serve `model_id` if `llm` is installed and knows it."""
    try:
        import llm
    except ImportError:
        return None
    try:
        model = llm.get_async_model(model_id)
    except llm.UnknownModelError:
        return None
    # A missing key is a setup error: found here, when the engine resolves the agent's
    # models before `receive` records anything, rather than in the middle of a run.
    try:
        model.get_key()
    except llm.errors.NeedsKeyException as exc:
        raise _needs_key(model_id, exc) from exc
    return LLMModel(model)


def _needs_key(model_id: str, exc: Exception) -> EngineError:
    return EngineError(
        f"model {model_id!r} needs an API key: {exc}. Set the provider's environment "
        "variable, or run `llm keys set`, with LLM_USER_PATH pointing at the same directory "
        "as this process."
    )


class LLMModel:
    """A `ModelClient` over one of `llm`'s async models.

    >>> import llm
    >>> client = LLMModel(llm.get_async_model("echo"))  # doctest: +SKIP
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def __repr__(self) -> str:
        return f"<LLMModel {self.model.model_id!r}>"

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Send the request through `llm`; its errors propagate (the engine retries them)."""
        import llm

        schema = request.output_schema
        native = schema is not None and bool(getattr(self.model, "supports_schema", False))
        system = request.system
        if schema is not None and not native:
            system = f"{system}\n\n{_schema_instructions(schema)}"
        options = _options(self.model, request)
        try:
            response = self.model.prompt(
                _transcript(request.messages),
                system=system,
                schema=dict(schema) if native and schema is not None else None,
                **options,
            )
            text = await response.text()
            usage = await response.usage()
        except llm.errors.NeedsKeyException as exc:  # the key was removed since resolving
            raise _needs_key(self.model.model_id, exc) from exc
        if schema is not None and not native:
            value, problems = parse_json(text)
            problems = problems or check(value, schema)
            if problems:
                raise ModelOutputError(
                    self.model.model_id,
                    problems,
                    text=text,
                    input_tokens=usage.input or 0,
                    output_tokens=usage.output or 0,
                )
            text = json.dumps(value, ensure_ascii=False)
        return ModelResponse(
            text=text,
            usage=Usage(usage.input or 0, usage.output or 0),
            model=self.model.model_id,
        )


def _transcript(messages: tuple[ModelMessage, ...]) -> str:
    """The messages as one prompt: works with every `llm` plugin, old and new."""
    if len(messages) == 1:
        return messages[0].content
    return "\n\n".join(f"[{message.role}]\n{message.content}" for message in messages)


def _schema_instructions(schema: Any) -> str:
    return (
        "Answer with one JSON object and nothing else (no code fences, no text around it), "
        f"matching this JSON schema:\n{json.dumps(schema, ensure_ascii=False)}"
    )


def _options(model: Any, request: ModelRequest) -> dict[str, Any]:
    """The sampling options the model declares (llm refuses options it does not know)."""
    known = getattr(getattr(model, "Options", None), "model_fields", {})
    wanted = {"max_tokens": request.max_tokens, "temperature": request.temperature}
    return {name: value for name, value in wanted.items() if value is not None and name in known}
