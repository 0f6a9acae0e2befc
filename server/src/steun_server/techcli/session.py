"""The technician's end of one end-to-end session, in Python: what the browser console does, for the CLI.

1. ``devices/list`` on the console API finds the device (by id, or by a unique hostname);
2. ``session/request`` asks for it with a fresh technician key and the commitment to a fresh X25519 key;
3. the relay websocket (``/relay/ws?ticket=…``, our cookie and Origin) carries Accept → Reveal → Confirm
   (:class:`~steun_protocol.session.ConsoleHandshake`), after which both sides hold the keys and the SAS;
4. sealed records flow; the agent's ``Granted`` says what its user allowed (the agent enforces it).

The server signs the offer naming this technician; it never holds a session key, and the relay forwards
records it cannot read or forge. :class:`TechSession` hands each channel's DATA payloads to the handler
registered for that channel and seals what the handlers send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiohttp
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol.auth import b64decode, b64encode
from steun_protocol.frames import Frame, FrameType, decode_frame, encode_frame
from steun_protocol.session import (
    Accept,
    Capability,
    Confirm,
    ConsoleHandshake,
    RecordType,
    SessionError,
    SignedOffer,
    record_layer,
)
from steun_protocol.sessionplane import Channel, Granted, Refused, Stop, decode_control

from .login import TechApi, TechError

log = logging.getLogger(__name__)

ChannelHandler = Callable[[bytes], Awaitable[None]]
#: How long the agent's user may take to answer the consent prompt (the agent's own limit is 60 s).
CONSENT_TIMEOUT = 90.0
HANDSHAKE_TIMEOUT = 130.0  # the relay keeps a ticket 120 s while the agent joins
MAX_RELAY_MESSAGE = 2 * 1024 * 1024


class SessionEnded(TechError):
    def __init__(self, reason: str, by: str = "agent") -> None:
        super().__init__(f"the session ended ({by}: {reason})")
        self.reason = reason
        self.by = by


class ConsentRefused(TechError):
    def __init__(self, missing: Iterable[Capability]) -> None:
        names = ", ".join(sorted(c.value for c in missing))
        super().__init__(f"the user did not allow: {names}")
        self.missing = frozenset(missing)


class ConsoleApi:
    """The ``/api/ws`` envelope: requests with increasing ids, one reply each."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next = 1

    async def call(self, kind: str, within: float = 60.0, **fields: Any) -> dict[str, Any]:
        ident = self._next
        self._next += 1
        await self._ws.send_str(json.dumps({"id": ident, "type": kind, **fields}))
        async with asyncio.timeout(within):
            while True:
                message = await self._ws.receive()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    raise TechError(f"the console API closed ({message.type.name})")
                data = json.loads(message.data)
                if data.get("id") == 0 and data.get("type") == "error":
                    raise TechError(f"the console API failed: {data['error'].get('code')}")
                if data.get("id") != ident or data.get("type") == "event":
                    continue
                if data["type"] == "error":
                    error = data["error"]
                    raise TechError(f"{kind}: {error.get('code')}: {error.get('message', '')}")
                result: dict[str, Any] = data["result"]
                return result

    async def close(self) -> None:
        await self._ws.close()


async def find_device(console: ConsoleApi, wanted: str) -> dict[str, Any]:
    """A device by id, or by hostname (case-insensitive; ``NAME.steun`` as OpenSSH's ``%h`` may give it)."""
    name = wanted.removesuffix(".steun")
    result = await console.call("devices/list", query=name)
    devices: list[dict[str, Any]] = result["devices"]
    by_id = [d for d in devices if d["id"] == name]
    if by_id:
        return by_id[0]
    named = [d for d in devices if d["hostname"].lower() == name.lower()]
    if not named:
        raise TechError(f"no device called {name!r}")
    if len(named) > 1:
        ids = ", ".join(d["id"] for d in named)
        raise TechError(f"several devices are called {name!r}; use one of their ids: {ids}")
    return named[0]


