"""A message that arrives while a hand-off is being committed is held for the person.

On PostgreSQL (and so Supabase, through the same functions) `frontdesk_receive` and the
hand-off run in separate transactions. Here the hand-off is left uncommitted while a
delivery for the same conversation waits on it; after the commit, the delivery must land
on the handed-off session with no run, not on a new active session.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg

from frontdesk.storage.migrations import apply_migrations


def _call(conn: psycopg.Connection[Any], function: str, **arguments: Any) -> Any:
    named = ", ".join(f"{name} => %({name})s" for name in arguments)
    row = conn.execute(f"select public.{function}({named})", arguments).fetchone()
    assert row is not None
    return row[0]


def _receive(conn: psycopg.Connection[Any], message_id: str) -> Any:
    return _call(
        conn,
        "frontdesk_receive",
        p_workspace_id="w",
        p_session_id=str(uuid.uuid4()),
        p_agent_id="a",
        p_conversation_id="wa:1",
        p_contact_id="u",
        p_current_mode="greeting",
        p_message_id=message_id,
        p_content=f"message {message_id}",
        p_policy="merge",
        p_timeout=60.0,
        p_history_turns=10,
    )


def _wait_until_blocked(conn: psycopg.Connection[Any], pid: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = conn.execute(
            "select wait_event_type from pg_stat_activity where pid = %s", (pid,)
        ).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.01)
    raise AssertionError("the delivery never waited for the hand-off's lock")


def test_a_delivery_racing_a_handoff_is_held(app_database: str) -> None:
    apply_migrations(app_database)
    with (
        psycopg.connect(app_database, autocommit=True) as worker,
        psycopg.connect(app_database, autocommit=True) as webhook,
        psycopg.connect(app_database, autocommit=True) as observer,
    ):
        first = _receive(webhook, "m1")
        session_id = first["session"]["id"]

        # The run that decides the hand-off completes, but has not committed yet.
        worker.execute("begin")
        _call(
            worker,
            "frontdesk_complete",
            p_workspace_id="w",
            p_session_id=session_id,
            p_token=first["run"]["token"],
            p_policy="merge",
            p_timeout=60.0,
            p_history_turns=10,
            p_status="handed_off",
        )
        received: dict[str, Any] = {}
        delivery = threading.Thread(target=lambda: received.update(r=_receive(webhook, "m2")))
        delivery.start()
        try:
            _wait_until_blocked(observer, webhook.info.backend_pid)
        finally:
            worker.execute("commit")
            delivery.join(timeout=60)

        second = received["r"]
        assert second["session"]["id"] == session_id
        assert second["session"]["status"] == "handed_off"
        assert second["run"] is None
        sessions = observer.execute(
            "select id::text, status from public.agent_sessions order by created_at"
        ).fetchall()
        assert sessions == [(session_id, "handed_off")]
        assert _receive(webhook, "m3")["session"]["id"] == session_id
