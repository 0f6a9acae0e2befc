"""Enrollment and login on /agent/ws against the real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from steun_protocol import auth as proofs
from steun_server.fleet import store
from steun_server.fleet.enrollment import create_enrollment_token
from steun_server.web import DB, KEYS

from tests.support.agent_client import (
    AgentClosed,
    AgentError,
    Identity,
    agent,
    connect_agent,
    enroll_new,
    online_agent,
)
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

from .conftest import audit_events, device_rows, fleet, token_rows


async def test_enroll_creates_device_in_token_group(server_any_db: RunningServer) -> None:
    server = server_any_db
    token = await server.create_enrollment_token("default")
    identity = Identity()
    async with agent(server.url) as client:
        hello = await client.hello()
        assert hello.version == 1
        assert len(proofs.b64decode(hello.nonce)) == 32
        assert abs(hello.server_time - time.time()) < 60
        result = await client.enroll(token, identity, hostname="ws-17", os="Windows 11")
    # the org signature was checked by the client against the org key from the token
    assert result.group == "default"
    (row,) = await device_rows(server)
    assert row.id == result.device_id
    assert row.hostname == "ws-17"
    assert row.os == "Windows 11"
    assert row.public_key == proofs.b64encode(identity.public_key)
    (token_row,) = await token_rows(server)
    assert token_row.used_at is not None
    assert token_row.used_by_device == result.device_id
    # only the hash of the secret is stored
    secret = proofs.EnrollmentToken.parse(token).secret
    assert token_row.secret_hash == proofs.EnrollmentToken.parse(token).secret_hash
    assert proofs.b64encode(secret) not in repr(tuple(token_row))
    events = await audit_events(server)
    assert "enrollment.token_created" in events
    assert "enrollment.token_used" in events
    assert "agent.enrolled" in events


async def test_enrolled_agent_logs_in(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    client = await online_agent(server.url, identity)
    try:
        await wait_for(lambda: fleet(server).presence.online(identity.device_id or ""), what="online")
        await client.heartbeat()
    finally:
        await client.close()


async def test_auth_reports_heartbeat_interval_from_config(fast_server: RunningServer) -> None:
    identity = await enroll_new(fast_server.url, await fast_server.create_enrollment_token())
    async with agent(fast_server.url) as client:
        await client.hello()
        result = await client.auth(identity)
        assert result.heartbeat_interval == pytest.approx(fast_server.config.agent_heartbeat_interval)


async def test_enroll_then_auth_on_the_same_connection(server: RunningServer) -> None:
    identity = Identity()
    async with agent(server.url) as client:
        await client.hello()
        await client.enroll(await server.create_enrollment_token(), identity)
        result = await client.auth(identity)
        assert result.heartbeat_interval == 30.0
        await client.heartbeat()


async def _enroll_error(server: RunningServer, token: str) -> tuple[AgentError, int | None]:
    async with agent(server.url) as client:
        await client.hello()
        with pytest.raises(AgentError) as caught:
            await client.enroll(token, Identity())
        code = await client.wait_closed()
    return caught.value, code


async def test_token_reuse_is_refused(server_any_db: RunningServer) -> None:
    server = server_any_db
    token = await server.create_enrollment_token()
    await enroll_new(server.url, token)
    error, close_code = await _enroll_error(server, token)
    assert error.code == "token_used"
    assert "already used" in error.message
    assert close_code == 1008
    assert len(await device_rows(server)) == 1


async def test_expired_token_is_refused(server_any_db: RunningServer) -> None:
    server = server_any_db
    app = server.app
    token, expires_at = await create_enrollment_token(
        app[DB], app[KEYS], group="default", ttl=60, now=time.time() - 120
    )
    assert expires_at < time.time()
    error, _ = await _enroll_error(server, str(token))
    assert error.code == "token_expired"
    assert "expired" in error.message
    assert await device_rows(server) == []


async def test_unknown_token_is_refused(server: RunningServer) -> None:
    real = proofs.EnrollmentToken.parse(await server.create_enrollment_token())
    forged = proofs.EnrollmentToken(
        os.urandom(proofs.TOKEN_SECRET_SIZE), real.spki_sha256, real.org_public_key
    )
    error, _ = await _enroll_error(server, str(forged))
    assert error.code == "token_invalid"
    assert await device_rows(server) == []


@pytest.mark.parametrize("secret", ["", "AAAA", "not*base64", "A" * 100])
async def test_garbage_token_secret_is_refused(server: RunningServer, secret: str) -> None:
    from steun_protocol.control import Enroll

    identity = Identity()
    async with agent(server.url) as client:
        await client.hello()
        assert client.nonce is not None
        payload = proofs.agent_proof_payload(client.nonce, client.spki, identity.public_key)
        request = Enroll(
            token=secret,
            public_key=proofs.b64encode(identity.public_key),
            hostname="h",
            os="o",
            signature=proofs.b64encode(identity.key.sign(payload)),
        )
        with pytest.raises(AgentError) as caught:
            await client.request(request)
    # "not*base64" does not even match the schema's base64url pattern: refused as an invalid message
    assert caught.value.code in ("token_invalid", "invalid_message")
    if secret != "not*base64":
        assert caught.value.code == "token_invalid"
    assert await device_rows(server) == []


async def test_two_agents_racing_one_token_make_one_device(server_any_db: RunningServer) -> None:
    server = server_any_db
    token = await server.create_enrollment_token()
    clients = [await connect_agent(server.url) for _ in range(6)]
    try:
        for client in clients:
            await client.hello()
        outcomes = await asyncio.gather(
            *(client.enroll(token, Identity()) for client in clients), return_exceptions=True
        )
    finally:
        for client in clients:
            await client.close()
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, AgentError) and o.code == "token_used" for o in losers), losers
    rows = await device_rows(server)
    assert [r.id for r in rows] == [winners[0].device_id]


async def test_auth_with_wrong_key_fails(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    impostor = Identity(device_id=identity.device_id)
    async with agent(server.url) as client:
        await client.hello()
        with pytest.raises(AgentError) as caught:
            await client.auth(impostor)
        assert caught.value.code == "auth_failed"
        assert await client.wait_closed() == 1008
    assert not fleet(server).presence.online(identity.device_id or "")
    assert "agent.auth_failed" in await audit_events(server)


async def test_auth_for_unknown_device_fails(server: RunningServer) -> None:
    async with agent(server.url) as client:
        await client.hello()
        with pytest.raises(AgentError) as caught:
            await client.auth(Identity(), device_id="no-such-device")
        assert caught.value.code == "auth_failed"


async def test_revoked_device_cannot_log_in(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    assert identity.device_id is not None
    assert await store.set_revoked(server.app[DB], identity.device_id)
    async with agent(server.url) as client:
        await client.hello()
        with pytest.raises(AgentError) as caught:
            await client.auth(identity)
        assert caught.value.code == "device_revoked"


async def test_auth_failures_are_audited_with_a_throttle(server: RunningServer) -> None:
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    for _ in range(5):
        async with agent(server.url) as client:
            await client.hello()
            with pytest.raises(AgentError):
                await client.auth(Identity(device_id=identity.device_id))
    assert (await audit_events(server)).count("agent.auth_failed") == 1


async def test_channel_binding_signature_over_another_spki_fails(server_any_db: RunningServer) -> None:
    server = server_any_db
    token = await server.create_enrollment_token()
    other_spki = os.urandom(32)
    # enroll: the proof names a TLS key the server does not have (a relayed challenge)
    async with agent(server.url) as client:
        await client.hello()
        with pytest.raises(AgentError) as caught:
            await client.enroll(token, Identity(), spki=other_spki)
        assert caught.value.code == "auth_failed"
    assert await device_rows(server) == []
    # auth: the same for a properly enrolled device
    identity = await enroll_new(server.url, token)
    async with agent(server.url) as client:
        await client.hello()
        with pytest.raises(AgentError) as caught:
            await client.auth(identity, spki=other_spki)
        assert caught.value.code == "auth_failed"


async def test_a_nonce_is_good_for_one_attempt(server: RunningServer) -> None:
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    async with agent(server.url) as client:
        await client.hello()
        with pytest.raises(AgentError):
            await client.auth(Identity(device_id=identity.device_id))
        # the failed attempt closed the connection: the right key cannot reuse that nonce
        with pytest.raises((AgentClosed, AgentError)):
            await client.auth(identity)


async def test_messages_before_auth_are_refused(server: RunningServer) -> None:
    async with agent(server.url) as client:
        await client.hello()
        with pytest.raises(AgentError) as caught:
            await client.heartbeat()
        assert caught.value.code == "auth_required"
        from tests.support.agent_client import sample_inventory

        with pytest.raises(AgentError) as caught:
            await client.send_inventory(sample_inventory())
        assert caught.value.code == "auth_required"
        # the connection goes on for a few refusals, then the server gives up on it
        for _ in range(2):
            with pytest.raises((AgentError, AgentClosed)):
                await client.heartbeat()
        assert await client.wait_closed() == 1008


async def test_requests_before_hello_close_the_connection(server: RunningServer) -> None:
    async with agent(server.url) as client:
        await client.send_raw('{"id": 1, "type": "heartbeat", "metrics": {}}')
        assert await client.wait_closed() == 1008
        assert client.failure is not None
        assert client.failure.code == "hello_required"
