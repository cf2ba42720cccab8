"""Agent configuration: what an agent is, as frozen, validated attrs values.

An agent package describes each agent with an `AgentConfig`, usually loaded from a TOML
file that sits next to its code (prompts read better there than in Python strings):

    config = AgentConfig.from_toml(Path(__file__).with_name("sales.toml"))

Validation runs whenever a config is built, in code or from data, and reports every
problem at once, each naming its field, in one `InvalidAgentConfigError`.
"""

from __future__ import annotations

import enum
import itertools
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import attrs
import cattrs
from attrs import field, frozen
from cattrs.errors import ForbiddenExtraKeysError
from cattrs.v import format_exception

from .errors import InvalidAgentConfigError

__all__ = [
    "DEFAULT_HANDOFF_MESSAGE",
    "AgentConfig",
    "AgentSource",
    "ConfigProblem",
    "DoubleTexting",
    "ModelConfig",
    "RunsConfig",
    "StateMachine",
    "Thresholds",
]

# Agent ids and modes appear in URLs, CLI arguments, logs and database rows: keep them plain.
_SLUG = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")
_SLUG_MAX = 64
_VERSION_MAX = 64


@frozen
class ConfigProblem:
    """One broken rule in an agent configuration: the field's dotted path and what is wrong."""

    field: str
    message: str


@frozen
class ModelConfig:
    """A language-model call: which model, its system prompt, and optional sampling limits."""

    model: str
    system_prompt: str
    max_tokens: int | None = None
    temperature: float | None = None


@frozen
class StateMachine:
    """The modes a conversation moves through and the moves allowed between them.

    `transitions` maps a mode to the modes it may move to; a mode missing from it is
    final (no move out). Staying in the current mode is always allowed.
    """

    initial: str
    modes: tuple[str, ...]
    transitions: Mapping[str, tuple[str, ...]] = field(factory=dict)

    def allowed_from(self, mode: str) -> tuple[str, ...]:
        """The modes `mode` may move to (not counting staying where it is)."""
        return tuple(self.transitions.get(mode, ()))

    def can_move(self, current: str, requested: str) -> bool:
        """Whether a session in `current` may move to `requested`."""
        return requested == current or requested in self.transitions.get(current, ())


@frozen
class Thresholds:
    """Intent-confidence thresholds, `proceed` > `reanalyze` > `clarify`, each in [0, 1].

    At or above `proceed` the agent acts on the detected intent; from `reanalyze` it takes
    a second look with more context; from `clarify` it asks the user what they meant;
    below `clarify` it hands the conversation to a human.
    """

    proceed: float = 0.85
    reanalyze: float = 0.65
    clarify: float = 0.4

    def decide(self, confidence: float) -> str:
        """The action for a confidence: proceed, reanalyze, clarify or handoff."""
        if confidence >= self.proceed:
            return "proceed"
        if confidence >= self.reanalyze:
            return "reanalyze"
        if confidence >= self.clarify:
            return "clarify"
        return "handoff"


DEFAULT_HANDOFF_MESSAGE = (
    "Thanks for your patience. A person from our team will continue this conversation here shortly."
)
"""What an agent says when it hands a conversation to a person, unless its config says."""


class DoubleTexting(enum.StrEnum):
    """What a message that arrives while a run holds the conversation does.

    - `merge`: it waits; when the run completes, every message that arrived meanwhile
      becomes one next run (a burst is answered once, seeing all of it).
    - `enqueue`: it waits; each waiting message becomes its own run, in arrival order.
    - `interrupt`: it starts a new run at once, answering every unanswered message; the
      old run's `complete` raises `RunSupersededError`.
    - `reject`: `receive` raises `ConversationBusyError` and records nothing.
    """

    MERGE = "merge"
    ENQUEUE = "enqueue"
    INTERRUPT = "interrupt"
    REJECT = "reject"


MAX_RUN_TIMEOUT = 86_400.0
"""The longest `runs.timeout`, in seconds (one day)."""

MAX_HISTORY_TURNS = 1_000
"""The largest `runs.history_turns`."""


