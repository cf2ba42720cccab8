"""The agent registry: agents registered in code and agents found in installed packages.

`pip install frontdesk-sales` makes the `sales` agent appear: the package names a module in
the `frontdesk.agents` entry-point group, and `discover()` loads it with pluggy and calls its
`register_agents` hook. The process-wide `agent_registry` discovers on first use, once.

    from frontdesk import agent_registry

    sales = agent_registry.get("sales")

Discovery is defensive, because one broken package must not take the others down:

- a package whose import or hook fails is recorded (see `plugins`, with the file and line
  the error came from) and skipped, unless
  `FRONTDESK_STRICT_PLUGINS=1`, which makes it a `PluginLoadError`;
- `FRONTDESK_LOAD_PLUGINS` lists the distributions to load (comma-separated; empty means
  none); the others are not imported at all. A listed name that is not installed is logged
  and kept in `unknown_plugins` (an `UnknownPluginError` in strict mode);
- an agent id claimed by two distributions is kept out, and using it raises
  `DuplicateAgentError` naming both (see `conflicts`).

A package may also implement `register_tools`: an agent gets the tools of the package that
registered it (`tools_for`), and tools registered in code (`register_tool`) for any agent.
"""

from __future__ import annotations

import builtins
import enum
import logging
import os
import re
import sysconfig
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pluggy
from attrs import frozen

from . import hookspecs
from .config import AgentConfig, AgentSource
from .errors import (
    AgentNotFoundError,
    DuplicateAgentError,
    InvalidAgentConfigError,
    PluginLoadError,
    RegistryError,
    UnknownPluginError,
    ValidationError,
)
from .tools import Tool

if TYPE_CHECKING:
    from .models import Session
    from .sessions import SessionChange

Migrate = Callable[[AgentConfig, "Session"], "SessionChange | None"]
"""A `migrate_session` hook implementation: (installed agent, old session) -> change."""

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentRegistry",
    "PluginInfo",
    "PluginStatus",
    "agent_registry",
    "get_default_registry",
    "use_default_registry",
]

ENTRY_POINT_GROUP = "frontdesk.agents"
LOAD_PLUGINS_ENV = "FRONTDESK_LOAD_PLUGINS"
STRICT_PLUGINS_ENV = "FRONTDESK_STRICT_PLUGINS"

_IN_CODE = "(registered in code)"

logger = logging.getLogger(__name__)


class PluginStatus(enum.StrEnum):
    """What discovery did with one agent package."""

    LOADED = "loaded"
    FAILED = "failed"
    BLOCKED = "blocked"


@frozen
class PluginInfo:
    """One entry point of the `frontdesk.agents` group and what became of it."""

    distribution: str
    version: str
    entry_point: str
    status: PluginStatus
    agent_ids: tuple[str, ...] = ()
    error: str | None = None
    tool_names: tuple[str, ...] = ()


