"""Hardware tests: disks, memory, processor, swap, batteries, temperatures, SMART, printers, input devices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..backend import Battery, CpuTimes, InputDevices, Printer, SmartDisk, Temperature, Volume
from ..errors import Unavailable
from ..model import Check, Context, Finding, clip, gib, grade_at, grade_below, rnd

#: Quick samples taken when the agent has no history (``steun-agent check``).
QUICK_MEMORY_SAMPLES = 3
QUICK_INTERVAL = 0.25


class DiskFree(Check[list[Volume]]):
    id = "disk.free"

    async def probe(self, ctx: Context) -> list[Volume]:
        return await ctx.call(ctx.backend.volumes)

    def evaluate(self, data: list[Volume], t: Mapping[str, float]) -> list[Finding]:
        volumes = [v for v in data if v.total > 0]
        if not volumes:
            return [Finding("not_applicable", "none")]
        findings = []
        for v in volumes:
            free = 100.0 * v.free / v.total
            findings.append(
                Finding(
                    grade_below(free, t),
                    "level",
                    {
                        "free_percent": rnd(free),
                        "volume": clip(v.mountpoint),
                        "free_gib": gib(v.free),
                        "total_gib": gib(v.total),
                    },
                    subject=clip(v.mountpoint),
                    value=rnd(free, 2),
                    measured={
                        "free_bytes": v.free,
                        "total_bytes": v.total,
                        "device": clip(v.device),
                        "fstype": clip(v.fstype),
                    },
                )
            )
        return findings


@dataclass(frozen=True, slots=True)
class FillData:
    minutes: float
    volumes: list[tuple[str, int, list[tuple[float, int]]]]  # mountpoint, free now, (seconds, free) points


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of free bytes over seconds (negative: filling)."""
    n = len(points)
    mean_t = sum(p[0] for p in points) / n
    mean_f = sum(p[1] for p in points) / n
    var = sum((p[0] - mean_t) ** 2 for p in points)
    if var == 0:
        return 0.0
    return sum((p[0] - mean_t) * (p[1] - mean_f) for p in points) / var


#: A volume filling slower than this is "not filling up" (noise of logs and caches).
STEADY_BYTES_PER_HOUR = 16 * 1024 * 1024


class DiskFillTime(Check[FillData]):
    id = "disk.fill_time"

    async def probe(self, ctx: Context) -> FillData:
        t = ctx.thresholds
        need = t["min_minutes"]
        samples = ctx.sampler.window(t["window_minutes"] * 60) if ctx.sampler is not None else []
        span = samples[-1].at - samples[0].at if len(samples) > 1 else 0.0
        if len(samples) < 3 or span < need * 60:
            raise Unavailable("common.no_history", minutes=int(need))
        series: dict[str, list[tuple[float, int]]] = {}
        for s in samples:
            for v in s.snapshot.volumes:
                series.setdefault(v.mountpoint, []).append((s.at - samples[0].at, v.free))
        last = {v.mountpoint: v for v in samples[-1].snapshot.volumes if v.total > 0}
        volumes = [(m, last[m].free, pts) for m, pts in series.items() if m in last and len(pts) >= 3]
        return FillData(span / 60, volumes)

    def evaluate(self, data: FillData, t: Mapping[str, float]) -> list[Finding]:
        if not data.volumes:
            return [Finding("not_applicable", "none")]
        findings = []
        for mountpoint, free, points in data.volumes:
            rate = -slope(points) * 3600  # bytes per hour, positive when filling
            subject = clip(mountpoint)
            if rate < STEADY_BYTES_PER_HOUR:
                findings.append(
                    Finding(
                        "pass",
                        "steady",
                        {"volume": subject, "minutes": round(data.minutes)},
                        subject=subject,
                        measured={"rate_bytes_h": round(rate)},
                    )
                )
                continue
            hours = free / rate
            findings.append(
                Finding(
                    grade_below(hours, t),
                    "filling",
                    {"volume": subject, "rate_gib_h": round(rate / 1024**3, 2), "hours": rnd(hours)},
                    subject=subject,
                    value=rnd(hours, 2),
                    measured={
                        "rate_bytes_h": round(rate),
                        "free_bytes": free,
                        "minutes": round(data.minutes),
                    },
                )
            )
        return findings


@dataclass(frozen=True, slots=True)
class Average:
    percent: float
    samples: int
    seconds: float
    extra: float  # available GiB (memory) or cores (processor)


