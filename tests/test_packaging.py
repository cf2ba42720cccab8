"""frontdesk's distributions as users get them: built, then installed with plain pip.

`uv build` makes a wheel and an sdist of each distribution (each wheel built from its
sdist); pip installs the wheels into a fresh virtualenv (`python -m venv`: no uv, no
workspace), where the installed `frontdesk` lists the agents, runs a session, and imports
`frontdesk.testing` without pytest. The README's install commands and its agent package run
as written. Dependencies come from the configured package index, as they would for a user.

Each test takes seconds (builds, virtualenvs, installers): they are marked `slow`. They run
by default and in CI; `pytest -m "not slow"` leaves them out while developing.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.support import readme
from tests.support.packages import ROOT, Virtualenv, clean_env, run_ok, uv_executable, write_tree

pytestmark = pytest.mark.slow

PROJECTS = {
    "frontdesk": ROOT / "core",
    "frontdesk-sales": ROOT / "plugins" / "sales",
    "frontdesk-support": ROOT / "plugins" / "support",
}
# What `frontdesk.testing` serves from the contract suite, which needs pytest; every other
# name it exports must import without pytest.
NEEDS_PYTEST = {"StorageContractTests", "requires"}
NO_PYTEST_HINT = "pip install 'frontdesk[testing]'"

SESSION = """\
import asyncio

import frontdesk
from frontdesk import InMemoryStorage, SessionChange, SessionManager, agent_registry


async def main():
    manager = SessionManager(InMemoryStorage(), workspace_id="shop")
    session, created = await manager.get_or_create_session(
        agent_id="sales", conversation_id="whatsapp:+34600111222", contact_id="+34600111222"
    )
    await manager.add_turn(session.id, role="user", content="Hola, ¿tenéis calcetines?")
    await manager.add_intent_seen(session.id, "product_question")
    states = agent_registry.get("sales").states
    after = states.transitions[states.initial][0]
    result = await manager.retry_on_conflict(
        session.id, lambda current: SessionChange(current_mode=after)
    )
    turns = await manager.get_turns(session.id)
    print(frontdesk.__file__)
    print(created, result.session.current_mode == after, result.session.version)
    print([t.content for t in turns], [i.intent for i in result.session.state.intents_seen])


asyncio.run(main())
"""


def version(project: Path) -> str:
    with (project / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def listed_agents(venv: Virtualenv, **env: str) -> dict[str, dict[str, object]]:
    """`frontdesk agents --json`, run by the virtualenv's own console script."""
    out = venv.run("frontdesk", "agents", "--json", **env).stdout
    return {record["id"]: record for record in json.loads(out)}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`uv build` of every distribution of the workspace: sdists, and wheels built from them."""
    out = tmp_path_factory.mktemp("dist")
    run_ok(uv_executable(), "build", "--all-packages", "--quiet", "--out-dir", out, cwd=ROOT)
    return out


@pytest.fixture(scope="module")
def pip_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Virtualenv:
    """A fresh virtualenv where plain pip installed the three wheels (and their dependencies,
    from the package index); pytest is not among them."""
    venv = Virtualenv.with_pip(tmp_path_factory.mktemp("wheels") / "venv")
    venv.run("pip", "install", "--quiet", *sorted(dist.glob("*.whl")))
    return venv


def test_build_makes_a_wheel_and_an_sdist_of_each_distribution(dist: Path) -> None:
    expected = set()
    for name, project in PROJECTS.items():
        stem = f"{name.replace('-', '_')}-{version(project)}"
        expected |= {f"{stem}-py3-none-any.whl", f"{stem}.tar.gz"}
        # Every file of the package's source tree ships: modules, SQL, agent TOML, py.typed.
        sources = {
            path.relative_to(project / "src").as_posix()
            for path in (project / "src").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        assert sources
        with zipfile.ZipFile(dist / f"{stem}-py3-none-any.whl") as wheel:
            assert sources <= set(wheel.namelist())
        with tarfile.open(dist / f"{stem}.tar.gz") as sdist:
            in_sdist = {member.removeprefix(f"{stem}/") for member in sdist.getnames()}
        assert {f"src/{source}" for source in sources} | {"pyproject.toml", "README.md"} <= in_sdist
    assert {path.name for path in dist.iterdir() if path.name != ".gitignore"} == expected


def test_wheels_install_with_plain_pip_and_list_the_agents(pip_venv: Virtualenv) -> None:
    pip_venv.run("pip", "check")
    agents = listed_agents(pip_venv)
    for name in ("sales", "support"):
        project = PROJECTS[f"frontdesk-{name}"]
        assert agents[name]["distribution"] == f"frontdesk-{name}"
        assert agents[name]["version"] == version(project)


def test_a_short_session_runs_on_the_installed_packages(pip_venv: Virtualenv) -> None:
    location, outcome, contents = pip_venv.python(SESSION).splitlines()
    assert Path(location).is_relative_to(pip_venv.path)  # the wheel, not this checkout
    assert outcome == "True True 4"  # created; mode changed; 3 writes after creation
    assert contents == "['Hola, ¿tenéis calcetines?'] ['product_question']"


def test_frontdesk_testing_imports_without_pytest(pip_venv: Virtualenv) -> None:
    probe = """\