class AgentRegistry:
    """Agent configurations by id.

    A registry built in a test starts empty and scans nothing; register agents in a
    fixture and unregister them after. The default `agent_registry` is built with
    `autodiscover=True` and loads installed packages the first time it is used.

    >>> registry = AgentRegistry()
    >>> len(registry)
    0
    """

    def __init__(self, *, autodiscover: bool = False) -> None:
        self._autodiscover = autodiscover
        self._discovered = False
        self._lock = threading.RLock()
        # Every claim on each id, in code and from packages: one claim makes a usable
        # agent, two or more a conflict. Rediscovery replaces the packages' claims only.
        self._claims: dict[str, builtins.list[AgentConfig]] = {}
        self._plugins: tuple[PluginInfo, ...] = ()
        # Tool implementations by the distribution that registered them; None: in code.
        self._tools: dict[str | None, dict[str, Tool]] = {}
        # The hooks of the loaded packages (their `migrate_session`), and the migrations
        # given for agents registered in code.
        self._hooks: pluggy.PluginManager | None = None
        self._migrations: dict[str, Migrate] = {}
        self._load_filter: frozenset[str] | None = None
        self._unknown_plugins: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<AgentRegistry agents={self._usable_ids()!r}>"

    # -- reading ---------------------------------------------------------------------------

    def get(self, agent_id: str) -> AgentConfig:
        """The agent with this id.

        Raises `AgentNotFoundError` (listing the ids that exist) when there is none, and
        `DuplicateAgentError` when two distributions claim it.
        """
        self._ensure_discovered()
        with self._lock:
            claims = self._claims.get(agent_id, [])
            if len(claims) > 1:
                raise DuplicateAgentError(agent_id, [_label(c.source) for c in claims])
            if not claims:
                raise AgentNotFoundError(
                    agent_id, self._usable_ids(), reason=self._why_missing(agent_id)
                )
            return claims[0]

    def has(self, agent_id: str) -> bool:
        """Whether an agent with this id is registered (claimed twice counts: `get` raises)."""
        self._ensure_discovered()
        with self._lock:
            return agent_id in self._claims

    def __contains__(self, agent_id: object) -> bool:
        return isinstance(agent_id, str) and self.has(agent_id)

    def list(self) -> builtins.list[AgentConfig]:
        """The usable agents, sorted by id (ids claimed twice are left out: see `conflicts`)."""
        self._ensure_discovered()
        with self._lock:
            return [self._claims[agent_id][0] for agent_id in self._usable_ids()]

    def list_ids(self) -> builtins.list[str]:
        """The ids of the usable agents, sorted."""
        self._ensure_discovered()
        with self._lock:
            return self._usable_ids()

    def __len__(self) -> int:
        self._ensure_discovered()
        with self._lock:
            return len(self._usable_ids())

    def __iter__(self) -> Iterator[AgentConfig]:
        return iter(self.list())

    @property
    def conflicts(self) -> Mapping[str, tuple[str, ...]]:
        """Agent ids claimed by more than one source, with the sources that claim them."""
        self._ensure_discovered()
        with self._lock:
            return {
                agent_id: tuple(_label(c.source) for c in claims)
                for agent_id, claims in sorted(self._claims.items())
                if len(claims) > 1
            }

    @property
    def plugins(self) -> tuple[PluginInfo, ...]:
        """Every entry point discovery saw: loaded, failed (with the error) or blocked."""
        self._ensure_discovered()
        return self._plugins

    def tools_for(self, agent_id: str) -> dict[str, Tool]:
        """The implementations of the agent's configured tools, by name.

        A tool comes from the package that registered the agent, or from code
        (`register_tool`, which wins). Configured tools without one are left out: see
        `missing_tools`.
        """
        agent = self.get(agent_id)
        with self._lock:
            own = self._tools.get(agent.source.distribution if agent.source else None, {})
            in_code = self._tools.get(None, {})
            found = {**own, **in_code}
        return {name: found[name] for name in agent.tools if name in found}

    def missing_tools(self, agent_id: str) -> tuple[str, ...]:
        """The agent's configured tools that nothing implements (calling them fails)."""
        implemented = self.tools_for(agent_id)
        return tuple(name for name in self.get(agent_id).tools if name not in implemented)

    @property
    def load_filter(self) -> frozenset[str] | None:
        """The distributions FRONTDESK_LOAD_PLUGINS allowed at the last discovery (normalised
        names), or None when it was not set."""
        self._ensure_discovered()
        return self._load_filter

    @property
    def unknown_plugins(self) -> tuple[str, ...]:
        """Names in FRONTDESK_LOAD_PLUGINS that matched no installed agent package."""
        self._ensure_discovered()
        return self._unknown_plugins

    def _why_missing(self, agent_id: str) -> str | None:
        """Why an id is missing when a package that looks like its provider did not load."""
        for info in self._plugins:
            if info.status is PluginStatus.LOADED or not _may_provide(info, agent_id):
                continue
            package = f"its package {info.distribution} {info.version}"
            if info.status is PluginStatus.BLOCKED:
                return (
                    f"{package} is installed but not loaded: {LOAD_PLUGINS_ENV} does not list "
                    "it. Add it there, or unset the variable."
                )
            return (
                f"{package} failed to load: {info.error}. Fix or reinstall it "
                "(`frontdesk plugins` shows every package's status)."
            )
        return None

    def _usable_ids(self) -> builtins.list[str]:
        return sorted(agent_id for agent_id, claims in self._claims.items() if len(claims) == 1)

    # -- writing ---------------------------------------------------------------------------

    def register(
        self, config: AgentConfig, *, replace: bool = False, migrate: Migrate | None = None
    ) -> AgentConfig:
        """Add an agent; its config was validated when it was built.

        Raises `DuplicateAgentError` when the id is taken, unless `replace` is true (then
        this config is the only one with the id). Returns the config, for one-liners.
        `migrate` plays the `migrate_session` hook for an agent registered in code.
        """
        if not isinstance(config, AgentConfig):
            raise ValidationError(
                "config", f"register() takes an AgentConfig, got {type(config).__name__}"
            )
        self._ensure_discovered()
        with self._lock:
            claims = self._claims.get(config.id, [])
            if claims and not replace:
                raise DuplicateAgentError(
                    config.id, [*(_label(c.source) for c in claims), _label(config.source)]
                )
            self._claims[config.id] = [config]
            if migrate is not None:
                self._migrations[config.id] = migrate
            else:
                self._migrations.pop(config.id, None)
        logger.debug("registered agent %r from %s", config.id, _label(config.source))
        return config

    def register_tool(self, tool: Tool) -> Tool:
        """Add a tool implementation from code, for every agent that names it.

        It replaces a tool of the same name registered in code before, and wins over a
        package's. Returns the tool.
        """
        if not isinstance(tool, Tool):
            raise ValidationError(
                "tool", f"register_tool() takes a Tool, got {type(tool).__name__}"
            )
        self._ensure_discovered()
        with self._lock:
            self._tools.setdefault(None, {})[tool.name] = tool
        return tool

    def unregister_tool(self, name: str) -> bool:
        """Remove a tool registered in code; False if there was none."""
        with self._lock:
            return self._tools.get(None, {}).pop(name, None) is not None

    def unregister(self, agent_id: str) -> bool:
        """Remove an agent (or every claim on a contested id); False if there was none."""
        self._ensure_discovered()
        with self._lock:
            removed = self._claims.pop(agent_id, None) is not None
            self._migrations.pop(agent_id, None)
        if removed:
            logger.debug("unregistered agent %r", agent_id)
        return removed

    def clear(self) -> None:
        """Remove every agent. Discovery does not run again by itself afterwards."""
        with self._lock:
            self._discovered = True
            self._claims.clear()
            self._tools.clear()
            self._migrations.clear()

    # -- discovery -------------------------------------------------------------------------

    def discover(self) -> tuple[PluginInfo, ...]:
        """Load every agent package in the `frontdesk.agents` entry-point group.

        Scans the installed distributions once per call, honouring
        FRONTDESK_LOAD_PLUGINS and FRONTDESK_STRICT_PLUGINS, and returns what became of
        each entry point (also kept in `plugins`). Agents found by an earlier call are
        replaced; agents registered in code stay. In strict mode a failure raises
        `PluginLoadError` and leaves the registry as it was.
        """
        allowed = _load_filter(os.environ.get(LOAD_PLUGINS_ENV))
        strict = _strict_mode(os.environ.get(STRICT_PLUGINS_ENV, ""))
        manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        manager.add_hookspecs(hookspecs)
        with self._lock:
            claims = {
                agent_id: in_code
                for agent_id, configs in self._claims.items()
                if (in_code := [c for c in configs if c.source is None])
            }
            tools: dict[str | None, dict[str, Tool]] = {None: self._tools.get(None, {})}
            infos = []
            eps = builtins.list(entry_points(group=ENTRY_POINT_GROUP))
            unknown = _unknown_names(allowed, eps, strict=strict)
            for ep in eps:
                info, configs, found = _load(ep, manager, allowed=allowed, strict=strict)
                infos.append(info)
                for config in configs:
                    claims.setdefault(config.id, []).append(config)
                if found:
                    tools.setdefault(info.distribution, {}).update(found)
            # Only now, with nothing left to fail, does the registry change.
            self._claims = claims
            self._tools = tools
            self._plugins = tuple(sorted(infos, key=lambda i: (i.distribution, i.entry_point)))
            self._hooks = manager
            self._load_filter = allowed
            self._unknown_plugins = unknown
            self._discovered = True
        for agent_id, sources in self.conflicts.items():
            logger.warning(
                "agent id %r is claimed by %s; it stays unusable until one is removed",
                agent_id,
                " and ".join(sources),
            )
        return self._plugins

    # -- upgrades --------------------------------------------------------------------------

    def migrate_session(self, agent: AgentConfig, session: Session) -> SessionChange | None:
        """What `agent`'s own package maps `session` to (its `migrate_session` hook).

        None when the package has no such hook or leaves the session as it is.
        """
        with self._lock:
            in_code = self._migrations.get(agent.id)
            hooks = self._hooks
        if in_code is not None:
            return in_code(agent, session)
        if agent.source is None or hooks is None:
            return None
        name = f"{agent.source.distribution}:{agent.source.entry_point.partition(' = ')[0]}"
        for impl in reversed(hooks.hook.migrate_session.get_hookimpls()):
            if impl.plugin_name == name:
                # As pluggy calls hooks: an implementation may take a subset of the arguments.
                given = {"agent": agent, "session": session}
                change = impl.function(*(given[a] for a in impl.argnames))
                if change is not None:
                    return cast("SessionChange", change)  # checked by the manager
        return None

    def _ensure_discovered(self) -> None:
        if self._autodiscover and not self._discovered:
            with self._lock:
                if not self._discovered:
                    self.discover()


