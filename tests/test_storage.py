"""Choosing a storage backend by name: argument, FRONTDESK_STORAGE, default."""

from __future__ import annotations

import pytest

from frontdesk import InMemoryStorage, StorageNotFoundError, open_storage
from frontdesk.storage import available_storage


def test_memory_is_installed() -> None:
    assert "memory" in available_storage()


async def test_default_is_memory() -> None:
    assert isinstance(await open_storage(), InMemoryStorage)


async def test_environment_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDESK_STORAGE", "nope")
    with pytest.raises(StorageNotFoundError) as excinfo:
        await open_storage()
    assert excinfo.value.name == "nope"
    assert "memory" in excinfo.value.available
    assert "FRONTDESK_STORAGE" in str(excinfo.value)


async def test_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDESK_STORAGE", "nope")
    assert isinstance(await open_storage("memory"), InMemoryStorage)


async def test_options_are_passed_on() -> None:
    storage = await open_storage("memory", clock=lambda: pytest.fail("not called yet"))
    assert isinstance(storage, InMemoryStorage)
