"""Fixtures and helpers shared by the contract suite's modules."""

from __future__ import annotations

__all__ = [
    "SHORT_RUNS_AGENT",
    "ContractBase",
    "gather_outcomes",
    "new_turn",
    "pipeline_agent",
    "requires",
]

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from ...config import DoubleTexting, RunsConfig
from ...models import NewTurn, Role, Session
from ...registry import AgentRegistry
from ...sessions import SessionManager
from ...storage.base import (
    StorageBackend,
)
from ..agents import TEST_AGENT_ID, make_test_agent

F = TypeVar("F", bound=Callable[..., Any])

UNICODE = "Hola, ¿qué tal? Ñandú — 你好 — 🚀"


def requires(capability: str) -> Callable[[F], F]:
    """Mark a contract test as needing an optional backend capability."""

    def mark(test: F) -> F:
        test.__frontdesk_requires__ = capability  # type: ignore[attr-defined]
        return test

    return mark


async def gather_outcomes(*calls: Any) -> list[Any]:
    """Run coroutines at once; each outcome is its result or the exception it raised."""
    return list(await asyncio.gather(*calls, return_exceptions=True))


class ContractBase:
    """The fixtures every contract module uses. Provide a `storage` fixture."""

    concurrency: int = 20
    """How many tasks hit one session at once in the concurrency tests."""

    run_timeout: float = 0.5
    """`runs.timeout` (seconds) of the agent the abandoned-run tests use: a run that
    expires this fast must still outlast one storage call of the backend."""

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture
    def storage(self) -> StorageBackend:
        """Override: yield an empty backend and clean it up afterwards."""
        raise NotImplementedError("subclass StorageContractTests and provide a storage fixture")

    @pytest.fixture(autouse=True)
    def _capabilities(self, request: pytest.FixtureRequest, storage: StorageBackend) -> None:
        needed = getattr(request.function, "__frontdesk_requires__", None)
        if needed is not None and needed not in storage.capabilities:
            pytest.skip(f"{type(storage).__name__} does not declare the {needed!r} capability")

    @pytest.fixture
    def contract_registry(self) -> AgentRegistry:
        registry = AgentRegistry()
        registry.register(make_test_agent())
        for policy in DoubleTexting:
            runs = RunsConfig(double_texting=policy, timeout=60.0, history_turns=3)
            registry.register(make_test_agent(id=pipeline_agent(policy), runs=runs))
        short = RunsConfig(timeout=self.run_timeout, history_turns=3)
        registry.register(make_test_agent(id=SHORT_RUNS_AGENT, runs=short))
        return registry

    @pytest.fixture
    def workspace_id(self) -> str:
        return f"contract-{uuid.uuid4()}"

    @pytest.fixture
    def manager(
        self, storage: StorageBackend, contract_registry: AgentRegistry, workspace_id: str
    ) -> SessionManager:
        return SessionManager(storage, workspace_id=workspace_id, registry=contract_registry)

    @pytest.fixture
    def other_manager(
        self, storage: StorageBackend, contract_registry: AgentRegistry, workspace_id: str
    ) -> SessionManager:
        return SessionManager(
            storage, workspace_id=f"{workspace_id}-other", registry=contract_registry
        )

    @pytest_asyncio.fixture
    async def session(self, manager: SessionManager) -> Session:
        return await manager.create_session(
            agent_id=TEST_AGENT_ID, conversation_id="conv-1", contact_id="contact-1"
        )


SHORT_RUNS_AGENT = "test-short-runs"
"""A merge-policy agent whose runs expire after `run_timeout` seconds."""


def pipeline_agent(policy: DoubleTexting) -> str:
    """The id of the contract suite's agent with this double-texting policy."""
    return f"test-{policy.value}"


def new_turn(content: str, *, role: str = "user", turn_number: int | None = None) -> NewTurn:
    return NewTurn(role=Role(role), content=content, turn_number=turn_number)
