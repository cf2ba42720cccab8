"""The message pipeline's rules, as pure functions over one session's run bookkeeping.

A backend keeps, per session, a `RunState` (the last token handed out, the live run's
expiry and inputs) and which user turns are still waiting for an answer ("pending"). These
functions decide what `receive`, `complete`, `extend_run` and `resume_abandoned` do with
them; the in-memory backend calls them inside its lock, the SQL functions implement the
same rules in plpgsql (`sql/0003_pipeline.sql`). A backend written in Python reuses them.

Expiry is judged by `now`, which must be the storage's clock, never a worker's.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from attrs import frozen

from ..config import DoubleTexting
from ..errors import ValidationError
from ..models import Turn

__all__ = [
    "ReceivePlan",
    "RunState",
    "can_resume",
    "end_run",
    "is_current",
    "pick_history",
    "pick_inputs",
    "plan_receive",
    "purgeable",
    "start_run",
]


@frozen
class RunState:
    """A session's run bookkeeping.

    `token` is the last token handed out (0: never); `expires_at` is set while a run holds
    the session (live until then, abandoned after) and None when no run does; `inputs` are
    the turn numbers the holding run answers.
    """

    token: int = 0
    expires_at: datetime | None = None
    inputs: tuple[int, ...] = ()

    def held(self) -> bool:
        """Whether a run (live or abandoned) holds the session."""
        return self.expires_at is not None

    def live(self, now: datetime) -> bool:
        """Whether a run holds the session and has not expired."""
        return self.expires_at is not None and now < self.expires_at


class ReceivePlan(enum.Enum):
    """What `receive` does with a new message, after recording it (or instead)."""

    START = "start"
    """Start a run now (token + 1) over the pending messages, this one included."""
    WAIT = "wait"
    """Record the message; the live run's `complete` hands it over."""
    BUSY = "busy"
    """Record nothing: raise `ConversationBusyError`."""


def plan_receive(run: RunState, policy: DoubleTexting, now: datetime) -> ReceivePlan:
    """What a new (not duplicate) message does, given the session's run."""
    if not run.live(now):
        return ReceivePlan.START  # nobody holds it, or its run was abandoned
    if policy is DoubleTexting.REJECT:
        return ReceivePlan.BUSY
    if policy is DoubleTexting.INTERRUPT:
        return ReceivePlan.START
    return ReceivePlan.WAIT


def pick_inputs(policy: DoubleTexting, pending: Sequence[int]) -> tuple[int, ...]:
    """The pending turn numbers a new run answers: the oldest under enqueue, else all."""
    ordered = sorted(pending)
    if policy is DoubleTexting.ENQUEUE:
        return tuple(ordered[:1])
    return tuple(ordered)


def start_run(
    run: RunState, policy: DoubleTexting, timeout: float, pending: Sequence[int], now: datetime
) -> RunState:
    """A new run over `pending`, token + 1, expiring `timeout` s from `now`.

    `pending` empty raises `ValidationError`: a run answers at least one message (`end_run`
    starts one only when something is pending).
    """
    inputs = pick_inputs(policy, pending)
    if not inputs:
        raise ValidationError(
            "pending",
            "must name at least one turn waiting for an answer: a run answers messages "
            "(end_run starts a run only when one is pending)",
            outcome="no run was started",
        )
    return RunState(run.token + 1, now + timedelta(seconds=timeout), inputs)


def is_current(run: RunState, token: int) -> bool:
    """Whether run `token` may still complete or extend: it holds the session (live or not)."""
    return run.held() and run.token == token


def end_run(
    run: RunState, policy: DoubleTexting, timeout: float, pending: Sequence[int], now: datetime
) -> RunState:
    """After a complete: the next run over what is still pending, or no run."""
    if pending:
        return start_run(run, policy, timeout, pending, now)
    return RunState(run.token, None, ())


def can_resume(run: RunState, pending: Sequence[int], now: datetime) -> bool:
    """Whether `resume_abandoned` may claim the session: its run expired with messages."""
    return run.held() and not run.live(now) and bool(pending)


def purgeable(run: RunState, pending: Sequence[int], now: datetime) -> bool:
    """Whether retention may delete the session: no live run, no message awaiting an answer.

    Deleting such a session would make the worker's `complete` fail with
    `SessionNotFoundError` and drop messages nobody answered.
    """
    return not run.live(now) and not pending


def pick_history(turns: Sequence[Turn], pending: Collection[int], limit: int) -> list[Turn]:
    """A run's history: the last `limit` turns (in order) that are not waiting for an answer.

    Messages still pending (the run's inputs, and any waiting for a later run) are left out,
    so under `enqueue` a run never sees a message it does not answer.
    """
    if limit <= 0:
        return []
    settled = [turn for turn in turns if turn.turn_number not in pending]
    return settled[-limit:]
