"""Every example runs, as a user would run it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from frontdesk import AgentRegistry, InMemoryStorage, SessionManager
from frontdesk.testing import InstrumentedStorage
from tests.support.packages import run_ok, uv_executable

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and files
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_quickstart() -> None:
    result = run(str(EXAMPLES / "quickstart.py"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "session created: True, mode greeting, version 1",
        "turns 1 and 2 recorded",
        "mode ordering, version 6",
        "conflict: expected version 6, found 7; nothing was written",
        "decided 2 times; mode done, version 9",
        "4 turns in the session",
    ]


def test_agent_package_installs_and_appears(tmp_path: Path) -> None:
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in $UV
    if uv is None:
        pytest.fail("uv is needed to install the example package (pip install uv)")
    target = tmp_path / "site"
    install = subprocess.run(  # noqa: S603 - uv installing our own example
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(EXAMPLES / "agent-package"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    listing = run(
        "-c",
        "from frontdesk.cli import main; main()",
        "agents",
        "--json",
        env={"PYTHONPATH": str(target)},
    )
    assert listing.returncode == 0, listing.stderr
    agents = {record["id"]: record for record in json.loads(listing.stdout)}
    assert agents["concierge"]["distribution"] == "acme-concierge"
    assert agents["concierge"]["version"] == "0.1.0"
    assert {"sales", "support"} <= set(agents)

    # A complete package: its register_tools hook implements every tool it names...
    env = {"PYTHONPATH": str(target), "LLM_USER_PATH": str(tmp_path)}
    cli = ("-c", "from frontdesk.cli import main; main()")
    shown = run(*cli, "agents", "show", "concierge", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["tools"] == ["search_guide", "book_table", "book_taxi", "call_reception"]
    assert record["missing_tools"] == []
    table = run(*cli, "agents", "show", "concierge", env=env)
    assert "not implemented" not in table.stdout + table.stderr
    # ... and its prompt follows the offline model's convention, so it chats without a key.
    chat = subprocess.run(  # noqa: S603 - our own interpreter and files
        [sys.executable, *cli, "chat", "concierge"],
        input="hello\nbook a table for two at 9pm\n/quit\n",
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert chat.returncode == 0, chat.stderr
    assert "intent greeting (0.90) · proceed · mode greeting" in chat.stdout
    assert "intent table_booking (0.90) · proceed · mode booking" in chat.stdout
    # Its tools run in the engine: a booking is kept in the session.
    booked = run("-c", _BOOK_A_TABLE, env=env)
    assert booked.returncode == 0, booked.stderr
    assert booked.stdout.splitlines() == [
        "decision: proceed booking",  # answered as scripted, not handed off
        "tools: book_table",
        "bookings: [{'reference': 'T001', 'kind': 'table', 'restaurant': 'Casa Lola', "
        "'time': '21:00', 'people': 2}]",
    ]


_BOOK_A_TABLE = """
import asyncio, json
from frontdesk import Engine, InboundMessage, InMemoryStorage, SessionManager
from frontdesk.testing import ScriptedModel

call = {"name": "book_table", "arguments": {"restaurant": "Casa Lola", "time": "21:00", "people": 2}}
model = ScriptedModel.answering(
    json.dumps({"intent": "table_booking", "confidence": 0.95, "fields": {}}),
    json.dumps({"reply": "Booking it", "next_mode": "booking", "tool_calls": [call]}),
    json.dumps({"reply": "Booked: T001", "next_mode": "booking", "tool_calls": []}),
)

async def main():
    engine = Engine(SessionManager(InMemoryStorage(), workspace_id="hotel"), model=model)
    [outcome] = await engine.handle(InboundMessage(
        agent_id="concierge", conversation_id="wa:1", contact_id="1", message_id="m1",
        content="a table for two at Casa Lola, 9pm",
    ))
    print("decision:", outcome.decision, outcome.mode)
    print("tools:", ", ".join(call.name for call in outcome.tools_called))
    print("bookings:", outcome.session.state.data["bookings"])

