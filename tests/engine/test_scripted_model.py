"""`ScriptedModel`: answers a test writes, every request recorded; no pytest needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from frontdesk import EngineError, ModelMessage, ModelRequest, ModelResponse, Usage
from frontdesk.testing import ScriptedModel


def request(model: str = "m") -> ModelRequest:
    return ModelRequest(model=model, system="s", messages=[ModelMessage("user", "hola")])


async def test_it_answers_with_respond_and_records_requests() -> None:
    async def respond(req: ModelRequest) -> ModelResponse:
        return ModelResponse(f"for {req.model}", Usage(3, 1), req.model)

    model = ScriptedModel(respond)
    first, second = request("a"), request("b")
    assert (await model.complete(first)).text == "for a"
    assert (await model.complete(second)).usage == Usage(3, 1)
    assert model.requests == [first, second]


async def test_answering_plays_answers_in_order_then_refuses() -> None:
    model = ScriptedModel.answering({"intent": "x"}, "plain", ValueError("boom"))
    assert (await model.complete(request())).text == '{"intent": "x"}'
    assert (await model.complete(request())).text == "plain"
    with pytest.raises(ValueError, match="boom"):
        await model.complete(request())
    with pytest.raises(EngineError, match="ran out of answers; unexpected call to 'm'"):
        await model.complete(request())
    assert len(model.requests) == 4


@pytest.mark.parametrize("module", ["frontdesk.testing.scripted", "frontdesk.testing.offline"])
def test_the_offline_models_import_without_pytest(module: str) -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; "  # any import of pytest now fails
        f"import {module}; print('ok')"
    )
    done = subprocess.run(  # noqa: S603 - this Python, a fixed snippet
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
