"""`frontdesk runs resume`: a crashed worker's messages are answered by the periodic job."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner, Result

from frontdesk import AgentRegistry, InboundMessage, RunsConfig, SessionManager
from frontdesk.cli import create_cli
from frontdesk.registry import use_default_registry
from frontdesk.storage.sqlite import SQLiteStorage

WORKSPACE = "shop"


def run(*args: str) -> Result:
    return CliRunner().invoke(create_cli(), list(args), prog_name="frontdesk")


@pytest.fixture
def installed() -> Iterator[AgentRegistry]:
    with use_default_registry(AgentRegistry(autodiscover=True)) as registry:
        yield registry


async def _crash_mid_run(path: Path, installed: AgentRegistry, texts: list[str]) -> str:
    """A worker receives the messages, starts a run that expires fast, and dies."""
    hasty = AgentRegistry()
    sales = installed.get("sales")
    hasty.register(attrs.evolve(sales, runs=RunsConfig(timeout=0.2), source=None))
    storage = SQLiteStorage(path)
    try:
        manager = SessionManager(storage, workspace_id=WORKSPACE, registry=hasty)
        session_id = ""
        for number, text in enumerate(texts):
            receipt = await manager.receive(
                InboundMessage(
                    agent_id="sales",
                    conversation_id="wa:+34600111222",
                    contact_id="+34600111222",
                    message_id=f"wamid.{number}",
                    content=text,
                )
            )
            session_id = receipt.session.id
        await asyncio.sleep(0.4)  # the run expires; nobody completes it
        return session_id
    finally:
        await storage.aclose()


def test_resume_answers_what_a_crashed_worker_left(
    installed: AgentRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "sessions.db"
    session_id = asyncio.run(_crash_mid_run(path, installed, ["hola", "¿tenéis crema?"]))
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(path))
    args = ("runs", "resume", "--workspace", WORKSPACE, "--storage", "sqlite")
    result = run(*args, "--model", "offline")
    assert result.exit_code == 0, result.output
    assert f"resumed 1 conversation in workspace {WORKSPACE}: answered 2 messages" in result.stdout
    assert session_id in result.stdout

    async def stored() -> list[str]:
        storage = SQLiteStorage(path)
        try:
            manager = SessionManager(storage, workspace_id=WORKSPACE, registry=installed)
            return [str(t.role) for t in await manager.get_turns(session_id)]
        finally:
            await storage.aclose()

    assert asyncio.run(stored()) == ["user", "user", "assistant"]
    again = run(*args, "--model", "offline")
    assert "resumed 0 conversations" in again.stdout


def test_resume_needs_a_workspace_and_a_real_store(installed: AgentRegistry) -> None:
    result = run("runs", "resume", "--storage", "sqlite")
    assert result.exit_code == 2
    assert "--workspace" in result.stderr
    memory = run("runs", "resume", "--workspace", WORKSPACE, "--storage", "memory")
    assert memory.exit_code == 1
    assert "holds nothing between processes" in memory.stderr


@pytest.fixture
def crashed_without_key(
    installed: AgentRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str]:
    """A SQLite store where a worker crashed mid-run, and no model API key anywhere."""
    path = tmp_path / "sessions.db"
    session_id = asyncio.run(_crash_mid_run(path, installed, ["hola"]))
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(path))
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path))
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return path, session_id


def test_resume_without_a_key_fails_in_one_line_and_hands_nothing_off(
    installed: AgentRegistry, crashed_without_key: tuple[Path, str]
) -> None:
    path, session_id = crashed_without_key
    result = run("runs", "resume", "--workspace", WORKSPACE, "--storage", "sqlite")

    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: agent ")
    assert "cannot run, so no conversation was claimed: model " in line
    assert "needs an API key" in line

    async def stored() -> tuple[str, dict[str, object], list[str]]:
        storage = SQLiteStorage(path)
        try:
            manager = SessionManager(storage, workspace_id=WORKSPACE, registry=installed)
            session = await manager.get_session(session_id)
            turns = await manager.get_turns(session_id)
            return str(session.status), dict(session.state.data), [str(t.role) for t in turns]
        finally:
            await storage.aclose()

    status, data, roles = asyncio.run(stored())
    assert (status, roles) == ("active", ["user"])
    assert "handoff_reason" not in data


def test_resume_refuses_an_empty_model(installed: AgentRegistry) -> None:
    result = run("runs", "resume", "--workspace", WORKSPACE, "--storage", "sqlite", "--model", "")

    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: --model must name a model")


def test_a_broken_setup_claims_nothing_so_a_fixed_one_answers_at_once(
    crashed_without_key: tuple[Path, str],
) -> None:
    """Without a key nothing is claimed: no conversation waits another runs.timeout."""
    _, session_id = crashed_without_key
    args = ("runs", "resume", "--workspace", WORKSPACE, "--storage", "sqlite")
    broken = run(*args, "--model", "agent")
    unknown = run(*args, "--model", "no-such-model")

    assert broken.exit_code == unknown.exit_code == 1
    assert "no conversation was claimed" in broken.stderr
    assert "`llm models`" in unknown.stderr
    # Had they claimed it, its new run would hold it for the agent's runs.timeout (120 s).
    fixed = run(*args, "--model", "offline")
    assert fixed.exit_code == 0, fixed.output
    assert "resumed 1 conversation" in fixed.stdout
    assert session_id in fixed.stdout
