"""frontdesk: conversational agents on durable sessions.

Agents come from installed packages (or code) through the `AgentRegistry`; conversations
live in sessions that a `SessionManager` keeps in pluggable storage, with optimistic
locking so that concurrent workers never lose an update.
"""

from .config import AgentConfig, AgentSource, ConfigProblem, ModelConfig, StateMachine, Thresholds
from .errors import (
    AgentNotFoundError,
    ConfigError,
    ConflictError,
    DuplicateAgentError,
    FrontdeskError,
    InvalidAgentConfigError,
    InvalidTransitionError,
    PluginLoadError,
    RegistryError,
    SessionAlreadyActiveError,
    SessionClosedError,
    SessionError,
    SessionNotFoundError,
    StorageError,
    StorageNotFoundError,
    StorageUnavailableError,
    TurnNumberTakenError,
    VersionConflictError,
)
from .hookspecs import hookimpl
from .registry import AgentRegistry, PluginInfo, PluginStatus, agent_registry

__version__ = "0.1.0"

__all__ = [
    "AgentConfig",
    "AgentNotFoundError",
    "AgentRegistry",
    "AgentSource",
    "ConfigError",
    "ConfigProblem",
    "ConflictError",
    "DuplicateAgentError",
    "FrontdeskError",
    "InvalidAgentConfigError",
    "InvalidTransitionError",
    "ModelConfig",
    "PluginInfo",
    "PluginLoadError",
    "PluginStatus",
    "RegistryError",
    "SessionAlreadyActiveError",
    "SessionClosedError",
    "SessionError",
    "SessionNotFoundError",
    "StateMachine",
    "StorageError",
    "StorageNotFoundError",
    "StorageUnavailableError",
    "Thresholds",
    "TurnNumberTakenError",
    "VersionConflictError",
    "__version__",
    "agent_registry",
    "hookimpl",
]
