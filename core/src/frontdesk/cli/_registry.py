"""The agent registry as the commands see it: discovered, with discovery errors on one line."""

from __future__ import annotations

from ..registry import AgentRegistry, get_default_registry
from ._errors import one_line_errors

__all__ = ["load_registry"]


def load_registry() -> AgentRegistry:
    """The default registry, discovered now so that strict-mode errors are one clean line."""
    registry = get_default_registry()
    with one_line_errors():
        len(registry)
    return registry
