"""The agent control plane (``/agent/ws``): pumps bytes between aiohttp and a ``steun_protocol.Connection``.

The handler only moves data between the socket and the sans-I/O connection and dispatches its typed events:
``hello`` → ``enroll`` | ``auth`` → ``heartbeat`` / ``inventory``. Limits: ``max_msg_size`` from the API,
2 KiB per message until authenticated, a deadline to authenticate, and 3 missed heartbeats at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from typing import Any

import msgspec
from aiohttp import WSMsgType, web
from steun_protocol import (
    Connection,
    ConnectionFailed,
    ErrorCode,
    ErrorReceived,
    FrameReceived,
    RequestReceived,
    ResultReceived,
    Side,
)
from steun_protocol import auth as proofs
from steun_protocol.control import (
    AGENT_API,
    Auth,
    AuthResult,
    Enroll,
    EnrollResult,
    Heartbeat,
    Hello,
    HelloResult,
    InventoryReport,
)
from steun_protocol.errors import ProtocolError
from steun_protocol.inventory import inventory_digest
from steun_protocol.messages import Empty, Payload, Request
from steun_protocol.sessionplane import SupportRedeem, SupportRedeemed

from ..audit import AGENT_ENROLLED, ENROLLMENT_TOKEN_USED
from . import store
from .hooks import QUICK_SUPPORT_GROUP, RedeemRefused
from .presence import Change
from .service import FLEET, AgentRequestError, AgentRequestRefused, FleetService

log = logging.getLogger(__name__)

AGENT_AUTH_FAILED = "agent.auth_failed"

#: Largest message accepted before the agent is authenticated (hello, enroll and auth are all smaller).
PRE_AUTH_MAX_SIZE = max(Hello.max_size, Enroll.max_size, Auth.max_size, SupportRedeem.max_size)
#: Requests refused with ``auth_required`` before the connection is closed.
MAX_REFUSALS_BEFORE_AUTH = 4
#: Seconds to wait for the peer's close frame when we close (aiohttp's default is 10).
CLOSE_TIMEOUT = 5.0

# Websocket close codes (RFC 6455 and the 4000-4999 private range; listed in docs/protocol.md).
CLOSE_POLICY = 1008
#: Another connection authenticated as the same device; the agent should not fight for its slot.
CLOSE_REPLACED = 4409
#: The agent did not authenticate, or stopped sending heartbeats, in time.
CLOSE_TIMEOUT_CODE = 4408
#: A support code was refused because of the rate limit: come back after the ``retry_after`` in the message.
CLOSE_TRY_AGAIN_LATER = 1013
#: A quick-support agent learns no heartbeat interval (``SupportRedeemed`` has none), so it heartbeats at the
#: protocol's default; its connection is given at least three of those before it counts as gone.
QUICK_SUPPORT_SILENCE = 3 * 30.0


class AgentSession:
    """One agent websocket, from upgrade to close."""

    def __init__(self, service: FleetService, ws: web.WebSocketResponse, remote: str) -> None:
        self.service = service
        self.ws = ws
        self.remote = remote
        self.conn = Connection(AGENT_API, Side.SERVER)
        self._nonce: bytes | None = None
        #: After ``enroll`` the nonce stays good for one ``auth`` of the same device (to learn the interval).
        self._enrolled_id: str | None = None
        self._device: store.DeviceRecord | None = None
        self._inventory_digest: str | None = None
        self._refusals = 0
        #: True for a quick-support connection (an ephemeral device that lives as long as this socket).
        self._quick = False
        self._send_lock = asyncio.Lock()
        #: Our server → agent requests awaiting the agent's reply (see ``request``).
        self._waiters: dict[int, asyncio.Future[Payload]] = {}

    # -- AgentLink ----------------------------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        return self._device.id if self._device is not None else ""

    @property
    def authenticated(self) -> bool:
        return self._device is not None

    @property
    def quick_support(self) -> bool:
        return self._quick

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=reason.encode("utf-8")[:120])

    async def request(self, request: Request, *, timeout: float) -> Payload:  # noqa: ASYNC109
        """Send a server → agent request and wait for its result.

        Raises :class:`AgentRequestError` when the agent answers with an error, ``ConnectionError`` when the
        connection ends first, ``TimeoutError`` after ``timeout`` seconds.
        """
        if self.ws.closed or self.conn.failure is not None or not self.authenticated:
            raise ConnectionError("the agent connection is closed")
        sent = self.conn.send_request(request)
        future: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
        self._waiters[sent.id] = future
        try:
            if not await self._flush():
                raise ConnectionError("the agent connection is closed")
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._waiters.pop(sent.id, None)

    def _settle(self, request_id: int, outcome: Payload | BaseException) -> None:
        future = self._waiters.pop(request_id, None)
        if future is None or future.done():
            return  # answered after its waiter gave up
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    def _fail_waiters(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for future in waiters.values():
            if not future.done():
                future.set_exception(ConnectionError("the agent connection closed"))

    # -- the pump -----------------------------------------------------------------------------------------

    async def run(self) -> None:
        settings = self.service.settings
        loop = asyncio.get_running_loop()
        auth_deadline = loop.time() + settings.auth_timeout
        try:
            while not self.ws.closed:
                if self._quick:
                    timeout = max(settings.offline_after, QUICK_SUPPORT_SILENCE)
                elif self.authenticated:
                    timeout = settings.offline_after
                else:
                    timeout = auth_deadline - loop.time()
                if timeout <= 0:
                    await self._time_out()
                    return
                try:
                    message = await self.ws.receive(timeout=timeout)
                except TimeoutError:
                    await self._time_out()
                    return
                if message.type is WSMsgType.TEXT:
                    data: bytes = message.data if isinstance(message.data, bytes) else message.data.encode()
                    if not self.authenticated and len(data) > PRE_AUTH_MAX_SIZE:
                        self.conn.fail(
                            ErrorCode.MESSAGE_TOO_LARGE,
                            f"messages before authentication are limited to {PRE_AUTH_MAX_SIZE} bytes",
                        )
                    else:
                        self.conn.receive_text(data)
                elif message.type is WSMsgType.BINARY:
                    self.conn.receive_bytes(message.data)
                else:
                    return  # closed, closing or a websocket-level error (aiohttp has answered it)
                await self._handle_events()
                if not await self._flush():
                    return
                if self.conn.failure is not None:
                    await self.close(self.conn.failure.close_code, self.conn.failure.code)
                    return
        finally:
            self._fail_waiters()
            if self.authenticated:
                self._went_offline()
                for hook in self.service.disconnect_hooks:
                    try:
                        hook(self)
                    except Exception:
                        log.exception("agent disconnect hook failed")

    async def _time_out(self) -> None:
        if self.authenticated:
            message = f"no message for {self.service.settings.offline_after:g} s (missed heartbeats)"
        else:
            message = f"not authenticated within {self.service.settings.auth_timeout:g} s"
        self.conn.fail(ErrorCode.TIMEOUT, message)
        await self._flush()
        await self.close(CLOSE_TIMEOUT_CODE, "timeout")

    async def _flush(self) -> bool:
        # One flusher at a time: the receive loop and ``request`` both flush, and a second flusher that took
        # newer messages while the first waited on a slow socket would overtake it (ids must increase).
        async with self._send_lock:
            try:
                for data in self.conn.data_to_send():
                    if isinstance(data, str):
                        await self.ws.send_str(data)
                    else:
                        await self.ws.send_bytes(data)
            except (ConnectionError, RuntimeError):
                return False  # the peer is gone; the receive loop ends
            return True

    async def _handle_events(self) -> None:
        for event in self.conn.events_received():
            if isinstance(event, RequestReceived):
                await self._dispatch(event.request)
            elif isinstance(event, ResultReceived):
                self._settle(event.request.id, event.result)
            elif isinstance(event, ErrorReceived):
                self._settle(event.request.id, AgentRequestError(event.code, event.message))
            elif isinstance(event, FrameReceived):
                self.conn.fail(ErrorCode.BAD_FRAME, "the control plane carries no binary frames")
            elif isinstance(event, ConnectionFailed):
                log.info("agent connection from %s failed: %s %s", self.remote, event.code, event.message)
            # events: the server opens no subscriptions on agents, so Connection refuses them itself
            if self.conn.failure is not None:
                return

    async def _dispatch(self, request: Request) -> None:
        if isinstance(request, Hello):
            await self._hello(request)
        elif isinstance(request, Enroll):
            await self._enroll(request)
        elif isinstance(request, Auth):
            await self._auth(request)
        elif isinstance(request, SupportRedeem):
            await self._redeem(request)
        elif not self.authenticated:
            self._refusals += 1
            self.conn.send_error(request.id, ErrorCode.AUTH_REQUIRED, "authenticate (auth or enroll) first")
            if self._refusals >= MAX_REFUSALS_BEFORE_AUTH:
                self.conn.fail(ErrorCode.AUTH_REQUIRED, "too many requests before authentication")
        elif isinstance(request, Heartbeat):
            self._heartbeat(request)
        elif isinstance(request, InventoryReport):
            await self._inventory(request)
        else:
            await self._feature_request(request)

    async def _feature_request(self, request: Request) -> None:
        """An agent → server request another feature serves (``FleetService.agent_handlers``)."""
        handler = self.service.agent_handlers.get(type(request))
        try:
            if handler is None:
                self.conn.send_error(
                    request.id, ErrorCode.UNKNOWN_TYPE, f"{request.type_name()} is not served here"
                )
                return
            try:
                result = await handler(self, request)
            except AgentRequestRefused as exc:
                self.conn.send_error(request.id, exc.code, exc.message)
                return
            except Exception:
                log.exception("serving %s from %s failed", request.type_name(), self.device_id)
                self.conn.send_error(request.id, ErrorCode.INTERNAL, "internal error")
                return
            self.conn.send_result(request.id, result)
        except ProtocolError:
            pass  # Connection refused it already (too large, wrong sender) or the connection failed

    # -- handshake ----------------------------------------------------------------------------------------

    async def _hello(self, request: Hello) -> None:
        if self._nonce is not None or self.authenticated:
            self.conn.send_error(request.id, ErrorCode.INVALID_MESSAGE, "hello was already done")
            return
        assert self.conn.version is not None  # Connection negotiated it before handing the hello over
        self._nonce = os.urandom(proofs.NONCE_SIZE)
        result = HelloResult(
            version=self.conn.version, nonce=proofs.b64encode(self._nonce), server_time=time.time()
        )
        self.conn.send_result(request.id, result)

    def _take_nonce(self) -> bytes | None:
        """The nonce is good for one proof: a failed attempt needs a new connection."""
        nonce, self._nonce = self._nonce, None
        return nonce

    async def _refuse_proof(self, request: Request, code: ErrorCode | str, message: str) -> None:
        self.conn.send_error(request.id, code, message)
        await self._flush()
        await self.close(CLOSE_POLICY, str(code))

    async def _enroll(self, request: Enroll) -> None:
        if self.authenticated:
            self.conn.send_error(
                request.id, ErrorCode.INVALID_MESSAGE, "this connection is already authenticated"
            )
            return
        nonce = self._take_nonce()
        service = self.service
        if nonce is None:
            await self._refuse_proof(request, ErrorCode.AUTH_FAILED, "no challenge left on this connection")
            return
        try:
            token_hash = proofs.secret_hash(request.token)
        except ValueError:
            await self._refuse_proof(
                request,
                ErrorCode.TOKEN_INVALID,
                "this is not an enrollment token secret; copy the token again",
            )
            return
        try:
            public_key = proofs.b64decode(request.public_key, size=32)
            signature = proofs.b64decode(request.signature, size=64)
        except ValueError as exc:
            await self._refuse_proof(request, ErrorCode.INVALID_MESSAGE, f"public key or signature: {exc}")
            return
        payload = proofs.agent_proof_payload(nonce, service.keys.spki_sha256, public_key)
        if not proofs.verify(public_key, signature, payload):
            await self._audit_auth_failure(None, "bad enrollment signature")
            await self._refuse_proof(
                request,
                ErrorCode.AUTH_FAILED,
                "the enrollment signature does not verify (wrong key or server pin)",
            )
            return
        now = time.time()
        new = store.NewDevice(public_key=request.public_key, hostname=request.hostname, os=request.os)
        try:
            device = await store.redeem_token(service.db, secret_hash=token_hash, now=now, device=new)
        except store.FleetStoreError as exc:
            await self._refuse_proof(request, exc.code, exc.message)
            return
        org_signature = service.keys.sign(proofs.enroll_proof_payload(nonce, device.id, public_key))
        result = EnrollResult(
            device_id=device.id, group=device.group, org_signature=proofs.b64encode(org_signature)
        )
        self.conn.send_result(request.id, result)
        await service.emit(
            ENROLLMENT_TOKEN_USED,
            actor=f"device:{device.id}",
            source=self.remote,
            data={"token_hash_prefix": token_hash[:12], "device_id": device.id, "group": device.group},
        )
        await service.emit(
            AGENT_ENROLLED,
            actor=f"device:{device.id}",
            source=self.remote,
            data={
                "device_id": device.id,
                "hostname": device.hostname,
                "os": device.os,
                "group": device.group,
            },
        )
        service.presence.publish(device.id, Change.ENROLLED)
        self._nonce = nonce
        self._enrolled_id = device.id
        self._went_online(device, inventory_digest=None)

    async def _auth(self, request: Auth) -> None:
        service = self.service
        if self.authenticated and request.device_id != self._enrolled_id:
            self.conn.send_error(
                request.id, ErrorCode.INVALID_MESSAGE, "this connection is already authenticated"
            )
            return
        nonce = self._take_nonce()
        if nonce is None:
            await self._refuse_proof(request, ErrorCode.AUTH_FAILED, "no challenge left on this connection")
            return
        try:
            signature = proofs.b64decode(request.signature, size=64)
        except ValueError:
            signature = b""
        found = await store.get_device_for_auth(service.db, request.device_id)
        payload = proofs.agent_proof_payload(
            nonce, service.keys.spki_sha256, request.device_id.encode("ascii")
        )
        if found is None or not proofs.verify(
            proofs.b64decode(found[0].public_key, size=32), signature, payload
        ):
            await self._audit_auth_failure(
                request.device_id, "unknown device" if found is None else "bad signature"
            )
            await self._refuse_proof(request, ErrorCode.AUTH_FAILED, "unknown device or wrong signature")
            return
        device, digest = found
        if device.revoked:
            await self._audit_auth_failure(device.id, "revoked")
            await self._refuse_proof(
                request,
                ErrorCode.DEVICE_REVOKED,
                "this device was revoked by an administrator; enroll it again",
            )
            return
        self._enrolled_id = None
        if not self.authenticated:
            self._went_online(device, inventory_digest=digest)
        self.conn.send_result(request.id, AuthResult(heartbeat_interval=service.settings.heartbeat_interval))

    async def _redeem(self, request: SupportRedeem) -> None:
        """Quick support: a fresh key proves itself like ``enroll``, then the code makes it a device."""
        service = self.service
        desk = service.support_desk
        if self.authenticated:
            self.conn.send_error(
                request.id, ErrorCode.INVALID_MESSAGE, "this connection is already authenticated"
            )
            return
        if desk is None:
            await self._refuse_proof(request, ErrorCode.UNKNOWN_TYPE, "this server offers no quick support")
            return
        nonce = self._take_nonce()
        if nonce is None:
            await self._refuse_proof(request, ErrorCode.AUTH_FAILED, "no challenge left on this connection")
            return
        try:
            public_key = proofs.b64decode(request.public_key, size=32)
            signature = proofs.b64decode(request.signature, size=64)
        except ValueError as exc:
            await self._refuse_proof(request, ErrorCode.INVALID_MESSAGE, f"public key or signature: {exc}")
            return
        # the proof comes first: a request that cannot sign learns nothing about codes and costs no attempt
        payload = proofs.agent_proof_payload(nonce, service.keys.spki_sha256, public_key)
        if not proofs.verify(public_key, signature, payload):
            await self._audit_auth_failure(None, "bad support-code signature")
            await self._refuse_proof(
                request, ErrorCode.AUTH_FAILED, "the signature does not verify (wrong key or server pin)"
            )
            return
        if service.quick.full():
            await self._refuse_proof(request, ErrorCode.OVERLOADED, "too many quick-support devices")
            return
        try:
            # synchronous: nothing runs between using up the code and the device going online
            grant = desk.claim(request.code, address=self.remote)
        except RedeemRefused as exc:
            self.conn.send_error(request.id, exc.code, exc.message)
            await self._flush()
            await desk.refused(exc, address=self.remote)
            close_code = CLOSE_TRY_AGAIN_LATER if exc.code == ErrorCode.THROTTLED else CLOSE_POLICY
            await self.close(close_code, exc.code)
            return
        now = time.time()
        device = store.DeviceRecord(
            id=store.new_device_id(),
            public_key=request.public_key,
            group=QUICK_SUPPORT_GROUP,
            hostname=request.hostname.strip() or "?",
            os=request.os,
            enrolled_at=now,
            last_seen=now,
            revoked=False,
        )
        service.quick.add(device, owner=grant.owner)
        self._quick = True
        self.conn.send_result(
            request.id,
            SupportRedeemed(
                device_id=device.id, org_name=grant.org_name, technician_name=grant.technician_name
            ),
        )
        self._went_online(device, inventory_digest=None)
        await desk.redeemed(grant, device, address=self.remote)

    async def _audit_auth_failure(self, device_id: str | None, reason: str) -> None:
        key = f"device:{device_id}" if device_id else f"address:{self.remote}"
        suppressed = self.service.auth_failures.admit(key)
        if suppressed is None:
            return
        data: dict[str, Any] = {"reason": reason, "suppressed_since_last": suppressed}
        if device_id:
            data["device_id"] = device_id
        await self.service.emit(AGENT_AUTH_FAILED, actor=key, source=self.remote, data=data)

    def _went_online(self, device: store.DeviceRecord, *, inventory_digest: str | None) -> None:
        self._device = device
        self._inventory_digest = inventory_digest
        service = self.service
        now = time.time()
        previous = service.presence.set_online(self, now=now)
        if not self._quick:
            service.last_seen.touch(device.id, now)
        if previous is not None:
            # the newest connection wins (the old one is usually a half-dead socket after a network change)
            task = asyncio.create_task(previous.close(CLOSE_REPLACED, "replaced by a newer connection"))
            service.track(task)

    def _went_offline(self) -> None:
        service = self.service
        if self._quick:
            # an ephemeral device: gone with its connection (the device list shows it removed)
            service.quick.remove(self.device_id)
            service.presence.set_offline(self)
            if service.support_desk is not None:
                service.support_desk.released(self.device_id)
            return
        last = service.presence.last_seen(self.device_id) or time.time()
        if service.presence.set_offline(self):
            service.last_seen.touch(self.device_id, last)

    # -- after authentication -------------------------------------------------------------------------------

    def _heartbeat(self, request: Heartbeat) -> None:
        now = time.time()
        self.service.presence.update_metrics(self, request.metrics, now=now)
        if not self._quick:
            self.service.last_seen.touch(self.device_id, now)
        self.conn.send_result(request.id, Empty())

    async def _inventory(self, request: InventoryReport) -> None:
        inventory = request.inventory
        if not inventory.hostname.strip():
            self.conn.send_error(
                request.id, ErrorCode.INVALID_MESSAGE, "inventory.hostname must not be empty"
            )
            return
        now = time.time()
        self.service.presence.touch(self, now=now)
        if self._quick:
            self._quick_inventory(request, now)
            return
        self.service.last_seen.touch(self.device_id, now)
        digest = inventory_digest(inventory)
        if digest != self._inventory_digest:
            text = msgspec.json.encode(inventory).decode("utf-8")
            wrote = await store.save_inventory(
                self.service.db,
                self.device_id,
                json_text=text,
                digest=digest,
                now=now,
                hostname=inventory.hostname.strip(),
            )
            self._inventory_digest = digest
            if wrote:
                self.service.presence.publish(self.device_id, Change.INVENTORY)
        self.conn.send_result(request.id, Empty())

    def _quick_inventory(self, request: InventoryReport, now: float) -> None:
        """A quick-support device keeps its inventory in memory only (it has no row to hang it on)."""
        quick = self.service.quick.get(self.device_id)
        if quick is not None:
            quick.inventory = request.inventory
            quick.inventory_updated_at = now
            hostname = request.inventory.hostname.strip()
            if hostname != quick.record.hostname:
                quick.record = dataclasses.replace(quick.record, hostname=hostname)
            self.service.presence.publish(self.device_id, Change.INVENTORY)
        self.conn.send_result(request.id, Empty())


async def agent_websocket(request: web.Request) -> web.StreamResponse:
    """Serve one agent (the route guard has already refused any request with a browser ``Origin``)."""
    service = request.app[FLEET]
    ws = web.WebSocketResponse(
        max_msg_size=AGENT_API.max_message_size,
        heartbeat=service.settings.ping_interval,
        autoping=True,
        compress=False,
        timeout=CLOSE_TIMEOUT,
        decode_text=False,
    )
    await ws.prepare(request)
    session = AgentSession(service, ws, request.remote or "")
    service.connections.add(session)
    try:
        await session.run()
    except Exception:
        log.exception("agent connection from %s crashed", session.remote)
        await session.close(1011, "internal error")
    finally:
        service.connections.discard(session)
        if not ws.closed:
            await session.close(1000, "")
    return ws
