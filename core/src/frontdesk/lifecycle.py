"""The session lifecycle's values: listing pages and their cursors, erasure reports.

Listing is keyset pagination on (last activity, id), newest first: a page starts right
after the last item of the previous one, so page 200 costs what page 1 costs and a
session that moves while you page through never shows up twice. The position travels in
an opaque cursor that also records the filters it was made for (and the workspace):
reused with other filters, it is refused with `InvalidCursorError` instead of silently
listing something else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime

import attrs
from attrs import field, frozen

from .errors import InvalidCursorError
from .models import Session, SessionState, SessionStatus, TurnStats

__all__ = [
    "MAX_PAGE_SIZE",
    "ErasureReport",
    "ListPosition",
    "SessionMigration",
    "SessionPage",
    "SessionQuery",
    "SessionSummary",
    "decode_cursor",
    "encode_cursor",
]

MAX_PAGE_SIZE = 1000
"""The largest `limit` of one `list_sessions` page."""


@frozen
class SessionSummary(Session):
    """A session as listings show it: its fields plus its turn totals, never the turns."""

    turn_count: int = field(default=0, kw_only=True)
    tokens_used: int = field(default=0, kw_only=True)

    @classmethod
    def of(cls, session: Session, stats: TurnStats) -> SessionSummary:
        """The summary of `session`, whose turns total `stats`."""
        return cls(
            **attrs.asdict(session, recurse=False),
            turn_count=stats.count,
            tokens_used=stats.tokens_used,
        )


@frozen
class SessionPage:
    """One page of a listing; pass `next_cursor` back for the next (None: this is the last)."""

    items: tuple[SessionSummary, ...]
    next_cursor: str | None = None


@frozen
class ErasureReport:
    """What `erase_contact` removed: how many sessions, and how many turns with them."""

    sessions: int
    turns: int


@frozen
class ListPosition:
    """Where a listing page ends: the last item's activity time and id."""

    last_activity_at: datetime
    session_id: str


@frozen
class SessionQuery:
    """What a backend lists: sessions matching every filter that is set, after `after`.

    Order: `last_activity_at` descending, then id descending. `updated_after` and
    `updated_before` bound `last_activity_at`, both exclusive. At most `limit` items.
    """

    agent_id: str | None = None
    status: SessionStatus | None = None
    mode: str | None = None
    contact_id: str | None = None
    conversation_id: str | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    after: ListPosition | None = None
    limit: int = 50

    def matches(self, session: Session) -> bool:
        """Whether `session` is in this listing (a helper for backends written in Python)."""
        activity = session.last_activity_at
        return (
            (self.agent_id is None or session.agent_id == self.agent_id)
            and (self.status is None or session.status == self.status)
            and (self.mode is None or session.current_mode == self.mode)
            and (self.contact_id is None or session.contact_id == self.contact_id)
            and (self.conversation_id is None or session.conversation_id == self.conversation_id)
            and (self.updated_after is None or activity > self.updated_after)
            and (self.updated_before is None or activity < self.updated_before)
            and (
                self.after is None
                or (activity, session.id) < (self.after.last_activity_at, self.after.session_id)
            )
        )


@frozen
class SessionMigration:
    """A migration of a session to the installed agent, applied as one versioned commit.

    The backend checks `expected_version`, sets `current_mode`, `state` and
    `agent_version`, and counts one version, like any commit.
    """

    expected_version: int
    agent_version: str | None
    current_mode: str
    state: SessionState


# -- cursors ---------------------------------------------------------------------------------

_CHECK_LENGTH = 12


def _binding(workspace_id: str, query: SessionQuery) -> str:
    """A digest of what a cursor is bound to: the workspace and every filter."""
    filters = [
        workspace_id,
        query.agent_id,
        query.status and str(query.status),
        query.mode,
        query.contact_id,
        query.conversation_id,
        query.updated_after and query.updated_after.isoformat(),
        query.updated_before and query.updated_before.isoformat(),
    ]
    text = json.dumps(filters, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def encode_cursor(workspace_id: str, query: SessionQuery, position: ListPosition) -> str:
    """The opaque cursor for the page after `position` of this listing."""
    body = json.dumps(
        [position.last_activity_at.isoformat(), position.session_id, _binding(workspace_id, query)],
        separators=(",", ":"),
        ensure_ascii=True,
    )
    check = hashlib.sha256(body.encode()).hexdigest()[:_CHECK_LENGTH]
    return base64.urlsafe_b64encode((check + body).encode()).decode().rstrip("=")


def decode_cursor(cursor: object, workspace_id: str, query: SessionQuery) -> ListPosition:
    """The position in `cursor`; `InvalidCursorError` unless this listing made it."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > 1024:
        raise InvalidCursorError(str(cursor)[:80], "a cursor is a non-empty string")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        check, body = raw[:_CHECK_LENGTH], raw[_CHECK_LENGTH:]
        if hashlib.sha256(body.encode()).hexdigest()[:_CHECK_LENGTH] != check:
            raise ValueError("checksum")
        stamp, session_id, binding = json.loads(body)
        when = datetime.fromisoformat(stamp)
        if when.tzinfo is None or not isinstance(session_id, str) or not isinstance(binding, str):
            raise ValueError("shape")
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error):
        raise InvalidCursorError(cursor[:80], "it is not a cursor frontdesk made") from None
    if binding != _binding(workspace_id, query):
        raise InvalidCursorError(
            cursor[:80],
            "it belongs to a listing with other filters (or another workspace)",
        )
    return ListPosition(when, session_id)
