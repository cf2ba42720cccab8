"""The `frontdesk` command, through click's test runner."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner, Result

from frontdesk import AgentConfig, AgentRegistry, StateMachine, __version__
from frontdesk.cli import create_cli
from frontdesk.registry import PluginStatus, use_default_registry

from .conftest import DistributionMaker, InstalledAgents
from .test_registry import good_package, tools_package

MakeAgent = Callable[..., AgentConfig]


@pytest.fixture
def discovered(installed_agents: InstalledAgents) -> Iterator[AgentRegistry]:
    """A fresh auto-discovering registry as the default, as in a new process: once with
    the workspace's agent packages, once with other agent packages installed besides."""
    with use_default_registry(AgentRegistry(autodiscover=True)) as registry:
        yield registry


def failed_packages(registry: AgentRegistry) -> list[str]:
    """The agent packages that failed to load: any a user has installed, and ours in tests."""
    return [p.distribution for p in registry.plugins if p.status is PluginStatus.FAILED]


def failed_note(failed: list[str], prefix: str = "") -> str:
    packages = "1 agent package" if len(failed) == 1 else f"{len(failed)} agent packages"
    return f"{prefix}{packages} failed to load: {', '.join(failed)} (see `frontdesk plugins`)"


def run(*args: str) -> Result:
    return CliRunner().invoke(create_cli(), list(args), prog_name="frontdesk")


def test_agents_lists_installed_agents(
    discovered: AgentRegistry, installed_agents: InstalledAgents
) -> None:
    result = run("agents")
    assert result.exit_code == 0, result.output
    lines = {
        line.split()[0]: line.split() for line in result.stdout.splitlines()[1:] if line.strip()
    }
    assert lines["sales"][-2:] == ["frontdesk-sales", "0.1.0"]
    assert lines["support"][-2:] == ["frontdesk-support", "0.1.0"]
    failed = failed_packages(discovered)
    if installed_agents.others:
        assert lines["concierge"][-2:] == ["acme-concierge", "0.1.0"]
        assert "acme-broken-agents" in failed
    # Each package that failed to load is warned about, and nothing else.
    assert result.stderr.splitlines() == ([failed_note(failed, "warning: ")] if failed else [])


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


def test_agents_show_unknown_id_fails_in_one_line(
    discovered: AgentRegistry, installed_agents: InstalledAgents
) -> None:
    result = run("agents", "show", "nope")
    assert result.exit_code == 1
    assert result.stdout == ""
    available = discovered.list_ids()  # sales and support, and any other installed agent
    assert {"sales", "support"} <= set(available)
    expected = (
        f"Error: no agent 'nope' is registered; available agents: {', '.join(available)}. "
        "Install the package that provides it, or register it with AgentRegistry.register()."
    )
    failed = failed_packages(discovered)
    if installed_agents.others:
        assert "acme-broken-agents" in failed
    if failed:
        expected += " " + failed_note(failed) + "."
    assert result.stderr.splitlines() == [expected]


