"""`ScriptedModel`: a model whose answers a test writes, recording every request.

It needs no key, no network and no pytest:

    model = ScriptedModel(lambda request: ModelResponse('{"intent": "greeting", ...}'))
    ...
    assert model.requests[0].system == agent.intent_detector.system_prompt

`ScriptedModel.answering(...)` plays a list of answers in order: a dict is sent as JSON,
a string as it is, a `ModelResponse` as it is, and an exception is raised.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from ..engine.client import ModelRequest, ModelResponse, Usage
from ..errors import EngineError

__all__ = ["ScriptedModel"]

Respond = Callable[[ModelRequest], "ModelResponse | Awaitable[ModelResponse]"]


class ScriptedModel:
    """A `ModelClient` that answers with `respond(request)` (sync or async).

    `requests` holds every request it was sent, in order.
    """

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[ModelRequest] = []

    def __repr__(self) -> str:
        return f"<ScriptedModel requests={len(self.requests)}>"

    @classmethod
    def answering(cls, *answers: Any, usage: Usage | None = None) -> ScriptedModel:
        """A model that plays `answers` in order, one per call, each with `usage`.

        Running out of answers raises `EngineError`, naming the request it could not
        answer: the engine raises it as it does a wrong setup (it neither retries it nor
        hands the customer off), so a test never passes on an answer it did not write.
        """
        queue = list(answers)
        each = usage if usage is not None else Usage(10, 5)

        def respond(request: ModelRequest) -> ModelResponse:
            if not queue:
                raise EngineError(
                    f"ScriptedModel ran out of answers; unexpected call to {request.model!r}: "
                    "give answering() one answer per model call the test makes"
                )
            answer = queue.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            if isinstance(answer, ModelResponse):
                return answer
            text = answer if isinstance(answer, str) else json.dumps(answer)
            return ModelResponse(text=text, usage=each, model=request.model)

        return cls(respond)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        """Record the request and answer it with `respond`."""
        self.requests.append(request)
        response = self.respond(request)
        if inspect.isawaitable(response):
            response = await response
        return response
