"""AgentConfig: building, loading from data and TOML, and every validation rule."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from frontdesk import (
    AgentConfig,
    ConfigProblem,
    DoubleTexting,
    InvalidAgentConfigError,
    ModelConfig,
    RunsConfig,
    StateMachine,
    Thresholds,
)

from .conftest import agent_data

MakeAgent = Callable[..., AgentConfig]


def problems_of(excinfo: pytest.ExceptionInfo[InvalidAgentConfigError]) -> dict[str, str]:
    return {p.field: p.message for p in excinfo.value.problems}


def test_from_dict_builds_equal_config_to_code(make_agent: MakeAgent) -> None:
    config = AgentConfig.from_dict(agent_data())
    assert config.id == "echo"
    assert config.orchestrator.temperature == 0.3
    assert config.states.transitions["greeting"] == ("helping", "done")
    assert config.thresholds == Thresholds(proceed=0.8, reanalyze=0.6, clarify=0.3)
    assert config.tools == ("lookup",)
    assert AgentConfig.from_dict(config.to_dict()) == config


def test_defaults_fill_optional_fields() -> None:
    data = agent_data()
    for key in ("description", "tools", "thresholds"):
        del data[key]
    config = AgentConfig.from_dict(data)
    assert config.description == ""
    assert config.tools == ()
    assert config.thresholds == Thresholds()
    assert config.source is None


def test_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        """
        id = "toml-agent"
        name = "From TOML"
        [intent_detector]
        model = "small"
        system_prompt = '''
        Classify the message. Ñandú welcome.
        '''
        [orchestrator]
        model = "large"
        system_prompt = "Answer."
        max_tokens = 300
        [states]
        initial = "a"
        modes = ["a", "b"]
        [states.transitions]
        a = ["b"]
        """,
        encoding="utf-8",
    )
    config = AgentConfig.from_toml(path)
    assert config.id == "toml-agent"
    assert "Ñandú" in config.intent_detector.system_prompt
    assert config.orchestrator.max_tokens == 300
    assert config.states.can_move("a", "b")
    assert not config.states.can_move("b", "a")
    assert config.states.can_move("b", "b")


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('id = "x"\nname = \n', encoding="utf-8")
    with pytest.raises(InvalidAgentConfigError) as excinfo:
        AgentConfig.from_toml(path)
    (problem,) = excinfo.value.problems
    assert problem.field == "(file)"
    assert problem.message.startswith(f"{path} is not valid TOML: ")
    assert "line 2" in problem.message


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        pytest.param({"id": ""}, "id", "must not be empty", id="empty-id"),
        pytest.param({"name": "  "}, "name", "must not be empty", id="blank-name"),
        pytest.param(
            {"handoff_message": " "}, "handoff_message", "must not be empty", id="blank-handoff"
        ),
        pytest.param({"id": "Sales Bot"}, "id", "not a valid agent id", id="id-not-slug"),
        pytest.param({"id": "9lives"}, "id", "not a valid agent id", id="id-starts-with-digit"),
        pytest.param({"id": "a" * 65}, "id", "at most 64", id="id-too-long"),
        pytest.param(
            {"intent_detector": ModelConfig(model="m", system_prompt="")},
            "intent_detector.system_prompt",
            "must not be empty",
            id="no-intent-prompt",
        ),
        pytest.param(
            {"orchestrator": ModelConfig(model="m", system_prompt=" \n")},
            "orchestrator.system_prompt",
            "must not be empty",
            id="no-orchestrator-prompt",
        ),
        pytest.param(
            {"orchestrator": ModelConfig(model="", system_prompt="p")},
            "orchestrator.model",
            "must not be empty",
            id="no-model",
        ),
        pytest.param(
            {"orchestrator": ModelConfig(model="m", system_prompt="p", max_tokens=0)},
            "orchestrator.max_tokens",
            "positive integer",
            id="max-tokens-zero",
        ),
        pytest.param(
            {"orchestrator": ModelConfig(model="m", system_prompt="p", temperature=3.0)},
            "orchestrator.temperature",
            "between 0 and 2",
            id="temperature-high",
        ),
        pytest.param(
            {"states": StateMachine(initial="nowhere", modes=("a", "b"))},
            "states.initial",
            "'nowhere' is not one of the modes (a, b)",
            id="unknown-initial-mode",
        ),
        pytest.param(
            {"states": StateMachine(initial="a", modes=("a",), transitions={"a": ("z",)})},
            "states.transitions.a",
            "moves to 'z'",
            id="transition-to-undeclared",
        ),
        pytest.param(
            {"states": StateMachine(initial="a", modes=("a",), transitions={"q": ("a",)})},
            "states.transitions.q",
            "'q' is not one of the modes",
            id="transition-from-undeclared",
        ),
        pytest.param(
            {"states": StateMachine(initial="a", modes=())},
            "states.modes",
            "at least one mode",
            id="no-modes",
        ),
        pytest.param(
            {"states": StateMachine(initial="a", modes=("a", "a"))},
            "states.modes",
            "more than once",
            id="repeated-mode",
        ),
        pytest.param(
            {"states": StateMachine(initial="A B", modes=("A B",))},
            "states.modes[0]",
            "not a valid mode name",
            id="mode-not-slug",
        ),
        pytest.param(
            {"thresholds": Thresholds(proceed=0.5, reanalyze=0.6, clarify=0.3)},
            "thresholds.proceed",
            "greater than thresholds.reanalyze",
            id="thresholds-out-of-order",
        ),
        pytest.param(
            {"thresholds": Thresholds(proceed=0.9, reanalyze=0.2, clarify=0.2)},
            "thresholds.reanalyze",
            "greater than thresholds.clarify",
            id="thresholds-equal",
        ),
        pytest.param(
            {"thresholds": Thresholds(proceed=1.5)},
            "thresholds.proceed",
            "between 0 and 1",
            id="threshold-above-one",
        ),
        pytest.param(
            {"thresholds": Thresholds(clarify=-0.1)},
            "thresholds.clarify",
            "between 0 and 1",
            id="threshold-negative",
        ),
        pytest.param({"tools": ("a", "a")}, "tools", "more than once", id="repeated-tool"),
        pytest.param({"tools": ("",)}, "tools[0]", "must not be empty", id="empty-tool"),
    ],
)
def test_each_rule_names_its_field(
    make_agent: MakeAgent, overrides: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidAgentConfigError) as excinfo:
        make_agent(**overrides)
    problems = problems_of(excinfo)
    assert field in problems, problems
    assert fragment in problems[field]
    assert field in str(excinfo.value)


def test_every_problem_is_reported_at_once(make_agent: MakeAgent) -> None:
    with pytest.raises(InvalidAgentConfigError) as excinfo:
        make_agent(
            id="Bad Id",
            intent_detector=ModelConfig(model="m", system_prompt=""),
            states=StateMachine(initial="x", modes=("a",)),
            thresholds=Thresholds(proceed=0.1),
        )
    assert set(problems_of(excinfo)) == {
        "id",
        "intent_detector.system_prompt",
        "states.initial",
        "thresholds.proceed",
    }
    assert excinfo.value.agent_id == "Bad Id"
    assert "4 problems" in str(excinfo.value)


def test_error_is_a_value_error_and_names_the_agent(make_agent: MakeAgent) -> None:
    with pytest.raises(ValueError, match="invalid agent 'echo'"):
        make_agent(name="")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            {k: v for k, v in agent_data().items() if k != "id"},
            {"id": "is required"},
            id="missing-id",
        ),
        pytest.param(
            {k: v for k, v in agent_data().items() if k != "name"},
            {"name": "is required"},
            id="missing-name",
        ),
        pytest.param(
            agent_data(intent_detector={"model": "m"}),
            {"intent_detector.system_prompt": "is required"},
            id="missing-intent-prompt",
        ),
        pytest.param(
            {k: v for k, v in agent_data().items() if k != "orchestrator"},
            {"orchestrator": "is required"},
            id="missing-orchestrator",
        ),
        pytest.param(
            agent_data(tools="lookup"),
            {"tools": "must be a list of strings, got str"},
            id="tools-as-string",
        ),
        pytest.param(
            agent_data(tools=["a", 3]),
            {"tools": "not strings: 3"},
            id="tool-not-string",
        ),
        pytest.param(agent_data(name=7), {"name": "must be a string, got int"}, id="name-int"),
        pytest.param(
            agent_data(thresholds={"proceed": True}),
            {"thresholds.proceed": "must be a number, got a boolean"},
            id="threshold-bool",
        ),
        pytest.param(
            agent_data(colour="red"),
            {"colour": "is not a known field"},
            id="unknown-key",
        ),
        pytest.param(
            agent_data(orchestrator={"model": "m", "system_prompt": "p", "temprature": 1}),
            {"orchestrator.temprature": "is not a known field"},
            id="misspelt-nested-key",
        ),
    ],
)
def test_from_dict_reports_structure_problems(
    data: dict[str, Any], expected: dict[str, str]
) -> None:
    with pytest.raises(InvalidAgentConfigError) as excinfo:
        AgentConfig.from_dict(data)
    problems = problems_of(excinfo)
    for field, fragment in expected.items():
        assert field in problems, problems
        assert fragment in problems[field]


def test_from_dict_reports_all_structure_problems_together() -> None:
    data = agent_data(name=1, tools="x", extra=True)
    del data["orchestrator"]
    with pytest.raises(InvalidAgentConfigError) as excinfo:
        AgentConfig.from_dict(data)
    assert set(problems_of(excinfo)) == {"name", "tools", "extra", "orchestrator"}
    assert excinfo.value.agent_id == "echo"


def test_from_dict_applies_the_rules_after_structuring() -> None:
    data = agent_data(states={"initial": "zzz", "modes": ["a"]})
    with pytest.raises(InvalidAgentConfigError) as excinfo:
        AgentConfig.from_dict(data)
    assert problems_of(excinfo) == {"states.initial": "'zzz' is not one of the modes (a)"}


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(InvalidAgentConfigError, match="expected a table"):
        AgentConfig.from_dict(["not", "a", "table"])  # type: ignore[arg-type]


def test_error_with_distribution_names_the_package(make_agent: MakeAgent) -> None:
    error = InvalidAgentConfigError("x", [ConfigProblem("name", "must not be empty")])
    named = error.with_distribution("frontdesk-x")
    assert named.distribution == "frontdesk-x"
    assert "from distribution 'frontdesk-x'" in str(named)
    assert named.problems == error.problems


@pytest.mark.parametrize(
    ("confidence", "action"),
    [(0.95, "proceed"), (0.85, "proceed"), (0.7, "reanalyze"), (0.5, "clarify"), (0.1, "handoff")],
)
def test_thresholds_decide(confidence: float, action: str) -> None:
    assert Thresholds(proceed=0.85, reanalyze=0.65, clarify=0.4).decide(confidence) == action


def test_configs_are_frozen(make_agent: MakeAgent) -> None:
    config = make_agent()
    with pytest.raises(AttributeError):
        config.id = "other"  # type: ignore[misc]


def test_handoff_message_has_a_default_and_loads_from_data(make_agent: MakeAgent) -> None:
    assert "person" in make_agent().handoff_message
    custom = AgentConfig.from_dict(agent_data(handoff_message="Te paso con Lucía."))
    assert custom.handoff_message == "Te paso con Lucía."
    assert AgentConfig.from_dict(custom.to_dict()) == custom


# -- runs ------------------------------------------------------------------------------------


def test_runs_default_to_merge(make_agent: MakeAgent) -> None:
    runs = make_agent().runs
    assert runs == RunsConfig()
    assert runs.policy is DoubleTexting.MERGE
    assert runs.timeout > 0
    assert runs.history_turns > 0


def test_runs_from_toml(tmp_path: Path) -> None:
    data = agent_data()
    path = tmp_path / "agent.toml"
    path.write_text(
        'id = "echo"\nname = "Echo"\n'
        '[intent_detector]\nmodel = "small"\nsystem_prompt = "Classify."\n'
        '[orchestrator]\nmodel = "large"\nsystem_prompt = "Answer."\n'
        '[states]\ninitial = "greeting"\nmodes = ["greeting"]\n'
        '[runs]\ndouble_texting = "enqueue"\ntimeout = 30\nhistory_turns = 5\n',
        encoding="utf-8",
    )
    config = AgentConfig.from_toml(path)
    assert config.runs == RunsConfig(double_texting="enqueue", timeout=30, history_turns=5)
    assert config.runs.policy is DoubleTexting.ENQUEUE
    assert AgentConfig.from_dict(config.to_dict()) == config
    assert data  # the shared data helper stays untouched


def test_every_bad_runs_field_is_reported_at_once() -> None:
    bad = {"double_texting": "rollback", "timeout": 0, "history_turns": -1}
    with pytest.raises(InvalidAgentConfigError) as excinfo:
        AgentConfig.from_dict(agent_data(runs=bad))
    found = problems_of(excinfo)
    assert "merge, enqueue, interrupt, reject" in found["runs.double_texting"]
    assert "above 0" in found["runs.timeout"]
    assert "from 0 to" in found["runs.history_turns"]


@pytest.mark.parametrize(
    ("runs", "field"),
    [
        ({"timeout": True}, "runs.timeout"),
        ({"timeout": float("nan")}, "runs.timeout"),
        ({"timeout": 10**9}, "runs.timeout"),
        ({"history_turns": 2.5}, "runs.history_turns"),
        ({"history_turns": 5000}, "runs.history_turns"),
        ({"double_texting": 1}, "runs.double_texting"),
        ({"unknown": 1}, "runs.unknown"),
    ],
)
def test_bad_runs_values(runs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidAgentConfigError) as excinfo:
        AgentConfig.from_dict(agent_data(runs=runs))
    assert field in problems_of(excinfo)


def test_runs_config_built_alone_checks_itself() -> None:
    with pytest.raises(InvalidAgentConfigError) as excinfo:
        RunsConfig(double_texting="drop", timeout=-1, history_turns=-5)
    found = problems_of(excinfo)
    assert set(found) == {"runs.double_texting", "runs.timeout", "runs.history_turns"}
    assert "merge, enqueue, interrupt, reject" in found["runs.double_texting"]


def test_runs_problems_come_with_the_agents_other_problems() -> None:
    with pytest.raises(InvalidAgentConfigError) as excinfo:
        AgentConfig.from_dict(agent_data(id="Bad Id", runs={"timeout": -1}))
    assert {"id", "runs.timeout"} <= set(problems_of(excinfo))
