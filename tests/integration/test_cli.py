"""The real command line: ``steun-agent enroll``, ``run`` and ``status`` as subprocesses against the real server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from steun_agent.errors import EXIT_OK, EXIT_REFUSED, EXIT_STATE, EXIT_TRUST
from steun_protocol.auth import EnrollmentToken, b64encode

from tests.integration.conftest import device
from tests.support.api import ApiClient
from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for

AGENT = str(Path(sys.executable).with_name("steun-agent"))


class Processes:
    """Every agent process a test starts; whatever is still running at the end is killed."""

    def __init__(self) -> None:
        self.started: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            AGENT, *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )  # fmt: skip
        self.started.append(process)
        return process

    async def run(self, *args: str, timeout: float = 30) -> tuple[int, str, str]:
        process = await self.start(*args)
        async with asyncio.timeout(scaled(timeout)):
            out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def cleanup(self) -> None:
        for process in self.started:
            if process.returncode is None:
                process.kill()
                await process.wait()


@pytest.fixture
async def processes() -> AsyncIterator[Processes]:
    tracked = Processes()
    try:
        yield tracked
    finally:
        await tracked.cleanup()


async def test_enroll_run_status_and_sigterm(
    fast_server: RunningServer, api: ApiClient, processes: Processes, tmp_path: Path
) -> None:
    state_dir = str(tmp_path / "agent-state")
    token = await fast_server.create_enrollment_token()
    code, out, err = await processes.run(
        "enroll", "--server", fast_server.url, "--token", token, "--state-dir", state_dir
    )
    assert code == EXIT_OK, err
    assert "Enrolled as device" in out

    code, out, err = await processes.run("status", "--json", "--state-dir", state_dir)
    assert code == EXIT_OK, err
    status = json.loads(out)
    assert status["server_url"] == fast_server.url
    assert status["server_spki_sha256"] == fast_server.spki_sha256.hex()
    assert status["org_public_key"] == b64encode(fast_server.org_public_key)
    device_id = status["device_id"]
    assert oct(os.stat(state_dir).st_mode & 0o777) == "0o700"

    agent = await processes.start(
        "run",
        "--state-dir",
        state_dir,
        "--backoff-base",
        "0.05",
        "--backoff-cap",
        "0.5",
        "--inventory-interval",
        "1",
    )

    async def online_with_inventory() -> bool:
        body = await device(api, device_id)
        return bool(body["online"] and body["inventory"] and body["metrics"])

    await wait_for(online_with_inventory, timeout=20, interval=0.1, what="CLI agent online with inventory")

    agent.send_signal(signal.SIGTERM)
    async with asyncio.timeout(scaled(10)):
        _, err_bytes = await agent.communicate()
    assert agent.returncode == EXIT_OK, err_bytes.decode()
    assert "SIGTERM received" in err_bytes.decode()

    async def offline() -> bool:
        return not (await device(api, device_id))["online"]

    await wait_for(offline, timeout=10, interval=0.1, what="device offline after SIGTERM")


async def test_cli_pin_mismatch_exits_without_storing(
    fast_server: RunningServer, processes: Processes, tmp_path: Path
) -> None:
    token = EnrollmentToken.parse(await fast_server.create_enrollment_token())
    forged = str(EnrollmentToken(token.secret, bytes(32), token.org_public_key))
    state_dir = tmp_path / "agent-state"
    code, _, err = await processes.run(
        "enroll", "--server", fast_server.url, "--token", forged, "--state-dir", str(state_dir)
    )
    assert code == EXIT_TRUST
    assert "does not match the pinned key" in err
    assert "Traceback" not in err
    assert not state_dir.exists()


async def test_cli_token_reuse_explains(
    fast_server: RunningServer, processes: Processes, tmp_path: Path
) -> None:
    token = await fast_server.create_enrollment_token()
    args = ("enroll", "--server", fast_server.url, "--token", token, "--state-dir")
    assert (await processes.run(*args, str(tmp_path / "a")))[0] == EXIT_OK
    code, _, err = await processes.run(*args, str(tmp_path / "b"))
    assert code == EXIT_REFUSED
    assert "already been used" in err
    assert "token_used" in err


async def test_cli_run_refuses_loose_state(
    fast_server: RunningServer, processes: Processes, tmp_path: Path
) -> None:
    state_dir = tmp_path / "agent-state"
    token = await fast_server.create_enrollment_token()
    assert (
        await processes.run(
            "enroll", "--server", fast_server.url, "--token", token, "--state-dir", str(state_dir)
        )
    )[0] == 0
    (state_dir / "identity.pem").chmod(0o644)
    code, _, err = await processes.run("run", "--state-dir", str(state_dir))
    assert code == EXIT_STATE
    assert "accessible to other users" in err
