"""The agent's side of a session, in Python, against the console's WebCrypto side in Chromium.

``HarnessServer`` serves the test-only console page (``console/harness-dist``, built by ``npm run build``)
on ``http://127.0.0.1:<port>/`` and a ``/relay/ws`` websocket. Each websocket that the page opens becomes a
``RelayPeer`` that the test drives as the agent would: ``AgentHandshake`` from ``steun_protocol``, frames from
``frames.py``, records from ``session.record_layer``. The relay in the middle is only the websocket itself:
what the browser sends is what the Python agent reads, byte for byte.

The page exposes the console's modules as ``window.steunHarness`` (``console/web/harness/harness.ts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest
from aiohttp import WSMsgType, web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import Page, expect
from steun_protocol import screen
from steun_protocol.auth import b64decode, b64encode, public_key_bytes
from steun_protocol.frames import Frame, FrameType, decode_frame, encode_frame
from steun_protocol.session import (
    SESSION_VERSION,
    SUITE,
    Accept,
    AgentHandshake,
    Capability,
    Record,
    RecordOpener,
    RecordSealer,
    RecordType,
    Reveal,
    SessionKeys,
    SessionOffer,
    SignedOffer,
    TechnicianIdentity,
    record_layer,
    sign_offer,
)
from steun_protocol.sessionplane import Channel
from websockets.asyncio.client import ClientConnection

from tests.support.real_agent import RealAgent
from tests.support.real_agent import real_agent as shared_real_agent
from tests.support.waiting import scaled, wait_for

from .helpers import sign_in_as_admin

ROOT = pathlib.Path(__file__).resolve().parents[2]
HARNESS_DIR = ROOT / "console" / "harness-dist"
RELAY_PATH = "/relay/ws"


def harness_built() -> bool:
    return (HARNESS_DIR / "index.html").is_file()


class Transport(Protocol):
    """One side of a relay websocket, whichever library holds it."""

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes: ...

    async def close(self) -> None: ...


class ServerSideSocket:
    """The harness's /relay/ws: an aiohttp websocket the page opened."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def receive(self) -> bytes:
        message = await self.ws.receive()
        if message.type != WSMsgType.BINARY:
            raise AssertionError(f"expected a binary frame, got {message.type!r} {message.data!r}")
        return bytes(message.data)

    async def close(self) -> None:
        await self.ws.close()


