"""The frontdesk hooks: hand frontdesk this package's agents and their tools.

The entry point in pyproject.toml names this module; frontdesk calls every hook it
implements. The agent itself lives in `concierge.toml`, its tools in `tools.py`.
"""

from __future__ import annotations

from pathlib import Path

from frontdesk import AgentConfig, Tool, hookimpl

from .tools import TOOLS


@hookimpl
def register_agents() -> list[AgentConfig]:
    """The concierge agent, from the TOML file next to this module."""
    return [AgentConfig.from_toml(Path(__file__).with_name("concierge.toml"))]


@hookimpl
def register_tools() -> list[Tool]:
    """The tools `concierge.toml` names: without them `agents show` flags them."""
    return list(TOOLS)
