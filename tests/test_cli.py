"""The `frontdesk` command, through click's test runner."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner, Result

from frontdesk import AgentConfig, AgentRegistry, __version__
from frontdesk.cli import create_cli
from frontdesk.registry import use_default_registry

from .conftest import DistributionMaker
from .test_registry import good_package

MakeAgent = Callable[..., AgentConfig]


@pytest.fixture
def discovered() -> Iterator[AgentRegistry]:
    """A fresh auto-discovering registry as the default, as in a new process."""
    with use_default_registry(AgentRegistry(autodiscover=True)) as registry:
        yield registry


def run(*args: str) -> Result:
    return CliRunner().invoke(create_cli(), list(args), prog_name="frontdesk")


def test_agents_lists_installed_agents(discovered: AgentRegistry) -> None:
    result = run("agents")
    assert result.exit_code == 0, result.output
    lines = {
        line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if line.strip()
    }
    assert lines["sales"][-2:] == ["frontdesk-sales", "0.1.0"]
    assert lines["support"][-2:] == ["frontdesk-support", "0.1.0"]
    assert result.stderr == ""


def test_agents_list_is_the_same_listing(discovered: AgentRegistry) -> None:
    assert run("agents", "list").stdout == run("agents").stdout


def test_agents_json(discovered: AgentRegistry) -> None:
    result = run("agents", "--json")
    assert result.exit_code == 0
    records = {r["id"]: r for r in json.loads(result.stdout)}
    assert records["sales"]["distribution"] == "frontdesk-sales"
    assert records["sales"]["version"] == "0.1.0"
    assert records["support"]["distribution"] == "frontdesk-support"
    assert records["sales"]["initial_mode"] in records["sales"]["modes"]


def test_agents_shows_code_registered_agents(
    registry: AgentRegistry, make_agent: MakeAgent
) -> None:
    registry.register(make_agent(id="mine", name="Mine"))
    with use_default_registry(registry):
        result = run("agents", "--json")
    assert json.loads(result.stdout) == [
        {
            "id": "mine",
            "name": "Mine",
            "distribution": None,
            "version": None,
            "description": "",
            "initial_mode": "greeting",
            "modes": ["greeting", "helping", "done"],
            "tools": [],
        }
    ]


def test_agents_when_none_installed(registry: AgentRegistry) -> None:
    with use_default_registry(registry):
        result = run("agents")
    assert result.exit_code == 0
    assert "No agents installed" in result.stdout


def test_agents_show(discovered: AgentRegistry) -> None:
    result = run("agents", "show", "sales")
    assert result.exit_code == 0, result.output
    sales = discovered.get("sales")
    assert "from frontdesk-sales 0.1.0" in result.stdout
    assert f"initial: {sales.states.initial}" in result.stdout
    assert sales.orchestrator.model in result.stdout
    first_prompt_line = sales.orchestrator.system_prompt.strip().splitlines()[0]
    assert first_prompt_line in result.stdout


def test_agents_show_json_round_trips(discovered: AgentRegistry) -> None:
    result = run("agents", "show", "support", "--json")
    record = json.loads(result.stdout)
    assert record["distribution"] == "frontdesk-support"
    assert record["entry_point"] == "support = frontdesk_support.agent"
    assert AgentConfig.from_dict(record["config"]) == discovered.get("support")


def test_agents_show_unknown_id_fails_in_one_line(discovered: AgentRegistry) -> None:
    result = run("agents", "show", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: no agent 'nope' is registered; available agents: sales, support. Install the "
        "package that provides it, or register it with AgentRegistry.register()."
    ]


def test_plugins_reports_loaded_failed_and_blocked(
    make_distribution: DistributionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_distribution(
        "frontdesk-broken",
        modules={"broken_agents": "raise ImportError('gone')\n"},
        agents={"broken": "broken_agents"},
    )
    make_distribution(
        "frontdesk-skipped",
        modules={"skipped_agents": good_package("skipped")},
        agents={"skipped": "skipped_agents"},
    )
    monkeypatch.setenv(
        "FRONTDESK_LOAD_PLUGINS", "frontdesk-sales,frontdesk-support,frontdesk-broken"
    )
    with use_default_registry(AgentRegistry(autodiscover=True)):
        as_json = run("plugins", "--json")
        table = run("plugins")
        agents = run("agents")
    records = {r["distribution"]: r for r in json.loads(as_json.stdout)}
    assert records["frontdesk-sales"]["status"] == "loaded"
    assert records["frontdesk-sales"]["agents"] == ["sales"]
    assert records["frontdesk-sales"]["error"] is None
    assert records["frontdesk-broken"]["status"] == "failed"
    assert records["frontdesk-broken"]["error"] == "ImportError: gone"
    assert records["frontdesk-skipped"]["status"] == "blocked"
    assert table.exit_code == 0
    assert "ImportError: gone" in table.stdout
    assert "blocked" in table.stdout
    assert agents.exit_code == 0
    assert "1 agent package(s) failed to load: frontdesk-broken" in agents.stderr


def test_conflicting_agent_is_reported(make_distribution: DistributionMaker) -> None:
    make_distribution(
        "frontdesk-fork",
        modules={"fork_agents": good_package("sales")},
        agents={"fork": "fork_agents"},
    )
    with use_default_registry(AgentRegistry(autodiscover=True)):
        listing = run("agents", "--json")
        shown = run("agents", "show", "sales")
    conflict = next(r for r in json.loads(listing.stdout) if r["id"] == "sales")
    assert conflict["status"] == "conflict"
    assert sorted(conflict["claimed_by"]) == ["frontdesk-fork 1.0", "frontdesk-sales 0.1.0"]
    assert shown.exit_code == 1
    assert "claimed by more than one source" in shown.stderr


def test_strict_failure_is_one_clean_line(
    make_distribution: DistributionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_distribution(
        "frontdesk-broken", modules={"broken_agents": "1/0\n"}, agents={"broken": "broken_agents"}
    )
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", "1")
    with use_default_registry(AgentRegistry(autodiscover=True)):
        result = run("agents")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: agent package frontdesk-broken 1.0")
    assert len(result.stderr.splitlines()) == 1


def test_version() -> None:
    result = run("--version")
    assert result.stdout.strip() == f"frontdesk, version {__version__}"


def test_help_lists_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "agents" in result.stdout
    assert "plugins" in result.stdout


def test_agent_data_is_printed_as_text_not_markup(
    registry: AgentRegistry, make_agent: MakeAgent
) -> None:
    registry.register(make_agent(id="ventas", name="Ventas [/es] [bold]"))
    with use_default_registry(registry):
        listing = run("agents")
        shown = run("agents", "show", "ventas")
    assert listing.exit_code == 0, listing.output
    assert "Ventas [/es] [bold]" in listing.stdout
    assert shown.exit_code == 0, shown.output
    assert "Ventas [/es] [bold] (ventas)" in shown.stdout