class ClientSideSocket:
    """A websocket the test opened to a real server's relay, as the agent does."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)

    async def receive(self) -> bytes:
        data = await self.ws.recv()
        if not isinstance(data, bytes):
            raise AssertionError(f"expected a binary frame, got text {data!r}")
        return data

    async def close(self) -> None:
        await self.ws.close()


class RelayPeer:
    """The agent's end of a relay websocket: the test plays the agent on it."""

    def __init__(self, transport: Transport, ticket: str) -> None:
        self.transport = transport
        self.ticket = ticket
        self.done = asyncio.Event()
        self.keys: SessionKeys | None = None
        self.sealer: RecordSealer | None = None
        self.opener: RecordOpener | None = None

    async def receive_frame(self, timeout: float = 10.0) -> Frame:
        async with asyncio.timeout(scaled(timeout)):
            data = await self.transport.receive()
        return decode_frame(data)

    async def send_frame(self, frame: Frame) -> None:
        await self.transport.send(encode_frame(frame))

    async def send_json(self, value: object) -> None:
        await self.send_frame(Frame(FrameType.DATA, 0, json.dumps(value).encode()))

    async def handshake(self, agent: AgentHandshake, signed: SignedOffer, *, now: float) -> SessionKeys:
        """Accept → Reveal → Confirm exactly as the agent runtime does; returns the agent's keys."""
        accept: Accept = agent.receive_offer(signed, now=now)
        await self.send_json(
            {"type": "accept", "agent_ephemeral": accept.agent_ephemeral, "agent_key": accept.agent_key}
        )
        frame = await self.receive_frame()
        assert frame.type == FrameType.DATA and frame.channel == 0, frame
        reveal_json = json.loads(frame.payload)
        assert reveal_json["type"] == "reveal", reveal_json
        reveal = Reveal(
            console_ephemeral=reveal_json["console_ephemeral"], signature=reveal_json["signature"]
        )
        confirm, keys = agent.receive_reveal(reveal)
        await self.send_json({"type": "confirm", "signature": confirm.signature})
        assert agent.offer is not None
        self.keys = keys
        self.sealer, self.opener = record_layer(keys, b64decode(agent.offer.session_id, size=16), "agent")
        return keys

    async def send_record(self, channel: int, kind: RecordType, payload: bytes) -> None:
        assert self.sealer is not None
        await self.send_frame(Frame(FrameType.SEALED, channel, self.sealer.seal(channel, kind, payload)))

    async def send_control(self, message: dict[str, Any]) -> None:
        await self.send_record(Channel.CONTROL, RecordType.CONTROL, json.dumps(message).encode())

    async def send_screen(self, *messages: screen.ScreenMessage, channel: int = Channel.SCREEN) -> None:
        for message in messages:
            await self.send_record(channel, RecordType.DATA, screen.encode(message))

    async def receive_record(self, timeout: float = 10.0) -> Record:
        assert self.opener is not None
        frame = await self.receive_frame(timeout)
        assert frame.type == FrameType.SEALED, frame
        return self.opener.open(frame.payload)

    async def receive_screen(
        self, *, channel: int | None = None, timeout: float = 10.0, skip: tuple[type, ...] = ()
    ) -> screen.ConsoleMessage:
        """The next console message (on ``channel`` if given), skipping the types in ``skip``."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            record = await self.receive_record(max(0.05, deadline - time.monotonic()))
            if record.type != RecordType.DATA or (channel is not None and record.channel != channel):
                continue
            message = screen.decode_from_console(record.payload)
            if not isinstance(message, skip):
                return message

    async def close(self) -> None:
        await self.transport.close()
        self.done.set()


@dataclass
class HarnessServer:
    """The harness page and a /relay/ws endpoint on 127.0.0.1 (plain HTTP: loopback is a secure context)."""

    peers: asyncio.Queue[RelayPeer] = field(default_factory=asyncio.Queue)
    runner: web.AppRunner | None = None
    port: int = 0
    _files: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # Read once, before the loop serves anything (the blocking-call guard watches the loop).
        types = {
            ".html": "text/html",
            ".js": "text/javascript",
            ".css": "text/css",
            ".map": "application/json",
        }
        for path in HARNESS_DIR.rglob("*"):
            if path.is_file():
                rel = "/" + path.relative_to(HARNESS_DIR).as_posix()
                self._files[rel] = (path.read_bytes(), types.get(path.suffix, "application/octet-stream"))
        self._files["/"] = self._files["/index.html"]
        app = web.Application()
        app.router.add_get(RELAY_PATH, self._relay)
        app.router.add_get("/{tail:.*}", self._static)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _static(self, request: web.Request) -> web.Response:
        found = self._files.get(request.path)
        if found is None:
            raise web.HTTPNotFound()
        body, content_type = found
        return web.Response(body=body, content_type=content_type)

    async def _relay(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=2 * 1024 * 1024, compress=False, autoping=True)
        await ws.prepare(request)
        peer = RelayPeer(ServerSideSocket(ws), request.query.get("ticket", ""))
        await self.peers.put(peer)
        await peer.done.wait()
        return ws

    async def next_peer(self, timeout: float = 10.0) -> RelayPeer:
        async with asyncio.timeout(scaled(timeout)):
            return await self.peers.get()


# --------------------------------------------------------------------------------------------- parties


@dataclass
class Parties:
    """The org key, the agent's identity and the offer for a browser-made technician key and commitment."""

    device_id: str = "dev-42"
    org: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    agent_identity: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    session_id: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    def offer(
        self, technician_key: str, commitment: str, capabilities: list[Capability], **changes: Any
    ) -> SignedOffer:
        now = time.time()
        fields: dict[str, Any] = {
            "version": SESSION_VERSION,
            "suite": SUITE,
            "session_id": b64encode(self.session_id),
            "org_name": "Helpdesk Voorbeeld BV",
            "technician": TechnicianIdentity(user_id="u-1", name="Amélie Dupont", key=technician_key),
            "device_id": self.device_id,
            "agent_key": b64encode(public_key_bytes(self.agent_identity)),
            "capabilities": capabilities,
            "reason": "Printer prints blank pages",
            "console_commitment": commitment,
            "created_at": now - 1,
            "expires_at": now + 120,
        }
        fields.update(changes)
        return sign_offer(self.org, SessionOffer(**fields))

    def agent(self) -> AgentHandshake:
        return AgentHandshake(public_key_bytes(self.org), self.agent_identity, device_id=self.device_id)


