"""What the benchmarks share: timing and percentiles, tables and ratio lines, and a throwaway Supabase stack (PostgreSQL + the PostgREST-protocol
gateway of `tests/support` + `SupabaseStorage`).

The scripts are run from the repository root (`uv run python benchmarks/bench_x.py`) and put
the root on `sys.path` themselves, so that `benchmarks._common` and `tests.support` import.
The Supabase parts import the test support modules lazily: `--backend memory` needs neither
PostgreSQL nor the gateway's dependencies.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import secrets
import sys
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from frontdesk import AgentRegistry, SessionManager
from frontdesk.storage import StorageBackend
from frontdesk.testing import make_test_agent

if TYPE_CHECKING:
    from frontdesk.storage.postgres import PostgresStorage
    from frontdesk.storage.sqlite import SQLiteStorage
    from frontdesk.storage.supabase import SupabaseStorage
    from tests.support.gateway import PostgrestGateway

BACKENDS = ("memory", "sqlite", "postgres", "supabase")

# Exit status when PostgreSQL was asked for and none could be started.
EXIT_NO_POSTGRES = 3


# -- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


# -- output ----------------------------------------------------------------------------------


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain, aligned text table (numbers right-aligned)."""
    text_rows = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for text_row in text_rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, text_row, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row, text_row in zip(rows, text_rows, strict=True):
        cells = []
        for value, cell, width in zip(row, text_row, widths, strict=True):
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cells.append(cell.rjust(width) if numeric else cell.ljust(width))
        print("  ".join(cells).rstrip())


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def print_ratios(lines: Iterable[str]) -> None:
    """The ratio lines, last in the output; each starts with `ratio `."""
    print()
    for line in lines:
        print(f"ratio {line}")


def fmt_ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def machine_description() -> str:
    """CPUs, CPU model, memory and Python, on one line (no paths)."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "? GiB"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), {memory} RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def print_header(title: str, args: argparse.Namespace) -> None:
    settings = ", ".join(f"{k}={v}" for k, v in sorted(vars(args).items()))
    print(f"# {title}")
    print(f"# machine: {machine_description()}")
    print(f"# settings: {settings}")
    print()


def add_backend_arguments(parser: argparse.ArgumentParser, *, delay_ms: Sequence[float]) -> None:
    parser.add_argument(
        "--backend",
        choices=(*BACKENDS, "both", "all"),
        default="all",
        help="which storage to measure; both: memory and supabase (default: all)",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        nargs="+",
        default=list(delay_ms),
        metavar="MS",
        help="network delay the gateway adds to every Supabase request, in ms; several "
        f"values run one after the other (default: {' '.join(f'{d:g}' for d in delay_ms)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a few seconds, for the smoke test"
    )


def chosen_backends(args: argparse.Namespace) -> list[str]:
    if args.backend == "all":
        return list(BACKENDS)
    if args.backend == "both":
        return ["memory", "supabase"]
    return [args.backend]


# -- frontdesk helpers -----------------------------------------------------------------------


def bench_registry() -> AgentRegistry:
    """A registry holding only frontdesk's test agent (greeting -> collecting <-> confirming)."""
    registry = AgentRegistry()
    registry.register(make_test_agent())
    return registry


def new_manager(storage: StorageBackend, registry: AgentRegistry, label: str) -> SessionManager:
    """A manager in a workspace of its own (so that runs never see each other's sessions)."""
    return SessionManager(
        storage, workspace_id=f"bench-{label}-{secrets.token_hex(4)}", registry=registry
    )


# -- Supabase: PostgreSQL + gateway + SupabaseStorage -----------------------------------------

JWT_SECRET = "frontdesk-benchmarks-jwt-secret-0123456789abcdef"  # noqa: S105 - a throwaway gateway


@dataclass
class SupabaseStack:
    storage: SupabaseStorage
    gateway: PostgrestGateway
    server_version: str

    def set_delay_ms(self, delay_ms: float) -> None:
        self.gateway.delay = delay_ms / 1000


@contextlib.asynccontextmanager
async def supabase_stack(*, pool_size: int = 40) -> AsyncIterator[SupabaseStack]:
    """A throwaway database with frontdesk's migrations, behind the gateway, and a storage.

    The server is `FRONTDESK_TEST_POSTGRES_DSN` when set, else a throwaway one started for
    the block. Everything is closed and removed at the end. Exits with status 3 and a
    message when no PostgreSQL can be had.
    """
    import psycopg

    from frontdesk.storage.migrations import apply_migrations
    from frontdesk.storage.supabase import SupabaseStorage
    from tests.support.gateway import PostgrestGateway
    from tests.support.postgres import (
        PostgresUnavailableError,
        postgres_server,
        setup_supabase_roles,
        temporary_database,
    )

    with contextlib.ExitStack() as stack:
        try:
            admin_dsn = stack.enter_context(postgres_server())
        except PostgresUnavailableError as exc:
            print(f"PostgreSQL unavailable: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_NO_POSTGRES) from exc
        database = stack.enter_context(temporary_database(admin_dsn))
        authenticator = setup_supabase_roles(database)
        apply_migrations(database)
        with psycopg.connect(database) as conn:
            row = conn.execute("show server_version").fetchone()
        version = str(row[0]) if row else "?"
        gateway = stack.enter_context(
            PostgrestGateway(authenticator, JWT_SECRET, pool_size=pool_size)
        )
        storage = await SupabaseStorage.from_env(
            url=gateway.url, key=gateway.make_jwt("service_role")
        )
        try:
            yield SupabaseStack(storage, gateway, version)
        finally:
            await storage.aclose()


# -- PostgreSQL directly, and SQLite -------------------------------------------------------------


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[str, str]]:
    """A throwaway database with frontdesk's migrations: (its DSN, the server version).

    On `FRONTDESK_TEST_POSTGRES_DSN` when set, else on a throwaway server. Exits with status
    3 and a message when no PostgreSQL can be had.
    """
    import psycopg

    from frontdesk.storage.migrations import apply_migrations
    from tests.support.postgres import PostgresUnavailableError, postgres_server, temporary_database

    with contextlib.ExitStack() as stack:
        try:
            admin_dsn = stack.enter_context(postgres_server())
        except PostgresUnavailableError as exc:
            print(f"PostgreSQL unavailable: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_NO_POSTGRES) from exc
        database = stack.enter_context(temporary_database(admin_dsn))
        apply_migrations(database)
        with psycopg.connect(database) as conn:
            row = conn.execute("show server_version").fetchone()
        yield database, str(row[0]) if row else "?"


@contextlib.asynccontextmanager
async def postgres_stack(*, pool_size: int = 40) -> AsyncIterator[tuple[PostgresStorage, str]]:
    """`PostgresStorage` on a throwaway migrated database: (storage, server version)."""
    from frontdesk.storage.postgres import PostgresStorage

    with postgres_database() as (dsn, version):
        storage = await PostgresStorage.connect(dsn, min_size=4, max_size=pool_size)
        try:
            yield storage, version
        finally:
            await storage.aclose()


@contextlib.asynccontextmanager
async def sqlite_stack() -> AsyncIterator[SQLiteStorage]:
    """`SQLiteStorage` on a file in a temporary directory, removed afterwards."""
    import tempfile

    from frontdesk.storage.sqlite import SQLiteStorage

    with tempfile.TemporaryDirectory(prefix="frontdesk-bench-") as folder:
        storage = SQLiteStorage(Path(folder) / "bench.db")
        try:
            yield storage
        finally:
            await storage.aclose()
