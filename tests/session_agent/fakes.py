"""In-test pieces around the agent's session runtime: a TLS frame forwarder (the relay's contract), a Python
console (``ConsoleHandshake`` + record layer), a scripted UI and recording screen/input fakes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_agent.consent import Answer, ConsentPrompt
from steun_agent.ui.base import IndicatorInfo, StopCallback
from steun_protocol.auth import b64decode, b64encode, public_key_bytes
from steun_protocol.frames import Frame, FrameType, decode_frame, encode_frame
from steun_protocol.screen import MessageType, decode
from steun_protocol.session import (
    SESSION_VERSION,
    SUITE,
    Accept,
    Capability,
    Confirm,
    ConsoleHandshake,
    RecordType,
    SessionKeys,
    SessionOffer,
    SignedOffer,
    TechnicianIdentity,
    record_layer,
    sign_offer,
)
from steun_protocol.sessionplane import Channel, SessionOfferRequest, decode_control
from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed

from tests.agent.fakes import Certificate, make_certificate
from tests.support.waiting import scaled

# ---------------------------------------------------------------------------------------------- relay


@dataclass
class FrameRelay:
    """Pairs two tickets and forwards binary messages verbatim, as ``/relay/ws`` does (docs/design/0082)."""

    certificate: Certificate = field(default_factory=make_certificate)
    tickets: dict[str, tuple[str, str]] = field(default_factory=dict)  # ticket -> (pair id, side)
    origins: dict[str, str | None] = field(default_factory=dict)  # side -> Origin header seen
    #: Plays a hostile relay: (direction "to_agent"/"to_console", message) -> messages to forward instead.
    tamper: Callable[[str, bytes], list[bytes]] | None = None
    port: int = 0
    _server: Server | None = None
    _sides: dict[str, dict[str, ServerConnection]] = field(default_factory=dict)
    _joined: dict[str, asyncio.Event] = field(default_factory=dict)
    #: Serves ``/agent/ws`` on the same origin (the relay path is on the server's own origin).
    control: Callable[[ServerConnection], Awaitable[None]] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await websockets.serve(
            self._handle,
            "127.0.0.1",
            0,
            ssl=self.certificate.server_context(),
            compression=None,
            max_size=1024 * 1024 + 8,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def open(self) -> tuple[str, str]:
        pair = os.urandom(8).hex()
        agent, console = b64encode(os.urandom(32)), b64encode(os.urandom(32))
        self.tickets[agent] = (pair, "agent")
        self.tickets[console] = (pair, "console")
        self._joined[pair] = asyncio.Event()
        self._sides[pair] = {}
        return agent, console

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        if request.path.startswith("/agent/ws") and self.control is not None:
            await self.control(ws)
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        ticket = (query.get("ticket") or [""])[0]
        if ticket not in self.tickets:
            await ws.close(4401, "ticket_invalid")
            return
        pair, side = self.tickets.pop(ticket)
        self.origins[side] = request.headers.get("Origin")
        sides = self._sides[pair]
        sides[side] = ws
        if len(sides) == 2:
            self._joined[pair].set()
        direction = "to_console" if side == "agent" else "to_agent"
        try:
            async for message in ws:
                await self._joined[pair].wait()
                partner = sides["console" if side == "agent" else "agent"]
                assert isinstance(message, bytes)
                out = self.tamper(direction, message) if self.tamper else [message]
                for data in out:
                    await partner.send(data)
        except ConnectionClosed:
            pass
        finally:
            other = sides.get("console" if side == "agent" else "agent")
            if other is not None:
                with contextlib.suppress(Exception):
                    await other.close(1000, f"{side}_closed")


# ---------------------------------------------------------------------------------------------- console


@dataclass
class Technician:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    user_id: str = "u-42"
    name: str = "Jan de Vries"


def make_offer(
    org_key: Ed25519PrivateKey,
    console: ConsoleHandshake,
    technician: Technician,
    *,
    device_id: str,
    agent_key: bytes,
    capabilities: list[Capability],
    ttl: float = 120.0,
) -> SignedOffer:
    now = time.time()
    offer = SessionOffer(
        version=SESSION_VERSION,
        suite=SUITE,
        session_id=b64encode(os.urandom(16)),
        org_name="Acme Helpdesk",
        technician=TechnicianIdentity(
            user_id=technician.user_id, name=technician.name, key=b64encode(public_key_bytes(technician.key))
        ),
        device_id=device_id,
        agent_key=b64encode(agent_key),
        capabilities=capabilities,
        reason="printer does not print",
        console_commitment=b64encode(console.commitment),
        created_at=now,
        expires_at=now + ttl,
    )
    return sign_offer(org_key, offer)


def offer_request(signed: SignedOffer, ticket: str) -> SessionOfferRequest:
    return SessionOfferRequest(offer=signed, relay_path="/relay/ws", ticket=ticket)


class TestConsole:
    """The technician's side of the relay, in Python: handshake, then sealed records both ways."""

    __test__ = False

    def __init__(self, signed: SignedOffer, handshake: ConsoleHandshake) -> None:
        self.signed = signed
        self.handshake = handshake
        self.keys: SessionKeys | None = None
        self.ws: Any = None
        self.controls: list[Any] = []
        self.data: list[tuple[int, bytes]] = []
        self.closed: str | None = None
        self.close_frame = asyncio.Event()
        self.raw_sent: list[bytes] = []
        self._sealer: Any = None
        self._opener: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def join(self, relay: FrameRelay, ticket: str) -> None:
        url = f"wss://127.0.0.1:{relay.port}/relay/ws?ticket={ticket}"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        self.ws = await websockets.connect(
            url, ssl=ctx, compression=None, max_size=1024 * 1024 + 8, origin=websockets.Origin(relay.url)
        )

    async def handshake_run(self) -> SessionKeys:
        async with asyncio.timeout(scaled(10)):
            frame = decode_frame(await self.ws.recv())
            assert frame.type is FrameType.DATA and frame.channel == 0
            accept = msgspec.json.decode(frame.payload, type=Accept)
            reveal = self.handshake.receive_accept(self.signed, accept)
            await self.ws.send(encode_frame(Frame(FrameType.DATA, 0, msgspec.json.encode(reveal))))
            frame = decode_frame(await self.ws.recv())
            confirm = msgspec.json.decode(frame.payload, type=Confirm)
            self.keys = self.handshake.receive_confirm(confirm)
        offer = msgspec.json.decode(b64decode(self.signed.offer, limit=8192), type=SessionOffer)
        session_id = b64decode(offer.session_id, size=16)
        self._sealer, self._opener = record_layer(self.keys, session_id, "console")
        self._reader = asyncio.create_task(self._read())
        return self.keys

    def seal(self, channel: int, record_type: RecordType, payload: bytes) -> bytes:
        data = self._sealer.seal(channel, record_type, payload)
        return encode_frame(Frame(FrameType.SEALED, channel, data))

    async def send(self, channel: int, record_type: RecordType, payload: bytes) -> None:
        frame = self.seal(channel, record_type, payload)
        self.raw_sent.append(frame)
        await self.ws.send(frame)

    async def send_control(self, message: Any) -> None:
        await self.send(Channel.CONTROL, RecordType.CONTROL, msgspec.json.encode(message))

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                frame = decode_frame(message)
                if frame.type is FrameType.CLOSE:
                    self.close_frame.set()
                elif frame.type is FrameType.SEALED:
                    record = self._opener.open(frame.payload)
                    if record.type is RecordType.CONTROL:
                        self.controls.append(decode_control(record.payload))
                    elif record.type is RecordType.CLOSE:
                        self.closed = record.payload.decode()
                    else:
                        self.data.append((record.channel, record.payload))
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_frame.set()

    async def wait_control(self, kind: type, *, timeout: float = 10.0, after: int = 0) -> Any:
        async with asyncio.timeout(scaled(timeout)):
            while True:
                found = [c for c in self.controls[after:] if isinstance(c, kind)]
                if found:
                    return found[0]
                self._changed.clear()
                await self._changed.wait()

    async def wait_data(self, channel: int, kind: MessageType, *, timeout: float = 10.0) -> Any:
        async with asyncio.timeout(scaled(timeout)):
            while True:
                for ch, payload in self.data:
                    if ch == channel and payload[0] == kind:
                        return decode(payload)
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()


