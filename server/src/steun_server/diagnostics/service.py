"""Routine-test runs on this node: start them on connected agents, store results as they stream in.

A run goes: reserve the device (one run per device at a time), store the run with the policy it sends, send
``diagnostics/run`` through the agent's connection, store each ``diagnostics/result`` as it arrives (and pass
it to whoever watches the run), and close the run on ``diagnostics/done``, when the agent disconnects, or when
its deadline (the per-test timeout, the run grace and a margin for the network) passes: whichever
comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, cast

import msgspec
from aiohttp import web
from steun_protocol.catalogue import Catalogue, load_catalogue
from steun_protocol.diagnostics import (
    MAX_RESULTS_PER_RUN,
    RUN_GRACE,
    DiagnosticsAccepted,
    DiagnosticsDone,
    DiagnosticsResult,
    DiagnosticsRun,
    Policy,
)
from steun_protocol.diagnostics_console import DeviceStatus, RunEvent, RunInfo, RunStarted, StoredResult
from steun_protocol.errors import ErrorCode, ProtocolError
from steun_protocol.messages import Empty, Payload, Request

from ..config import ServerConfig
from ..fleet import store as fleet_store
from ..fleet.service import FLEET, AgentRequestError, AgentRequestRefused, FleetService
from ..web import AppService
from . import store
from .policy import effective_policy
from .scheduler import Scheduler

log = logging.getLogger(__name__)

DIAGNOSTICS_RUN_REQUESTED = "diagnostics.run_requested"
DIAGNOSTICS_POLICY_CHANGED = "diagnostics.policy_changed"

#: Seconds a run may take beyond the agent's own bound (per-test timeout + grace) before the server closes it.
RUN_MARGIN = 10.0
#: Seconds to wait for the agent's answer to ``diagnostics/run``.
ACCEPT_TIMEOUT = 10.0
#: Runs still ``running`` this long after they started were left by a stopped node: closed as ``abandoned``.
STALE_RUN_AGE = 3600.0
#: How often old results are purged and stale runs closed (seconds).
MAINTENANCE_INTERVAL = 3600.0

RunListener = Callable[[RunEvent], None]
StatusListener = Callable[[DeviceStatus], None]


class DiagnosticsError(Exception):
    """A run could not be started or a command not served; ``code`` is the stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AgentLink(Protocol):
    """An authenticated agent connection as runs use it (``steun_server.fleet.agent_ws.AgentSession``)."""

    @property
    def device_id(self) -> str: ...

    async def request(self, request: Request, *, timeout: float) -> Payload: ...  # noqa: ASYNC109


@dataclasses.dataclass(slots=True, eq=False)
class ActiveRun:
    info: RunInfo
    link: Any
    policy: Policy
    accepted: frozenset[str] | None = None
    results: int = 0
    timer: asyncio.TimerHandle | None = None
    listeners: set[RunListener] = dataclasses.field(default_factory=set)
    finished: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    #: The run as closed (set just before ``finished``).
    final: RunInfo | None = None

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def device_id(self) -> str:
        return self.info.device_id


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DiagnosticsSettings:
    retention_days: float = 90.0
    schedule_tick: float = 30.0
    first_run_spread: float = 300.0
    max_scheduled_runs: int = 20
    run_margin: float = RUN_MARGIN

    @classmethod
    def from_config(cls, config: ServerConfig) -> DiagnosticsSettings:
        return cls(
            retention_days=config.diagnostics_retention_days,
            schedule_tick=config.diagnostics_schedule_tick,
            first_run_spread=config.diagnostics_first_run_spread,
            max_scheduled_runs=config.diagnostics_max_scheduled_runs,
        )


