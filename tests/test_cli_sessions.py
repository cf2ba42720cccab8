"""`frontdesk sessions ...` and the demo's clean-up, on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from frontdesk import AgentRegistry, Session, SessionManager, ValidationError
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


@pytest.mark.parametrize("command", ["show", "delete"])
def test_a_missing_session_names_the_options_not_the_api(
    sessions: list[Session], command: str
) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    result = run("sessions", command, missing)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no session {missing} in workspace 'acme': check the id, and the workspace "
        "(--workspace or FRONTDESK_WORKSPACE)\n"
    )


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
    declined = run("sessions", "purge", "--inactive-for", "1d", input="n\n")
    assert declined.exit_code == 1
    assert "Delete every session of workspace 'acme' idle for 1d" in declined.stdout
    assert _count(database) == 4
    accepted = run("sessions", "purge", "--inactive-for", "1d", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.splitlines()[-1] == "purged 1 session idle for 1d"
    assert _count(database) == 3


@pytest.mark.parametrize("text", ["0d", "0s", " 0 w"])
def test_purge_refuses_a_duration_of_zero(
    sessions: list[Session], database: Path, text: str
) -> None:
    # Zero would make every idle session "inactive", even one closed a moment ago.
    result = run("sessions", "purge", "--inactive-for", text, "--yes")
    assert result.exit_code == 2
    assert "is no time at all: give a duration longer than zero" in result.stderr
    assert _count(database) == 4


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


def _foreign_database(path: Path) -> None:
    """Another program's SQLite file: its own table, no frontdesk schema (user_version 0)."""
    with sqlite3.connect(path) as conn:
        conn.execute("create table foo (x)")
        conn.execute("insert into foo values (1)")
    conn.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    "args",
    [
        ("sessions", "list"),
        ("sessions", "show", "00000000-0000-4000-8000-000000000000"),
        ("sessions", "delete", "00000000-0000-4000-8000-000000000000"),
        ("sessions", "purge", "--inactive-for", "1d", "--yes"),
        ("sessions", "erase-contact", "x", "--yes"),
        ("runs", "resume", "--model", "offline"),
    ],
    ids=["list", "show", "delete", "purge", "erase", "resume"],
)
@pytest.mark.parametrize("kind", ["other tables", "empty"])
def test_a_file_that_is_not_frontdesks_is_refused_unchanged(
    args: tuple[str, ...], kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "other.db"
    if kind == "empty":
        path.touch()
    else:
        _foreign_database(path)
    before = _files(tmp_path)
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(path))
    monkeypatch.setenv("FRONTDESK_WORKSPACE", WORKSPACE)
    result = run(*args, "--storage", "sqlite")
    assert result.exit_code == 1
    if kind == "empty":
        assert result.stderr == (
            f"Error: no frontdesk database in {str(path)!r}: the file is empty; the first "
            "program that writes sessions to it creates the tables\n"
        )
    else:
        assert result.stderr == (
            f"Error: {str(path)!r} is not a frontdesk database: it holds table foo and no "
            "frontdesk schema; nothing was changed. Check the path (FRONTDESK_SQLITE_PATH).\n"
        )
    # No frontdesk table, no WAL mode, no user_version, no -wal or -shm file: nothing.
    assert _files(tmp_path) == before


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


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("30", "'30' is not a duration: use a number and s, m, h, d or w (30d)"),
        ("3x", "'3x' is not a duration"),
        ("99999999999999999999w", "is too long: at most"),
        ("40000d", "'40000d' is too long: at most 36500d"),
    ],
)
def test_parse_duration_refuses_with_a_validation_error(text: str, problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_duration(text)
    assert caught.value.field == "duration"
    assert problem in caught.value.problem
    assert isinstance(caught.value, ValueError)


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
    assert re.fullmatch(
        r"demo: workspace demo-2-[0-9a-f]{8} on sqlite: deleted at the end, or if interrupted\n",
        result.stderr,
    )
    kept = run("demo", "--conversations", "4", "--seed", "2", "--keep")
    assert kept.exit_code == 0, kept.output
    assert "kept workspace demo-2-" in kept.stdout
    assert re.fullmatch(
        r"demo: workspace demo-2-[0-9a-f]{8} on sqlite: kept \(--keep\)\n", kept.stderr
    )
    assert _count(database) == 4


def test_demo_keep_on_memory_says_nothing_outlives_the_process(installed: AgentRegistry) -> None:
    result = run("demo", "--conversations", "4", "--storage", "memory", "--keep")
    assert result.exit_code == 0, result.output
    assert "kept workspace" not in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "--keep: nothing to keep, the memory storage ends with the process "
        "(--storage sqlite, postgres or supabase keeps the sessions)"
    )
    assert result.stderr == ""  # no workspace to name: nothing of it outlives the process


@pytest.mark.parametrize("keep", [False, True], ids=["clean-up", "keep"])
def test_an_interrupted_demo_cleans_up_and_exits_130(database: Path, keep: bool) -> None:
    # A real process and a real SIGINT (Ctrl-C), while the workers are writing.
    command = [sys.executable, "-c", "from frontdesk.cli import main; main()", "demo"]
    demo = subprocess.Popen(  # noqa: S603 - this interpreter, the frontdesk CLI
        [*command, "--conversations", "5000", *(["--keep"] if keep else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stderr is not None
        first = demo.stderr.readline()
        workspace = re.fullmatch(r"demo: workspace (demo-\d+-[0-9a-f]{8}) on sqlite: .*\n", first)
        assert workspace, first
        deadline = time.monotonic() + 60
        while _count(database) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(database) > 0
        demo.send_signal(signal.SIGINT)
        stdout, stderr = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130
    assert stdout == ""  # no report: the checks did not run
    assert stderr.splitlines()[-1] == "Aborted!"
    assert "Traceback" not in stderr
    if keep:
        assert _count(database) > 0
    else:
        assert _count(database) == 0, stderr
        with sqlite3.connect(database) as conn:
            assert conn.execute("select count(*) from agent_turns").fetchone() == (0,)
        conn.close()
