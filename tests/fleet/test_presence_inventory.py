"""Presence, heartbeats, inventories and reconnection against the real server."""

from __future__ import annotations

import json

import pytest
from steun_protocol.inventory import inventory_digest
from steun_server.web import DB

from tests.support.agent_client import (
    RunningAgent,
    enroll_new,
    online_agent,
    sample_inventory,
    sample_metrics,
)
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

from .conftest import device_rows, fleet, inventory_row


async def test_presence_online_then_offline_on_disconnect(server: RunningServer) -> None:
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    device_id = identity.device_id or ""
    presence = fleet(server).presence
    await wait_for(lambda: not presence.online(device_id), what="the enroll connection to end")
    client = await online_agent(server.url, identity)
    assert presence.online(device_id)
    await client.heartbeat(sample_metrics(cpu=77.0))
    metrics = presence.metrics(device_id)
    assert metrics is not None
    assert metrics.cpu_percent == 77.0
    await client.close()
    await wait_for(lambda: not presence.online(device_id), what="offline after disconnect")
    assert presence.metrics(device_id) is None


async def test_second_connection_replaces_the_first(server: RunningServer) -> None:
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    device_id = identity.device_id or ""
    presence = fleet(server).presence
    first = await online_agent(server.url, identity)
    second = await online_agent(server.url, identity)
    try:
        assert await first.wait_closed() == 4409
        assert presence.online(device_id)
        entry = presence.entry(device_id)
        assert entry is not None
        await second.heartbeat()  # the newer connection is the one served
        assert presence.statistics()["replaced"] == 1
    finally:
        await first.close()
        await second.close()
    await wait_for(lambda: not presence.online(device_id), what="offline")


async def test_heartbeats_do_not_write_to_the_database(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    client = await online_agent(server.url, identity)
    try:
        db = server.app[DB]
        service = fleet(server)
        await service.last_seen.flush()
        before = db.statistics().transactions_begun
        for _ in range(20):
            await client.heartbeat()
        # twenty heartbeats: zero transactions, one pending last_seen, written in one batch later
        assert db.statistics().transactions_begun == before
        assert service.last_seen.pending() == 1
        (row,) = await device_rows(server)
        stale = row.last_seen
        assert await service.last_seen.flush() == 1
        (row,) = await device_rows(server)
        assert row.last_seen > stale
    finally:
        await client.close()


async def test_inventory_is_stored_and_rewritten_only_when_changed(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="old-name")
    device_id = identity.device_id or ""
    inventory = sample_inventory(hostname="pc-042")
    client = await online_agent(server.url, identity)
    try:
        await client.send_inventory(inventory)
        row = await inventory_row(server, device_id)
        assert row is not None
        assert row.digest == inventory_digest(inventory)
        assert json.loads(row.json)["cpu_model"] == "Test CPU"
        first_update = row.updated_at
        # the hostname follows the machine
        (device,) = await device_rows(server)
        assert device.hostname == "pc-042"
        # the same inventory again: no write
        db = server.app[DB]
        before = db.statistics().transactions_begun
        await client.send_inventory(inventory)
        assert db.statistics().transactions_begun == before
    finally:
        await client.close()
    # after a reconnect, the unchanged inventory still costs no write (the stored digest is known)
    client = await online_agent(server.url, identity)
    try:
        await client.send_inventory(inventory)
        assert (await inventory_row(server, device_id)).updated_at == first_update
        changed = sample_inventory(hostname="pc-042", memory_total=32 * 2**30)
        await client.send_inventory(changed)
        row = await inventory_row(server, device_id)
        assert row.digest == inventory_digest(changed)
        assert row.updated_at > first_update
        assert json.loads(row.json)["memory_total"] == 32 * 2**30
    finally:
        await client.close()


async def test_empty_inventory_hostname_is_refused(server: RunningServer) -> None:
    from tests.support.agent_client import AgentError

    identity = await enroll_new(server.url, await server.create_enrollment_token())
    client = await online_agent(server.url, identity)
    try:
        with pytest.raises(AgentError) as caught:
            await client.send_inventory(sample_inventory(hostname="  "))
        assert caught.value.code == "invalid_message"
        await client.heartbeat()
    finally:
        await client.close()


async def test_agent_reconnects_after_server_restart(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    device_id = identity.device_id or ""
    running = RunningAgent(server.url, identity, inventory=sample_inventory()).start()
    try:
        await wait_for(
            lambda: running.connects >= 1 and fleet(server).presence.online(device_id), what="online"
        )
        await server.stop()
        await wait_for(lambda: not running.connected, what="the agent to notice the restart")
        await server.start()
        await wait_for(
            lambda: running.connects >= 2 and fleet(server).presence.online(device_id),
            timeout=20,
            what="online again after the restart",
        )
        # last_seen was flushed at shutdown
        (row,) = await device_rows(server)
        assert row.last_seen is not None
    finally:
        await running.stop()
