"""Benchmark 5: listing sessions with keyset pagination against OFFSET, on PostgreSQL.

One workspace holds N sessions (100,000 by default; a second workspace holds as many
again, so the workspace filter has work to do). A page is 50 sessions, newest activity
first. Two ways to fetch the page that starts at depth D (10,000 by default):

- `keyset`: frontdesk's way. At the `SQL` level, the `frontdesk_list_sessions` function
  after the previous page's last (activity, id); at the `SessionManager` level,
  `list_sessions` with the previous page's cursor: the whole stack a user calls, through
  `PostgresStorage`, cursor checks and decoding into `SessionSummary` values included;
- `offset`: the baseline, the query a listing without cursors runs: the same rows, in the
  same order, as the same JSON, `... order by last_activity_at desc, id desc limit 51
  offset D`, on the same connection pool; at the `SessionManager` level its items are
  decoded into `SessionSummary` values as frontdesk decodes its own.

Each is timed on page 1 and on the page at depth D (median and fastest of `--repeat`
rounds, every way once per round), unfiltered
and filtered by status; every way is first checked to return the same rows. Before that,
frontdesk pages through to depth D with cursors, and the time of every page is recorded,
to show that it does not grow with depth.

    uv run python benchmarks/bench_listing.py [--sessions 100000] [--depth 10000] [--repeat 25]

The server is FRONTDESK_TEST_POSTGRES_DSN when set, else a throwaway PostgreSQL started for
the run (exit status 3 when there is none).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from benchmarks._common import (
    EXIT_NO_POSTGRES,
    bench_registry,
    fmt_ratio,
    print_header,
    print_ratios,
    print_table,
    ratio,
)
from frontdesk import SessionManager
from frontdesk.lifecycle import ListPosition
from frontdesk.storage._pgjson import summary_from_json
from frontdesk.storage.postgres import PostgresStorage

PAGE = 50
WORKSPACE = "bench-listing"

_FILL = """
insert into public.agent_sessions
    (id, workspace_id, agent_id, conversation_id, contact_id, version, status, current_mode,
     state, turn_count, tokens_used, created_at, updated_at, last_activity_at, agent_version)
select gen_random_uuid(), %(workspace)s,
       case when i %% 2 = 0 then 'sales' else 'support' end,
       'whatsapp:+34' || (600000000 + i), '+34' || (600000000 + i %% 40000), 1 + i %% 9,
       case i %% 3 when 0 then 'closed' when 1 then 'handed_off' else 'active' end,
       'greeting', '{"captured_data": {"name": "Ana"}, "data": {"cart": [1, 2]}}'::jsonb,
       i %% 30, 40 * (i %% 30),
       stamp - interval '1 hour', stamp, stamp, '0.1.0'
from (
    select i, now() - random() * interval '180 days' as stamp
    from generate_series(1, %(count)s) as i
) rows
"""

# The same JSON per item as `frontdesk_list_sessions` builds.
_OFFSET = """
select coalesce(json_agg(json_build_object(
           'id', p.id, 'workspace_id', p.workspace_id, 'agent_id', p.agent_id,
           'conversation_id', p.conversation_id, 'contact_id', p.contact_id,
           'version', p.version, 'status', p.status, 'current_mode', p.current_mode,
           'state', p.state, 'created_at', p.created_at, 'updated_at', p.updated_at,
           'last_activity_at', p.last_activity_at, 'agent_version', p.agent_version,
           'turn_count', p.turn_count, 'tokens_used', p.tokens_used)
           order by p.last_activity_at desc, p.id desc), '[]'::json)
from (select s.* from public.agent_sessions s
      where s.workspace_id = %(workspace)s {filter}
      order by s.last_activity_at desc, s.id desc limit %(limit)s offset %(offset)s) p
