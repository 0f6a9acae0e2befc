"""session/extend against the real server: a live session's offer re-signed with more capabilities."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import msgspec
import pytest
from steun_protocol.session import SignedOffer, open_offer

from tests.support.agent_client import AgentClient, Identity, enroll_new, online_agent
from tests.support.api import ApiClient
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

from .conftest import audit_records, sessions, user_api
from .helpers import Console, request_session


@pytest.fixture
async def device(server: RunningServer) -> AsyncIterator[tuple[AgentClient, Identity]]:
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="ws-17")
    client = await online_agent(server.url, identity)
    try:
        yield client, identity
    finally:
        await client.close()


async def test_extend_resigns_the_same_session_with_the_union(
    server: RunningServer,
    admin_api: ApiClient,
    device: tuple[AgentClient, Identity],
) -> None:
    agent, identity = device
    tina = await user_api(server, admin_api, "tina", "technician")
    try:
        session = await request_session(server, tina, agent, identity, capabilities=["view"])
        first = session.offer()
        session.agent_hs.receive_offer(session.offer_request.offer, now=time.time())
        reply = await session.console.result(
            "session/extend", session_id=session.session_id, capabilities=["control", "clipboard"]
        )
        signed = msgspec.convert(reply[1]["offer"], SignedOffer)
        newer, _ = open_offer(signed, server.org_public_key, now=time.time())
        assert newer.session_id == first.session_id and newer.device_id == first.device_id
        assert newer.agent_key == first.agent_key and newer.technician == first.technician
        assert newer.console_commitment == first.console_commitment
        assert [str(c) for c in newer.capabilities] == ["view", "control", "clipboard"]
        assert newer.created_at >= first.created_at and newer.expires_at > time.time()
        # the agent takes it as a newer offer for its session
        assert session.agent_hs.open_newer_offer(signed, now=time.time()) == newer
        # no session/offer goes to the agent: the console carries it in AskMore, end to end
        assert agent.server_requests.empty()
        audited = await audit_records(server, "session.extend_requested")
        assert len(audited) == 1 and audited[0].actor == "tina"
        assert audited[0].data["requested"] == ["control", "clipboard"]
        assert audited[0].data["offered"] == ["view", "control", "clipboard"]
        record = sessions(server).session(session.session_id)
        assert record is not None and record.capabilities == tuple(newer.capabilities)
        await session.console.close()
    finally:
        await tina.close()


async def test_extend_permissions(
    server: RunningServer,
    admin_api: ApiClient,
    device: tuple[AgentClient, Identity],
) -> None:
    agent, identity = device
    tina = await user_api(server, admin_api, "tina", "technician")
    tom = await user_api(server, admin_api, "tom", "technician")
    tom_console = await Console.open(tom)
    admin_console = await Console.open(admin_api)
    try:
        session = await request_session(server, tina, agent, identity, capabilities=["view"])
        sid = session.session_id
        error = await tom_console.error("session/extend", session_id=sid, capabilities=["control"])
        assert error["code"] == "forbidden"
        error = await session.console.error("session/extend", session_id=sid, capabilities=["shell"])
        assert error["code"] == "forbidden"  # the same role table as session/request
        error = await session.console.error("session/extend", session_id="x" * 22, capabilities=["control"])
        assert error["code"] == "not_found"
        error = await session.console.error("session/extend", session_id=sid, capabilities=[])
        assert error["code"] == "invalid_message"
        _, result = await admin_console.result("session/extend", session_id=sid, capabilities=["shell"])
        assert result["offer"]["signature"]
        assert await audit_records(server, "session.extend_requested")
        await session.console.result("session/stop", session_id=sid)
        await wait_for(lambda: sessions(server).relay.statistics()["sessions"] == 0, what="relay closed")
        error = await session.console.error("session/extend", session_id=sid, capabilities=["control"])
        assert error["code"] == "not_found"  # only a live session
        await session.console.close()
    finally:
        await tom_console.close()
        await admin_console.close()
        await tina.close()
        await tom.close()
