"""Software tests: required packages, start-up programs, runaway processes, the default browser."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from steun_protocol.diagnostics import Status, worst

from ..backend import StartupItem
from ..errors import Unavailable
from ..model import Check, Context, Finding, clip, grade_at, joined, rnd
from ..sampler import ProcUse


@dataclass(frozen=True, slots=True)
class Requirement:
    name: str
    version: str | None  # installed version; None: not installed
    minimum: str | None
    older: bool  # installed version is below the minimum


class RequiredSoftware(Check[list[Requirement]]):
    id = "software.required"

    async def probe(self, ctx: Context) -> list[Requirement]:
        wanted = list(ctx.policy.required_software)
        if not wanted:
            raise Unavailable("none")
        installed = await ctx.call(ctx.backend.packages, [w.name for w in wanted])
        result = []
        for w in wanted:
            version = installed.get(w.name)
            older = bool(
                version and w.min_version and ctx.backend.compare_versions(version, w.min_version) < 0
            )
            result.append(Requirement(w.name, version, w.min_version, older))
        return result

    def evaluate(self, data: list[Requirement], t: Mapping[str, float]) -> list[Finding]:
        findings = []
        for r in data:
            subject = clip(r.name)
            measured = {"minimum": r.minimum}
            if r.version is None:
                findings.append(
                    Finding("fail", "missing", {"package": subject}, subject=subject, measured=measured)
                )
            elif r.older:
                findings.append(
                    Finding(
                        "warn",
                        "too_old",
                        {"package": subject, "version": clip(r.version), "minimum": r.minimum},
                        subject=subject,
                        value=clip(r.version),
                        measured=measured,
                    )
                )
            else:
                findings.append(
                    Finding(
                        "pass",
                        "present",
                        {"package": subject, "version": clip(r.version)},
                        subject=subject,
                        value=clip(r.version),
                        measured=measured,
                    )
                )
        return findings


class StartupPrograms(Check[list[StartupItem]]):
    id = "software.startup"

    async def probe(self, ctx: Context) -> list[StartupItem]:
        return await ctx.call(ctx.backend.startup_items)

    def evaluate(self, data: list[StartupItem], t: Mapping[str, float]) -> list[Finding]:
        user = [i.name for i in data if i.scope == "user"]
        system = [i.name for i in data if i.scope == "system"]
        return [
            Finding(
                grade_at(len(data), t),
                "count",
                {"count": len(data), "user": len(user), "system": len(system)},
                value=len(data),
                measured={"user_items": joined(sorted(user), 12), "system_items": joined(sorted(system), 12)},
            )
        ]


@dataclass(frozen=True, slots=True)
class History:
    minutes: float
    samples: list[tuple[ProcUse, ...]]


class RunawayProcesses(Check[History]):
    id = "software.runaway"

    async def probe(self, ctx: Context) -> History:
        minutes = ctx.thresholds["sustain_minutes"]
        window = ctx.sampler.window(minutes * 60) if ctx.sampler is not None else []
        # The first sample of an agent has no processor figures yet; it needs three with figures.
        usable = [s for s in window if s.top]
        span = usable[-1].at - usable[0].at if len(usable) > 1 else 0.0
        if len(usable) < 3 or span < minutes * 60 * 0.8:
            raise Unavailable("common.no_history", minutes=int(minutes))
        return History(span / 60, [s.top for s in usable])

    def evaluate(self, data: History, t: Mapping[str, float]) -> list[Finding]:
        per_pid: dict[int, list[ProcUse]] = {}
        for top in data.samples:
            for use in top:
                per_pid.setdefault(use.pid, []).append(use)
        minutes = round(data.minutes)
        findings = []
        for pid, uses in per_pid.items():
            if len(uses) < len(data.samples):
                continue  # not above the others in every sample: not sustained
            cpu = min(u.cpu_percent for u in uses)
            memory = min(u.memory_percent for u in uses)
            name = clip(uses[-1].name)
            statuses: list[tuple[Status, str, float]] = []
            if "cpu_warn_at" in t and cpu >= t["cpu_warn_at"]:
                statuses.append(("warn", "cpu", cpu))
            mem_status = grade_at(memory, t, "memory_warn_at", "memory_fail_at")
            if mem_status != "pass":
                statuses.append((mem_status, "memory", memory))
            if not statuses:
                continue
            status = worst(s for s, _, _ in statuses)
            _, summary, percent = next(x for x in statuses if x[0] == status)
            findings.append(
                Finding(
                    status,
                    summary,
                    {"process": name, "pid": pid, "percent": rnd(percent), "minutes": minutes},
                    subject=f"{name} ({pid})",
                    value=rnd(percent),
                    measured={"cpu_percent_min": rnd(cpu), "memory_percent_min": rnd(memory)},
                )
            )
        if not findings:
            return [
                Finding(
                    "pass",
                    "none",
                    {"cpu": t.get("cpu_warn_at"), "memory": t.get("memory_warn_at"), "minutes": minutes},
                    measured={"samples": len(data.samples)},
                )
            ]
        return findings


class DefaultBrowser(Check[str | None]):
    id = "software.browser"

    async def probe(self, ctx: Context) -> str | None:
        return await ctx.call(ctx.backend.default_browser)

    def evaluate(self, data: str | None, t: Mapping[str, float]) -> list[Finding]:
        if not data:
            return [Finding("warn", "none")]
        return [Finding("pass", "default", {"browser": clip(data)}, value=clip(data))]


CHECKS: tuple[Check[Any], ...] = (RequiredSoftware(), StartupPrograms(), RunawayProcesses(), DefaultBrowser())
