"""`OfflineModel`: keyword intents and labelled replies from the installed agents' configs."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from frontdesk import AgentConfig, AgentRegistry, EngineError, ModelMessage, ModelRequest
from frontdesk.engine import Decision, EngineSettings, RunResult, run_agent
from frontdesk.testing.offline import OFFLINE_LABEL, OfflineModel

from .conftest import View


@pytest.fixture(scope="module")
def installed() -> list[AgentConfig]:
    registry = AgentRegistry()
    registry.discover()
    return registry.list()


async def run(agents: list[AgentConfig], agent_id: str, view: View) -> RunResult:
    [agent] = [a for a in agents if a.id == agent_id]
    model = OfflineModel(agents)
    return await run_agent(
        agent, view, models=lambda _: model, tools={}, settings=EngineSettings(backoff=0)
    )


@pytest.mark.parametrize(
    ("message", "decision", "intent"),
    [
        ("hola, buenas", Decision.PROCEED, "greeting"),
        ("sí, confirmo", Decision.PROCEED, "confirms_order"),
        ("zxcv qwer", Decision.CLARIFY, "other"),
        ("👍👍", Decision.HANDOFF, "other"),
    ],
    ids=["example", "another-example", "nothing-known", "no-words"],
)
async def test_the_sales_agent_runs_offline(
    installed: list[AgentConfig],
    make_view: Callable[..., View],
    message: str,
    decision: Decision,
    intent: str,
) -> None:
    [sales] = [a for a in installed if a.id == "sales"]
    result = await run(installed, "sales", make_view(message, config=sales))

    assert result.decision is decision
    assert result.intent == intent
    if decision is Decision.HANDOFF:
        assert result.reply == sales.handoff_message
    else:
        assert result.reply.startswith(OFFLINE_LABEL)
    assert result.tokens_used > 0


@pytest.mark.parametrize(
    ("mode", "intent", "next_mode"),
    [
        ("product_questions", "provides_delivery_data", "collecting_delivery_data"),
        ("greeting", "product_question", "product_questions"),
        ("order_summary", "greeting", "order_summary"),
    ],
    ids=["delivery-data", "product-question", "nothing-fits-stays"],
)
async def test_the_orchestrator_moves_to_the_allowed_mode_that_fits_the_intent(
    installed: list[AgentConfig], mode: str, intent: str, next_mode: str
) -> None:
    [sales] = [a for a in installed if a.id == "sales"]
    model = OfflineModel(installed)
    context = f"Current mode: {mode}\nDetected intent: {intent} (confidence 0.9)"
    request = ModelRequest(
        model="offline",
        system=sales.orchestrator.system_prompt,
        messages=[ModelMessage("user", context)],
        output_schema={"title": "orchestrator"},
    )
    answer = json.loads((await model.complete(request)).text)
    assert answer["next_mode"] == next_mode
    assert answer["reply"].startswith(OFFLINE_LABEL)


async def test_an_agent_it_was_not_given_is_a_clear_error(installed: list[AgentConfig]) -> None:
    model = OfflineModel(installed)
    request = ModelRequest(model="x", system="You are someone else.", messages=[])
    with pytest.raises(EngineError, match="OfflineModel was not given the agent"):
        await model.complete(request)
