"""Runs selected routine tests concurrently, each with its own timeout, and yields results as they finish.

The whole run is bounded: every test gets ``policy.check_timeout`` seconds (probes included, waiting for a
pool slot included); the run ends ``RUN_GRACE`` later at the latest, and any test still going then is
reported as an ``error`` (timeout). A slow or hanging test never delays the others: they all start at once,
blocking probes run in the bounded ``ProbePool``, and results are yielded in the order tests finish.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from steun_protocol.catalogue import Catalogue, CheckSpec, load_catalogue
from steun_protocol.diagnostics import (
    GROUPS,
    MAX_CHECKS_PER_RUN,
    MAX_DETAIL,
    MAX_MEASURED,
    MAX_PARAMS,
    MAX_THRESHOLDS,
    RUN_GRACE,
    CheckResult,
    Policy,
    Scalar,
)

from .backend import DiagnosticsBackend
from .checks import ALL_CHECKS
from .errors import PermissionDenied, PoolExhausted, ProbeFailed, Unavailable
from .model import Check, Context, Finding, clip
from .pool import ProbePool
from .sampler import Sampler

log = logging.getLogger(__name__)

#: Results one test may report (one per item); the worst are kept when there are more.
MAX_ITEMS_PER_CHECK = 64

# Loaded (and checked) once at import, never later on a running event loop.
CATALOGUE = load_catalogue()


class Runner:
    def __init__(
        self,
        backend: DiagnosticsBackend,
        *,
        catalogue: Catalogue | None = None,
        pool: ProbePool | None = None,
        sampler: Sampler | None = None,
        checks: Iterable[Check[Any]] = ALL_CHECKS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.catalogue = catalogue or CATALOGUE
        self.pool = pool or ProbePool()
        self.sampler = sampler
        self.checks = {c.id: c for c in checks}
        self.clock = clock
        #: Tests of the last run that hit their timeout.
        self.timed_out: list[str] = []

    # ---------------------------------------------------------------- selection

    def select(self, groups: Iterable[str] = (), checks: Iterable[str] = ()) -> tuple[list[str], list[str]]:
        """The tests to run, in catalogue order, and the requested names this agent does not know.

        No groups and no checks selects every test. A check may be named by id or by id prefix (``disk``).
        """
        groups, checks = list(groups), list(checks)
        known = [spec.id for spec in self.catalogue.checks if spec.id in self.checks]
        if not groups and not checks:
            return known[:MAX_CHECKS_PER_RUN], []
        chosen: set[str] = set()
        unknown: list[str] = []
        for group in groups:
            members = [spec.id for spec in self.catalogue.in_group(group) if spec.id in self.checks]
            if group not in GROUPS:
                unknown.append(group)
            chosen.update(members)
        for name in checks:
            matches = [i for i in known if i == name or i.startswith(name + ".")]
            if matches:
                chosen.update(matches)
            else:
                unknown.append(name)
        return [i for i in known if i in chosen][:MAX_CHECKS_PER_RUN], unknown

    # ---------------------------------------------------------------- running

    async def run(self, check_ids: Iterable[str], policy: Policy | None = None) -> AsyncIterator[CheckResult]:
        """Run the tests; yield each result as soon as its test finishes."""
        policy = policy or Policy()
        timeout = policy.check_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout + RUN_GRACE
        self.timed_out = []
        tasks: dict[asyncio.Task[list[CheckResult]], str] = {}
        for check_id in check_ids:
            check = self.checks.get(check_id)
            if check is not None:
                task = asyncio.create_task(
                    self._one(check, policy, timeout), name=f"steun-diagnostics-{check_id}"
                )
                tasks[task] = check_id
        pending = set(tasks)
        started = time.perf_counter()
        try:
            while pending:
                done, pending = await asyncio.wait(
                    pending, timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    break
                for task in sorted(done, key=lambda t: list(tasks).index(t)):
                    for result in task.result():
                        yield result
            for task in sorted(pending, key=lambda t: list(tasks).index(t)):
                task.cancel()
                check_id = tasks[task]
                self.timed_out.append(check_id)
                spec = self.catalogue.check(check_id)
                finding = Finding("error", "common.timeout", {"seconds": timeout})
                yield self._result(spec, finding, {}, (time.perf_counter() - started) * 1000)
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def run_all(self, check_ids: Iterable[str], policy: Policy | None = None) -> list[CheckResult]:
        return [result async for result in self.run(check_ids, policy)]

    async def _one(self, check: Check[Any], policy: Policy, limit: float) -> list[CheckResult]:
        started = time.perf_counter()
        spec = self.catalogue.check(check.id)
        thresholds = self.catalogue.thresholds(check.id, policy)
        findings = await self._findings(check, spec, policy, thresholds, limit)
        duration = (time.perf_counter() - started) * 1000
        if not findings:
            findings = [Finding("error", "common.failed", {"error": "the test produced no result"})]
        if len(findings) > MAX_ITEMS_PER_CHECK:
            order = {"fail": 0, "warn": 1, "error": 2, "pass": 3, "not_applicable": 4}
            findings = sorted(findings, key=lambda f: order[f.status])[:MAX_ITEMS_PER_CHECK]
        return [self._result(spec, f, thresholds, duration) for f in findings]

    async def _findings(
        self, check: Check[Any], spec: CheckSpec, policy: Policy, thresholds: dict[str, float], limit: float
    ) -> list[Finding]:
        if check.id in policy.disabled:
            return [Finding("not_applicable", "common.disabled")]
        if self.backend.name not in spec.platforms:
            return [Finding("not_applicable", "common.platform", {"platform": self.backend.name})]
        ctx = Context(
            self.backend, self.pool, policy, self.catalogue, self.sampler, thresholds, limit, self.clock
        )
        cm = asyncio.timeout(limit)
        try:
            async with cm:
                data = await check.probe(ctx)
            return check.evaluate(data, thresholds)
        except TimeoutError as exc:
            if cm.expired():
                self.timed_out.append(check.id)
                return [Finding("error", "common.timeout", {"seconds": limit})]
            return [Finding("error", "common.failed", {"error": clip(str(exc) or "timeout")})]
        except Unavailable as exc:
            return [Finding("not_applicable", exc.summary, exc.params, detail=exc.detail)]
        except PermissionDenied as exc:
            return [Finding("error", "common.permission", {"what": clip(exc.what)}, detail=exc.detail)]
        except PoolExhausted as exc:
            return [Finding("error", "common.pool_busy", detail=str(exc))]
        except ProbeFailed as exc:
            return [Finding("error", "common.failed", {"error": clip(str(exc))})]
        except Exception as exc:
            log.exception("diagnostics test %s failed", check.id)
            return [Finding("error", "common.failed", {"error": clip(f"{type(exc).__name__}: {exc}")})]

    def _result(
        self, spec: CheckSpec, f: Finding, thresholds: Mapping[str, float], duration_ms: float
    ) -> CheckResult:
        summary = f.summary if f.summary.startswith("common.") else f"{spec.id}.{f.summary}"
        return CheckResult(
            check_id=spec.id,
            status=f.status,
            summary_key=summary,
            summary_params=_bounded(f.params, MAX_PARAMS),
            subject=clip(f.subject) if f.subject is not None else None,
            value=_scalar(f.value),
            unit=spec.unit,
            measured=_bounded(f.measured, MAX_MEASURED),
            thresholds={k: float(v) for k, v in list(thresholds.items())[:MAX_THRESHOLDS]},
            detail=clip(f.detail, MAX_DETAIL),
            kb_key=spec.kb_key if f.status in ("warn", "fail") else None,
            duration_ms=round(min(duration_ms, 3_600_000.0), 2),
        )


def _scalar(value: Scalar) -> Scalar:
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return float(value)
    return value


def _bounded(values: Mapping[str, Scalar], limit: int) -> dict[str, Scalar]:
    return {k[:40]: _scalar(v) for k, v in list(values.items())[:limit]}