def offer_json(signed: SignedOffer) -> dict[str, str]:
    return {"offer": signed.offer, "signature": signed.signature}


async def open_harness(page: Page, server: HarnessServer) -> None:
    await page.goto(server.url + "/")
    await page.wait_for_function("() => window.steunHarness && window.steunHarness.ready === true")


async def harness_call(page: Page, name: str, *args: Any) -> Any:
    """Call ``window.steunHarness[name](...args)`` and return its (awaited) JSON result."""
    return await page.evaluate("([name, args]) => window.steunHarness[name](...args)", [name, list(args)])


async def wait_log(page: Page, kind: str, timeout: float = 10.0) -> dict[str, Any]:
    """The first entry of the page's session log with this kind."""

    async def find() -> dict[str, Any] | None:
        entries: list[dict[str, Any]] = await harness_call(page, "log")
        return next((e for e in entries if e.get("kind") == kind), None)

    return await wait_for(find, timeout=timeout, what=f"a {kind!r} entry in the session log")


async def started_session(
    page: Page,
    server: HarnessServer,
    parties: Parties,
    capabilities: list[Capability],
    *,
    viewer: bool = False,
    viewer_options: dict[str, Any] | None = None,
) -> tuple[RelayPeer, AgentHandshake, SessionKeys]:
    """Browser keys → signed offer → the browser connects to the relay → the Python agent completes the handshake."""
    fields = await harness_call(page, "newHandshake")
    signed = parties.offer(fields["technician_key"], fields["console_commitment"], capabilities)
    ticket = secrets.token_urlsafe(32)
    if viewer:
        await harness_call(
            page,
            "mountViewer",
            {
                "session_id": b64encode(parties.session_id),
                "device_id": parties.device_id,
                "device_label": "pc-boekhouding",
                "relay_path": RELAY_PATH,
                "ticket": ticket,
                "offer": offer_json(signed),
                "capabilities": [c.value for c in capabilities],
                **(viewer_options or {}),
            },
        )
    else:
        await harness_call(
            page, "connectRelay", {"relay_path": RELAY_PATH, "ticket": ticket, "offer": offer_json(signed)}
        )
    peer = await server.next_peer()
    assert peer.ticket == ticket
    agent = parties.agent()
    keys = await peer.handshake(agent, signed, now=time.time())
    return peer, agent, keys


@contextlib.asynccontextmanager
async def running_harness() -> AsyncIterator[HarnessServer]:
    if not harness_built():
        pytest.fail(
            "the console harness is not built: npm --prefix console ci && npm --prefix console run build"
        )
    server = HarnessServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# --------------------------------------------------------------------------------------------- the real agent


@contextlib.asynccontextmanager
async def real_agent(
    server: Any, state_dir: pathlib.Path, answers: list[str], *, hostname: str
) -> AsyncIterator[RealAgent]:
    """The real agent runtime with its inventory (so the device page shows ``hostname``); consent from
    ``answers``. ``agent.runner``'s ``shell`` / ``chat`` are the agent's side of the Terminal and Chat tabs."""
    async with shared_real_agent(
        server, state_dir, answers=answers, hostname=hostname, inventory=True
    ) as agent:
        yield agent


async def start_console_session(page: Page, server: Any, agent: RealAgent, reason: str) -> None:
    """Sign in, open the agent's device page and request control, as a technician does; returns once the
    user allowed it and the session's tabs are shown."""
    await sign_in_as_admin(page, server)
    await page.get_by_role("link", name=agent.hostname, exact=True).click()
    card = page.locator("section").filter(has=page.get_by_role("heading", name="Remote support"))
    await card.get_by_label("Reason").fill(reason)
    await card.get_by_role("button", name="Request control").click()
    await expect(page.get_by_role("tab", name="Screen")).to_be_visible(timeout=scaled(30) * 1000)
