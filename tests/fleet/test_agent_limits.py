"""Hostile and silent agents: every limit on /agent/ws closes the connection with its documented code."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from steun_protocol.frames import Frame, FrameType, encode_frame
from steun_protocol.limits import MAX_TEXT_MESSAGE

from tests.support.agent_client import (
    AgentError,
    agent,
    connect_agent,
    connect_raw,
    enroll_new,
    online_agent,
)
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

from .conftest import fleet


async def _authenticated(server: RunningServer):  # type: ignore[no-untyped-def]
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    return identity, await online_agent(server.url, identity)


async def test_browser_origin_is_refused(server: RunningServer) -> None:
    with pytest.raises(websockets.InvalidStatus) as caught:
        await connect_agent(server.url, origin=server.url)
    assert caught.value.response.status_code == 403
    with pytest.raises(websockets.InvalidStatus):
        await connect_agent(server.url, origin="https://evil.example")


async def test_oversized_message_closes_with_1009(server: RunningServer) -> None:
    _, client = await _authenticated(server)
    try:
        await client.send_raw('{"id": 5, "type": "heartbeat", "pad": "' + "x" * MAX_TEXT_MESSAGE + '"}')
        assert await client.wait_closed() == 1009
    finally:
        await client.close()


async def test_large_message_before_auth_closes_with_1009(server: RunningServer) -> None:
    async with agent(server.url) as client:
        await client.hello()
        await client.send_raw('{"id": 2, "type": "auth", "device_id": "' + "a" * 4000 + '", "signature": ""}')
        assert await client.wait_closed() == 1009
        assert client.failure is not None
        assert client.failure.code == "message_too_large"


async def test_malformed_json_closes_with_1002(server: RunningServer) -> None:
    async with agent(server.url) as client:
        await client.hello()
        await client.send_raw('{"id": 2, "type": "auth", ')
        assert await client.wait_closed() == 1002
        assert client.failure is not None
        assert client.failure.code == "malformed"


async def test_deep_json_closes_with_1002(server: RunningServer) -> None:
    async with agent(server.url) as client:
        await client.hello()
        await client.send_raw('{"id": 2, "type": "auth", "x": ' + "[" * 40 + "]" * 40 + "}")
        assert await client.wait_closed() == 1002
        assert client.failure is not None
        assert client.failure.code == "too_deep"


async def test_binary_frame_on_the_control_plane_closes(server: RunningServer) -> None:
    _, client = await _authenticated(server)
    try:
        await client.send_raw(encode_frame(Frame(type=FrameType.DATA, channel=1, payload=b"hi")))
        assert await client.wait_closed() == 1002
        assert client.failure is not None
        assert client.failure.code == "bad_frame"
    finally:
        await client.close()


async def test_truncated_binary_frame_closes(server: RunningServer) -> None:
    _, client = await _authenticated(server)
    try:
        await client.send_raw(b"\x01\x00")
        assert await client.wait_closed() == 1002
    finally:
        await client.close()


async def test_unknown_type_is_refused_and_the_connection_goes_on(server: RunningServer) -> None:
    ws = await connect_raw(server.url)
    try:
        await ws.send(json.dumps({"id": 1, "type": "hello", "versions": [1], "software": "raw"}))
        assert json.loads(await ws.recv())["type"] == "result"
        await ws.send(json.dumps({"id": 2, "type": "launch/missiles"}))
        reply = json.loads(await ws.recv())
        assert (reply["id"], reply["error"]["code"]) == (2, "unknown_type")
        await ws.send(json.dumps({"id": 3, "type": "heartbeat", "metrics": sample_metrics_json()}))
        reply = json.loads(await ws.recv())
        assert (reply["id"], reply["error"]["code"]) == (3, "auth_required")
    finally:
        await ws.close()


def sample_metrics_json() -> dict[str, object]:
    return {"uptime": 1.0, "cpu_percent": 1.0, "memory_percent": 1.0, "memory_used": 1}


async def test_hello_is_answered_only_once(server: RunningServer) -> None:
    async with agent(server.url) as client:
        await client.hello()
        with pytest.raises(AgentError) as caught:
            await client.hello()
        assert caught.value.code == "invalid_message"


async def test_silent_connection_is_closed_at_the_auth_deadline(fast_server: RunningServer) -> None:
    async with agent(fast_server.url) as client:
        assert await client.wait_closed(timeout=5) == 4408
        assert client.failure is not None
        assert client.failure.code == "timeout"


async def test_hello_without_auth_is_closed_at_the_auth_deadline(fast_server: RunningServer) -> None:
    async with agent(fast_server.url) as client:
        await client.hello()
        assert await client.wait_closed(timeout=5) == 4408


async def test_agent_without_heartbeats_goes_offline(fast_server: RunningServer) -> None:
    identity, client = await _authenticated(fast_server)
    try:
        presence = fleet(fast_server).presence
        assert presence.online(identity.device_id or "")
        # after 3 missed heartbeats (3 × 0.4 s) the server closes the socket
        assert await client.wait_closed(timeout=5) == 4408
        await wait_for(lambda: not presence.online(identity.device_id or ""), what="offline")
    finally:
        await client.close()


async def test_heartbeats_keep_an_agent_online(fast_server: RunningServer) -> None:
    identity, client = await _authenticated(fast_server)
    interval = fast_server.config.agent_heartbeat_interval
    try:
        for _ in range(8):  # 8 half intervals: longer than the 3 intervals that would close a silent agent
            await client.heartbeat()
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(interval / 2):
                    await client.wait_closed(timeout=60)
        assert fleet(fast_server).presence.online(identity.device_id or "")
    finally:
        await client.close()
