"""The ``steun`` command, run for real in a subprocess: init, user and token verbs, audit verify."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from steun_server.storage import Database
from steun_server.storage.tables import audit_log

from tests.support.api import ApiClient
from tests.support.fixtures import BOTH_DATABASES, database_url
from tests.support.server import TEST_DEFAULTS, RunningServer
from tests.support.waiting import scaled

#: The cheap argon2 settings of the test servers, for the subprocesses too.
CHEAP_HASHING = {
    f"STEUN_{key.upper()}": str(value)
    for key, value in TEST_DEFAULTS.items()
    if key.startswith("password_hash")
}


async def steun(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    """Run ``steun ARGS`` (this interpreter's installed entry point); returns (exit code, stdout+stderr)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STEUN_")}
    environment.update(CHEAP_HASHING)
    environment.update(env or {})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steun_server.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environment,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=scaled(timeout))
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_init_prints_a_password_that_logs_in_and_refuses_reinit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    code, output = await steun("init", "--data-dir", str(data))
    assert code == 0, output
    match = re.search(r"username: (\S+)\s+password: (\S+)", output)
    assert match, output
    username, password = match.groups()
    assert username == "admin"
    assert len(password) >= 16
    mode = (await asyncio.to_thread(data.stat)).st_mode & 0o777
    assert mode == 0o700
    key_mode = (await asyncio.to_thread((data / "org-key.pem").stat)).st_mode & 0o777
    assert key_mode == 0o600
    key_before = await asyncio.to_thread((data / "org-key.pem").read_bytes)

    code, output = await steun("init", "--data-dir", str(data))
    assert code != 0
    assert "initialised already" in output
    assert await asyncio.to_thread((data / "org-key.pem").read_bytes) == key_before

    server = await RunningServer.open(data, admin_username=username, admin_password=password)
    try:
        async with ApiClient(server.url) as client:
            user = await client.login_ok(username, password)
            assert user["role"] == "admin"
            assert (await client.login(username, "admin")).status == 401  # no default credentials
    finally:
        await server.stop()


async def test_user_and_token_verbs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert (await steun("init", "--data-dir", str(data)))[0] == 0
    code, output = await steun("user", "add", "carol", "--role", "specialist", "--data-dir", str(data))
    assert code == 0, output
    password = re.search(r"shown once: (\S+)", output)
    assert password, output
    code, output = await steun("user", "add", "carol", "--data-dir", str(data))
    assert code == 2 and "taken" in output
    code, output = await steun("user", "set-role", "carol", "admin", "--data-dir", str(data))
    assert code == 0 and "specialist -> admin" in output
    code, output = await steun("user", "list", "--data-dir", str(data))
    assert code == 0 and re.search(r"carol\s+admin", output), output
    code, output = await steun(
        "token", "create", "--group", "default", "--ttl", "600", "--data-dir", str(data)
    )
    assert code == 0, output
    token = re.search(r"(st1\.[A-Za-z0-9_\-.]+)", output)
    assert token, output
    assert "steun-agent enroll --server https://" in output
    code, output = await steun("token", "create", "--group", "nope", "--data-dir", str(data))
    assert code == 2, output
    server = await RunningServer.open(data)
    try:
        async with ApiClient(server.url) as client:
            await client.login_ok("carol", password.group(1))
            audit = await client.get("/api/audit", params={"limit": "100"})
            events = [r["event"] for r in audit.body["records"]]
            assert events.count("user.created") == 2
            assert "user.role_changed" in events
            assert "enrollment.token_created" in events
    finally:
        await server.stop()


@pytest.mark.parametrize("kind", BOTH_DATABASES)
async def test_audit_verify_reports_first_tampered_record(tmp_path: Path, kind: str) -> None:
    async with database_url(kind, tmp_path) as url:
        server = await RunningServer.create(tmp_path / "data", database_url=url)
        try:
            async with ApiClient(server.url) as client:
                for _ in range(3):
                    await client.login_ok(server.admin_username, server.admin_password)
        finally:
            await server.stop()  # signs the chain head on the way out
        env = {"STEUN_DATABASE_URL": url}
        code, output = await steun("audit", "verify", "--data-dir", str(server.data_dir), env=env)
        assert code == 0, output
        assert "audit chain ok" in output

        db = await Database.open(url)
        try:
            async with db.begin() as conn:
                await conn.execute(
                    audit_log.update().where(audit_log.c.seq == 4).values(actor="someone-else")
                )
        finally:
            await db.close()
        code, output = await steun("audit", "verify", "--data-dir", str(server.data_dir), env=env)
        assert code == 1, output
        assert "broken at seq 4" in output


async def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    code, output = await steun("user", "list", "--data-dir", str(tmp_path), env={"STEUN_LISTEN_PORT": "x"})
    assert code == 2
    assert "STEUN_LISTEN_PORT" in output and "integer" in output
    assert "Traceback" not in output


async def test_server_verb_serves(tmp_path: Path) -> None:
    """``steun server`` starts, answers over TLS, and stops on SIGTERM."""
    import signal
    import socket

    data = tmp_path / "data"
    assert (await steun("init", "--data-dir", str(data)))[0] == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STEUN_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steun_server.cli",
        "server",
        "--data-dir",
        str(data),
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environment,
    )
    try:
        async with ApiClient(f"https://127.0.0.1:{port}") as client:
            from tests.support.waiting import wait_for

            async def healthy() -> bool:
                try:
                    return (await client.get("/api/health")).status == 200
                except OSError:
                    return False

            await wait_for(healthy, timeout=30, interval=0.1, what="steun server to answer")
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=scaled(20))
    assert process.returncode == 0
