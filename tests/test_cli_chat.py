"""`frontdesk chat`: a terminal conversation with an installed agent, through the engine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from frontdesk import AgentRegistry
from frontdesk.cli import create_cli
from frontdesk.registry import use_default_registry


@pytest.fixture(autouse=True)
def discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentRegistry]:
    """The installed agents, as in a new process; llm's settings kept out of the way."""
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with use_default_registry(AgentRegistry(autodiscover=True)) as registry:
        yield registry


def chat(*args: str, lines: str | bytes) -> Result:
    return CliRunner().invoke(create_cli(), ["chat", *args], input=lines, prog_name="frontdesk")


def test_the_offline_model_is_the_default_and_says_so() -> None:
    result = chat("sales", lines="hola, buenas\nzxcv qwer\n/quit\n")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "model: offline (keyword matching, no language model" in out
    assert "agent> [offline] Sales assistant" in out
    assert "intent greeting (0.90) · proceed · mode greeting" in out
    assert "intent other (0.50) · clarify · mode greeting" in out


def test_after_a_handoff_messages_are_held_for_a_person() -> None:
    result = chat("sales", lines="👍\nhola\n")

    assert result.exit_code == 0, result.output
    assert "· handoff ·" in result.stdout
    assert "Una persona de la tienda" in result.stdout
    assert "hand-off: intent 'other' detected with confidence 0.2" in result.stdout
    assert "the agent holds the next messages for them" in result.stdout
    assert "held for a person: the conversation is with a human" in result.stdout
    assert "intent greeting" not in result.stdout  # the agent did not answer "hola"


def test_back_gives_the_conversation_back_to_the_agent() -> None:
    result = chat("sales", lines="👍\nhola\n/back\nhola, buenas\n")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "held for a person" in out
    assert "(the conversation is back with the agent)" in out
    # Only the message after the hand-back is answered, in the same session.
    assert out.count("agent> ") == 2
    assert "intent greeting (0.90) · proceed" in out


def test_the_agents_own_models_without_a_key_fail_in_one_line_before_the_chat() -> None:
    result = chat("support", "--model", "agent", lines="hola\n")

    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: model 'gpt-4o-mini' needs an API key")


def test_any_model_a_provider_serves(tmp_path: Path) -> None:
    result = chat("support", "--model", "echo", lines="hola\n")

    assert result.exit_code == 0, result.output
    assert "model: echo" in result.stdout
    assert "does not match the intent schema" in result.stdout


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["nope"], "Error: no agent 'nope' is registered"),
        (["sales", "--model", "no-such-model"], "Error: no installed model provider claims"),
    ],
    ids=["unknown-agent", "unknown-model"],
)
def test_bad_arguments_fail_in_one_line(args: list[str], error: str) -> None:
    result = chat(*args, lines="hola\n")

    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(error)


def test_end_of_input_ends_the_chat() -> None:
    result = chat("support", lines="")
    assert result.exit_code == 0, result.output
    assert "Type a message" in result.stdout


def test_a_message_over_the_limit_is_reported_and_the_chat_goes_on() -> None:
    result = chat("sales", lines="x" * 70_000 + "\nhola\n/quit\n")

    assert result.exit_code == 0, result.output
    [error] = result.stderr.splitlines()
    assert error.startswith("Error: invalid content: is 70000 characters long")
    assert "intent greeting (0.90) · proceed" in result.stdout


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"], ids=["utf8-locale", "c-locale"])
def test_input_that_is_not_utf8_is_reported_as_such_and_the_chat_goes_on(
    tmp_path: Path, locale: str
) -> None:
    # A real process: how its standard input decodes bytes is what this is about.
    env = {**os.environ, "LC_ALL": locale, "LANG": locale, "LLM_USER_PATH": str(tmp_path)}
    env.pop("PYTHONIOENCODING", None)
    result = subprocess.run(
        [sys.executable, "-c", "from frontdesk.cli import main; main()", "chat", "sales"],
        input="ñandú\n".encode("latin-1") + b"hola\n/quit\n",
        capture_output=True,
        env=env,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    [error] = result.stderr.decode().splitlines()
    assert error == "Error: the message is not valid UTF-8 text: check the terminal's encoding"
    assert "intent greeting (0.90) · proceed" in result.stdout.decode()


def test_an_empty_model_is_refused() -> None:
    result = chat("sales", "--model", " ", lines="hola\n")

    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: --model must name a model")


@pytest.mark.parametrize(
    ("agent", "text"),
    [
        ("sales", "quiero hablar con una persona"),
        ("sales", "can I talk to a human?"),
        ("support", "pásame con un agente, por favor"),
    ],
    ids=["sales-persona", "sales-human", "support-agente"],
)
def test_asking_for_a_person_hands_off_with_the_offline_model(agent: str, text: str) -> None:
    result = chat(agent, lines=f"{text}\nhola\n")

    assert result.exit_code == 0, result.output
    assert "intent wants_human (0.00) · handoff" in result.stdout
    assert "Una persona" in result.stdout
    assert "held for a person" in result.stdout  # "hola" waits for the person


def test_help_lists_the_commands_and_is_not_sent_to_the_agent() -> None:
    result = chat("sales", lines="/help\nhola\n/quit\n")

    assert result.exit_code == 0, result.output
    assert "/help for commands" in result.stdout
    assert "leave the chat" in result.stdout
    assert "/back" in result.stdout
    # Only "hola" reached the agent: one answer, and it is the greeting.
    assert result.stdout.count("agent> ") == 1
    assert "intent greeting (0.90) · proceed" in result.stdout


def test_an_unknown_command_says_so_and_sends_nothing() -> None:
    result = chat("sales", lines="/qiut\n/back\nhola\n/QUIT\nnot sent\n")

    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "Error: unknown command /qiut; nothing was sent. /help lists the commands",
        "Error: /back: the conversation is with the agent, not handed off; nothing was sent",
    ]
    assert result.stdout.count("agent> ") == 1
    assert "handoff" not in result.stdout


def test_a_double_slash_sends_a_message_that_starts_with_a_slash() -> None:
    result = chat("sales", lines="//hola\n/q\n")

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.count("agent> ") == 1