def _unknown_names(
    allowed: frozenset[str] | None, found: Iterable[EntryPoint], *, strict: bool
) -> tuple[str, ...]:
    """The names in FRONTDESK_LOAD_PLUGINS that no installed agent package has.

    Logged as a warning (raised as `UnknownPluginError` in strict mode); an entry-point
    name among them (usually the agent id) gets a hint naming its distribution.
    """
    if not allowed:
        return ()
    by_dist = {_normalize(_distribution_name(ep)): _distribution_name(ep) for ep in found}
    unknown = tuple(sorted(allowed - by_dist.keys()))
    if not unknown:
        return ()
    by_ep_name = {_normalize(ep.name): _distribution_name(ep) for ep in found}
    hints = [
        f"{name!r} is an entry point of {by_ep_name[name]}"
        for name in unknown
        if name in by_ep_name
    ]
    hint = f", not agent ids ({'; '.join(hints)})" if hints else ""
    error = UnknownPluginError(unknown, by_dist.values(), hint)
    if strict:
        raise error
    logger.warning("%s", error)
    return unknown


def _distribution_name(ep: EntryPoint) -> str:
    metadata = ep.dist.metadata if ep.dist is not None else None
    return metadata["Name"] if metadata else "(unknown distribution)"


def _load(
    ep: EntryPoint,
    manager: pluggy.PluginManager,
    *,
    allowed: frozenset[str] | None,
    strict: bool,
) -> tuple[PluginInfo, builtins.list[AgentConfig], dict[str, Tool]]:
    """Load one entry point; a failure is recorded (or raised, in strict mode)."""
    # One read of the metadata: `.name` and `.version` would each parse it again.
    metadata = ep.dist.metadata if ep.dist is not None else None
    distribution = metadata["Name"] if metadata else "(unknown distribution)"
    version = metadata["Version"] if metadata else "?"
    where = f"{ep.name} = {ep.value}"
    if allowed is not None and _normalize(distribution) not in allowed:
        logger.debug("not loading %s: not listed in %s", distribution, LOAD_PLUGINS_ENV)
        return PluginInfo(distribution, version, where, PluginStatus.BLOCKED), [], {}
    source = AgentSource(distribution=distribution, version=version, entry_point=where)
    try:
        configs, tools = _call_plugin(ep, manager, source)
    except Exception as exc:  # any failure inside a package is that package's: recorded below
        location = _where(exc)  # from the traceback, which the replacement below has not
        if isinstance(exc, InvalidAgentConfigError) and exc.distribution is None:
            exc = exc.with_distribution(distribution)
        error = f"{type(exc).__name__}: {exc}{location}"
        logger.warning("agent package %s %s failed to load: %s", distribution, version, error)
        if strict:
            raise PluginLoadError(distribution, version, where, error) from exc
        return PluginInfo(distribution, version, where, PluginStatus.FAILED, error=error), [], {}
    ids = tuple(config.id for config in configs)
    logger.debug("loaded agents %s from %s %s", ", ".join(ids), distribution, version)
    info = PluginInfo(
        distribution,
        version,
        where,
        PluginStatus.LOADED,
        agent_ids=ids,
        tool_names=tuple(sorted(tools)),
    )
    return info, configs, tools