import importlib.util, json
assert importlib.util.find_spec("pytest") is None, "pytest is installed"
import frontdesk.testing as testing
outcome = {}
for name in testing.__all__:
    try:
        getattr(testing, name)
        outcome[name] = "ok"
    except ModuleNotFoundError as exc:
        outcome[name] = str(exc)
print(json.dumps(outcome))
"""
    outcome = json.loads(pip_venv.python(probe))
    assert set(outcome) >= NEEDS_PYTEST
    for name, result in outcome.items():
        if name in NEEDS_PYTEST:
            assert result == (
                "frontdesk's storage contract suite needs pytest, which is not installed: "
                + NO_PYTEST_HINT
            )
        else:
            assert result == "ok", name


def test_readme_sessions_snippet_runs_without_pytest(pip_venv: Virtualenv) -> None:
    # The README's application code uses `make_test_agent` from `frontdesk.testing`.
    [snippet] = [
        block
        for block in readme.code_blocks(readme.section("## Sessions"), "python")
        if "from frontdesk.testing import" in block
    ]
    promised = [line.split("# ", 1)[1] for line in snippet.splitlines() if "print(" in line]
    assert pip_venv.python(snippet).splitlines() == promised


def test_readme_agent_package_installs_with_pip(pip_venv: Virtualenv, tmp_path: Path) -> None:
    text = readme.section("### Writing an agent package")
    [layout] = readme.code_blocks(text, "")
    project = tmp_path / layout.splitlines()[0].rstrip("/")
    files = readme.files_in(text)  # pyproject.toml, agent.py, the agent's TOML: as written
    empty = [line.split()[0] for line in layout.splitlines() if line.endswith("(empty)")]
    assert {"pyproject.toml", *empty} <= set(files) | set(empty)
    write_tree(project, {**files, **dict.fromkeys(empty, "")})
    [pip_install] = readme.commands(text, "pip install")
    assert pip_install == ["pip", "install", f"./{project.name}"]
    pip_venv.run(*pip_install, cwd=tmp_path)

    pip_venv.run("pip", "check")
    agents = listed_agents(pip_venv)
    assert agents["concierge"]["distribution"] == "acme-concierge"
    assert {"sales", "support"} <= set(agents)


def test_readme_pip_install_from_a_clone(tmp_path: Path) -> None:
    [command] = [
        words
        for words in readme.commands(readme.section("## Installing"), "pip install")
        if "./core" in words
    ]
    venv = Virtualenv.with_pip(tmp_path / "venv")
    venv.run(*command, cwd=ROOT)
    assert {"sales", "support"} <= set(listed_agents(venv))


def test_readme_uv_pip_install_from_a_clone(tmp_path: Path) -> None:
    [command] = readme.commands(readme.section("## Installing"), "uv pip install")
    venv = Virtualenv.with_uv(tmp_path / "venv")
    run_ok(uv_executable(), *command[1:], cwd=ROOT, env=venv.activated_env())
    assert {"sales", "support"} <= set(listed_agents(venv))


def test_readme_uv_add_from_a_clone(tmp_path: Path) -> None:
    [command] = readme.commands(readme.section("## Installing"), "uv add")
    app = write_tree(
        tmp_path / "my-app",
        {
            "pyproject.toml": '[project]\nname = "my-app"\nversion = "0"\nrequires-python = ">=3.11"\n'
        },
    )
    assert "../my-app" in command
    command = [str(app) if word == "../my-app" else word for word in command]
    run_ok(uv_executable(), *command[1:], cwd=ROOT)
    listing = run_ok(
        uv_executable(), "run", "--project", app, "frontdesk", "agents", "--json", cwd=tmp_path
    )
    assert {record["id"] for record in json.loads(listing.stdout)} >= {"sales"}
    dependencies = tomllib.loads((app / "pyproject.toml").read_text(encoding="utf-8"))
    assert set(dependencies["tool"]["uv"]["sources"]) == {"frontdesk", "frontdesk-sales"}


def test_clean_env_keeps_no_trace_of_the_test_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FRONTDESK_STORAGE", "memory")
    env = clean_env()
    assert "VIRTUAL_ENV" not in env
    assert "FRONTDESK_STORAGE" not in env
    assert str(Path(sys.executable).parent) not in env["PATH"].split(os.pathsep)
