"""Quick support: support/create on the console, support/redeem on /agent/ws, the ephemeral device, the limits."""

from __future__ import annotations

import bisect
import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from steun_protocol.sessionplane import SUPPORT_CODE_TTL
from steun_server.fleet.service import FLEET
from steun_server.sessions.codes import (
    ADDRESS_BASE_DELAY,
    ADDRESS_MAX_DELAY,
    GLOBAL_BASE_DELAY,
    GLOBAL_MAX_DELAY,
    RedeemLimiter,
)
from steun_server.storage.tables import devices
from steun_server.web import DB

from tests.support.agent_client import AgentError, Identity, connect_agent, sample_inventory, sample_metrics
from tests.support.api import ApiClient
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

from .conftest import audit_records, sessions, user_api
from .helpers import Console, quick_agent, raw_redeem, redeem


async def _device_ids(console: Console) -> dict[str, dict[str, object]]:
    _, result = await console.result("devices/list")
    return {d["id"]: d for d in result["devices"]}


async def test_code_redeemed_by_a_quick_support_agent(server_any_db: RunningServer, tmp_path: Path) -> None:
    server = server_any_db
    async with ApiClient(server.url) as api:
        me = await api.login_ok(server.admin_username, server.admin_password)
        console = await Console.open(api)
        sub, created = await console.result("support/create")
        assert re.fullmatch(r"[0-9]{9}", created["code"])
        assert abs(created["expires_at"] - (time.time() + SUPPORT_CODE_TTL)) < 30

        client, identity = await quick_agent(server, created["code"], hostname="anna-laptop", os="Windows 11")
        try:
            event = await console.next_event(sub)
            assert event == {"kind": "redeemed", "device_id": identity.device_id, "hostname": "anna-laptop"}
            # the agent learnt whom it talks to
            # (SupportRedeemed is checked in redeem(): device id; names here)
            listed = await _device_ids(console)
            device = listed[identity.device_id or ""]
            assert device["group"] == "quick-support"
            assert device["online"] is True
            assert device["hostname"] == "anna-laptop"
            # a quick-support agent may heartbeat and send its inventory like any other
            await client.heartbeat(sample_metrics())
            await client.send_inventory(sample_inventory("anna-laptop"))
            _, detail = await console.result("device/get", device_id=identity.device_id)
            assert detail["inventory"]["hostname"] == "anna-laptop"
            assert detail["metrics"] is not None
            # ... but it is no enrollment: nothing in the devices table
            async with server.app[DB].connect() as conn:
                rows = (await conn.execute(sa.select(devices.c.id))).all()
            assert identity.device_id not in {r.id for r in rows}
        finally:
            await client.close()
        # gone with its connection
        await wait_for(lambda: identity.device_id not in server.app[FLEET].quick, what="quick device removed")
        assert identity.device_id not in await _device_ids(console)
        created_records = await audit_records(server, "support.code_created")
        assert created_records[-1].actor == me["username"]
        (redeemed,) = await audit_records(server, "support.code_redeemed")
        assert redeemed.data["device_id"] == identity.device_id
        assert redeemed.data["technician"]["username"] == me["username"]
        # the code itself is never written anywhere
        assert created["code"] not in repr([r.data for r in await audit_records(server)])
        await console.close()


async def test_redeemed_result_names_org_and_technician(server: RunningServer, admin_api: ApiClient) -> None:
    me = (await admin_api.get("/api/auth/me")).body["user"]
    console = await Console.open(admin_api)
    _, created = await console.result("support/create")
    client = await connect_agent(server.url)
    try:
        await client.hello()
        result = await redeem(client, created["code"], Identity())
        assert result.org_name == server.config.org_name == "Steun"
        assert result.technician_name == me["display_name"]
    finally:
        await client.close()
        await console.close()


async def test_wrong_code_is_refused_and_closes(server: RunningServer) -> None:
    client, outcome = await raw_redeem(server, "123456789")
    try:
        assert isinstance(outcome, AgentError) and outcome.code == "code_invalid", outcome
        assert await client.wait_closed() == 1008
    finally:
        await client.close()


async def test_reused_code_is_refused(server: RunningServer, admin_api: ApiClient) -> None:
    console = await Console.open(admin_api)
    _, created = await console.result("support/create")
    first, _ = await quick_agent(server, created["code"])
    try:
        client, outcome = await raw_redeem(server, created["code"])
        await client.close()
        assert isinstance(outcome, AgentError) and outcome.code == "code_used", outcome
    finally:
        await first.close()
        await console.close()


async def test_expired_code_is_refused_and_the_console_told(short_server: RunningServer) -> None:
    server = short_server
    async with ApiClient(server.url) as api:
        await api.login_ok(server.admin_username, server.admin_password)
        console = await Console.open(api)
        sub, created = await console.result("support/create")
        assert (await console.next_event(sub))["kind"] == "expired"
        client, outcome = await raw_redeem(server, created["code"])
        await client.close()
        assert isinstance(outcome, AgentError) and outcome.code == "code_expired", outcome
        await console.close()


async def test_cancelled_code_dies(server: RunningServer, admin_api: ApiClient) -> None:
    console = await Console.open(admin_api)
    sub, created = await console.result("support/create")
    await console.result("unsubscribe", subscription=sub)
    client, outcome = await raw_redeem(server, created["code"])
    await client.close()
    assert isinstance(outcome, AgentError) and outcome.code == "code_expired", outcome
    # and a console that goes away takes its codes with it
    _, created = await console.result("support/create")
    await console.close()
    await wait_for(lambda: sessions(server).codes.statistics()["live"] == 0, what="code withdrawn")
    client, outcome = await raw_redeem(server, created["code"])
    await client.close()
    assert isinstance(outcome, AgentError) and outcome.code == "code_expired", outcome


