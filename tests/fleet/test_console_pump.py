"""The devices subscription pump against a console that does not read: it coalesces, it never piles up."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from steun_protocol.console import DevicesSubscribe
from steun_server.fleet import commands, store
from steun_server.fleet.presence import Change
from steun_server.fleet.service import FLEET, FleetService
from steun_server.storage import Database
from steun_server.web import DB
from steun_server.wsapi import ConnectionStatistics

from tests.support.waiting import wait_for


class SlowConsole:
    """Stands in for wsapi's ConsoleConnection: its send queue is as full as the test says."""

    def __init__(self, app: dict[Any, Any], queue_limit: int = 16) -> None:
        self.app = app
        self.queue_limit = queue_limit
        self.queued = 0
        self.closed = False
        self.events: list[Any] = []
        self.unsubscribers: dict[int, Any] = {}

    def subscribe(self, msg_id: int, unsubscribe: Any) -> None:
        self.unsubscribers[msg_id] = unsubscribe

    def send_event(self, msg_id: int, event: Any) -> None:
        # the test decides how full the queue is (``queued``); a sent event is read at once
        self.events.append(event)

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            queued=self.queued, queue_limit=self.queue_limit, subscriptions=1, received=0, sent=0
        )


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[FleetService]:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}")
    await db.migrate()
    app: dict[Any, Any] = {DB: db}
    fleet = FleetService(app)  # type: ignore[arg-type]
    app[FLEET] = fleet
    try:
        yield fleet
    finally:
        await db.close()


async def _add_devices(service: FleetService, count: int) -> list[str]:
    from steun_server.storage.tables import devices

    ids = [f"dev-{i:04d}" for i in range(count)]
    now = time.time()
    async with service.db.begin() as conn:
        await conn.execute(
            devices.insert(),
            [
                {
                    "id": d,
                    "public_key": f"key-{d}",
                    "group_name": "default",
                    "hostname": d,
                    "os": "Linux",
                    "enrolled_at": now,
                    "revoked": False,
                }
                for d in ids
            ],
        )
    return ids


async def test_a_console_that_does_not_read_gets_coalesced_updates(service: FleetService) -> None:
    ids = await _add_devices(service, 200)
    console = SlowConsole(service._app)  # type: ignore[arg-type]
    initial = await commands.devices_subscribe(console, 1, DevicesSubscribe())  # type: ignore[arg-type]
    assert len(initial.devices) == 200
    console.queued = console.queue_limit  # the console stopped reading
    for device_id in ids:
        service.presence.publish(device_id, Change.ONLINE)
    # the pump takes that batch, then waits for room instead of queueing
    await wait_for(lambda: service.presence.statistics()["pending"] == 0, what="the pump to take a batch")
    for _ in range(50):
        for device_id in ids:
            service.presence.publish(device_id, Change.ONLINE)
    # 10,000 more changes: nothing was queued for the console, the feed holds one mark per device
    assert console.events == []
    assert service.presence.statistics()["pending"] <= 200
    console.queued = 0  # it reads again
    await wait_for(
        lambda: service.presence.statistics()["pending"] == 0 and len(console.events) >= 200,
        what="the coalesced events",
    )
    # at most the batch it held plus one coalesced batch: two events per device, not fifty-one
    assert 200 <= len(console.events) <= 400
    assert {e.device.id for e in console.events} == set(ids)
    console.unsubscribers[1]()
    assert service.presence.statistics()["subscribers"] == 0


async def test_a_subscriber_that_fell_far_behind_gets_every_device_again(service: FleetService) -> None:
    ids = await _add_devices(service, 30)
    service.presence.max_pending = 5
    console = SlowConsole(service._app)  # type: ignore[arg-type]
    await commands.devices_subscribe(console, 1, DevicesSubscribe())  # type: ignore[arg-type]
    console.queued = console.queue_limit
    for device_id in ids:
        service.presence.publish(device_id, Change.INVENTORY)
    service.presence.publish("gone-device", Change.DETAILS)
    console.queued = 0
    await wait_for(lambda: len(console.events) >= 30, what="a full resend")
    assert {e.device.id for e in console.events if e.kind == "upsert"} == set(ids)
    console.unsubscribers[1]()


async def test_removed_devices_are_announced(service: FleetService) -> None:
    (device_id,) = await _add_devices(service, 1)
    console = SlowConsole(service._app)  # type: ignore[arg-type]
    await commands.devices_subscribe(console, 1, DevicesSubscribe())  # type: ignore[arg-type]
    await store.set_revoked(service.db, device_id)
    service.presence.publish(device_id, Change.DETAILS)
    await wait_for(lambda: console.events, what="the remove event")
    assert console.events[0].kind == "remove"
    assert console.events[0].device_id == device_id
    console.unsubscribers[1]()
