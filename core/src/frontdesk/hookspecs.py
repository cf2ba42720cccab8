"""The pluggy hooks an agent package implements.

An agent package names a module in the `frontdesk.agents` entry-point group; that module
implements `register_agents` with the `frontdesk.hookimpl` marker:

    from frontdesk import AgentConfig, hookimpl

    @hookimpl
    def register_agents():
        return [AgentConfig.from_toml(Path(__file__).with_name("sales.toml"))]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .config import AgentConfig

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec", "register_agents"]

PROJECT_NAME = "frontdesk"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_agents() -> Iterable[AgentConfig]:  # type: ignore[empty-body]
    """Return the agent configurations this package provides (one or several)."""
