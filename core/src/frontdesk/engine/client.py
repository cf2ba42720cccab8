"""The model interface: what the engine sends a language model and what it gets back.

The engine never imports a provider library. It builds a `ModelRequest`, hands it to a
`ModelClient` and reads the `ModelResponse`; adapters (the `llm` one in
`frontdesk.engine.llm_adapter`, a test's `ScriptedModel`, your own) do the rest:

    class MyModel:
        async def complete(self, request: ModelRequest) -> ModelResponse:
            text = await call_my_provider(request.system, request.messages)
            return ModelResponse(text=text, usage=Usage(120, 30), model=request.model)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol, runtime_checkable

from attrs import field, frozen

from ..errors import ValidationError

__all__ = ["ModelClient", "ModelMessage", "ModelRequest", "ModelResponse", "Usage"]


def _count(_: object, attribute: Any, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(
            f"Usage.{attribute.name}",
            f"must be a whole number >= 0 (tokens the call used), got {value!r}",
            outcome="no Usage was made",
        )


@frozen
class Usage:
    """Tokens one model call consumed; `+` adds two calls' usage up.

    >>> Usage(100, 20) + Usage(50, 5)
    Usage(input_tokens=150, output_tokens=25)
    """

    input_tokens: int = field(default=0, validator=_count)
    output_tokens: int = field(default=0, validator=_count)

    @property
    def total(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


def _role(_: object, attribute: Any, value: str) -> None:
    if value not in ("user", "assistant"):
        raise ValidationError(
            f"ModelMessage.{attribute.name}",
            f"must be 'user' or 'assistant' (the system prompt goes in "
            f"ModelRequest.system), got {value!r}",
            outcome="no ModelMessage was made",
        )


@frozen
class ModelMessage:
    """One message of the conversation sent to a model (the system prompt goes apart)."""

    role: Literal["user", "assistant"] = field(validator=_role)
    content: str


def _messages(items: Iterable[ModelMessage]) -> tuple[ModelMessage, ...]:
    return tuple(items)


def _schema(value: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    return None if value is None else dict(value)


@frozen
class ModelRequest:
    """One call to a model: the config's model id, system prompt, messages, output shape.

    `output_schema` is a JSON schema the answer must match (None for free text); a
    client that cannot enforce it natively asks for it in the prompt.
    """

    model: str
    system: str
    messages: tuple[ModelMessage, ...] = field(converter=_messages)
    output_schema: Mapping[str, Any] | None = field(default=None, converter=_schema)
    max_tokens: int | None = None
    temperature: float | None = None


@frozen
class ModelResponse:
    """What a model answered: its text, the tokens it used and the model that answered."""

    text: str
    usage: Usage = field(factory=Usage)
    model: str = ""


@runtime_checkable
class ModelClient(Protocol):
    """Anything that answers a `ModelRequest`: the one method a model provider implements."""

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Call the model; raise on failure (the engine retries with backoff)."""
        ...
