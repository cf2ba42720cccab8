"""Fixtures for the engine's tests: an agent, a run view over a session, fast settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from attrs import frozen

from frontdesk import AgentConfig, Role, Session, SessionState, SessionStatus, Turn
from frontdesk.engine import EngineSettings
from frontdesk.testing import make_test_agent


@frozen
class View:
    """What a run sees, as the pipeline's `Run` carries it."""

    session: Session
    history: tuple[Turn, ...]
    inputs: tuple[Turn, ...]


def make_session(agent: AgentConfig, *, mode: str | None = None, **state: Any) -> Session:
    now = datetime.now(UTC)
    return Session(
        id="session-1",
        workspace_id="tests",
        agent_id=agent.id,
        conversation_id="wa:+34600111222",
        contact_id="+34600111222",
        version=2,
        status=SessionStatus.ACTIVE,
        current_mode=mode or agent.states.initial,
        state=SessionState(**state),
        created_at=now,
        updated_at=now,
        last_activity_at=now,
    )


def make_turns(*contents: str, start: int = 1) -> tuple[Turn, ...]:
    """Turns alternating user / assistant, numbered from `start`."""
    now = datetime.now(UTC)
    return tuple(
        Turn(
            session_id="session-1",
            turn_number=start + index,
            role=Role.USER if index % 2 == 0 else Role.ASSISTANT,
            content=content,
            intent_detected=None,
            confidence=None,
            tools_called=(),
            tokens_used=0,
            created_at=now,
        )
        for index, content in enumerate(contents)
    )


@pytest.fixture
def agent() -> AgentConfig:
    """The test agent: greeting -> collecting -> confirming -> done; tool `lookup`."""
    return make_test_agent()


@pytest.fixture
def make_view(agent: AgentConfig) -> Callable[..., View]:
    def make(
        *inputs: str,
        history: Sequence[str] = (),
        mode: str | None = None,
        config: AgentConfig | None = None,
        **state: Any,
    ) -> View:
        past = make_turns(*history)
        new = tuple(
            Turn(
                session_id="session-1",
                turn_number=len(past) + 1 + index,
                role=Role.USER,
                content=content,
                intent_detected=None,
                confidence=None,
                tools_called=(),
                tokens_used=0,
                created_at=datetime.now(UTC),
            )
            for index, content in enumerate(inputs or ("hola",))
        )
        return View(make_session(config or agent, mode=mode, **state), past, new)

    return make


@pytest.fixture
def settings() -> EngineSettings:
    """No waiting between retries, short timeouts."""
    return EngineSettings(backoff=0, model_timeout=1.0, tool_timeout=1.0)
