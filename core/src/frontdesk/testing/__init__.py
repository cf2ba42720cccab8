"""Testing support, shipped with frontdesk: test helpers, fixtures and the contract suite.

- `make_test_agent()`: a small valid agent config to register in tests (and in examples).
- `ScriptedModel`: a model whose answers a test writes, recording every request, and
  `OfflineModel`: keyword intents and labelled replies from the agents' own configs, for
  demos without a key (`frontdesk.testing.scripted` and `.offline`).
- `InstrumentedStorage`: wraps any backend to count and time calls, add latency, and
  inject faults (fail before applying, or apply and lose the answer).
- fixtures, available in any project that has frontdesk and pytest installed (the pytest
  plugin `frontdesk.testing.plugin`): `frontdesk_storage` (an empty in-memory storage),
  `frontdesk_registry` (an isolated registry holding the test agent, made the default for
  the test) and `frontdesk_manager` (a `SessionManager` bound to both).
- `StorageContractTests`: subclass it and provide a `storage` fixture to run every clause
  of the storage contract against a backend. It needs pytest and pytest-asyncio
  (`pip install 'frontdesk[testing]'`):

      class TestMyStorage(StorageContractTests):
          @pytest.fixture
          def storage(self):
              return MyStorage()

The rule for this package: importing `frontdesk.testing` needs only frontdesk's own
dependencies, because application code uses its helpers (`make_test_agent`,
`ScriptedModel`, `OfflineModel`, storage wrappers) outside pytest. Only `plugin` (loaded
by pytest itself) and the `contract` suite may import pytest or pytest-asyncio; the
contract names are resolved lazily below. A new helper goes in a pytest-free module
re-exported here, and the packaging tests import every name of `__all__` in an
environment without pytest.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .agents import TEST_AGENT_ID, make_test_agent
from .instrumented import FaultMode, InstrumentedStorage
from .offline import OfflineModel
from .scripted import ScriptedModel

if TYPE_CHECKING:
    from .contract import StorageContractTests, requires

__all__ = [
    "TEST_AGENT_ID",
    "FaultMode",
    "InstrumentedStorage",
    "OfflineModel",
    "ScriptedModel",
    "StorageContractTests",
    "make_test_agent",
    "requires",
]

# The names served by the contract suite, which needs pytest and pytest-asyncio.
_CONTRACT_NAMES = frozenset({"StorageContractTests", "requires"})
_CONTRACT_NEEDS = ("pytest", "pytest_asyncio")


def __getattr__(name: str) -> Any:
    if name in _CONTRACT_NAMES:
        value = getattr(_import_contract(), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _missing_requirement(exc: ImportError) -> ModuleNotFoundError:
    """The error for a contract suite that cannot import `exc.name`: what to install, in one line.

    Raised both here and by `frontdesk.testing.contract` imported directly.
    """
    module = exc.name or "pytest-asyncio"
    package = module.split(".")[0].replace("_", "-")
    return ModuleNotFoundError(
        f"frontdesk's storage contract suite needs {package}, which is not installed: "
        "pip install 'frontdesk[testing]'",
        name=exc.name,
    )


def _import_contract() -> ModuleType:
    """Import the contract suite, or say in one line what to install to get it."""
    for requirement in _CONTRACT_NEEDS:
        try:
            importlib.import_module(requirement)
        except ImportError as exc:
            raise _missing_requirement(exc) from exc
    import pytest

    # Before the first import of the suite, so that pytest rewrites its asserts into
    # readable failures (pytest also marks the packages of its installed plugins).
    pytest.register_assert_rewrite(f"{__name__}.contract")
    return importlib.import_module(f"{__name__}.contract")
