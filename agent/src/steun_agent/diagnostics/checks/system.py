"""Operating-system tests: restarts, uptime, support dates, updates, services, logs, crashes, time, names."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from steun_protocol.catalogue import Lifecycle
from steun_protocol.diagnostics import Status, worst

from ..backend import (
    ClockSync,
    Crashes,
    FileHandles,
    LogErrors,
    OsRelease,
    RebootState,
    ServiceState,
    Updates,
    Volume,
)
from ..errors import Unavailable
from ..model import Check, Context, Finding, clip, grade_at, grade_below, joined, rnd

DAY = 86400.0


class RebootPending(Check[RebootState]):
    id = "os.reboot_pending"

    async def probe(self, ctx: Context) -> RebootState:
        return await ctx.call(ctx.backend.reboot_state)

    def evaluate(self, data: RebootState, t: Mapping[str, float]) -> list[Finding]:
        measured = {
            "required": data.required,
            "packages": data.packages,
            "kernel_missing": data.kernel_missing,
        }
        if data.kernel_missing:
            return [
                Finding(
                    "warn", "kernel", {"running": clip(data.kernel_missing)}, value=True, measured=measured
                )
            ]
        if data.required:
            return [Finding("warn", "pending", {"packages": data.packages}, value=True, measured=measured)]
        return [Finding("pass", "none", value=False, measured=measured)]


class Uptime(Check[tuple[float, float]]):
    id = "os.uptime"

    async def probe(self, ctx: Context) -> tuple[float, float]:
        return await ctx.call(ctx.backend.boot_time), ctx.clock()

    def evaluate(self, data: tuple[float, float], t: Mapping[str, float]) -> list[Finding]:
        boot, now = data
        days = max(0.0, (now - boot) / DAY)
        return [
            Finding(
                grade_at(days, t),
                "level",
                {"days": rnd(days)},
                value=rnd(days, 2),
                measured={"boot_time": round(boot)},
            )
        ]


@dataclass(frozen=True, slots=True)
class SupportData:
    release: OsRelease
    lifecycle: Lifecycle | None
    today: dt.date


def find_lifecycle(release: OsRelease, table: list[Lifecycle]) -> Lifecycle | None:
    ids = (release.id, *release.id_like)
    for os_id in ids:
        for entry in table:
            version = release.version_id
            if entry.os_id == os_id and (version == entry.version or version.startswith(entry.version + ".")):
                return entry
        if os_id == release.id and any(e.os_id == os_id for e in table):
            return None  # a known OS with an unknown release: do not guess from its parent
    return None


class OsSupported(Check[SupportData]):
    id = "os.supported"

    async def probe(self, ctx: Context) -> SupportData:
        release = await ctx.call(ctx.backend.os_release)
        today = dt.datetime.fromtimestamp(ctx.clock(), dt.UTC).date()
        return SupportData(release, find_lifecycle(release, ctx.catalogue.os_lifecycle), today)

    def evaluate(self, data: SupportData, t: Mapping[str, float]) -> list[Finding]:
        name = clip(data.release.pretty or f"{data.release.id} {data.release.version_id}")
        if data.lifecycle is None:
            return [
                Finding(
                    "not_applicable",
                    "unknown",
                    {"name": name},
                    measured={"os_id": clip(data.release.id), "version": clip(data.release.version_id)},
                )
            ]
        eol = dt.date.fromisoformat(data.lifecycle.eol)
        days = (eol - data.today).days
        status = grade_below(days, t)
        summary = "ended" if days < 0 else ("ending" if status == "warn" else "supported")
        return [
            Finding(
                status,
                summary,
                {"name": clip(data.lifecycle.name), "eol": data.lifecycle.eol, "days": days},
                value=days,
                measured={"eol": data.lifecycle.eol},
            )
        ]


class UpdatesCheck(Check[tuple[Updates, float]]):
    id = "os.updates"

    async def probe(self, ctx: Context) -> tuple[Updates, float]:
        return await ctx.call(ctx.backend.updates), ctx.clock()

    def evaluate(self, data: tuple[Updates, float], t: Mapping[str, float]) -> list[Finding]:
        updates, now = data
        days = max(0.0, (now - updates.last_install) / DAY) if updates.last_install is not None else None
        if days is None and updates.pending is None:
            return [Finding("error", "common.unreadable", {"what": "package history"})]
        statuses: list[Status] = []
        if days is not None:
            statuses.append(grade_at(days, t))
        if (
            updates.security is not None
            and "security_warn_at" in t
            and updates.security >= t["security_warn_at"]
        ):
            statuses.append("warn")
        measured = {
            "pending": updates.pending,
            "security": updates.security,
            "days_since_install": rnd(days) if days is not None else None,
        }
        params = {
            "pending": updates.pending,
            "security": updates.security,
            "days": round(days) if days is not None else None,
        }
        summary = "state" if updates.pending is not None else "unknown_pending"
        return [
            Finding(
                worst(statuses),
                summary,
                params,
                value=rnd(days) if days is not None else None,
                measured=measured,
            )
        ]


class Services(Check[list[ServiceState]]):
    id = "os.services"

    async def probe(self, ctx: Context) -> list[ServiceState]:
        names = list(ctx.policy.required_services)
        if not names:
            raise Unavailable("none")
        return await ctx.call(ctx.backend.services, names)

    def evaluate(self, data: list[ServiceState], t: Mapping[str, float]) -> list[Finding]:
        findings = []
        for s in data:
            subject = clip(s.name)
            if not s.exists:
                findings.append(
                    Finding("fail", "missing", {"service": subject}, subject=subject, value=False)
                )
            elif s.active != "active":
                findings.append(
                    Finding(
                        "fail",
                        "stopped",
                        {"service": subject, "state": clip(s.active)},
                        subject=subject,
                        value=False,
                        measured={"sub": clip(s.sub)},
                    )
                )
            else:
                findings.append(
                    Finding(
                        "pass",
                        "running",
                        {"service": subject},
                        subject=subject,
                        value=True,
                        measured={"sub": clip(s.sub)},
                    )
                )
        return findings


class FailedUnits(Check[list[str]]):
    id = "os.failed_units"

    async def probe(self, ctx: Context) -> list[str]:
        return await ctx.call(ctx.backend.failed_units)

    def evaluate(self, data: list[str], t: Mapping[str, float]) -> list[Finding]:
        if not data:
            return [Finding(grade_at(0, t), "none", value=0)]
        return [
            Finding(
                grade_at(len(data), t), "failed", {"count": len(data), "units": joined(data)}, value=len(data)
            )
        ]


class LogErrorsCheck(Check[LogErrors]):
    id = "os.log_errors"

    async def probe(self, ctx: Context) -> LogErrors:
        return await ctx.call(ctx.backend.log_errors, ctx.thresholds["window_hours"])

    def evaluate(self, data: LogErrors, t: Mapping[str, float]) -> list[Finding]:
        measured: dict[str, Any] = {"truncated": data.truncated}
        for i, line in enumerate(data.samples[:3]):
            measured[f"sample_{i + 1}"] = clip(line)
        return [
            Finding(
                grade_at(data.count, t),
                "count",
                {"count": data.count, "hours": round(t["window_hours"])},
                value=data.count,
                measured=measured,
            )
        ]


class CrashesCheck(Check[Crashes]):
    id = "os.crashes"

    async def probe(self, ctx: Context) -> Crashes:
        return await ctx.call(ctx.backend.crashes, ctx.thresholds["window_days"])

    def evaluate(self, data: Crashes, t: Mapping[str, float]) -> list[Finding]:
        latest = clip(data.latest) if data.latest else None
        return [
            Finding(
                grade_at(data.count, t),
                "count",
                {"count": data.count, "days": round(t["window_days"]), "latest": latest},
                value=data.count,
            )
        ]


class TimeSync(Check[ClockSync]):
    id = "time.sync"

    async def probe(self, ctx: Context) -> ClockSync:
        return await ctx.call(ctx.backend.clock_sync)

    def evaluate(self, data: ClockSync, t: Mapping[str, float]) -> list[Finding]:
        params = {"source": clip(data.source)}
        if data.synchronized:
            return [Finding("pass", "synced", params, value=True)]
        return [Finding("warn", "unsynced", params, value=False)]


class TimeZone(Check[tuple[str, int, str | None]]):
    id = "time.zone"

    async def probe(self, ctx: Context) -> tuple[str, int, str | None]:
        name, offset = await ctx.call(ctx.backend.timezone)
        return name, offset, ctx.policy.expected_timezone

    def evaluate(self, data: tuple[str, int, str | None], t: Mapping[str, float]) -> list[Finding]:
        name, offset, expected = data
        sign = "+" if offset >= 0 else "-"
        hours, rest = divmod(abs(offset) // 60, 60)
        offset_text = f"{sign}{hours:02d}:{rest:02d}"
        zone = clip(name)
        if expected is not None and name != expected:
            return [
                Finding(
                    "warn",
                    "unexpected",
                    {"zone": zone, "expected": expected},
                    value=zone,
                    measured={"offset": offset_text},
                )
            ]
        return [
            Finding(
                "pass",
                "zone",
                {"zone": zone, "offset": offset_text},
                value=zone,
                measured={"offset": offset_text},
            )
        ]


@dataclass(frozen=True, slots=True)
class Lookup:
    name: str
    addresses: list[str] | None
    ms: float
    reason: str = ""


class Hostname(Check[Lookup]):
    id = "os.hostname"

    async def probe(self, ctx: Context) -> Lookup:
        name = await ctx.call(ctx.backend.hostname)
        started = time.perf_counter()
        try:
            addresses, ms = await ctx.call(ctx.backend.resolve, name)
        except OSError as exc:
            return Lookup(name, None, (time.perf_counter() - started) * 1000, str(exc))
        return Lookup(name, addresses, ms)

    def evaluate(self, data: Lookup, t: Mapping[str, float]) -> list[Finding]:
        name = clip(data.name)
        if not data.addresses:
            return [Finding("fail", "unresolved", {"hostname": name}, detail=clip(data.reason, 1000))]
        return [
            Finding(
                grade_at(data.ms, t),
                "resolves",
                {"hostname": name, "address": clip(data.addresses[0]), "ms": rnd(data.ms)},
                value=rnd(data.ms, 2),
                measured={"addresses": joined(data.addresses, 4)},
            )
        ]


class Inodes(Check[list[Volume]]):
    id = "os.inodes"

    async def probe(self, ctx: Context) -> list[Volume]:
        return await ctx.call(ctx.backend.volumes)

    def evaluate(self, data: list[Volume], t: Mapping[str, float]) -> list[Finding]:
        volumes = [v for v in data if v.inodes_total and v.inodes_free is not None]
        if not volumes:
            return [Finding("not_applicable", "none")]
        findings = []
        for v in volumes:
            assert v.inodes_total is not None and v.inodes_free is not None
            used = 100.0 * (v.inodes_total - v.inodes_free) / v.inodes_total
            findings.append(
                Finding(
                    grade_at(used, t),
                    "level",
                    {"percent": rnd(used), "volume": clip(v.mountpoint)},
                    subject=clip(v.mountpoint),
                    value=rnd(used, 2),
                    measured={"inodes_total": v.inodes_total, "inodes_free": v.inodes_free},
                )
            )
        return findings


class FileHandlesCheck(Check[FileHandles]):
    id = "os.file_handles"

    async def probe(self, ctx: Context) -> FileHandles:
        return await ctx.call(ctx.backend.file_handles)

    def evaluate(self, data: FileHandles, t: Mapping[str, float]) -> list[Finding]:
        if data.max <= 0:
            return [Finding("not_applicable", "common.unreadable", {"what": "file-max"})]
        percent = 100.0 * data.used / data.max
        return [
            Finding(
                grade_at(percent, t),
                "level",
                {"percent": rnd(percent, 2), "used": data.used, "max": data.max},
                value=rnd(percent, 3),
                measured={"used": data.used, "max": data.max},
            )
        ]


CHECKS: tuple[Check[Any], ...] = (
    RebootPending(),
    Uptime(),
    OsSupported(),
    UpdatesCheck(),
    Services(),
    FailedUnits(),
    LogErrorsCheck(),
    CrashesCheck(),
    TimeSync(),
    TimeZone(),
    Hostname(),
    Inodes(),
    FileHandlesCheck(),
)
