"""A protocol-level test agent: a real websocket client (``websockets``) around a ``steun_protocol.Connection``.

It speaks the control plane exactly as an agent would (TLS, SPKI pin read from the real handshake, signed
proofs), and it can also misbehave on purpose: send raw text or bytes, sign over the wrong pin, skip steps.
It is a real peer for the real server, not a mock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import websockets
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol import (
    Connection,
    ConnectionFailed,
    ErrorReceived,
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
from steun_protocol.inventory import Disk, Inventory, LiveMetrics
from steun_protocol.messages import Payload, Request
from websockets.asyncio.client import ClientConnection

from .waiting import scaled

DEFAULT_TIMEOUT = 10.0


class AgentError(Exception):
    """The server answered a request with an error (``code`` is the stable wire code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AgentClosed(Exception):
    """The connection ended before the answer came (``code``/``reason``: the websocket close frame)."""

    def __init__(self, code: int | None, reason: str, failure: ConnectionFailed | None = None) -> None:
        super().__init__(f"closed {code} {reason!r} {failure}")
        self.code = code
        self.reason = reason
        self.failure = failure


def insecure_client_context() -> ssl.SSLContext:
    """TLS without CA checks: like the agent, the test checks the server's SPKI pin itself."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_CLIENT_CONTEXT: ssl.SSLContext | None = None


def client_context() -> ssl.SSLContext:
    global _CLIENT_CONTEXT
    if _CLIENT_CONTEXT is None:
        _CLIENT_CONTEXT = insecure_client_context()
    return _CLIENT_CONTEXT


def spki_of(certificate_der: bytes) -> bytes:
    cert = x509.load_der_x509_certificate(certificate_der)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


@dataclasses.dataclass
class Identity:
    """An agent's Ed25519 identity and, once enrolled, its device id."""

    key: Ed25519PrivateKey = dataclasses.field(default_factory=Ed25519PrivateKey.generate)
    device_id: str | None = None

    @property
    def public_key(self) -> bytes:
        return proofs.public_key_bytes(self.key)


def sample_inventory(hostname: str = "pc-042", **changes: Any) -> Inventory:
    values: dict[str, Any] = {
        "hostname": hostname,
        "os_name": "Linux",
        "os_version": "6.1.0",
        "os_pretty": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1.0-18-amd64",
        "architecture": "x86_64",
        "cpu_model": "Test CPU",
        "cpu_cores": 4,
        "cpu_threads": 8,
        "memory_total": 16 * 2**30,
        "swap_total": 2**30,
        "boot_time": 1_700_000_000.0,
        "disks": [
            Disk(device="/dev/sda1", mountpoint="/", fstype="ext4", total=100, used=40, free=60),
        ],
    }
    values.update(changes)
    return Inventory(**values)


def sample_metrics(cpu: float = 12.5) -> LiveMetrics:
    return LiveMetrics(uptime=1234.0, cpu_percent=cpu, memory_percent=40.0, memory_used=2**30)


class AgentClient:
    """One control-plane connection. Use :func:`connect_agent` to open it."""

    def __init__(self, ws: ClientConnection, *, spki: bytes) -> None:
        self.ws = ws
        #: SHA-256 of the SPKI of the certificate the server presented in this TLS handshake.
        self.spki = spki
        self.conn = Connection(AGENT_API, Side.CLIENT)
        self.nonce: bytes | None = None
        self.failure: ConnectionFailed | None = None
        self._waiters: dict[int, asyncio.Future[Any]] = {}
        #: Requests the server sent to this agent (``diagnostics/run``...), answered with ``reply``.
        self.server_requests: asyncio.Queue[Request] = asyncio.Queue()
        self._closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="test-agent-reader")

    # -- plumbing -------------------------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    self.conn.receive_text(message)
                else:
                    self.conn.receive_bytes(message)
                for event in self.conn.events_received():
                    if isinstance(event, ResultReceived):
                        self._settle(event.request.id, event.result)
                    elif isinstance(event, ErrorReceived):
                        self._settle(event.request.id, AgentError(event.code, event.message))
                    elif isinstance(event, ConnectionFailed):
                        self.failure = event
                    elif isinstance(event, RequestReceived):
                        self.server_requests.put_nowait(event.request)
                await self._flush()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._closed.set()
            for future in self._waiters.values():
                if not future.done():
                    future.set_exception(self._closed_error())
            self._waiters.clear()

    def _settle(self, request_id: int, value: Any) -> None:
        future = self._waiters.pop(request_id, None)
        if future is None or future.done():
            return
        if isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)

    def _closed_error(self) -> AgentClosed:
        return AgentClosed(self.close_code, self.close_reason, self.failure)

    async def _flush(self) -> None:
        for data in self.conn.data_to_send():
            await self.ws.send(data)

    @property
    def close_code(self) -> int | None:
        frame = self.ws.protocol.close_rcvd
        return frame.code if frame is not None else None

    @property
    def close_reason(self) -> str:
        frame = self.ws.protocol.close_rcvd
        return frame.reason if frame is not None else ""

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # -- requests -------------------------------------------------------------------------------------------

    async def request(self, request: Request, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Send a request and wait for its result; raises AgentError on an error reply."""
        if self.closed:
            raise self._closed_error()
        sent = self.conn.send_request(request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[sent.id] = future
        try:
            await self._flush()
        except websockets.ConnectionClosed:
            self._waiters.pop(sent.id, None)
            future.cancel()
            raise self._closed_error() from None
        async with asyncio.timeout(scaled(timeout)):
            return await future

    async def next_server_request(self, *, timeout: float = DEFAULT_TIMEOUT) -> Request:
        """Wait for the next request the server sends to this agent."""
        async with asyncio.timeout(scaled(timeout)):
            return await self.server_requests.get()

    async def reply(self, request_id: int, result: Payload) -> None:
        """Answer a server request with a result."""
        self.conn.send_result(request_id, result)
        await self._flush()

    async def reply_error(self, request_id: int, code: str, message: str = "") -> None:
        self.conn.send_error(request_id, code, message)
        await self._flush()

    async def hello(self, versions: list[int] | None = None) -> HelloResult:
        result: HelloResult = await self.request(
            Hello(versions=versions or [1], software="steun-test-agent/0")
        )
        self.nonce = proofs.b64decode(result.nonce, size=proofs.NONCE_SIZE)
        return result

    async def enroll(
        self,
        token: str | proofs.EnrollmentToken,
        identity: Identity,
        *,
        hostname: str = "pc-042",
        os: str = "Linux",
        spki: bytes | None = None,
        check_pins: bool = True,
    ) -> EnrollResult:
        """Redeem ``token`` (a full ``st1.…`` string or its parsed form) for ``identity`` as an agent does.

        ``spki`` overrides the pin signed into the proof (to test channel binding).
        """
        parsed = token if isinstance(token, proofs.EnrollmentToken) else proofs.EnrollmentToken.parse(token)
        if check_pins:
            assert proofs.pins_equal(parsed.spki_sha256, self.spki), (
                "the server's TLS key is not the pinned one"
            )
        assert self.nonce is not None, "hello first"
        payload = proofs.agent_proof_payload(self.nonce, spki or self.spki, identity.public_key)
        request = Enroll(
            token=proofs.b64encode(parsed.secret),
            public_key=proofs.b64encode(identity.public_key),
            hostname=hostname,
            os=os,
            signature=proofs.b64encode(identity.key.sign(payload)),
        )
        result: EnrollResult = await self.request(request)
        org_proof = proofs.enroll_proof_payload(self.nonce, result.device_id, identity.public_key)
        if not proofs.verify(parsed.org_public_key, proofs.b64decode(result.org_signature), org_proof):
            raise AssertionError("the server's enrollment proof does not verify against the org key")
        identity.device_id = result.device_id
        return result

    async def auth(
        self, identity: Identity, *, spki: bytes | None = None, device_id: str | None = None
    ) -> AuthResult:
        assert self.nonce is not None, "hello first"
        device = device_id or identity.device_id
        assert device is not None, "enroll first"
        payload = proofs.agent_proof_payload(self.nonce, spki or self.spki, device.encode("ascii"))
        signature = proofs.b64encode(identity.key.sign(payload))
        result: AuthResult = await self.request(Auth(device_id=device, signature=signature))
        return result

    async def heartbeat(self, metrics: LiveMetrics | None = None) -> None:
        await self.request(Heartbeat(metrics=metrics or sample_metrics()))

    async def send_inventory(self, inventory: Inventory) -> None:
        await self.request(InventoryReport(inventory=inventory))

    # -- misbehaving on purpose -----------------------------------------------------------------------------

    async def send_raw(self, data: str | bytes) -> None:
        """Put bytes on the wire that bypass the protocol object (hostile input)."""
        await self.ws.send(data)

    # -- ending ---------------------------------------------------------------------------------------------

    async def wait_closed(self, *, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Wait until the server closes the connection; returns the close code it sent."""
        async with asyncio.timeout(scaled(timeout)):
            await self._closed.wait()
            await self.ws.wait_closed()
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def _ws_url(url: str) -> str:
    ws_url = url if url.startswith("ws") else url.replace("https://", "wss://").replace("http://", "ws://")
    if not ws_url.endswith("/agent/ws"):
        ws_url = ws_url.rstrip("/") + "/agent/ws"
    return ws_url


async def connect_raw(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> ClientConnection:
    """A bare websocket to /agent/ws with no protocol object: the test writes and reads JSON itself."""
    return await websockets.connect(
        _ws_url(url),
        ssl=client_context(),
        compression=None,
        max_size=None,
        open_timeout=scaled(timeout),
        ping_interval=None,
        close_timeout=scaled(2),
        proxy=None,
    )


async def connect_agent(
    url: str,
    *,
    origin: str | None = None,
    max_size: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> AgentClient:
    """Open ``wss://…/agent/ws`` (``url`` is the server's https base URL or the full ws URL)."""
    ws_url = _ws_url(url)
    headers = {"Origin": origin} if origin is not None else None
    ssl_context = client_context() if ws_url.startswith("wss://") else None
    ws = await websockets.connect(
        ws_url,
        ssl=ssl_context,
        additional_headers=headers,
        compression=None,
        max_size=max_size,
        open_timeout=scaled(timeout),
        ping_interval=None,
        close_timeout=scaled(2),
        proxy=None,
    )
    spki = b"\0" * 32
    ssl_object = ws.transport.get_extra_info("ssl_object")
    if ssl_object is not None:
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            spki = spki_of(der)
    return AgentClient(ws, spki=spki)


@contextlib.asynccontextmanager
async def agent(url: str, **kwargs: Any) -> AsyncIterator[AgentClient]:
    client = await connect_agent(url, **kwargs)
    try:
        yield client
    finally:
        await client.close()


async def enroll_new(url: str, token: str, *, hostname: str = "pc-042", os: str = "Linux") -> Identity:
    """Enroll a fresh identity with ``token`` on its own connection, as ``steun-agent enroll`` does."""
    identity = Identity()
    async with agent(url) as client:
        await client.hello()
        await client.enroll(token, identity, hostname=hostname, os=os)
    return identity


async def online_agent(url: str, identity: Identity) -> AgentClient:
    """Connect, hello and authenticate: an agent that is online until closed."""
    client = await connect_agent(url)
    try:
        await client.hello()
        await client.auth(identity)
    except BaseException:
        await client.close()
        raise
    return client


class RunningAgent:
    """An agent that stays connected: it heartbeats and reconnects (with a short backoff) when dropped."""

    def __init__(self, url: str, identity: Identity, *, inventory: Inventory | None = None) -> None:
        self.url = url
        self.identity = identity
        self.inventory = inventory
        self.connects = 0
        self.client: AgentClient | None = None
        self.last_error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> RunningAgent:
        self._task = asyncio.create_task(self._run(), name="test-running-agent")
        return self

    @property
    def connected(self) -> bool:
        return self.client is not None and not self.client.closed

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                client = await online_agent(self.url, self.identity)
            except (OSError, AgentError, AgentClosed, TimeoutError, websockets.WebSocketException) as exc:
                self.last_error = exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            delay = 0.05
            self.client = client
            self.connects += 1
            started = time.monotonic()
            try:
                if self.inventory is not None:
                    await client.send_inventory(self.inventory)
                while not client.closed:
                    await client.heartbeat()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await client._closed.wait()
            except (AgentError, AgentClosed, websockets.ConnectionClosed, TimeoutError) as exc:
                self.last_error = exc
            finally:
                await client.close()
                self.client = None
            if time.monotonic() - started < 0.05:
                await asyncio.sleep(delay)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None:
            await self.client.close()
