"""A small ring buffer of cheap samples, so trend and average tests have history.

The runtime keeps one ``Sampler`` running while the agent runs: every ``interval`` seconds it records
processor times, memory, volume free space, interface counters and the busiest processes (one
``psutil.process_iter`` pass, about 50 µs per process). ``capacity`` samples are kept (default 130 × 30 s,
a little over an hour: the disk fill-rate window). ``steun-agent check`` runs without one and its trend
tests say so (``not_applicable``, "no history yet").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .backend import DiagnosticsBackend, ProcTimes, Snapshot
from .pool import ProbePool

log = logging.getLogger(__name__)

#: Processes kept per sample: the busiest by processor and the largest by memory.
TOP_PROCESSES = 5


@dataclass(frozen=True, slots=True)
class ProcUse:
    pid: int
    name: str
    cpu_percent: float  # of one core, over the interval before the sample
    memory_percent: float


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # monotonic seconds
    snapshot: Snapshot
    top: tuple[ProcUse, ...] = ()


class Sampler:
    def __init__(
        self,
        backend: DiagnosticsBackend,
        pool: ProbePool,
        *,
        interval: float = 30.0,
        capacity: int = 130,
        processes: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.pool = pool
        self.interval = interval
        self.samples: deque[Sample] = deque(maxlen=capacity)
        self._processes = processes
        self._clock = clock
        self._previous: dict[int, tuple[float, float, float]] = {}  # pid -> (create_time, cpu_s, at)
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="steun-agent-diagnostics-sampler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def window(self, seconds: float) -> list[Sample]:
        """The samples of the last ``seconds`` (oldest first)."""
        if not self.samples:
            return []
        since = self.samples[-1].at - seconds
        return [s for s in self.samples if s.at >= since]

    def statistics(self) -> dict[str, float | int]:
        span = self.samples[-1].at - self.samples[0].at if len(self.samples) > 1 else 0.0
        return {"samples": len(self.samples), "span_s": round(span, 1), "failures": self._failures}

    async def sample_once(self) -> Sample:
        """Take one sample now (also used by tests and by the loop)."""
        snapshot = await self.pool.run(self.backend.snapshot)
        top: tuple[ProcUse, ...] = ()
        if self._processes:
            procs = await self.pool.run(self.backend.processes)
            top = self._top(procs, snapshot.memory.total)
        sample = Sample(self._clock(), snapshot, top)
        self.samples.append(sample)
        return sample

    def add(self, sample: Sample) -> None:
        """Record a sample taken elsewhere (fakes in tests)."""
        self.samples.append(sample)

    def _top(self, procs: list[ProcTimes], memory_total: int) -> tuple[ProcUse, ...]:
        now = self._clock()
        current: dict[int, tuple[float, float, float]] = {}
        uses: list[ProcUse] = []
        for p in procs:
            current[p.pid] = (p.create_time, p.cpu_seconds, now)
            before = self._previous.get(p.pid)
            if before is None or before[0] != p.create_time or now <= before[2]:
                continue  # new process, or a reused pid: no interval yet
            cpu = 100.0 * max(0.0, p.cpu_seconds - before[1]) / (now - before[2])
            mem = 100.0 * p.rss / memory_total if memory_total > 0 else 0.0
            uses.append(ProcUse(p.pid, p.name[:64], round(cpu, 1), round(mem, 1)))
        self._previous = current  # bounded by the number of processes alive
        by_cpu = sorted(uses, key=lambda u: u.cpu_percent, reverse=True)[:TOP_PROCESSES]
        by_mem = sorted(uses, key=lambda u: u.memory_percent, reverse=True)[:TOP_PROCESSES]
        seen: dict[int, ProcUse] = {u.pid: u for u in (*by_cpu, *by_mem)}
        return tuple(seen.values())

    async def _loop(self) -> None:
        while True:
            try:
                await self.sample_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing sample must not end sampling
                self._failures += 1
                log.debug("diagnostics sample failed: %s", exc)
            await asyncio.sleep(self.interval)