# ---------------------------------------------------------------------------------------------- agent side


class ScriptedUI:
    """A Prompter and indicator: answers from a script (``accept``/``deny``/``hang``), records prompts."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = list(answers)
        self.prompts: list[ConsentPrompt] = []
        self.prompted = asyncio.Event()
        self.indicator: FakeIndicator | None = None
        self.chats: list[FakeChatWindow] = []

    async def ask_consent(self, prompt: ConsentPrompt) -> Answer:
        self.prompts.append(prompt)
        self.prompted.set()
        answer = self.answers.pop(0) if self.answers else "hang"
        if answer == "hang":
            await asyncio.Event().wait()
        return Answer.ACCEPT if answer == "accept" else Answer.DENY

    async def show_indicator(
        self, info: IndicatorInfo, *, on_stop: StopCallback, revoke: StopCallback | None = None
    ) -> FakeIndicator:
        self.indicator = FakeIndicator(info, on_stop, revoke)
        return self.indicator

    async def show_chat(self, chat: Any, technician: str) -> FakeChatWindow:
        window = FakeChatWindow(chat, technician)
        self.chats.append(window)
        return window


class FakeChatWindow:
    def __init__(self, chat: Any, technician: str) -> None:
        self.chat = chat
        self.technician = technician
        self.closed = False

    async def close(self) -> None:
        self.closed = True

    def raise_(self) -> None:
        pass


class FakeIndicator:
    def __init__(self, info: IndicatorInfo, on_stop: StopCallback, revoke: StopCallback | None) -> None:
        self.info = info
        self.capabilities = info.capabilities
        self._on_stop = on_stop
        self._revoke = revoke
        self.closed = False

    def press_stop(self) -> None:
        if self._revoke is not None:
            self._revoke()
        self._on_stop()

    def update(self, capabilities: tuple[Capability, ...]) -> None:
        self.capabilities = capabilities

    async def wait_stopped(self) -> None:
        await asyncio.Event().wait()

    async def close(self) -> None:
        self.closed = True


class RecordingInputBackend:
    """An InputBackend that records every call (blocking-safe: called from the dispatcher's thread)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def pointer_move(self, x: int, y: int) -> None:
        self.calls.append(("move", x, y))

    def pointer_button(self, button: int, down: bool) -> None:
        self.calls.append(("button", button, down))

    def wheel(self, steps_x: int, steps_y: int) -> None:
        self.calls.append(("wheel", steps_x, steps_y))

    def key(self, keysym: int, down: bool) -> None:
        self.calls.append(("key", keysym, down))

    def type_text(self, text: str) -> None:
        self.calls.append(("text", text))

    def release_all(self) -> None:
        pass

    def restore_keymap(self) -> None:
        pass

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------- control plane


@dataclass
class SupportControl:
    """``/agent/ws`` for quick support: hello, ``support/redeem`` (proof checked), ``session/event``."""

    certificate: Certificate
    code: str = "123456789"
    device_id: str = "qs-0001"
    agent_key: bytes | None = None
    events: list[Any] = field(default_factory=list)
    replies: list[Any] = field(default_factory=list)
    redeemed: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: int = 0
    _ws: ServerConnection | None = None
    _conn: Any = None

    async def __call__(self, ws: ServerConnection) -> None:
        from steun_protocol import Connection, ErrorCode, RequestReceived, ResultReceived, Side
        from steun_protocol import auth as proofs
        from steun_protocol.control import AGENT_API, Heartbeat, Hello, HelloResult
        from steun_protocol.messages import Empty
        from steun_protocol.sessionplane import SessionEvent, SupportRedeem, SupportRedeemed

        conn = Connection(AGENT_API, Side.SERVER)
        nonce = b""
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                conn.receive_text(message) if isinstance(message, str) else conn.receive_bytes(message)
                for event in conn.events_received():
                    if isinstance(event, ResultReceived):
                        self.replies.append(event)
                    if not isinstance(event, RequestReceived):
                        if type(event).__name__ == "ErrorReceived":
                            self.replies.append(event)
                        continue
                    req = event.request
                    if isinstance(req, Hello):
                        nonce = os.urandom(32)
                        conn.send_result(
                            req.id,
                            HelloResult(version=1, nonce=proofs.b64encode(nonce), server_time=time.time()),
                        )
                    elif isinstance(req, SupportRedeem):
                        self.attempts += 1
                        key = proofs.b64decode(req.public_key, size=32)
                        payload = proofs.agent_proof_payload(nonce, self.certificate.spki_sha256, key)
                        ok = proofs.verify(key, proofs.b64decode(req.signature, size=64), payload)
                        if req.code != self.code or not ok:
                            conn.send_error(req.id, ErrorCode.FORBIDDEN, "code_invalid")
                        else:
                            self.agent_key = key
                            self._ws, self._conn = ws, conn
                            conn.send_result(
                                req.id,
                                SupportRedeemed(
                                    device_id=self.device_id, org_name="Acme Helpdesk", technician_name="Jan"
                                ),
                            )
                            self.redeemed.set()
                    elif isinstance(req, SessionEvent):
                        self.events.append(req)
                        conn.send_result(req.id, Empty())
                    elif isinstance(req, Heartbeat):
                        conn.send_result(req.id, Empty())
                for data in conn.data_to_send():
                    await ws.send(data)

    async def ask(self, request: Any) -> None:
        assert self._conn is not None and self._ws is not None
        self._conn.send_request(request)
        for data in self._conn.data_to_send():
            await self._ws.send(data)


class ConsentingUI(ScriptedUI):
    """A ScriptedUI whose user gives every prompt the same ``answer`` (``accept`` or ``deny``), however many
    sessions come; the test may change ``answer`` between them."""

    def __init__(self, answer: str = "accept") -> None:
        super().__init__([])
        self.answer = answer

    async def ask_consent(self, prompt: ConsentPrompt) -> Answer:
        self.answers = [self.answer]
        return await super().ask_consent(prompt)
