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
import re
from collections.abc import Mapping
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, version
from typing import Any

from ..errors import StorageError, StorageNotFoundError, ValidationError
from ..lifecycle import ErasureReport, ListPosition, SessionMigration, SessionQuery, SessionSummary
from .base import (
    AppendIntent,
    AppendTemplate,
    Capability,
    Commit,
    CommitResult,
    Delivery,
    MergeCapturedData,
    MergeData,
    NewSession,
    RunPolicy,
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
    "Delivery",
    "ErasureReport",
    "ListPosition",
    "MergeCapturedData",
    "MergeData",
    "NewSession",
    "RunPolicy",
    "SessionMigration",
    "SessionQuery",
    "SessionSummary",
    "StateOp",
    "StorageBackend",
    "apply_state_ops",
    "available_storage",
    "installable_storage",
    "open_storage",
]

ENTRY_POINT_GROUP = "frontdesk.storage"
STORAGE_ENV = "FRONTDESK_STORAGE"
DEFAULT_STORAGE = "memory"


def available_storage() -> list[str]:
    """The names of the storage backends that can be opened, sorted.

    A backend whose entry point needs an extra that is not installed is left out (see
    `installable_storage`).
    """
    return sorted(
        {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if _install_hint(ep) is None}
    )


def installable_storage() -> dict[str, str]:
    """Backends that need an extra that is not installed, each with the command that adds it.

    >>> installable_storage()  # with frontdesk alone
    {'supabase': "pip install 'frontdesk[supabase]'"}
    """
    found: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        hint = _install_hint(ep)
        if hint is not None:
            found.setdefault(ep.name, hint)
    return dict(sorted(found.items()))


def _install_hint(ep: EntryPoint) -> str | None:
    """`pip install 'dist[extra]'` when the entry point names an extra (`name = target
    [extra]`) whose requirements are not all installed; None when it can be loaded."""
    if not ep.extras or ep.dist is None:
        return None
    for requirement in ep.dist.requires or ():
        name, _, marker = requirement.partition(";")
        if not any(
            re.search(rf"""extra\s*==\s*["']{re.escape(extra)}["']""", marker)
            for extra in ep.extras
        ):
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", name.strip())
        if match is None:
            continue
        try:
            version(match.group())
        except PackageNotFoundError:
            return f"pip install '{ep.dist.name}[{','.join(ep.extras)}]'"
    return None


def _check_options(name: str, factory: Any, options: Mapping[str, Any]) -> None:
    """Refuse options the backend's factory does not take, naming the ones it does."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to check against: the factory decides
        return
    try:
        signature.bind(**options)
    except TypeError as exc:
        taken = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        raise ValidationError(
            "options",
            f"storage backend {name!r} refused them ({exc}); it takes "
            f"{', '.join(taken) or 'no options'}",
            outcome="no storage was opened",
        ) from None


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
        raise StorageNotFoundError(chosen, available_storage(), installable=installable_storage())
    hint = _install_hint(found[0])
    if hint is not None:
        raise StorageError(
            f"storage backend {chosen!r} is not installed: its extra is missing; run `{hint}`."
        )
    try:
        factory = found[0].load()
    except ImportError as exc:
        dist = found[0].dist.name if found[0].dist is not None else "frontdesk"
        raise StorageError(
            f"storage backend {chosen!r} cannot be loaded ({exc}); install what it needs, "
            f"e.g. pip install '{dist}[{chosen}]'"
        ) from exc
    _check_options(chosen, factory, options)
    backend = factory(**options)
    if inspect.isawaitable(backend):
        backend = await backend
    if not isinstance(backend, StorageBackend):
        raise StorageError(
            f"storage entry point {chosen!r} made a {type(backend).__name__}, "
            "which does not implement StorageBackend; fix or uninstall the package providing it"
        )
    return backend
