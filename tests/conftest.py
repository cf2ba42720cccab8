"""Fixtures shared by frontdesk's own tests."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from frontdesk import AgentConfig, AgentRegistry, ModelConfig, StateMachine
from frontdesk.storage.migrations import apply_migrations
from tests.support.gateway import PostgrestGateway
from tests.support.packages import (
    BROKEN_AGENT_PACKAGE,
    ROOT,
    install_into_target,
    write_tree,
)
from tests.support.postgres import create_app_database, setup_supabase_roles

# A real PostgreSQL for the Supabase backend's tests (skips without one, unless
# FRONTDESK_REQUIRE_POSTGRES=1, which CI sets).
pytest_plugins = ["tests.support.pg_fixtures"]

SUPABASE_JWT_SECRET = "frontdesk-tests-jwt-secret-0123456789-abcdef"

_ENV = (
    "FRONTDESK_LOAD_PLUGINS",
    "FRONTDESK_STRICT_PLUGINS",
    "FRONTDESK_STORAGE",
    "FRONTDESK_SQLITE_PATH",
    "FRONTDESK_POSTGRES_DSN",
    "FRONTDESK_TEST_STORAGE",
    "DATABASE_URL",
)


@pytest.fixture(autouse=True)
def _clean_frontdesk_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from no FRONTDESK_* settings, whatever the shell that runs them has."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def agent_data(**overrides: Any) -> dict[str, Any]:
    """Plain data for a valid agent, with top-level keys replaced by `overrides`."""
    data: dict[str, Any] = {
        "id": "echo",
        "name": "Echo",
        "description": "Repeats what it is told.",
        "tools": ["lookup"],
        "intent_detector": {"model": "small", "system_prompt": "Classify the message."},
        "orchestrator": {"model": "large", "system_prompt": "Answer politely.", "temperature": 0.3},
        "states": {
            "initial": "greeting",
            "modes": ["greeting", "helping", "done"],
            "transitions": {"greeting": ["helping", "done"], "helping": ["done"]},
        },
        "thresholds": {"proceed": 0.8, "reanalyze": 0.6, "clarify": 0.3},
    }
    data.update(overrides)
    return data


@pytest.fixture
def make_agent() -> Callable[..., AgentConfig]:
    """Build a valid AgentConfig in code; keyword arguments replace its fields."""

    def make(**overrides: Any) -> AgentConfig:
        fields: dict[str, Any] = {
            "id": "echo",
            "name": "Echo",
            "intent_detector": ModelConfig(model="small", system_prompt="Classify."),
            "orchestrator": ModelConfig(model="large", system_prompt="Answer."),
            "states": StateMachine(
                initial="greeting",
                modes=("greeting", "helping", "done"),
                transitions={"greeting": ("helping", "done"), "helping": ("done",)},
            ),
        }
        fields.update(overrides)
        return AgentConfig(**fields)

    return make


@pytest.fixture
def registry() -> AgentRegistry:
    """An empty registry that scans nothing."""
    return AgentRegistry()


DistributionMaker = Callable[..., Path]


@pytest.fixture
def make_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DistributionMaker]:
    """Install real distributions (dist-info metadata plus modules) on sys.path.

    `make_distribution("frontdesk-extra", modules={"extra_agents": "source"},
    agents={"extra": "extra_agents"})` makes importlib.metadata find `frontdesk-extra` with
    a `frontdesk.agents` entry point, exactly as pip would have left it; `storage=` adds
    `frontdesk.storage` entry points.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    imported: list[str] = []

    def make(
        name: str,
        *,
        version: str = "1.0",
        modules: Mapping[str, str] = {},
        agents: Mapping[str, str] = {},
        storage: Mapping[str, str] = {},
    ) -> Path:
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            imported.append(module)
        dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = ["[frontdesk.agents]", *(f"{ep} = {target}" for ep, target in agents.items())]
        lines += ["[frontdesk.storage]", *(f"{ep} = {target}" for ep, target in storage.items())]
        (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return dist_info

    yield make
    for module in imported:
        sys.modules.pop(module, None)


@pytest.fixture
def supabase_project(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PostgrestGateway]:
    """A migrated database behind the PostgREST gateway, named by SUPABASE_URL and
    SUPABASE_SERVICE_ROLE_KEY, as a Supabase project would be."""
    authenticator = setup_supabase_roles(fresh_database)
    apply_migrations(fresh_database)
    with PostgrestGateway(authenticator, SUPABASE_JWT_SECRET, pool_size=16) as gateway:
        monkeypatch.setenv("SUPABASE_URL", gateway.url)
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", gateway.make_jwt("service_role"))
        yield gateway


@pytest.fixture
def postgres_project(plain_postgres_dsn: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated database on plain PostgreSQL, named by FRONTDESK_POSTGRES_DSN."""
    with create_app_database(plain_postgres_dsn) as dsn:
        apply_migrations(dsn)
        monkeypatch.setenv("FRONTDESK_POSTGRES_DSN", dsn)
        yield dsn


@pytest.fixture(scope="session")
def other_agent_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory where two agent packages besides the workspace's are really installed.

    `acme-concierge` (examples/agent-package, agent `concierge`) and `acme-broken-agents`
    (whose module fails to import), built and installed by uv. With it on the path, a test
    sees an environment where a user has installed other agent packages.
    """
    sources = write_tree(tmp_path_factory.mktemp("acme-broken-agents"), BROKEN_AGENT_PACKAGE)
    target = tmp_path_factory.mktemp("other-agent-packages")
    return install_into_target(target, ROOT / "examples" / "agent-package", sources)


@attrs.frozen
class InstalledAgents:
    """Which agent packages a test runs beside, and the environment for its subprocesses."""

    others: tuple[str, ...]  # distributions installed besides the workspace's
    env: dict[str, str]  # add to a subprocess's environment so it sees the same


@pytest.fixture(params=["workspace-only", "beside-other-packages"])
def installed_agents(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[InstalledAgents]:
    """Run a test that discovers agent packages twice: with what the workspace installs,
    and again with other agent packages installed (one good, one broken).

    Whatever else a user has installed, frontdesk's tests must pass.
    """
    if request.param == "workspace-only":
        yield InstalledAgents(others=(), env={})
        return
    site: Path = request.getfixturevalue("other_agent_packages")
    monkeypatch.syspath_prepend(str(site))
    pythonpath = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    yield InstalledAgents(
        others=("acme-broken-agents", "acme-concierge"), env={"PYTHONPATH": pythonpath}
    )
    for module in [m for m in sys.modules if m.startswith(("acme_concierge", "acme_broken"))]:
        del sys.modules[module]
