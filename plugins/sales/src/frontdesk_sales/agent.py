"""The `frontdesk.agents` entry point of frontdesk-sales: registers the `sales` agent.

The agent itself (prompts, tools, modes and thresholds) lives in `sales.toml`, next to
this module; validation errors name the TOML field at fault.
"""

from __future__ import annotations

from pathlib import Path

from frontdesk import AgentConfig, hookimpl

__all__ = ["CONFIG_PATH", "register_agents"]

CONFIG_PATH = Path(__file__).with_name("sales.toml")


@hookimpl
def register_agents() -> list[AgentConfig]:
    """The `sales` agent, loaded from `sales.toml`."""
    return [AgentConfig.from_toml(CONFIG_PATH)]
