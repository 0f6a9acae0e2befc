"""The real agent (runtime, Linux backend) against the real server on loopback. Nothing is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from steun_agent.backends.linux import LinuxBackend
from steun_agent.config import AgentConfig
from steun_agent.enrollment import enroll, parse_token
from steun_agent.errors import PinMismatch, ServerRefused
from steun_agent.runtime import Runtime
from steun_agent.state import AgentState
from steun_protocol import ErrorCode
from steun_protocol.auth import EnrollmentToken
from steun_protocol.inventory import Inventory, Package

from tests.integration.conftest import device
from tests.support.api import ApiClient
from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for


def agent_config(state_dir: Path, **overrides: object) -> AgentConfig:
    values: dict[str, object] = {
        "state_dir": state_dir,
        "backoff_base": 0.05,
        "backoff_cap": 0.5,
        "stable_after": 1.0,
        "inventory_interval": 0.3,
        "request_timeout": 10.0,
        "open_timeout": 5.0,
        "close_timeout": 2.0,
    }
    values.update(overrides)
    return AgentConfig(**values)  # type: ignore[arg-type]


class ChangeableBackend(LinuxBackend):
    """The real Linux backend, plus packages a test installs (the way ``apt install`` would change it)."""

    def __init__(self) -> None:
        super().__init__()
        self.extra: list[Package] = []

    def inventory(self) -> Inventory:
        real = super().inventory()
        packages = sorted([*real.packages, *self.extra], key=lambda p: p.name)
        return Inventory(**{**{f: getattr(real, f) for f in real.__struct_fields__}, "packages": packages})


@contextlib.asynccontextmanager
async def running(runtime: Runtime) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(runtime.run())
    try:
        yield task
    finally:
        runtime.stop()
        async with asyncio.timeout(scaled(10)):
            with contextlib.suppress(Exception):
                await task


async def enroll_agent(server: RunningServer, state_dir: Path) -> tuple[AgentState, AgentConfig]:
    config = agent_config(state_dir)
    token = parse_token(await server.create_enrollment_token())
    return await enroll(server.url, token, config), config


async def wait_device(api: ApiClient, device_id: str, what: str, check: object) -> dict[str, object]:
    async def probe() -> dict[str, object] | None:
        body = await device(api, device_id)
        return body if check(body) else None  # type: ignore[operator]

    return await wait_for(probe, timeout=15, interval=0.1, what=what)


async def test_enroll_run_online_with_inventory(
    fast_server: RunningServer, api: ApiClient, tmp_path: Path
) -> None:
    state, config = await enroll_agent(fast_server, tmp_path / "agent")
    assert state.spki_sha256 == fast_server.spki_sha256
    assert state.org_public_key == fast_server.org_public_key
    backend = await asyncio.to_thread(LinuxBackend)
    runtime = Runtime(state, config, backend)
    async with running(runtime):
        body = await wait_device(
            api, state.device_id, "online with inventory and metrics",
            lambda b: b["online"] and b["inventory"] and b["metrics"],
        )  # fmt: skip
    inventory = body["inventory"]
    assert isinstance(inventory, dict)
    assert inventory["hostname"] == socket.gethostname()
    assert inventory["os_name"] == "Linux"
    local = await asyncio.to_thread(backend.inventory)
    assert len(inventory["packages"]) == len(local.packages)
    assert body["hostname"] == socket.gethostname()
    metrics = body["metrics"]
    assert isinstance(metrics, dict) and metrics["uptime"] > 0
    # after the agent stopped, the server shows the device offline
    await wait_device(api, state.device_id, "offline after stop", lambda b: not b["online"])


async def test_inventory_stored_on_every_database(server_any_db: RunningServer, tmp_path: Path) -> None:
    """The same path on SQLite and PostgreSQL, with the server's production heartbeat settings."""
    state, config = await enroll_agent(server_any_db, tmp_path / "agent")
    runtime = Runtime(state, config, await asyncio.to_thread(LinuxBackend))
    async with ApiClient(server_any_db.url) as api:
        await api.login_ok(server_any_db.admin_username, server_any_db.admin_password)
        async with running(runtime):
            body = await wait_device(
                api, state.device_id, "online with inventory", lambda b: b["online"] and b["inventory"]
            )
        assert body["inventory"]["hostname"] == socket.gethostname()  # type: ignore[index]
        await wait_device(api, state.device_id, "offline after stop", lambda b: not b["online"])