async def test_bad_signature_costs_no_attempt(server: RunningServer) -> None:
    client, _ = await raw_redeem(server, "123456789")
    await client.close()
    client = await connect_agent(server.url)
    try:
        await client.hello()
        with pytest.raises(AgentError) as info:
            await redeem(client, "123456789", Identity(), spki=b"\1" * 32)  # signed over another TLS key
        assert info.value.code == "auth_failed"
    finally:
        await client.close()
    assert sessions(server).codes.by_address.failures("127.0.0.1") == 1


async def test_redeem_needs_a_fresh_connection_and_a_hello(
    server: RunningServer, admin_api: ApiClient
) -> None:
    console = await Console.open(admin_api)
    _, created = await console.result("support/create")
    client, _ = await quick_agent(server, created["code"])
    try:
        with pytest.raises(AgentError) as info:
            await redeem(client, created["code"], Identity())
        assert info.value.code == "invalid_message"
    finally:
        await client.close()
        await console.close()


@pytest.fixture
async def per_address_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    running = await RunningServer.create(
        tmp_path / "data",
        overrides={"support_redeem_free_failures": 2, "support_redeem_global_free_failures": 1000},
    )
    try:
        yield running
    finally:
        await running.stop()


async def test_redemption_is_rate_limited_per_address(per_address_server: RunningServer) -> None:
    server = per_address_server
    for _ in range(3):  # two free failures, then one that starts the first wait
        client, outcome = await raw_redeem(server, "000000001")
        await client.close()
        assert isinstance(outcome, AgentError) and outcome.code == "code_invalid", outcome
    async with ApiClient(server.url) as api:
        await api.login_ok(server.admin_username, server.admin_password)
        console = await Console.open(api)
        _, created = await console.result("support/create")
        # even the right code waits: the answer comes before the code is looked at
        client, outcome = await raw_redeem(server, created["code"])
        assert isinstance(outcome, AgentError) and outcome.code == "throttled", outcome
        retry = re.search(r"retry_after=(\d+)", outcome.message)
        assert retry is not None and 1 <= int(retry.group(1)) <= ADDRESS_BASE_DELAY + 1
        assert await client.wait_closed() == 1013
        await client.close()
        # another address is not held back
        client, outcome = await raw_redeem(server, created["code"], address="127.0.0.2")
        await client.close()
        assert not isinstance(outcome, Exception), outcome
        await console.close()
    failed = await audit_records(server, "support.redeem_failed")
    assert failed and failed[0].data["reason"] == "code_invalid"


@pytest.fixture
async def global_limit_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    running = await RunningServer.create(
        tmp_path / "data",
        overrides={"support_redeem_free_failures": 1000, "support_redeem_global_free_failures": 2},
    )
    try:
        yield running
    finally:
        await running.stop()


async def test_redemption_is_rate_limited_globally(global_limit_server: RunningServer) -> None:
    server = global_limit_server
    for address in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
        client, outcome = await raw_redeem(server, "000000001", address=address)
        await client.close()
        assert isinstance(outcome, AgentError) and outcome.code == "code_invalid", outcome
    client, outcome = await raw_redeem(server, "000000002", address="127.0.0.5")
    await client.close()
    assert isinstance(outcome, AgentError) and outcome.code == "throttled", outcome
    assert "on this server" in outcome.message


async def test_a_quick_device_is_only_for_its_technician(server: RunningServer, admin_api: ApiClient) -> None:
    other = await user_api(server, admin_api, "olaf", "admin")
    console = await Console.open(admin_api)
    other_console = await Console.open(other)
    _, created = await console.result("support/create")
    client, identity = await quick_agent(server, created["code"])
    try:
        from steun_protocol import auth as proofs

        error = await other_console.error(
            "session/request",
            device_id=identity.device_id,
            capabilities=["view"],
            technician_key=proofs.b64encode(Identity().public_key),
            console_commitment=proofs.b64encode(b"\0" * 32),
        )
        assert error["code"] == "forbidden"
    finally:
        await client.close()
        await console.close()
        await other_console.close()
        await other.close()


def _attempts(free: int, base: float, cap: float) -> tuple[int, int, int]:
    """An attacker who tries the moment the limiter allows: most attempts in 10 min, in 1 h, on the 2nd day."""
    now = [0.0]
    limiter = RedeemLimiter(free=free, base=base, cap=cap, clock=lambda: now[0])
    times: list[float] = []
    while now[0] < 2 * 86400:
        wait = limiter.retry_after("k")
        if wait > 0:
            now[0] += wait
            continue
        limiter.failure("k")
        times.append(now[0])

    def most(window: float) -> int:
        return max(bisect.bisect_left(times, t + window) - i for i, t in enumerate(times))

    return most(600), most(3600), sum(1 for t in times if t >= 86400)


def test_guessing_figures_in_the_design_record() -> None:
    """docs/design/0080-support-codes.md states these numbers; keep them true."""
    assert _attempts(5, ADDRESS_BASE_DELAY, ADDRESS_MAX_DELAY) == (14, 24, 311)
    assert _attempts(30, GLOBAL_BASE_DELAY, GLOBAL_MAX_DELAY) == (45, 95, 1440)
