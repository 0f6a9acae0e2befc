"""Running checks against the fake backend in tests."""

from __future__ import annotations

from typing import Any

from steun_agent.diagnostics.backend import CpuTimes, Memory, NicCounters, Snapshot, Volume
from steun_agent.diagnostics.fake import NOW, FakeDiagnostics
from steun_agent.diagnostics.pool import ProbePool
from steun_agent.diagnostics.runner import Runner
from steun_agent.diagnostics.sampler import ProcUse, Sample, Sampler
from steun_protocol.catalogue import load_catalogue
from steun_protocol.diagnostics import CheckResult, Policy

GIB = 1024**3


async def run(
    backend: FakeDiagnostics, *ids: str, policy: Policy | None = None, sampler: Sampler | None = None
) -> list[CheckResult]:
    runner = Runner(backend, pool=ProbePool(), sampler=sampler, clock=lambda: NOW)
    try:
        return await runner.run_all(ids or runner.select()[0], policy)
    finally:
        backend.release()
        runner.pool.close()


def history(
    backend: FakeDiagnostics,
    count: int,
    every: float = 30.0,
    *,
    free: Any = None,
    memory_percent: float | None = None,
    cpu_percent: float | None = None,
    nics: Any = None,
    top: Any = None,
) -> Sampler:
    """A sampler holding ``count`` synthetic samples, ``every`` seconds apart (``free(i)`` bytes free...)."""
    sampler = Sampler(backend, ProbePool(workers=1, max_hung=0), processes=False)
    busy = 0.0
    for i in range(count):
        at = 1000.0 + i * every
        volumes = (Volume("/", "/dev/sda1", "ext4", 100 * GIB, int(free(i)) if free else 50 * GIB),)
        mem = Memory(100 * GIB, int(100 * GIB * (1 - (memory_percent or 10) / 100)))
        busy += every * 4 * (cpu_percent or 10) / 100
        cpu = CpuTimes(busy, i * every * 4, 4)
        sampler.add(
            Sample(
                at,
                Snapshot(cpu, mem, volumes, nics(i) if nics else {"eth0": NicCounters(0, 0, 0)}),
                top(i) if top else (ProcUse(1, "init", 0.0, 0.1),),
            )
        )
    return sampler


def only(results: list[CheckResult], check_id: str) -> list[CheckResult]:
    return [r for r in results if r.check_id == check_id]


CATALOGUE = load_catalogue()
