"""The relay between a Python console and a Python agent, through the real server: pairing, forwarding,
what it refuses, how fast it closes, and that it never sees a byte of plaintext."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import websockets
from steun_protocol.frames import HEADER, Frame, FrameType, encode_frame
from steun_protocol.session import RecordOpener, RecordType, SessionError
from steun_protocol.sessionplane import Channel
from steun_server.sessions.relay import Direction

from tests.support.agent_client import AgentClient, Identity, enroll_new, online_agent
from tests.support.api import ApiClient
from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for

from .conftest import audit_records, sessions, user_api
from .helpers import Console, RelayEnd, Session, agent_end, console_end, quick_agent, request_session

#: "the other side is closed within a second" (it takes tens of milliseconds on loopback)
CLOSE_BOUND = scaled(1.0)


@pytest.fixture
async def device(server: RunningServer) -> AsyncIterator[tuple[AgentClient, Identity]]:
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="ws-17")
    client = await online_agent(server.url, identity)
    try:
        yield client, identity
    finally:
        await client.close()


@pytest.fixture
async def session(server: RunningServer, admin_api: ApiClient, device) -> AsyncIterator[Session]:  # type: ignore[no-untyped-def]
    agent, identity = device
    made = await request_session(server, admin_api, agent, identity)
    try:
        yield made
    finally:
        for end in (made.c_end, made.a_end):
            if end is not None:
                await end.close()
        await made.console.close()


async def established(session: Session) -> Session:
    await session.join()
    await session.handshake()
    return session


def sealed(
    session: Session, side: str, channel: int, payload: bytes, kind: RecordType = RecordType.DATA
) -> bytes:
    records = session.console_records if side == "console" else session.agent_records
    assert records is not None
    return encode_frame(Frame(FrameType.SEALED, channel, records[0].seal(channel, kind, payload)))


def opener(session: Session, side: str):  # type: ignore[no-untyped-def]
    records = session.console_records if side == "console" else session.agent_records
    assert records is not None
    return records[1]


async def test_handshake_through_the_relay(session: Session, server: RunningServer) -> None:
    await session.join()
    console_keys, agent_keys = await session.handshake()
    assert console_keys.sas == agent_keys.sas
    assert len(console_keys.sas) == 6 and console_keys.sas.isdigit()
    c_end, a_end = session.c_end, session.a_end
    assert c_end is not None and a_end is not None
    # records flow both ways, in order, on their channels
    for i in range(5):
        await c_end.send_bytes(sealed(session, "console", Channel.INPUT, f"key {i}".encode()))
        await a_end.send_bytes(sealed(session, "agent", Channel.SCREEN, f"frame {i}".encode() * 100))
    for i in range(5):
        record = opener(session, "agent").open((await a_end.receive_frame()).payload)
        assert (record.channel, record.payload) == (Channel.INPUT, f"key {i}".encode())
        record = opener(session, "console").open((await c_end.receive_frame()).payload)
        assert (record.channel, record.payload) == (Channel.SCREEN, f"frame {i}".encode() * 100)
    stats = sessions(server).relay.session_statistics(session.session_id)
    assert stats is not None and stats["paired"]
    assert stats["console_to_agent"]["frames"] == 1 + 5  # reveal, 5 records
    assert stats["agent_to_console"]["frames"] == 2 + 5  # accept, confirm, 5 records
    assert stats["agent_to_console"]["bytes"] > 5 * 600


async def test_the_relay_never_sees_plaintext(session: Session, server: RunningServer) -> None:
    """The canary: whatever the sides say, the relay's every forwarded byte is free of it."""
    seen: list[tuple[Direction, bytes]] = []
    relay = sessions(server).relay
    relay.tap = lambda session_id, direction, data: seen.append((direction, bytes(data)))
    try:
        await established(session)
        c_end, a_end = session.c_end, session.a_end
        assert c_end is not None and a_end is not None
        canary = b"CANARY-" + secrets.token_hex(16).encode()
        plaintexts = [
            canary,
            b"password=" + canary,
            os.urandom(64) + canary + os.urandom(64),
            canary * 20_000,  # a large record (several hundred KiB)
        ]
        for payload in plaintexts:
            await c_end.send_bytes(sealed(session, "console", Channel.INPUT, payload))
            await a_end.send_bytes(sealed(session, "agent", Channel.SCREEN, payload))
            await c_end.send_bytes(sealed(session, "console", Channel.CONTROL, payload, RecordType.CONTROL))
        for payload in plaintexts:
            assert opener(session, "agent").open((await a_end.receive_frame()).payload).payload == payload
            assert opener(session, "console").open((await c_end.receive_frame()).payload).payload == payload
            assert opener(session, "agent").open((await a_end.receive_frame()).payload).payload == payload
    finally:
        relay.tap = None
    assert {d for d, _ in seen} == {Direction.CONSOLE_TO_AGENT, Direction.AGENT_TO_CONSOLE}
    everything = b"".join(data for _, data in seen)
    assert len(everything) > 3 * len(plaintexts[-1])
    assert canary not in everything
    for payload in plaintexts[:3]:
        assert payload not in everything
    # nor a 16-byte piece of the random parts
    assert plaintexts[2][:16] not in everything and plaintexts[2][-80:-64] not in everything


