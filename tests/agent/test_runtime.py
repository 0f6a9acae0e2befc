"""The runtime against the fake control-plane server: enroll, run, heartbeats, inventory, reconnect, give up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from steun_agent.capabilities import Session, TaskCapability
from steun_agent.channel import Handler
from steun_agent.config import AgentConfig
from steun_agent.enrollment import enroll
from steun_agent.errors import OrgKeyMismatch, PinMismatch, ServerRefused, StateError
from steun_agent.runtime import CLOSE_REPLACED, Runtime
from steun_agent.state import AgentState
from steun_protocol import ErrorCode, ErrorReceived, ResultReceived
from steun_protocol.auth import EnrollmentToken
from steun_protocol.diagnostics import DiagnosticsAccepted, DiagnosticsRun
from steun_protocol.inventory import Package
from steun_protocol.messages import Payload, Request

from tests.agent.conftest import fast_config
from tests.agent.fakes import FakeBackend, FakeServer
from tests.support.waiting import scaled, wait_for


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


async def enrolled(server: FakeServer, config: AgentConfig) -> AgentState:
    return await enroll(server.url, server.create_token(), config)


# ------------------------------------------------------------------------------------------ enrollment


async def test_enroll_stores_state(fake_server: FakeServer, config: AgentConfig) -> None:
    state = await enrolled(fake_server, config)
    assert state.device_id in fake_server.devices
    assert fake_server.devices[state.device_id].public_key == state.public_key
    loaded = await asyncio.to_thread(AgentState.load, config.state_dir)
    assert loaded.device_id == state.device_id
    assert loaded.spki_sha256 == fake_server.certificate.spki_sha256
    assert loaded.server_url == fake_server.url
    assert (os.stat(config.state_dir).st_mode & 0o777) == 0o700


async def test_token_reuse_is_refused_with_a_sentence(fake_server: FakeServer, tmp_path: Path) -> None:
    token = fake_server.create_token()
    await enroll(fake_server.url, token, fast_config(tmp_path / "a"))
    with pytest.raises(ServerRefused) as info:
        await enroll(fake_server.url, token, fast_config(tmp_path / "b"))
    assert info.value.code == ErrorCode.TOKEN_USED
    assert "already been used" in str(info.value)
    assert not (tmp_path / "b").exists()


async def test_unknown_token_is_refused(fake_server: FakeServer, config: AgentConfig) -> None:
    real = fake_server.create_token()
    token = EnrollmentToken(os.urandom(24), real.spki_sha256, real.org_public_key)
    with pytest.raises(ServerRefused, match="does not know this enrollment token"):
        await enroll(fake_server.url, token, config)


async def test_pin_mismatch_at_enroll_stores_nothing(fake_server: FakeServer, config: AgentConfig) -> None:
    real = fake_server.create_token()
    token = EnrollmentToken(real.secret, os.urandom(32), real.org_public_key)
    with pytest.raises(PinMismatch):
        await enroll(fake_server.url, token, config)
    assert not config.state_dir.exists()
    assert fake_server.connections == 0
    assert fake_server.tokens[real.secret_hash] == "unused"  # the secret never left the agent


async def test_forged_org_signature_stores_nothing(fake_server: FakeServer, config: AgentConfig) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    fake_server.forge_org_key = Ed25519PrivateKey.generate()
    with pytest.raises(OrgKeyMismatch, match="not signed by the organisation key"):
        await enrolled(fake_server, config)
    assert not config.state_dir.exists()


async def test_enroll_twice_needs_force(fake_server: FakeServer, config: AgentConfig) -> None:
    first = await enrolled(fake_server, config)
    with pytest.raises(StateError, match="already enrolled"):
        await enrolled(fake_server, config)
    second = await enroll(fake_server.url, fake_server.create_token(), config, force=True)
    assert second.device_id != first.device_id
    assert (await asyncio.to_thread(AgentState.load, config.state_dir)).device_id == second.device_id


# ------------------------------------------------------------------------------------------ running


async def test_run_goes_online_sends_inventory_and_heartbeats(
    fake_server: FakeServer, config: AgentConfig, backend: FakeBackend
) -> None:
    state = await enrolled(fake_server, config)
    runtime = Runtime(state, config, backend)
    async with running(runtime):
        await asyncio.wait_for(runtime.wait_online(), scaled(5))
        await wait_for(lambda: len(fake_server.heartbeats.get(state.device_id, [])) >= 3, what="3 heartbeats")
        inventories = fake_server.inventories[state.device_id]
        assert inventories[0].hostname == "fake-host"
        # the inventory is re-checked every 0.2 s but, unchanged, sent only once
        checks = backend.inventory_calls
        await wait_for(lambda: backend.inventory_calls >= checks + 3, what="more inventory checks")
        assert len(fake_server.inventories[state.device_id]) == 1
        assert fake_server.heartbeats[state.device_id][0].cpu_percent == 12.5
        assert runtime.statistics()["online"] is True


async def test_changed_inventory_is_sent_again(
    fake_server: FakeServer, config: AgentConfig, backend: FakeBackend
) -> None:
    state = await enrolled(fake_server, config)
    runtime = Runtime(state, config, backend)
    async with running(runtime):
        await wait_for(lambda: fake_server.inventories.get(state.device_id), what="first inventory")
        backend.packages.append(Package(name="htop", version="3.2"))
        sent = await wait_for(
            lambda: (
                len(fake_server.inventories[state.device_id]) == 2
                and fake_server.inventories[state.device_id]
            ),
            what="changed inventory",
        )
        assert [p.name for p in sent[1].packages] == ["steun-agent", "htop"]


async def test_inventory_failure_does_not_break_the_connection(
    fake_server: FakeServer, config: AgentConfig, backend: FakeBackend
) -> None:
    backend.fail_inventory = True
    state = await enrolled(fake_server, config)
    runtime = Runtime(state, config, backend)
    async with running(runtime):
        await wait_for(lambda: backend.inventory_calls >= 2, what="two failed collections")
        assert runtime.online
        backend.fail_inventory = False
        await wait_for(lambda: fake_server.inventories.get(state.device_id), what="inventory after recovery")
        assert runtime.statistics()["connects"] == 1


async def test_reconnects_after_server_restart(
    fake_server: FakeServer, config: AgentConfig, backend: FakeBackend
) -> None:
    state = await enrolled(fake_server, config)
    runtime = Runtime(state, config, backend)
    async with running(runtime):
        await wait_for(lambda: fake_server.inventories.get(state.device_id), what="online with inventory")
        await fake_server.stop()
        await wait_for(lambda: not runtime.online, what="agent notices")
        await wait_for(lambda: runtime.statistics()["failed_attempts"] >= 3, what="failed reconnects")
        await fake_server.start()  # same port, same key
        await wait_for(lambda: state.device_id in fake_server.online, what="back online")
        await wait_for(lambda: len(fake_server.inventories[state.device_id]) == 2, what="inventory re-sent")
        assert runtime.statistics()["connects"] == 2


async def test_revoked_device_stops_retrying(
    fake_server: FakeServer, config: AgentConfig, backend: FakeBackend
) -> None:
    state = await enrolled(fake_server, config)
    fake_server.devices[state.device_id].revoked = True
    runtime = Runtime(state, config, backend)
    with pytest.raises(ServerRefused) as info:
        await asyncio.wait_for(runtime.run(), scaled(5))
    assert info.value.code == ErrorCode.DEVICE_REVOKED
    assert info.value.fatal
    assert fake_server.connections == 2  # the enrollment and one attempt: no retry loop


async def test_unknown_device_keeps_retrying(
    fake_server: FakeServer, config: AgentConfig, backend: FakeBackend
) -> None:
    state = await enrolled(fake_server, config)
    device = fake_server.devices.pop(state.device_id)
    runtime = Runtime(state, config, backend)
    async with running(runtime):
        await wait_for(lambda: runtime.statistics()["failed_attempts"] >= 2, what="refused attempts")
        assert "did not accept this device" in runtime.statistics()["last_error"]
        fake_server.devices[device.id] = device  # e.g. the database was restored
        await asyncio.wait_for(runtime.wait_online(), scaled(5))


async def test_pin_mismatch_on_run_is_fatal(
    fake_server: FakeServer, config: AgentConfig, backend: FakeBackend
) -> None:
    state = await enrolled(fake_server, config)
    other = AgentState(
        device_id=state.device_id,
        private_key=state.private_key,
        server_url=state.server_url,
        spki_sha256=os.urandom(32),
        org_public_key=state.org_public_key,
    )
    with pytest.raises(PinMismatch):
        await asyncio.wait_for(Runtime(other, config, backend).run(), scaled(5))
    assert fake_server.connections == 1  # only the enrollment's


async def test_stop_closes_cleanly(
    fake_server: FakeServer, config: AgentConfig, backend: FakeBackend
) -> None:
    state = await enrolled(fake_server, config)
    runtime = Runtime(state, config, backend)
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(runtime.wait_online(), scaled(5))
    runtime.stop()
    await asyncio.wait_for(task, scaled(5))
    await wait_for(lambda: state.device_id not in fake_server.online, what="server sees the close")
    assert not runtime.online


async def test_stop_while_waiting_to_reconnect(
    tmp_path: Path, backend: FakeBackend, fake_server: FakeServer
) -> None:
    config = fast_config(tmp_path, backoff_base=30.0, backoff_cap=60.0)
    state = await enrolled(fake_server, config)
    await fake_server.stop()
    runtime = Runtime(state, config, backend)
    task = asyncio.create_task(runtime.run())
    await wait_for(lambda: runtime.statistics()["failed_attempts"] >= 1, what="first failure")
    runtime.stop()
    await asyncio.wait_for(task, scaled(2))  # does not sit out a delay of up to 30 s


async def test_backoff_resets_after_a_stable_connection(
    fake_server: FakeServer, tmp_path: Path, backend: FakeBackend
) -> None:
    config = fast_config(tmp_path, stable_after=0.3)
    state = await enrolled(fake_server, config)
    runtime = Runtime(state, config, backend)
    async with running(runtime):
        await wait_for(lambda: state.device_id in fake_server.online, what="online")
        runtime.backoff.attempt = 5  # as if many attempts had failed before
        await wait_for(lambda: runtime._authenticated_at is not None, what="authenticated")
        loop = asyncio.get_running_loop()
        up_since = runtime._authenticated_at
        assert up_since is not None
        await wait_for(lambda: loop.time() - up_since > 0.35, what="stable connection")
        await fake_server.kick(state.device_id)
        await wait_for(lambda: runtime.statistics()["connects"] == 2, what="reconnect")
        assert runtime.backoff.attempt == 1  # reset to 0, then one delay drawn


class EchoCapability(TaskCapability):
    """A capability that answers ``diagnostics/run`` with nothing accepted, and counts its starts and stops."""

    name = "echo"

    def __init__(self) -> None:
        super().__init__()
        self.starts = 0
        self.stops = 0

    @property
    def handlers(self) -> Mapping[type[Request], Handler]:
        return {DiagnosticsRun: self._run}

    async def _run(self, request: Request) -> Payload:
        assert isinstance(request, DiagnosticsRun)
        if request.run_id == "refuse":
            raise ServerRefused(ErrorCode.OVERLOADED, "busy")
        return DiagnosticsAccepted(accepted=[], unknown=[request.run_id])

    async def start(self, session: Session) -> None:
        self.starts += 1

    async def stop(self) -> None:
        self.stops += 1
        await super().stop()


async def test_server_requests_reach_capability_handlers(
    fake_server: FakeServer, config: AgentConfig, backend: FakeBackend
) -> None:
    state = await enrolled(fake_server, config)
    echo = EchoCapability()
    runtime = Runtime(state, config, backend, [echo])
    async with running(runtime):
        await wait_for(lambda: state.device_id in fake_server.online, what="online")
        await fake_server.ask(state.device_id, DiagnosticsRun(run_id="r1"))
        await fake_server.ask(state.device_id, DiagnosticsRun(run_id="refuse"))
        await wait_for(lambda: len(fake_server.replies) == 2, what="two replies")
        ok, refused = fake_server.replies
        assert isinstance(ok, ResultReceived) and ok.result == DiagnosticsAccepted(
            accepted=[], unknown=["r1"]
        )
        assert isinstance(refused, ErrorReceived) and refused.code == ErrorCode.OVERLOADED
        await fake_server.kick(state.device_id)
        await wait_for(lambda: echo.starts == 2, what="restarted on the new connection")
        assert echo.stops == 1


async def test_server_request_without_handler_is_refused(
    fake_server: FakeServer, config: AgentConfig, backend: FakeBackend
) -> None:
    state = await enrolled(fake_server, config)
    runtime = Runtime(state, config, backend)
    async with running(runtime):
        await wait_for(lambda: state.device_id in fake_server.online, what="online")
        await fake_server.ask(state.device_id, DiagnosticsRun(run_id="r1"))
        reply = await wait_for(lambda: fake_server.replies and fake_server.replies[0], what="reply")
        assert isinstance(reply, ErrorReceived) and reply.code == ErrorCode.UNKNOWN_TYPE
        assert runtime.online  # refusing one request does not end the connection


async def test_replaced_connection_backs_off_fully(
    fake_server: FakeServer, tmp_path: Path, backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    config = fast_config(tmp_path, backoff_cap=0.2)
    state = await enrolled(fake_server, config)
    runtime = Runtime(state, config, backend)
    with caplog.at_level(logging.WARNING, logger="steun_agent"):
        async with running(runtime):
            await wait_for(lambda: state.device_id in fake_server.online, what="online")
            await fake_server.kick(state.device_id, CLOSE_REPLACED, "replaced")
            await wait_for(lambda: runtime.backoff.attempt >= 62, what="saturated backoff")
            await wait_for(lambda: runtime.statistics()["connects"] == 2, what="reconnect after the delay")
    assert "replaced this one" in caplog.text
