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
    TurnNumberConflictError,
    ValidationError,
    VersionConflictError,
)
from .hookspecs import hookimpl
from .models import (
    IntentSeen,
    NewTurn,
    Role,
    Session,
    SessionState,
    SessionStatus,
    ToolCall,
    Turn,
    TurnStats,
)
from .registry import AgentRegistry, PluginInfo, PluginStatus, agent_registry
from .sessions import SessionChange, SessionManager
from .storage import (
    AppendIntent,
    AppendTemplate,
    CommitResult,
    MergeCapturedData,
    MergeData,
    StateOp,
    StorageBackend,
    open_storage,
)
from .storage.memory import InMemoryStorage
from .validation import (
    MAX_CONTENT_LENGTH,
    MAX_ID_LENGTH,
    MAX_INT32,
    MAX_JSON_DEPTH,
    MAX_JSON_SIZE,
)

__version__ = "0.1.0"

__all__ = [
    "MAX_CONTENT_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_INT32",
    "MAX_JSON_DEPTH",
    "MAX_JSON_SIZE",
    "AgentConfig",
    "AgentNotFoundError",
    "AgentRegistry",
    "AgentSource",
    "AppendIntent",
    "AppendTemplate",
    "CommitResult",
    "ConfigError",
    "ConfigProblem",
    "ConflictError",
    "DuplicateAgentError",
    "FrontdeskError",
    "InMemoryStorage",
    "IntentSeen",
    "InvalidAgentConfigError",
    "InvalidTransitionError",
    "MergeCapturedData",
    "MergeData",
    "ModelConfig",
    "NewTurn",
    "PluginInfo",
    "PluginLoadError",
    "PluginStatus",
    "RegistryError",
    "Role",
    "Session",
    "SessionAlreadyActiveError",
    "SessionChange",
    "SessionClosedError",
    "SessionError",
    "SessionManager",
    "SessionNotFoundError",
    "SessionState",
    "SessionStatus",
    "StateMachine",
    "StateOp",
    "StorageBackend",
    "StorageError",
    "StorageNotFoundError",
    "StorageUnavailableError",
    "Thresholds",
    "ToolCall",
    "Turn",
    "TurnNumberConflictError",
    "TurnStats",
    "ValidationError",
    "VersionConflictError",
    "__version__",
    "agent_registry",
    "hookimpl",
    "open_storage",
]
