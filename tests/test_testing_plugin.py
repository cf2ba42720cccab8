"""The pytest plugin's fixtures, as an application's tests would use them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from frontdesk import AgentRegistry, InMemoryStorage, SessionManager, agent_registry
from frontdesk.registry import get_default_registry
from frontdesk.testing import TEST_AGENT_ID, make_test_agent


def test_registry_fixture_is_isolated_and_default(frontdesk_registry: AgentRegistry) -> None:
    assert frontdesk_registry.list_ids() == [TEST_AGENT_ID]
    assert get_default_registry() is frontdesk_registry
    assert frontdesk_registry is not agent_registry


def test_agents_registered_in_a_test_are_gone_after(frontdesk_registry: AgentRegistry) -> None:
    frontdesk_registry.register(make_test_agent(id="only-here"))
    assert "only-here" in frontdesk_registry


def test_default_registry_is_restored_after_the_fixture() -> None:
    assert get_default_registry() is agent_registry


async def test_manager_fixture(
    frontdesk_manager: SessionManager,
    frontdesk_storage: InMemoryStorage,
    frontdesk_registry: AgentRegistry,
) -> None:
    assert frontdesk_manager.storage is frontdesk_storage
    assert frontdesk_manager.registry is frontdesk_registry
    session, created = await frontdesk_manager.get_or_create_session(
        agent_id=TEST_AGENT_ID, conversation_id="c", contact_id="u"
    )
    assert created
    assert await frontdesk_storage.get_session("test-workspace", session.id) == session


@pytest.mark.parametrize("missing", ["pytest", "pytest_asyncio"])
def test_importing_the_contract_suite_directly_says_what_to_install(missing: str) -> None:
    # `import frontdesk.testing.contract` (not the lazy name in `frontdesk.testing`) in a
    # process where `missing` cannot be imported: one ImportError naming the extra.
    probe = f"""\
import sys
sys.modules[{missing!r}] = None  # makes `import {missing}` raise ModuleNotFoundError
try:
    import frontdesk.testing.contract
except ImportError as exc:
    print(type(exc).__name__, exc.name)
    print(exc)
"""
    done = subprocess.run(  # noqa: S603 - this Python, fixed code
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"ModuleNotFoundError {missing}",
        f"frontdesk's storage contract suite needs {missing.replace('_', '-')}, which is not "
        "installed: pip install 'frontdesk[testing]'",
    ]


@pytest.mark.parametrize("missing", ["pytest", "pytest_asyncio"])
def test_testing_helpers_import_without_pytest(missing: str) -> None:
    # In a process where `missing` cannot be imported, as in an application's environment
    # without the testing extra (the packaging tests check a real one).
    probe = f"""\
import sys
sys.modules[{missing!r}] = None  # makes `import {missing}` raise ModuleNotFoundError
import frontdesk.testing as testing
print(testing.make_test_agent().id == testing.TEST_AGENT_ID)
try:
    testing.StorageContractTests
except ModuleNotFoundError as exc:
    print(exc)
"""
    done = subprocess.run(  # noqa: S603 - this Python, fixed code
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "True",
        f"frontdesk's storage contract suite needs {missing.replace('_', '-')}, which is not "
        "installed: pip install 'frontdesk[testing]'",
    ]
