"""Benchmark: what the SQL backends cost against their own databases' floor.

- `postgres commit / bare UPDATE`: a `PostgresStorage.commit` (the `frontdesk_commit`
  function: lock the row, check the version, write the state and a turn) against a bare
  psycopg `UPDATE agent_sessions ... RETURNING *` (a version bump), on the same pool and the
  same session, alternating, one at a time. Goal: at least 0.5x (frontdesk's function adds
  little to the database's own cost).
- `postgres direct / supabase 0 ms`: the same commit through `PostgresStorage` and through
  `SupabaseStorage` (supabase-py, HTTP, the PostgREST-protocol gateway with no added delay)
  on one database: what the HTTP hop costs.
- `sqlite commits/s`: `SQLiteStorage` commits (a turn each) on one file, from one process
  and from four processes at once (each on a session of its own: they share the file's
  write lock), and their ratio.

    uv run python benchmarks/bench_sql.py [--commits 400] [--sqlite-commits 400] [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from benchmarks._common import (
    JWT_SECRET,
    bench_registry,
    fmt_ratio,
    mean,
    new_manager,
    percentile,
    postgres_database,
    print_header,
    print_ratios,
    print_table,
    ratio,
)
from frontdesk import SessionManager
from frontdesk.models import NewTurn, Role
from frontdesk.storage import Commit
from frontdesk.testing import TEST_AGENT_ID

HEADERS = ("measure", "ops", "ops/s", "mean ms", "p50 ms", "p99 ms")


def _row(name: str, times: Sequence[float]) -> list[object]:
    return [
        name,
        len(times),
        ratio(len(times), sum(times)),
        mean(times) * 1000,
        percentile(times, 50) * 1000,
        percentile(times, 99) * 1000,
    ]


async def _timed(operation: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await operation()
    return time.perf_counter() - started


def _commit() -> Commit:
    return Commit(turns=(NewTurn(role=Role.USER, content="hola, ¿tenéis la talla M?"),))


async def _session(manager: SessionManager) -> str:
    session = await manager.create_session(
        agent_id=TEST_AGENT_ID, conversation_id=f"c-{uuid.uuid4()}", contact_id="u"
    )
    return session.id


async def bench_postgres(args: argparse.Namespace) -> tuple[list[list[object]], list[str]]:
    from frontdesk.storage.migrations import apply_migrations
    from frontdesk.storage.postgres import PostgresStorage
    from frontdesk.storage.supabase import SupabaseStorage
    from tests.support.gateway import PostgrestGateway
    from tests.support.postgres import setup_supabase_roles

    rows: list[list[object]] = []
    with postgres_database() as (dsn, version):
        print(f"# PostgreSQL {version}")
        authenticator = setup_supabase_roles(dsn)
        apply_migrations(dsn)  # again, now that service_role exists: grants it EXECUTE
        postgres = await PostgresStorage.connect(dsn, min_size=1, max_size=2)
        with PostgrestGateway(authenticator, JWT_SECRET, pool_size=2) as gateway:
            supabase = await SupabaseStorage.from_env(
                url=gateway.url, key=gateway.make_jwt("service_role")
            )
            try:
                registry = bench_registry()
                manager = new_manager(postgres, registry, "sql")
                ws = manager.workspace_id
                sid = await _session(manager)
                bare_sql = (
                    "update public.agent_sessions set version = version + 1,"
                    " updated_at = clock_timestamp() where id = %s and workspace_id = %s"
                    " returning *"
                )

                async def bare() -> None:
                    async with postgres.pool.connection() as conn:
                        cursor = await conn.execute(bare_sql, (sid, ws))
                        await cursor.fetchone()

                async def direct() -> None:
                    await postgres.commit(ws, sid, _commit())

                async def through_gateway() -> None:
                    await supabase.commit(ws, sid, _commit())

                timings: dict[str, list[float]] = {"bare": [], "direct": [], "gateway": []}
                runs = {"bare": bare, "direct": direct, "gateway": through_gateway}
                for run in runs.values():  # warm-up: connections, prepared statements
                    for _ in range(20):
                        await run()
                for index in range(args.commits):
                    order = list(runs.items())
                    shift = index % len(order)
                    for name, run in order[shift:] + order[:shift]:
                        timings[name].append(await _timed(run))
            finally:
                await supabase.aclose()
                await postgres.aclose()
    rows.append(_row("postgres: bare UPDATE ... RETURNING", timings["bare"]))
    rows.append(_row("postgres: PostgresStorage.commit", timings["direct"]))
    rows.append(_row("supabase 0 ms: SupabaseStorage.commit", timings["gateway"]))
    direct_rate = ratio(len(timings["direct"]), sum(timings["direct"]))
    ratios = [
        "commits/s postgres commit / bare UPDATE [same pool]: "
        + fmt_ratio(ratio(direct_rate, ratio(len(timings["bare"]), sum(timings["bare"])))),
        "commits/s postgres direct / supabase through the gateway [0 ms]: "
        + fmt_ratio(ratio(direct_rate, ratio(len(timings["gateway"]), sum(timings["gateway"])))),
    ]
    return rows, ratios


SQLITE_WRITER = """
import asyncio, sys, time, uuid

