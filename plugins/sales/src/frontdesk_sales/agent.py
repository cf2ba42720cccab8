"""The `frontdesk.agents` entry point of frontdesk-sales: the `sales` agent and its tools.

The agent itself (prompts, tools, modes and thresholds) lives in `sales.toml`, next to
this module; validation errors name the TOML field at fault. The tools are in `tools.py`.
"""

from __future__ import annotations

from pathlib import Path

from frontdesk import AgentConfig, Tool, hookimpl

from .tools import TOOLS

__all__ = ["CONFIG_PATH", "register_agents", "register_tools"]

CONFIG_PATH = Path(__file__).with_name("sales.toml")


@hookimpl
def register_agents() -> list[AgentConfig]:
    """The `sales` agent, loaded from `sales.toml`."""
    return [AgentConfig.from_toml(CONFIG_PATH)]


@hookimpl
def register_tools() -> list[Tool]:
    """The tools `sales.toml` names, over the bundled catalog."""
    return list(TOOLS)
