"""Quick support (``steun-agent support``): no install, no admin, no enrollment.

The downloaded support config names the server and carries its pins; the user types the 9-digit code the
technician gave; the agent connects (pin checked inside TLS), says hello, redeems the code with a fresh
ephemeral identity (proved over the hello nonce exactly as ``enroll`` does), then waits on that connection for
one ``session/offer`` and runs it with the same :class:`SessionCapability` as the installed agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import platform
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_protocol.auth import agent_proof_payload, b64decode, b64encode, public_key_bytes
from steun_protocol.control import Heartbeat
from steun_protocol.errors import ErrorCode
from steun_protocol.inventory import LiveMetrics
from steun_protocol.messages import Empty, Payload, Request
from steun_protocol.sessionplane import SessionOfferRequest, SupportRedeem, SupportRedeemed

from ..channel import ControlChannel, Handler
from ..config import AgentConfig, server_base_url
from ..errors import EXIT_FAILURE, EXIT_OK, AgentError, ConfigError, ConnectionLost, ServerRefused
from ..runtime import _Session
from .capability import SessionCapability
from .runner import SessionSettings

log = logging.getLogger(__name__)

SUPPORT_CONFIG_VERSION = 1
#: Heartbeat interval of a quick-support agent (the server gives it 3 × 30 s of silence).
HEARTBEAT_INTERVAL = 20.0
MAX_CONFIG_BYTES = 16 * 1024
MAX_CODE_ATTEMPTS = 5


class SupportConfigFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The file the server offers for download with the quick-support agent (JSON or TOML)."""

    version: int
    server_url: str
    spki_sha256: str  # hex, 64 characters: the server's TLS public key pin
    org_public_key: str  # b64url, 32 bytes raw Ed25519
    org_name: str = ""


@dataclass(frozen=True, slots=True)
class SupportConfig:
    server_url: str
    pin: bytes
    org_public_key: bytes
    org_name: str = ""


def parse_support_config(data: bytes, *, source: str = "support config") -> SupportConfig:
    """Strict: unknown keys, a wrong version or a malformed pin are errors, never ignored."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8")
        raw: Any = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
        parsed = msgspec.convert(raw, SupportConfigFile, strict=True)
    except (UnicodeDecodeError, ValueError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"{source} is not a usable support config: {exc}") from None
    if parsed.version != SUPPORT_CONFIG_VERSION:
        raise ConfigError(f"{source} has version {parsed.version}; this agent reads {SUPPORT_CONFIG_VERSION}")
    try:
        pin = bytes.fromhex(parsed.spki_sha256)
        org_key = b64decode(parsed.org_public_key, size=32)
    except ValueError as exc:
        raise ConfigError(f"{source}: bad pin or org key ({exc})") from None
    if len(pin) != 32:
        raise ConfigError(f"{source}: spki_sha256 must be 64 hex digits")
    return SupportConfig(server_base_url(parsed.server_url), pin, org_key, parsed.org_name)


def load_support_config(path: Path) -> SupportConfig:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the support config {path}: {exc.strerror or exc}") from None
    return parse_support_config(data, source=str(path))


class _Deferred:
    """Holds the capability once the code was redeemed (the handler table is fixed at connect time)."""

    def __init__(self) -> None:
        self.capability: SessionCapability | None = None

    async def on_offer(self, request: Request) -> Payload:
        if self.capability is None:
            raise ServerRefused(ErrorCode.FORBIDDEN, "no support code redeemed on this connection")
        return await self.capability.handlers[SessionOfferRequest](request)


async def run_support(
    config: SupportConfig,
    agent_config: AgentConfig,
    settings_for: Callable[[SupportConfig], SessionSettings],
    ask_code: Callable[[str | None], Any],
    *,
    hostname: str | None = None,
    metrics: Callable[[], LiveMetrics] | None = None,
) -> int:
    """Ask the code, redeem it, serve one session; an exit code. ``ask_code(error)`` → digits | None."""
    error: str | None = None
    for _ in range(MAX_CODE_ATTEMPTS):
        code = await ask_code(error)
        if code is None:
            log.info("the user cancelled quick support")
            return EXIT_OK
        try:
            return await _serve(config, agent_config, settings_for, code, hostname=hostname, metrics=metrics)
        except ServerRefused as exc:
            error = str(exc)
            log.warning("support code refused: %s", exc)
        except ConnectionLost as exc:
            error = str(exc)
            log.warning("quick support connection failed: %s", exc)
    return EXIT_FAILURE


async def _serve(
    config: SupportConfig,
    agent_config: AgentConfig,
    settings_for: Callable[[SupportConfig], SessionSettings],
    code: str,
    *,
    hostname: str | None,
    metrics: Callable[[], LiveMetrics] | None,
) -> int:
    identity = Ed25519PrivateKey.generate()
    public_key = public_key_bytes(identity)
    deferred = _Deferred()
    handlers: dict[type[Request], Handler] = {SessionOfferRequest: deferred.on_offer}
    async with ControlChannel.connect(config.server_url, config.pin, agent_config, handlers) as channel:
        nonce = await channel.hello()
        proof = agent_proof_payload(nonce, channel.spki, public_key)
        redeemed = await channel.request(
            SupportRedeem(
                code=code,
                public_key=b64encode(public_key),
                hostname=(hostname or socket.gethostname())[:255],
                os=f"{platform.system()} {platform.release()}".strip()[:255],
                signature=b64encode(identity.sign(proof)),
            ),
            SupportRedeemed,
        )
        log.info("code redeemed: %s (%s) will ask for a session", redeemed.technician_name, redeemed.org_name)
        capability = SessionCapability(
            org_public_key=config.org_public_key,
            identity=identity,
            device_id=redeemed.device_id,
            settings=settings_for(config),
        )
        session = _Session(channel, HEARTBEAT_INTERVAL)
        await capability.start(session)
        deferred.capability = capability
        heartbeat = asyncio.create_task(_heartbeats(session, metrics))
        closed = asyncio.create_task(channel.wait_closed())
        done_one = asyncio.create_task(_one_session(capability))
        try:
            await asyncio.wait({closed, done_one, heartbeat}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (heartbeat, closed, done_one):
                task.cancel()
            await capability.stop()
        if done_one.done() and not done_one.cancelled():
            return EXIT_OK
        if closed.done() and not closed.cancelled():
            raise closed.result()
        return EXIT_FAILURE


async def _one_session(capability: SessionCapability) -> None:
    """Return when the first session ended (the quick-support agent serves exactly one)."""
    while not capability.outcomes:
        await capability.finished.wait()
        if not capability.outcomes:
            capability.finished.clear()


async def _heartbeats(session: _Session, metrics: Callable[[], LiveMetrics] | None) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_INTERVAL)
        figures = LiveMetrics(uptime=0.0, cpu_percent=0.0, memory_percent=0.0, memory_used=0)
        if metrics is not None:
            with contextlib.suppress(Exception):
                figures = await asyncio.to_thread(metrics)
        try:
            await session.request(Heartbeat(metrics=figures), Empty)
        except AgentError as exc:
            log.warning("heartbeat failed: %s", exc)
            return