from frontdesk.models import NewTurn, Role
from frontdesk.storage import Commit, NewSession
from frontdesk.storage.sqlite import SQLiteStorage


async def main(path, commits, start_at):
    storage = SQLiteStorage(path, timeout=60)
    session, _ = await storage.create_session(NewSession(
        id=str(uuid.uuid4()), workspace_id="bench", agent_id="a",
        conversation_id=str(uuid.uuid4()), contact_id="u", current_mode="m"))
    commit = Commit(turns=(NewTurn(role=Role.USER, content="hola, ¿tenéis la talla M?"),))
    while time.time() < start_at:
        await asyncio.sleep(0.001)
    started = time.perf_counter()
    for _ in range(commits):
        await storage.commit("bench", session.id, commit)
    print(time.perf_counter() - started)
    await storage.aclose()


asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


def bench_sqlite(args: argparse.Namespace) -> tuple[list[list[object]], list[str]]:
    rows: list[list[object]] = []
    rates: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="frontdesk-bench-") as folder:
        script = Path(folder) / "writer.py"
        script.write_text(SQLITE_WRITER, encoding="utf-8")
        for processes in (1, 4):
            path = Path(folder) / f"bench-{processes}.db"
            start_at = time.time() + 2  # all processes loaded before anyone starts
            running = [
                subprocess.Popen(  # noqa: S603 - this Python, our own script
                    [
                        sys.executable,
                        str(script),
                        str(path),
                        str(args.sqlite_commits),
                        str(start_at),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(processes)
            ]
            elapsed = []
            for process in running:
                out, _ = process.communicate(timeout=600)
                if process.returncode != 0:
                    raise SystemExit(f"a SQLite writer failed (exit {process.returncode})")
                elapsed.append(float(out.strip()))
            total = processes * args.sqlite_commits
            rates[processes] = total / max(elapsed)
            rows.append(
                [
                    f"sqlite: {processes} process(es) on one file",
                    total,
                    rates[processes],
                    max(elapsed) / args.sqlite_commits * 1000,
                    float("nan"),
                    float("nan"),
                ]
            )
    ratios = [
        f"commits/s sqlite [1 process]: {rates[1]:,.0f}",
        f"commits/s sqlite [4 processes, one file]: {rates[4]:,.0f}",
        f"commits/s sqlite 4 processes / 1 process: {fmt_ratio(ratio(rates[4], rates[1]))}",
    ]
    return rows, ratios


async def main_async(args: argparse.Namespace) -> None:
    rows, ratios = await bench_postgres(args)
    sqlite_rows, sqlite_ratios = bench_sqlite(args)
    print_table(HEADERS, rows + sqlite_rows)
    print()
    print("sqlite rows: mean ms is the slowest process's time per commit")
    print_ratios(ratios + sqlite_ratios)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--commits", type=int, default=400, help="commits of each kind on PostgreSQL (default 400)"
    )
    parser.add_argument(
        "--sqlite-commits",
        type=int,
        default=400,
        help="commits per process on SQLite (default 400)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a few seconds, for the smoke test"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.commits, args.sqlite_commits = 10, 10
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print_header("bench_sql: the SQL backends against their databases' floor", args)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
