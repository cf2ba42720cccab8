"""Choosing a storage backend by name: argument, FRONTDESK_STORAGE, default."""

from __future__ import annotations

import pytest

from frontdesk import (
    InMemoryStorage,
    StorageError,
    StorageNotFoundError,
    ValidationError,
    open_storage,
)
from frontdesk.storage import available_storage, installable_storage

from .conftest import DistributionMaker


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


async def test_an_option_the_backend_does_not_take_is_refused_naming_its_options() -> None:
    with pytest.raises(ValidationError) as caught:
        await open_storage("memory", clok=None)
    assert caught.value.field == "options"
    assert "unexpected keyword argument 'clok'" in str(caught.value)
    assert "it takes clock; no storage was opened." in str(caught.value)


@pytest.mark.parametrize("name", ["", " memory", "memory\n"], ids=["empty", "leading", "trailing"])
async def test_names_are_used_as_given(name: str) -> None:
    with pytest.raises(StorageNotFoundError) as excinfo:
        await open_storage(name)
    assert excinfo.value.name == name
    assert str(excinfo.value).startswith(f"no storage backend named {name!r}; installed backends:")


async def test_empty_environment_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDESK_STORAGE", "")
    assert isinstance(await open_storage(), InMemoryStorage)


@pytest.fixture
def cloud_backend(make_distribution: DistributionMaker) -> None:
    """A backend whose entry point needs an extra whose client library is not installed."""
    dist_info = make_distribution(
        "frontdesk-cloud",
        modules={"cloud_storage": "import frontdesk_no_such_client\n"},
        storage={"cloud": "cloud_storage:CloudStorage [cloud]"},
    )
    with (dist_info / "METADATA").open("a", encoding="utf-8") as metadata:
        metadata.write(
            "Provides-Extra: cloud\n"
            'Requires-Dist: frontdesk-no-such-client>=1; extra == "cloud"\n'
            'Requires-Dist: pluggy>=1; extra == "cloud"\n'
        )


@pytest.mark.usefixtures("cloud_backend")
async def test_a_backend_without_its_extra_is_installable_not_installed() -> None:
    assert "cloud" not in available_storage()
    assert installable_storage()["cloud"] == "pip install 'frontdesk-cloud[cloud]'"
    with pytest.raises(StorageNotFoundError) as excinfo:
        await open_storage("nope")
    assert "cloud" not in excinfo.value.available
    assert " cloud needs `pip install 'frontdesk-cloud[cloud]'`." in str(excinfo.value)
    with pytest.raises(StorageError) as opened:
        await open_storage("cloud")
    assert str(opened.value) == (
        "storage backend 'cloud' is not installed: its extra is missing; "
        "run `pip install 'frontdesk-cloud[cloud]'`."
    )


def test_a_backend_with_its_extra_installed_is_listed(make_distribution: DistributionMaker) -> None:
    dist_info = make_distribution(
        "frontdesk-local",
        modules={"local_storage": "from frontdesk import InMemoryStorage as LocalStorage\n"},
        storage={"local": "local_storage:LocalStorage [fast]"},
    )
    with (dist_info / "METADATA").open("a", encoding="utf-8") as metadata:
        metadata.write('Provides-Extra: fast\nRequires-Dist: pluggy>=1; extra == "fast"\n')
    assert "local" in available_storage()
    assert "local" not in installable_storage()


async def test_a_factory_that_makes_no_backend_is_refused(
    make_distribution: DistributionMaker,
) -> None:
    make_distribution(
        "frontdesk-broken-store",
        modules={"broken_store": "def make():\n    return object()\n"},
        storage={"broken": "broken_store:make"},
    )
    with pytest.raises(StorageError, match="'broken' made a object, which does not implement"):
        await open_storage("broken")