async def test_token_reuse_refused(fast_server: RunningServer, tmp_path: Path) -> None:
    token = parse_token(await fast_server.create_enrollment_token())
    await enroll(fast_server.url, token, agent_config(tmp_path / "a"))
    with pytest.raises(ServerRefused) as info:
        await enroll(fast_server.url, token, agent_config(tmp_path / "b"))
    assert info.value.code == ErrorCode.TOKEN_USED
    assert "already been used" in str(info.value)
    assert not (tmp_path / "b").exists()


async def test_pin_mismatch_refused_and_nothing_stored(fast_server: RunningServer, tmp_path: Path) -> None:
    token = parse_token(await fast_server.create_enrollment_token())
    altered = bytearray(token.spki_sha256)
    altered[0] ^= 0x01
    forged = EnrollmentToken(token.secret, bytes(altered), token.org_public_key)
    with pytest.raises(PinMismatch) as info:
        await enroll(fast_server.url, forged, agent_config(tmp_path / "a"))
    assert info.value.seen == fast_server.spki_sha256
    assert not (tmp_path / "a").exists()
    # The secret never reached the server: the genuine token is still unused.
    state = await enroll(fast_server.url, token, agent_config(tmp_path / "b"))
    assert state.device_id


async def test_server_restart_agent_comes_back(
    fast_server: RunningServer, api: ApiClient, tmp_path: Path
) -> None:
    state, config = await enroll_agent(fast_server, tmp_path / "agent")
    runtime = Runtime(state, config, await asyncio.to_thread(LinuxBackend))
    async with running(runtime):
        await wait_device(api, state.device_id, "online", lambda b: b["online"])
        await fast_server.stop()
        await wait_for(lambda: not runtime.online, what="agent notices the server is gone")
        await wait_for(lambda: runtime.statistics()["failed_attempts"] >= 2, what="reconnect attempts")
        await fast_server.start()
        async with ApiClient(fast_server.url) as fresh:  # the old client's connections died with the server
            await fresh.login_ok(fast_server.admin_username, fast_server.admin_password)
            await wait_device(fresh, state.device_id, "online again", lambda b: b["online"])
        assert runtime.statistics()["connects"] == 2


async def test_changed_inventory_is_stored(
    fast_server: RunningServer, api: ApiClient, tmp_path: Path
) -> None:
    state, config = await enroll_agent(fast_server, tmp_path / "agent")
    backend = await asyncio.to_thread(ChangeableBackend)
    runtime = Runtime(state, config, backend)
    async with running(runtime):
        first = await wait_device(api, state.device_id, "inventory", lambda b: b["inventory"])
        backend.extra.append(Package(name="zz-steun-test-package", version="1.2.3"))
        changed = await wait_device(
            api, state.device_id, "changed inventory",
            lambda b: any(p["name"] == "zz-steun-test-package" for p in b["inventory"]["packages"]),
        )  # fmt: skip
        assert changed["inventory_updated_at"] >= first["inventory_updated_at"]  # type: ignore[operator]
        assert runtime.capabilities[0].sent == 2  # type: ignore[attr-defined]


async def test_wrong_server_key_on_run_is_fatal(fast_server: RunningServer, tmp_path: Path) -> None:
    state, config = await enroll_agent(fast_server, tmp_path / "agent")
    moved = AgentState(
        device_id=state.device_id,
        private_key=state.private_key,
        server_url=state.server_url,
        spki_sha256=os.urandom(32),
        org_public_key=state.org_public_key,
    )
    with pytest.raises(PinMismatch):
        await asyncio.wait_for(
            Runtime(moved, config, await asyncio.to_thread(LinuxBackend)).run(), scaled(10)
        )
