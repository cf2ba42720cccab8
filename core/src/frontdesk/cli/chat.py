"""`frontdesk chat AGENT`: talk with an installed agent in the terminal, through the engine."""

from __future__ import annotations

import asyncio
import io
import sys
import uuid
from typing import TYPE_CHECKING

import click

from ..engine import Engine, ModelProviders, RunOutcome
from ..engine.client import ModelClient
from ..errors import ValidationError
from ..pipeline import InboundMessage
from ..registry import AgentRegistry
from ..sessions import SessionManager
from ..storage.memory import InMemoryStorage
from ._errors import one_line, one_line_errors
from ._output import console
from ._registry import load_registry

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["command"]

OFFLINE = "offline"
AGENT_MODELS = "agent"
_QUIT = ("/quit", "/exit", "/q")
_BACK = "/back"
_HELP = ("/help", "/?")
_COMMANDS = (
    ("/help", "list these commands (also /?)"),
    ("/quit", "leave the chat (also /exit, /q, or end of input)"),
    ("/back", "after a hand-off, give the conversation back to the agent"),
    ("//text", "send a message that starts with /: the agent gets /text"),
)


def command() -> click.Command:
    """Build the `chat` command."""

    @click.command("chat")
    @click.argument("agent_id")
    @click.option(
        "-m",
        "--model",
        "model_id",
        default=OFFLINE,
        show_default=True,
        help=(
            "The model for every call: 'offline' (keyword matching, no key needed), "
            "'agent' (the models the agent's config names), or any model id a provider "
            "serves (with frontdesk[llm]: gpt-4o-mini, claude-..., llm's aliases)."
        ),
    )
    def chat(agent_id: str, model_id: str) -> None:
        """Chat with an installed agent: each turn shows intent, confidence, decision, mode.

        The conversation lives in memory and ends with /quit or end of input. After a
        hand-off the agent no longer answers: messages are held for the person it was
        handed to, until /back hands the conversation back to the agent. A line that
        starts with / is a command, never sent to the agent: /help lists them.
        """
        if not model_id.strip():
            raise click.ClickException(
                "--model must name a model: 'offline', 'agent' or a model id a provider serves"
            )
        registry = load_registry()
        with one_line_errors():
            agent = registry.get(agent_id)
            engine = _engine(registry, model_id)
            engine.resolve_models(agent)
        out = console(highlight=False, soft_wrap=True)
        label = _label(model_id, agent.intent_detector.model, agent.orchestrator.model)
        out.print(f"[bold]{agent.name}[/bold] ({agent.id}) · model: {label}", markup=True)
        out.print("Type a message; /help for commands, /quit to leave.", style="dim")
        conversation = f"chat:{uuid.uuid4()}"
        if isinstance(sys.stdin, io.TextIOWrapper):
            # Bytes that are not UTF-8 arrive as lone surrogates, to be reported per line,
            # instead of a decoding error ending the chat.
            sys.stdin.reconfigure(errors="surrogateescape")
        with one_line_errors():
            asyncio.run(_loop(engine, agent_id, conversation, out))

    return chat


def _engine(registry: AgentRegistry, model_id: str) -> Engine:
    manager = SessionManager(InMemoryStorage(), workspace_id="chat", registry=registry)
    model: ModelClient | None = None
    if model_id == OFFLINE:
        from ..testing.offline import OfflineModel

        model = OfflineModel(registry.list())
    elif model_id != AGENT_MODELS:
        providers = ModelProviders()
        return Engine(manager, model=providers.resolve(model_id), providers=providers)
    return Engine(manager, model=model)


def _label(model_id: str, detector: str, orchestrator: str) -> str:
    if model_id == OFFLINE:
        return "offline (keyword matching, no language model; --model for a real one)"
    if model_id == AGENT_MODELS:
        return f"{detector} (intent), {orchestrator} (replies)"
    return model_id


async def _loop(engine: Engine, agent_id: str, conversation: str, out: Console) -> None:
    number = 0
    handed_off: str | None = None  # the session a person has, after a hand-off
    while True:
        try:
            text = await asyncio.to_thread(click.prompt, "you", prompt_suffix="> ")
        except (EOFError, click.Abort):
            out.print()
            return
        if not _is_utf8(text):
            _error("the message is not valid UTF-8 text: check the terminal's encoding")
            continue
        line = text.strip()
        if line.startswith("/") and not line.startswith("//"):
            name = line.split(maxsplit=1)[0].lower()
            if name in _QUIT:
                return
            if name == _BACK and handed_off is not None:
                await _hand_back(engine.manager, handed_off)
                handed_off = None
                out.print("(the conversation is back with the agent)", style="dim")
            else:
                _command(out, name)
            continue
        if line.startswith("//"):
            text = line[1:]  # an escaped slash: the message is the rest
        number += 1
        try:
            outcomes = await engine.handle(
                InboundMessage(
                    agent_id=agent_id,
                    conversation_id=conversation,
                    contact_id="terminal",
                    message_id=f"{conversation}:{number}",
                    content=text,
                )
            )
        except ValidationError as exc:  # this message only (too long, ...): nothing was sent
            _error(one_line(str(exc)))
            continue
        if not outcomes and handed_off is not None:
            # Recorded for the person the conversation was handed to; no run answers it.
            out.print(
                "(held for a person: the conversation is with a human; /back gives it back "
                "to the agent)",
                style="dim",
            )
        for outcome in outcomes:
            _show(out, outcome)
            if outcome.decision == "handoff":
                handed_off = outcome.session.id
                out.print(
                    "(the conversation was handed to a person: the agent holds the next "
                    "messages for them; /back gives it back to the agent, /quit leaves)",
                    style="dim",
                )


async def _hand_back(manager: SessionManager, session_id: str) -> None:
    """Give a handed-off conversation back to the agent: its session becomes active again."""
    session = await manager.get_session(session_id)
    await manager.update_session_with_version(
        session_id, expected_version=session.version, status="active"
    )


def _command(out: Console, name: str) -> None:
    """Answer a chat command other than /quit and a /back that hands back: /help, or an error.

    Nothing of it reaches the agent: a mistyped /qiut must not become a message.
    """
    if name in _HELP:
        for command, what in _COMMANDS:
            out.print(f"  {command:<8} {what}", style="dim", markup=False)
    elif name == _BACK:
        _error("/back: the conversation is with the agent, not handed off; nothing was sent")
    else:
        _error(f"unknown command {name}; nothing was sent. /help lists the commands")


def _is_utf8(text: str) -> bool:
    """False for input that was not UTF-8: Python decodes its bytes to lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _error(text: str) -> None:
    click.echo(f"Error: {text}", err=True)


def _show(out: Console, outcome: RunOutcome) -> None:
    from rich.text import Text

    out.print(Text("agent> ", style="bold") + Text(outcome.reply))
    confidence = f"{outcome.confidence:.2f}" if outcome.confidence is not None else "-"
    called = ", ".join(call.name for call in outcome.tools_called)
    tools = f" · tools {called}" if called else ""
    out.print(
        Text(
            f"  intent {outcome.intent or '-'} ({confidence}) · {outcome.decision} · "
            f"mode {outcome.mode} · {outcome.tokens_used} tokens{tools}",
            style="dim",
        )
    )
    if outcome.handoff_reason:
        out.print(Text(f"  hand-off: {outcome.handoff_reason}", style="dim"))