asyncio.run(main())
"""


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgres", "supabase"])
def test_testing_examples_pass(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """The application's tests pass on each kind of store the plugin can swap in."""
    # Copied out of the repository, so that only the example's own pytest configuration
    # applies, as in an application's project.
    project = tmp_path / "app_tests"
    shutil.copytree(EXAMPLES / "testing", project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FRONTDESK_"))}
    options = [] if backend == "memory" else ["--frontdesk-storage", backend]
    if backend == "postgres":
        env["FRONTDESK_TEST_POSTGRES_DSN"] = request.getfixturevalue("postgres_dsn")
    if backend == "supabase":  # SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY, set by it
        request.getfixturevalue("supabase_project")
        env.update({k: v for k, v in os.environ.items() if k.startswith("SUPABASE_")})
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", *options],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout.splitlines()[-1]
    assert "failed" not in result.stdout.splitlines()[-1]
    # The application's tests really ran on that backend.
    assert "PASSED test_my_app.py::test_the_storage_is_the_chosen_kind" in result.stdout
    if backend == "supabase":  # a shared project: every test's sessions purged after it
        with psycopg.connect(request.getfixturevalue("fresh_database")) as conn:
            left = conn.execute("select count(*) from public.agent_sessions").fetchone()
        assert left == (0,)


def test_the_testing_plugin_takes_its_choice_from_the_environment(tmp_path: Path) -> None:
    project = tmp_path / "app_tests"
    shutil.copytree(EXAMPLES / "testing", project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FRONTDESK_"))}
    env["FRONTDESK_TEST_STORAGE"] = "sqlite"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_app.py"],
        cwd=project,
        env={**env, "EXPECTED_FRONTDESK_STORAGE": "sqlite"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_testing_plugin_refuses_an_unknown_storage(tmp_path: Path) -> None:
    project = tmp_path / "app_tests"
    shutil.copytree(EXAMPLES / "testing", project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FRONTDESK_"))}
    env["FRONTDESK_TEST_STORAGE"] = "nonsense"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 4  # pytest's usage error
    assert "FRONTDESK_TEST_STORAGE='nonsense' is not a test storage" in result.stderr


@pytest.fixture
def installed() -> AgentRegistry:
    registry = AgentRegistry(autodiscover=True)
    assert registry.has("sales")
    return registry


async def test_webhook_answers_double_texts_and_redeliveries(installed: AgentRegistry) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from examples.webhook import create_app
    finally:
        sys.path.remove(str(ROOT))
    storage = InstrumentedStorage(InMemoryStorage())
    app = create_app(storage=storage, registry=installed)
    transport = httpx.ASGITransport(app=app)
    phone = "+34600111222"
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        texts = ["Hola!", "¿Cuánto cuesta la crema?", "me lo llevo", "ana@example.com"]
        responses = await asyncio.gather(
            *(
                client.post("/webhook", json={"from": phone, "text": t, "id": f"wamid.{i}"})
                for i, t in enumerate(texts)
            )
        )
        assert [r.status_code for r in responses] == [200] * 4
        bodies = [r.json() for r in responses]
        assert len({b["session_id"] for b in bodies}) == 1
        assert len({b["turn"] for b in bodies}) == 4  # each message got its own turn
        replies = sum(len(b["replies"]) for b in bodies)
        assert 1 <= replies <= 4  # a burst may be answered once
        assert storage.calls["receive"] == 4
        assert storage.calls["complete"] == replies

        # WhatsApp redelivers until it gets a 200: answered 200, nothing done.
        storage.reset()
        again = await client.post(
            "/webhook", json={"from": phone, "text": texts[0], "id": "wamid.0"}
        )
        assert again.status_code == 200
        assert again.json()["duplicate"] is True
        assert again.json()["replies"] == []
        assert dict(storage.calls) == {"receive": 1}

        assert (await client.post("/webhook", content=b"not json")).status_code == 400
        assert (await client.post("/webhook", json={"from": 1})).status_code == 400
        no_id = await client.post("/webhook", json={"from": phone, "text": "hola"})
        assert no_id.status_code == 400
        assert (await client.get("/webhook")).status_code == 405
        assert (await client.post("/elsewhere", json={})).status_code == 404
        nul = await client.post("/webhook", json={"from": phone, "text": "a\x00b", "id": "w.9"})
        assert nul.status_code == 400
        assert "NUL" in nul.json()["error"]

    manager = SessionManager(storage, workspace_id="whatsapp-shop", registry=installed)
    session = await manager.get_session(bodies[0]["session_id"])
    turns = await manager.get_turns(session.id)
    assert sorted(t.content for t in turns if t.role == "user") == sorted(texts)
    assert len([t for t in turns if t.role == "assistant"]) == replies
    assert [t.turn_number for t in turns] == list(range(1, 5 + replies))
    assert len(session.state.intents_seen) == 4  # every message's intent, once
    assert session.state.captured_data == {"email": "ana@example.com"}


async def lifespan_startup(app: Any) -> dict[str, Any]:
    """Run the ASGI lifespan startup as a server does; return the app's answer."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
    )
    answer = await asyncio.wait_for(outbox.get(), timeout=10)
    if answer["type"] == "lifespan.startup.complete":
        await inbox.put({"type": "lifespan.shutdown"})
    await asyncio.wait_for(task, timeout=10)
    return answer


async def test_webhook_refuses_to_start_on_storage_it_cannot_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from examples.webhook import create_app
    finally:
        sys.path.remove(str(ROOT))
    monkeypatch.setenv("FRONTDESK_STORAGE", "nonsense")
    answer = await lifespan_startup(create_app())
    assert answer["type"] == "lifespan.startup.failed"
    assert answer["message"].startswith("no storage backend named 'nonsense'")
    monkeypatch.setenv("FRONTDESK_STORAGE", "memory")
    assert (await lifespan_startup(create_app()))["type"] == "lifespan.startup.complete"


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_webhook_workers_share_one_database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FRONTDESK_"))}
    env["FRONTDESK_STORAGE"] = backend
    if backend == "postgres":
        env["FRONTDESK_POSTGRES_DSN"] = request.getfixturevalue("postgres_project")
    else:
        env["FRONTDESK_SQLITE_PATH"] = str(tmp_path / "shared.db")
    result = subprocess.run(  # noqa: S603 - this interpreter, an example of this repository
        [sys.executable, str(EXAMPLES / "webhook_workers.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"4 worker processes, storage {backend}" in result.stdout
    assert "answered 200: 48 of 48" in result.stdout
    assert "every message stored exactly once, turns gapless: ok" in result.stdout


@pytest.mark.slow
def test_testing_examples_pass_with_uv_run_in_their_folder(tmp_path: Path) -> None:
    # `cd examples/testing && uv run pytest`: the folder is a project of its own, whose
    # environment uv builds from its pyproject.toml (frontdesk[testing] from this
    # checkout's core/). Run on a copy, laid out as in the repository, to leave it clean.
    (tmp_path / "core").symlink_to(ROOT / "core", target_is_directory=True)
    project = tmp_path / "examples" / "testing"
    shutil.copytree(EXAMPLES / "testing", project)
    done = run_ok(uv_executable(), "run", "pytest", "-q", "-p", "no:cacheprovider", cwd=project)
    last = done.stdout.splitlines()[-1]
    assert " passed in " in last
    assert "failed" not in last
    assert "error" not in last


POSTGRES_OPTION = ("--frontdesk-storage", "postgres")


def test_the_testing_plugin_needs_a_server_for_postgres(tmp_path: Path) -> None:
    project = tmp_path / "app_tests"
    shutil.copytree(EXAMPLES / "testing", project)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "FRONTDESK_"))}
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *POSTGRES_OPTION],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 4  # pytest's usage error, before any test runs
    assert "--frontdesk-storage postgres needs a server" in result.stderr
    assert "FRONTDESK_TEST_POSTGRES_DSN" in result.stderr
