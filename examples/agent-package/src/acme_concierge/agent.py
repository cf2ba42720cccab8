"""The frontdesk hook: hand frontdesk this package's agents."""

from __future__ import annotations

from pathlib import Path

from frontdesk import AgentConfig, hookimpl


@hookimpl
def register_agents() -> list[AgentConfig]:
    """The concierge agent, from the TOML file next to this module."""
    return [AgentConfig.from_toml(Path(__file__).with_name("concierge.toml"))]
