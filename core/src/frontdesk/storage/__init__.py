"""Pluggable storage: the `StorageBackend` interface and how a backend is chosen by name.

Backends are found in the `frontdesk.storage` entry-point group (`memory` ships in core;
`supabase` comes with `pip install frontdesk[supabase]`). `open_storage()` picks one by
name, from its argument, the FRONTDESK_STORAGE environment variable, or `memory`:

    storage = await open_storage()                 # FRONTDESK_STORAGE, else memory
    storage = await open_storage("memory")
"""

from __future__ import annotations

import inspect
import os
from importlib.metadata import entry_points
from typing import Any

from ..errors import StorageError, StorageNotFoundError
from ..lifecycle import ErasureReport, ListPosition, SessionMigration, SessionQuery, SessionSummary
from .base import (
    AppendIntent,
    AppendTemplate,
    Capability,
    Commit,
    CommitResult,
    MergeCapturedData,
    MergeData,
    NewSession,
    StateOp,
    StorageBackend,
    apply_state_ops,
)

__all__ = [
    "DEFAULT_STORAGE",
    "ENTRY_POINT_GROUP",
    "STORAGE_ENV",
    "AppendIntent",
    "AppendTemplate",
    "Capability",
    "Commit",
    "CommitResult",
    "ErasureReport",
    "ListPosition",
    "MergeCapturedData",
    "MergeData",
    "NewSession",
    "SessionMigration",
    "SessionQuery",
    "SessionSummary",
    "StateOp",
    "StorageBackend",
    "apply_state_ops",
    "available_storage",
    "open_storage",
]

ENTRY_POINT_GROUP = "frontdesk.storage"
STORAGE_ENV = "FRONTDESK_STORAGE"
DEFAULT_STORAGE = "memory"


def available_storage() -> list[str]:
    """The names of the installed storage backends, sorted."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


async def open_storage(name: str | None = None, **options: Any) -> StorageBackend:
    """Open the storage backend called `name` (default: $FRONTDESK_STORAGE, else memory).

    The entry point names a class or factory; `options` are passed to it, and an async
    factory is awaited. Raises `StorageNotFoundError` listing the installed names.
    """
    # A name is used as given: "" or " memory" is refused (listing the real names), not
    # guessed at. An empty FRONTDESK_STORAGE counts as unset, as shells make it easily.
    chosen = name if name is not None else os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == chosen]
    if not found:
        raise StorageNotFoundError(chosen, available_storage())
    try:
        factory = found[0].load()
    except ImportError as exc:
        dist = found[0].dist.name if found[0].dist is not None else "frontdesk"
        raise StorageError(
            f"storage backend {chosen!r} cannot be loaded ({exc}); install what it needs, "
            f"e.g. pip install '{dist}[{chosen}]'"
        ) from exc
    backend = factory(**options)
    if inspect.isawaitable(backend):
        backend = await backend
    if not isinstance(backend, StorageBackend):
        raise TypeError(
            f"storage entry point {chosen!r} made a {type(backend).__name__}, "
            "which does not implement StorageBackend"
        )
    return backend
