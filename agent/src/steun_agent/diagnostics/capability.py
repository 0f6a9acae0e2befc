"""The diagnostics capability: answers ``diagnostics/run`` and streams results back to the server.

Hook for the runtime (``steun_agent.runtime``)::

    diagnostics = DiagnosticsCapability(backend)        # one per agent process
    Runtime(..., capabilities=[inventory, diagnostics])  # name, handlers, start(session), stop()
    ...
    await diagnostics.close()                            # at agent shutdown: sampler and probe threads

``handlers`` maps ``DiagnosticsRun`` to a handler that replies at once with the accepted test ids, then sends
one ``diagnostics/result`` per result (up to ``MAX_IN_FLIGHT`` awaiting the server's reply) and a final
``diagnostics/done`` through the session given to ``start``. The same flow is available without a session
as ``handle_run(request, send)``. The sampler (history for trend tests) runs from ``start`` to ``stop``; its
samples survive reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from steun_protocol import ErrorCode
from steun_protocol.catalogue import Catalogue
from steun_protocol.diagnostics import (
    MAX_CHECKS_PER_RUN,
    CheckResult,
    DiagnosticsAccepted,
    DiagnosticsDone,
    DiagnosticsResult,
    DiagnosticsRun,
    count_statuses,
)
from steun_protocol.messages import Empty, Payload, Request

from ..errors import ServerRefused
from .backend import DiagnosticsBackend
from .pool import ProbePool
from .runner import Runner
from .sampler import Sampler

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Payload)
#: Sends one request to the server and waits for its reply.
Send = Callable[[Request], Awaitable[object]]

#: Runs at the same time (a scheduled run and an on-demand one); more are refused with ``overloaded``.
MAX_RUNS = 2
#: Result messages awaiting the server's reply at once, per run.
MAX_IN_FLIGHT = 16


class SessionLike(Protocol):
    """The part of the runtime's session this capability uses."""

    async def request(
        self,
        request: Request,
        result_type: type[P],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the runtime's session signature
    ) -> P: ...


