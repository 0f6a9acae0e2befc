"""The console websocket dispatcher on the real server: envelopes, permissions, subscriptions, slow readers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import msgspec
import pytest
from steun_server.auth.roles import Role
from steun_server.web import WS_COMMANDS
from steun_server.wsapi import CommandError, CommandSpec, ConsoleConnection

from tests.support.api import ApiClient, create_user
from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for


class EchoParams(msgspec.Struct, forbid_unknown_fields=True):
    text: str
    times: int = 1


class Probe:
    """Records what the test commands saw (a real handler, registered into the real registry)."""

    def __init__(self) -> None:
        self.unsubscribed: list[int] = []
        self.connections: list[ConsoleConnection] = []


def register_test_commands(server: RunningServer) -> Probe:
    probe = Probe()
    registry = server.app[WS_COMMANDS]

    async def echo(conn: ConsoleConnection, msg_id: int, params: EchoParams) -> dict[str, Any]:
        return {"text": params.text * params.times, "user": conn.user.username}

    async def admin_only(conn: ConsoleConnection, msg_id: int, params: None) -> dict[str, Any]:
        return {}

    async def fail(conn: ConsoleConnection, msg_id: int, params: None) -> None:
        raise CommandError("not_found", "nothing here")

    async def ticker(conn: ConsoleConnection, msg_id: int, params: None) -> dict[str, Any]:
        probe.connections.append(conn)
        conn.subscribe(msg_id, lambda: probe.unsubscribed.append(msg_id))
        for n in range(3):
            conn.send_event(msg_id, {"n": n})
        return {"subscribed": True}

    async def flood(conn: ConsoleConnection, msg_id: int, params: None) -> dict[str, Any]:
        conn.subscribe(msg_id, lambda: probe.unsubscribed.append(msg_id))
        for n in range(10_000):
            conn.send_event(msg_id, {"n": n, "padding": "x" * 1000})
        return {}

    registry.register(
        CommandSpec(type="test/echo", handler=echo, params=EchoParams, permission=Role.TECHNICIAN)
    )
    registry.register(CommandSpec(type="test/admin", handler=admin_only, permission=Role.ADMIN))
    registry.register(CommandSpec(type="test/fail", handler=fail, permission=Role.TECHNICIAN))
    registry.register(CommandSpec(type="test/ticker", handler=ticker, permission=Role.TECHNICIAN))
    registry.register(CommandSpec(type="test/flood", handler=flood, permission=Role.TECHNICIAN))
    return probe


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), timeout=scaled(10))
    assert message.type == aiohttp.WSMsgType.TEXT, message
    data: dict[str, Any] = json.loads(message.data)
    return data


async def request(ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send_str(json.dumps(message))
    return await receive(ws)


async def test_commands_results_and_errors(server: RunningServer) -> None:
    register_test_commands(server)
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, server.admin_password)
        ws = await client.websocket()
        try:
            reply = await request(ws, {"id": 1, "type": "test/echo", "text": "ab", "times": 2})
            assert reply == {
                "id": 1,
                "type": "result",
                "result": {"text": "abab", "user": server.admin_username},
            }
            unknown = await request(ws, {"id": 2, "type": "no/such"})
            assert (unknown["id"], unknown["type"], unknown["error"]["code"]) == (2, "error", "unknown_type")
            extra = await request(ws, {"id": 3, "type": "test/echo", "text": "x", "evil": 1})
            assert extra["error"]["code"] == "invalid_message"
            wrong_type = await request(ws, {"id": 4, "type": "test/echo", "text": 5})
            assert wrong_type["error"]["code"] == "invalid_message"
            stale = await request(ws, {"id": 4, "type": "test/echo", "text": "x"})
            assert stale["error"]["code"] == "invalid_message"  # ids must increase
            failed = await request(ws, {"id": 5, "type": "test/fail"})
            assert failed["error"] == {"code": "not_found", "message": "nothing here"}
            no_id = await request(ws, {"type": "test/echo", "text": "x"})
            assert no_id["id"] is None and no_id["type"] == "error"
            garbage = await request(ws, {"id": 6, "type": "test/echo", "text": "x" * 100_000})
            assert garbage["error"]["code"] == "message_too_large"
            await ws.send_str("[" * 100 + "]" * 100)
            assert (await receive(ws))["error"]["code"] == "too_deep"
            # the connection goes on after every refusal
            ok = await request(ws, {"id": 7, "type": "test/echo", "text": "still here"})
            assert ok["result"]["text"] == "still here"
        finally:
            await ws.close()


async def test_command_permissions(server: RunningServer) -> None:
    register_test_commands(server)
    async with ApiClient(server.url) as admin:
        await admin.login_ok(server.admin_username, server.admin_password)
        password = await create_user(admin, "tech")
        ws = await admin.websocket()
        assert (await request(ws, {"id": 1, "type": "test/admin"}))["type"] == "result"
        await ws.close()
    async with ApiClient(server.url) as tech:
        await tech.login_ok("tech", password)
        ws = await tech.websocket()
        reply = await request(ws, {"id": 1, "type": "test/admin"})
        assert reply["error"]["code"] == "forbidden"
        assert (await request(ws, {"id": 2, "type": "test/echo", "text": "ok"}))["type"] == "result"
        await ws.close()


async def test_subscriptions_and_cleanup(server: RunningServer) -> None:
    probe = register_test_commands(server)
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, server.admin_password)
        ws = await client.websocket()
        await ws.send_str(json.dumps({"id": 1, "type": "test/ticker"}))
        received = [await receive(ws) for _ in range(4)]
        events = [m for m in received if m["type"] == "event"]
        assert [e["event"]["n"] for e in events] == [0, 1, 2]
        assert all(e["id"] == 1 for e in events)
        assert any(m["type"] == "result" and m["id"] == 1 for m in received)
        unsubscribe = await request(ws, {"id": 2, "type": "unsubscribe", "subscription": 1})
        assert unsubscribe == {"id": 2, "type": "result", "result": {}}
        assert probe.unsubscribed == [1]
        again = await request(ws, {"id": 3, "type": "unsubscribe", "subscription": 1})
        assert again["error"]["code"] == "not_found"
        # a subscription still open when the socket closes is cleaned up
        await ws.send_str(json.dumps({"id": 4, "type": "test/ticker"}))
        for _ in range(4):
            await receive(ws)
        await ws.close()
        await wait_for(lambda: 4 in probe.unsubscribed, what="the subscription to end with the socket")


async def test_slow_console_is_disconnected_not_buffered(tmp_path: Any) -> None:
    server = await RunningServer.create(tmp_path / "d", overrides={"ws_send_queue": 16})
    try:
        probe = register_test_commands(server)
        async with ApiClient(server.url) as client:
            await client.login_ok(server.admin_username, server.admin_password)
            ws = await client.websocket()
            await ws.send_str(json.dumps({"id": 1, "type": "test/flood"}))
            # the client reads nothing while the handler queues far more than 16 messages
            await wait_for(lambda: 1 in probe.unsubscribed, what="the flooding subscription to be dropped")
            closed = None
            while closed is None:
                message = await asyncio.wait_for(ws.receive(), timeout=scaled(10))
                if message.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                ):
                    closed = message
            assert ws.close_code == 1013
    finally:
        await server.stop()


async def test_wait_writable_wakes_when_the_queue_drains(server: RunningServer) -> None:
    probe = register_test_commands(server)
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, server.admin_password)
        ws = await client.websocket()
        await ws.send_str(json.dumps({"id": 1, "type": "test/ticker"}))
        for _ in range(4):
            await receive(ws)
        conn = probe.connections[0]
        await asyncio.wait_for(conn.wait_writable(below=1), timeout=scaled(5))
        assert conn.statistics().queued == 0
        await ws.close()


@pytest.mark.parametrize("binary", [b"\x00\x01"])
async def test_binary_messages_refused(server: RunningServer, binary: bytes) -> None:
    async with ApiClient(server.url) as client:
        await client.login_ok(server.admin_username, server.admin_password)
        ws = await client.websocket()
        await ws.send_bytes(binary)
        assert (await receive(ws))["error"]["code"] == "malformed"
        await ws.close()
