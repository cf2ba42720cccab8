"""Storage contract clauses on threads: the backend used from several event loops at once."""

from __future__ import annotations

import asyncio
import threading

from ...models import Session
from ...sessions import SessionManager
from ...storage.base import (
    Capability,
)
from ._base import ContractBase, requires


class ThreadContract(ContractBase):
    """Threads: the backend used from several event loops at once."""

    # -- threads ---------------------------------------------------------------------------

    @requires(Capability.THREADS)
    async def test_threads_lose_nothing(self, manager: SessionManager, session: Session) -> None:
        per_thread, threads = 10, 4
        errors: list[Exception] = []

        def worker(index: int) -> None:
            async def run() -> None:
                for i in range(per_thread):
                    await manager.add_turn(session.id, role="user", content=f"t{index}-{i}")
                    await manager.add_intent_seen(session.id, f"t{index}-{i}")

            try:
                asyncio.run(run())
            except Exception as exc:  # noqa: BLE001 - collected, then reported by the assertion below
                errors.append(exc)

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        assert not errors, errors
        total = per_thread * threads
        turns = await manager.get_turns(session.id)
        assert [t.turn_number for t in turns] == list(range(1, total + 1))
        state = await manager.get_state(session.id)
        assert [i.order for i in state.intents_seen] == list(range(1, total + 1))
        assert (await manager.get_session(session.id)).version == 1 + 2 * total