class TechSession:
    """One established session from the technician's side. Use :meth:`open`; always :meth:`close`."""

    def __init__(self, api: TechApi, ws: aiohttp.ClientWebSocketResponse, keys: Any, session_id: str) -> None:
        self.api = api
        self.session_id = session_id
        self.sas: str = keys.sas
        self._ws = ws
        self._sealer, self._opener = record_layer(keys, b64decode(session_id, size=16), "console")
        self._handlers: dict[int, ChannelHandler] = {}
        self._send_lock = asyncio.Lock()
        self.granted: frozenset[Capability] = frozenset()
        self.denied: frozenset[Capability] = frozenset()
        self._decided = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.ended_by = ""
        self.refused: list[Refused] = []
        self._reader: asyncio.Task[None] | None = None
        self._on_end: list[Callable[[], None]] = []

    # ---------------------------------------------------------------- opening

    @classmethod
    async def open(
        cls,
        api: TechApi,
        device: str,
        capabilities: Iterable[Capability],
        *,
        reason: str = "",
        on_sas: Callable[[str], None] | None = None,
    ) -> TechSession:
        console = ConsoleApi(await api.websocket("/api/ws"))
        try:
            found = await find_device(console, device)
            if not found.get("online"):
                raise TechError(f"{found['hostname']} ({found['id']}) is offline")
            technician_key = Ed25519PrivateKey.generate()
            handshake = ConsoleHandshake(technician_key)
            created = await console.call(
                "session/request",
                device_id=found["id"],
                capabilities=[Capability(c).value for c in capabilities],
                technician_key=b64encode(handshake.technician_public),
                console_commitment=b64encode(handshake.commitment),
                reason=reason[:256],
            )
        finally:
            await console.close()
        signed = msgspec.convert(created["offer"], SignedOffer)
        ws = await api.websocket(
            f"{created['relay_path']}?ticket={created['ticket']}", max_msg_size=MAX_RELAY_MESSAGE
        )
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                accept = msgspec.json.decode(await _handshake_frame(ws), type=Accept)
                reveal = handshake.receive_accept(signed, accept)
                await ws.send_bytes(
                    encode_frame(Frame(FrameType.DATA, Channel.CONTROL, msgspec.json.encode(reveal)))
                )
                confirm = msgspec.json.decode(await _handshake_frame(ws), type=Confirm)
                keys = handshake.receive_confirm(confirm)
        except (SessionError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            await ws.close()
            raise TechError(f"the end-to-end handshake failed: {exc}") from None
        except TimeoutError:
            await ws.close()
            raise TechError("the device did not join the session in time") from None
        except BaseException:
            await ws.close()
            raise
        session = cls(api, ws, keys, str(created["session_id"]))
        if on_sas is not None:
            on_sas(session.sas)
        session._reader = asyncio.create_task(session._read(), name="steun-tech-relay")
        return session

    async def wait_granted(self, needed: Iterable[Capability], within: float = CONSENT_TIMEOUT) -> None:
        """Wait for the user's decision; raise ConsentRefused if something ``needed`` was not allowed."""
        needed = frozenset(needed)
        try:
            async with asyncio.timeout(within):
                while not self._decided.is_set() or not needed <= self.granted:
                    if self.ended.is_set():
                        raise SessionEnded(self.end_reason, self.ended_by)
                    if self._decided.is_set() and not needed <= self.granted:
                        raise ConsentRefused(needed - self.granted)
                    waiter = asyncio.ensure_future(self._decided.wait())
                    ender = asyncio.ensure_future(self.ended.wait())
                    await asyncio.wait({waiter, ender}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    ender.cancel()
        except TimeoutError:
            raise TechError("the user did not answer the consent prompt in time") from None

    # ---------------------------------------------------------------- records

    def on_channel(self, channel: Channel, handler: ChannelHandler) -> None:
        self._handlers[int(channel)] = handler

    def on_end(self, callback: Callable[[], None]) -> None:
        self._on_end.append(callback)

    async def send(self, channel: Channel, payload: bytes, kind: RecordType = RecordType.DATA) -> None:
        """Seal one record and hand it to the relay (in order; waits while the socket is busy)."""
        if self.ended.is_set():
            raise SessionEnded(self.end_reason, self.ended_by)
        async with self._send_lock:
            sealed = self._sealer.seal(int(channel), kind, payload)
            try:
                await self._ws.send_bytes(encode_frame(Frame(FrameType.SEALED, int(channel), sealed)))
            except (ConnectionError, aiohttp.ClientError) as exc:
                self._finish("relay_closed", "error")
                raise SessionEnded("relay_closed", "error") from exc

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if message.type is not aiohttp.WSMsgType.BINARY:
                    break
                frame = decode_frame(message.data)
                if frame.type is FrameType.CLOSE:
                    self._finish(frame.payload.decode(errors="replace") or "closed", "agent")
                    return
                if frame.type is not FrameType.SEALED:
                    continue
                record = self._opener.open(frame.payload)
                if record.type is RecordType.CLOSE:
                    self._finish(record.payload[:256].decode(errors="replace") or "closed", "agent")
                    return
                if record.type is RecordType.CONTROL:
                    self._on_control(record.payload)
                    continue
                handler = self._handlers.get(record.channel)
                if handler is not None:
                    await handler(record.payload)
        except SessionError as exc:
            self._finish(str(exc.code), "error")
            return
        except Exception:
            log.exception("the session reader failed")
            self._finish("reader_failed", "error")
            return
        self._finish("relay_closed", "error")

    def _on_control(self, payload: bytes) -> None:
        try:
            message = decode_control(payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        if isinstance(message, Granted):
            self.granted = frozenset(message.capabilities)
            self.denied = frozenset(message.denied)
            self._decided.set()
        elif isinstance(message, Refused):
            self.refused.append(message)
        elif isinstance(message, Stop):
            self._finish(message.reason or "stopped", "agent")

    def _finish(self, reason: str, by: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason, self.ended_by = reason, by
        self.ended.set()
        for callback in self._on_end:
            try:
                callback()
            except Exception:
                log.exception("session end callback failed")

    # ---------------------------------------------------------------- ending

    async def close(self, reason: str = "technician closed the connection") -> None:
        """Stop: tell the agent (Stop, then CLOSE), close the relay socket."""
        if not self.ended.is_set():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self.send(
                        Channel.CONTROL, msgspec.json.encode(Stop(reason=reason[:256])), RecordType.CONTROL
                    )
                    await self.send(Channel.CONTROL, reason.encode()[:256], RecordType.CLOSE)
            self._finish(reason, "technician")
        with contextlib.suppress(Exception):
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


async def _handshake_frame(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    while True:
        message = await ws.receive()
        if message.type is not aiohttp.WSMsgType.BINARY:
            raise TechError("the relay closed before the device answered")
        frame = decode_frame(message.data)
        if frame.type is FrameType.CLOSE:
            raise TechError(f"the device refused the session: {frame.payload.decode(errors='replace')}")
        if frame.type is FrameType.DATA and frame.channel == Channel.CONTROL:
            if len(frame.payload) > 8192:
                raise TechError("handshake message too large")
            return frame.payload
