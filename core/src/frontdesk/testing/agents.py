"""A small, valid agent for tests: enough modes to exercise the state machine."""

from __future__ import annotations

from typing import Any

from ..config import AgentConfig, ModelConfig, StateMachine

__all__ = ["TEST_AGENT_ID", "make_test_agent"]

TEST_AGENT_ID = "test-agent"


def make_test_agent(**overrides: Any) -> AgentConfig:
    """A valid `AgentConfig` (id `test-agent`); keyword arguments replace its fields.

    Modes: greeting -> collecting -> confirming -> done, with collecting <-> confirming.
    """
    fields: dict[str, Any] = {
        "id": TEST_AGENT_ID,
        "name": "Test agent",
        "description": "An agent for tests.",
        "intent_detector": ModelConfig(model="test-small", system_prompt="Classify."),
        "orchestrator": ModelConfig(model="test-large", system_prompt="Answer."),
        "states": StateMachine(
            initial="greeting",
            modes=("greeting", "collecting", "confirming", "done"),
            transitions={
                "greeting": ("collecting",),
                "collecting": ("confirming",),
                "confirming": ("collecting", "done"),
            },
        ),
        "tools": ("lookup",),
    }
    fields.update(overrides)
    return AgentConfig(**fields)