class DiagnosticsService(AppService):
    """Everything the diagnostics handlers share; one per application under ``DIAGNOSTICS``."""

    def __init__(self, app: web.Application, *, settings: DiagnosticsSettings | None = None) -> None:
        super().__init__(app)
        self._settings = settings
        self.active: dict[str, ActiveRun] = {}
        #: device id → the id of the run in progress on it
        self.by_device: dict[str, str] = {}
        self.status_listeners: set[StatusListener] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._counts = {"started": 0, "results": 0, "refused_results": 0}
        self._closed: dict[str, int] = {}
        self._loops: list[asyncio.Task[None]] = []
        self.scheduler = Scheduler(self)

    # -- shared state ---------------------------------------------------------------------------------------

    @property
    def fleet(self) -> FleetService:
        return self._app[FLEET]

    @property
    def settings(self) -> DiagnosticsSettings:
        if self._settings is None:
            self._settings = DiagnosticsSettings.from_config(self.config)
        return self._settings

    @settings.setter
    def settings(self, value: DiagnosticsSettings) -> None:
        self._settings = value

    @property
    def catalogue(self) -> Catalogue:
        return load_catalogue()

    def statistics(self) -> dict[str, Any]:
        return {
            "running": len(self.active),
            "status_listeners": len(self.status_listeners),
            **self._counts,
            "closed": dict(self._closed),
        }

    def track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def busy(self, device_id: str) -> bool:
        return device_id in self.by_device

    def running_on(self, device_id: str) -> RunInfo | None:
        run_id = self.by_device.get(device_id)
        active = self.active.get(run_id) if run_id is not None else None
        return active.info if active is not None else None

    async def emit(self, event: str, *, actor: str | None, data: dict[str, Any]) -> None:
        try:
            await self.audit.emit(event, actor=actor, data=data)
        except Exception:
            log.exception("audit %s failed", event)

    # -- policy ---------------------------------------------------------------------------------------------

    async def policy_for_group(self, group: str) -> Policy:
        record = await store.get_policy(self.db, group)
        return effective_policy(
            record.policy if record is not None else None,
            catalogue=self.catalogue,
            public_url=self.config.effective_public_url,
        )

    # -- runs -----------------------------------------------------------------------------------------------

    async def start_run(
        self,
        device_id: str,
        *,
        trigger: str,
        requested_by: str | None = None,
        groups: Sequence[str] = (),
        checks: Sequence[str] = (),
        listener: RunListener | None = None,
    ) -> RunStarted:
        """Start a run on an online device; results go to ``listener`` (and to the database) as they come."""
        entry = self.fleet.presence.entry(device_id)
        if entry is None:
            raise DiagnosticsError("offline", "the device is not connected")
        if device_id in self.by_device:
            raise DiagnosticsError("busy", "a run is already in progress on this device")
        # presence knows links only as closable; the fleet's AgentSession also sends requests
        link = cast(AgentLink, entry.link)
        run_id = secrets.token_urlsafe(12)
        # reserved before the first await: a second request for the same device is refused, never doubled
        self.by_device[device_id] = run_id
        try:
            device = await fleet_store.get_device(self.db, device_id)
            if device is None or device.revoked:
                raise DiagnosticsError(ErrorCode.NOT_FOUND, f"no device {device_id!r}")
            policy = await self.policy_for_group(device.group)
            info = await store.create_run(
                self.db,
                store.NewRun(
                    id=run_id,
                    device_id=device_id,
                    trigger=trigger,
                    requested_by=requested_by,
                    groups=list(groups),
                    checks=list(checks),
                    policy=policy,
                    started_at=time.time(),
                ),
            )
        except BaseException:
            self.by_device.pop(device_id, None)
            raise
        active = ActiveRun(info=info, link=link, policy=policy)
        if listener is not None:
            active.listeners.add(listener)
        self.active[run_id] = active
        timeout = policy.check_timeout + RUN_GRACE + self.settings.run_margin
        loop = asyncio.get_running_loop()
        active.timer = loop.call_later(timeout, self._close_soon, run_id, "timeout")
        self._counts["started"] += 1
        request = DiagnosticsRun(run_id=run_id, groups=list(groups), checks=list(checks), policy=policy)
        try:
            accepted = await link.request(request, timeout=ACCEPT_TIMEOUT)
        except AgentRequestError as exc:
            await self._close(run_id, "rejected")
            code = "busy" if exc.code == ErrorCode.OVERLOADED else exc.code
            raise DiagnosticsError(code, f"the agent refused the run: {exc.message}") from None
        except (ConnectionError, TimeoutError, ProtocolError) as exc:
            await self._close(run_id, "disconnected")
            raise DiagnosticsError("offline", f"the agent did not take the run: {exc}") from None
        except BaseException:
            await self._close(run_id, "disconnected")
            raise
        if not isinstance(accepted, DiagnosticsAccepted):  # pragma: no cover - Connection checked the type
            await self._close(run_id, "rejected")
            raise DiagnosticsError(ErrorCode.INTERNAL, "unexpected answer to diagnostics/run")
        active.accepted = frozenset(accepted.accepted)
        return RunStarted(run=info, accepted=accepted.accepted, unknown=accepted.unknown, timeout=timeout)

    def watch(self, run_id: str, listener: RunListener) -> Callable[[], None]:
        """Add a listener to a run in progress; returns the function that removes it."""
        active = self.active.get(run_id)
        if active is None:
            return lambda: None
        active.listeners.add(listener)
        return lambda: active.listeners.discard(listener)

    async def wait_run(self, run_id: str) -> RunInfo | None:
        """Wait until a run in progress is closed; returns it as closed (None if it is not in progress)."""
        active = self.active.get(run_id)
        if active is None:
            return None
        await active.finished.wait()
        return active.final

    def _active_for(self, link: Any, run_id: str) -> ActiveRun:
        active = self.active.get(run_id)
        # a run belongs to the connection it was sent on: another agent cannot post into it
        if active is None or active.link is not link:
            self._counts["refused_results"] += 1
            raise AgentRequestRefused(
                ErrorCode.NOT_FOUND, f"no run {run_id!r} in progress on this connection"
            )
        return active

    async def on_result(self, link: Any, request: Request) -> Payload:
        assert isinstance(request, DiagnosticsResult)
        active = self._active_for(link, request.run_id)
        result = request.result
        if active.results >= MAX_RESULTS_PER_RUN:
            self._counts["refused_results"] += 1
            raise AgentRequestRefused(
                ErrorCode.OVERLOADED, f"a run holds at most {MAX_RESULTS_PER_RUN} results"
            )
        if active.accepted is not None and result.check_id not in active.accepted:
            self._counts["refused_results"] += 1
            raise AgentRequestRefused(ErrorCode.INVALID_MESSAGE, f"{result.check_id} is not part of this run")
        active.results += 1
        now = time.time()
        await store.add_result(self.db, run_id=active.id, device_id=active.device_id, result=result, now=now)
        self._counts["results"] += 1
        if not active.finished.is_set():
            self._notify(
                active,
                RunEvent(kind="result", result=StoredResult(run_id=active.id, time=now, result=result)),
            )
        return Empty()

    async def on_done(self, link: Any, request: Request) -> Payload:
        assert isinstance(request, DiagnosticsDone)
        self._active_for(link, request.run_id)
        await self._close(
            request.run_id,
            "cancelled" if request.cancelled else "done",
            timed_out=request.timed_out,
            wall_ms=request.wall_ms,
        )
        return Empty()

    def on_disconnect(self, link: Any) -> None:
        for run_id, active in list(self.active.items()):
            if active.link is link:
                self._close_soon(run_id, "disconnected")

    def _close_soon(self, run_id: str, state: str) -> None:
        if run_id in self.active:
            self.track(
                asyncio.create_task(self._close(run_id, state), name=f"steun-diagnostics-close-{run_id}")
            )

    async def _close(
        self, run_id: str, state: str, *, timed_out: Sequence[str] = (), wall_ms: float | None = None
    ) -> None:
        active = self.active.pop(run_id, None)
        if active is None:
            return  # closed already (done, then the socket closed; or the deadline raced the done)
        if self.by_device.get(active.device_id) == run_id:
            del self.by_device[active.device_id]
        if active.timer is not None:
            active.timer.cancel()
        self._closed[state] = self._closed.get(state, 0) + 1
        info: RunInfo | None = None
        try:
            info = await store.finish_run(
                self.db, run_id, state=state, now=time.time(), timed_out=timed_out, wall_ms=wall_ms
            )
        except Exception:
            log.exception("closing diagnostics run %s failed", run_id)
        final = info or msgspec.structs.replace(active.info, state=state, finished_at=time.time())
        active.final = final
        self._notify(active, RunEvent(kind="done", run=final))
        active.listeners.clear()
        active.finished.set()
        if active.results:
            await self._publish_status(active.device_id)

    def _notify(self, active: ActiveRun, event: RunEvent) -> None:
        for listener in list(active.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("diagnostics run listener failed")

    async def _publish_status(self, device_id: str) -> None:
        if not self.status_listeners:
            return
        try:
            statuses = await store.device_statuses(self.db, [device_id])
        except Exception:
            log.exception("reading the status of %s failed", device_id)
            return
        for status in statuses:
            for listener in list(self.status_listeners):
                try:
                    listener(status)
                except Exception:
                    log.exception("diagnostics status listener failed")

    # -- maintenance ----------------------------------------------------------------------------------------

    async def maintain(self, now: float | None = None) -> int:
        """Purge results past the retention period and close runs a stopped node left open."""
        now = time.time() if now is None else now
        abandoned = await store.abandon_stale_runs(self.db, started_before=now - STALE_RUN_AGE, now=now)
        if abandoned:
            log.info("closed %d diagnostics runs left open by a stopped server", abandoned)
        deleted = await store.purge(self.db, before=now - self.settings.retention_days * 86400.0)
        if deleted:
            log.info("purged %d diagnostics rows older than %g days", deleted, self.settings.retention_days)
        return deleted

    async def _maintenance_loop(self) -> None:
        while True:
            try:
                await self.maintain()
            except Exception:
                log.exception("diagnostics maintenance failed; retrying next period")
            await asyncio.sleep(MAINTENANCE_INTERVAL)

    async def start(self) -> None:
        # read once (files), off the event loop; later calls return the cached catalogue
        await asyncio.to_thread(load_catalogue)
        self._loops = [
            asyncio.create_task(self._maintenance_loop(), name="steun-diagnostics-maintenance"),
            asyncio.create_task(self.scheduler.run(), name="steun-diagnostics-scheduler"),
        ]

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = []
        await self.scheduler.stop()
        # runs being closed (their agents went away at shutdown) finish writing; then the rest is closed
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        for task in list(self._tasks):
            task.cancel()
        for run_id in list(self.active):
            with contextlib.suppress(Exception):
                await self._close(run_id, "disconnected")


DIAGNOSTICS = web.AppKey("steun_diagnostics", DiagnosticsService)


def setup(app: web.Application, *, settings: DiagnosticsSettings | None = None) -> None:
    """Register the diagnostics state, its agent request handlers and its background work."""
    service = DiagnosticsService(app, settings=settings)
    app[DIAGNOSTICS] = service
    fleet = app[FLEET]
    fleet.agent_handlers[DiagnosticsResult] = service.on_result
    fleet.agent_handlers[DiagnosticsDone] = service.on_done
    fleet.disconnect_hooks.append(service.on_disconnect)

    async def diagnostics_ctx(app: web.Application) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app.cleanup_ctx.append(diagnostics_ctx)
