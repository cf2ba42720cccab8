"""What a failed PostgreSQL request means for the data, from its SQLSTATE and how far it got.

Any backend that reaches PostgreSQL (the Supabase backend through PostgREST, or a driver
directly) classifies its failures with `classify(sqlstate, phase)`, so that every backend
tells callers the same thing. The rule (docs/supabase.md has the table with examples):

- A failure before anything was sent (`Phase.CONNECT`), or while the transaction's
  statements ran but before COMMIT was sent (`Phase.TRANSACTION`), never applied a write:
  PostgreSQL rolls back a transaction that was not committed, whatever ended it.
- Once COMMIT is on its way (`Phase.COMMIT`; PostgREST's answers are always in this phase,
  since it runs the whole transaction, COMMIT included), an *error answer* still means the
  transaction rolled back (an ERROR aborts it; after the commit record nothing can raise
  one). Only a connection that ended without the COMMIT's answer leaves the outcome
  unknown: no SQLSTATE at all, class 08, admin or crash shutdown (57P01, 57P02, 57P04) and
  40003 (statement completion unknown). Those are `may_have_applied=True`.

Failures that another attempt may fix (lost connections, serialization failures and
deadlocks, insufficient resources, operator intervention, lock timeouts) are
`StorageUnavailableError`; every other SQLSTATE is a plain `StorageError` (a bug, a missing
migration, input the database refused): retrying it changes nothing.

    failure = classify("57P01", Phase.COMMIT)  # the backend was terminated around COMMIT
    failure.error, failure.may_have_applied  # StorageUnavailableError, True
"""

from __future__ import annotations

import enum

import attrs

from ..errors import StorageError, StorageUnavailableError

__all__ = ["Phase", "SqlFailure", "classify"]


class Phase(enum.Enum):
    """How far a request had got when it failed."""

    CONNECT = "connect"
    """Nothing was sent: connecting, or waiting for a pooled connection."""
    TRANSACTION = "transaction"
    """The transaction's statements were sent; COMMIT was not."""
    COMMIT = "commit"
    """COMMIT was sent (or the whole transaction ran elsewhere, as in PostgREST)."""


@attrs.frozen
class SqlFailure:
    """The classification of one failed request."""

    error: type[StorageError]
    """`StorageUnavailableError` when another attempt may succeed, else `StorageError`."""
    may_have_applied: bool
    """Whether a write may have been committed (always False for what provably did not)."""
    connection_lost: bool
    """The connection ended with the request: a read may be retried on a fresh one."""


# The connection ended. At COMMIT, its answer may have been lost after the commit record.
_CONNECTION_ENDED = frozenset({"57P01", "57P02", "57P04"})
# The session was ended while idle before the request could run: the request did nothing.
_ENDED_WHILE_IDLE = frozenset({"57P05", "25P03"})
# Never an established connection.
_NEVER_CONNECTED = frozenset({"08001", "08004", "57P03"})
_STATEMENT_COMPLETION_UNKNOWN = "40003"
# Transient: another attempt (after a moment) may succeed.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57"})
_TRANSIENT_CODES = frozenset({"55P03", "25P03"})  # lock_not_available, idle-in-tx timeout


def classify(sqlstate: str | None, phase: Phase) -> SqlFailure:
    """Classify a failure: `sqlstate` is None when the connection failed without one."""
    if sqlstate is None:
        # libpq's own error (server closed the connection, socket error): no answer came.
        return SqlFailure(
            StorageUnavailableError, may_have_applied=phase is Phase.COMMIT, connection_lost=True
        )
    code = sqlstate.upper()
    if code in _NEVER_CONNECTED:
        return SqlFailure(StorageUnavailableError, may_have_applied=False, connection_lost=True)
    if code in _ENDED_WHILE_IDLE:
        return SqlFailure(StorageUnavailableError, may_have_applied=False, connection_lost=True)
    if code.startswith("08") or code in _CONNECTION_ENDED:
        return SqlFailure(
            StorageUnavailableError, may_have_applied=phase is Phase.COMMIT, connection_lost=True
        )
    if code == _STATEMENT_COMPLETION_UNKNOWN:
        return SqlFailure(
            StorageUnavailableError, may_have_applied=phase is Phase.COMMIT, connection_lost=False
        )
    if code[:2] in _TRANSIENT_CLASSES or code in _TRANSIENT_CODES:
        # An ERROR answer: the transaction was rolled back.
        return SqlFailure(StorageUnavailableError, may_have_applied=False, connection_lost=False)
    return SqlFailure(StorageError, may_have_applied=False, connection_lost=False)
