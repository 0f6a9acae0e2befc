"""Routine tests: catalogue wall time, agent CPU and peak RSS during a run, idle RSS/CPU between runs.

Each figure is measured in a fresh process and printed beside baselines from the same run:
a bare ``python -c`` process, and a process that only imports psutil and takes one snapshot (what any
monitoring agent pays). Run: ``uv run python benchmarks/diagnostics.py [--runs 5] [--idle 20]``.
The machine is noisy: compare the columns of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CHILD_BARE = (
    "import resource, json; print(json.dumps({'rss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))"
)
CHILD_PSUTIL = """
import json, os, resource, time
t = os.times()
import psutil
psutil.cpu_times(); psutil.virtual_memory(); psutil.disk_partitions(); psutil.net_io_counters(pernic=True)
procs = list(psutil.process_iter(["name", "cpu_times", "memory_info"]))
u = os.times()
print(json.dumps({"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "cpu_s": (u.user + u.system) - (t.user + t.system), "processes": len(procs)}))
"""


def child(runs: int, idle: float, interval: float) -> None:
    """The measured agent side: import, run the catalogue ``runs`` times, then idle with the sampler."""
    import asyncio

    def rss_kb() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    def cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    from steun_agent.diagnostics.backends.linux import LinuxDiagnostics
    from steun_agent.diagnostics.pool import ProbePool
    from steun_agent.diagnostics.runner import Runner
    from steun_agent.diagnostics.sampler import Sampler

    async def main() -> dict[str, object]:
        backend = LinuxDiagnostics()
        pool = ProbePool()
        sampler = Sampler(backend, pool, interval=interval)
        runner = Runner(backend, pool=pool, sampler=sampler)
        checks = runner.select()[0]
        rss_before = rss_kb()
        walls, cpus, statuses = [], [], {}
        for _ in range(runs):
            c0, w0 = cpu(), time.perf_counter()
            results = await runner.run_all(checks)
            walls.append(time.perf_counter() - w0)
            cpus.append(cpu() - c0)
            for r in results:
                statuses[r.status] = statuses.get(r.status, 0) + 1
        peak_run = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sampler.start()
        c0, w0 = cpu(), time.perf_counter()
        await asyncio.sleep(idle)
        idle_cpu = cpu() - c0
        idle_wall = time.perf_counter() - w0
        await sampler.stop()
        pool.close()
        return {
            "checks": len(checks),
            "rss_start_kb": rss_before,
            "peak_rss_kb": peak_run,
            "walls": walls,
            "cpus": cpus,
            "idle_cpu_percent": 100 * idle_cpu / idle_wall,
            "idle_rss_kb": rss_kb(),
            "samples": len(sampler.samples),
            "statuses": statuses,
        }

    print(json.dumps(asyncio.run(main())))


def spawn(code: list[str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, *code], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle sampling to measure")
    parser.add_argument("--interval", type=float, default=30.0, help="sampler interval while idle")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.runs, args.idle, args.interval)
        return
    bare = spawn(["-c", CHILD_BARE])
    ps = spawn(["-c", CHILD_PSUTIL])
    agent = spawn(
        [
            __file__,
            "--child",
            "--runs",
            str(args.runs),
            "--idle",
            str(args.idle),
            "--interval",
            str(args.interval),
        ]
    )
    walls = agent["walls"]
    cpus = agent["cpus"]
    assert isinstance(walls, list) and isinstance(cpus, list)
    print(
        f"Routine tests on {os.uname().nodename}: {agent['checks']} checks, {args.runs} runs, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; statuses {agent['statuses']}"
    )
    print()
    print(f"{'figure':44} {'steun diagnostics':>20} {'baseline':>14}  baseline is")
    spread = f"({min(walls):.2f}-{max(walls):.2f}) {statistics.median(walls):.2f} s"
    print(f"{'catalogue wall time, (min-max) median':44} {spread:>20} {'—':>14}  bound: timeout + grace")
    print(
        f"{'CPU per run (agent + commands), median':44} {statistics.median(cpus):>18.2f} s "
        f"{ps['cpu_s']:>12.3f} s  one psutil snapshot of {ps['processes']} processes"
    )
    print(
        f"{'peak RSS during runs':44} {agent['peak_rss_kb'] / 1024:>17.1f} MB "
        f"{ps['rss_kb'] / 1024:>11.1f} MB  python + psutil snapshot"
    )  # type: ignore[operator]
    print(
        f"{'RSS before the first run':44} {agent['rss_start_kb'] / 1024:>17.1f} MB "
        f"{bare['rss_kb'] / 1024:>11.1f} MB  bare python -c"
    )  # type: ignore[operator]
    print(
        f"{'idle RSS between runs (sampler on)':44} {agent['idle_rss_kb'] / 1024:>17.1f} MB "
        f"{bare['rss_kb'] / 1024:>11.1f} MB  bare python -c"
    )  # type: ignore[operator]
    print(
        f"{f'idle CPU, sampler every {args.interval:g} s':44} {agent['idle_cpu_percent']:>17.3f} % "
        f"{'':>14}  ({agent['samples']} samples in {args.idle:g} s)"
    )


if __name__ == "__main__":
    main()
