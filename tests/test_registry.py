"""AgentRegistry: registering in code, and discovery from real installed distributions."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from importlib.metadata import entry_points

import pytest

import frontdesk
from frontdesk import (
    AgentConfig,
    AgentNotFoundError,
    AgentRegistry,
    DuplicateAgentError,
    PluginLoadError,
    PluginStatus,
    UnknownPluginError,
    ValidationError,
)
from frontdesk.registry import ENTRY_POINT_GROUP, get_default_registry, use_default_registry

from .conftest import DistributionMaker

MakeAgent = Callable[..., AgentConfig]

GOOD_PACKAGE = """
from frontdesk import AgentConfig, ModelConfig, StateMachine, hookimpl

def _agent(agent_id):
    return AgentConfig(
        id=agent_id,
        name=agent_id.title(),
        intent_detector=ModelConfig(model="m", system_prompt="Classify."),
        orchestrator=ModelConfig(model="m", system_prompt="Answer."),
        states=StateMachine(initial="chat", modes=("chat",)),
    )

@hookimpl
def register_agents():
    return [_agent(i) for i in {ids!r}]
"""


def good_package(*ids: str) -> str:
    return GOOD_PACKAGE.format(ids=list(ids))


# -- in code ---------------------------------------------------------------------------------


def test_register_get_has_list(registry: AgentRegistry, make_agent: MakeAgent) -> None:
    assert len(registry) == 0
    echo = registry.register(make_agent(id="echo"))
    registry.register(make_agent(id="alpha"))
    assert registry.get("echo") is echo
    assert registry.has("echo")
    assert "alpha" in registry
    assert not registry.has("nope")
    assert registry.list_ids() == ["alpha", "echo"]
    assert [c.id for c in registry.list()] == ["alpha", "echo"]
    assert [c.id for c in registry] == ["alpha", "echo"]
    assert len(registry) == 2


def test_get_unknown_lists_what_exists(registry: AgentRegistry, make_agent: MakeAgent) -> None:
    registry.register(make_agent(id="echo"))
    with pytest.raises(AgentNotFoundError) as excinfo:
        registry.get("sales")
    assert excinfo.value.agent_id == "sales"
    assert excinfo.value.available == ("echo",)
    assert "available agents: echo" in str(excinfo.value)


def test_register_twice_is_refused(registry: AgentRegistry, make_agent: MakeAgent) -> None:
    registry.register(make_agent())
    with pytest.raises(DuplicateAgentError, match="'echo'"):
        registry.register(make_agent(name="Other"))
    replaced = registry.register(make_agent(name="Other"), replace=True)
    assert registry.get("echo") is replaced


def test_register_rejects_non_configs(registry: AgentRegistry) -> None:
    with pytest.raises(ValidationError, match="takes an AgentConfig"):
        registry.register({"id": "x"})  # type: ignore[arg-type]


def test_unregister_and_clear(registry: AgentRegistry, make_agent: MakeAgent) -> None:
    registry.register(make_agent(id="a"))
    registry.register(make_agent(id="b"))
    assert registry.unregister("a") is True
    assert registry.unregister("a") is False
    registry.clear()
    assert len(registry) == 0


def test_register_logs(
    registry: AgentRegistry, make_agent: MakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="frontdesk.registry"):
        registry.register(make_agent())
        registry.unregister("echo")
    assert [r.getMessage() for r in caplog.records] == [
        "registered agent 'echo' from (registered in code)",
        "unregistered agent 'echo'",
    ]


def test_code_registry_does_not_scan(registry: AgentRegistry) -> None:
    assert registry.plugins == ()
    assert registry.list() == []


def test_default_registry_can_be_swapped(registry: AgentRegistry) -> None:
    assert get_default_registry() is frontdesk.agent_registry
    with use_default_registry(registry) as swapped:
        assert get_default_registry() is swapped is registry
    assert get_default_registry() is frontdesk.agent_registry


# -- discovery -------------------------------------------------------------------------------


def test_discovers_the_workspace_agent_packages() -> None:
    registry = AgentRegistry(autodiscover=True)
    sales = registry.get("sales")
    support = registry.get("support")
    assert sales.source is not None
    assert (sales.source.distribution, sales.source.version) == ("frontdesk-sales", "0.1.0")
    assert support.source is not None
    assert support.source.distribution == "frontdesk-support"
    loaded = {p.distribution: p for p in registry.plugins}
    assert loaded["frontdesk-sales"].status is PluginStatus.LOADED
    assert loaded["frontdesk-sales"].agent_ids == ("sales",)
    assert loaded["frontdesk-support"].entry_point == "support = frontdesk_support.agent"


def test_autodiscovery_runs_once(make_distribution: DistributionMaker) -> None:
    registry = AgentRegistry(autodiscover=True)
    assert "late" not in registry
    make_distribution(
        "frontdesk-late",
        modules={"late_agents": good_package("late")},
        agents={"late": "late_agents"},
    )
    assert "late" not in registry  # the group was scanned once, on first use
    registry.discover()
    assert "late" in registry


def test_package_with_several_agents(make_distribution: DistributionMaker) -> None:
    make_distribution(
        "frontdesk-pair",
        modules={"pair_agents": good_package("one", "two")},
        agents={"pair": "pair_agents"},
    )
    registry = AgentRegistry()
    infos = {p.distribution: p for p in registry.discover()}
    assert infos["frontdesk-pair"].agent_ids == ("one", "two")
    assert registry.get("two").source is not None


@pytest.mark.parametrize(
    ("source", "error"),
    [
        pytest.param(
            "raise ImportError('no module named shiny')\n",
            "ImportError: no module named shiny",
            id="import-fails",
        ),
        pytest.param(
            "def register_agents():\n    return []\n",
            "implements no register_agents hook",
            id="no-hookimpl",
        ),
        pytest.param(
            "from frontdesk import hookimpl\n@hookimpl\ndef register_agent():\n    return []\n",
            "unknown hook 'register_agent'",
            id="misspelt-hook",
        ),
        pytest.param(
            "from frontdesk import hookimpl\n@hookimpl\ndef register_agents():\n    raise RuntimeError('boom')\n",
            "RuntimeError: boom",
            id="hook-raises",
        ),
        pytest.param(
            "from frontdesk import hookimpl\n@hookimpl\ndef register_agents():\n    return None\n",
            "must return a list of AgentConfig",
            id="hook-returns-none",
        ),
        pytest.param(
            "from frontdesk import hookimpl\n@hookimpl\ndef register_agents():\n    return [{'id': 'x'}]\n",
            "returned a dict, expected AgentConfig",
            id="hook-returns-dicts",
        ),
        pytest.param(
            good_package("ok", "ok"),
            "returned agent ok twice",
            id="same-id-twice-in-one-package",
        ),
        pytest.param(
            good_package("Not A Slug"),
            "from distribution 'frontdesk-broken'",
            id="invalid-config",
        ),
    ],
)
def test_broken_package_does_not_take_the_others_down(
    make_distribution: DistributionMaker, source: str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_distribution(
        "frontdesk-broken",
        version="2.0",
        modules={"broken_agents": source},
        agents={"broken": "broken_agents"},
    )
    make_distribution(
        "frontdesk-fine",
        modules={"fine_agents": good_package("fine")},
        agents={"fine": "fine_agents"},
    )
    registry = AgentRegistry()
    with caplog.at_level(logging.WARNING, logger="frontdesk.registry"):
        infos = {p.distribution: p for p in registry.discover()}
    broken = infos["frontdesk-broken"]
    assert broken.status is PluginStatus.FAILED
    assert broken.version == "2.0"
    assert broken.error is not None
    assert error in broken.error
    assert broken.agent_ids == ()
    assert infos["frontdesk-fine"].status is PluginStatus.LOADED
    assert registry.has("fine")
    assert registry.has("sales")
    assert any("frontdesk-broken 2.0 failed to load" in r.getMessage() for r in caplog.records)


def test_invalid_config_names_field_and_distribution(make_distribution: DistributionMaker) -> None:
    make_distribution(
        "frontdesk-broken",
        modules={"broken_agents": good_package("Bad Id")},
        agents={"broken": "broken_agents"},
    )
    [info] = [p for p in AgentRegistry().discover() if p.distribution == "frontdesk-broken"]
    assert info.error is not None
    assert "InvalidAgentConfigError" in info.error
    assert "frontdesk-broken" in info.error
    assert "id: 'Bad Id' is not a valid agent id" in info.error


def test_strict_mode_makes_a_failure_fatal(
    make_distribution: DistributionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_distribution(
        "frontdesk-broken",
        version="3.1",
        modules={"broken_agents": "1/0\n"},
        agents={"broken": "broken_agents"},
    )
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError) as excinfo:
        AgentRegistry().discover()
    assert excinfo.value.distribution == "frontdesk-broken"
    assert excinfo.value.version == "3.1"
    assert isinstance(excinfo.value.__cause__, ZeroDivisionError)
    assert "FRONTDESK_STRICT_PLUGINS" in str(excinfo.value)


def test_duplicate_id_across_distributions(make_distribution: DistributionMaker) -> None:
    make_distribution(
        "frontdesk-sales-fork",
        version="9.9",
        modules={"fork_agents": good_package("sales", "extra")},
        agents={"fork": "fork_agents"},
    )
    registry = AgentRegistry()
    registry.discover()
    with pytest.raises(DuplicateAgentError) as excinfo:
        registry.get("sales")
    assert set(excinfo.value.distributions) == {"frontdesk-sales 0.1.0", "frontdesk-sales-fork 9.9"}
    assert "sales" not in registry.list_ids()
    assert registry.has("sales")
    assert set(registry.conflicts["sales"]) == set(excinfo.value.distributions)
    assert registry.has("extra")  # the rest of both packages is fine
    assert registry.has("support")
    assert registry.unregister("sales") is True
    with pytest.raises(AgentNotFoundError):
        registry.get("sales")


def test_register_in_code_over_discovered_is_refused(make_agent: MakeAgent) -> None:
    registry = AgentRegistry(autodiscover=True)
    with pytest.raises(DuplicateAgentError) as excinfo:
        registry.register(make_agent(id="sales"))
    assert excinfo.value.distributions == ("frontdesk-sales 0.1.0", "(registered in code)")


@pytest.mark.parametrize(
    ("setting", "loaded"),
    [
        pytest.param("", set(), id="empty-loads-none"),
        pytest.param("frontdesk-sales", {"frontdesk-sales"}, id="one"),
        pytest.param(
            " Frontdesk_Support , frontdesk-filtered ",
            {"frontdesk-support", "frontdesk-filtered"},
            id="normalised-names",
        ),
    ],
)
def test_load_filter(
    make_distribution: DistributionMaker,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    loaded: set[str],
) -> None:
    make_distribution(
        "frontdesk-filtered",
        modules={"filtered_agents": good_package("filtered")},
        agents={"filtered": "filtered_agents"},
    )
    monkeypatch.setenv("FRONTDESK_LOAD_PLUGINS", setting)
    registry = AgentRegistry()
    infos = registry.discover()
    statuses = {p.distribution: p.status for p in infos}
    assert {d for d, s in statuses.items() if s is PluginStatus.LOADED} == loaded
    assert {d for d, s in statuses.items() if s is PluginStatus.BLOCKED} == set(statuses) - loaded
    # Nothing blocked was imported.
    assert ("filtered_agents" in sys.modules) == ("frontdesk-filtered" in loaded)


def test_rediscovery_keeps_agents_registered_in_code(
    registry: AgentRegistry, make_agent: MakeAgent
) -> None:
    registry.register(make_agent(id="mine"))
    registry.discover()
    registry.discover()
    assert {"mine", "sales", "support"} <= set(registry.list_ids())


def test_strict_failure_leaves_the_registry_unchanged_and_fails_again(
    make_distribution: DistributionMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_distribution(
        "frontdesk-broken", modules={"broken_agents": "1/0\n"}, agents={"broken": "broken_agents"}
    )
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", "1")
    registry = AgentRegistry(autodiscover=True)
    for _ in range(2):  # not a one-off: a server's every request sees the failure
        with pytest.raises(PluginLoadError):
            registry.list_ids()
    monkeypatch.delenv("FRONTDESK_STRICT_PLUGINS")
    assert {"sales", "support"} <= set(registry.list_ids())


def test_conflict_with_code_clears_when_the_package_goes(
    make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = AgentRegistry()
    mine = registry.register(make_agent(id="sales", name="Mine"))
    registry.discover()
    with pytest.raises(DuplicateAgentError) as excinfo:
        registry.get("sales")
    assert excinfo.value.distributions == ("(registered in code)", "frontdesk-sales 0.1.0")
    monkeypatch.setenv("FRONTDESK_LOAD_PLUGINS", "frontdesk-support")
    registry.discover()
    assert registry.get("sales") is mine
    assert registry.conflicts == {}


# -- tools -----------------------------------------------------------------------------------

TOOLS_PACKAGE = """
from frontdesk import AgentConfig, ModelConfig, StateMachine, Tool, hookimpl

