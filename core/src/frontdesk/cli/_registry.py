"""The agent registry as the commands see it: discovered, its problems said on stderr."""

from __future__ import annotations

from ..registry import LOAD_PLUGINS_ENV, AgentRegistry, PluginStatus, get_default_registry
from ._errors import one_line_errors
from ._output import count, warn

__all__ = ["failed_packages_note", "load_registry", "warn_conflicts"]


def load_registry() -> AgentRegistry:
    """The default registry, discovered now so that strict-mode errors are one clean line.

    Names in FRONTDESK_LOAD_PLUGINS that match no installed package are warned about here,
    for every command.
    """
    registry = get_default_registry()
    with one_line_errors():
        len(registry)
    for name in registry.unknown_plugins:
        warn(
            f"{LOAD_PLUGINS_ENV} names {name!r}, which is not an installed agent package "
            "(it lists distribution names, as `frontdesk plugins` shows them)"
        )
    return registry


def warn_conflicts(registry: AgentRegistry) -> None:
    """A warning for each agent id that two sources claim (such an agent is unusable)."""
    for agent_id, by in sorted(registry.conflicts.items()):
        warn(f"agent {agent_id!r} is unusable: claimed by {' and '.join(by)}")


def failed_packages_note(registry: AgentRegistry) -> str | None:
    """`2 agent packages failed to load: a, b (see ...)`, or None when none failed."""
    failed = [p.distribution for p in registry.plugins if p.status is PluginStatus.FAILED]
    if not failed:
        return None
    return (
        f"{count(len(failed), 'agent package')} failed to load: {', '.join(failed)} "
        "(see `frontdesk plugins`)"
    )
