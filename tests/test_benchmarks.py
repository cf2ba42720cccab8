"""Smoke tests of the benchmarks in `benchmarks/`: each runs at a tiny size (`--quick`).

They check that every script still runs, checks its own results (lost updates, missing
agents) and ends with its ratio lines. No timing is asserted: the machines are shared and
noisy, and the measured numbers live in `benchmarks/README.md`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import InstalledAgents

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def run_benchmark(script: str, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """Run a benchmark with --quick; return its output lines. It must exit 0, warning-free."""
    done = subprocess.run(  # noqa: S603 - this Python, a script of this repository
        [
            sys.executable,
            "-W",
            "error",
            "-W",
            "always::ResourceWarning",
            str(BENCHMARKS / script),
            "--quick",
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Warning" not in done.stderr, done.stderr
    return done.stdout.rstrip().splitlines()


def ratio_lines(lines: list[str]) -> list[str]:
    """The block of `ratio ...` lines the output ends with (at least one)."""
    tail: list[str] = []
    for line in reversed(lines):
        if not line.startswith("ratio "):
            break
        tail.append(line)
    assert tail, "the output does not end with ratio lines:\n" + "\n".join(lines[-20:])
    return tail[::-1]


def assert_has(lines: list[str], *prefixes: str) -> None:
    for prefix in prefixes:
        assert any(line.startswith(prefix) for line in lines), (prefix, lines)


def test_bench_message_memory() -> None:
    ratios = ratio_lines(run_benchmark("bench_message.py", "--backend", "memory"))
    assert_has(
        ratios,
        "ratio requests/message baseline/frontdesk [memory]: ",
        "ratio time/message baseline/frontdesk [memory]: ",
        "ratio time/message frontdesk/fused [memory]: ",
    )
    # Counts, not times: six calls per message against three.
    assert "ratio requests/message frontdesk/fused [memory]: 2.00x" in ratios


def test_bench_message_supabase(postgres_dsn: str) -> None:
    lines = run_benchmark(
        "bench_message.py",
        "--backend",
        "supabase",
        "--delay-ms",
        "1",
        env={"FRONTDESK_TEST_POSTGRES_DSN": postgres_dsn},
    )
    ratios = ratio_lines(lines)
    assert_has(
        ratios,
        "ratio requests/message baseline/frontdesk [supabase 1 ms]: ",
        "ratio time/message baseline/frontdesk [supabase 1 ms]: ",
    )
    assert "ratio requests/message frontdesk/fused [supabase 1 ms]: 2.00x" in ratios


def test_bench_contention_memory() -> None:
    ratios = ratio_lines(run_benchmark("bench_contention.py", "--backend", "memory"))
    assert_has(
        ratios,
        "ratio throughput vs 1 worker [memory, helpers]: ",
        "ratio throughput vs 1 worker [memory, retry]: ",
        "ratio lost updates [memory, helpers+retry]: 0 of ",
        "ratio lost updates [memory, unchecked]: ",
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_bench_message_sql_backends(backend: str, postgres_dsn: str) -> None:
    lines = run_benchmark(
        "bench_message.py",
        "--backend",
        backend,
        env={"FRONTDESK_TEST_POSTGRES_DSN": postgres_dsn},
    )
    ratios = ratio_lines(lines)
    assert_has(ratios, f"ratio time/message baseline/frontdesk [{backend}]: ")
    assert f"ratio requests/message frontdesk/fused [{backend}]: 2.00x" in ratios


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_bench_contention_sql_backends(backend: str, postgres_dsn: str) -> None:
    lines = run_benchmark(
        "bench_contention.py",
        "--backend",
        backend,
        env={"FRONTDESK_TEST_POSTGRES_DSN": postgres_dsn},
    )
    ratios = ratio_lines(lines)
    assert_has(
        ratios,
        f"ratio throughput vs 1 worker [{backend}, helpers]: ",
        f"ratio lost updates [{backend}, helpers+retry]: 0 of ",
    )


def test_bench_sql(postgres_dsn: str) -> None:
    ratios = ratio_lines(
        run_benchmark("bench_sql.py", env={"FRONTDESK_TEST_POSTGRES_DSN": postgres_dsn})
    )
    assert_has(
        ratios,
        "ratio commits/s postgres commit / bare UPDATE [same pool]: ",
        "ratio commits/s postgres direct / supabase through the gateway [0 ms]: ",
        "ratio commits/s sqlite [1 process]: ",
        "ratio commits/s sqlite [4 processes, one file]: ",
        "ratio commits/s sqlite 4 processes / 1 process: ",
    )


def test_bench_discovery(installed_agents: InstalledAgents) -> None:
    # Beside other agent packages too: its checks count what is installed, not assume it.
    ratios = ratio_lines(run_benchmark("bench_discovery.py", env=installed_agents.env))
    assert_has(
        ratios,
        "ratio frontdesk agents --json / baseline, whole process [N=1]: ",
        "ratio discover() / scan+import, in process [N=1]: ",
        "ratio growth N=1 -> N=",
    )


def test_bench_memory() -> None:
    ratios = ratio_lines(run_benchmark("bench_memory.py"))
    for operation in ("merge", "turn", "get"):
        assert_has(ratios, f"ratio ops/s InMemoryStorage/dict+copies [{operation}, ")


def test_bench_listing(postgres_dsn: str) -> None:
    lines = run_benchmark("bench_listing.py", env={"FRONTDESK_TEST_POSTGRES_DSN": postgres_dsn})
    ratios = ratio_lines(lines)
    for label in ("all", "status=closed"):
        assert_has(
            ratios,
            f"ratio offset/keyset at depth 500 [{label}, SQL]: ",
            f"ratio offset/keyset at depth 500 [{label}, SessionManager]: ",
            f"ratio keyset depth 500/page 1 [{label}, SessionManager]: ",
        )


def test_bench_engine() -> None:
    lines = run_benchmark("bench_engine.py")
    ratios = ratio_lines(lines)
    assert_has(
        ratios,
        "ratio engine/baseline time per message at 0 ms model latency: ",
        "ratio engine/baseline time per message at 5 ms model latency: ",
    )
    # The script itself fails unless every message took exactly two storage requests.
    assert any(line.rstrip().endswith("2.00") for line in lines)


@pytest.mark.parametrize(
    "script",
    [
        "bench_listing.py",
        "bench_message.py",
        "bench_contention.py",
        "bench_discovery.py",
        "bench_memory.py",
        "bench_sql.py",
        "bench_engine.py",
    ],
)
def test_each_benchmark_documents_itself(script: str) -> None:
    done = subprocess.run(  # noqa: S603 - this Python, a script of this repository
        [sys.executable, str(BENCHMARKS / script), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout
    assert script in (BENCHMARKS / "README.md").read_text(encoding="utf-8")
