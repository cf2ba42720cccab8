"""SQLiteStorage: the whole storage contract on a temporary file, and several processes on one."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from frontdesk import SessionManager, StorageError, ValidationError, open_storage
from frontdesk.storage import Capability, Commit, NewSession, StorageBackend
from frontdesk.storage.sqlite import PATH_ENV, SQLiteStorage
from frontdesk.testing import TEST_AGENT_ID, StorageContractTests


class TestSQLiteContract(StorageContractTests):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
        storage = SQLiteStorage(tmp_path / "contract.db")
        yield storage
        await storage.aclose()


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    storage = SQLiteStorage(tmp_path / "sessions.db")
    yield storage
    await storage.aclose()


def _new(session_id: str = "s1", conversation_id: str = "c") -> NewSession:
    return NewSession(
        id=session_id,
        workspace_id="w",
        agent_id="a",
        conversation_id=conversation_id,
        contact_id="u",
        current_mode="m",
    )


def test_implements_the_protocol(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "x.db")
    try:
        assert isinstance(storage, StorageBackend)
        assert Capability.THREADS in storage.capabilities
    finally:
        storage.close()


async def test_sessions_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    first = SQLiteStorage(path)
    session, _ = await first.create_session(_new())
    await first.commit("w", session.id, Commit(current_mode="n"))
    await first.aclose()
    second = SQLiteStorage(path)
    try:
        again = await second.get_session("w", session.id)
        assert again is not None
        assert (again.version, again.current_mode) == (2, "n")
    finally:
        await second.aclose()


async def test_the_file_is_in_wal_mode(storage: SQLiteStorage) -> None:
    with sqlite3.connect(storage.path) as conn:
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


async def test_a_locked_database_fails_in_bounded_time_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    storage = SQLiteStorage(path, timeout=0.2)
    try:
        session, _ = await storage.create_session(_new())
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("begin immediate")  # another process holding the write lock
        try:
            with pytest.raises(StorageError) as excinfo:
                await storage.commit("w", session.id, Commit(current_mode="n"))
            assert excinfo.value.may_have_applied is False  # type: ignore[attr-defined]
            assert "locked" in str(excinfo.value)
        finally:
            blocker.execute("rollback")
            blocker.close()
        after = await storage.get_session("w", session.id)
        assert after is not None
        assert after.version == 1
    finally:
        await storage.aclose()


def test_a_folder_that_does_not_exist_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open the SQLite database"):
        SQLiteStorage(tmp_path / "missing" / "x.db")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    SQLiteStorage(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("pragma user_version = 99")
    with pytest.raises(StorageError, match="newer frontdesk"):
        SQLiteStorage(path)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("create", [True, False])
def test_another_programs_versioned_database_is_refused_unchanged(
    tmp_path: Path, create: bool
) -> None:
    # Its user_version is its own schema's, not one frontdesk may upgrade from.
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table invoices (id integer primary key)")
        conn.execute("pragma user_version = 2")
    conn.close()
    before = _snapshot(tmp_path)
    with pytest.raises(StorageError) as excinfo:
        SQLiteStorage(path, create=create)
    assert str(excinfo.value) == (
        f"{str(path)!r} is not a frontdesk database: it has schema version 2 but no frontdesk "
        "tables (it holds table invoices); nothing was changed. Check the path "
        "(FRONTDESK_SQLITE_PATH): frontdesk needs a file of its own."
    )
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["empty", "other tables"])
def test_create_false_refuses_a_file_without_frontdesk_tables_unchanged(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "x.db"
    path.touch()
    if kind == "other tables":
        with sqlite3.connect(path) as conn:
            conn.execute("create table foo (x)")
        conn.close()
    before = _snapshot(tmp_path)
    expected = "the file is empty" if kind == "empty" else "it holds table foo"
    with pytest.raises(StorageError, match=expected):
        SQLiteStorage(path, create=False)
    assert _snapshot(tmp_path) == before


async def test_an_application_adds_its_tables_to_a_file_that_has_none(tmp_path: Path) -> None:
    # An application opening its file creates frontdesk's tables next to any others, as
    # it always has; only read-only tools (create=False) refuse to.
    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table foo (x)")
    conn.close()
    async with SQLiteStorage(path) as storage:
        assert (await storage.health())["schema_version"] >= 1
    async with SQLiteStorage(path, create=False) as storage:  # now it is frontdesk's
        assert await storage.get_session("w", "s1") is None
    with sqlite3.connect(path) as conn:
        assert conn.execute("select count(*) from foo").fetchone() == (0,)
    conn.close()


async def test_closed_storage_refuses_calls(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "x.db")
    await storage.aclose()
    with pytest.raises(StorageError, match="closed"):
        await storage.get_session("w", "s1")


async def test_open_storage_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PATH_ENV, str(tmp_path / "named.db"))
    storage = await open_storage("sqlite")
    try:
        assert isinstance(storage, SQLiteStorage)
        assert storage.path == tmp_path / "named.db"
    finally:
        await storage.aclose()


def test_from_env_defaults_to_a_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PATH_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    storage = SQLiteStorage.from_env()
    try:
        assert storage.path == Path("frontdesk.db")
        assert (tmp_path / "frontdesk.db").exists()
    finally:
        storage.close()


# -- several processes on one file -------------------------------------------------------------

WRITER = """
import asyncio, json, sys