def _flip(data: bytes) -> list[bytes]:
    payload = bytearray(data)
    payload[-1] ^= 0x01  # the last byte of the GCM tag
    return [bytes(payload)]


def _truncate(data: bytes) -> list[bytes]:
    cut = data[: HEADER.size + 20]  # frame header + 20 bytes of record: shorter than header and tag
    kind, flags, channel, _ = HEADER.unpack_from(cut)
    return [HEADER.pack(kind, flags, channel, len(cut) - HEADER.size) + cut[HEADER.size :]]


class Reorder:
    def __init__(self) -> None:
        self.held: bytes | None = None

    def __call__(self, data: bytes) -> list[bytes]:
        if self.held is None:
            self.held = data
            return []
        held, self.held = self.held, None
        return [data, held]


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        ("flip", "record_forged"),
        ("replay", "record_replayed"),
        ("reorder", "record_replayed"),
        ("truncate", "record_truncated"),
    ],
)
@pytest.mark.parametrize("direction", [Direction.AGENT_TO_CONSOLE, Direction.CONSOLE_TO_AGENT])
async def test_tampering_by_the_relay_is_detected(
    session: Session, server: RunningServer, attack: str, expected: str, direction: Direction
) -> None:
    await established(session)
    reorder = Reorder()
    attacks = {
        "flip": _flip,
        "replay": lambda data: [data, data],
        "reorder": reorder,
        "truncate": _truncate,
    }

    def tamper(session_id: str, seen: Direction, data: bytes) -> list[bytes]:
        if seen is direction and data[0] == FrameType.SEALED:
            return attacks[attack](data)
        return [data]

    relay = sessions(server).relay
    relay.tamper = tamper
    try:
        sender, receiver = (
            ("agent", "console") if direction is Direction.AGENT_TO_CONSOLE else ("console", "agent")
        )
        send_end = session.a_end if sender == "agent" else session.c_end
        recv_end = session.c_end if receiver == "console" else session.a_end
        assert send_end is not None and recv_end is not None
        for i in (1, 2):
            await send_end.send_bytes(
                sealed(session, sender, Channel.CONTROL, b'{"n": %d}' % i, RecordType.CONTROL)
            )
        with pytest.raises(SessionError) as info:
            await _open_until_refused(opener(session, receiver), recv_end)
        assert info.value.code == expected, info.value
    finally:
        relay.tamper = None


async def _open_until_refused(record_opener: RecordOpener, end: RelayEnd) -> None:
    """What a record layer does with what it receives, in order (3 records at most)."""
    for _ in range(3):
        record_opener.open((await end.receive_frame()).payload)


async def _refused_console(api: ApiClient, path: str, **kwargs: object) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await api.websocket(path, **kwargs)
    return info.value.status


async def _refused_agent(server: RunningServer, path: str, ticket: str, **kwargs: object) -> int:
    with pytest.raises(websockets.InvalidStatus) as info:
        await agent_end(server, path, ticket, **kwargs)  # type: ignore[arg-type]
    return int(info.value.response.status_code)


