"""Fixtures for the native-SSH and technician-CLI tests: an enrolled device whose sessions run the agent's
shell and files services (``agent_end.ServicesAgent``), and a technician machine signed in with the real CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from steun_server.keys import b64url
from steun_server.techcli.cli import ssh_command

from tests.support.agent_client import enroll_new, online_agent
from tests.support.api import ApiClient, create_user
from tests.support.server import RunningServer
from tests.support.waiting import scaled

from .agent_end import ServicesAgent

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


@pytest.fixture
async def device(server: RunningServer, tmp_path: Path) -> AsyncIterator[ServicesAgent]:
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname=DEVICE)
    client = await online_agent(server.url, identity)
    root = tmp_path / "device-home"
    root.mkdir()
    agent = ServicesAgent(server, client, identity, root)
    agent.start()
    try:
        yield agent
    finally:
        await agent.close()
        await client.close()


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