import attrs

from frontdesk import SessionChange, SessionManager
from frontdesk.storage.sqlite import SQLiteStorage
from frontdesk.testing import TEST_AGENT_ID, make_test_agent
from frontdesk import AgentRegistry


async def main(path, worker, conversations, messages):
    registry = AgentRegistry()
    registry.register(make_test_agent())
    storage = SQLiteStorage(path, timeout=30)
    manager = SessionManager(storage, workspace_id="shared", registry=registry)
    created = 0
    for i in range(messages):
        conversation = f"conv-{i % conversations}"
        session, was_created = await manager.get_or_create_session(
            agent_id=TEST_AGENT_ID, conversation_id=conversation, contact_id="u"
        )
        created += was_created
        await manager.add_turn(session.id, role="user", content=f"w{worker}-m{i}")
        await manager.add_intent_seen(session.id, f"w{worker}-m{i}")

        def bump(current):
            data = dict(current.state.data)
            data["counter"] = int(data.get("counter", 0)) + 1
            return SessionChange(state=attrs.evolve(current.state, data=data))

        await manager.retry_on_conflict(session.id, bump, attempts=200)
    await storage.aclose()
    print(json.dumps({"created": created}))


asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
"""


def test_writers_in_separate_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    SQLiteStorage(path).close()
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER), encoding="utf-8")
    processes, conversations, messages = 4, 3, 25
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRONTDESK_")}
    running = [
        subprocess.Popen(  # noqa: S603 - this interpreter, our script
            [sys.executable, str(script), str(path), str(w), str(conversations), str(messages)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(processes)
    ]
    outputs = [p.communicate(timeout=240) for p in running]
    for process, (_, err) in zip(running, outputs, strict=True):
        assert process.returncode == 0, err
    created = sum(json.loads(out)["created"] for out, _ in outputs)
    assert created == conversations  # one session per conversation, whoever created it

    with sqlite3.connect(path) as conn:
        sessions = conn.execute(
            "select id, version, state, turn_count from agent_sessions"
            " where workspace_id = 'shared' and status = 'active'"
        ).fetchall()
        assert len(sessions) == conversations
        contents: list[str] = []
        for session_id, version, state_json, turn_count in sessions:
            numbers = [
                n
                for (n,) in conn.execute(
                    "select turn_number from agent_turns where session_id = ? order by turn_number",
                    (session_id,),
                )
            ]
            assert numbers == list(range(1, turn_count + 1))  # gapless
            state = json.loads(state_json)
            # Every write counted: a turn, an intent and a counter bump per message.
            assert state["data"]["counter"] == turn_count
            assert [i["order"] for i in state["intents_seen"]] == list(range(1, turn_count + 1))
            assert version == 1 + 3 * turn_count
            contents += [
                c
                for (c,) in conn.execute(
                    "select content from agent_turns where session_id = ?", (session_id,)
                )
            ]
    expected = {f"w{w}-m{i}" for w in range(processes) for i in range(messages)}
    assert sorted(contents) == sorted(expected)  # each message exactly once


async def test_a_manager_over_sqlite(storage: SQLiteStorage) -> None:
    from frontdesk import AgentRegistry
    from frontdesk.testing import make_test_agent

    registry = AgentRegistry()
    registry.register(make_test_agent())
    manager = SessionManager(storage, workspace_id="w", registry=registry)
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    await manager.add_turn(session.id, role="user", content="hola", tokens_used=3)
    assert await manager.get_total_tokens_used(session.id) == 3


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"path": 3}, "path", "must be a file path (str or Path), got int"),
        ({"timeout": -1}, "timeout", "must be a number of seconds >= 0, got -1"),
        ({"timeout": "5"}, "timeout", "must be a number of seconds >= 0, got '5'"),
        ({"threads": 0}, "threads", "must be from 1 to 256, got 0"),
        ({"threads": 2.0}, "threads", "must be an integer, got float 2.0"),
    ],
)
def test_a_bad_argument_is_refused_before_any_file_is_made(
    tmp_path: Path, kwargs: dict[str, object], field: str, problem: str
) -> None:
    arguments: dict[str, object] = {"path": tmp_path / "x.db", **kwargs}
    with pytest.raises(ValidationError) as caught:
        SQLiteStorage(**arguments)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert problem in str(caught.value)
    assert str(caught.value).endswith("; no storage was opened.")
    assert list(tmp_path.iterdir()) == []