async def test_console_side_needs_our_origin_and_its_technician(
    session: Session, server: RunningServer, admin_api: ApiClient
) -> None:
    path = f"/relay/ws?ticket={session.created['ticket']}"
    assert await _refused_console(admin_api, path, origin="https://evil.example") == 403
    assert await _refused_console(admin_api, path, origin=None) == 403
    other = await user_api(server, admin_api, "olga", "admin")
    try:
        assert await _refused_console(other, path) == 403  # another technician's cookie
    finally:
        await other.close()
    async with ApiClient(server.url) as anonymous:
        assert await _refused_console(anonymous, path) == 401
    # none of that used the ticket up
    end = await console_end(admin_api, server, "/relay/ws", session.created["ticket"])
    await end.close()


async def test_agent_side_refuses_an_origin(session: Session, server: RunningServer) -> None:
    status = await _refused_agent(server, "/relay/ws", session.offer_request.ticket, origin=server.url)
    assert status == 403
    async with ApiClient(server.url) as plain:  # not a websocket upgrade at all
        response = await plain.get(f"/relay/ws?ticket={session.offer_request.ticket}")
        assert (response.status, response.error_code) == (400, "invalid_request")
    end = await agent_end(server, "/relay/ws", session.offer_request.ticket)
    await end.close()


async def test_unknown_and_used_tickets_are_refused(session: Session, server: RunningServer) -> None:
    assert await _refused_agent(server, "/relay/ws", secrets.token_urlsafe(32)) == 403
    assert await _refused_agent(server, "/relay/ws", "short") == 403
    async with ApiClient(server.url) as anonymous:
        assert await _refused_console(anonymous, "/relay/ws") == 401  # no ticket at all
    end = await agent_end(server, "/relay/ws", session.offer_request.ticket)
    try:
        assert await _refused_agent(server, "/relay/ws", session.offer_request.ticket) == 403
    finally:
        await end.close()
    # the agent's ticket does not open the console side, nor the console's the agent side
    assert await _refused_agent(server, "/relay/ws", session.created["ticket"]) == 403


async def test_expired_ticket_and_a_lonely_side(short_server: RunningServer) -> None:
    server = short_server
    identity = await enroll_new(server.url, await server.create_enrollment_token())
    agent = await online_agent(server.url, identity)
    async with ApiClient(server.url) as api:
        await api.login_ok(server.admin_username, server.admin_password)
        made = await request_session(server, api, agent, identity)
        try:
            c_end = await console_end(api, server, "/relay/ws", made.created["ticket"])
            started = time.monotonic()
            # nobody joins: the console side is closed when the tickets run out
            assert await c_end.wait_closed(timeout=10) == 4408
            assert time.monotonic() - started < scaled(1.5) + CLOSE_BOUND
            assert await _refused_agent(server, "/relay/ws", made.offer_request.ticket) == 403
            ended = await wait_for(lambda: audit_records(server, "session.ended"), what="session.ended")
            assert ended[0].data["reason"] == "no_partner"
        finally:
            await made.console.close()
            await agent.close()


async def test_frames_sent_before_the_partner_joins_wait_for_it(
    session: Session, server: RunningServer
) -> None:
    a_end = await agent_end(server, "/relay/ws", session.offer_request.ticket)
    session.a_end = a_end
    await a_end.send_frame(Frame(FrameType.DATA, 0, b'{"hello": "early"}'))
    session.c_end = await console_end(session.api, server, "/relay/ws", session.created["ticket"])
    frame = await session.c_end.receive_frame()
    assert frame.payload == b'{"hello": "early"}'


async def _both_closed(*ends: RelayEnd) -> list[int | None]:
    return list(await asyncio.gather(*(end.wait_closed() for end in ends)))


async def test_stop_closes_both_sides_within_a_second(session: Session, server: RunningServer) -> None:
    c_end, a_end = (await established(session)).c_end, session.a_end
    assert c_end is not None and a_end is not None
    started = time.monotonic()
    waiting = asyncio.ensure_future(_both_closed(c_end, a_end))
    await session.console.result("session/stop", session_id=session.session_id)
    assert await waiting == [1000, 1000]
    assert max(c_end.closed_at or 0, a_end.closed_at or 0) - started < CLOSE_BOUND
    assert (c_end.close_reason, a_end.close_reason) == ("stopped", "stopped")


