"""Real distributions for tests: built with uv, installed with pip or uv, run in a subprocess.

Nothing here fakes an installation: packages are built by their build backend (hatchling,
fetched from the configured package index like any build requirement) and installed by an
installer into a virtualenv or a target directory, exactly as a user's would be.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

# Settings that would tie a command to this workspace's environment instead of its own.
_WORKSPACE_ENV = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT")
_WORKSPACE_ENV_PREFIXES = ("FRONTDESK_", "PYTEST_")

# An agent package whose module fails to import, as an out-of-date package would.
BROKEN_AGENT_PACKAGE = {
    "pyproject.toml": """\
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "acme-broken-agents"
version = "0.3.0"
requires-python = ">=3.11"

[project.entry-points."frontdesk.agents"]
ledger = "acme_broken_agents.agent"

[tool.hatch.build.targets.wheel]
packages = ["src/acme_broken_agents"]
""",
    "src/acme_broken_agents/__init__.py": "",
    "src/acme_broken_agents/agent.py": "import acme_ledger_client  # not installed\n",
}


def uv_executable() -> str:
    """The uv running these tests (`uv run` names itself in $UV), or the one on PATH."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed to build and install packages in these tests (pip install uv)")
    return uv


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what ties a command to this workspace.

    The package index settings (PIP_*, UV_* except the project environment) stay: they are
    how this machine reaches packages, as they would be for a user.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _WORKSPACE_ENV and not name.startswith(_WORKSPACE_ENV_PREFIXES)
    }
    # Nor the programs of the environment running the tests (`uv run` puts them first).
    here = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join(
        entry for entry in env.get("PATH", "").split(os.pathsep) if entry and Path(entry) != here
    )
    env.update(extra)
    return env


def run_ok(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; fail the test, with its output, unless it exits 0."""
    done = subprocess.run(  # noqa: S603 - fixed tools on files of this repository or a test's
        [str(arg) for arg in args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    command = " ".join(str(arg) for arg in args)
    assert done.returncode == 0, (
        f"{command}\nexit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    return done


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text) under `root`; return `root`."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def install_into_target(target: Path, *projects: Path) -> Path:
    """Build `projects` and install them, without dependencies, into the directory `target`.

    Put `target` on sys.path (or PYTHONPATH) and importlib.metadata finds them, entry
    points included, as if they were installed in the environment.
    """
    run_ok(
        uv_executable(),
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        target,
        *projects,
        cwd=ROOT,
    )
    return target


class Virtualenv:
    """A fresh virtualenv, with nothing of this workspace in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bin = path / ("Scripts" if os.name == "nt" else "bin")

    @classmethod
    def with_pip(cls, path: Path) -> Virtualenv:
        """Made by `python -m venv`: pip and nothing else, no uv."""
        path.parent.mkdir(parents=True, exist_ok=True)
        run_ok(sys.executable, "-m", "venv", path, cwd=path.parent)
        return cls(path)

    @classmethod
    def with_uv(cls, path: Path) -> Virtualenv:
        """Made by `uv venv`: empty, for `uv pip install`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        run_ok(uv_executable(), "venv", "--quiet", path, cwd=path.parent)
        return cls(path)

    def run(
        self, program: str, *args: str | Path, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run one of the virtualenv's programs (`python`, `pip`, `frontdesk`), from
        `cwd` (by default the virtualenv's parent, outside any project)."""
        return run_ok(
            self.bin / program,
            *args,
            cwd=cwd or self.path.parent,
            env=self.activated_env(**env),
        )

    def activated_env(self, **extra: str) -> dict[str, str]:
        """The environment of a shell where this virtualenv is activated."""
        env = clean_env(**extra)
        env["VIRTUAL_ENV"] = str(self.path)
        env["PATH"] = os.pathsep.join([str(self.bin), env["PATH"]])
        return env

    def python(self, code: str, **env: str) -> str:
        """Run `code` with the virtualenv's Python; return what it printed."""
        return self.run("python", "-c", code, **env).stdout
