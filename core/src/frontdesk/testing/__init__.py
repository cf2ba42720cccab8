"""Testing support, shipped with frontdesk and loaded as a pytest plugin.

- `StorageContractTests`: subclass it and provide a `storage` fixture to run every
  clause of the storage contract against a backend (`pip install frontdesk[testing]`
  brings pytest-asyncio, which it needs):

      class TestMyStorage(StorageContractTests):
          @pytest.fixture
          def storage(self):
              return MyStorage()

- fixtures, available in any project that has frontdesk installed:
  `frontdesk_storage` (an empty in-memory storage), `frontdesk_registry` (an isolated
  registry holding the test agent, made the default for the test) and
  `frontdesk_manager` (a `SessionManager` bound to both).
- `make_test_agent()`: a small valid agent config to register in tests.
- `ScriptedModel`: a model whose answers a test writes, recording every request, and
  `OfflineModel`: keyword intents and labelled replies from the agents' own configs, for
  demos without a key (`frontdesk.testing.scripted` and `.offline` import no pytest).
"""

import pytest

# Before the import below, so that pytest rewrites the asserts of the contract suite.
pytest.register_assert_rewrite("frontdesk.testing.contract")

from typing import TYPE_CHECKING, Any  # noqa: E402 - after the rewrite hook

from .agents import TEST_AGENT_ID, make_test_agent  # noqa: E402 - after the rewrite hook
from .offline import OfflineModel  # noqa: E402 - after the rewrite hook
from .scripted import ScriptedModel  # noqa: E402 - after the rewrite hook

if TYPE_CHECKING:
    from .contract import StorageContractTests, requires


def __getattr__(name: str) -> Any:
    # The contract suite needs pytest-asyncio; import it only when asked for, so that the
    # fixtures plugin loads in any project that has pytest, with or without it.
    if name in {"StorageContractTests", "requires"}:
        from . import contract

        return getattr(contract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "TEST_AGENT_ID",
    "OfflineModel",
    "ScriptedModel",
    "StorageContractTests",
    "make_test_agent",
    "requires",
]