def _call_plugin(
    ep: EntryPoint, manager: pluggy.PluginManager, source: AgentSource
) -> tuple[builtins.list[AgentConfig], dict[str, Tool]]:
    """Import one entry point, register it with pluggy and call its hooks, alone."""
    module = ep.load()
    name = f"{source.distribution}:{ep.name}"
    manager.register(module, name=name)
    try:
        manager.check_pending()  # a misspelt hook name fails here, not silently
    except pluggy.PluginValidationError:
        manager.unregister(module)  # or every later check_pending would fail on it too
        raise
    impls = [i for i in manager.hook.register_agents.get_hookimpls() if i.plugin_name == name]
    if not impls:
        raise TypeError(
            f"{ep.value} implements no register_agents hook; "
            "decorate a register_agents() function with @frontdesk.hookimpl"
        )
    configs: builtins.list[AgentConfig] = []
    for impl in impls:
        result: object = impl.function()
        if isinstance(result, AgentConfig) or not isinstance(result, Iterable):
            raise TypeError(
                f"register_agents() must return a list of AgentConfig, got {type(result).__name__}"
            )
        for item in result:
            if not isinstance(item, AgentConfig):
                raise TypeError(
                    f"register_agents() returned a {type(item).__name__}, expected AgentConfig"
                )
            configs.append(item.with_source(source))
    ids = [config.id for config in configs]
    repeated = sorted({agent_id for agent_id in ids if ids.count(agent_id) > 1})
    if repeated:
        raise ValueError(f"register_agents() returned agent {', '.join(repeated)} twice")
    return configs, _plugin_tools(manager, name)


