"""``GET /api/support/agent-config``: the quick-support agent's config as a technician downloads it, and the
real ``steun-agent support --config FILE`` connecting with it (TLS pin checked) and redeeming a code."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from steun_agent.session.support import parse_support_config

from tests.sessions.helpers import Console
from tests.support.api import ApiClient, create_user, signed_in_client
from tests.support.server import RunningServer
from tests.support.waiting import scaled

PATH = "/api/support/agent-config"


async def download(api: ApiClient) -> bytes:
    response = await api.get(PATH)
    assert response.status == 200, response.text
    assert response.headers["Content-Disposition"] == 'attachment; filename="steun-support.json"'
    assert response.headers["Content-Type"].startswith("application/json")
    return response.text.encode("utf-8")


async def start_agent(config: Path, state: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY" and not k.startswith("STEUN_AGENT_")}
    env["STEUN_AGENT_STATE_DIR"] = str(state)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steun_agent",
        "support",
        "--config",
        str(config),
        "--terminal",
        "--language",
        "en",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )


async def reap(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
    await process.wait()


async def test_download_is_the_support_config_of_this_server(
    server: RunningServer, admin_api: ApiClient
) -> None:
    data = await download(admin_api)
    raw = json.loads(data)
    assert set(raw) == {"version", "server_url", "spki_sha256", "org_public_key", "org_name"}
    parsed = parse_support_config(data)
    assert parsed.server_url == server.url.rstrip("/")
    assert parsed.pin == server.spki_sha256
    assert parsed.org_public_key == server.org_public_key
    assert parsed.org_name == server.config.org_name


async def test_technicians_may_download_but_not_anonymous_users(
    server: RunningServer, admin_api: ApiClient
) -> None:
    password = await create_user(admin_api, "tech1", "technician")
    technician = await signed_in_client(server, "tech1", password)
    try:
        await download(technician)
    finally:
        await technician.close()
    async with ApiClient(server.url) as anonymous:
        response = await anonymous.get(PATH)
        assert response.status == 401


async def test_the_downloaded_file_connects_the_real_agent(
    server: RunningServer, admin_api: ApiClient, tmp_path: Path
) -> None:
    config = tmp_path / "steun-support.json"
    config.write_bytes(await download(admin_api))
    console = await Console.open(admin_api)
    agent: asyncio.subprocess.Process | None = None
    try:
        sub, created = await console.result("support/create")
        agent = await start_agent(config, tmp_path / "state")
        assert agent.stdin is not None
        agent.stdin.write(f"{created['code']}\n".encode())
        await agent.stdin.drain()
        # Redeemed: the agent got through the pinned TLS handshake, hello and the proof over the nonce.
        event = await console.next_event(sub, timeout=30)
        assert event["kind"] == "redeemed", event
        assert event["device_id"]
    finally:
        if agent is not None:
            await reap(agent)
        await console.close()


async def test_a_tampered_pin_is_refused_before_anything_is_sent(
    server: RunningServer, admin_api: ApiClient, tmp_path: Path
) -> None:
    raw = json.loads(await download(admin_api))
    raw["spki_sha256"] = ("00" if raw["spki_sha256"][:2] != "00" else "11") + raw["spki_sha256"][2:]
    config = tmp_path / "steun-support.json"
    config.write_text(json.dumps(raw))
    console = await Console.open(admin_api)
    agent: asyncio.subprocess.Process | None = None
    try:
        sub, created = await console.result("support/create")
        agent = await start_agent(config, tmp_path / "state")
        assert agent.stdin is not None and agent.stdout is not None
        agent.stdin.write(f"{created['code']}\n".encode())
        await agent.stdin.drain()
        seen = b""
        async with asyncio.timeout(scaled(30)):
            while b"pinned" not in seen and b"SPKI" not in seen:
                chunk = await agent.stdout.read(4096)
                assert chunk, (
                    f"the agent ended without reporting the pin mismatch: {seen.decode(errors='replace')}"
                )
                seen += chunk
        agent.stdin.close()  # no second attempt: the user gives up
        async with asyncio.timeout(scaled(15)):
            await agent.wait()
        # The code was never redeemed: the server saw no proof from the agent.
        assert console.events[sub].empty()
    finally:
        if agent is not None:
            await reap(agent)
        await console.close()
