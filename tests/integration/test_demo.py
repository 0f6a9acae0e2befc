"""``steun demo`` as a person runs it: one command, then the printed login shows this machine online."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.support.api import ApiClient
from tests.support.waiting import scaled, wait_for

STEUN = str(Path(sys.executable).with_name("steun"))


@pytest.mark.allow_blocking  # the test's own subprocess pipes; the server and agent run in the child
async def test_demo_prints_a_login_that_shows_this_machine_online() -> None:
    proc = await asyncio.create_subprocess_exec(
        STEUN,
        "demo",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "STEUN_AGENT_LOG_LEVEL": "WARNING"},
    )
    assert proc.stdout is not None
    printed: list[str] = []
    try:

        async def read_until_login() -> tuple[str, str, str]:
            while True:
                line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
                if not line:
                    raise AssertionError("demo exited early:\n" + "".join(printed))
                printed.append(line)
                if line.strip().startswith("Data:"):
                    text = "".join(printed)
                    url = re.search(r"Console:\s+(\S+)", text)
                    login = re.search(r"Login:\s+(\S+) / (\S+)", text)
                    assert url and login, text
                    return url.group(1).rstrip("/"), login.group(1), login.group(2)

        url, username, password = await asyncio.wait_for(read_until_login(), scaled(120))
        async with ApiClient(url) as api:
            # no default credentials: the printed one-time password is the way in
            assert (await api.login(username, "admin")).status == 401
            assert (await api.login(username, password)).status == 200
            console = (await api.get("/")).status
            assert console == 200

            async def online_with_inventory() -> dict[str, object] | None:
                devices = (await api.get("/api/devices")).body["devices"]
                if len(devices) != 1 or not devices[0]["online"]:
                    return None
                detail = (await api.get(f"/api/devices/{devices[0]['id']}")).body
                return detail if detail.get("inventory") else None

            detail = await wait_for(online_with_inventory, timeout=60, what="the demo's agent online")
            inventory = detail["inventory"]
            assert isinstance(inventory, dict)
            assert inventory["hostname"] == os.uname().nodename
            assert inventory["memory_total"] > 0
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), scaled(30))
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, "".join(printed)
    data_dir = re.search(r"Data:\s+(\S+)", "".join(printed))
    assert data_dir and not Path(data_dir.group(1)).exists(), "the throwaway data directory must be removed"
