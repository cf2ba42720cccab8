"""Every error frontdesk raises, in one tree rooted at `FrontdeskError`.

Catch `FrontdeskError` for "anything frontdesk refused", or a branch for one kind of
trouble. Each error carries its context as attributes, and its message says what to do.

    FrontdeskError
    ├── ValidationError                   .field .problem .limit   (also a ValueError)
    │   └── InvalidCursorError            .cursor
    ├── ConfigError
    │   └── InvalidAgentConfigError       .agent_id .distribution .problems
    ├── EngineError
    │   ├── ModelNotFoundError            .model_id .providers .llm_installed
    │   ├── ModelOutputError              .model_id .problems .text
    │   └── ToolError                     .tool .agent_id
    ├── RegistryError
    │   ├── AgentNotFoundError            .agent_id .available .reason
    │   ├── DuplicateAgentError           .agent_id .distributions
    │   ├── PluginLoadError               .distribution .version .entry_point
    │   └── UnknownPluginError            .names .installed
    ├── StorageError
    │   ├── StorageNotFoundError          .name .available .installable
    │   ├── StorageAccessDeniedError      .operation
    │   └── StorageUnavailableError       .operation .may_have_applied
    └── SessionError                      .session_id
        ├── SessionNotFoundError
        ├── SessionClosedError            .status
        ├── InvalidTransitionError        .agent_id .current_mode .requested_mode .allowed .modes
        ├── AgentChangedError             .agent_id .mode .session_agent_version
        │                                 .installed_agent_version
        ├── RunSupersededError            .token .current_token .ended
        ├── ConversationBusyError         .conversation_id .agent_id
        └── ConflictError
            ├── VersionConflictError      .expected_version .current_version
            ├── TurnNumberConflictError   .turn_number .next_turn_number
            └── SessionAlreadyActiveError .existing_session_id .conversation_id .agent_id

`VersionConflictError` is the one a caller retries (see `SessionManager.retry_on_conflict`);
the other conflicts are decisions, not races, and retrying them changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import ConfigProblem

__all__ = [
    "AgentChangedError",
    "AgentNotFoundError",
    "ConfigError",
    "ConflictError",
    "ConversationBusyError",
    "DuplicateAgentError",
    "EngineError",
    "FrontdeskError",
    "InvalidAgentConfigError",
    "InvalidCursorError",
    "InvalidTransitionError",
    "ModelNotFoundError",
    "ModelOutputError",
    "PluginLoadError",
    "RegistryError",
    "RunSupersededError",
    "SessionAlreadyActiveError",
    "SessionClosedError",
    "SessionError",
    "SessionNotFoundError",
    "StorageAccessDeniedError",
    "StorageError",
    "StorageNotFoundError",
    "StorageUnavailableError",
    "ToolError",
    "TurnNumberConflictError",
    "UnknownPluginError",
    "ValidationError",
    "VersionConflictError",
]


def _names(items: Iterable[str]) -> str:
    listed = ", ".join(sorted(items))
    return listed or "none"


class FrontdeskError(Exception):
    """Base class of every error frontdesk raises."""


class ValidationError(FrontdeskError, ValueError):
    """A value frontdesk was given cannot be stored the same way by every backend.

    Raised before anything is sent to storage: a refused write wrote nothing, a refused
    read read nothing. `field` names the value (`content`, `turns[0].turn_number`,
    `data['cart'][3]`), `problem` says what is wrong with it, and `limit` is the documented
    bound it broke, or None; `outcome` ends the message ("nothing was written", or what a
    read or another call did not do). It is also a `ValueError`, so `except ValueError`
    keeps working.
    """

    def __init__(
        self,
        field: str,
        problem: str,
        *,
        limit: object = None,
        outcome: str = "nothing was written",
    ) -> None:
        self.field = field
        self.problem = problem
        self.limit = limit
        self.outcome = outcome
        bound = f" (the limit is {limit})" if limit is not None else ""
        super().__init__(f"invalid {field}: {problem}{bound}; {outcome}.")


# -- configuration ---------------------------------------------------------------------------


class ConfigError(FrontdeskError):
    """An agent configuration could not be used."""


class InvalidAgentConfigError(ConfigError, ValueError):
    """An agent configuration broke one or more rules.

    Every problem is reported at once, each naming its field (`states.initial`,
    `thresholds.proceed`, ...). `distribution` names the installed package the
    configuration came from, or is None for a configuration built in code.
    """

    def __init__(
        self,
        agent_id: str | None,
        problems: Sequence[ConfigProblem],
        *,
        distribution: str | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.problems = tuple(problems)
        self.distribution = distribution
        who = f"agent {agent_id!r}" if agent_id else "agent config"
        if distribution:
            who += f" from distribution {distribution!r}"
        lines = [f"  - {problem.field}: {problem.message}" for problem in self.problems]
        count = len(self.problems)
        super().__init__(
            f"invalid {who} ({count} problem{'s' if count != 1 else ''}):\n" + "\n".join(lines)
        )

    def with_distribution(self, distribution: str) -> InvalidAgentConfigError:
        """The same error, naming the distribution the configuration came from."""
        return InvalidAgentConfigError(self.agent_id, self.problems, distribution=distribution)


# -- registry --------------------------------------------------------------------------------


class RegistryError(FrontdeskError):
    """The agent registry could not do what was asked."""


class AgentNotFoundError(RegistryError, LookupError):
    """No agent with this id is registered."""

    def __init__(
        self, agent_id: str, available: Iterable[str], *, reason: str | None = None
    ) -> None:
        self.agent_id = agent_id
        self.available = tuple(sorted(available))
        self.reason = reason
        if reason is not None:
            # Its package is installed but did not load: say that, not "install it".
            super().__init__(f"agent {agent_id!r} is not available: {reason}")
            return
        super().__init__(
            f"no agent {agent_id!r} is registered; available agents: {_names(self.available)}. "
            "Install the package that provides it, or register it with AgentRegistry.register()."
        )


class DuplicateAgentError(RegistryError):
    """Two sources claim the same agent id, so using it would be a guess."""

    def __init__(self, agent_id: str, distributions: Iterable[str]) -> None:
        self.agent_id = agent_id
        self.distributions = tuple(distributions)
        super().__init__(
            f"agent id {agent_id!r} is claimed by more than one source: "
            f"{', '.join(self.distributions)}. Uninstall one of them, or restrict loading "
            "with FRONTDESK_LOAD_PLUGINS."
        )


class PluginLoadError(RegistryError):
    """An agent package failed to load (raised only when FRONTDESK_STRICT_PLUGINS=1)."""

    def __init__(self, distribution: str, version: str, entry_point: str, error: str) -> None:
        self.distribution = distribution
        self.version = version
        self.entry_point = entry_point
        self.error = error
        super().__init__(
            f"agent package {distribution} {version} (entry point {entry_point}) failed to "
            f"load: {error}. Fix or uninstall it, or unset FRONTDESK_STRICT_PLUGINS to skip it."
        )


class UnknownPluginError(RegistryError, LookupError):
    """FRONTDESK_LOAD_PLUGINS names a distribution that is not installed.

    Raised only when FRONTDESK_STRICT_PLUGINS=1; otherwise discovery logs a warning and
    the registry keeps the names in `AgentRegistry.unknown_plugins`.
    """

    def __init__(self, names: Iterable[str], installed: Iterable[str], hint: str = "") -> None:
        self.names = tuple(names)
        self.installed = tuple(sorted(installed))
        listed = ", ".join(self.names)
        super().__init__(
            f"FRONTDESK_LOAD_PLUGINS names {listed}, not an installed agent package; installed: "
            f"{_names(self.installed)}. It lists distribution names{hint}."
        )


# -- engine ----------------------------------------------------------------------------------


class EngineError(FrontdeskError):
    """The agent engine could not run an agent: a model or a tool is missing or failed."""


_OFFLINE_IN_PYTHON = (
    "or pass model=frontdesk.testing.OfflineModel(agent_registry.list()) to Engine: it needs no key"
)


class ModelNotFoundError(EngineError, LookupError):
    """No installed model provider claims this model id.

    `llm_installed` says whether the `llm` library was asked (it is installed and its
    provider is loaded): then the id is one `llm` does not know, and `llm models` lists
    the ones it does; otherwise no provider is installed for it, and the message says what
    to install. `offline` is the last advice of that message, how to run without a key:
    the command line words it as its own option, `with_offline_hint`.
    """

    def __init__(
        self,
        model_id: str,
        providers: Iterable[str],
        *,
        llm_installed: bool = False,
        offline: str = _OFFLINE_IN_PYTHON,
    ) -> None:
        self.model_id = model_id
        self.providers = tuple(sorted(providers))
        self.llm_installed = llm_installed
        self.offline = offline
        asked = f" (asked: {', '.join(self.providers)})" if self.providers else ""
        if llm_installed:
            message = (
                f"no installed model provider claims model {model_id!r}{asked}: the llm "
                "library does not know this id. Run `llm models` for the ids it knows "
                "(aliases included); another provider's models come with its llm plugin, "
                "such as `llm install llm-anthropic` for Claude or llm-ollama for local models."
            )
        else:
            message = (
                f"no installed model provider claims model {model_id!r}{asked}. Install "
                "one: pip install 'frontdesk[llm]' runs every model the llm library knows "
                "(add its plugin for the provider, such as llm-anthropic for Claude or "
                f"llm-ollama for local models), {offline}."
            )
        super().__init__(message)

    def with_offline_hint(self, offline: str) -> ModelNotFoundError:
        """The same error, ending with another way to run without a key (a CLI option)."""
        return ModelNotFoundError(
            self.model_id, self.providers, llm_installed=self.llm_installed, offline=offline
        )


class ModelOutputError(EngineError, ValueError):
    """A model's answer did not match the JSON schema it was asked for, even after a repair."""

    def __init__(
        self,
        model_id: str,
        problems: Sequence[str],
        *,
        text: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        self.model_id = model_id
        self.problems = tuple(problems)
        self.text = text
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        super().__init__(
            f"model {model_id!r} answered with output that does not match the requested "
            f"schema: {'; '.join(self.problems)}. Use a model that follows JSON schemas, or "
            "make the system prompt ask for the JSON shape."
        )


class ToolError(EngineError):
    """A tool could not be run: no implementation is installed, or it is not the agent's."""

    def __init__(self, tool: str, agent_id: str, message: str) -> None:
        self.tool = tool
        self.agent_id = agent_id
        super().__init__(message)


# -- storage ---------------------------------------------------------------------------------


class StorageError(FrontdeskError):
    """A storage backend could not be chosen or could not complete an operation."""


class StorageNotFoundError(StorageError, LookupError):
    """No storage backend is installed under this name."""

    def __init__(
        self, name: str, available: Iterable[str], *, installable: Mapping[str, str] = {}
    ) -> None:
        self.name = name
        self.available = tuple(sorted(available))
        self.installable = dict(sorted(installable.items()))
        more = "".join(
            f" {other} needs `{command}`." for other, command in self.installable.items()
        )
        super().__init__(
            f"no storage backend named {name!r}; installed backends: {_names(self.available)}."
            f"{more} Check FRONTDESK_STORAGE, or install the package or extra that provides it."
        )


class StorageAccessDeniedError(StorageError):
    """The store refused the credentials: the key is wrong, or may not do this.

    Nothing was applied. It is its own class so that a check such as `frontdesk db check`
    can tell "this key is refused" from "the store could not be reached".
    """

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = detail
        super().__init__(
            f"the key was refused ({detail}); use the service_role secret key in "
            "SUPABASE_SERVICE_ROLE_KEY."
        )


class StorageUnavailableError(StorageError):
    """The backend could not be reached or failed while working.

    `may_have_applied` is True when the request may have reached the store before
    the failure (a write that timed out): re-read the session before deciding what to do.
    """

    def __init__(self, operation: str, detail: str, *, may_have_applied: bool) -> None:
        self.operation = operation
        self.detail = detail
        self.may_have_applied = may_have_applied
        outcome = (
            "it may have been applied: re-read the session before retrying"
            if may_have_applied
            else "nothing was written: it is safe to retry"
        )
        super().__init__(f"storage operation {operation!r} failed ({detail}); {outcome}.")


# -- sessions --------------------------------------------------------------------------------


class SessionError(FrontdeskError):
    """A session operation was refused."""

    def __init__(self, message: str, *, session_id: str | None) -> None:
        self.session_id = session_id
        super().__init__(message)


class SessionNotFoundError(SessionError, LookupError):
    """No session with this id exists in the manager's workspace."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id} not found in this workspace; check the id and the "
            "workspace_id the SessionManager was created with.",
            session_id=session_id,
        )


class SessionClosedError(SessionError):
    """The session is closed, or handed off and the write does not set its status."""

    def __init__(self, session_id: str, status: str) -> None:
        self.status = status
        if status == "handed_off":
            message = (
                f"session {session_id} is handed_off: a person has the conversation, and the "
                "session takes only a status change; set status 'active' to hand it back to "
                "the agent, or close it."
            )
        else:
            message = (
                f"session {session_id} is {status} and accepts no more writes; "
                "start a new session for the conversation."
            )
        super().__init__(message, session_id=session_id)


class InvalidTransitionError(SessionError):
    """The agent's state machine does not allow this mode change, or has no such mode.

    `allowed` lists the moves out of `current_mode`; `modes`, when known, every mode the
    agent has (then a `requested_mode` outside it is reported as not existing).
    """

    def __init__(
        self,
        session_id: str | None,
        *,
        agent_id: str,
        current_mode: str | None,
        requested_mode: str,
        allowed: Iterable[str],
        modes: Iterable[str] | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.current_mode = current_mode
        self.requested_mode = requested_mode
        self.allowed = tuple(allowed)
        self.modes = tuple(modes) if modes is not None else None
        if self.modes is not None and requested_mode not in self.modes:
            message = (
                f"agent {agent_id!r} has no mode {requested_mode!r}; its modes are: "
                f"{', '.join(self.modes) or 'none'}."
            )
        else:
            where = f"from {current_mode!r}" if current_mode is not None else "as the initial mode"
            message = (
                f"agent {agent_id!r} cannot move to mode {requested_mode!r} {where}; "
                f"allowed: {', '.join(self.allowed) or 'none (final mode)'}."
            )
        super().__init__(message, session_id=session_id)


class RunSupersededError(SessionError):
    """The run is no longer the conversation's current one: nothing was written.

    Either this run has ended and no run started since (`ended` is True: it completed,
    and this is `extend` or a second `complete` with another idempotency key after it; or
    the session was handed off or closed while it ran, and the reply goes nowhere), or a
    later run, `current_token`, started after it: one that took the conversation over (a
    newer message under the `interrupt` policy, a `receive` or `resume_abandoned` after
    this run expired) or one that came after this run completed. Drop the work of this
    run: messages it did not complete are answered by the later run.
    """

    def __init__(self, session_id: str, token: int, current_token: int | None = None) -> None:
        self.token = token
        self.current_token = current_token
        self.ended = current_token == token
        if self.ended:
            message = (
                f"run {token} of session {session_id} has ended (it completed, or the "
                "session was handed off or closed while it ran) and no run holds the session "
                "now; nothing was written. Drop this call: a run completes once."
            )
        elif current_token is not None:
            message = (
                f"run {token} of session {session_id} is no longer current: run "
                f"{current_token} started after it (it took the conversation over, or came "
                "after this run completed); nothing was written. Drop this run's reply: "
                f"messages it did not complete are answered by run {current_token}."
            )
        else:
            message = (
                f"run {token} of session {session_id} is no longer current; nothing was "
                "written. Drop this run's reply: messages it did not complete are answered "
                "by a later run."
            )
        super().__init__(message, session_id=session_id)


class ConversationBusyError(SessionError):
    """A message arrived while a run holds the conversation, under the `reject` policy.

    Nothing was recorded: tell the sender to wait, or deliver the message again later.
    """

    def __init__(self, session_id: str, *, conversation_id: str, agent_id: str) -> None:
        self.conversation_id = conversation_id
        self.agent_id = agent_id
        super().__init__(
            f"conversation {conversation_id!r} with agent {agent_id!r} is busy answering "
            f"(session {session_id}) and the agent's double-texting policy is 'reject'; "
            "nothing was recorded. Deliver the message again after the run completes.",
            session_id=session_id,
        )


class ConflictError(SessionError):
    """A write collided with another writer or with existing data."""


class VersionConflictError(ConflictError):
    """The session changed since it was read: the write named a stale version.

    Nothing was written. Re-read the session and decide again, or let
    `SessionManager.retry_on_conflict` do it.
    """

    def __init__(
        self, session_id: str, expected_version: int, current_version: int | None = None
    ) -> None:
        self.expected_version = expected_version
        self.current_version = current_version
        now = f", it is now at version {current_version}" if current_version is not None else ""
        super().__init__(
            f"session {session_id} was expected at version {expected_version}{now}; "
            "another writer got there first. Nothing was written: re-read and retry.",
            session_id=session_id,
        )


class TurnNumberConflictError(ConflictError):
    """The caller asked for a turn number that is not the session's next one."""

    def __init__(self, session_id: str, turn_number: int, next_turn_number: int) -> None:
        self.turn_number = turn_number
        self.next_turn_number = next_turn_number
        what = "already has" if turn_number < next_turn_number else "has no turn before"
        super().__init__(
            f"session {session_id} {what} turn {turn_number} (its next turn is "
            f"{next_turn_number}); nothing was written. Leave turn_number unset to get the "
            "next number.",
            session_id=session_id,
        )


class SessionAlreadyActiveError(ConflictError):
    """The conversation already has an active session with this agent."""

    def __init__(self, existing_session_id: str, *, conversation_id: str, agent_id: str) -> None:
        self.existing_session_id = existing_session_id
        self.conversation_id = conversation_id
        self.agent_id = agent_id
        super().__init__(
            f"conversation {conversation_id!r} already has active session "
            f"{existing_session_id} with agent {agent_id!r}; use it "
            "(get_or_create_session does this in one call) or close it first.",
            session_id=existing_session_id,
        )


# -- session lifecycle -----------------------------------------------------------------------


class InvalidCursorError(ValidationError):
    """A listing cursor that this listing did not hand out (or that was altered)."""

    def __init__(self, cursor: str, reason: str) -> None:
        self.cursor = cursor
        super().__init__(
            "cursor",
            f"{reason}. Pass back the next_cursor of a SessionPage with the same filters, "
            "or start again without a cursor",
            # A listing only reads: "nothing was written" would suggest it could have.
            outcome="nothing was listed",
        )


class AgentChangedError(SessionError):
    """The installed agent no longer has the session's mode: an upgrade changed it.

    The session was made by `session_agent_version` of the agent package; the installed
    one is `installed_agent_version`. Nothing was written. The agent package migrates such
    sessions with a `migrate_session` hook (see `frontdesk.hookspecs`).
    """

    def __init__(
        self,
        session_id: str,
        *,
        agent_id: str,
        mode: str,
        session_agent_version: str | None,
        installed_agent_version: str | None,
    ) -> None:
        self.agent_id = agent_id
        self.mode = mode
        self.session_agent_version = session_agent_version
        self.installed_agent_version = installed_agent_version
        made = session_agent_version or "an unrecorded version"
        installed = installed_agent_version or "an unversioned build"
        super().__init__(
            f"session {session_id} is in mode {mode!r}, which agent {agent_id!r} "
            f"{installed} no longer has (the session was made by {made}); nothing was "
            "written. The agent package must provide a migrate_session hook that maps "
            "old modes to new ones, or reinstall the version that made the session.",
            session_id=session_id,
        )
