"""`frontdesk demo`: the simulation, its checks, and that the checks can fail."""

from __future__ import annotations

import io
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from frontdesk import (
    AgentRegistry,
    FrontdeskError,
    InMemoryStorage,
    Role,
    Session,
    SessionManager,
    SessionStatus,
    StorageError,
    StorageUnavailableError,
    ValidationError,
)
from frontdesk.cli import create_cli
from frontdesk.cli.demo import ProgressLines
from frontdesk.demo import MAX_CONVERSATIONS, MAX_TOTAL_MESSAGES, run_demo
from frontdesk.pipeline import Receipt
from frontdesk.registry import use_default_registry
from frontdesk.storage import Delivery, NewSession
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
    assert "frontdesk demo (memory, seed 3, policy merge)" in out
    assert re.search(r"^ lost updates +0 $", out, re.M), out
    assert re.search(r"^ storage requests per message +2\.\d\d $", out, re.M), out
    for check in (
        "ok every message processed: no errors",
        "ok one session per conversation: 30 sessions",
        "ok lost updates: 0: every message found exactly once",
        "ok duplicate turns: 0: every redelivery recognised",
        "ok messages answered exactly once: each by one completed run, or held for a human",
        "ok crashed worker's messages picked up: answered after its run expired",
        "ok gapless numbering",
        "ok versions count every write",
        "ok conversations ended",
    ):
        assert check in out


async def test_demo_has_real_contention(installed: AgentRegistry) -> None:
    report = await run_demo(InMemoryStorage(), installed, conversations=40, seed=11)
    assert report.ok
    assert report.lost_updates == 0
    assert report.duplicates > 0  # redeliveries, recognised
    assert report.deliveries == report.messages + report.duplicates
    assert report.runs < report.messages  # bursts merged into one run
    assert report.sessions == 40
    assert report.turns == report.messages + report.runs  # one reply per run
    assert report.calls_per_message < 3
    assert {check.name for check in report.checks} >= {"lost updates", "gapless numbering"}


@pytest.mark.parametrize("policy", ["merge", "enqueue", "interrupt", "reject"])
async def test_every_policy_passes_the_checks(installed: AgentRegistry, policy: str) -> None:
    report = await run_demo(InMemoryStorage(), installed, conversations=30, seed=7, policy=policy)
    assert report.ok, [check for check in report.checks if not check.passed]
    assert report.policy == policy
    if policy == "enqueue":
        assert report.runs + report.held == report.messages
    if policy == "reject":
        assert report.refused > 0


async def test_a_seed_reproduces_the_traffic(installed: AgentRegistry) -> None:
    first = await run_demo(InMemoryStorage(), installed, conversations=25, seed=5)
    second = await run_demo(InMemoryStorage(), installed, conversations=25, seed=5)
    assert (first.messages, first.turns, first.sessions) == (
        second.messages,
        second.turns,
        second.sessions,
    )


class NoDedupe(InMemoryStorage):
    """A backend that records every delivery of a message: the demo's checks must catch it."""

    def _find_message(self, conversation: object, message_id: str) -> None:
        return None


async def test_demo_catches_a_backend_without_dedupe(installed: AgentRegistry) -> None:
    report = await run_demo(NoDedupe(), installed, conversations=40, seed=11)
    assert not report.ok
    failed = {check.name for check in report.checks if not check.passed}
    assert "duplicate turns" in failed


async def test_messages_after_a_handoff_are_held_for_a_human(installed: AgentRegistry) -> None:
    report = await run_demo(InMemoryStorage(), installed, conversations=60, seed=3)
    assert report.ok, [check for check in report.checks if not check.passed]
    assert report.held > 0
    assert report.sessions == 60  # the person keeps the conversation: no new session
    assert report.turns == report.messages + report.runs  # no reply to a held message
    answered = next(c for c in report.checks if c.name == "messages answered exactly once")
    assert f"held for a human ({report.held} on handed-off sessions)" in answered.detail


class AnswersAfterHandoff(InMemoryStorage):
    """A backend where the next message after a hand-off starts a new session, as before."""

    def _handed_off(self, conversation: object) -> None:
        return None


async def test_demo_catches_a_backend_that_answers_after_a_handoff(
    installed: AgentRegistry,
) -> None:
    report = await run_demo(AnswersAfterHandoff(), installed, conversations=60, seed=3)
    assert not report.ok
    failed = {check.name for check in report.checks if not check.passed}
    assert "one session per conversation" in failed


BROKEN_STORAGE = """
from frontdesk.storage.memory import InMemoryStorage


class NoDedupe(InMemoryStorage):
    def _find_message(self, conversation, message_id):
        return None
"""


