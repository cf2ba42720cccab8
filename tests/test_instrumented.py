"""InstrumentedStorage: counting, timing, latency and injected faults, with any backend."""

from __future__ import annotations

import pytest

from frontdesk import (
    InMemoryStorage,
    SessionManager,
    StorageBackend,
    StorageUnavailableError,
    ValidationError,
)
from frontdesk.storage import NewSession
from frontdesk.testing import TEST_AGENT_ID, InstrumentedStorage
from frontdesk.testing.instrumented import PRIMITIVES


def new_session(conversation: str = "c") -> NewSession:
    return NewSession(
        id=f"00000000-0000-4000-8000-{len(conversation):012d}",
        workspace_id="w",
        agent_id=TEST_AGENT_ID,
        conversation_id=conversation,
        contact_id="u",
        current_mode="greeting",
    )


def test_it_is_a_storage_backend() -> None:
    wrapped = InstrumentedStorage(InMemoryStorage())
    assert isinstance(wrapped, StorageBackend)
    assert wrapped.capabilities == InMemoryStorage().capabilities
    assert "InMemoryStorage" in repr(wrapped)


async def test_counts_and_times_every_call() -> None:
    wrapped = InstrumentedStorage(InMemoryStorage(), delay=0.001)
    session, _ = await wrapped.create_session(new_session())
    await wrapped.get_session("w", session.id)
    await wrapped.get_session("w", session.id)
    assert wrapped.calls == {"create_session": 1, "get_session": 2}
    assert wrapped.total == 3
    assert len(wrapped.durations["get_session"]) == 2
    assert min(wrapped.durations["get_session"]) >= 0.001
    wrapped.reset()
    assert wrapped.total == 0


async def test_before_apply_never_reaches_storage() -> None:
    inner = InMemoryStorage()
    wrapped = InstrumentedStorage(inner)
    wrapped.fail_next("create_session", mode="before_apply")
    with pytest.raises(StorageUnavailableError) as caught:
        await wrapped.create_session(new_session())
    assert caught.value.may_have_applied is False
    assert await inner.find_active_session("w", "c", TEST_AGENT_ID) is None
    assert wrapped.faults_injected == 1
    assert wrapped.pending_faults == 0


async def test_lose_answer_applies_then_fails() -> None:
    inner = InMemoryStorage()
    wrapped = InstrumentedStorage(inner)
    wrapped.fail_next(mode="lose_answer")  # any operation
    with pytest.raises(StorageUnavailableError) as caught:
        await wrapped.create_session(new_session())
    assert caught.value.may_have_applied is True
    assert await inner.find_active_session("w", "c", TEST_AGENT_ID) is not None


async def test_faults_wait_for_their_operation() -> None:
    wrapped = InstrumentedStorage(InMemoryStorage())
    wrapped.fail_next("commit", mode="before_apply", times=2)
    await wrapped.create_session(new_session())  # not a commit: unaffected
    assert wrapped.pending_faults == 2
    wrapped.clear_faults()
    assert wrapped.pending_faults == 0


def test_unknown_fault_modes_are_refused() -> None:
    wrapped = InstrumentedStorage(InMemoryStorage())
    with pytest.raises(ValueError, match="lose_answer") as caught:
        wrapped.fail_next(mode="explode")  # type: ignore[arg-type]
    assert isinstance(caught.value, ValidationError)
    assert caught.value.field == "mode"
    assert wrapped.pending_faults == 0


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"operation": "comit"}, "operation", "must be a storage primitive (create_session, "),
        ({"operation": "aclose"}, "operation", "or None for any, got 'aclose'"),
        ({"times": 0}, "times", "must be from 1 to"),
        ({"times": "2"}, "times", "must be an integer"),
    ],
)
def test_a_fault_that_could_never_fire_is_refused(
    kwargs: dict[str, object], field: str, problem: str
) -> None:
    wrapped = InstrumentedStorage(InMemoryStorage())
    with pytest.raises(ValidationError) as caught:
        wrapped.fail_next(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert problem in str(caught.value)
    assert str(caught.value).endswith("; no fault was set.")
    assert wrapped.pending_faults == 0


def test_every_primitive_of_the_protocol_can_fail() -> None:
    methods = {
        name
        for name in dir(StorageBackend)
        if not name.startswith("_") and callable(getattr(StorageBackend, name))
    }
    assert set(PRIMITIVES) == methods - {"aclose"}


def test_the_wrapped_storage_must_be_a_backend() -> None:
    with pytest.raises(ValidationError, match="must be a storage backend to wrap") as caught:
        InstrumentedStorage(object())  # type: ignore[arg-type]
    assert caught.value.field == "inner"
    assert "nothing was wrapped" in str(caught.value)


@pytest.mark.parametrize("delay", [-0.01, "0.02", None, True, float("nan"), float("inf")])
def test_a_delay_is_a_number_of_seconds(delay: object) -> None:
    with pytest.raises(ValidationError, match="must be a number of seconds >= 0") as caught:
        InstrumentedStorage(InMemoryStorage(), delay=delay)  # type: ignore[arg-type]
    assert caught.value.field == "delay"

    wrapped = InstrumentedStorage(InMemoryStorage(), delay=0.5)
    with pytest.raises(ValidationError, match="the delay was not changed"):
        wrapped.delay = delay  # type: ignore[assignment]
    assert wrapped.delay == 0.5
    wrapped.delay = 0
    assert wrapped.delay == 0


async def test_a_manager_over_it_hides_lost_answers(frontdesk_registry: object) -> None:
    wrapped = InstrumentedStorage(InMemoryStorage())
    manager = SessionManager(wrapped, workspace_id="w")
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    wrapped.fail_next("commit", mode="lose_answer")
    turn = await manager.add_turn(session.id, role="user", content="hola")
    assert turn.turn_number == 1
    assert wrapped.calls["commit"] == 2
    assert await manager.get_turn_count(session.id) == 1
