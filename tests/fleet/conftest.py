"""Fleet test helpers: a server with short agent timers, and small readers of the fleet's tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from steun_server.fleet.service import FLEET, FleetService
from steun_server.storage.tables import devices, enrollment_tokens, inventories
from steun_server.web import AUDIT, DB

from tests.support.server import RunningServer
from tests.support.waiting import scaled

#: Agent timers for tests that watch timeouts happen (seconds, scaled on slow machines).
FAST_AGENT_TIMERS: dict[str, Any] = {
    "agent_heartbeat_interval": scaled(0.4),
    "agent_auth_timeout": scaled(0.6),
}


@pytest.fixture
async def fast_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A SQLite server whose agents must authenticate within 0.6 s and heartbeat every 0.4 s."""
    running = await RunningServer.create(tmp_path / "data", overrides=FAST_AGENT_TIMERS)
    try:
        yield running
    finally:
        await running.stop()


def fleet(server: RunningServer) -> FleetService:
    return server.app[FLEET]


async def device_rows(server: RunningServer) -> list[Any]:
    async with server.app[DB].connect() as conn:
        return list((await conn.execute(sa.select(devices).order_by(devices.c.enrolled_at))).all())


async def inventory_row(server: RunningServer, device_id: str) -> Any:
    async with server.app[DB].connect() as conn:
        stmt = sa.select(inventories).where(inventories.c.device_id == device_id)
        return (await conn.execute(stmt)).first()


async def token_rows(server: RunningServer) -> list[Any]:
    async with server.app[DB].connect() as conn:
        return list((await conn.execute(sa.select(enrollment_tokens))).all())


async def audit_events(server: RunningServer) -> list[str]:
    audit: Any = server.app[AUDIT]
    return [r.event for r in await audit.records(limit=1000)]
