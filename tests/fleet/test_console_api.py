"""The fleet as consoles see it: /api/ws commands and subscriptions, REST routes and their permissions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support.agent_client import enroll_new, online_agent, sample_inventory, sample_metrics
from tests.support.api import ApiClient, create_user, signed_in_client
from tests.support.server import RunningServer
from tests.support.waiting import scaled

from .conftest import fleet


class Console:
    """A console websocket speaking the {id, type} envelope; events are collected per subscription."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 1
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self.counts: dict[int, int] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if data["type"] == "event":
                self.events.setdefault(data["id"], asyncio.Queue()).put_nowait(data["event"])
                self.counts[data["id"]] = self.counts.get(data["id"], 0) + 1
            else:
                future = self.replies.pop(data["id"], None)
                if future is not None:
                    future.set_result(data)

    async def call(self, type: str, **fields: Any) -> dict[str, Any]:
        msg_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[msg_id] = future
        self.events.setdefault(msg_id, asyncio.Queue())
        await self.ws.send_str(json.dumps({"id": msg_id, "type": type, **fields}))
        async with asyncio.timeout(scaled(10)):
            reply = await future
        reply["_id"] = msg_id
        return reply

    async def result(self, type: str, **fields: Any) -> tuple[int, dict[str, Any]]:
        reply = await self.call(type, **fields)
        assert reply["type"] == "result", reply
        return reply["_id"], reply["result"]

    async def next_event(self, subscription: int, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(scaled(timeout)):
            return await self.events[subscription].get()

    async def wait_event(self, subscription: int, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(scaled(timeout)):
            while True:
                event = await self.events[subscription].get()
                if predicate(event):
                    return event

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


@pytest.fixture
async def console(admin_api: ApiClient) -> AsyncIterator[Console]:
    ws = await admin_api.websocket()
    client = Console(ws)
    try:
        yield client
    finally:
        await client.close()


def _upsert_for(device_id: str, online: bool) -> Any:
    def match(event: dict[str, Any]) -> bool:
        device = event.get("device") or {}
        return event["kind"] == "upsert" and device.get("id") == device_id and device.get("online") is online

    return match


async def test_devices_subscribe_follows_enroll_connect_and_disconnect(
    server: RunningServer, console: Console
) -> None:
    sub, result = await console.result("devices/subscribe")
    assert result == {"devices": []}
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="desk-1")
    device_id = identity.device_id or ""
    # changes coalesce: enrolled, online and offline (the enroll connection ends) may arrive as one upsert
    enrolled = await console.wait_event(sub, _upsert_for(device_id, False))
    assert enrolled["device"]["hostname"] == "desk-1"
    assert enrolled["device"]["group"] == "default"
    agent = await online_agent(server.url, identity)
    try:
        online = await console.wait_event(sub, _upsert_for(device_id, True))
        assert online["device"]["last_seen"] is not None
    finally:
        await agent.close()
    await console.wait_event(sub, _upsert_for(device_id, False))
    # the initial list of a new subscription shows it too
    _, again = await console.result("devices/subscribe")
    assert [d["id"] for d in again["devices"]] == [device_id]
    # unsubscribe ends the events
    reply = await console.call("unsubscribe", subscription=sub)
    assert reply["type"] == "result"
    assert fleet(server).presence.statistics()["subscribers"] == 1


async def test_device_subscribe_sends_detail_on_inventory_and_metrics(
    server: RunningServer, console: Console
) -> None:
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    device_id = identity.device_id or ""
    sub, initial = await console.result("device/subscribe", device_id=device_id)
    assert initial["id"] == device_id
    assert initial["inventory"] is None
    agent = await online_agent(server.url, identity)
    try:
        await agent.send_inventory(sample_inventory(hostname="renamed"))
        event = await console.wait_event(
            sub, lambda e: (e["device"]["inventory"] or {}).get("hostname") == "renamed"
        )
        assert event["kind"] == "detail"
        assert event["device"]["hostname"] == "renamed"
        assert event["device"]["inventory_updated_at"] is not None
        for cpu in (10.0, 20.0, 30.0, 40.0):
            await agent.heartbeat(sample_metrics(cpu=cpu))
        event = await console.wait_event(
            sub, lambda e: (e["device"]["metrics"] or {}).get("cpu_percent") == 40.0
        )
        assert event["device"]["online"] is True
    finally:
        await agent.close()


async def test_device_subscribe_is_rate_limited(server: RunningServer, console: Console) -> None:
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    device_id = identity.device_id or ""
    agent = await online_agent(server.url, identity)
    try:
        sub, _ = await console.result("device/subscribe", device_id=device_id)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(40):
            await agent.heartbeat(sample_metrics(cpu=float(i)))
        await console.wait_event(sub, lambda e: e["device"]["metrics"]["cpu_percent"] == 39.0)
        elapsed = loop.time() - started
        # forty heartbeats, but at most one event per second (the first may go out at once)
        assert console.counts[sub] <= 2 + int(elapsed), (console.counts[sub], elapsed)
    finally:
        await agent.close()


async def test_devices_list_and_get(server: RunningServer, console: Console) -> None:
    a = await enroll_new(
        server.url, await server.create_enrollment_token(), hostname="Alpha-PC", os="Windows 11"
    )
    b = await enroll_new(server.url, await server.create_enrollment_token(), hostname="beta", os="Debian 12")
    _, everything = await console.result("devices/list")
    assert [d["hostname"] for d in everything["devices"]] == ["Alpha-PC", "beta"]
    _, found = await console.result("devices/list", query="alpha")
    assert [d["id"] for d in found["devices"]] == [a.device_id]
    _, found = await console.result("devices/list", query="DEBIAN")
    assert [d["id"] for d in found["devices"]] == [b.device_id]
    _, found = await console.result("devices/list", query="default win")
    assert [d["id"] for d in found["devices"]] == [a.device_id]
    _, found = await console.result("devices/list", query="100%_")
    assert found["devices"] == []
    # an id is found as it is written (base64url: case matters), as `steun ssh <id>` looks it up
    _, found = await console.result("devices/list", query=b.device_id)
    assert [d["id"] for d in found["devices"]] == [b.device_id]
    _, detail = await console.result("device/get", device_id=b.device_id)
    assert detail["hostname"] == "beta"
    assert detail["online"] is False
    missing = await console.call("device/get", device_id="nope")
    assert missing["error"]["code"] == "not_found"
    bad = await console.call("device/get", device_id="../etc")
    assert bad["error"]["code"] == "invalid_message"


async def test_console_commands_need_a_session(server: RunningServer) -> None:
    async with ApiClient(server.url) as anonymous:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await anonymous.websocket()
        assert caught.value.status == 401


# -- REST ---------------------------------------------------------------------------------------------------


async def test_rest_devices_list_search_and_detail(server: RunningServer, admin_api: ApiClient) -> None:
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="kiosk-7")
    await enroll_new(server.url, await server.create_enrollment_token(), hostname="laptop-3")
    agent = await online_agent(server.url, identity)
    try:
        await agent.send_inventory(sample_inventory(hostname="kiosk-7"))
        listed = await admin_api.get("/api/devices")
        assert listed.status == 200
        assert [d["hostname"] for d in listed.body["devices"]] == ["kiosk-7", "laptop-3"]
        searched = await admin_api.get("/api/devices", params={"q": "KIOSK"})
        assert [d["id"] for d in searched.body["devices"]] == [identity.device_id]
        assert searched.body["devices"][0]["online"] is True
        limited = await admin_api.get("/api/devices", params={"limit": "1"})
        assert len(limited.body["devices"]) == 1
        detail = await admin_api.get(f"/api/devices/{identity.device_id}")
        assert detail.status == 200
        assert detail.body["inventory"]["cpu_model"] == "Test CPU"
        assert detail.body["online"] is True
    finally:
        await agent.close()
    assert (await admin_api.get("/api/devices/unknown-device")).status == 404
    assert (await admin_api.get("/api/devices/bad%20id")).status == 404
    bad = await admin_api.get("/api/devices", params={"limit": "0"})
    assert bad.status == 400
    bad = await admin_api.get("/api/devices", params={"color": "red"})
    assert bad.status == 400


