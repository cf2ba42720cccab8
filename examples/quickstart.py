"""frontdesk in one file: an agent, a session, turns, a mode change, a conflict retried.

Run it:  uv run python examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from frontdesk import (
    AgentConfig,
    AgentRegistry,
    InMemoryStorage,
    ModelConfig,
    Session,
    SessionChange,
    SessionManager,
    StateMachine,
    VersionConflictError,
)

# 1. An agent, registered in code (installed agent packages appear on their own).
registry = AgentRegistry()
registry.register(
    AgentConfig(
        id="bakery",
        name="Bakery orders",
        intent_detector=ModelConfig(model="small", system_prompt="Classify the message."),
        orchestrator=ModelConfig(model="large", system_prompt="Take bread orders politely."),
        states=StateMachine(
            initial="greeting",
            modes=("greeting", "ordering", "done"),
            transitions={"greeting": ("ordering",), "ordering": ("done",)},
        ),
    )
)


async def main() -> None:
    manager = SessionManager(InMemoryStorage(), workspace_id="bakery-shop", registry=registry)

    # 2. The first message of a conversation opens its session (or finds it).
    session, created = await manager.get_or_create_session(
        agent_id="bakery", conversation_id="whatsapp:+34600111222", contact_id="+34600111222"
    )
    print(f"session created: {created}, mode {session.current_mode}, version {session.version}")

    # 3. Record the user's turn and what we learnt; storage numbers the turns.
    user = await manager.add_turn(session.id, role="user", content="Two baguettes, please")
    await manager.add_intent_seen(session.id, "place_order")
    await manager.update_captured_data(session.id, {"item": "baguette", "quantity": "2"})
    reply = await manager.add_turn(
        session.id, role="assistant", content="Two baguettes. Anything else?"
    )
    print(f"turns {user.turn_number} and {reply.turn_number} recorded")

    # 4. A mode change names the version it was decided on.
    current = await manager.get_session(session.id)
    moved = await manager.update_session_with_version(
        session.id, expected_version=current.version, current_mode="ordering"
    )
    print(f"mode {moved.current_mode}, version {moved.version}")

    # 5. Another worker writes in between (the user double-texted): the stale write is refused.
    await manager.add_turn(session.id, role="user", content="Make it three!")
    try:
        await manager.update_session_with_version(
            session.id, expected_version=moved.version, current_mode="done"
        )
    except VersionConflictError as conflict:
        print(
            f"conflict: expected version {conflict.expected_version}, "
            f"found {conflict.current_version}; nothing was written"
        )

    # 6. retry_on_conflict re-reads and decides again after a conflict. Here a second
    #    worker records a message while the first is deciding, so it takes two attempts.
    attempts = 0

    async def finish(latest: Session) -> SessionChange:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await manager.add_turn(session.id, role="user", content="...and a croissant")
        return SessionChange(current_mode="done")

    result = await manager.retry_on_conflict(session.id, finish)
    assert result is not None
    print(
        f"decided {attempts} times; mode {result.session.current_mode}, version {result.session.version}"
    )
    print(f"{await manager.get_turn_count(session.id)} turns in the session")


if __name__ == "__main__":
    asyncio.run(main())
