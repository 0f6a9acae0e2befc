"""Session fixtures: servers with short code/ticket lifetimes or tight redemption limits, signed-in consoles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from steun_server.sessions.service import SESSIONS, SessionService

from tests.support.api import ApiClient, create_user, signed_in_client
from tests.support.server import RunningServer
from tests.support.waiting import scaled


def sessions(server: RunningServer) -> SessionService:
    return server.app[SESSIONS]


async def audit_records(server: RunningServer, event: str | None = None) -> list[Any]:
    from steun_server.web import AUDIT

    audit: Any = server.app[AUDIT]
    records = await audit.records(limit=1000)
    return [r for r in records if event is None or r.event == event]


@pytest.fixture
async def short_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """Support codes and relay tickets that live about a second."""
    running = await RunningServer.create(
        tmp_path / "data",
        overrides={"support_code_ttl": scaled(1.0), "relay_ticket_ttl": scaled(1.5)},
    )
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def technician_api(server: RunningServer, admin_api: ApiClient) -> AsyncIterator[ApiClient]:
    password = await create_user(admin_api, "tina", "technician")
    client = await signed_in_client(server, "tina", password)
    try:
        yield client
    finally:
        await client.close()


async def user_api(server: RunningServer, admin_api: ApiClient, name: str, role: str) -> ApiClient:
    password = await create_user(admin_api, name, role)
    return await signed_in_client(server, name, password)