class MemoryUsage(Check[Average]):
    id = "memory.usage"

    async def probe(self, ctx: Context) -> Average:
        window = ctx.sampler.window(ctx.thresholds["window_minutes"] * 60) if ctx.sampler is not None else []
        if len(window) >= 2:
            values = [s.snapshot.memory.percent for s in window]
            span = window[-1].at - window[0].at
            return Average(
                sum(values) / len(values), len(values), span, gib(window[-1].snapshot.memory.available)
            )
        readings = []
        for i in range(QUICK_MEMORY_SAMPLES):
            if i:
                await ctx.sleep(QUICK_INTERVAL)
            readings.append(await ctx.call(ctx.backend.memory))
        values = [m.percent for m in readings]
        span = QUICK_INTERVAL * (len(readings) - 1)
        return Average(sum(values) / len(values), len(values), span, gib(readings[-1].available))

    def evaluate(self, data: Average, t: Mapping[str, float]) -> list[Finding]:
        return [
            Finding(
                grade_at(data.percent, t),
                "level",
                {
                    "percent": rnd(data.percent),
                    "samples": data.samples,
                    "seconds": rnd(data.seconds),
                    "available_gib": data.extra,
                },
                value=rnd(data.percent, 2),
                measured={"samples": data.samples, "seconds": rnd(data.seconds), "available_gib": data.extra},
            )
        ]


class CpuLoad(Check[Average]):
    id = "cpu.load"
    QUICK_SECONDS = 0.5

    async def probe(self, ctx: Context) -> Average:
        window = ctx.sampler.window(ctx.thresholds["window_minutes"] * 60) if ctx.sampler is not None else []
        if len(window) >= 2:
            first, last = window[0].snapshot.cpu, window[-1].snapshot.cpu
            n, span = len(window), window[-1].at - window[0].at
            own = 0.0
        else:
            # Without history the sample overlaps this very run: leave the agent's own work out of it.
            first, own_before = await ctx.call(_cpu_and_own, ctx)
            await ctx.sleep(self.QUICK_SECONDS)
            last, own_after = await ctx.call(_cpu_and_own, ctx)
            n, span, own = 2, self.QUICK_SECONDS, max(0.0, own_after - own_before)
        total = last.total - first.total
        busy = max(0.0, last.busy - first.busy - own)
        percent = min(100.0, max(0.0, 100.0 * busy / total)) if total > 0 else 0.0
        return Average(percent, n, span, float(last.cores))

    def evaluate(self, data: Average, t: Mapping[str, float]) -> list[Finding]:
        return [
            Finding(
                grade_at(data.percent, t),
                "level",
                {"percent": rnd(data.percent), "seconds": rnd(data.seconds), "cores": int(data.extra)},
                value=rnd(data.percent, 2),
                measured={"samples": data.samples, "seconds": rnd(data.seconds), "cores": int(data.extra)},
            )
        ]


def _cpu_and_own(ctx: Context) -> tuple[CpuTimes, float]:
    return ctx.backend.cpu_times(), ctx.backend.own_cpu_seconds()


class SwapUsage(Check[tuple[int, int]]):
    id = "memory.swap"

    async def probe(self, ctx: Context) -> tuple[int, int]:
        swap = await ctx.call(ctx.backend.swap)
        return swap.total, swap.used

    def evaluate(self, data: tuple[int, int], t: Mapping[str, float]) -> list[Finding]:
        total, used = data
        if total <= 0:
            return [Finding("not_applicable", "none")]
        percent = 100.0 * used / total
        return [
            Finding(
                grade_at(percent, t),
                "level",
                {"percent": rnd(percent), "used_gib": gib(used), "total_gib": gib(total)},
                value=rnd(percent, 2),
                measured={"used_bytes": used, "total_bytes": total},
            )
        ]


class BatteryCharge(Check[list[Battery]]):
    id = "battery.charge"

    async def probe(self, ctx: Context) -> list[Battery]:
        return await ctx.call(ctx.backend.batteries)

    def evaluate(self, data: list[Battery], t: Mapping[str, float]) -> list[Finding]:
        if not data:
            return [Finding("not_applicable", "none")]
        findings = []
        for b in data:
            subject = clip(b.name)
            if b.percent is None:
                findings.append(
                    Finding("error", "common.unreadable", {"what": f"{subject} charge"}, subject=subject)
                )
                continue
            measured = {"plugged": b.plugged, "seconds_left": b.seconds_left}
            if b.plugged:
                findings.append(
                    Finding(
                        "pass",
                        "plugged",
                        {"percent": rnd(b.percent)},
                        subject=subject,
                        value=rnd(b.percent),
                        measured=measured,
                    )
                )
                continue
            minutes = b.seconds_left // 60 if b.seconds_left is not None and b.seconds_left >= 0 else None
            findings.append(
                Finding(
                    grade_below(b.percent, t),
                    "discharging",
                    {"percent": rnd(b.percent), "minutes_left": minutes},
                    subject=subject,
                    value=rnd(b.percent),
                    measured=measured,
                )
            )
        return findings


class BatteryHealth(Check[list[Battery]]):
    id = "battery.health"

    async def probe(self, ctx: Context) -> list[Battery]:
        return await ctx.call(ctx.backend.batteries)

    def evaluate(self, data: list[Battery], t: Mapping[str, float]) -> list[Finding]:
        if not data:
            return [Finding("not_applicable", "none")]
        findings = []
        for b in data:
            subject = clip(b.name)
            if not b.energy_full or not b.energy_full_design or b.energy_full_design <= 0:
                findings.append(Finding("not_applicable", "unknown", subject=subject))
                continue
            health = 100.0 * b.energy_full / b.energy_full_design
            findings.append(
                Finding(
                    grade_below(health, t),
                    "level",
                    {"percent": rnd(health), "cycles": b.cycles},
                    subject=subject,
                    value=rnd(health),
                    measured={
                        "energy_full": b.energy_full,
                        "energy_full_design": b.energy_full_design,
                        "cycles": b.cycles,
                    },
                )
            )
        return findings


