"""Scheduled routine-test runs: each device group's interval, for the devices connected to this node.

Every tick the scheduler reads which groups have a schedule, looks at the online devices of those groups and
starts the runs that are due. A device's next run is due one interval (plus up to 10 % jitter, so a fleet
that enrolled together drifts apart) after its last run, whatever started that one; a device never run
before starts at a random moment within ``first_run_spread`` (a server restart does not start every run at
once). At most one run per device at a time (the service refuses a second) and at most
``max_scheduled_runs`` scheduled runs at once on this node; what does not fit waits for the next tick.
With several nodes, each schedules the agents connected to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from ..fleet import store as fleet_store
from . import store

if TYPE_CHECKING:
    from .service import DiagnosticsService

log = logging.getLogger(__name__)

#: A run comes due up to this fraction of the interval late, at random.
JITTER = 0.1


class Scheduler:
    def __init__(self, service: DiagnosticsService, *, rng: random.Random | None = None) -> None:
        self.service = service
        self._rng = rng or random.Random()
        #: device id → (when its next run is due, the interval that was computed with)
        self._due: dict[str, tuple[float, int]] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self.started = 0
        self.skipped_busy = 0
        self.failed = 0

    def statistics(self) -> dict[str, int]:
        return {
            "tracked": len(self._due),
            "running": len(self._running),
            "started": self.started,
            "skipped_busy": self.skipped_busy,
            "failed": self.failed,
        }

    def due(self, device_id: str) -> float | None:
        entry = self._due.get(device_id)
        return entry[0] if entry is not None else None

    def _jitter(self, interval: int) -> float:
        return self._rng.uniform(0, JITTER * interval)

    async def tick(self, now: float | None = None) -> int:
        """Start the runs that are due at ``now``; returns how many were started."""
        now = time.time() if now is None else now
        service = self.service
        groups = await store.scheduled_groups(service.db)
        if not groups:
            self._due.clear()
            return 0
        online = list(service.fleet.presence.online_devices())
        records = await fleet_store.get_devices(service.db, online) if online else {}
        intervals = {
            device_id: groups[record.group]
            for device_id, record in records.items()
            if not record.revoked and record.group in groups
        }
        for device_id in [d for d in self._due if d not in intervals]:
            del self._due[device_id]  # offline, moved to an unscheduled group, or revoked
        new = [d for d, interval in intervals.items() if self._due.get(d, (0.0, None))[1] != interval]
        if new:
            last = await store.last_run_times(service.db, new)
            spread = service.settings.first_run_spread
            for device_id in new:
                interval = intervals[device_id]
                if device_id in last:
                    due = last[device_id] + interval + self._jitter(interval)
                else:
                    due = now + self._rng.uniform(0, min(float(interval), spread))
                self._due[device_id] = (due, interval)
        limit = service.settings.max_scheduled_runs
        started = 0
        for device_id, (due, interval) in sorted(self._due.items(), key=lambda item: item[1][0]):
            if due > now or len(self._running) >= limit:
                break
            if service.busy(device_id):
                self.skipped_busy += 1
                continue  # a technician's run is going on: try again next tick
            self._due[device_id] = (now + interval + self._jitter(interval), interval)
            task = asyncio.create_task(
                self._run_one(device_id), name=f"steun-diagnostics-scheduled-{device_id}"
            )
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            started += 1
        self.started += started
        return started

    async def _run_one(self, device_id: str) -> None:
        from .service import DiagnosticsError

        service = self.service
        try:
            started = await service.start_run(device_id, trigger="schedule")
            await service.wait_run(started.run.id)
        except DiagnosticsError as exc:
            log.info("scheduled diagnostics on %s not run: %s", device_id, exc)
            self.failed += 1
        except Exception:
            log.exception("scheduled diagnostics on %s failed", device_id)
            self.failed += 1

    async def wait_idle(self) -> None:
        """Wait until no scheduled run is in progress (tests, orderly shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def run(self) -> None:
        tick = self.service.settings.schedule_tick
        while True:
            await asyncio.sleep(tick)
            try:
                await self.tick()
            except Exception:
                log.exception("the diagnostics scheduler failed; retrying next tick")

    async def stop(self) -> None:
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
