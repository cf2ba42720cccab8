"""Every Python snippet in the README runs, and prints what the README says it prints."""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from frontdesk import AgentConfig
from tests.support import readme
from tests.support.packages import run_ok, write_tree

README = Path(__file__).parent.parent / "README.md"
SNIPPETS = [
    textwrap.dedent(block)
    for block in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
]
NEEDS_SUPABASE = "SupabaseStorage.from_env"
NEEDS_POSTGRES = "PostgresStorage.from_env"
WRITES_FILES = "SQLiteStorage("


def test_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 5


@pytest.mark.parametrize("source", SNIPPETS, ids=[f"snippet-{i}" for i in range(len(SNIPPETS))])
def test_snippet_runs(
    source: str,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if NEEDS_SUPABASE in source:
        request.getfixturevalue("supabase_project")
    if NEEDS_POSTGRES in source:
        request.getfixturevalue("postgres_project")
    if WRITES_FILES in source:
        monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme_snippet"}
    exec(compile(source, str(README), "exec"), namespace)  # noqa: S102 - our own README
    main = namespace.get("main")
    if inspect.iscoroutinefunction(main) and "asyncio.run(main())" not in source:
        asyncio.run(main())  # a snippet that defines main() for the reader to run
    printed = capsys.readouterr().out.splitlines()
    promised = [m.group(1).strip() for m in re.finditer(r"print\(.*\)\s+# (.*)", source)]
    assert printed == promised


@pytest.mark.slow
def test_pytest_configuration_runs_the_async_example_warning_free(tmp_path: Path) -> None:
    # The README's configuration, as written, with its example test: an application's
    # project. Warnings are errors, so pytest-asyncio's complaint about an unset fixture
    # loop scope (or any other) fails the run.
    text = readme.section("## Testing your application")
    project = write_tree(tmp_path / "app", readme.files_in(text))
    [example] = [block for block in readme.code_blocks(text, "python") if "def test_" in block]
    (project / "test_app.py").write_text(example, encoding="utf-8")
    pytest_args = ("-q", "-W", "error", "-p", "no:cacheprovider")
    done = run_ok(sys.executable, "-W", "error", "-m", "pytest", *pytest_args, cwd=project)
    assert done.stdout.splitlines()[-1].startswith("1 passed in ")
    assert "warning" not in done.stdout.lower()


def test_agent_package_files_are_complete(tmp_path: Path) -> None:
    # The slow packaging test installs them with pip; this says what is missing, quickly.
    text = readme.section("### Writing an agent package")
    files = readme.files_in(text)
    pyproject = tomllib.loads(files["pyproject.toml"])
    assert pyproject["build-system"]["build-backend"] == "hatchling.build"
    assert any(r.startswith("hatchling") for r in pyproject["build-system"]["requires"])
    assert {"name", "version", "dependencies"} <= set(pyproject["project"])
    assert any(d.startswith("frontdesk") for d in pyproject["project"]["dependencies"])
    [(agent_id, module)] = pyproject["project"]["entry-points"]["frontdesk.agents"].items()
    [package] = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert f"{package}/{module.rpartition('.')[2]}.py" in files
    [config] = [path for path in files if path.startswith(package) and path.endswith(".toml")]
    write_tree(tmp_path, {"agent.toml": files[config]})
    assert AgentConfig.from_toml(tmp_path / "agent.toml").id == agent_id