class DiagnosticsCapability:
    name = "diagnostics"

    def __init__(
        self,
        backend: DiagnosticsBackend | None = None,
        *,
        catalogue: Catalogue | None = None,
        pool: ProbePool | None = None,
        sample_interval: float | None = 30.0,
    ) -> None:
        if backend is None:
            from .backends import default_backend

            backend = default_backend()
        self.backend = backend
        self.pool = pool or ProbePool()
        self.sampler = Sampler(backend, self.pool, interval=sample_interval) if sample_interval else None
        self.runner = Runner(backend, catalogue=catalogue, pool=self.pool, sampler=self.sampler)
        self._session: SessionLike | None = None
        self._runs: dict[str, asyncio.Task[None]] = {}
        self._counts = {"runs": 0, "refused": 0, "results": 0}

    # ---------------------------------------------------------------- capability interface

    @property
    def handlers(self) -> Mapping[type[Request], Callable[[Request], Awaitable[Payload]]]:
        return {DiagnosticsRun: self._on_request}

    async def start(self, session: SessionLike | None = None) -> None:
        """Begin serving a connection (``session`` sends to the server), start sampling; returns at once."""
        self._session = session
        if self.sampler is not None:
            self.sampler.start()

    async def stop(self) -> None:
        """End the connection's work: cancel runs (their results cannot be sent any more), stop sampling."""
        self._session = None
        runs = list(self._runs.values())
        for task in runs:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        if self.sampler is not None:
            await self.sampler.stop()

    async def close(self) -> None:
        """Stop for good: also release the probe threads."""
        await self.stop()
        self.pool.close()

    def statistics(self) -> dict[str, Any]:
        sampler = self.sampler.statistics() if self.sampler is not None else {}
        return {
            **self._counts,
            "running": len(self._runs),
            "pool": self.pool.statistics(),
            "sampler": sampler,
        }

    # ---------------------------------------------------------------- runs

    async def handle_run(self, request: DiagnosticsRun, send: Send) -> DiagnosticsAccepted:
        """Accept a run, start it in the background and return what will run; results go through ``send``."""
        if request.run_id in self._runs:
            self._counts["refused"] += 1
            raise ServerRefused(
                ErrorCode.INVALID_MESSAGE, f"run {request.run_id} is already running", what="diagnostics/run"
            )
        if len(self._runs) >= MAX_RUNS:
            self._counts["refused"] += 1
            raise ServerRefused(
                ErrorCode.OVERLOADED,
                f"{len(self._runs)} diagnostics runs are in progress",
                what="diagnostics/run",
            )
        accepted, unknown = self.runner.select(request.groups, request.checks)
        task = asyncio.create_task(
            self._run(request, accepted, send), name=f"steun-diagnostics-run-{request.run_id}"
        )
        self._runs[request.run_id] = task
        task.add_done_callback(lambda _: self._runs.pop(request.run_id, None))
        self._counts["runs"] += 1
        return DiagnosticsAccepted(accepted=accepted, unknown=[u[:256] for u in unknown][:MAX_CHECKS_PER_RUN])

    async def wait_runs(self) -> None:
        """Wait until no run is in progress (tests, orderly shutdown)."""
        while self._runs:
            await asyncio.gather(*list(self._runs.values()), return_exceptions=True)

    async def _on_request(self, request: Request) -> Payload:
        if not isinstance(request, DiagnosticsRun):
            raise ServerRefused(ErrorCode.UNKNOWN_TYPE, f"diagnostics does not handle {request.type_name()}")
        session = self._session
        if session is None:
            raise ServerRefused(ErrorCode.OVERLOADED, "diagnostics is not started", what="diagnostics/run")

        async def send(message: Request) -> object:
            return await session.request(message, Empty)

        return await self.handle_run(request, send)

    async def _run(self, request: DiagnosticsRun, accepted: list[str], send: Send) -> None:
        started = time.perf_counter()
        results: list[CheckResult] = []
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        sends: set[asyncio.Task[None]] = set()
        failure: list[BaseException] = []
        cancelled = False

        async def deliver(result: CheckResult) -> None:
            try:
                await send(DiagnosticsResult(run_id=request.run_id, result=result))
            except Exception as exc:  # the connection is gone or the server refused: stop the run
                failure.append(exc)
            finally:
                slots.release()

        try:
            async with contextlib.aclosing(self.runner.run(accepted, request.policy)) as stream:  # type: ignore[type-var]
                async for result in stream:
                    results.append(result)
                    self._counts["results"] += 1
                    if failure:
                        break
                    await slots.acquire()
                    task = asyncio.create_task(deliver(result))
                    sends.add(task)
                    task.add_done_callback(sends.discard)
        except asyncio.CancelledError:
            cancelled = True
        finally:
            if sends:
                await asyncio.gather(*sends, return_exceptions=True)
        if failure:
            log.warning("diagnostics run %s: results could not be sent: %s", request.run_id, failure[0])
            return
        if cancelled:
            # Stopping: the connection is closing. Say so if it still can be said, but never hang on it.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await send(self._done(request.run_id, results, started, cancelled=True))
            raise asyncio.CancelledError
        try:
            await send(self._done(request.run_id, results, started, cancelled=False))
        except Exception as exc:
            log.warning("diagnostics run %s: done could not be sent: %s", request.run_id, exc)

    def _done(
        self, run_id: str, results: list[CheckResult], started: float, *, cancelled: bool
    ) -> DiagnosticsDone:
        return DiagnosticsDone(
            run_id=run_id,
            counts=dict(count_statuses(r.status for r in results)),
            checks=len({r.check_id for r in results}),
            results=len(results),
            wall_ms=round((time.perf_counter() - started) * 1000, 1),
            timed_out=sorted({r.check_id for r in results if r.summary_key == "common.timeout"})[
                :MAX_CHECKS_PER_RUN
            ],
            cancelled=cancelled,
        )