async def test_rest_permissions(server: RunningServer, admin_api: ApiClient) -> None:
    password = await create_user(admin_api, "tech1", "technician")
    tech = await signed_in_client(server, "tech1", password)
    try:
        assert (await tech.get("/api/devices")).status == 200
        assert (await tech.get("/api/groups")).status == 200
        denied = await tech.post("/api/groups", {"name": "lab"})
        assert (denied.status, denied.error_code) == (403, "forbidden")
        denied = await tech.post("/api/enrollment-tokens", {"group": "default"})
        assert denied.status == 403
    finally:
        await tech.close()
    async with ApiClient(server.url) as anonymous:
        assert (await anonymous.get("/api/devices")).status == 401
        assert (await anonymous.get("/api/devices/x")).status == 401
        assert (await anonymous.get("/api/groups")).status == 401


async def test_rest_groups_and_enrollment_tokens(server: RunningServer, admin_api: ApiClient) -> None:
    created = await admin_api.post("/api/groups", {"name": "Lab", "description": "test machines"})
    assert created.status == 201, created.body
    assert created.body["name"] == "Lab"
    duplicate = await admin_api.post("/api/groups", {"name": "lab"})
    assert (duplicate.status, duplicate.error_code) == (409, "conflict")
    assert (await admin_api.post("/api/groups", {"name": "<script>"})).status == 400
    groups = await admin_api.get("/api/groups")
    assert {g["name"] for g in groups.body["groups"]} == {"default", "Lab"}

    made = await admin_api.post("/api/enrollment-tokens", {"group": "lab", "ttl_seconds": 600})
    assert made.status == 201, made.body
    token = made.body["token"]
    assert token.startswith("st1.")
    assert made.body["command"] == f"steun-agent enroll --server {server.url} --token {token}"
    assert made.body["expires_at"] > 0
    identity = await enroll_new(server.url, token)
    detail = await admin_api.get(f"/api/devices/{identity.device_id}")
    assert detail.body["group"] == "Lab"
    groups = await admin_api.get("/api/groups")
    assert {g["name"]: g["device_count"] for g in groups.body["groups"]} == {"default": 0, "Lab": 1}

    default = await admin_api.post("/api/enrollment-tokens", {})
    assert default.status == 201
    missing = await admin_api.post("/api/enrollment-tokens", {"group": "nope"})
    assert (missing.status, missing.error_code) == (404, "not_found")
    for ttl in (59, 7 * 86400 + 1):
        assert (await admin_api.post("/api/enrollment-tokens", {"ttl_seconds": ttl})).status == 400
    audit = await admin_api.get("/api/audit", params={"limit": "1000"})
    events = [r["event"] for r in audit.body["records"]]
    assert events.count("enrollment.token_created") == 2
    assert "group.created" in events


async def test_openapi_lists_the_fleet_routes(server: RunningServer) -> None:
    async with ApiClient(server.url) as anonymous:
        document = (await anonymous.get("/api/openapi.json")).body
    paths = document["paths"]
    for path in ("/api/devices", "/api/devices/{device_id}", "/api/groups", "/api/enrollment-tokens"):
        assert path in paths, sorted(paths)
    assert "post" in paths["/api/groups"] and "get" in paths["/api/groups"]
