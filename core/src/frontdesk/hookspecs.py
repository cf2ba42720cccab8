"""The pluggy hooks that packages implement.

An agent package names a module in the `frontdesk.agents` entry-point group; that module
implements `register_agents` (and, for the tools its agents call, `register_tools`) with
the `frontdesk.hookimpl` marker:

    from frontdesk import AgentConfig, hookimpl

    @hookimpl
    def register_agents():
        return [AgentConfig.from_toml(Path(__file__).with_name("sales.toml"))]

A model provider names a module in the `frontdesk.models` entry-point group that
implements `get_model_client`: the first provider that claims a model id serves it.

When a new version of a package renames or drops modes, its old sessions would be stuck in
a mode the agent no longer has; `migrate_session` maps them to the new ones (see its doc).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .config import AgentConfig
    from .engine.client import ModelClient
    from .models import Session
    from .sessions import SessionChange
    from .tools import Tool

__all__ = [
    "PROJECT_NAME",
    "get_model_client",
    "hookimpl",
    "hookspec",
    "migrate_session",
    "register_agents",
    "register_tools",
]

PROJECT_NAME = "frontdesk"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_agents() -> Iterable[AgentConfig]:  # type: ignore[empty-body]
    """Return the agent configurations this package provides (one or several)."""


@hookspec
def register_tools() -> Iterable[Tool]:  # type: ignore[empty-body]
    """Return the tool implementations (`frontdesk.Tool`) this package's agents call.

    The engine gives an agent the tools of the package that registered it, by name.
    """


@hookspec(firstresult=True)
def get_model_client(model_id: str) -> ModelClient | None:
    """Return a `ModelClient` for `model_id` if this provider serves it, else None.

    Providers are asked in turn; the first that returns a client serves the model.
    """


@hookspec(firstresult=True)
def migrate_session(agent: AgentConfig, session: Session) -> SessionChange | None:
    """Map a session made by another version of one of this package's agents to `agent`.

    Called only for the package's own agents, when a session's `agent_version` differs
    from `agent.release` (the installed version) and the manager needs to move it, or when
    `SessionManager.migrate_session` is called. Return a `SessionChange` with the new
    `current_mode` and/or `state` (or `state_ops`), or None to leave the session as it is.
    The manager applies it as one versioned commit that also records the new version:

        MODES = {"browsing": "catalog", "cart": "checkout"}  # 1.x -> 2.0

        @hookimpl
        def migrate_session(agent, session):
            if session.current_mode in agent.states.modes:
                return None
            return SessionChange(current_mode=MODES[session.current_mode])
    """
