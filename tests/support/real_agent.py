"""The real agent runtime in this process, enrolled with a real token, answering session offers through the
real relay — for the tests (and the transfer benchmark) that need a device on the far end of a session.

Only the consent prompt is scripted (``ScriptedUI``: a person's yes or no) and the machine facts come from
``FakeBackend`` (a fixed hostname, no real inventory); handshake, consent enforcement, channels, shell, files
and chat are the agent's own code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steun_agent.capabilities import Capability as AgentCapability
from steun_agent.config import AgentConfig
from steun_agent.enrollment import enroll
from steun_agent.policy import Mode, Policy
from steun_agent.runtime import Runtime
from steun_agent.session import SessionCapability, SessionSettings
from steun_agent.state import AgentState
from steun_protocol import auth as proofs

from tests.agent.fakes import FakeBackend
from tests.session_agent.fakes import ScriptedUI
from tests.support.waiting import scaled


@dataclass
class RealAgent:
    runtime: Runtime
    sessions: SessionCapability
    ui: ScriptedUI
    state: AgentState
    hostname: str
    files_root: Path | None

    @property
    def device_id(self) -> str:
        return self.state.device_id

    @property
    def runner(self) -> Any:
        """The running (or last) session's ``SessionRunner``: its ``shell``/``files``/``chat`` services."""
        assert self.sessions.runner is not None, "no session has reached this agent"
        return self.sessions.runner


@contextlib.asynccontextmanager
async def real_agent(
    server: Any,
    state_dir: Path,
    *,
    answers: list[str] | None = None,
    ui: ScriptedUI | None = None,
    policy: Policy | None = None,
    mode: Mode = Mode.ATTENDED,
    files_root: Path | None = None,
    hostname: str = "pc-steun-test",
    inventory: bool = False,
    handshake_timeout: float = 30.0,
    backend: Any = None,
) -> AsyncIterator[RealAgent]:
    """Enroll an agent under ``hostname``, run its runtime until the block ends; ``answers`` script the user
    (``accept``/``deny``/``hang``; default: one yes). ``inventory`` adds the inventory capability (the device
    page shows its hostname)."""
    state_dir.mkdir(mode=0o700, exist_ok=True)
    config = AgentConfig(state_dir=state_dir, open_timeout=10.0, request_timeout=10.0, close_timeout=1.0)
    token = proofs.EnrollmentToken.parse(await server.create_enrollment_token())
    state = await enroll(server.url, token, config, hostname=hostname)
    ui = ui if ui is not None else ScriptedUI(answers if answers is not None else ["accept"])
    sessions = SessionCapability(
        org_public_key=state.org_public_key,
        identity=state.private_key,
        device_id=state.device_id,
        settings=SessionSettings(
            server_url=state.server_url,
            pin=state.spki_sha256,
            policy=policy or Policy(),
            mode=mode,
            ui=ui,
            handshake_timeout=scaled(handshake_timeout),
            files_root=str(files_root) if files_root is not None else None,
        ),
    )
    if backend is None:
        backend = FakeBackend()
        backend.hostname = hostname
    capabilities: list[AgentCapability] = [sessions]
    if inventory:
        from steun_agent.capabilities.inventory import InventoryCapability

        capabilities.insert(0, InventoryCapability(backend, config.inventory_interval))
    runtime = Runtime(state, config, backend, capabilities)
    running = asyncio.create_task(runtime.run())
    try:
        async with asyncio.timeout(scaled(20)):
            await runtime.wait_online()
        yield RealAgent(runtime, sessions, ui, state, hostname, files_root)
    finally:
        runtime.stop()
        await asyncio.gather(running, return_exceptions=True)
