"""A session with the real agent runtime through the real server and relay, driven by the Python console half.

``live_session(server, tmp_path, capabilities=[...])`` enrolls a real agent, starts its runtime, asks for a
session with those capabilities, runs the handshake and waits for ``Granted``; the test then speaks the
shell, files and chat wire formats on sealed records, as the console does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from steun_agent.policy import Mode, Policy
from steun_agent.runtime import Runtime
from steun_agent.session import SessionCapability
from steun_protocol import auth as proofs
from steun_protocol.frames import Frame, FrameType
from steun_protocol.session import (
    Accept,
    Confirm,
    ConsoleHandshake,
    RecordOpener,
    RecordSealer,
    RecordType,
    SignedOffer,
    record_layer,
)
from steun_protocol.sessionplane import Channel, Granted, Stop, decode_control

from tests.session_agent.fakes import ScriptedUI
from tests.sessions.helpers import Console, RelayEnd, console_end
from tests.support.api import ApiClient
from tests.support.real_agent import RealAgent, real_agent
from tests.support.server import RunningServer
from tests.support.waiting import scaled

#: Records kept per channel before the test reads them; a test that falls this far behind has a bug.
MAX_BUFFERED = 4096


@dataclass
class LiveSession:
    server: RunningServer
    sessions: SessionCapability
    runtime: Runtime
    end: RelayEnd
    sealer: RecordSealer
    opener: RecordOpener
    session_id: str
    granted: Granted
    ui: ScriptedUI
    queues: dict[int, asyncio.Queue[bytes]] = field(default_factory=dict)
    controls: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(MAX_BUFFERED))
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _pump: asyncio.Task[None] | None = None

    @property
    def runner(self) -> Any:
        assert self.sessions.runner is not None
        return self.sessions.runner

    def queue(self, channel: int) -> asyncio.Queue[bytes]:
        return self.queues.setdefault(channel, asyncio.Queue(MAX_BUFFERED))

    async def send(self, channel: int, payload: bytes, record_type: RecordType = RecordType.DATA) -> None:
        sealed = self.sealer.seal(channel, record_type, payload)
        await self.end.send_frame(Frame(FrameType.SEALED, channel, sealed))

    async def receive(self, channel: int, timeout: float = 15) -> bytes:
        async with asyncio.timeout(scaled(timeout)):
            return await self.queue(channel).get()

    async def control(self, timeout: float = 15) -> Any:
        async with asyncio.timeout(scaled(timeout)):
            return await self.controls.get()

    async def stop(self, reason: str = "done") -> None:
        await self.send(Channel.CONTROL, msgspec.json.encode(Stop(reason=reason)), RecordType.CONTROL)

    async def wait_ended(self, timeout: float = 10) -> Any:
        async with asyncio.timeout(scaled(timeout)):
            while not self.sessions.outcomes:
                await asyncio.sleep(0.02)
        return self.sessions.outcomes[-1]

    async def audit_events(self) -> list[tuple[str, dict[str, Any]]]:
        from steun_server.web import AUDIT

        audit: Any = self.server.app[AUDIT]
        return [
            (r.event, r.data) for r in await audit.records(limit=1000) if str(r.actor).startswith("device:")
        ]

    async def run_pump(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await self.end.receive_frame(timeout=3600)
                if frame.type is FrameType.CLOSE:
                    break
                if frame.type is not FrameType.SEALED:
                    continue
                record = self.opener.open(frame.payload)
                if record.type is RecordType.CONTROL:
                    self.controls.put_nowait(decode_control(record.payload))
                elif record.type is RecordType.DATA:
                    self.queue(record.channel).put_nowait(bytes(record.payload))
                elif record.type is RecordType.CLOSE:
                    break
        self.closed.set()


@contextlib.asynccontextmanager
async def live_session(
    server: RunningServer,
    tmp_path: Path,
    *,
    capabilities: list[str],
    answers: list[str] | None = None,
    policy: Policy | None = None,
    files_root: str | None = None,
    mode: Mode = Mode.ATTENDED,
) -> AsyncIterator[LiveSession]:
    """A granted session on a freshly enrolled agent (attended: shell and files act as this user; service:
    as the policy's ``shell_account``)."""
    async with (
        real_agent(
            server,
            tmp_path / "agent-state",
            answers=answers,
            policy=policy,
            mode=mode,
            files_root=Path(files_root) if files_root is not None else None,
            handshake_timeout=15,
        ) as agent,
        open_session(server, agent, capabilities) as live,
    ):
        yield live


@contextlib.asynccontextmanager
async def open_session(
    server: RunningServer, agent: RealAgent, capabilities: list[str]
) -> AsyncIterator[LiveSession]:
    state, sessions, ui = agent.state, agent.sessions, agent.ui
    end: RelayEnd | None = None
    live: LiveSession | None = None
    async with ApiClient(server.url) as admin_api:
        await admin_api.login_ok(server.admin_username, server.admin_password)
        console = await Console.open(admin_api)
        try:
            hs = ConsoleHandshake(Ed25519PrivateKey.generate())
            _, session = await console.result(
                "session/request",
                device_id=state.device_id,
                capabilities=capabilities,
                technician_key=proofs.b64encode(hs.technician_public),
                console_commitment=proofs.b64encode(hs.commitment),
                reason="the printer log",
            )
            signed = msgspec.convert(session["offer"], SignedOffer)
            end = await console_end(admin_api, server, session["relay_path"], session["ticket"])
            frame = await end.receive_frame(timeout=15)
            await end.send_json(hs.receive_accept(signed, msgspec.json.decode(frame.payload, type=Accept)))
            keys = hs.receive_confirm(msgspec.json.decode((await end.receive_frame()).payload, type=Confirm))
            sealer, opener = record_layer(keys, proofs.b64decode(session["session_id"], size=16), "console")
            live = LiveSession(
                server,
                sessions,
                agent.runtime,
                end,
                sealer,
                opener,
                session["session_id"],
                Granted(capabilities=[]),
                ui,
            )
            live._pump = asyncio.create_task(live.run_pump())
            granted = await live.control()
            assert isinstance(granted, Granted), granted
            live.granted = granted
            yield live
        finally:
            if live is not None and live._pump is not None:
                live._pump.cancel()
                await asyncio.gather(live._pump, return_exceptions=True)
            if end is not None:
                await end.close()
            await console.close()