def test_plugins_reports_loaded_failed_and_blocked(
    make_distribution: DistributionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = make_distribution(
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
    where = broken.parent / "broken_agents.py"
    assert records["frontdesk-broken"]["error"] == f"ImportError: gone (at {where}:1)"
    assert records["frontdesk-skipped"]["status"] == "blocked"
    assert table.exit_code == 0
    assert "ImportError: gone" in table.stdout
    assert "blocked" in table.stdout
    assert agents.exit_code == 0
    assert "1 agent package failed to load: frontdesk-broken" in agents.stderr


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


# -- error paths --------------------------------------------------------------------------------

TWO_PROBLEMS = """
from frontdesk import AgentConfig, ModelConfig, StateMachine, Thresholds, hookimpl

@hookimpl
def register_agents():
    return [
        AgentConfig(
            id="Bad Id",
            name="Bad",
            intent_detector=ModelConfig(model="m", system_prompt="Classify."),
            orchestrator=ModelConfig(model="m", system_prompt="Answer."),
            states=StateMachine(initial="nowhere", modes=("chat",)),
        )
    ]
"""


def test_strict_failure_prints_every_problem(
    make_distribution: DistributionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_distribution(
        "frontdesk-broken",
        modules={"broken_agents": TWO_PROBLEMS},
        agents={"broken": "broken_agents"},
    )
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", "1")
    with use_default_registry(AgentRegistry(autodiscover=True)):
        result = run("agents")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "(2 problems): id: 'Bad Id' is not a valid agent id" in line
    assert "; states.initial: " in line
    assert line.endswith("or unset FRONTDESK_STRICT_PLUGINS to skip it.")


def test_load_filter_naming_no_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDESK_LOAD_PLUGINS", "frontdesk-nope")
    with use_default_registry(AgentRegistry(autodiscover=True)):
        result = run("agents")
    assert result.exit_code == 0
    assert result.stdout.startswith(
        "No agents loaded: FRONTDESK_LOAD_PLUGINS is set, and only these agent packages may "
        "load: frontdesk-nope."
    )
    assert result.stderr.splitlines() == [
        "warning: FRONTDESK_LOAD_PLUGINS names 'frontdesk-nope', which is not an installed "
        "agent package (it lists distribution names, as `frontdesk plugins` shows them)"
    ]


def test_load_filter_naming_no_installed_package_is_an_error_when_strict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FRONTDESK_LOAD_PLUGINS", "sales")  # an agent id, not a distribution
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", "1")
    with use_default_registry(AgentRegistry(autodiscover=True)):
        result = run("plugins")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: FRONTDESK_LOAD_PLUGINS names sales, not an installed agent")
    assert "'sales' is an entry point of frontdesk-sales" in line


def test_agents_show_an_agent_whose_package_failed(make_distribution: DistributionMaker) -> None:
    broken = make_distribution(
        "frontdesk-billing",
        modules={"billing_agents": "raise ImportError('stripe is not installed')\n"},
        agents={"billing": "billing_agents"},
    )
    with use_default_registry(AgentRegistry(autodiscover=True)):
        result = run("agents", "show", "billing")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: agent 'billing' is not available: its package frontdesk-billing 1.0 failed to "
        f"load: ImportError: stripe is not installed (at {broken.parent / 'billing_agents.py'}:1)."
        " Fix or reinstall it (`frontdesk plugins` shows every package's status)."
    ]


def test_agents_show_unknown_id_mentions_failed_packages(
    make_distribution: DistributionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_distribution(
        "frontdesk-broken",
        modules={"broken_agents": "raise ImportError('gone')\n"},
        agents={"broken": "broken_agents"},
    )
    # Only these, whatever else is installed (another broken package would be counted).
    monkeypatch.setenv(
        "FRONTDESK_LOAD_PLUGINS", "frontdesk-sales,frontdesk-support,frontdesk-broken"
    )
    with use_default_registry(AgentRegistry(autodiscover=True)):
        result = run("agents", "show", "nope")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: no agent 'nope' is registered")
    assert line.endswith(
        "1 agent package failed to load: frontdesk-broken (see `frontdesk plugins`)."
    )


def test_conflicts_show_in_every_listing(
    make_distribution: DistributionMaker, registry: AgentRegistry
) -> None:
    make_distribution(
        "frontdesk-fork",
        modules={"fork_agents": good_package("sales")},
        agents={"fork": "fork_agents"},
    )
    with use_default_registry(AgentRegistry(autodiscover=True)):
        agents = run("agents")
        plugins = run("plugins")
        plugins_json = run("plugins", "--json")
        demo = run("demo", "--conversations", "2", "--seed", "1")
    sales_row = next(line for line in agents.stdout.splitlines() if line.split()[0] == "sales")
    assert "(unusable: claimed twice)" in sales_row
    assert "frontdesk-fork 1.0 and frontdesk-sales 0.1.0" in sales_row
    fork_row = next(line for line in plugins.stdout.splitlines() if "frontdesk-fork" in line)
    assert "sales (conflict)" in fork_row
    assert "'sales' is also claimed by frontdesk-sales 0.1.0" in fork_row
    records = {r["distribution"]: r for r in json.loads(plugins_json.stdout)}
    assert records["frontdesk-fork"]["conflicts"] == ["sales"]
    assert records["frontdesk-support"]["conflicts"] == []
    for result in (agents, plugins, demo):
        assert "warning: agent 'sales' is unusable: claimed by" in result.stderr
    assert demo.exit_code == 0, demo.output


@pytest.fixture
def root_log_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    yield
    root.setLevel(level)


@pytest.mark.usefixtures("root_log_level")
@pytest.mark.parametrize(
    "args",
    [
        ["-v", "agents"],
        ["agents", "-v"],
        ["agents", "list", "--verbose"],
        ["agents", "show", "sales", "-v"],
        ["plugins", "-v"],
        ["db", "sql", "-v"],
    ],
    ids=["before", "after", "after-list", "after-show", "plugins", "db"],
)
def test_verbose_anywhere(
    discovered: AgentRegistry, caplog: pytest.LogCaptureFixture, args: list[str]
) -> None:
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    if "db" not in args:
        assert any("loaded agents sales" in r.getMessage() for r in caplog.records)


@pytest.mark.usefixtures("root_log_level")
def test_not_verbose_without_the_flag(
    discovered: AgentRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    assert run("agents").exit_code == 0
    assert not any(r.levelno == logging.DEBUG for r in caplog.records)


def test_agents_show_keeps_long_lines_whole_when_piped(
    registry: AgentRegistry, make_agent: MakeAgent
) -> None:
    modes = tuple(f"collecting_delivery_detail_{i}" for i in range(6))
    registry.register(
        make_agent(
            id="long",
            description=" ".join(["A description longer than eighty characters."] * 3),
            states=StateMachine(initial=modes[0], modes=modes, transitions={modes[0]: modes[1:]}),
        )
    )
    with use_default_registry(registry):
        result = run("agents", "show", "long")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"  {modes[0]} -> {', '.join(modes[1:])}" in lines
    assert " ".join(["A description longer than eighty characters."] * 3) in lines


def test_agents_show_lists_tools_and_flags_missing_ones(
    make_distribution: DistributionMaker,
) -> None:
    make_distribution(
        "frontdesk-shop",
        modules={"shop_agents": tools_package("shop", "shop", "check_stock")},
        agents={"shop": "shop_agents"},
    )
    with use_default_registry(AgentRegistry(autodiscover=True)):
        shown = run("agents", "show", "shop")
        as_json = run("agents", "show", "shop", "--json")
        sales = run("agents", "show", "sales")
        plugins = run("plugins", "--json")
        table = run("plugins")

    assert shown.exit_code == 0, shown.output
    assert "check_stock, create_order (not implemented)" in shown.stdout
    assert "names tools nothing implements: create_order" in shown.stderr
    assert "Hand-off message" in shown.stdout
    assert json.loads(as_json.stdout)["missing_tools"] == ["create_order"]
    assert "not implemented" not in sales.stdout
    assert sales.stderr == ""
    records = {r["distribution"]: r for r in json.loads(plugins.stdout)}
    assert records["frontdesk-shop"]["tools"] == ["check_stock"]
    assert records["frontdesk-shop"]["missing_tools"] == {"shop": ["create_order"]}
    assert records["frontdesk-sales"]["missing_tools"] == {}
    assert "agent 'shop' (frontdesk-shop) names tools nothing implements" in table.stderr


@pytest.mark.parametrize("value", ["on", "TRUE", " yes ", "1"])
def test_strict_plugins_takes_the_usual_yes_words(
    value: str, make_distribution: DistributionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_distribution(
        "frontdesk-broken", modules={"broken_agents": "1/0\n"}, agents={"broken": "broken_agents"}
    )
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", value)
    with use_default_registry(AgentRegistry(autodiscover=True)):
        result = run("agents")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: agent package frontdesk-broken 1.0")


@pytest.mark.parametrize("value", ["off", "False", "no", "0", ""])
def test_strict_plugins_takes_the_usual_no_words(
    value: str, discovered: AgentRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", value)
    with use_default_registry(AgentRegistry(autodiscover=True)):
        result = run("agents")
    assert result.exit_code == 0, result.output
    assert "sales" in result.stdout


@pytest.mark.parametrize("value", ["maybe", "strict", "2"])
def test_strict_plugins_refuses_anything_else_in_one_line(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", value)
    with use_default_registry(AgentRegistry(autodiscover=True)):
        result = run("agents")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: FRONTDESK_STRICT_PLUGINS={value!r} is neither yes nor no: use 1, true, yes "
        "or on to make a package that fails to load an error; 0, false, no, off or empty for "
        "a warning.\n"
    )


FRONTDESK = [sys.executable, "-c", "from frontdesk.cli import main; main()"]


@pytest.mark.parametrize(
    "args",
    [("agents", "show", "sales"), ("agents",), ("demo", "--conversations", "3")],
    ids=" ".join,
)
def test_a_reader_that_goes_away_ends_the_output_quietly(args: tuple[str, ...]) -> None:
    # `frontdesk ... | head -1`, with the reader gone before anything is written, so that
    # the very first write meets the closed pipe.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(  # noqa: S603 - this interpreter, the frontdesk CLI
            [*FRONTDESK, *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            check=False,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert result.stderr.decode() == ""
    assert result.returncode == 141  # 128 + SIGPIPE, as a shell reports `yes | head -1`


def test_head_reads_the_first_line() -> None:
    # The same through a shell, as a user types it; the status is the writer's own.
    script = " ".join(shlex.quote(word) for word in FRONTDESK) + " agents show sales | head -1"
    result = subprocess.run(  # noqa: S603 - a fixed pipeline of the frontdesk CLI
        ["bash", "-c", script + '; echo "status ${PIPESTATUS[0]}"'],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    first, status = result.stdout.splitlines()
    assert first.startswith("Sales assistant (sales) from frontdesk-sales")
    # 141 when head was gone before the rest was written, 0 when it was all written first.
    assert status in {"status 141", "status 0"}
    assert result.stderr == ""
