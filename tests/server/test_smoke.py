"""A first end-to-end look at the server: it starts, answers health, and the admin can sign in."""

from __future__ import annotations

from tests.support.api import ApiClient
from tests.support.server import RunningServer


async def test_health_and_admin_login(server: RunningServer) -> None:
    async with ApiClient(server.url) as client:
        health = await client.get("/api/health")
        assert health.status == 200
        assert health.body["status"] == "ok"
        user = await client.login_ok(server.admin_username, server.admin_password)
        assert user["role"] == "admin"
        me = await client.get("/api/auth/me")
        assert me.status == 200, me.body
        assert me.body["user"]["username"] == server.admin_username
