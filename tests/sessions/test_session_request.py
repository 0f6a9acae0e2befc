"""session/request, session/stop and session/event against the real server: offers, roles, audit."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol import auth as proofs
from steun_protocol.session import OFFER_CONTEXT, Capability, ConsoleHandshake, open_offer
from steun_server.sessions import service as session_service

from tests.support.agent_client import AgentClient, AgentError, Identity, enroll_new, online_agent
from tests.support.api import ApiClient
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

from .conftest import audit_records, sessions, user_api
from .helpers import Console, next_offer, request_session, send_event


@pytest.fixture
async def device(server: RunningServer) -> AsyncIterator[tuple[AgentClient, Identity]]:
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="ws-17")
    client = await online_agent(server.url, identity)
    try:
        yield client, identity
    finally:
        await client.close()


def request_fields(identity: Identity, capabilities: list[str]) -> dict[str, object]:
    handshake = ConsoleHandshake(Ed25519PrivateKey.generate())
    return {
        "device_id": identity.device_id,
        "capabilities": capabilities,
        "technician_key": proofs.b64encode(handshake.technician_public),
        "console_commitment": proofs.b64encode(handshake.commitment),
    }


async def test_agent_receives_an_offer_signed_by_the_org_key(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="ws-17")
    agent = await online_agent(server.url, identity)
    async with ApiClient(server.url) as api:
        me = await api.login_ok(server.admin_username, server.admin_password)
        session = await request_session(
            server, api, agent, identity, capabilities=["view", "control", "view"]
        )
        try:
            created = session.created
            assert created["relay_path"] == "/relay/ws"
            assert re.fullmatch(r"[A-Za-z0-9_-]{32,64}", created["ticket"])
            assert created["ticket"] != session.offer_request.ticket  # one ticket per side
            # the console and the agent hold the very same signed bytes
            assert created["offer"]["offer"] == session.offer_request.offer.offer
            offer = session.offer()  # open_offer: signature against the org key, validity window
            assert offer.session_id == created["session_id"]
            assert len(proofs.b64decode(offer.session_id)) == 16
            assert offer.device_id == identity.device_id
            assert proofs.b64decode(offer.agent_key) == identity.public_key
            assert offer.capabilities == [Capability.VIEW, Capability.CONTROL]
            assert offer.reason == "printer will not print"
            assert offer.org_name == "Steun"
            assert offer.technician.user_id == str(me["id"])
            assert offer.technician.name == me["display_name"]
            assert proofs.b64decode(offer.technician.key) == session.console_hs.technician_public
            assert proofs.b64decode(offer.console_commitment) == session.console_hs.commitment
            assert offer.expires_at - offer.created_at == pytest.approx(120.0)
            assert abs(offer.created_at - time.time()) < 30
            # a key that is not the org's does not open it
            with pytest.raises(Exception, match="offer_forged"):
                open_offer(session.offer_request.offer, Identity().public_key, now=time.time())
            signature = proofs.b64decode(session.offer_request.offer.signature)
            offer_bytes = proofs.b64decode(session.offer_request.offer.offer, limit=4096)
            assert proofs.verify(server.org_public_key, signature, OFFER_CONTEXT + offer_bytes)
            (record,) = await audit_records(server, "session.requested")
            assert record.actor == me["username"]
            assert record.data["session_id"] == offer.session_id
            assert record.data["device_id"] == identity.device_id
            assert record.data["technician"] == {"user_id": me["id"], "username": me["username"]}
            assert record.data["capabilities"] == ["view", "control"]
        finally:
            await session.close()


async def test_agent_session_events_are_audited(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="ws-17")
    agent = await online_agent(server.url, identity)
    other_identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="ws-18")
    other = await online_agent(server.url, other_identity)
    async with ApiClient(server.url) as api:
        me = await api.login_ok(server.admin_username, server.admin_password)
        session = await request_session(server, api, agent, identity, capabilities=["view", "control"])
        try:
            await send_event(
                agent, session.session_id, "consent.requested", [Capability.VIEW, Capability.CONTROL]
            )
            await send_event(agent, session.session_id, "consent.granted", [Capability.VIEW])
            await send_event(agent, session.session_id, "session.start", [Capability.VIEW])
            (granted,) = await audit_records(server, "consent.granted")
            assert granted.actor == f"device:{identity.device_id}"
            assert granted.data["session_id"] == session.session_id
            assert granted.data["device_id"] == identity.device_id
            assert granted.data["hostname"] == "ws-17"
            assert granted.data["technician"] == {"user_id": me["id"], "username": me["username"]}
            assert granted.data["capabilities"] == ["view"]
            assert granted.data["offered"] == ["view", "control"]
            assert [
                r.event for r in await audit_records(server) if r.event.startswith(("consent.", "session."))
            ] == [
                "session.requested",
                "consent.requested",
                "consent.granted",
                "session.start",
            ]
            # another device cannot write into this session's record, nor can anyone for a made-up one
            with pytest.raises(AgentError) as info:
                await send_event(other, session.session_id, "session.stop")
            assert info.value.code == "not_found"
            with pytest.raises(AgentError) as info:
                await send_event(agent, "A" * 22, "session.stop")
            assert info.value.code == "not_found"
        finally:
            await session.close()
            await other.close()


async def test_events_per_session_are_bounded(server: RunningServer, admin_api: ApiClient, device) -> None:  # type: ignore[no-untyped-def]
    agent, identity = device
    session = await request_session(server, admin_api, agent, identity)
    try:
        for _ in range(session_service.MAX_EVENTS_PER_SESSION - 0):
            await send_event(agent, session.session_id, "consent.requested")
        with pytest.raises(AgentError) as info:
            await send_event(agent, session.session_id, "consent.requested")
        assert info.value.code == "throttled"
    finally:
        await session.console.close()


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        ("technician", ["view", "control", "clipboard", "chat"], ["shell", "files", "install"]),
        ("specialist", ["shell", "files"], ["install"]),
        ("admin", ["install", "shell"], []),
    ],
)
async def test_capabilities_need_roles(
    server: RunningServer,
    admin_api: ApiClient,
    device,  # type: ignore[no-untyped-def]
    role: str,
    allowed: list[str],
    refused: list[str],
) -> None:
    agent, identity = device
    api = await user_api(server, admin_api, f"user-{role}", role)
    console = await Console.open(api)
    try:
        for capability in refused:
            error = await console.error("session/request", **request_fields(identity, ["view", capability]))
            assert error["code"] == "forbidden", (capability, error)
        assert agent.server_requests.empty()  # nothing was offered
        session = await request_session(server, api, agent, identity, capabilities=allowed, console=console)
        assert [str(c) for c in session.offer().capabilities] == allowed
    finally:
        await console.close()
        await api.close()


async def test_unknown_and_offline_devices(server: RunningServer, admin_api: ApiClient) -> None:
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    console = await Console.open(admin_api)
    try:
        error = await console.error("session/request", **request_fields(Identity(device_id="nope"), ["view"]))
        assert error["code"] == "not_found"
        error = await console.error("session/request", **request_fields(identity, ["view"]))
        assert error["code"] == "device_offline"
        agent = await online_agent(server.url, identity)
        try:
            bad = {**request_fields(identity, ["view"]), "technician_key": proofs.b64encode(b"\0" * 31)}
            error = await console.error("session/request", **bad)
            assert error["code"] == "invalid_message"
            error = await console.error("session/request", **request_fields(identity, []))
            assert error["code"] == "invalid_message"
        finally:
            await agent.close()
    finally:
        await console.close()


async def test_agent_refusing_the_offer_ends_the_session(
    server: RunningServer,
    admin_api: ApiClient,
    device,  # type: ignore[no-untyped-def]
) -> None:
    agent, identity = device
    console = await Console.open(admin_api)
    try:
        import asyncio

        pending = asyncio.ensure_future(console.call("session/request", **request_fields(identity, ["view"])))
        offer = await next_offer(agent, reply=False)
        await agent.reply_error(offer.id, "busy", "a session is running already")
        reply = await pending
        assert reply["type"] == "error" and reply["error"]["code"] == "busy", reply
        await wait_for(
            lambda: sessions(server).relay.statistics()["sessions"] == 0, what="relay session closed"
        )
        ended = await wait_for(lambda: audit_records(server, "session.ended"), what="session.ended")
        assert ended[0].data["reason"] == "offer_not_delivered"
        assert ended[0].data["paired"] is False
    finally:
        await console.close()


async def test_an_agent_that_does_not_answer_times_out(
    server: RunningServer,
    admin_api: ApiClient,
    device,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent, identity = device
    monkeypatch.setattr(session_service, "OFFER_DELIVERY_TIMEOUT", 0.3)
    console = await Console.open(admin_api)
    try:
        error = await console.error("session/request", **request_fields(identity, ["view"]))
        assert error["code"] == "timeout"
        await next_offer(agent, reply=False)  # it did arrive; nobody answered
    finally:
        await console.close()


async def test_stop_permissions(server: RunningServer, admin_api: ApiClient, device) -> None:  # type: ignore[no-untyped-def]
    agent, identity = device
    tina = await user_api(server, admin_api, "tina", "technician")
    tom = await user_api(server, admin_api, "tom", "technician")
    tom_console = await Console.open(tom)
    admin_console = await Console.open(admin_api)
    try:
        first = await request_session(server, tina, agent, identity)
        second = await request_session(server, tina, agent, identity, console=first.console)
        assert (await tom_console.error("session/stop", session_id=first.session_id))["code"] == "forbidden"
        assert (await tom_console.error("session/stop", session_id="x" * 22))["code"] == "not_found"
        await first.console.result("session/stop", session_id=first.session_id)
        await admin_console.result("session/stop", session_id=second.session_id)
        # stopping again is fine: the session is over either way
        await first.console.result("session/stop", session_id=first.session_id)
        stopped = await audit_records(server, "session.stopped")
        assert [r.actor for r in stopped] == ["tina", server.admin_username]
        await wait_for(
            lambda: sessions(server).relay.statistics()["sessions"] == 0, what="relay sessions closed"
        )
        await first.console.close()
    finally:
        await tom_console.close()
        await admin_console.close()
        await tina.close()
        await tom.close()