"""


async def timed_together(
    calls: dict[Any, Callable[[], Awaitable[Any]]], repeat: int
) -> dict[Any, tuple[float, float]]:
    """Median and fastest time of each call, in ms, over `repeat` rounds.

    Each round runs every call once, in turn (after one warm-up round), so that the noise of
    a shared machine hits every way alike. On a busy machine the median carries the waits
    for a CPU; the fastest run is closer to what the work itself costs. Both are reported.
    """
    for call in calls.values():
        await call()
    times: dict[Any, list[float]] = {key: [] for key in calls}
    for _ in range(repeat):
        for key, call in calls.items():
            started = time.perf_counter()
            await call()
            times[key].append((time.perf_counter() - started) * 1000)
    return {key: (statistics.median(values), min(values)) for key, values in times.items()}


@contextlib.asynccontextmanager
async def postgres_storage(sessions: int) -> AsyncIterator[tuple[PostgresStorage, str]]:
    """A throwaway database with frontdesk's migrations and `sessions` sessions per workspace."""
    import psycopg

    from frontdesk.storage.migrations import apply_migrations
    from tests.support.postgres import (
        PostgresUnavailableError,
        postgres_server,
        temporary_database,
    )

    with contextlib.ExitStack() as stack:
        try:
            admin_dsn = stack.enter_context(postgres_server())
        except PostgresUnavailableError as exc:
            print(f"PostgreSQL unavailable: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_NO_POSTGRES) from exc
        database = stack.enter_context(temporary_database(admin_dsn))
        apply_migrations(database)
        with psycopg.connect(database, autocommit=True) as conn:
            for workspace in (WORKSPACE, f"{WORKSPACE}-other"):
                conn.execute(_FILL, {"workspace": workspace, "count": sessions})
            conn.execute("vacuum analyze public.agent_sessions")
            row = conn.execute("show server_version").fetchone()
        storage = await PostgresStorage.connect(database, min_size=1, max_size=2)
        try:
            yield storage, str(row[0]) if row else "?"
        finally:
            await storage.aclose()


async def offset_page(storage: PostgresStorage, offset: int, status: str | None) -> Any:
    """The baseline at the SQL level: the page by OFFSET, as JSON."""
    query = _OFFSET.format(filter="and s.status = %(status)s" if status else "")
    async with storage.pool.connection() as conn:
        cursor = await conn.execute(
            query, {"workspace": WORKSPACE, "limit": PAGE + 1, "offset": offset, "status": status}
        )
        row = await cursor.fetchone()
    return row[0] if row else None


async def offset_summaries(storage: PostgresStorage, offset: int, status: str | None) -> Any:
    """The baseline at the user's level: the OFFSET page, decoded as frontdesk decodes its own."""
    return [summary_from_json(item) for item in await offset_page(storage, offset, status)]


async def keyset_page(
    storage: PostgresStorage, after: ListPosition | None, status: str | None
) -> Any:
    """frontdesk's listing at the SQL level: `frontdesk_list_sessions` after a position, as JSON."""
    params: dict[str, Any] = {"workspace": WORKSPACE, "limit": PAGE + 1, "status": status}
    where = ""
    if after is not None:
        params |= {"at": after.last_activity_at, "id": after.session_id}
        where = ", p_after_activity => %(at)s::timestamptz, p_after_id => %(id)s::uuid"
    query = (
        "select public.frontdesk_list_sessions(p_workspace_id => %(workspace)s,"
        f" p_limit => %(limit)s::integer, p_status => %(status)s::text{where})"
    )
    async with storage.pool.connection() as conn:
        cursor = await conn.execute(query, params)
        row = await cursor.fetchone()
    return row[0] if row else None


async def walk_to(
    manager: SessionManager, depth: int, status: str | None
) -> tuple[str, ListPosition, list[float]]:
    """The cursor and position where the page at `depth` starts, and each page's time."""
    cursor: str | None = None
    times = []
    last = None
    for _ in range(depth // PAGE):
        started = time.perf_counter()
        page = await manager.list_sessions(limit=PAGE, cursor=cursor, status=status)
        times.append((time.perf_counter() - started) * 1000)
        cursor, last = page.next_cursor, page.items[-1]
        assert cursor is not None, "fewer sessions than the depth asked for"
    assert cursor is not None
    assert last is not None
    return cursor, ListPosition(last.last_activity_at, last.id), times


async def run(args: argparse.Namespace) -> None:
    async with postgres_storage(args.sessions) as (storage, version):
        print(f"# PostgreSQL {version}, {args.sessions:,} sessions in each of 2 workspaces")
        print()
        manager = SessionManager(storage, workspace_id=WORKSPACE, registry=bench_registry())
        rows = []
        ratios = []
        depth = args.depth
        for status in (None, "closed"):
            label = "all" if status is None else f"status={status}"
            cursor, position, walk = await walk_to(manager, depth, status)
            deep = await manager.list_sessions(limit=PAGE, cursor=cursor, status=status)
            # Every way must return the same rows, or the comparison means nothing.
            by_offset = await offset_page(storage, depth, status)
            by_keyset = await keyset_page(storage, position, status)
            assert [i.id for i in deep.items] == [r["id"] for r in by_offset][:PAGE]
            assert by_keyset == by_offset

            measured = {
                ("SQL", "keyset"): (
                    lambda s=status: keyset_page(storage, None, s),
                    lambda s=status, p=position: keyset_page(storage, p, s),
                ),
                ("SQL", "offset"): (
                    lambda s=status: offset_page(storage, 0, s),
                    lambda s=status: offset_page(storage, depth, s),
                ),
                ("SessionManager", "keyset"): (
                    lambda s=status: manager.list_sessions(limit=PAGE, status=s),
                    lambda s=status, c=cursor: manager.list_sessions(
                        limit=PAGE, cursor=c, status=s
                    ),
                ),
                ("SessionManager", "offset"): (
                    lambda s=status: offset_summaries(storage, 0, s),
                    lambda s=status: offset_summaries(storage, depth, s),
                ),
            }
            calls = {
                (level, way, which): call
                for (level, way), pair in measured.items()
                for which, call in zip(("first", "deep"), pair, strict=True)
            }
            results = await timed_together(calls, args.repeat)
            times = {}
            fastest = {}
            for level, way in measured:
                first_ms, first_min = results[level, way, "first"]
                deep_ms, deep_min = results[level, way, "deep"]
                times[level, way] = (first_ms, deep_ms)
                fastest[level, way] = deep_min
                rows.append(
                    (label, level, way, first_ms, deep_ms, first_min, deep_min,
                     ratio(deep_ms, first_ms))
                )  # fmt: skip
            for level in ("SQL", "SessionManager"):
                keyset_deep = times[level, "keyset"][1]
                offset_deep = times[level, "offset"][1]
                ratios.append(
                    f"offset/keyset at depth {depth:,} [{label}, {level}]: "
                    f"{fmt_ratio(ratio(offset_deep, keyset_deep))} (median), "
                    f"{fmt_ratio(ratio(fastest[level, 'offset'], fastest[level, 'keyset']))}"
                    " (fastest)"
                )
            first_ms, deep_ms = times["SessionManager", "keyset"]
            tenth = max(1, len(walk) // 10)
            ratios += [
                f"keyset depth {depth:,}/page 1 [{label}, SessionManager]: "
                f"{fmt_ratio(ratio(deep_ms, first_ms))}",
                f"keyset while paging, last {tenth} pages/first {tenth} [{label}]: "
                f"{fmt_ratio(ratio(statistics.median(walk[-tenth:]), statistics.median(walk[:tenth])))}",
            ]
        print_table(
            (
                "filter",
                "level",
                "way",
                "page 1 ms",
                f"depth {depth:,} ms",
                "page 1 fastest",
                "depth fastest",
                "depth/page 1",
            ),
            rows,
        )
        print_ratios(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000, help="sessions per workspace")
    parser.add_argument("--depth", type=int, default=10_000, help="where the deep page starts")
    parser.add_argument("--repeat", type=int, default=25, help="timed runs per measurement")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a few seconds, for the smoke test"
    )
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.depth, args.repeat = 3_000, 500, 3
    if args.depth % PAGE or not 0 < args.depth < args.sessions // 3:
        parser.error(f"--depth must be a multiple of {PAGE} below a third of --sessions")
    print_header("listing: keyset pagination against OFFSET", args)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
