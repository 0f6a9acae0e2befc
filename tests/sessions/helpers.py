"""Session-test helpers: a console websocket client, quick-support and enrolled agents, both ends of the relay.

Everything here talks to the real server over loopback TLS: the console end of the relay is the signed-in
``ApiClient``'s aiohttp session (cookies, ``Origin``), the agent end is a bare ``websockets`` client without an
``Origin``, as the agent runtime connects. The handshake and records are ``steun_protocol.session``'s own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import aiohttp
import msgspec
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol import auth as proofs
from steun_protocol.frames import Frame, FrameType, decode_frame, encode_frame
from steun_protocol.messages import Request
from steun_protocol.session import (
    Accept,
    AgentHandshake,
    Capability,
    Confirm,
    ConsoleHandshake,
    RecordOpener,
    RecordSealer,
    Reveal,
    SessionKeys,
    SessionOffer,
    SignedOffer,
    open_offer,
    record_layer,
)
from steun_protocol.sessionplane import (
    OfferDelivered,
    SessionEvent,
    SessionOfferRequest,
    SupportRedeem,
    SupportRedeemed,
)
from websockets.asyncio.client import ClientConnection

from tests.support.agent_client import AgentClient, Identity, client_context, connect_agent, spki_of
from tests.support.api import ApiClient
from tests.support.server import RunningServer
from tests.support.waiting import scaled

DEFAULT_TIMEOUT = 10.0


# -- the console websocket (/api/ws) -------------------------------------------------------------------------


class Console:
    """A console websocket speaking the {id, type} envelope; events are collected per subscription."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 1
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, api: ApiClient) -> Console:
        return cls(await api.websocket())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if data["type"] == "event":
                self.events.setdefault(data["id"], asyncio.Queue()).put_nowait(data["event"])
            else:
                future = self.replies.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)

    async def call(self, type: str, **fields: Any) -> dict[str, Any]:
        msg_id = self.next_id
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[msg_id] = future
        self.events.setdefault(msg_id, asyncio.Queue())
        await self.ws.send_str(json.dumps({"id": msg_id, "type": type, **fields}))
        async with asyncio.timeout(scaled(20)):
            reply = await future
        reply["_id"] = msg_id
        return reply

    async def result(self, type: str, **fields: Any) -> tuple[int, dict[str, Any]]:
        reply = await self.call(type, **fields)
        assert reply["type"] == "result", reply
        return reply["_id"], reply["result"]

    async def error(self, type: str, **fields: Any) -> dict[str, Any]:
        reply = await self.call(type, **fields)
        assert reply["type"] == "error", reply
        error: dict[str, Any] = reply["error"]
        return error

    async def next_event(self, subscription: int, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        async with asyncio.timeout(scaled(timeout)):
            return await self.events[subscription].get()

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


# -- agents ---------------------------------------------------------------------------------------------------


async def redeem(
    client: AgentClient,
    code: str,
    identity: Identity,
    *,
    hostname: str = "home-pc",
    os: str = "Linux",
    spki: bytes | None = None,
) -> SupportRedeemed:
    """``support/redeem`` on a connection that has done its hello, exactly as the quick-support agent does."""
    assert client.nonce is not None, "hello first"
    payload = proofs.agent_proof_payload(client.nonce, spki or client.spki, identity.public_key)
    request = SupportRedeem(
        code=code,
        public_key=proofs.b64encode(identity.public_key),
        hostname=hostname,
        os=os,
        signature=proofs.b64encode(identity.key.sign(payload)),
    )
    result: SupportRedeemed = await client.request(request)
    identity.device_id = result.device_id
    return result


async def quick_agent(server: RunningServer, code: str, **kwargs: Any) -> tuple[AgentClient, Identity]:
    """A connected quick-support agent (fresh key, redeemed ``code``)."""
    client = await connect_agent(server.url)
    identity = Identity()
    try:
        await client.hello()
        await redeem(client, code, identity, **kwargs)
    except BaseException:
        await client.close()
        raise
    return client, identity


async def connect_agent_from(server: RunningServer, address: str) -> AgentClient:
    """An agent connection from another loopback address (127.0.0.0/8 is all ours on Linux)."""
    ws = await websockets.connect(
        server.url.replace("https://", "wss://") + "/agent/ws",
        ssl=client_context(),
        compression=None,
        ping_interval=None,
        open_timeout=scaled(10),
        close_timeout=scaled(2),
        proxy=None,
        local_addr=(address, 0),
    )
    ssl_object = ws.transport.get_extra_info("ssl_object")
    return AgentClient(ws, spki=spki_of(ssl_object.getpeercert(binary_form=True)))


async def raw_redeem(
    server: RunningServer, code: str, *, address: str = "127.0.0.1"
) -> tuple[AgentClient, Any]:
    """Try a code on a new connection (from ``address``); returns the client and the result or the exception."""
    client = await connect_agent_from(server, address)
    await client.hello()
    try:
        outcome: Any = await redeem(client, code, Identity())
    except Exception as exc:
        outcome = exc
    return client, outcome


async def next_offer(client: AgentClient, *, reply: bool = True) -> SessionOfferRequest:
    """The next ``session/offer`` the server sends this agent; answered ``OfferDelivered`` by default."""
    request: Request = await client.next_server_request()
    assert isinstance(request, SessionOfferRequest), request
    if reply:
        await client.reply(request.id, OfferDelivered())
    return request


async def send_event(
    client: AgentClient, session_id: str, event: str, capabilities: list[Capability] | None = None
) -> Any:
    return await client.request(
        SessionEvent(session_id=session_id, event=event, capabilities=capabilities or [], detail="test")  # type: ignore[arg-type]
    )


# -- the two ends of the relay -------------------------------------------------------------------------------


def relay_url(server: RunningServer, path: str, ticket: str) -> str:
    return server.url.replace("https://", "wss://") + f"{path}?ticket={ticket}"


class RelayEnd:
    """One side's websocket on /relay/ws, aiohttp (console) or websockets (agent), behind one interface."""

    def __init__(
        self, *, aio: aiohttp.ClientWebSocketResponse | None = None, wsl: ClientConnection | None = None
    ) -> None:
        self.aio = aio
        self.wsl = wsl
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_at: float | None = None

    async def send_bytes(self, data: bytes) -> None:
        if self.aio is not None:
            await self.aio.send_bytes(data)
        else:
            assert self.wsl is not None
            await self.wsl.send(data)

    async def send_text(self, text: str) -> None:
        if self.aio is not None:
            await self.aio.send_str(text)
        else:
            assert self.wsl is not None
            await self.wsl.send(text)

    async def send_frame(self, frame: Frame) -> None:
        await self.send_bytes(encode_frame(frame))

    async def send_json(self, value: Any) -> None:
        await self.send_frame(Frame(FrameType.DATA, 0, msgspec.json.encode(value)))

    async def receive_bytes(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """The next binary message; raises ``ConnectionError`` if the socket closes first."""
        async with asyncio.timeout(scaled(timeout)):
            if self.aio is not None:
                message = await self.aio.receive()
                if message.type is aiohttp.WSMsgType.BINARY:
                    return bytes(message.data)
                if message.type is aiohttp.WSMsgType.CLOSE:
                    # the code the relay sent (aiohttp reports 1006 when the relay cut TCP before our reply)
                    self._closed(int(message.data), str(message.extra or ""))
                self._closed(self.aio.close_code, "")
                raise ConnectionError(f"relay closed: {message.type} {self.close_code}")
            assert self.wsl is not None
            try:
                data = await self.wsl.recv()
            except websockets.ConnectionClosed as exc:
                frame = exc.rcvd
                self._closed(frame.code if frame else None, frame.reason if frame else "")
                raise ConnectionError(f"relay closed: {self.close_code}") from None
            assert isinstance(data, bytes), data
            return data

    async def receive_frame(self, timeout: float = DEFAULT_TIMEOUT) -> Frame:
        return decode_frame(await self.receive_bytes(timeout))

    def _closed(self, code: int | None, reason: str) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
            self.close_code = code
            self.close_reason = reason

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Read until the relay closes this socket (frames still arriving are dropped); the close code."""
        async with asyncio.timeout(scaled(timeout)):
            while True:
                try:
                    await self.receive_bytes(timeout)
                except ConnectionError:
                    return self.close_code

    async def close(self) -> None:
        if self.aio is not None:
            await self.aio.close()
        elif self.wsl is not None:
            await self.wsl.close()


async def console_end(
    api: ApiClient, server: RunningServer, path: str, ticket: str, *, origin: Any = ...
) -> RelayEnd:
    kwargs: dict[str, Any] = {"autoping": True, "max_msg_size": 2 * 1024 * 1024}
    if origin is not ...:
        kwargs["origin"] = origin
    ws = await api.websocket(f"{path}?ticket={ticket}", **kwargs)
    return RelayEnd(aio=ws)


async def agent_end(server: RunningServer, path: str, ticket: str, *, origin: str | None = None) -> RelayEnd:
    ws = await websockets.connect(
        relay_url(server, path, ticket),
        ssl=client_context(),
        additional_headers={"Origin": origin} if origin else None,
        compression=None,
        max_size=2 * 1024 * 1024,
        ping_interval=None,
        open_timeout=scaled(10),
        close_timeout=scaled(2),
        proxy=None,
    )
    return RelayEnd(wsl=ws)


# -- a whole session ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Session:
    """A session asked for by a console and offered to an agent; the relay ends are opened by ``join``."""

    server: RunningServer
    api: ApiClient
    console: Console
    agent: AgentClient
    identity: Identity
    created: dict[str, Any]
    offer_request: SessionOfferRequest
    console_hs: ConsoleHandshake
    agent_hs: AgentHandshake
    c_end: RelayEnd | None = None
    a_end: RelayEnd | None = None
    keys: SessionKeys | None = None
    console_records: tuple[RecordSealer, RecordOpener] | None = None
    agent_records: tuple[RecordSealer, RecordOpener] | None = None

    @property
    def session_id(self) -> str:
        return str(self.created["session_id"])

    @property
    def signed(self) -> SignedOffer:
        return msgspec.convert(self.created["offer"], SignedOffer)

    def offer(self) -> SessionOffer:
        offer, _ = open_offer(self.offer_request.offer, self.server.org_public_key, now=time.time())
        return offer

    async def join(self) -> tuple[RelayEnd, RelayEnd]:
        self.c_end = await console_end(
            self.api, self.server, self.created["relay_path"], self.created["ticket"]
        )
        self.a_end = await agent_end(self.server, self.offer_request.relay_path, self.offer_request.ticket)
        return self.c_end, self.a_end

    async def handshake(self) -> tuple[SessionKeys, SessionKeys]:
        """Accept → Reveal → Confirm through the relay, as the agent runtime and the console do."""
        assert self.c_end is not None and self.a_end is not None, "join first"
        accept = self.agent_hs.receive_offer(self.offer_request.offer, now=time.time())
        await self.a_end.send_json(accept)
        frame = await self.c_end.receive_frame()
        assert frame.type is FrameType.DATA and frame.channel == 0, frame
        reveal = self.console_hs.receive_accept(self.signed, msgspec.json.decode(frame.payload, type=Accept))
        await self.c_end.send_json(reveal)
        frame = await self.a_end.receive_frame()
        confirm, agent_keys = self.agent_hs.receive_reveal(msgspec.json.decode(frame.payload, type=Reveal))
        await self.a_end.send_json(confirm)
        frame = await self.c_end.receive_frame()
        console_keys = self.console_hs.receive_confirm(msgspec.json.decode(frame.payload, type=Confirm))
        session_id = proofs.b64decode(self.session_id, size=16)
        self.console_records = record_layer(console_keys, session_id, "console")
        self.agent_records = record_layer(agent_keys, session_id, "agent")
        self.keys = console_keys
        return console_keys, agent_keys

    async def close(self) -> None:
        for end in (self.c_end, self.a_end):
            if end is not None:
                await end.close()
        await self.console.close()
        await self.agent.close()


async def request_session(
    server: RunningServer,
    api: ApiClient,
    agent: AgentClient,
    identity: Identity,
    *,
    capabilities: list[str] | None = None,
    console: Console | None = None,
) -> Session:
    """session/request from ``api``'s console for ``identity``'s device; the agent takes the offer."""
    console = console or await Console.open(api)
    technician_key = Ed25519PrivateKey.generate()
    console_hs = ConsoleHandshake(technician_key)
    assert identity.device_id is not None
    pending = asyncio.ensure_future(
        console.call(
            "session/request",
            device_id=identity.device_id,
            capabilities=capabilities or ["view", "control"],
            technician_key=proofs.b64encode(console_hs.technician_public),
            console_commitment=proofs.b64encode(console_hs.commitment),
            reason="printer will not print",
        )
    )
    offer_request = await next_offer(agent)
    reply = await pending
    assert reply["type"] == "result", reply
    agent_hs = AgentHandshake(server.org_public_key, identity.key, device_id=identity.device_id)
    return Session(
        server, api, console, agent, identity, reply["result"], offer_request, console_hs, agent_hs
    )
