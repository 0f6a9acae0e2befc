"""Console websocket commands for the fleet: list, get and subscribe to devices (``steun_server.wsapi``).

A subscription is one task that waits on a bounded, coalescing presence feed and turns each batch of
changes into events. It never queues more than one batch: while a console is slow, changes pile up as
"device X changed" marks (at most one per device), not as messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from steun_protocol.console import (
    DeviceChanged,
    DeviceDetail,
    DeviceGet,
    DeviceList,
    DevicesChanged,
    DevicesList,
    DevicesSubscribe,
    DeviceSubscribe,
)
from steun_protocol.errors import ErrorCode

from ..auth.roles import Role
from ..wsapi import CommandError, CommandSpec, ConsoleConnection
from . import views
from .presence import SUMMARY_CHANGES, Change, Subscription
from .service import FLEET, FleetService

log = logging.getLogger(__name__)

#: A device subscription sends at most one ``detail`` event per this many seconds.
DETAIL_EVENT_INTERVAL = 1.0
#: Changes are held back this long before a batch is read, so a burst (reconnect storm) becomes one query.
BATCH_DELAY = 0.05
#: A pump waits while the console's send queue is fuller than this fraction (changes coalesce meanwhile).
QUEUE_HIGH_WATER = 0.5
QUEUE_POLL = 0.05


async def wait_for_room(conn: ConsoleConnection) -> None:
    """Wait until the console's outgoing queue has room (it is closed as overloaded when full)."""
    while not conn.closed:
        stats = conn.statistics()
        if stats.queued <= stats.queue_limit * QUEUE_HIGH_WATER:
            return
        await asyncio.sleep(QUEUE_POLL)


def _start_pump(
    conn: ConsoleConnection, msg_id: int, feed: Subscription, pump: Callable[[], Awaitable[None]], name: str
) -> None:
    """Run ``pump`` until the console unsubscribes or goes away; then close the feed."""

    async def guarded() -> None:
        try:
            await pump()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s subscription %d failed", name, msg_id)
        finally:
            feed.close()

    task = asyncio.create_task(guarded(), name=f"steun-{name}-{msg_id}")

    def unsubscribe() -> None:
        task.cancel()
        feed.close()

    conn.subscribe(msg_id, unsubscribe)


def _service(conn: ConsoleConnection) -> FleetService:
    return conn.app[FLEET]


# -- devices/list, devices/subscribe -----------------------------------------------------------------------


async def devices_list(conn: ConsoleConnection, msg_id: int, params: DevicesList) -> DeviceList:
    return DeviceList(devices=await views.summaries(_service(conn), query=params.query))


async def devices_subscribe(conn: ConsoleConnection, msg_id: int, params: DevicesSubscribe) -> DeviceList:
    service = _service(conn)
    # subscribe first: a change that lands while the list is read is sent afterwards, never lost
    feed = service.presence.subscribe(kinds=SUMMARY_CHANGES)
    try:
        initial = await views.summaries(service)
    except BaseException:
        feed.close()
        raise

    async def pump() -> None:
        async for batch in feed:
            await asyncio.sleep(BATCH_DELAY)
            more = feed.take()
            changes = dict(batch.changes)
            resync = batch.resync
            if more is not None:
                changes.update(more.changes)
                resync = resync or more.resync
            if resync:
                # fell too far behind to know what changed: send every device again
                records = await views.all_records(service)
            else:
                records = await views.records(service, changes)
            for device_id in records if resync else changes:
                # one event at a time, built just before it is queued: a slow console holds back the
                # feed (which coalesces) instead of filling its send queue
                await wait_for_room(conn)
                device = records.get(device_id)
                if device is None or device.revoked:
                    event = DevicesChanged(kind="remove", device_id=device_id)
                else:
                    event = DevicesChanged(kind="upsert", device=views.summary(service, device))
                conn.send_event(msg_id, event)

    # started last, after every await: the result goes out before the first event
    _start_pump(conn, msg_id, feed, pump, "devices")
    return DeviceList(devices=initial)


# -- device/get, device/subscribe ---------------------------------------------------------------------------


async def device_get(conn: ConsoleConnection, msg_id: int, params: DeviceGet) -> DeviceDetail:
    detail = await views.detail(_service(conn), params.device_id)
    if detail is None:
        raise CommandError(ErrorCode.NOT_FOUND, f"no device {params.device_id!r}")
    return detail


async def device_subscribe(conn: ConsoleConnection, msg_id: int, params: DeviceSubscribe) -> DeviceDetail:
    service = _service(conn)
    device_id = params.device_id
    feed = service.presence.subscribe(device_id=device_id)
    try:
        initial = await views.detail(service, device_id)
    except BaseException:
        feed.close()
        raise
    if initial is None:
        feed.close()
        raise CommandError(ErrorCode.NOT_FOUND, f"no device {device_id!r}")

    async def pump() -> None:
        current = initial
        sent_at = time.monotonic()
        async for batch in feed:
            # rate limit: one event per interval, whatever arrived meanwhile is folded into it
            delay = sent_at + DETAIL_EVENT_INTERVAL - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            more = feed.take()
            kinds = set().union(*batch.changes.values()) if batch.changes else set()
            if more is not None:
                kinds |= set().union(*more.changes.values()) if more.changes else set()
            resync = batch.resync or (more is not None and more.resync)
            if resync or kinds - {Change.METRICS, Change.ONLINE, Change.OFFLINE}:
                fresh = await views.detail(service, device_id)
                if fresh is None:
                    return  # revoked or deleted: nothing more to show
                current = fresh
            else:
                current = views.refresh_live(service, current)
            await wait_for_room(conn)
            conn.send_event(msg_id, DeviceChanged(kind="detail", device=current))
            sent_at = time.monotonic()

    _start_pump(conn, msg_id, feed, pump, "device")
    return initial


COMMANDS = [
    CommandSpec(
        type="devices/list",
        handler=devices_list,
        params=DevicesList,
        permission=Role.TECHNICIAN,
        summary="Devices matching a search (hostname, OS, group; case-insensitive)",
    ),
    CommandSpec(
        type="devices/subscribe",
        handler=devices_subscribe,
        params=DevicesSubscribe,
        permission=Role.TECHNICIAN,
        summary="All devices, then upsert/remove events as they enroll, come online, go offline or change",
    ),
    CommandSpec(
        type="device/get",
        handler=device_get,
        params=DeviceGet,
        permission=Role.TECHNICIAN,
        summary="One device with its inventory and live metrics",
    ),
    CommandSpec(
        type="device/subscribe",
        handler=device_subscribe,
        params=DeviceSubscribe,
        permission=Role.TECHNICIAN,
        summary="One device, then detail events (at most one per second) as it changes",
    ),
]
