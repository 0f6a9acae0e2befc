"""Fixtures for the native-SSH and technician-CLI tests: the real agent runtime, enrolled as ``DEVICE``, whose
session capability serves shell and files from a temporary root, and a technician machine signed in with the
real CLI. What the device did is read where the product records it: the server's audit chain."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from steun_agent.policy import Policy
from steun_agent.session import SessionCapability, SessionOutcome
from steun_protocol.session import Capability
from steun_server.keys import b64url
from steun_server.techcli.cli import ssh_command
from steun_server.web import AUDIT

from tests.session_agent.fakes import ConsentingUI
from tests.support.api import ApiClient, create_user
from tests.support.real_agent import real_agent
from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for

DEVICE = "ws-ssh"


class Tech:
    """The technician's machine: a private STEUN_TECH_HOME and the OpenSSH tools run against it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "STEUN_TECH_HOME": str(home), "HOME": str(home)}

    async def run(
        self, argv: list[str], *, stdin: bytes = b"", timeout: float = 60.0
    ) -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), scaled(timeout))
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return proc.returncode, out, err

    def openssh(self, program: str, *args: str, command: tuple[str, ...] = ()) -> list[str]:
        quiet = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
        return ssh_command(DEVICE, [*quiet, *args], command, program=program, home=self.home)

    async def ssh(self, *args: str, command: str = "", stdin: bytes = b"") -> tuple[int, bytes, bytes]:
        return await self.run(self.openssh("ssh", *args, command=(command,) if command else ()), stdin=stdin)


@dataclass(frozen=True)
class DeviceEvent:
    """One ``session/event`` the agent sent, as the audit chain holds it: ``detail`` is the agent's JSON."""

    seq: int
    name: str
    session_id: str
    detail: dict[str, Any]


class RealDevice:
    """The agent runtime (``Runtime`` + ``SessionCapability``) in this process, enrolled as ``DEVICE``.

    Shell and files act as the current user (attended mode); files are rooted at ``root``. The person in
    front of it answers every consent prompt the same way; ``grant`` says which capabilities that person
    allows (None: all asked for). The prompt is all-or-nothing, so a partial grant is made with the local
    policy's ``forbid``, which refuses the rest before anyone is asked.
    """

    def __init__(
        self, server: RunningServer, sessions: SessionCapability, ui: ConsentingUI, device_id: str, root: Path
    ) -> None:
        self.server = server
        self.sessions = sessions
        self.ui = ui
        self.device_id = device_id
        self.root = root
        self._grant: frozenset[Capability] | None = None

    @property
    def grant(self) -> frozenset[Capability] | None:
        return self._grant

    @grant.setter
    def grant(self, allowed: frozenset[Capability] | None) -> None:
        self._grant = allowed
        if allowed is None:
            self.sessions.settings.policy, self.ui.answer = Policy(), "accept"
        elif not allowed:
            self.sessions.settings.policy, self.ui.answer = Policy(), "deny"
        else:
            forbid = frozenset(Capability) - allowed  # what is not asked for is not forbidden either
            self.sessions.settings.policy, self.ui.answer = Policy(forbid=forbid), "accept"

    # ------------------------------------------------------------------ what the server recorded

    async def events(self, prefix: str = "", *, session_id: str | None = None) -> list[DeviceEvent]:
        """This device's audit records whose event name starts with ``prefix``, in the chain's order."""
        audit: Any = self.server.app[AUDIT]
        actor = f"device:{self.device_id}"
        found: list[DeviceEvent] = []
        after = 0
        while page := await audit.records(after=after, limit=1000):
            after = page[-1].seq
            for r in page:
                if r.actor != actor or not r.event.startswith(prefix):
                    continue
                if session_id is not None and r.data.get("session_id") != session_id:
                    continue
                try:
                    detail = json.loads(r.data.get("detail") or "{}")
                except ValueError:
                    detail = {"text": r.data.get("detail")}
                found.append(DeviceEvent(r.seq, r.event, r.data.get("session_id", ""), detail))
        return found

    async def wait_event(self, name: str, *, timeout: float = 15.0) -> DeviceEvent:
        """The latest ``name`` event once there is one (the agent forwards its events asynchronously)."""

        async def latest() -> DeviceEvent | None:
            events = await self.events(name)
            return events[-1] if events else None

        return await wait_for(latest, timeout=timeout, what=f"a {name} event in the audit chain")

    async def session_ids(self) -> list[str]:
        """The sessions this device started (``session.start``), oldest first."""
        return [e.session_id for e in await self.events("session.start")]

    async def wait_idle(self, *, timeout: float = 15.0) -> None:
        """No session running: the last one has closed its channels and its audit is in the chain (the
        runner forwards ``session.stop`` after every shell and files event)."""
        await wait_for(lambda: not self.sessions.busy, timeout=timeout, what="the agent's session to end")

    # ------------------------------------------------------------------ the person at the device

    def press_stop(self) -> None:
        """The user presses Stop on the session indicator."""
        indicator = self.ui.indicator
        assert indicator is not None, "no session indicator is showing"
        indicator.press_stop()

    async def wait_ended(self, *, timeout: float = 5.0) -> SessionOutcome:
        async with asyncio.timeout(scaled(timeout)):
            await self.sessions.finished.wait()
        return self.sessions.outcomes[-1]


@pytest.fixture
async def device(server: RunningServer, tmp_path: Path) -> AsyncIterator[RealDevice]:
    root = tmp_path / "device-home"
    root.mkdir()
    ui = ConsentingUI()
    # the technician CLI finds the device by the hostname it enrolled with
    async with real_agent(server, tmp_path / "agent-state", ui=ui, files_root=root, hostname=DEVICE) as agent:
        yield RealDevice(server, agent.sessions, ui, agent.device_id, root)


@pytest.fixture
async def tech(server: RunningServer, admin_api: ApiClient, tmp_path: Path) -> Tech:
    password = await create_user(admin_api, "tina", "specialist")  # shell and files need this role
    tech = Tech(tmp_path / "tech")
    code, _, err = await tech.run(
        [
            sys.executable, "-m", "steun_server.techcli", "login",
            "--server", server.url, "--user", "tina", f"--pin={b64url(server.spki_sha256)}", "--password-stdin",
        ],
        stdin=password.encode() + b"\n",
    )  # fmt: skip
    assert code == 0, err.decode()
    return tech