def _plugin_tools(manager: pluggy.PluginManager, name: str) -> dict[str, Tool]:
    tools: dict[str, Tool] = {}
    for impl in manager.hook.register_tools.get_hookimpls():
        if impl.plugin_name != name:
            continue
        result: object = impl.function()
        if isinstance(result, Tool) or not isinstance(result, Iterable):
            raise TypeError(
                f"register_tools() must return a list of Tool, got {type(result).__name__}"
            )
        for item in result:
            if not isinstance(item, Tool):
                raise TypeError(f"register_tools() returned a {type(item).__name__}, expected Tool")
            if item.name in tools:
                raise ValueError(f"register_tools() returned tool {item.name} twice")
            tools[item.name] = item
    return tools


# Frames in these directories are frontdesk's, pluggy's or Python's, never the package's own
# (each ends with a separator, so `frontdesk_sales/` is not inside `frontdesk/`). Installed
# packages may live under the standard library's directory (`lib/python3.X/site-packages`).
def _as_dir(path: str | Path) -> str:
    return f"{Path(path)}{os.sep}"


_FRAMEWORK_DIRS = tuple(
    _as_dir(Path(module.__file__).parent) for module in (hookspecs, pluggy) if module.__file__
)
_STDLIB_DIR = _as_dir(sysconfig.get_paths()["stdlib"])
_INSTALLED_DIRS = tuple(_as_dir(sysconfig.get_paths()[key]) for key in ("purelib", "platlib"))


def _is_package_frame(filename: str) -> bool:
    if filename.startswith(("<", *_FRAMEWORK_DIRS)):
        return False
    return not filename.startswith(_STDLIB_DIR) or filename.startswith(_INSTALLED_DIRS)


def _where(exc: BaseException) -> str:
    """` (at FILE:LINE)`: the innermost frame of the agent package's own code, if any."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if _is_package_frame(frame.filename)
    ]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _may_provide(info: PluginInfo, agent_id: str) -> bool:
    """Whether an unloaded package looks like the provider of `agent_id`: its entry point
    (or its distribution, less a `frontdesk-` prefix) is named after the id."""
    name = _normalize(agent_id)
    entry_point = _normalize(info.entry_point.split("=", 1)[0].strip())
    distribution = _normalize(info.distribution)
    return name in {entry_point, distribution, distribution.removeprefix("frontdesk-")}


def _label(source: AgentSource | None) -> str:
    return f"{source.distribution} {source.version}" if source else _IN_CODE


def _normalize(name: str) -> str:
    """PEP 503 normalisation, so `frontdesk_sales` and `Frontdesk-Sales` name one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _strict_mode(value: str) -> bool:
    """FRONTDESK_STRICT_PLUGINS as a yes or no; a value that is neither is refused, since
    a misspelt "on" silently meaning "off" would hide the very failures it asks to see."""
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise RegistryError(
        f"{STRICT_PLUGINS_ENV}={value!r} is neither yes nor no: use 1, true, yes or on to "
        "make a package that fails to load an error; 0, false, no, off or empty for a warning."
    )


def _load_filter(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(_normalize(part.strip()) for part in value.split(",") if part.strip())


agent_registry = AgentRegistry(autodiscover=True)
"""The process-wide registry; it discovers installed agent packages on first use."""

_default = agent_registry


def get_default_registry() -> AgentRegistry:
    """The registry `SessionManager` and the CLI use when none is given.

    It is `agent_registry` unless a test swapped it with `use_default_registry`.
    """
    return _default


@contextmanager
def use_default_registry(registry: AgentRegistry) -> Iterator[AgentRegistry]:
    """Make `registry` the default for the duration of a `with` block (for tests)."""
    global _default  # the one swappable default, restored on exit
    previous, _default = _default, registry
    try:
        yield registry
    finally:
        _default = previous
