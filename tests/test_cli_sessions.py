"""`frontdesk sessions ...` and the demo's clean-up, on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from frontdesk import AgentRegistry, Session, SessionManager
from frontdesk.cli import create_cli
from frontdesk.cli.sessions import parse_duration
from frontdesk.registry import use_default_registry
from frontdesk.storage.sqlite import SQLiteStorage
from frontdesk.testing import TEST_AGENT_ID, make_test_agent

WORKSPACE = "acme"


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(create_cli(), list(args), prog_name="frontdesk", input=input)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "sessions.db"
    monkeypatch.setenv("FRONTDESK_STORAGE", "sqlite")
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(path))
    monkeypatch.setenv("FRONTDESK_WORKSPACE", WORKSPACE)
    return path


@pytest.fixture
def sessions(database: Path) -> Iterator[list[Session]]:
    """Four sessions: contacts ana (two conversations, one closed, one idle for long) and bo."""

    async def make() -> list[Session]:
        registry = AgentRegistry()
        registry.register(make_test_agent(version="1.2"))
        storage = SQLiteStorage(database)
        try:
            manager = SessionManager(storage, workspace_id=WORKSPACE, registry=registry)
            made = []
            for conversation, contact in (("c1", "ana"), ("c2", "ana"), ("c3", "bo"), ("c4", "bo")):
                session = await manager.create_session(
                    agent_id=TEST_AGENT_ID, conversation_id=conversation, contact_id=contact
                )
                await manager.add_turn(session.id, role="user", content=f"hello from {contact}")
                made.append(session)
            closed = await manager.get_session(made[1].id)
            await manager.close_session(closed.id, expected_version=closed.version)
            idle = await manager.get_session(made[3].id)
            await manager.update_session_with_version(
                idle.id,
                expected_version=idle.version,
                last_activity_at=datetime.now(UTC) - timedelta(days=60),
            )
            return [await manager.get_session(s.id) for s in made]
        finally:
            await storage.aclose()

    with use_default_registry(AgentRegistry()):
        yield asyncio.run(make())


def _count(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute("select count(*) from agent_sessions").fetchone()[0])


def test_list_prints_a_table_and_pages_by_cursor(sessions: list[Session]) -> None:
    result = run("sessions", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "agent", "status"]
    assert {line.split()[0] for line in lines[1:]} == {s.id for s in sessions}
    assert "test-agent 1.2" in result.stdout

    seen: list[str] = []
    cursor: list[str] = []
    while True:
        page = run("sessions", "list", "--limit", "1", "--json", *cursor)
        assert page.exit_code == 0, page.output
        record = json.loads(page.stdout)
        seen += [item["id"] for item in record["items"]]
        assert all(item["turn_count"] == 1 for item in record["items"])
        if record["next_cursor"] is None:
            break
        cursor = ["--cursor", record["next_cursor"]]
    assert sorted(seen) == sorted(s.id for s in sessions)


def test_list_filters(sessions: list[Session]) -> None:
    result = run("sessions", "list", "--json", "--contact", "ana", "--status", "active")
    assert [item["id"] for item in json.loads(result.stdout)["items"]] == [sessions[0].id]
    old = run("sessions", "list", "--json", "--updated-before", "2030-01-01", "--updated-after",
              (datetime.now(UTC) - timedelta(days=1)).isoformat())  # fmt: skip
    assert sessions[3].id not in {item["id"] for item in json.loads(old.stdout)["items"]}
    none = run("sessions", "list", "--agent", "nobody")
    assert none.stdout.strip() == "no sessions match"


def test_a_cursor_with_other_filters_is_one_line(sessions: list[Session]) -> None:
    page = json.loads(run("sessions", "list", "--limit", "1", "--json").stdout)
    result = run("sessions", "list", "--status", "closed", "--cursor", page["next_cursor"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "other filters" in result.stderr


def test_show(sessions: list[Session]) -> None:
    result = run("sessions", "show", sessions[0].id)
    assert result.exit_code == 0, result.output
    assert "hello from ana" in result.stdout
    assert "test-agent 1.2" in result.stdout
    shown = json.loads(run("sessions", "show", sessions[0].id, "--json").stdout)
    assert shown["turn_count"] == 1
    assert shown["turns"][0]["content"] == "hello from ana"
    missing = run("sessions", "show", "00000000-0000-4000-8000-000000000000")
    assert missing.exit_code == 1
    assert "not found" in missing.stderr


def test_delete(sessions: list[Session], database: Path) -> None:
    assert run("sessions", "delete", sessions[0].id).exit_code == 0
    assert _count(database) == 3
    again = run("sessions", "delete", sessions[0].id)
    assert again.exit_code == 1
    assert "no session" in again.stderr


def test_purge(sessions: list[Session], database: Path) -> None:
    closed = run("sessions", "purge", "--inactive-for", "30d", "--status", "closed", "--yes")
    assert closed.stdout.strip() == "purged 0 closed sessions idle for 30d"
    result = run("sessions", "purge", "--inactive-for", "30d", "--yes")
    assert result.stdout.strip() == "purged 1 session idle for 30d"
    assert _count(database) == 3
    bad = run("sessions", "purge", "--inactive-for", "a month")
    assert bad.exit_code == 2
    assert "is not a duration" in bad.stderr


def test_purge_asks_first(sessions: list[Session], database: Path) -> None:
    declined = run("sessions", "purge", "--inactive-for", "0d", input="n\n")
    assert declined.exit_code == 1
    assert "Delete every session of workspace 'acme' idle for 0s" in declined.stdout
    assert _count(database) == 4
    accepted = run("sessions", "purge", "--inactive-for", "0d", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.splitlines()[-1] == "purged 4 sessions idle for 0s"
    assert _count(database) == 0


@pytest.mark.parametrize("text", ["99999999999d", "36501d", "9999999999999999999999w"])
def test_purge_refuses_a_duration_beyond_the_bound(sessions: list[Session], text: str) -> None:
    result = run("sessions", "purge", "--inactive-for", text, "--yes")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "too long: at most 36500d" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("show", "00000000-0000-4000-8000-000000000000"),
        ("delete", "00000000-0000-4000-8000-000000000000"),
        ("purge", "--inactive-for", "1d", "--yes"),
        ("erase-contact", "x", "--yes"),
    ],
    ids=["list", "show", "delete", "purge", "erase"],
)
def test_a_missing_database_is_reported_not_created(
    args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "typo.db"
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(path))
    monkeypatch.setenv("FRONTDESK_WORKSPACE", WORKSPACE)
    result = run("sessions", *args, "--storage", "sqlite")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: no database at {str(path)!r}")
    assert len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_bad_cursor_does_not_speak_of_writes(sessions: list[Session]) -> None:
    result = run("sessions", "list", "--cursor", "garbage")
    assert result.exit_code == 1
    assert "nothing was written" not in result.stderr
    assert "nothing was listed" in result.stderr


@pytest.mark.parametrize(
    "command", [["sessions", "list"], ["runs", "resume"], ["demo"]], ids=lambda c: " ".join(c)
)
def test_help_names_the_variable_not_a_default(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("FRONTDESK_STORAGE", "sqlite")
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "[default: memory]" not in result.stdout
    assert "$FRONTDESK_STORAGE" in result.stdout


def test_erase_contact_asks_first(sessions: list[Session], database: Path) -> None:
    declined = run("sessions", "erase-contact", "ana", input="n\n")
    assert declined.exit_code == 1
    assert _count(database) == 4
    accepted = run("sessions", "erase-contact", "ana", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "erased contact 'ana': 2 sessions, 2 turns" in accepted.stdout
    assert run("sessions", "erase-contact", "bo", "--yes").exit_code == 0
    assert _count(database) == 0


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("show", "x"),
        ("delete", "x"),
        ("purge", "--inactive-for", "1d", "--yes"),
        ("erase-contact", "x", "--yes"),
    ],
    ids=["list", "show", "delete", "purge", "erase"],
)
def test_memory_storage_says_it_holds_nothing(
    args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTDESK_WORKSPACE", WORKSPACE)
    result = run("sessions", *args, "--storage", "memory")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "holds nothing between processes" in result.stderr


def test_a_workspace_is_required(database: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRONTDESK_WORKSPACE")
    result = run("sessions", "list")
    assert result.exit_code == 2
    assert "--workspace or FRONTDESK_WORKSPACE" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("2w", timedelta(weeks=2))],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


# -- the demo cleans up after itself ---------------------------------------------------------


@pytest.fixture
def installed() -> Iterator[AgentRegistry]:
    with use_default_registry(AgentRegistry(autodiscover=True)) as registry:
        yield registry


def test_demo_deletes_its_workspace_unless_kept(database: Path, installed: AgentRegistry) -> None:
    result = run("demo", "--conversations", "4", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert "deleted workspace demo-2-" in result.stdout
    assert _count(database) == 0
    kept = run("demo", "--conversations", "4", "--seed", "2", "--keep")
    assert kept.exit_code == 0, kept.output
    assert "kept workspace demo-2-" in kept.stdout
    assert _count(database) == 4
