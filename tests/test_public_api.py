"""The public API: `frontdesk.__all__` is complete and sorted, as httpx checks its own."""

from __future__ import annotations

import importlib.metadata
import types

import frontdesk


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 order: CONSTANTS, then Classes, then the rest, each alphabetical.
    group = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return group, name


def test_all_is_sorted() -> None:
    assert frontdesk.__all__ == sorted(frontdesk.__all__, key=_isort_key)


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(frontdesk).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(frontdesk.__all__) - {"__version__"}


def test_every_name_in_all_exists() -> None:
    for name in frontdesk.__all__:
        assert hasattr(frontdesk, name), name


def test_version_matches_the_distribution() -> None:
    assert frontdesk.__version__ == importlib.metadata.version("frontdesk")


def test_every_error_is_a_frontdesk_error() -> None:
    errors = [getattr(frontdesk, n) for n in frontdesk.__all__ if n.endswith("Error")]
    assert errors
    for error in errors:
        assert issubclass(error, frontdesk.FrontdeskError), error
