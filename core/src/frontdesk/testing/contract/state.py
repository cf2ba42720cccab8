"""Storage contract clauses on state helpers: applied inside the write, never losing a concurrent update."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ...models import IntentSeen, Session, SessionState
from ...sessions import SessionManager
from ._base import UNICODE, ContractBase, gather_outcomes


class StateContract(ContractBase):
    """State helpers: applied inside the write, never losing a concurrent update."""

    # -- state helpers ---------------------------------------------------------------------

    async def test_state_helpers_lose_nothing_under_concurrency(
        self, manager: SessionManager, session: Session
    ) -> None:
        n = self.concurrency
        outcomes = await gather_outcomes(
            *(manager.add_intent_seen(session.id, f"intent-{i}") for i in range(n)),
            *(manager.add_template_sent(session.id, f"template-{i}") for i in range(n)),
            *(manager.update_captured_data(session.id, {f"key-{i}": str(i)}) for i in range(n)),
            *(manager.update_data(session.id, {f"data-{i}": [i, UNICODE]}) for i in range(n)),
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert not errors, errors
        state = (await manager.get_session(session.id)).state
        assert sorted(i.intent for i in state.intents_seen) == sorted(
            f"intent-{i}" for i in range(n)
        )
        assert [i.order for i in state.intents_seen] == list(range(1, n + 1))
        assert sorted(state.templates_sent) == sorted(f"template-{i}" for i in range(n))
        assert state.captured_data == {f"key-{i}": str(i) for i in range(n)}
        assert state.data == {f"data-{i}": [i, UNICODE] for i in range(n)}
        assert (await manager.get_session(session.id)).version == 1 + 4 * n

    async def test_intents_are_numbered_and_stamped(
        self, manager: SessionManager, session: Session
    ) -> None:
        await manager.add_intent_seen(session.id, "greeting")
        state = (await manager.add_intent_seen(session.id, "price_question")).state
        assert [(i.intent, i.order) for i in state.intents_seen] == [
            ("greeting", 1),
            ("price_question", 2),
        ]
        for intent in state.intents_seen:
            assert intent.seen_at.utcoffset() == timedelta(0)
        assert state.intents_seen[0].seen_at <= state.intents_seen[1].seen_at

    async def test_captured_data_merges(self, manager: SessionManager, session: Session) -> None:
        await manager.update_captured_data(session.id, {"name": "Ana", "city": "Sevilla"})
        state = (await manager.update_captured_data(session.id, {"city": "Málaga"})).state
        assert state.captured_data == {"name": "Ana", "city": "Málaga"}

    async def test_state_round_trips_as_json(
        self, manager: SessionManager, session: Session
    ) -> None:
        state = SessionState(
            intents_seen=(
                IntentSeen("saludo", 1, datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)),
                IntentSeen(UNICODE, 2, datetime(2026, 3, 1, 9, 31, tzinfo=UTC)),
            ),
            templates_sent=("bienvenida", UNICODE),
            captured_data={"dirección": UNICODE, "empty": ""},
            data={"nested": {"list": [1, 2.5, None, True, "ñ"], "deep": {"a": {}}}, "n": -3},
        )
        written = await manager.update_state(session.id, state, expected_version=session.version)
        assert written.state == state
        assert (await manager.get_state(session.id)) == state

    async def test_returned_values_are_copies(
        self, manager: SessionManager, session: Session
    ) -> None:
        await manager.update_captured_data(session.id, {"name": "Ana"})
        await manager.update_data(session.id, {"cart": ["a"]})
        state = await manager.get_state(session.id)
        state.captured_data["name"] = "changed"  # type: ignore[index]
        state.data["cart"].append("b")
        again = await manager.get_state(session.id)
        assert again.captured_data == {"name": "Ana"}
        assert again.data == {"cart": ["a"]}
