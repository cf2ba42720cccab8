"""`frontdesk runs resume`: answer the messages of runs whose worker crashed.

A run holds a conversation until `complete`, or until it expires (the agent's
`runs.timeout`). A worker that crashed mid-run leaves its messages to the conversation's
next message, or to this command, run periodically (cron, a scheduler):

    frontdesk runs resume --workspace acme --storage postgres --model agent
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..errors import EngineError, ModelNotFoundError
from ._errors import OFFLINE_HINT, one_line
from ._output import count
from .sessions import _run, _where

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..config import AgentConfig
    from ..engine import Engine, RunOutcome
    from ..sessions import SessionManager

__all__ = ["command"]

OFFLINE = "offline"
AGENT_MODELS = "agent"


def command() -> click.Group:
    """Build the `runs` group: resume."""

    @click.group("runs")
    def runs() -> None:
        """The message pipeline's runs: pick up what crashed workers left.

        Choose the workspace with --workspace or FRONTDESK_WORKSPACE, and the storage as
        everywhere with --storage or FRONTDESK_STORAGE.
        """

    @runs.command("resume")
    @_where
    @click.option(
        "--limit",
        type=click.IntRange(1, 10_000),
        default=100,
        show_default=True,
        help="Claim at most this many conversations.",
    )
    @click.option(
        "-m",
        "--model",
        "model_id",
        default=AGENT_MODELS,
        show_default=True,
        help=(
            "The model for every call: 'agent' (the models each agent's config names), "
            "'offline' (keyword matching, no key needed), or any model id a provider serves."
        ),
    )
    def resume(workspace: str, storage_name: str, limit: int, model_id: str) -> None:
        """Claim conversations whose run expired with unanswered messages; answer them.

        Each claimed conversation gets a new run over every unanswered message, answered
        by its agent and completed, as the crashed worker would have done. The models of
        every installed agent are resolved first: a wrong setup (a missing API key, a model
        nobody serves) fails in one line before any conversation is claimed, so the next
        resume, with the setup fixed, answers them at once. A setup that breaks during a
        run (a key the provider refuses) also hands nothing off: those runs expire again.
        """
        if not model_id.strip():
            raise click.ClickException(
                "--model must name a model: 'agent', 'offline' or a model id a provider serves"
            )

        async def resume_all(manager: SessionManager) -> list[list[RunOutcome]]:
            engine = _engine(manager, model_id)
            _check_models(engine, manager.registry.list())
            claimed = await manager.resume_abandoned(limit=limit)
            return [await engine.answer(run) for run in claimed]

        answered = _run(workspace, storage_name, "resume", resume_all)
        messages = sum(len(outcome.inputs) for outcomes in answered for outcome in outcomes)
        click.echo(
            f"resumed {count(len(answered), 'conversation')} in workspace {workspace}: "
            f"answered {count(messages, 'message')}"
        )
        for outcomes in answered:
            for outcome in outcomes:
                click.echo(
                    f"  {outcome.session.id} ({outcome.session.conversation_id}): "
                    f"{count(len(outcome.inputs), 'message')}, {outcome.decision}, "
                    f"mode {outcome.mode}"
                )

    return runs


def _engine(manager: SessionManager, model_id: str) -> Engine:
    from ..engine import Engine, ModelProviders

    if model_id == AGENT_MODELS:
        return Engine(manager)
    if model_id == OFFLINE:
        from ..testing.offline import OfflineModel

        return Engine(manager, model=OfflineModel(manager.registry.list()))
    providers = ModelProviders()
    return Engine(manager, model=providers.resolve(model_id), providers=providers)


def _check_models(engine: Engine, agents: Iterable[AgentConfig]) -> None:
    """Resolve every model the agents name, as `Engine.handle` does before `receive`.

    `resume_abandoned` claims conversations of every installed agent: one whose models
    cannot run would keep its claimed conversations for another `runs.timeout` and answer
    none of them.
    """
    for agent in agents:
        try:
            engine.resolve_models(agent)
        except EngineError as exc:
            if isinstance(exc, ModelNotFoundError):
                exc = exc.with_offline_hint(OFFLINE_HINT)
            raise click.ClickException(
                f"agent {agent.id!r} cannot run, so no conversation was claimed: "
                f"{one_line(str(exc))}"
            ) from exc
