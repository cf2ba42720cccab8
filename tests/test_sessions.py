"""SessionManager behaviour beyond the storage contract: arguments, agents, the retry helper."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from frontdesk import (
    AgentConfig,
    AgentNotFoundError,
    AgentRegistry,
    InMemoryStorage,
    InvalidTransitionError,
    NewTurn,
    Session,
    SessionChange,
    SessionManager,
    SessionState,
    SessionStatus,
    ValidationError,
    VersionConflictError,
)
from frontdesk.registry import use_default_registry
from frontdesk.testing import TEST_AGENT_ID, InstrumentedStorage

MakeAgent = Callable[..., AgentConfig]


@pytest.fixture
async def session(frontdesk_manager: SessionManager) -> Session:
    return await frontdesk_manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="whatsapp:+34600000000", contact_id="+34600000000"
    )


async def test_each_operation_is_one_storage_call(frontdesk_registry: AgentRegistry) -> None:
    storage = InstrumentedStorage(InMemoryStorage())
    manager = SessionManager(storage, workspace_id="w", registry=frontdesk_registry)
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    sid = session.id
    operations = [
        lambda: manager.get_or_create_session(
            agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
        ),
        lambda: manager.get_session(sid),
        lambda: manager.get_session_by_conversation("c", TEST_AGENT_ID),
        lambda: manager.get_state(sid),
        lambda: manager.add_intent_seen(sid, "greeting"),
        lambda: manager.add_template_sent(sid, "welcome"),
        lambda: manager.update_captured_data(sid, {"name": "Ana"}),
        lambda: manager.update_data(sid, {"k": 1}),
        lambda: manager.add_turn(sid, role="user", content="hola"),
        lambda: manager.get_turns(sid),
        lambda: manager.get_total_tokens_used(sid),
        lambda: manager.get_turn_count(sid),
        lambda: manager.update_session_with_version(
            sid, expected_version=6, current_mode="collecting"
        ),
        lambda: manager.update_state(sid, SessionState(), expected_version=7),
        lambda: manager.commit(sid, SessionChange(current_mode="confirming"), expected_version=8),
        lambda: manager.handoff_session(sid, expected_version=9),
    ]
    for operation in operations:
        storage.reset()
        await operation()
        assert storage.total == 1, storage.calls


async def test_create_for_unknown_agent(frontdesk_manager: SessionManager) -> None:
    with pytest.raises(AgentNotFoundError, match="available agents: test-agent"):
        await frontdesk_manager.create_session(agent_id="nope", conversation_id="c", contact_id="u")


@pytest.mark.parametrize(
    ("field", "value"), [("conversation_id", ""), ("contact_id", "  "), ("conversation_id", None)]
)
async def test_create_checks_its_arguments(
    frontdesk_manager: SessionManager, field: str, value: object
) -> None:
    kwargs: dict[str, object] = {
        "agent_id": TEST_AGENT_ID,
        "conversation_id": "c",
        "contact_id": "u",
    }
    kwargs[field] = value
    with pytest.raises(ValueError, match=field):
        await frontdesk_manager.create_session(**kwargs)  # type: ignore[arg-type]


def test_workspace_is_required() -> None:
    with pytest.raises(ValueError, match="workspace_id"):
        SessionManager(InMemoryStorage(), workspace_id="")


async def test_manager_uses_the_default_registry_at_call_time(
    registry: AgentRegistry, make_agent: MakeAgent
) -> None:
    manager = SessionManager(InMemoryStorage(), workspace_id="w")
    registry.register(make_agent(id="late"))
    with use_default_registry(registry):
        assert manager.registry is registry
        session = await manager.create_session(agent_id="late", conversation_id="c", contact_id="u")
    assert session.agent_id == "late"


async def test_invalid_transition_lists_allowed_moves(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    with pytest.raises(InvalidTransitionError) as excinfo:
        await frontdesk_manager.update_session_with_version(
            session.id, expected_version=1, current_mode="done"
        )
    assert excinfo.value.allowed == ("collecting",)
    assert str(excinfo.value) == (
        "agent 'test-agent' cannot move to mode 'done' from 'greeting'; allowed: collecting."
    )


async def test_mode_change_for_an_unregistered_agent_is_refused(
    frontdesk_manager: SessionManager, frontdesk_registry: AgentRegistry, session: Session
) -> None:
    frontdesk_registry.unregister(TEST_AGENT_ID)
    with pytest.raises(InvalidTransitionError) as excinfo:
        await frontdesk_manager.update_session_with_version(
            session.id, expected_version=1, current_mode="collecting"
        )
    assert excinfo.value.allowed == ()
    # Writes that do not change the mode need no agent.
    assert (await frontdesk_manager.add_intent_seen(session.id, "greeting")).version == 2


async def test_status_accepts_strings(frontdesk_manager: SessionManager, session: Session) -> None:
    closed = await frontdesk_manager.update_session_with_version(
        session.id, expected_version=1, status="closed"
    )
    assert closed.status is SessionStatus.CLOSED


async def test_replacing_state_needs_a_version(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    with pytest.raises(ValidationError, match="expected_version"):
        await frontdesk_manager.commit(
            session.id, SessionChange(state=SessionState()), expected_version=None
        )


async def test_unconditional_commit_of_turns(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    result = await frontdesk_manager.commit(
        session.id,
        SessionChange(
            turns=[NewTurn(role="user", content="a"), NewTurn(role="assistant", content="b")]
        ),
        expected_version=None,
    )
    assert [t.turn_number for t in result.turns] == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"confidence": 1.5}, "confidence", "from 0 to 1"),
        ({"confidence": float("nan")}, "confidence", "from 0 to 1"),
        ({"tokens_used": -1}, "tokens_used", "from 0 to 2147483647"),
        ({"role": "robot"}, "role", "one of user, assistant, system, tool; got 'robot'"),
    ],
)
async def test_add_turn_checks_its_arguments(
    frontdesk_manager: SessionManager,
    session: Session,
    kwargs: dict[str, object],
    field: str,
    message: str,
) -> None:
    arguments: dict[str, object] = {"role": "user", "content": "hi", **kwargs}
    with pytest.raises(ValidationError, match=message) as excinfo:
        await frontdesk_manager.add_turn(session.id, **arguments)  # type: ignore[arg-type]
    assert excinfo.value.field == field
    assert isinstance(excinfo.value, ValueError)
    assert await frontdesk_manager.get_turn_count(session.id) == 0


async def test_helpers_check_their_arguments(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    with pytest.raises(ValidationError, match="intent"):
        await frontdesk_manager.add_intent_seen(session.id, "")
    with pytest.raises(ValidationError, match="template_name"):
        await frontdesk_manager.add_template_sent(session.id, " ")
    with pytest.raises(ValidationError, match="must be a string, got int 3"):
        await frontdesk_manager.update_captured_data(session.id, {"n": 3})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="limit"):
        await frontdesk_manager.get_turns(session.id, limit=-1)
    assert (await frontdesk_manager.get_session(session.id)).version == 1


# -- retry_on_conflict -----------------------------------------------------------------------


async def test_retry_accepts_async_decide_and_none(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    async def move(current: Session) -> SessionChange:
        await asyncio.sleep(0)
        return SessionChange(current_mode="collecting")

    result = await frontdesk_manager.retry_on_conflict(session.id, move)
    assert result is not None
    assert result.session.current_mode == "collecting"
    assert await frontdesk_manager.retry_on_conflict(session.id, lambda current: None) is None
    assert (await frontdesk_manager.get_session(session.id)).version == 2


async def test_retry_rereads_after_a_conflict(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    seen: list[int] = []

    async def decide(current: Session) -> SessionChange:
        seen.append(current.version)
        if len(seen) == 1:
            await frontdesk_manager.add_intent_seen(session.id, "sneaked in")
        return SessionChange(current_mode="collecting")

    result = await frontdesk_manager.retry_on_conflict(session.id, decide, backoff=0)
    assert seen == [1, 2]
    assert result is not None
    assert result.session.version == 3


async def test_retry_does_not_retry_other_errors(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    calls = 0

    def decide(current: Session) -> SessionChange:
        nonlocal calls
        calls += 1
        return SessionChange(current_mode="done")

    with pytest.raises(InvalidTransitionError):
        await frontdesk_manager.retry_on_conflict(session.id, decide)
    assert calls == 1


async def test_retry_checks_what_decide_returns(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    with pytest.raises(ValidationError, match="SessionChange or None"):
        await frontdesk_manager.retry_on_conflict(session.id, lambda current: "collecting")  # type: ignore[arg-type,return-value]
    with pytest.raises(ValidationError, match="attempts"):
        await frontdesk_manager.retry_on_conflict(session.id, lambda current: None, attempts=0)


async def test_retry_backs_off_exponentially_with_full_jitter(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    """Each wait is random in [0, ceiling], the ceiling doubling from `backoff` to `max_backoff`."""
    delays: list[float] = []

    async def record(delay: float) -> None:
        delays.append(delay)

    async def always_stale(current: Session) -> SessionChange:
        await frontdesk_manager.add_template_sent(session.id, "interference")
        return SessionChange(current_mode="collecting")

    runs, attempts = 40, 6
    for _ in range(runs):
        with pytest.raises(VersionConflictError):
            await frontdesk_manager.retry_on_conflict(
                session.id,
                always_stale,
                attempts=attempts,
                backoff=0.01,
                max_backoff=0.04,
                sleep=record,
            )
    assert len(delays) == runs * (attempts - 1)  # a wait between attempts, none after the last
    ceilings = [0.01, 0.02, 0.04, 0.04, 0.04]
    for index, ceiling in enumerate(ceilings):
        waits = delays[index :: attempts - 1]
        assert all(0 <= wait <= ceiling for wait in waits), (ceiling, waits)
        # Spread over the whole range: random, not a fixed delay, and growing with the ceiling.
        assert min(waits) < ceiling / 2 < max(waits), (ceiling, waits)
        assert len(set(waits)) > runs * 3 // 4, waits


async def test_retry_can_be_cancelled_while_backing_off(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    interfered = asyncio.Event()

    async def always_stale(current: Session) -> SessionChange:
        await frontdesk_manager.add_template_sent(session.id, "interference")
        interfered.set()
        return SessionChange(current_mode="collecting")

    task = asyncio.create_task(
        frontdesk_manager.retry_on_conflict(
            session.id, always_stale, attempts=1000, backoff=10, max_backoff=10
        )
    )
    await interfered.wait()
    await asyncio.sleep(0.01)  # let it fail its commit and start backing off
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    final = await frontdesk_manager.get_session(session.id)
    assert final.current_mode == "greeting"
    assert set(final.state.templates_sent) == {"interference"}


async def test_version_conflict_error_says_what_to_do(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    await frontdesk_manager.add_intent_seen(session.id, "x")
    with pytest.raises(VersionConflictError) as excinfo:
        await frontdesk_manager.close_session(session.id, expected_version=1)
    assert str(excinfo.value) == (
        f"session {session.id} was expected at version 1, it is now at version 2; another "
        "writer got there first. Nothing was written: re-read and retry."
    )


@pytest.mark.parametrize(
    ("call", "what"),
    [
        pytest.param(
            lambda m, sid: m.add_turn(sid, role="user", content="a\x00b"), "NUL", id="nul-content"
        ),
        pytest.param(
            lambda m, sid: m.add_turn(sid, role="user", content="\ud800"),
            "surrogate",
            id="surrogate",
        ),
        pytest.param(
            lambda m, sid: m.add_turn(sid, role="user", content="x", tokens_used=2**31),
            "tokens_used",
            id="tokens-int32",
        ),
        pytest.param(lambda m, sid: m.update_data(sid, {"x": float("nan")}), "nan", id="nan-data"),
        pytest.param(lambda m, sid: m.update_data(sid, {"x": object()}), "JSON", id="object-data"),
        pytest.param(
            lambda m, sid: m.update_captured_data(sid, {"x": "\x00"}), "NUL", id="nul-captured"
        ),
        pytest.param(lambda m, sid: m.add_intent_seen(sid, "a\x00"), "NUL", id="nul-intent"),
        pytest.param(
            lambda m, sid: m.update_state(
                sid, SessionState(data={"x": float("inf")}), expected_version=1
            ),
            "finite number",
            id="inf-state",
        ),
    ],
)
async def test_values_no_backend_could_store_are_refused(
    frontdesk_manager: SessionManager, session: Session, call: Callable[..., object], what: str
) -> None:
    with pytest.raises(ValidationError, match=what):
        await call(frontdesk_manager, session.id)  # type: ignore[misc]
    assert (await frontdesk_manager.get_session(session.id)).version == 1


async def test_status_strings_are_statuses(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    active = await frontdesk_manager.commit(
        session.id,
        SessionChange(status="active"),
        expected_version=1,  # type: ignore[arg-type]
    )
    assert active.session.status is SessionStatus.ACTIVE
    assert active.session.is_active
    found = await frontdesk_manager.get_session_by_conversation(
        session.conversation_id, TEST_AGENT_ID
    )
    assert found is not None
    assert found.id == session.id


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"storage": None}, "storage"),
        ({"storage": "memory"}, "storage"),
        ({"registry": "x"}, "registry"),
    ],
    ids=["storage-none", "storage-name", "registry-string"],
)
def test_wrong_types_are_refused_at_construction(arguments: dict[str, object], field: str) -> None:
    given: dict[str, object] = {"storage": InMemoryStorage(), "registry": None} | arguments
    with pytest.raises(ValidationError) as excinfo:
        SessionManager(given["storage"], workspace_id="w", registry=given["registry"])  # type: ignore[arg-type]
    assert excinfo.value.field == field


@pytest.mark.parametrize(
    "method", ["update_session_with_version", "close_session", "handoff_session"]
)
async def test_expected_version_by_position_is_deprecated_but_works(
    frontdesk_manager: SessionManager, session: Session, method: str
) -> None:
    call = getattr(frontdesk_manager, method)
    with pytest.warns(DeprecationWarning, match=f"expected_version to {method}\\(\\) by position"):
        done = await call(session.id, session.version)
    assert done.version == session.version + 1
    with pytest.raises(ValidationError, match="both by position and by keyword") as caught:
        await call(session.id, done.version, expected_version=done.version)
    assert caught.value.field == "expected_version"
    with pytest.raises(ValidationError, match="needs expected_version") as caught:
        await call(session.id)
    assert caught.value.field == "expected_version"
    with pytest.raises(ValidationError, match="but got 3 positional arguments") as caught:
        await call(session.id, done.version, "extra")
    assert str(caught.value).endswith("; nothing was written.")
    assert (await frontdesk_manager.get_session(session.id)).version == done.version


# -- what a refused call says it did not do ----------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda m: m.get_session(""), id="get_session"),
        pytest.param(lambda m: m.get_state("a\x00b"), id="get_state"),
        pytest.param(lambda m: m.get_session_by_conversation("c", ""), id="by_conversation"),
        pytest.param(lambda m: m.get_turns("s", limit=-1), id="get_turns"),
        pytest.param(lambda m: m.get_turn_count(7), id="get_turn_count"),
        pytest.param(lambda m: m.get_total_tokens_used(None), id="get_total_tokens_used"),
    ],
)
async def test_a_refused_read_says_nothing_was_read(
    frontdesk_manager: SessionManager, call: Callable[[SessionManager], Any]
) -> None:
    with pytest.raises(ValidationError) as caught:
        await call(frontdesk_manager)
    assert str(caught.value).endswith("; nothing was read.")
    assert "written" not in str(caught.value)


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"agent_id": ""}, "agent_id"),
        ({"status": "sleeping"}, "status"),
        ({"mode": 3}, "mode"),
        ({"contact_id": "a\x00"}, "contact_id"),
        ({"conversation_id": " "}, "conversation_id"),
        ({"updated_after": datetime(2026, 1, 1)}, "updated_after"),
        ({"updated_before": "yesterday"}, "updated_before"),
        ({"limit": 0}, "limit"),
    ],
)
async def test_a_refused_listing_says_nothing_was_listed(
    frontdesk_manager: SessionManager, filters: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await frontdesk_manager.list_sessions(**filters)
    assert caught.value.field == field
    assert str(caught.value).endswith("; nothing was listed.")
    assert "written" not in str(caught.value)


async def test_a_refused_write_still_says_nothing_was_written(
    frontdesk_manager: SessionManager, session: Session
) -> None:
    with pytest.raises(ValidationError, match=r"; nothing was written\.$"):
        await frontdesk_manager.add_turn(session.id, role="user", content="a\x00")
    with pytest.raises(ValidationError, match=r"; nothing was written\.$"):
        await frontdesk_manager.delete_session("")
