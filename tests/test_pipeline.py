"""The message pipeline through SessionManager: inputs, agents, the pure run rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from frontdesk import (
    AgentNotFoundError,
    AgentRegistry,
    DoubleTexting,
    InboundMessage,
    InMemoryStorage,
    NewTurn,
    RunsConfig,
    SessionChange,
    SessionManager,
    ValidationError,
)
from frontdesk.pipeline import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_MESSAGE_ID_LENGTH
from frontdesk.storage.runs import (
    ReceivePlan,
    RunState,
    can_resume,
    end_run,
    is_current,
    pick_inputs,
    plan_receive,
    start_run,
)
from frontdesk.testing import TEST_AGENT_ID, make_test_agent

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def fields(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "agent_id": TEST_AGENT_ID,
        "conversation_id": "wa:+34600111222",
        "contact_id": "+34600111222",
        "message_id": "wamid.1",
        "content": "hola",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"agent_id": ""}, "agent_id"),
        ({"conversation_id": "  "}, "conversation_id"),
        ({"contact_id": None}, "contact_id"),
        ({"message_id": ""}, "message_id"),
        ({"message_id": "x" * (MAX_MESSAGE_ID_LENGTH + 1)}, "message_id"),
        ({"message_id": "a\x00b"}, "message_id"),
        ({"content": None}, "content"),
        ({"content": 123}, "content"),
        ({"content": "a\x00b"}, "content"),
        ({"content": "\udcff"}, "content"),
        ({"received_at": datetime(2026, 1, 1)}, "received_at"),
        ({"received_at": "2026-01-01"}, "received_at"),
    ],
)
def test_inbound_message_refuses_what_no_backend_could_store(
    override: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        InboundMessage(**fields(**override))
    assert caught.value.field == field


def test_inbound_message_accepts_empty_content_and_aware_times() -> None:
    message = InboundMessage(**fields(content="", received_at=NOW))
    assert message.received_at == NOW


async def test_receive_for_an_unknown_agent_writes_nothing(
    frontdesk_manager: SessionManager,
) -> None:
    with pytest.raises(AgentNotFoundError):
        await frontdesk_manager.receive(InboundMessage(**fields(agent_id="nobody")))
    assert await frontdesk_manager.get_session_by_conversation("wa:+34600111222", "nobody") is None


async def test_receive_and_complete_check_their_arguments(
    frontdesk_manager: SessionManager,
) -> None:
    with pytest.raises(ValidationError) as caught:
        await frontdesk_manager.receive(fields())  # type: ignore[arg-type]
    assert caught.value.field == "message"
    receipt = await frontdesk_manager.receive(InboundMessage(**fields()))
    assert receipt.run is not None
    with pytest.raises(ValidationError) as caught:
        await frontdesk_manager.complete(receipt, SessionChange())  # type: ignore[arg-type]
    assert caught.value.field == "run"
    with pytest.raises(ValidationError) as caught:
        await frontdesk_manager.resume_abandoned(limit=0)
    assert caught.value.field == "limit"


@pytest.mark.parametrize("key", ["", " ", "x" * (MAX_IDEMPOTENCY_KEY_LENGTH + 1), "a\x00", 5])
async def test_bad_idempotency_keys_are_refused(
    frontdesk_manager: SessionManager, key: Any
) -> None:
    session = await frontdesk_manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    with pytest.raises(ValidationError) as caught:
        await frontdesk_manager.add_turn(session.id, role="user", content="x", idempotency_key=key)
    assert caught.value.field == "idempotency_key"
    assert await frontdesk_manager.get_turn_count(session.id) == 0


async def test_a_create_with_a_key_is_made_once(frontdesk_manager: SessionManager) -> None:
    first = await frontdesk_manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u", idempotency_key="signup-7"
    )
    again = await frontdesk_manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u", idempotency_key="signup-7"
    )
    assert again.id == first.id


@pytest.mark.parametrize("attempts", [0, 11, True, 2.0])
def test_write_attempts_are_bounded(attempts: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        SessionManager(InMemoryStorage(), workspace_id="w", write_attempts=attempts)
    assert caught.value.field == "write_attempts"


async def test_the_agents_runs_config_decides_the_policy() -> None:
    registry = AgentRegistry()
    runs = RunsConfig(double_texting="enqueue", history_turns=1)
    registry.register(make_test_agent(runs=runs))
    manager = SessionManager(InMemoryStorage(), workspace_id="w", registry=registry)
    first = await manager.receive(InboundMessage(**fields(message_id="1", content="uno")))
    await manager.receive(InboundMessage(**fields(message_id="2", content="dos")))
    await manager.receive(InboundMessage(**fields(message_id="3", content="tres")))
    assert first.run is not None
    reply = SessionChange(turns=[NewTurn(role="assistant", content="ok")])
    nxt = (await manager.complete(first.run, reply)).next_run
    assert nxt is not None
    assert [t.content for t in nxt.inputs] == ["dos"]
    assert [t.content for t in nxt.history] == ["ok"]  # history_turns = 1, "tres" still waits


# -- the pure rules -------------------------------------------------------------------------


def test_plan_receive() -> None:
    idle = RunState(token=3)
    live = RunState(3, NOW + timedelta(seconds=5), (1,))
    expired = RunState(3, NOW - timedelta(seconds=1), (1,))
    for policy in DoubleTexting:
        assert plan_receive(idle, policy, NOW) is ReceivePlan.START
        assert plan_receive(expired, policy, NOW) is ReceivePlan.START
    assert plan_receive(live, DoubleTexting.MERGE, NOW) is ReceivePlan.WAIT
    assert plan_receive(live, DoubleTexting.ENQUEUE, NOW) is ReceivePlan.WAIT
    assert plan_receive(live, DoubleTexting.INTERRUPT, NOW) is ReceivePlan.START
    assert plan_receive(live, DoubleTexting.REJECT, NOW) is ReceivePlan.BUSY


def test_runs_start_end_and_resume() -> None:
    assert pick_inputs(DoubleTexting.ENQUEUE, [5, 3, 4]) == (3,)
    assert pick_inputs(DoubleTexting.MERGE, [5, 3, 4]) == (3, 4, 5)
    run = start_run(RunState(token=2), DoubleTexting.MERGE, 10, [7], NOW)
    assert run == RunState(3, NOW + timedelta(seconds=10), (7,))
    assert is_current(run, 3)
    assert not is_current(run, 2)
    with pytest.raises(ValueError, match="pending") as caught:
        start_run(run, DoubleTexting.MERGE, 10, [], NOW)
    assert isinstance(caught.value, ValidationError)
    assert caught.value.field == "pending"
    assert str(caught.value).endswith("; no run was started.")
    ended = end_run(run, DoubleTexting.MERGE, 10, [], NOW)
    assert ended == RunState(3)
    assert not is_current(ended, 3)
    assert end_run(run, DoubleTexting.MERGE, 10, [8, 9], NOW).inputs == (8, 9)
    assert not can_resume(run, [7], NOW)
    assert can_resume(run, [7], NOW + timedelta(seconds=10))
    assert not can_resume(run, [], NOW + timedelta(seconds=10))


async def test_commit_refuses_an_intent_for_inputs_it_has_none_of(
    frontdesk_manager: SessionManager,
) -> None:
    receipt = await frontdesk_manager.receive(InboundMessage(**fields()))
    with pytest.raises(ValidationError, match="inputs_intent"):
        await frontdesk_manager.commit(
            receipt.session.id, SessionChange(inputs_intent="greeting"), expected_version=None
        )
    assert await frontdesk_manager.get_turn_count(receipt.session.id) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("inputs_intent", ""), ("inputs_intent", "x" * 300), ("inputs_confidence", 1.5)],
)
def test_a_change_refuses_inputs_annotations_no_backend_could_store(
    field: str, value: object
) -> None:
    with pytest.raises(ValidationError, match=field):
        SessionChange(**{field: value})