class CpuTemperature(Check[list[Temperature]]):
    id = "temperature.cpu"

    async def probe(self, ctx: Context) -> list[Temperature]:
        return await ctx.call(ctx.backend.temperatures)

    def evaluate(self, data: list[Temperature], t: Mapping[str, float]) -> list[Finding]:
        cpu = [s for s in data if s.kind == "cpu"]
        if not cpu:
            return [Finding("not_applicable", "none")]
        hottest = max(cpu, key=lambda s: s.celsius)
        return [
            Finding(
                grade_at(hottest.celsius, t),
                "level",
                {"celsius": rnd(hottest.celsius), "sensor": clip(hottest.sensor)},
                value=rnd(hottest.celsius),
                measured={"sensors": len(cpu)},
            )
        ]


class DiskTemperature(Check[list[Temperature]]):
    id = "temperature.disk"

    async def probe(self, ctx: Context) -> list[Temperature]:
        return await ctx.call(ctx.backend.temperatures)

    def evaluate(self, data: list[Temperature], t: Mapping[str, float]) -> list[Finding]:
        disks = [s for s in data if s.kind == "disk"]
        if not disks:
            return [Finding("not_applicable", "none")]
        return [
            Finding(
                grade_at(s.celsius, t),
                "level",
                {"disk": clip(s.sensor), "celsius": rnd(s.celsius)},
                subject=clip(s.sensor),
                value=rnd(s.celsius),
            )
            for s in disks
        ]


class SmartHealth(Check[list[SmartDisk]]):
    id = "storage.smart"

    async def probe(self, ctx: Context) -> list[SmartDisk]:
        return await ctx.call(ctx.backend.smart)

    def evaluate(self, data: list[SmartDisk], t: Mapping[str, float]) -> list[Finding]:
        if not data:
            return [Finding("not_applicable", "none")]
        findings = []
        for d in data:
            subject, params = clip(d.device), {"model": clip(d.model)}
            measured = {"passed": d.passed, "reallocated": d.reallocated}
            if d.passed is None:
                findings.append(
                    Finding("error", "common.unreadable", {"what": f"SMART {subject}"}, subject=subject)
                )
            elif not d.passed:
                findings.append(
                    Finding("fail", "failed", params, subject=subject, value=False, measured=measured)
                )
            elif d.reallocated is not None and grade_at(d.reallocated, t) != "pass":
                findings.append(
                    Finding(
                        "warn",
                        "sectors",
                        {**params, "reallocated": d.reallocated},
                        subject=subject,
                        value=True,
                        measured=measured,
                    )
                )
            else:
                findings.append(
                    Finding("pass", "passed", params, subject=subject, value=True, measured=measured)
                )
        return findings


class PrinterQueue(Check[list[Printer]]):
    id = "printer.queue"

    async def probe(self, ctx: Context) -> list[Printer]:
        return await ctx.call(ctx.backend.printers)

    def evaluate(self, data: list[Printer], t: Mapping[str, float]) -> list[Finding]:
        if not data:
            return [Finding("not_applicable", "none")]
        findings = []
        for p in data:
            subject = clip(p.name)
            if not p.enabled:
                findings.append(Finding("fail", "stopped", {"jobs": p.jobs}, subject=subject, value=p.jobs))
            else:
                findings.append(
                    Finding(grade_at(p.jobs, t), "ready", {"jobs": p.jobs}, subject=subject, value=p.jobs)
                )
        return findings


class InputDevicesCheck(Check[InputDevices]):
    id = "device.input"

    async def probe(self, ctx: Context) -> InputDevices:
        return await ctx.call(ctx.backend.input_devices)

    def evaluate(self, data: InputDevices, t: Mapping[str, float]) -> list[Finding]:
        params = {"keyboards": data.keyboards, "pointers": data.pointers, "usb": data.usb}
        measured = {**params, "desktop_session": data.desktop_session}
        if not data.desktop_session and data.keyboards == 0 and data.pointers == 0:
            return [Finding("not_applicable", "common.no_desktop", measured=measured)]
        if data.desktop_session and data.keyboards == 0:
            return [Finding("warn", "no_keyboard", params, value=0, measured=measured)]
        if data.desktop_session and data.pointers == 0:
            return [Finding("warn", "no_pointer", params, value=0, measured=measured)]
        return [Finding("pass", "present", params, value=data.keyboards + data.pointers, measured=measured)]


CHECKS: tuple[Check[Any], ...] = (
    DiskFree(),
    DiskFillTime(),
    MemoryUsage(),
    CpuLoad(),
    SwapUsage(),
    BatteryCharge(),
    BatteryHealth(),
    CpuTemperature(),
    DiskTemperature(),
    SmartHealth(),
    PrinterQueue(),
    InputDevicesCheck(),
)
