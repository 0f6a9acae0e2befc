"""Faithful fakes for agent unit tests: a backend with settable facts and a small control-plane server.

The fake server speaks the real protocol through ``steun_protocol.Connection`` over real TLS websockets and
checks the same proofs as the real server; integration tests (tests/integration) use the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from steun_protocol import Connection, ErrorCode, ErrorReceived, RequestReceived, ResultReceived, Side
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
from steun_protocol.inventory import Disk, Inventory, LiveMetrics, Package
from steun_protocol.messages import Empty, Request
from websockets.asyncio.server import Server, ServerConnection
from websockets.exceptions import ConnectionClosed

# ---------------------------------------------------------------------------------------------- backend


class FakeBackend:
    """A backend whose facts the test sets; counts its calls. Methods block like the real ones may."""

    name = "fake"

    def __init__(self) -> None:
        self.hostname = "fake-host"
        self.packages = [Package(name="steun-agent", version="1.0")]
        self.cpu_percent = 12.5
        self.inventory_calls = 0
        self.metrics_calls = 0
        self.fail_inventory = False

    def inventory(self) -> Inventory:
        self.inventory_calls += 1
        if self.fail_inventory:
            raise OSError("simulated failure")
        return Inventory(
            hostname=self.hostname,
            os_name="Linux",
            os_version="12",
            os_pretty="Debian GNU/Linux 12 (bookworm)",
            kernel="6.1.0",
            architecture="x86_64",
            cpu_model="Fake CPU",
            cpu_cores=2,
            cpu_threads=4,
            memory_total=8 << 30,
            swap_total=0,
            boot_time=1_700_000_000.0,
            disks=[Disk(device="/dev/vda", mountpoint="/", fstype="ext4", total=100, used=40, free=60)],
            packages=list(self.packages),
        )

    def live_metrics(self) -> LiveMetrics:
        self.metrics_calls += 1
        return LiveMetrics(
            uptime=100.0, cpu_percent=self.cpu_percent, memory_percent=40.0, memory_used=1 << 30
        )


# ---------------------------------------------------------------------------------------------- TLS


@dataclass
class Certificate:
    cert_pem: bytes
    key_pem: bytes
    der: bytes

    @property
    def spki_sha256(self) -> bytes:
        return proofs.spki_sha256(self.der)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert.write_bytes(self.cert_pem)
            key.write_bytes(self.key_pem)
            ctx.load_cert_chain(cert, key)
        return ctx


def make_certificate(name: str = "localhost") -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        der=cert.public_bytes(serialization.Encoding.DER),
    )


# ---------------------------------------------------------------------------------------------- server


@dataclass
class Device:
    id: str
    public_key: bytes
    group: str
    revoked: bool = False


@dataclass
class FakeServer:
    """The control plane of a Steun server, in memory. ``start()`` again after ``stop()`` keeps the port."""

    heartbeat_interval: float = 0.2
    certificate: Certificate = field(default_factory=make_certificate)
    org_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    #: When set, the enroll result is signed with this key instead of the org key (a forged server).
    forge_org_key: Ed25519PrivateKey | None = None
    devices: dict[str, Device] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # sha256(secret) hex -> "unused" | "used"
    inventories: dict[str, list[Inventory]] = field(default_factory=dict)
    heartbeats: dict[str, list[LiveMetrics]] = field(default_factory=dict)
    online: dict[str, ServerConnection] = field(default_factory=dict)
    #: Replies (ResultReceived / ErrorReceived) to requests the server sent with ``ask``.
    replies: list[object] = field(default_factory=list)
    _conns: dict[str, Connection] = field(default_factory=dict)
    connections: int = 0
    auths: int = 0
    port: int = 0
    _server: Server | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await websockets.serve(
            self._handle, "127.0.0.1", self.port, ssl=self.certificate.server_context(), compression=None
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.online.clear()

    def create_token(self) -> proofs.EnrollmentToken:
        token = proofs.EnrollmentToken(
            secret=os.urandom(proofs.TOKEN_SECRET_SIZE),
            spki_sha256=self.certificate.spki_sha256,
            org_public_key=proofs.public_key_bytes(self.org_key),
        )
        self.tokens[token.secret_hash] = "unused"
        return token

    async def ask(self, device_id: str, request: Request) -> None:
        """Send a server-to-agent request on the device's connection; its reply lands in ``replies``."""
        conn, ws = self._conns[device_id], self.online[device_id]
        conn.send_request(request)
        for data in conn.data_to_send():
            await ws.send(data)

    async def kick(self, device_id: str, code: int = 1001, reason: str = "") -> None:
        ws = self.online.get(device_id)
        if ws is not None:
            await ws.close(code, reason)

    # ------------------------------------------------------------------ one connection

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        conn = Connection(AGENT_API, Side.SERVER)
        nonce = b""
        device: Device | None = None
        try:
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    conn.receive_text(message) if isinstance(message, str) else conn.receive_bytes(message)
                    close: tuple[int, str] | None = None
                    for event in conn.events_received():
                        if isinstance(event, ResultReceived | ErrorReceived):
                            self.replies.append(event)
                        if not isinstance(event, RequestReceived):
                            continue
                        request = event.request
                        if isinstance(request, Hello):
                            nonce = os.urandom(32)
                            conn.send_result(
                                request.id,
                                HelloResult(
                                    version=conn.version or 1,
                                    nonce=proofs.b64encode(nonce),
                                    server_time=time.time(),
                                ),
                            )
                        elif isinstance(request, Enroll):
                            close = self._enroll(conn, request, nonce)
                        elif isinstance(request, Auth):
                            device, close = self._auth(conn, request, nonce)
                            if device is not None:
                                self.online[device.id] = ws
                                self._conns[device.id] = conn
                        elif device is None:
                            conn.send_error(request.id, ErrorCode.AUTH_REQUIRED, "authenticate first")
                        elif isinstance(request, Heartbeat):
                            self.heartbeats.setdefault(device.id, []).append(request.metrics)
                            conn.send_result(request.id, Empty())
                        elif isinstance(request, InventoryReport):
                            self.inventories.setdefault(device.id, []).append(request.inventory)
                            conn.send_result(request.id, Empty())
                    for data in conn.data_to_send():
                        await ws.send(data)
                    if close is not None:
                        await ws.close(*close)
                        return
        finally:
            if device is not None and self.online.get(device.id) is ws:
                del self.online[device.id]

    def _enroll(self, conn: Connection, request: Enroll, nonce: bytes) -> tuple[int, str] | None:
        secret_hash = proofs.secret_hash(request.token)
        status = self.tokens.get(secret_hash)
        if status != "unused":
            code = ErrorCode.TOKEN_USED if status == "used" else ErrorCode.TOKEN_INVALID
            conn.send_error(request.id, code, "token not usable")
            return (1008, str(code))
        public_key = proofs.b64decode(request.public_key, size=32)
        payload = proofs.agent_proof_payload(nonce, self.certificate.spki_sha256, public_key)
        if not proofs.verify(public_key, proofs.b64decode(request.signature, size=64), payload):
            conn.send_error(request.id, ErrorCode.AUTH_FAILED, "bad signature")
            return (1008, "auth_failed")
        self.tokens[secret_hash] = "used"
        device = Device(id=f"d{len(self.devices) + 1:04d}", public_key=public_key, group="default")
        self.devices[device.id] = device
        signer = self.forge_org_key or self.org_key
        signature = signer.sign(proofs.enroll_proof_payload(nonce, device.id, public_key))
        conn.send_result(
            request.id,
            EnrollResult(device_id=device.id, group=device.group, org_signature=proofs.b64encode(signature)),
        )
        return None

    def _auth(
        self, conn: Connection, request: Auth, nonce: bytes
    ) -> tuple[Device | None, tuple[int, str] | None]:
        device = self.devices.get(request.device_id)
        payload = proofs.agent_proof_payload(nonce, self.certificate.spki_sha256, request.device_id.encode())
        if device is None or not proofs.verify(
            device.public_key, proofs.b64decode(request.signature, size=64), payload
        ):
            conn.send_error(request.id, ErrorCode.AUTH_FAILED, "unknown device or wrong signature")
            return None, (1008, "auth_failed")
        if device.revoked:
            conn.send_error(request.id, ErrorCode.DEVICE_REVOKED, "revoked")
            return None, (1008, "device_revoked")
        self.auths += 1
        conn.send_result(request.id, AuthResult(heartbeat_interval=self.heartbeat_interval))
        return device, None


# ---------------------------------------------------------------------------------------------- raw TLS


class RawTLSServer:
    """A TLS server that records every application byte a client sends (to prove nothing was sent)."""

    def __init__(self, certificate: Certificate) -> None:
        self.certificate = certificate
        self.received = bytearray()
        self.handshakes = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.certificate.server_context()
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, ssl.SSLError):
            while data := await reader.read(4096):
                self.received += data
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
