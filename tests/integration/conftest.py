"""Integration fixtures: the real server (fast heartbeats) and a signed-in admin client for reading back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import ApiClient
from tests.support.server import RunningServer

#: Short enough that presence changes show within a test's patience, long enough for a loaded machine.
HEARTBEAT = 0.5


@pytest.fixture
async def fast_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await RunningServer.create(tmp_path / "data", overrides={"agent_heartbeat_interval": HEARTBEAT})
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def api(fast_server: RunningServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(fast_server.url) as client:
        await client.login_ok(fast_server.admin_username, fast_server.admin_password)
        yield client


async def device(api: ApiClient, device_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/devices/{device_id}")
    assert response.status == 200, (response.status, response.body)
    body: dict[str, Any] = response.body
    return body
