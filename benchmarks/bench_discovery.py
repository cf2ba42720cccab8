"""Benchmark 3: agent discovery with N installed agent packages.

For each N (1, 10, 100, 500 by default) the script writes N minimal agent packages into a
temporary directory -- a module with a `register_agents` hookimpl returning one
`AgentConfig` built in code, and a `.dist-info` with its `METADATA` and an
`entry_points.txt` naming the module in the `frontdesk.agents` group -- and puts that
directory on PYTHONPATH for these processes:

- `cli`: `frontdesk agents --json` (the console script's `main`, run with this Python),
  which discovers, validates and prints every agent, timed from start to exit;
- `baseline`: a process that only scans the `frontdesk.agents` entry-point group and imports
  the same modules (which import frontdesk), timed from start to exit; it also times its
  scan and imports inside the process (`scan+import`, after `import frontdesk`);
- `discover`: a process that times `AgentRegistry().discover()` inside itself, to set the
  discovery proper against `scan+import` without the interpreter's start and the imports.

The packages already installed (the workspace's sales and support, and whatever else the
environment has) are seen too: the script counts them first, and each process's output is
checked against that count plus N. The processes run in rotating order, `--repeat` times
each; the table shows the medians, the ratios, and the cost per added package (the slope
between consecutive N).

    uv run python benchmarks/bench_discovery.py [--sizes 1 10 100 500] [--repeat 7]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks._common import fmt_ratio, print_header, print_ratios, print_table, ratio

GROUP = "frontdesk.agents"

MODULE = """\
from frontdesk import AgentConfig, ModelConfig, StateMachine, hookimpl


@hookimpl
def register_agents():
    return [
        AgentConfig(
            id="bench-agent-{n}",
            name="Benchmark agent {n}",
            intent_detector=ModelConfig(model="small", system_prompt="Classify the message."),
            orchestrator=ModelConfig(model="large", system_prompt="Reply politely."),
            states=StateMachine(
                initial="chat", modes=("chat", "done"), transitions={{"chat": ("done",)}}
            ),
        )
    ]
"""

FRONTDESK = "from frontdesk.cli import main; main()"
# The baseline, and the same work timed inside the process (after `import frontdesk`, which
# the agent modules would import anyway).
BASELINE = f"""\
import json, time
from importlib.metadata import entry_points
import frontdesk
started = time.perf_counter()
modules = []
for ep in entry_points(group={GROUP!r}):
    try:
        modules.append(ep.load())
    except Exception:  # a broken package: discovery skips it too
        pass