def test_demo_fails_with_exit_code_one_when_a_check_fails(
    installed: AgentRegistry, make_distribution: DistributionMaker
) -> None:
    make_distribution(
        "frontdesk-broken-storage",
        modules={"broken_storage": BROKEN_STORAGE},
        storage={"no-dedupe": "broken_storage:NoDedupe"},
    )
    result = run("demo", "--conversations", "40", "--seed", "11", "--storage", "no-dedupe")
    assert result.exit_code == 1
    assert "FAIL duplicate turns" in result.stdout


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
    assert "frontdesk demo (supabase, seed 2, policy merge)" in result.stdout
    assert "ok lost updates" in result.stdout


def test_demo_on_postgres(
    installed: AgentRegistry, postgres_project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run("demo", "--storage", "postgres", "--conversations", "12", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert "frontdesk demo (postgres, seed 2, policy merge)" in result.stdout
    assert "ok lost updates" in result.stdout


def test_demo_on_sqlite(
    installed: AgentRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTDESK_SQLITE_PATH", str(tmp_path / "demo.db"))
    result = run("demo", "--storage", "sqlite", "--conversations", "12", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert "frontdesk demo (sqlite, seed 2, policy merge)" in result.stdout
    assert "ok lost updates" in result.stdout
    assert (tmp_path / "demo.db").stat().st_size > 0


async def test_no_agents_is_a_frontdesk_error() -> None:
    with pytest.raises(FrontdeskError, match="no agents installed"):
        await run_demo(InMemoryStorage(), AgentRegistry())


# -- sizes, progress, storage names ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--conversations", "99999999999999999999"],
            f"99999999999999999999 is not in the range 1<=x<={MAX_CONVERSATIONS}",
        ),
        (["--messages", "101"], "101 is not in the range 1<=x<=100"),
        (["--workers", "1001"], "1001 is not in the range 1<=x<=1000"),
        (
            ["--conversations", "100000", "--messages", "100"],
            "invalid conversations x messages: 100,000 x 100 is too many messages (the limit "
            f"is {MAX_TOTAL_MESSAGES:,})",
        ),
    ],
    ids=["conversations", "messages", "workers", "total"],
)
def test_demo_sizes_are_bounded(installed: AgentRegistry, args: list[str], message: str) -> None:
    result = run("demo", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


async def test_run_demo_refuses_sizes_past_the_bounds(installed: AgentRegistry) -> None:
    with pytest.raises(ValidationError) as excinfo:
        await run_demo(InMemoryStorage(), installed, conversations=MAX_CONVERSATIONS + 1)
    assert excinfo.value.field == "conversations"
    assert excinfo.value.limit == MAX_CONVERSATIONS


def test_progress_lines_only_on_long_runs() -> None:
    now = [100.0]
    out = io.StringIO()
    progress = ProgressLines(out, every=5.0, clock=lambda: now[0])
    now[0] = 104.0
    progress(10, 1000)
    assert out.getvalue() == ""  # a short run prints nothing
    now[0] = 105.5
    progress(250, 1000)
    now[0] = 106.0
    progress(260, 1000)  # the next line waits another 5 seconds
    now[0] = 111.0
    progress(1000, 1000)
    assert out.getvalue().splitlines() == [
        "demo: 250 of 1,000 messages (25%), 6 s",
        "demo: 1,000 of 1,000 messages (100%), 11 s",
    ]


def test_demo_reports_progress_to_stderr_only(installed: AgentRegistry) -> None:
    result = run("demo", "--conversations", "5", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # not a terminal, and short: no progress at all
    assert "ok one session per conversation: 5 sessions" in result.stdout


def test_demo_says_one_session(installed: AgentRegistry) -> None:
    result = run("demo", "--conversations", "1", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert "ok one session per conversation: 1 session\n" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "name"),
    [(["--storage", ""], None, "''"), ([], " memory", "' memory'")],
    ids=["empty-option", "spaced-env"],
)
def test_demo_refuses_storage_names_that_are_not_names(
    installed: AgentRegistry,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: str | None,
    name: str,
) -> None:
    if env is not None:
        monkeypatch.setenv("FRONTDESK_STORAGE", env)
    result = run("demo", "--conversations", "2", *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: no storage backend named {name}; installed backends: "
        + result.stderr.split("installed backends: ")[1].rstrip("\n")
    ]
    assert "memory" in result.stderr.split("installed backends: ")[1]


# -- storage that fails --------------------------------------------------------------------------


def test_demo_with_unreachable_supabase_fails_in_one_line(
    installed: AgentRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SUPABASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYSJ9.c2ln")
    result = run("demo", "--storage", "supabase", "--conversations", "50")
    assert result.exit_code == 1
    assert result.stdout == ""  # no traffic ran, no report with an "ok"
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: the supabase storage did not answer, so the demo did not start")


class WritesFail(InMemoryStorage):
    """Reads work; every new session fails as a network error would."""

    async def create_session(
        self, new: NewSession, *, return_existing: bool = False
    ) -> tuple[Session, bool]:
        raise StorageUnavailableError(
            "create_session", "ConnectError: refused", may_have_applied=False
        )

    async def receive(self, delivery: Delivery) -> Receipt:
        raise StorageUnavailableError("receive", "ConnectError: refused", may_have_applied=False)


async def test_nothing_stored_is_never_ok(installed: AgentRegistry) -> None:
    report = await run_demo(WritesFail(), installed, conversations=20, seed=4)
    assert report.sessions == 0
    assert [check.name for check in report.checks if check.passed] == []
    processed = next(c for c in report.checks if c.name == "every message processed")
    # The same error, once, with how often it happened.
    assert processed.detail.startswith("1: StorageUnavailableError: storage operation")
    assert f"({report.deliveries}x)" in processed.detail
    lost = next(c for c in report.checks if c.name == "lost updates")
    assert "20 conversations not checked" in lost.detail
    assert report.lost_updates == 20


def test_demo_cli_when_nothing_is_stored(
    installed: AgentRegistry, make_distribution: DistributionMaker
) -> None:
    make_distribution(
        "frontdesk-failing-storage",
        modules={"failing_storage": FAILING_STORAGE},
        storage={"writes-fail": "failing_storage:WritesFail"},
    )
    result = run("demo", "--conversations", "6", "--seed", "1", "--storage", "writes-fail")
    assert result.exit_code == 1
    assert "ok " not in result.stdout
    assert "FAIL lost updates" in result.stdout


async def test_unreachable_storage_is_a_storage_error(installed: AgentRegistry) -> None:
    class Down(InMemoryStorage):
        async def find_active_session(
            self, workspace_id: str, conversation_id: str, agent_id: str
        ) -> Session | None:
            raise StorageUnavailableError("find_active_session", "down", may_have_applied=False)

    storage = Down()
    with pytest.raises(StorageError, match="the down storage did not answer"):
        await run_demo(storage, installed, storage_name="down")
    assert repr(storage) == "<Down sessions=0>"  # nothing was written


FAILING_STORAGE = """
from frontdesk import StorageUnavailableError
from frontdesk.storage.memory import InMemoryStorage


class WritesFail(InMemoryStorage):
    async def create_session(self, new, *, return_existing=False):
        raise StorageUnavailableError("create_session", "refused", may_have_applied=False)

    async def receive(self, delivery):
        raise StorageUnavailableError("receive", "refused", may_have_applied=False)
"""


def test_demo_with_a_malformed_supabase_url_fails_in_one_line(
    installed: AgentRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_URL", "not-a-url")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "some-key")
    result = run("demo", "--storage", "supabase")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: SUPABASE_URL is not a valid URL ('not-a-url')")
    assert result.stderr.count("\n") == 1


async def test_the_engine_answers_with_the_offline_model(installed: AgentRegistry) -> None:
    storage = InMemoryStorage()
    report = await run_demo(storage, installed, conversations=10, seed=4, keep=True)
    assert report.ok, [check for check in report.checks if not check.passed]

    manager = SessionManager(storage, workspace_id=report.workspace, registry=installed)
    page = await manager.list_sessions(limit=100)
    assert len(page.items) == 10
    held = 0
    for item in page.items:
        turns = await manager.get_turns(item.id)
        replies = [t for t in turns if t.role is Role.ASSISTANT]
        assert replies
        handoff = installed.get(item.agent_id).handoff_message  # a person takes over
        assert all(t.content.startswith("[offline] ") or t.content == handoff for t in replies)
        assert all(t.tokens_used for t in replies)  # counted by the engine, per run
        unanswered = [t for t in turns if t.role is Role.USER and not t.intent_detected]
        if item.status is not SessionStatus.HANDED_OFF:
            assert not unanswered
        held += len(unanswered)
    assert held == report.held  # only messages held for a person have no intent


def test_demo_says_what_answers(installed: AgentRegistry) -> None:
    result = run("demo", "--conversations", "5", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert re.search(
        r"^ answered by +engine, offline model \(keyword matching\) $", result.stdout, re.M
    )
    help_text = run("--help").stdout
    assert "through the engine (offline model" in " ".join(help_text.split())
