"""The fleet's shared state in one object: settings, presence, the ``last_seen`` writer, throttled audit."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from steun_protocol.messages import Payload, Request

from ..config import ServerConfig
from ..storage import Database
from ..web import AppService
from . import store
from .hooks import QuickDevices, SupportDesk
from .presence import AgentLink, Presence

log = logging.getLogger(__name__)

#: Close code sent to agents when the server shuts down (1001: going away; they reconnect).
CLOSE_GOING_AWAY = 1001

#: Serves one agent → server request of another feature (diagnostics results...): gets the agent's link
#: (``steun_server.fleet.agent_ws.AgentSession``) and the request; returns the result or raises
#: :class:`AgentRequestRefused`.
AgentRequestHandler = Callable[[Any, Request], Awaitable[Payload]]


class AgentRequestRefused(Exception):
    """Raised by an :data:`AgentRequestHandler` to answer the agent with an error (a stable code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AgentRequestError(Exception):
    """The agent answered a server → agent request with an error (``code`` is the stable wire code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FleetSettings:
    #: Seconds between agent heartbeats (sent to agents in ``AuthResult``).
    heartbeat_interval: float = 30.0
    #: An agent silent for this many heartbeat intervals is offline and its socket is closed.
    missed_heartbeats: float = 3.0
    #: Seconds a new connection has to complete ``auth`` or ``enroll``.
    auth_timeout: float = 10.0
    #: Coalescing period of ``last_seen`` writes: each device is written at most once per period.
    last_seen_period: float = 60.0
    #: At most one ``agent.auth_failed`` audit record per device (or address) per this many seconds.
    auth_failure_audit_period: float = 60.0
    #: Websocket ping interval on agent sockets (detects dead TCP peers between heartbeats).
    ping_interval: float = 30.0

    @property
    def offline_after(self) -> float:
        return self.heartbeat_interval * self.missed_heartbeats

    @classmethod
    def from_config(cls, config: ServerConfig) -> FleetSettings:
        heartbeat = config.agent_heartbeat_interval
        return cls(
            heartbeat_interval=heartbeat,
            auth_timeout=config.agent_auth_timeout,
            ping_interval=min(30.0, max(heartbeat, 5.0)),
        )


class LastSeenWriter:
    """Collects ``last_seen`` times in memory and writes them in one batch per period.

    An idle fleet of N agents heartbeating every 30 s would otherwise cost N/30 writes a second; batched,
    it costs one transaction per period (per 500 devices), and each device is written at most once per period.
    See ``docs/design/0010-presence-and-heartbeats.md``.
    """

    def __init__(self, db: Database, period: float) -> None:
        self.db = db
        self.period = period
        self._dirty: dict[str, float] = {}
        self.flushes = 0
        self.rows_written = 0

    def touch(self, device_id: str, when: float) -> None:
        previous = self._dirty.get(device_id)
        if previous is None or when > previous:
            self._dirty[device_id] = when

    def pending(self) -> int:
        return len(self._dirty)

    async def flush(self) -> int:
        dirty, self._dirty = self._dirty, {}
        if not dirty:
            return 0
        try:
            await store.write_last_seen(self.db, sorted(dirty.items()))
        except Exception:
            # keep the times for the next round rather than lose them (newer touches win)
            for device_id, when in dirty.items():
                self.touch(device_id, when)
            raise
        self.flushes += 1
        self.rows_written += len(dirty)
        return len(dirty)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.flush()
            except Exception:
                log.exception("writing last_seen failed; retrying next period")


class AuditThrottle:
    """Lets one event per key through per period; counts what it held back (bounded memory)."""

    def __init__(self, period: float, max_keys: int = 4096) -> None:
        self.period = period
        self.max_keys = max_keys
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def admit(self, key: str, now: float | None = None) -> int | None:
        """None: suppress it. Otherwise: how many were held back for ``key`` since the last one passed."""
        now = time.monotonic() if now is None else now
        entry = self._last.get(key)
        if entry is not None and now - entry[0] < self.period:
            self._last[key] = (entry[0], entry[1] + 1)
            return None
        suppressed = entry[1] if entry is not None else 0
        self._last[key] = (now, 0)
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return suppressed


class FleetService(AppService):
    """Everything the fleet's handlers share; one per application under ``FLEET``.

    Made by :func:`setup` while ``create_app`` builds the application; core's state (config, database,
    keys, audit) is read from the application when first used, so the order of set-up does not matter.
    """

    def __init__(self, app: web.Application, *, settings: FleetSettings | None = None) -> None:
        super().__init__(app)
        self._settings = settings
        self.presence = Presence()
        self._last_seen: LastSeenWriter | None = None
        self._auth_failures: AuditThrottle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Every agent socket of this node, authenticated or not (closed at shutdown).
        self.connections: set[AgentLink] = set()
        #: Quick-support devices connected to this node (ephemeral: never in the database).
        self.quick = QuickDevices()
        #: Redeems ``support/redeem`` codes; None: quick support is not offered (see ``hooks.py``).
        self.support_desk: SupportDesk | None = None
        #: Agent → server requests served by other features (``setup`` of diagnostics adds its own).
        self.agent_handlers: dict[type[Request], AgentRequestHandler] = {}
        #: Called with each authenticated agent link when its connection ends (must not block or raise).
        self.disconnect_hooks: list[Callable[[AgentLink], None]] = []

    @property
    def settings(self) -> FleetSettings:
        if self._settings is None:
            self._settings = FleetSettings.from_config(self.config)
        return self._settings

    @property
    def last_seen(self) -> LastSeenWriter:
        if self._last_seen is None:
            self._last_seen = LastSeenWriter(self.db, self.settings.last_seen_period)
        return self._last_seen

    @property
    def auth_failures(self) -> AuditThrottle:
        if self._auth_failures is None:
            self._auth_failures = AuditThrottle(self.settings.auth_failure_audit_period)
        return self._auth_failures

    async def emit(
        self, event: str, *, actor: str | None = None, source: str | None = None, data: Mapping[str, Any]
    ) -> None:
        """Audit an event; a failing audit log is logged, never fatal for the agent connection."""
        try:
            await self.audit.emit(event, actor=actor, source=source, data=data)
        except Exception:
            log.exception("audit %s failed", event)

    def statistics(self) -> dict[str, Any]:
        return {
            "presence": self.presence.statistics(),
            "last_seen_pending": self.last_seen.pending(),
            "last_seen_flushes": self.last_seen.flushes,
            "last_seen_rows_written": self.last_seen.rows_written,
            "quick_support_devices": len(self.quick),
        }

    async def start(self) -> None:
        self.track(asyncio.create_task(self.last_seen.run(), name="steun-fleet-last-seen"))

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep a reference to a background task until it ends (and cancel it at shutdown)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close_agents(self) -> None:
        """Close every agent socket (they reconnect); run at shutdown, before aiohttp waits for handlers."""
        links = list(self.connections)
        if links:
            await asyncio.gather(
                *(link.close(CLOSE_GOING_AWAY, "server shutting down") for link in links),
                return_exceptions=True,
            )
        await self.presence.close_all(CLOSE_GOING_AWAY, "server shutting down")

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.close_agents()
        try:
            await self.last_seen.flush()
        except Exception:
            log.exception("final last_seen flush failed")


FLEET = web.AppKey("steun_fleet", FleetService)


def setup(app: web.Application, *, settings: FleetSettings | None = None) -> None:
    """Register the fleet's state and its background work (started with the app, stopped with it)."""
    service = FleetService(app, settings=settings)
    app[FLEET] = service

    async def fleet_ctx(app: web.Application) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    async def on_shutdown(app: web.Application) -> None:
        await service.close_agents()

    app.cleanup_ctx.append(fleet_ctx)
    app.on_shutdown.append(on_shutdown)
