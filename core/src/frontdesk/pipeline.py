"""The message pipeline's values: an inbound message, and what `receive`/`complete` return.

The unit of work of a conversational agent is one inbound message. `receive` records it
(deduplicated by the channel's `message_id`) and decides, in the same storage call,
whether this worker runs now; `complete` records the reply, ends the run and hands over
any messages that arrived meanwhile, again in one call:

    receipt = await manager.receive(InboundMessage(
        agent_id="sales", conversation_id="wa:+34600111222", contact_id="+34600111222",
        message_id="wamid.HBgM...", content="hola, ¿tenéis la talla M?",
    ))
    run = receipt.run
    while run is not None:
        reply = await my_engine(run.session, run.history, run.inputs)
        done = await manager.complete(run, SessionChange(turns=[NewTurn(...)]))
        run = done.next_run
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attrs import field, frozen

from .models import Session, Turn
from .validation import check_datetime, check_id, check_text

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "MAX_MESSAGE_ID_LENGTH",
    "Completion",
    "InboundMessage",
    "Receipt",
    "Run",
    "check_idempotency_key",
]

MAX_MESSAGE_ID_LENGTH = 512
"""The longest `message_id` accepted (channel ids are far shorter: WhatsApp's are ~60)."""

MAX_IDEMPOTENCY_KEY_LENGTH = 200
"""The longest idempotency key accepted."""


# -- validation (with the shared layer: ValidationError naming the field) -------------------


def check_idempotency_key(key: object) -> str:
    """Refuse an idempotency key that is not a short, non-blank, storable string."""
    return check_text("idempotency_key", key, max_length=MAX_IDEMPOTENCY_KEY_LENGTH, blank=False)


def _check_id(instance: Any, attribute: Any, value: Any) -> None:
    check_id(attribute.name, value)


def _check_message_id(instance: Any, attribute: Any, value: Any) -> None:
    check_text(attribute.name, value, max_length=MAX_MESSAGE_ID_LENGTH, blank=False)


def _check_content(instance: Any, attribute: Any, value: Any) -> None:
    check_text(attribute.name, value)


def _check_received_at(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        check_datetime(attribute.name, value)


# -- values --------------------------------------------------------------------------------


@frozen
class InboundMessage:
    """One message from a channel, as a webhook delivers it.

    `message_id` is the channel's own id (WhatsApp's `wamid...`): two deliveries with the
    same id on the same conversation are one message. `received_at` is when the channel
    received it, if it says; it becomes the session's `last_activity_at`.
    """

    agent_id: str = field(validator=_check_id)
    conversation_id: str = field(validator=_check_id)
    contact_id: str = field(validator=_check_id)
    message_id: str = field(validator=_check_message_id)
    content: str = field(validator=_check_content)
    received_at: datetime | None = field(default=None, validator=_check_received_at)


@frozen
class Run:
    """The right to answer some of a conversation's messages, held until `complete`.

    - `token`: the fencing token, strictly increasing per session; storage refuses the
      `complete` of a run whose token is no longer the current one.
    - `session`: the session as the run was claimed.
    - `inputs`: the user turns this run answers, oldest first (never empty).
    - `history`: the turns before them (at most the agent's `runs.history_turns`), without
      messages still waiting for a later run.
    - `expires_at`: after this (by the storage's clock) the run counts as abandoned and the
      next `receive` or `resume_abandoned` may take its messages over; `extend` pushes it.
    """

    token: int
    session: Session
    inputs: tuple[Turn, ...]
    history: tuple[Turn, ...]
    expires_at: datetime


@frozen
class Receipt:
    """What `receive` did with a message.

    `turn` is the stored user turn (on a redelivery, the original one); `duplicate` is True
    when the message was already recorded (then nothing was written and `run` is None);
    `run` is the run this worker should do now, or None when another run holds the
    conversation (the message waits for it) or the conversation was handed off to a
    person (`session.status` is `handed_off`: the message is held for them).
    """

    session: Session
    turn: Turn
    duplicate: bool
    run: Run | None


@frozen
class Completion:
    """What `complete` did: the session after it, the turns it added, and the next run.

    `next_run` holds the messages that arrived during the run (None if there were none):
    the same worker answers them and completes again.
    """

    session: Session
    turns: tuple[Turn, ...]
    next_run: Run | None
