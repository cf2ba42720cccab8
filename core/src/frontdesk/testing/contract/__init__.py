"""The storage contract suite: every clause of the concurrency contract, as pytest tests.

Subclass `StorageContractTests` and provide a `storage` fixture that yields an empty
backend (and cleans up after it). Each test runs in a workspace of its own, so a backend
shared between tests (a live database) works too. A known difference is declared by
overriding the test with a strict `xfail` and a reason; an override without one fails
`test_overrides_are_marked_xfail`. Tests of optional capabilities the backend does not
declare in `capabilities` are skipped, with the reason shown.

Concurrency is real: `concurrency` tasks (a class attribute) hit one session at once.
The clauses live in one module per concern (`sessions`, `versions`, `state`, `turns`,
`commits`, `status`, `workspaces`, `threads`, `lifecycle`, `pipeline`, `handoff`,
`bad_input`); this class gathers them.
"""

from __future__ import annotations

try:
    import pytest
    import pytest_asyncio  # noqa: F401 - the suite's fixtures are pytest-asyncio's (._base)
except ImportError as _exc:  # say what to install, not only what is missing
    from .. import _missing_requirement

    raise _missing_requirement(_exc) from _exc

from ._base import ContractBase, requires
from .bad_input import BadInputContract
from .commits import CommitContract
from .handoff import HandoffContract
from .lifecycle import LifecycleContract
from .pipeline import PipelineContract
from .sessions import SessionContract
from .state import StateContract
from .status import StatusContract
from .threads import ThreadContract
from .turns import TurnContract
from .versions import VersionContract
from .workspaces import WorkspaceContract

__all__ = ["StorageContractTests", "requires"]


@pytest.mark.asyncio
class StorageContractTests(
    SessionContract,
    VersionContract,
    StateContract,
    TurnContract,
    CommitContract,
    StatusContract,
    WorkspaceContract,
    ThreadContract,
    LifecycleContract,
    PipelineContract,
    HandoffContract,
    BadInputContract,
    ContractBase,
):
    """The contract every `StorageBackend` must pass. Provide a `storage` fixture."""

    # -- the guard -------------------------------------------------------------------------

    async def test_overrides_are_marked_xfail(self, request: pytest.FixtureRequest) -> None:
        """A contract test may be replaced only by a strict xfail that says why.

        And the concurrency tests must stay concurrent: `concurrency` of at least 5.
        """
        assert self.concurrency >= 5, (
            f"{type(self).__name__}.concurrency is {self.concurrency}; the concurrency "
            "tests need at least 5 tasks to mean anything"
        )
        strict_default = bool(request.config.getini("xfail_strict"))
        unmarked = []
        for name in dir(StorageContractTests):
            if not name.startswith("test_"):
                continue
            own = getattr(type(self), name)
            if own is getattr(StorageContractTests, name):
                continue
            marks = [m for m in getattr(own, "pytestmark", []) if m.name == "xfail"]
            if not any(
                m.kwargs.get("reason") and m.kwargs.get("strict", strict_default) is True
                for m in marks
            ):
                unmarked.append(name)
        assert not unmarked, (
            f"{type(self).__name__} overrides contract tests without a strict "
            f"@pytest.mark.xfail(reason=...): {', '.join(unmarked)}"
        )