@hookimpl
def register_agents():
    return [
        AgentConfig(
            id={agent_id!r},
            name="Shop",
            intent_detector=ModelConfig(model="m", system_prompt="Classify."),
            orchestrator=ModelConfig(model="m", system_prompt="Answer."),
            states=StateMachine(initial="chat", modes=("chat",)),
            tools=("check_stock", "create_order"),
        )
    ]

@hookimpl
def register_tools():
    return [Tool(name, lambda arguments, context: {tag!r}) for name in {tools!r}]
"""


def tools_package(agent_id: str, tag: str, *tools: str) -> str:
    return TOOLS_PACKAGE.format(agent_id=agent_id, tag=tag, tools=list(tools))


def test_an_agent_gets_the_tools_of_its_own_package(make_distribution: DistributionMaker) -> None:
    make_distribution(
        "frontdesk-shop",
        modules={"shop_agents": tools_package("shop", "shop", "check_stock")},
        agents={"shop": "shop_agents"},
    )
    make_distribution(
        "frontdesk-other",
        modules={"other_agents": tools_package("other", "other", "check_stock", "create_order")},
        agents={"other": "other_agents"},
    )
    registry = AgentRegistry()
    infos = {p.distribution: p for p in registry.discover()}

    assert infos["frontdesk-shop"].tool_names == ("check_stock",)
    assert infos["frontdesk-other"].tool_names == ("check_stock", "create_order")
    shop = registry.tools_for("shop")
    assert list(shop) == ["check_stock"]
    assert shop["check_stock"].function({}, None) == "shop"
    assert registry.missing_tools("shop") == ("create_order",)
    assert registry.missing_tools("other") == ()


def test_a_tool_registered_in_code_wins(make_distribution: DistributionMaker) -> None:
    make_distribution(
        "frontdesk-shop",
        modules={"shop_agents": tools_package("shop", "shop", "check_stock")},
        agents={"shop": "shop_agents"},
    )
    registry = AgentRegistry()
    registry.discover()
    registry.register_tool(frontdesk.Tool("check_stock", lambda arguments, context: "code"))
    registry.register_tool(frontdesk.Tool("create_order", lambda arguments, context: "code"))

    assert {name: t.function({}, None) for name, t in registry.tools_for("shop").items()} == {
        "check_stock": "code",
        "create_order": "code",
    }
    assert registry.missing_tools("shop") == ()
    registry.discover()  # tools registered in code survive a rediscovery
    assert registry.missing_tools("shop") == ()
    assert registry.unregister_tool("create_order") is True
    assert registry.missing_tools("shop") == ("create_order",)


@pytest.mark.parametrize(
    ("hook", "error"),
    [
        ("return None", "must return a list of Tool"),
        ("return ['check_stock']", "returned a str, expected Tool"),
        (
            "return [Tool('t', print), Tool('t', print)]",
            "returned tool t twice",
        ),
    ],
    ids=["none", "names", "twice"],
)
def test_a_broken_register_tools_fails_its_package(
    make_distribution: DistributionMaker, hook: str, error: str
) -> None:
    source = tools_package("shop", "shop").replace(
        "return [Tool(name, lambda arguments, context: 'shop') for name in []]", hook
    )
    make_distribution(
        "frontdesk-shop", modules={"shop_agents": source}, agents={"s": "shop_agents"}
    )
    registry = AgentRegistry()
    [info] = [p for p in registry.discover() if p.distribution == "frontdesk-shop"]

    assert info.status is PluginStatus.FAILED
    assert error in (info.error or "")
    assert not registry.has("shop")


def test_register_tool_takes_tools_only(registry: AgentRegistry) -> None:
    with pytest.raises(ValidationError, match="takes a Tool"):
        registry.register_tool("check_stock")  # type: ignore[arg-type]


# -- errors with context -----------------------------------------------------------------------


def test_hook_error_names_file_and_line(make_distribution: DistributionMaker) -> None:
    dist_info = make_distribution(
        "frontdesk-broken",
        modules={
            "broken_agents": (
                "from frontdesk import hookimpl\n"
                "\n"
                "@hookimpl\n"
                "def register_agents():\n"
                "    settings = {}\n"
                "    return settings['x']\n"
            )
        },
        agents={"broken": "broken_agents"},
    )
    [info] = [p for p in AgentRegistry().discover() if p.distribution == "frontdesk-broken"]
    module = dist_info.parent / "broken_agents.py"
    assert info.error == f"KeyError: 'x' (at {module}:6)"


def test_error_raised_inside_the_standard_library_points_at_the_package(
    make_distribution: DistributionMaker,
) -> None:
    dist_info = make_distribution(
        "frontdesk-broken",
        modules={
            "broken_agents": (
                "import json\n"
                "from frontdesk import hookimpl\n"
                "\n"
                "@hookimpl\n"
                "def register_agents():\n"
                "    return json.loads('{')\n"
            )
        },
        agents={"broken": "broken_agents"},
    )
    [info] = [p for p in AgentRegistry().discover() if p.distribution == "frontdesk-broken"]
    assert info.error is not None
    assert info.error.startswith("JSONDecodeError: ")
    assert info.error.endswith(f"(at {dist_info.parent / 'broken_agents.py'}:6)")


def test_toml_error_in_a_package_names_the_file(make_distribution: DistributionMaker) -> None:
    dist_info = make_distribution(
        "frontdesk-broken",
        modules={
            "broken_agents": (
                "from pathlib import Path\n"
                "from frontdesk import AgentConfig, hookimpl\n"
                "\n"
                "@hookimpl\n"
                "def register_agents():\n"
                "    return [AgentConfig.from_toml(Path(__file__).with_name('broken.toml'))]\n"
            )
        },
        agents={"broken": "broken_agents"},
    )
    toml = dist_info.parent / "broken.toml"
    toml.write_text("id = 'broken'\n[states\n", encoding="utf-8")
    [info] = [p for p in AgentRegistry().discover() if p.distribution == "frontdesk-broken"]
    assert info.error is not None
    assert f"{toml} is not valid TOML" in info.error
    assert f"(at {dist_info.parent / 'broken_agents.py'}:6)" in info.error


@pytest.mark.parametrize(
    ("setting", "unknown", "hint"),
    [
        pytest.param("frontdesk-sales,frontdesk-salse", ("frontdesk-salse",), "", id="typo"),
        pytest.param(
            "frontdesk-support,sales",
            ("sales",),
            "'sales' is an entry point of frontdesk-sales",
            id="agent-id",
        ),
    ],
)
def test_load_filter_naming_what_is_not_installed(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    setting: str,
    unknown: tuple[str, ...],
    hint: str,
) -> None:
    monkeypatch.setenv("FRONTDESK_LOAD_PLUGINS", setting)
    registry = AgentRegistry()
    with caplog.at_level(logging.WARNING, logger="frontdesk.registry"):
        registry.discover()
    assert registry.unknown_plugins == unknown
    (warning,) = [
        r.getMessage() for r in caplog.records if "FRONTDESK_LOAD_PLUGINS" in r.getMessage()
    ]
    assert f"names {unknown[0]}, not an installed agent package" in warning
    assert hint in warning


def test_load_filter_naming_what_is_not_installed_is_fatal_when_strict(
    registry: AgentRegistry, make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register(make_agent(id="mine"))
    monkeypatch.setenv("FRONTDESK_LOAD_PLUGINS", "frontdesk-nope")
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", "1")
    with pytest.raises(UnknownPluginError) as excinfo:
        registry.discover()
    assert excinfo.value.names == ("frontdesk-nope",)
    assert "frontdesk-sales" in excinfo.value.installed
    assert registry.list_ids() == ["mine"]


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        pytest.param(
            None,
            "its package frontdesk-billing 1.0 failed to load: ModuleNotFoundError: No module",
            id="failed",
        ),
        pytest.param(
            "frontdesk-sales",
            "its package frontdesk-billing 1.0 is installed but not loaded: FRONTDESK_LOAD_PLUGINS",
            id="blocked",
        ),
    ],
)
def test_missing_agent_whose_package_did_not_load(
    make_distribution: DistributionMaker,
    monkeypatch: pytest.MonkeyPatch,
    setting: str | None,
    reason: str,
) -> None:
    make_distribution(
        "frontdesk-billing",
        modules={"billing_agents": "import no_such_payment_library\n"},
        agents={"billing": "billing_agents"},
    )
    if setting is not None:
        monkeypatch.setenv("FRONTDESK_LOAD_PLUGINS", setting)
    registry = AgentRegistry()
    registry.discover()
    with pytest.raises(AgentNotFoundError) as excinfo:
        registry.get("billing")
    assert excinfo.value.reason is not None
    assert str(excinfo.value).startswith(f"agent 'billing' is not available: {reason}")


def test_missing_agent_with_no_package_of_that_name_says_install(registry: AgentRegistry) -> None:
    registry.discover()
    with pytest.raises(AgentNotFoundError) as excinfo:
        registry.get("billing")
    assert excinfo.value.reason is None
    assert "Install the package that provides it" in str(excinfo.value)


# -- strict mode leaves the registry as it was -------------------------------------------------


@pytest.fixture
def broken_last(make_distribution: DistributionMaker, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken agent package found after the installed ones, so that a registry changed
    package by package would already hold sales and support when it fails."""
    dist_info = make_distribution(
        "frontdesk-broken", modules={"broken_agents": "1/0\n"}, agents={"broken": "broken_agents"}
    )
    site = str(dist_info.parent)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != site] + [site])
    found = [ep.dist.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.dist]
    assert found[-1] == "frontdesk-broken"
    assert {"frontdesk-sales", "frontdesk-support"} <= set(found[:-1])


@pytest.mark.usefixtures("broken_last")
def test_strict_failure_keeps_exactly_what_was_registered(
    registry: AgentRegistry, make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register(make_agent(id="mine"))
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError):
        registry.discover()
    assert registry.list_ids() == ["mine"]
    assert registry.plugins == ()


@pytest.mark.usefixtures("broken_last")
def test_strict_failure_keeps_an_earlier_discovery(
    registry: AgentRegistry, make_agent: MakeAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry.register(make_agent(id="mine"))
    monkeypatch.setenv("FRONTDESK_LOAD_PLUGINS", "frontdesk-support")
    registry.discover()
    before = (registry.list_ids(), registry.plugins)
    assert "support" in before[0]
    monkeypatch.delenv("FRONTDESK_LOAD_PLUGINS")
    monkeypatch.setenv("FRONTDESK_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError):
        registry.discover()
    assert (registry.list_ids(), registry.plugins) == before