print(json.dumps({{"seconds": time.perf_counter() - started, "count": len(modules)}}))
"""
# Discovery alone, timed inside the process: what `frontdesk agents` does before printing.
DISCOVER = """\
import json, time
from frontdesk import AgentRegistry
started = time.perf_counter()
registry = AgentRegistry()
registry.discover()
print(json.dumps({"seconds": time.perf_counter() - started, "count": len(registry)}))
"""


def write_packages(root: Path, count: int) -> None:
    """`count` agent packages, as pip would install them, in `root`."""
    for i in range(count):
        n = f"{i:04d}"
        module = f"fdbench_agent_{n}"
        (root / f"{module}.py").write_text(MODULE.format(n=n), encoding="utf-8")
        info = root / f"{module}-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: fdbench-agent-{n}\nVersion: 0.1.0\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[{GROUP}]\nbench_{n} = {module}\n", encoding="utf-8"
        )
        (info / "RECORD").write_text("", encoding="utf-8")


def environment(site: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FRONTDESK_LOAD_PLUGINS", "FRONTDESK_STRICT_PLUGINS", "PYTHONPATH")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave the temporary directory as written
    return env


def timed(code: str, args: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - this Python, fixed code
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout


@dataclass
class Installed:
    modules: int  # agent modules already installed that import (the baseline's count)
    agents: int  # the agents they register (discovery's count)


def installed() -> Installed:
    """What the environment has before any generated package is added."""
    with tempfile.TemporaryDirectory(prefix="frontdesk-bench-site-") as tmp:
        env = environment(Path(tmp))
        modules = json.loads(timed(BASELINE, [], env)[1])["count"]
        agents = json.loads(timed(DISCOVER, [], env)[1])["count"]
    return Installed(modules=modules, agents=agents)


@dataclass
class Sample:
    cli: float  # whole `frontdesk agents --json` process
    baseline: float  # whole baseline process
    discover: float  # AgentRegistry().discover(), inside its process
    scan: float  # the baseline's scan and imports, inside its process


def measure(count: int, repeat: int, before: Installed) -> Sample:
    """Medians of `repeat` alternated runs with `count` generated packages."""
    with tempfile.TemporaryDirectory(prefix="frontdesk-bench-site-") as tmp:
        site = Path(tmp)
        write_packages(site, count)
        env = environment(site)
        # One untimed run of each first (file-system caches, as on any second start), and
        # the check that everything was found.
        _, out = timed(FRONTDESK, ["agents", "--json"], env)
        agents = json.loads(out)
        missing = {f"bench-agent-{i:04d}" for i in range(count)} - {a["id"] for a in agents}
        if missing or len(agents) != count + before.agents:
            raise RuntimeError(
                f"frontdesk listed {len(agents)} agents, expected {count + before.agents}; "
                f"missing {sorted(missing)}"
            )
        for code, expected in (
            (BASELINE, count + before.modules),
            (DISCOVER, count + before.agents),
        ):
            found = json.loads(timed(code, [], env)[1])["count"]
            if found != expected:
                raise RuntimeError(f"found {found}, expected {expected}")

        times: dict[str, list[float]] = {"cli": [], "baseline": [], "discover": [], "scan": []}

        def run(name: str) -> None:
            if name == "cli":
                times["cli"].append(timed(FRONTDESK, ["agents", "--json"], env)[0])
            elif name == "baseline":
                elapsed, out = timed(BASELINE, [], env)
                times["baseline"].append(elapsed)
                times["scan"].append(json.loads(out)["seconds"])
            else:
                times["discover"].append(json.loads(timed(DISCOVER, [], env)[1])["seconds"])

        order = ["cli", "baseline", "discover"]
        for r in range(repeat):
            shift = r % len(order)
            for name in order[shift:] + order[:shift]:
                run(name)
        return Sample(**{name: statistics.median(values) for name, values in times.items()})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1, 10, 100, 500],
        help="numbers of generated agent packages (default 1 10 100 500)",
    )
    parser.add_argument(
        "--repeat", type=int, default=7, help="timed runs of each process per size (default 7)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat = [1, 5], 1
    print_header("bench_discovery: `frontdesk agents --json` with N agent packages", args)

    before = installed()
    print(f"# already installed: {before.agents} agents from {before.modules} agent modules")
    print()
    results = {n: measure(n, args.repeat, before) for n in args.sizes}
    rows: list[list[object]] = []
    ratios: list[str] = []
    previous: tuple[int, Sample] | None = None
    for n, sample in results.items():
        slope_d = slope_s = float("nan")
        if previous is not None:
            pn, before = previous
            slope_d = (sample.discover - before.discover) / (n - pn) * 1000
            slope_s = (sample.scan - before.scan) / (n - pn) * 1000
        rows.append(
            [
                n,
                sample.cli * 1000,
                sample.baseline * 1000,
                fmt_ratio(ratio(sample.cli, sample.baseline)),
                sample.discover * 1000,
                sample.scan * 1000,
                fmt_ratio(ratio(sample.discover, sample.scan)),
                slope_d,
                slope_s,
            ]
        )
        ratios.append(
            f"frontdesk agents --json / baseline, whole process [N={n}]: "
            f"{fmt_ratio(ratio(sample.cli, sample.baseline))}"
        )
        previous = (n, sample)
    print_table(
        (
            "N",
            "cli ms",
            "baseline ms",
            "ratio",
            "discover ms",
            "scan+import ms",
            "ratio",
            "discover ms/pkg",
            "scan+import ms/pkg",
        ),
        rows,
    )
    print()
    print(
        "cli/baseline: whole processes. discover: AgentRegistry().discover() timed inside its "
        "process; scan+import: the baseline's work timed inside its process. ms/pkg: added "
        "time per added package, between this N and the previous one."
    )
    sizes = sorted(results)
    for n in sizes:
        sample = results[n]
        ratios.append(
            f"discover() / scan+import, in process [N={n}]: "
            f"{fmt_ratio(ratio(sample.discover, sample.scan))}"
        )
    if len(sizes) > 1:
        lo, hi = results[sizes[0]], results[sizes[-1]]
        ratios.append(
            f"growth N={sizes[0]} -> N={sizes[-1]}, whole process: frontdesk "
            f"{fmt_ratio(ratio(hi.cli, lo.cli))}, baseline {fmt_ratio(ratio(hi.baseline, lo.baseline))}"
        )
    print_ratios(ratios)


if __name__ == "__main__":
    main()