@pytest.mark.parametrize("leaver", ["console", "agent"])
async def test_one_side_leaving_closes_the_other(session: Session, leaver: str) -> None:
    await established(session)
    leaving, staying = (
        (session.c_end, session.a_end) if leaver == "console" else (session.a_end, session.c_end)
    )
    assert leaving is not None and staying is not None
    started = time.monotonic()
    await leaving.close()
    assert await staying.wait_closed() == 1000
    assert (staying.closed_at or 0) - started < CLOSE_BOUND


async def test_close_frame_is_forwarded_then_both_close(session: Session) -> None:
    await established(session)
    c_end, a_end = session.c_end, session.a_end
    assert c_end is not None and a_end is not None
    started = time.monotonic()
    await a_end.send_frame(Frame(FrameType.CLOSE, 0, b"user pressed stop"))
    frame = await c_end.receive_frame()
    assert (frame.type, frame.payload) == (FrameType.CLOSE, b"user pressed stop")
    assert await _both_closed(c_end, a_end) == [1000, 1000]
    assert max(c_end.closed_at or 0, a_end.closed_at or 0) - started < CLOSE_BOUND


async def test_text_messages_are_refused(session: Session) -> None:
    await established(session)
    c_end, a_end = session.c_end, session.a_end
    assert c_end is not None and a_end is not None
    await c_end.send_text('{"type": "hello"}')
    assert await _both_closed(c_end, a_end) == [1003, 1000]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x02\x00", 1002),  # shorter than a header
        (b"\x09" + b"\x00" * 7, 1002),  # unknown type
        (HEADER.pack(FrameType.DATA, 0, 0, 100) + b"x" * 10, 1002),  # length does not match
        (HEADER.pack(FrameType.CREDIT, 0, 0, 8) + b"\x00" * 8, 1009),  # over the CREDIT cap
        (HEADER.pack(FrameType.SEALED, 0, 1, 1024 * 1024 + 1) + b"\x00" * (1024 * 1024 + 1), 1009),  # too big
    ],
)
async def test_garbage_and_oversize_frames_close_the_session(
    session: Session, frame: bytes, code: int
) -> None:
    await established(session)
    c_end, a_end = session.c_end, session.a_end
    assert c_end is not None and a_end is not None
    await a_end.send_bytes(frame)
    assert await _both_closed(a_end, c_end) == [code, 1000]


async def test_a_full_size_frame_is_forwarded(session: Session) -> None:
    await established(session)
    c_end, a_end = session.c_end, session.a_end
    assert c_end is not None and a_end is not None
    payload = os.urandom(1024 * 1024)
    await a_end.send_frame(Frame(FrameType.DATA, 7, payload))
    frame = await c_end.receive_frame()
    assert (frame.channel, frame.payload) == (7, payload)


async def test_ended_session_is_audited_with_its_statistics(session: Session, server: RunningServer) -> None:
    await established(session)
    assert session.c_end is not None and session.a_end is not None
    await session.c_end.send_bytes(sealed(session, "console", Channel.INPUT, b"x"))
    await session.a_end.receive_frame()
    await session.c_end.close()
    ended = await wait_for(lambda: audit_records(server, "session.ended"), what="session.ended")
    data = ended[0].data
    assert data["paired"] is True
    assert data["session_id"] == session.session_id
    assert data["console_to_agent"]["frames"] == 2
    assert data["agent_to_console"]["frames"] == 2
    assert data["reason"] == "console_closed"
    assert sessions(server).relay.statistics()["sessions"] == 0


async def test_quick_support_end_to_end(server: RunningServer, admin_api: ApiClient) -> None:
    """Code → redeem → request → the quick-support key answers the handshake through the relay."""
    console = await Console.open(admin_api)
    sub, created = await console.result("support/create")
    agent, identity = await quick_agent(server, created["code"], hostname="anna-laptop")
    try:
        redeemed = await console.next_event(sub)
        assert redeemed["device_id"] == identity.device_id
        made = await request_session(
            server, admin_api, agent, identity, capabilities=["view"], console=console
        )
        assert made.offer().device_id == identity.device_id  # opened with the org key
        await established(made)
        assert made.console_hs.keys is not None and made.agent_hs.keys is not None
        assert made.console_hs.keys.sas == made.agent_hs.keys.sas
        (requested,) = await audit_records(server, "session.requested")
        assert requested.data["quick_support"] is True
        for end in (made.c_end, made.a_end):
            if end is not None:
                await end.close()
    finally:
        await agent.close()
        await console.close()
