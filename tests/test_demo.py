"""`frontdesk demo`: the simulation, its checks, and that the checks can fail."""

from __future__ import annotations

import re
from collections.abc import Iterator

import attrs
import pytest
from click.testing import CliRunner, Result

from frontdesk import AgentRegistry, FrontdeskError, InMemoryStorage
from frontdesk.cli import create_cli
from frontdesk.demo import run_demo
from frontdesk.registry import use_default_registry
from frontdesk.storage import Commit, CommitResult
from tests.support.gateway import PostgrestGateway

from .conftest import DistributionMaker


def run(*args: str) -> Result:
    return CliRunner().invoke(create_cli(), list(args), prog_name="frontdesk")


@pytest.fixture
def installed() -> Iterator[AgentRegistry]:
    """The installed agents (sales and support), discovered as in a new process."""
    with use_default_registry(AgentRegistry(autodiscover=True)) as registry:
        yield registry


def test_demo_runs_clean(installed: AgentRegistry) -> None:
    result = run("demo", "--conversations", "30", "--seed", "3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "frontdesk demo (memory, seed 3)" in out
    assert re.search(r"^ lost updates +0 $", out, re.M), out
    for check in (
        "ok every message processed: no errors",
        "ok one session per conversation: 30 sessions",
        "ok lost updates: 0: every message found exactly once",
        "ok gapless numbering",
        "ok versions count every write",
        "ok conversations ended",
    ):
        assert check in out


async def test_demo_has_real_contention(installed: AgentRegistry) -> None:
    report = await run_demo(InMemoryStorage(), installed, conversations=40, seed=11)
    assert report.ok
    assert report.lost_updates == 0
    assert report.conflicts > 0  # double-texting made workers collide, and they recovered
    assert report.sessions == 40
    assert report.turns == 2 * report.messages
    assert {check.name for check in report.checks} >= {"lost updates", "gapless numbering"}


async def test_a_seed_reproduces_the_traffic(installed: AgentRegistry) -> None:
    first = await run_demo(InMemoryStorage(), installed, conversations=25, seed=5)
    second = await run_demo(InMemoryStorage(), installed, conversations=25, seed=5)
    assert (first.messages, first.turns, first.sessions) == (
        second.messages,
        second.turns,
        second.sessions,
    )


class LastWriterWins(InMemoryStorage):
    """A backend without optimistic locking: the demo's checks must catch it."""

    async def commit(self, workspace_id: str, session_id: str, commit: Commit) -> CommitResult:
        return await super().commit(
            workspace_id, session_id, attrs.evolve(commit, expected_version=None)
        )


async def test_demo_catches_lost_updates(installed: AgentRegistry) -> None:
    report = await run_demo(LastWriterWins(), installed, conversations=40, seed=11)
    assert not report.ok
    assert report.lost_updates > 0
    failed = {check.name for check in report.checks if not check.passed}
    assert "lost updates" in failed


BROKEN_STORAGE = """
import attrs

from frontdesk.storage.memory import InMemoryStorage


class LastWriterWins(InMemoryStorage):
    async def commit(self, workspace_id, session_id, commit):
        return await super().commit(
            workspace_id, session_id, attrs.evolve(commit, expected_version=None)
        )
"""


def test_demo_fails_with_exit_code_one_when_a_check_fails(
    installed: AgentRegistry, make_distribution: DistributionMaker
) -> None:
    make_distribution(
        "frontdesk-broken-storage",
        modules={"broken_storage": BROKEN_STORAGE},
        storage={"last-writer-wins": "broken_storage:LastWriterWins"},
    )
    result = run("demo", "--conversations", "40", "--seed", "11", "--storage", "last-writer-wins")
    assert result.exit_code == 1
    assert "FAIL lost updates" in result.stdout


def test_demo_without_agents(registry: AgentRegistry) -> None:
    with use_default_registry(registry):
        result = run("demo")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no agents installed")


def test_demo_checks_its_options(installed: AgentRegistry) -> None:
    result = run("demo", "--workers", "0")
    assert result.exit_code == 2
    assert "--workers" in result.stderr


def test_demo_unknown_storage(installed: AgentRegistry) -> None:
    result = run("demo", "--storage", "nope")
    assert result.exit_code == 1
    assert "no storage backend named 'nope'" in result.stderr


def test_demo_on_supabase(
    installed: AgentRegistry, supabase_project: PostgrestGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTDESK_STORAGE", "supabase")
    result = run("demo", "--conversations", "12", "--workers", "8", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert "frontdesk demo (supabase, seed 2)" in result.stdout
    assert "ok lost updates" in result.stdout


def test_no_agents_is_a_frontdesk_error() -> None:
    import asyncio

    with pytest.raises(FrontdeskError, match="no agents installed"):
        asyncio.run(run_demo(InMemoryStorage(), AgentRegistry()))