@frozen
class RunsConfig:
    """How the message pipeline runs this agent (`[runs]` in TOML).

    `double_texting` is the policy for messages that arrive during a run (see
    `DoubleTexting`); `timeout` is how many seconds a run holds the conversation before it
    counts as abandoned (a worker that crashed), unless `SessionManager.extend` pushes it
    forward; `history_turns` is how many earlier turns a run is handed as context.
    """

    double_texting: str = DoubleTexting.MERGE
    timeout: float = 120.0
    history_turns: int = 20

    def __attrs_post_init__(self) -> None:
        # Inside AgentConfig.from_dict the agent checks it, with every other problem and
        # the agent's id; built on its own, it checks itself.
        if _CHECKING_AGENT.get():
            return
        problems: list[ConfigProblem] = []
        _check_runs(self, lambda path, message: problems.append(ConfigProblem(path, message)))
        if problems:
            raise InvalidAgentConfigError(None, problems)

    @property
    def policy(self) -> DoubleTexting:
        """`double_texting` as a `DoubleTexting` member."""
        return DoubleTexting(self.double_texting)


@frozen
class AgentSource:
    """Where a registered agent came from: its distribution, version and entry point."""

    distribution: str
    version: str
    entry_point: str = ""


@frozen
class AgentConfig:
    """One agent: identity, the two model calls, tools, state machine and thresholds.

    Building one validates it; every problem is reported at once:

    >>> AgentConfig(
    ...     id="echo",
    ...     name="Echo",
    ...     intent_detector=ModelConfig(model="small", system_prompt="Classify the message."),
    ...     orchestrator=ModelConfig(model="large", system_prompt="Reply politely."),
    ...     states=StateMachine(initial="chat", modes=("chat",)),
    ... ).id
    'echo'

    `handoff_message` is what the engine replies when it hands the conversation to a
    person. `source` is filled in by the registry for agents that come from an installed
    package, and is None for agents registered in code. `version`, if set, is what sessions
    record as the agent's version (`Session.agent_version`) instead of the distribution's.
    """

    id: str
    name: str
    intent_detector: ModelConfig
    orchestrator: ModelConfig
    states: StateMachine
    description: str = ""
    tools: tuple[str, ...] = ()
    thresholds: Thresholds = field(factory=Thresholds)
    handoff_message: str = DEFAULT_HANDOFF_MESSAGE
    version: str | None = None
    runs: RunsConfig = field(factory=RunsConfig)
    source: AgentSource | None = field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise InvalidAgentConfigError(
                self.id if isinstance(self.id, str) and self.id else None,
                problems,
                distribution=self.source.distribution if self.source else None,
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentConfig:
        """Build a config from plain data, as `tomllib` or `json` returns it.

        Unknown keys, missing fields and wrong types are reported together, with their
        dotted paths; then the same rules as for configs built in code apply.
        """
        if not isinstance(data, Mapping):
            raise InvalidAgentConfigError(
                None, [ConfigProblem("(config)", f"expected a table, got {type(data).__name__}")]
            )
        try:
            with _agent_checks_parts():
                structured = _converter.structure(dict(data), cls)
        except cattrs.ClassValidationError as exc:
            own = _own_error(exc)
            if own is not None:
                raise own from None
            agent_id = data.get("id") if isinstance(data.get("id"), str) else None
            raise InvalidAgentConfigError(agent_id, _structure_problems(exc)) from None
        return structured

    @classmethod
    def from_toml(cls, path: str | Path) -> AgentConfig:
        """Build a config from a TOML file (see `from_dict`).

        A file that is not valid TOML is an `InvalidAgentConfigError` naming the file.
        """
        with Path(path).open("rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as exc:
                problem = ConfigProblem("(file)", f"{path} is not valid TOML: {exc}")
                raise InvalidAgentConfigError(None, [problem]) from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that `from_dict` turns back into an equal config (`source` left out)."""
        data: dict[str, Any] = _converter.unstructure(self)
        data.pop("source", None)
        if data.get("version") is None:
            data.pop("version", None)  # TOML has no null: leave it out, as a file would
        return data

    def with_source(self, source: AgentSource) -> AgentConfig:
        """A copy that records where the config came from."""
        return attrs.evolve(self, source=source)

    @property
    def release(self) -> str | None:
        """The version sessions record: the config's own `version`, else its distribution's.

        None for an agent registered in code without a `version`.
        """
        if self.version is not None:
            return self.version
        return self.source.version if self.source is not None else None


# -- validation ------------------------------------------------------------------------------

_CHECKING_AGENT: ContextVar[bool] = ContextVar("frontdesk_checking_agent", default=False)
"""True while `AgentConfig.from_dict` builds the parts that the agent then checks."""


@contextmanager
def _agent_checks_parts() -> Iterator[None]:
    token = _CHECKING_AGENT.set(True)
    try:
        yield
    finally:
        _CHECKING_AGENT.reset(token)


def _problems(config: AgentConfig) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []

    def problem(path: str, message: str) -> None:
        problems.append(ConfigProblem(path, message))

    def text(path: str, value: object, *, required: bool = True) -> bool:
        if not isinstance(value, str):
            problem(path, f"must be a string, got {type(value).__name__}")
            return False
        if required and not value.strip():
            problem(path, "must not be empty")
            return False
        return True

    if text("id", config.id) and (not _SLUG.match(config.id) or len(config.id) > _SLUG_MAX):
        problem(
            "id",
            f"{config.id!r} is not a valid agent id: use lowercase letters, digits, '-' or "
            f"'_', starting with a letter, at most {_SLUG_MAX} characters (like 'sales-es')",
        )
    text("name", config.name)
    text("description", config.description, required=False)
    text("handoff_message", config.handoff_message)
    if (
        config.version is not None
        and text("version", config.version)
        and (len(config.version) > _VERSION_MAX or not config.version.isprintable())
    ):
        problem("version", f"must be printable text of at most {_VERSION_MAX} characters")
    for role in ("intent_detector", "orchestrator"):
        _check_model(getattr(config, role), role, problem, text)
    if not isinstance(config.tools, tuple) or not all(isinstance(t, str) for t in config.tools):
        problem("tools", "must be a list of tool names")
    else:
        for index, tool in enumerate(config.tools):
            if not tool.strip():
                problem(f"tools[{index}]", "must not be empty")
        duplicates = sorted({t for t in config.tools if config.tools.count(t) > 1})
        if duplicates:
            problem("tools", f"lists {', '.join(duplicates)} more than once")
    _check_states(config.states, problem)
    _check_thresholds(config.thresholds, problem)
    _check_runs(config.runs, problem)
    return problems


def _check_model(model: object, path: str, problem: Any, text: Any) -> None:
    if not isinstance(model, ModelConfig):
        problem(path, "is required: a table with model and system_prompt")
        return
    text(f"{path}.model", model.model)
    text(f"{path}.system_prompt", model.system_prompt)
    if model.max_tokens is not None and (
        isinstance(model.max_tokens, bool)
        or not isinstance(model.max_tokens, int)
        or model.max_tokens <= 0
    ):
        problem(f"{path}.max_tokens", f"must be a positive integer, got {model.max_tokens!r}")
    if model.temperature is not None and (
        isinstance(model.temperature, bool)
        or not isinstance(model.temperature, int | float)
        or not 0 <= model.temperature <= 2
    ):
        problem(f"{path}.temperature", f"must be between 0 and 2, got {model.temperature!r}")


def _check_states(states: object, problem: Any) -> None:
    if not isinstance(states, StateMachine):
        problem("states", "is required: a table with initial, modes and transitions")
        return
    modes = states.modes
    if not isinstance(modes, tuple) or not modes:
        problem("states.modes", "must list at least one mode")
        return
    declared = set(modes)
    for index, mode in enumerate(modes):
        if not isinstance(mode, str) or not _SLUG.match(mode):
            problem(
                f"states.modes[{index}]",
                f"{mode!r} is not a valid mode name: use lowercase letters, digits, '-' or '_'",
            )
    repeated = sorted({m for m in modes if modes.count(m) > 1})
    if repeated:
        problem("states.modes", f"declares {', '.join(map(str, repeated))} more than once")
    choices = ", ".join(map(str, modes))
    if states.initial not in declared:
        problem("states.initial", f"{states.initial!r} is not one of the modes ({choices})")
    for source, targets in states.transitions.items():
        if source not in declared:
            problem(
                f"states.transitions.{source}",
                f"{source!r} is not one of the modes ({choices})",
            )
        for target in targets:
            if target not in declared:
                problem(
                    f"states.transitions.{source}",
                    f"moves to {target!r}, which is not one of the modes ({choices})",
                )


def _check_thresholds(thresholds: object, problem: Any) -> None:
    if not isinstance(thresholds, Thresholds):
        problem("thresholds", "must be a table with proceed, reanalyze and clarify")
        return
    names = ("proceed", "reanalyze", "clarify")
    in_range = True
    for name in names:
        value = getattr(thresholds, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            problem(f"thresholds.{name}", f"must be a number between 0 and 1, got {value!r}")
            in_range = False
    if in_range:
        for higher, lower in itertools.pairwise(names):
            if not getattr(thresholds, higher) > getattr(thresholds, lower):
                problem(
                    f"thresholds.{higher}",
                    f"must be greater than thresholds.{lower} "
                    f"({getattr(thresholds, higher)} <= {getattr(thresholds, lower)})",
                )


def _check_runs(runs: object, problem: Any) -> None:
    if not isinstance(runs, RunsConfig):
        problem("runs", "must be a table with double_texting, timeout and history_turns")
        return
    choices = ", ".join(policy.value for policy in DoubleTexting)
    if not isinstance(runs.double_texting, str) or runs.double_texting not in set(DoubleTexting):
        problem(
            "runs.double_texting",
            f"{runs.double_texting!r} is not a double-texting policy (choose one of {choices})",
        )
    timeout = runs.timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not 0 < timeout <= MAX_RUN_TIMEOUT
    ):
        problem(
            "runs.timeout",
            f"must be a number of seconds above 0 and at most {MAX_RUN_TIMEOUT:g}, got {timeout!r}",
        )
    history = runs.history_turns
    if (
        isinstance(history, bool)
        or not isinstance(history, int)
        or not 0 <= history <= MAX_HISTORY_TURNS
    ):
        problem(
            "runs.history_turns",
            f"must be an integer from 0 to {MAX_HISTORY_TURNS}, got {history!r}",
        )


# -- structuring -----------------------------------------------------------------------------


class _WrongTypeError(TypeError):
    """A value of the wrong JSON/TOML type; cattrs' own conversions would coerce it."""


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)

    def strict(expected: tuple[type, ...], label: str) -> Any:
        def structure(value: Any, _: type) -> Any:
            if isinstance(value, bool) and bool not in expected:
                raise _WrongTypeError(f"must be {label}, got a boolean")
            if not isinstance(value, expected):
                raise _WrongTypeError(f"must be {label}, got {type(value).__name__}")
            return value

        return structure

    converter.register_structure_hook(str, strict((str,), "a string"))
    converter.register_structure_hook(int, strict((int,), "an integer"))
    converter.register_structure_hook(
        float, lambda v, t: float(strict((int, float), "a number")(v, t))
    )

    def string_tuple(value: Any, _: type) -> tuple[str, ...]:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise _WrongTypeError(f"must be a list of strings, got {type(value).__name__}")
        bad = [repr(item) for item in value if not isinstance(item, str)]
        if bad:
            raise _WrongTypeError(f"must be a list of strings; not strings: {', '.join(bad)}")
        return tuple(value)

    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], string_tuple)
    return converter


_converter = _make_converter()  # pure: builds hook tables, touches nothing outside


def _own_error(exc: BaseException) -> InvalidAgentConfigError | None:
    """Our validation error, if cattrs wrapped one raised by `__attrs_post_init__`."""
    if isinstance(exc, InvalidAgentConfigError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _own_error(inner)
            if found is not None:
                return found
    return None


def _format(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, _WrongTypeError):
        return str(exc)
    if isinstance(exc, KeyError):
        return "is required"
    if isinstance(exc, ForbiddenExtraKeysError):
        return "\0" + "\0".join(sorted(exc.extra_fields))
    return format_exception(exc, type_)


def _structure_problems(exc: cattrs.ClassValidationError) -> list[ConfigProblem]:
    problems = []
    for line in cattrs.transform_error(exc, path="", format_exception=_format):
        message, _, path = line.rpartition(" @ ")
        path = path.lstrip(".")
        if message.startswith("\0"):
            for key in message.split("\0")[1:]:
                where = f"{path}.{key}" if path else key
                problems.append(ConfigProblem(where, "is not a known field (check its spelling)"))
        else:
            problems.append(ConfigProblem(path or "(config)", message))
    return problems
