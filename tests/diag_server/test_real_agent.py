"""The real agent (runtime + diagnostics capability) against the real server: runs from the console websocket.

Nothing is mocked: the agent enrolls with a real token, connects over TLS, and its ``DiagnosticsCapability``
runs the real catalogue, on the faithful fake backend (to make one test hang) or on the real Linux backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from steun_agent.backends.linux import LinuxBackend
from steun_agent.capabilities.inventory import InventoryCapability
from steun_agent.config import AgentConfig
from steun_agent.diagnostics import DiagnosticsCapability
from steun_agent.diagnostics.fake import FakeDiagnostics
from steun_agent.enrollment import enroll, parse_token
from steun_agent.runtime import Runtime
from steun_agent.state import AgentState
from steun_protocol.catalogue import load_catalogue

from tests.support.server import RunningServer
from tests.support.waiting import wait_for

from .helpers import Console, admin_console, diagnostics


def agent_config(state_dir: Path) -> AgentConfig:
    return AgentConfig(
        state_dir=state_dir,
        backoff_base=0.05,
        backoff_cap=0.5,
        stable_after=1.0,
        inventory_interval=60.0,
        request_timeout=10.0,
        open_timeout=5.0,
        close_timeout=2.0,
    )


async def enroll_agent(server: RunningServer, state_dir: Path) -> tuple[AgentState, AgentConfig]:
    config = agent_config(state_dir)
    token = parse_token(await server.create_enrollment_token())
    return await enroll(server.url, token, config), config


@contextlib.asynccontextmanager
async def real_agent(
    server: RunningServer, state_dir: Path, diagnostics_capability: DiagnosticsCapability
) -> AsyncIterator[AgentState]:
    """A real agent process's runtime, enrolled and online until the block ends."""
    state, config = await enroll_agent(server, state_dir)
    backend = await asyncio.to_thread(LinuxBackend)
    runtime = Runtime(
        state,
        config,
        backend,
        [InventoryCapability(backend, config.inventory_interval), diagnostics_capability],
    )
    task = asyncio.create_task(runtime.run())
    presence = diagnostics(server).fleet.presence
    try:
        await wait_for(lambda: presence.online(state.device_id), timeout=15, what="the agent online")
        yield state
    finally:
        runtime.stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await task
        await diagnostics_capability.close()


async def test_a_hanging_test_times_out_without_delaying_the_others(
    server: RunningServer, tmp_path: Path
) -> None:
    fake = FakeDiagnostics()
    fake.hang.add("boot_time")  # os.uptime asks for it: like a hung /proc read
    capability = DiagnosticsCapability(fake, sample_interval=None)
    console: Console | None = None
    try:
        async with real_agent(server, tmp_path / "agent", capability) as state:
            console = await admin_console(server)
            await console.result("diagnostics/policy/set", group="default", policy={"check_timeout": 2.0})
            sent_at = time.time()
            started = await console.result(
                "diagnostics/run", device_id=state.device_id, groups=["hardware", "os"]
            )
            assert "os.uptime" in started["accepted"] and "disk.free" in started["accepted"]
            events = await console.events_until_done(started["_id"], timeout=20)
            done = events[-1]["run"]
            results = [e["result"] for e in events[:-1]]
            assert done["state"] == "done"
            assert done["timed_out"] == ["os.uptime"]
            assert {r["result"]["check_id"] for r in results} == set(started["accepted"])
            uptime = next(r for r in results if r["result"]["check_id"] == "os.uptime")
            assert uptime["result"]["status"] == "error"
            assert uptime["result"]["summary_key"] == "common.timeout"
            # every other test had reported before the hung one was given up on (2 s timeout)
            others = [r for r in results if r["result"]["check_id"] != "os.uptime"]
            assert max(r["time"] for r in others) < sent_at + 2.0 <= uptime["time"]
            assert (
                events[-2]["result"]["result"]["check_id"] == "os.uptime"
            )  # streamed last, after the others
            # the whole run stayed within the agent's own bound (timeout + grace) plus the network
            assert done["finished_at"] - done["started_at"] < 2.0 + 0.5 + 1.0
            latest = await console.result("diagnostics/latest", device_id=state.device_id)
            assert {r["check_id"] for r in latest["results"]} == set(started["accepted"])
    finally:
        fake.release()
        if console is not None:
            await console.close()


async def test_the_real_linux_catalogue_runs_end_to_end(server_any_db: RunningServer, tmp_path: Path) -> None:
    capability = DiagnosticsCapability(sample_interval=None)  # the real Linux backend
    console: Console | None = None
    try:
        async with real_agent(server_any_db, tmp_path / "agent", capability) as state:
            console = await admin_console(server_any_db)
            started = await console.result("diagnostics/run", device_id=state.device_id)
            catalogue = load_catalogue()
            assert set(started["accepted"]) == {c.id for c in catalogue.checks}
            events = await console.events_until_done(started["_id"], timeout=30)
            done = events[-1]["run"]
            assert done["state"] == "done"
            reported = {e["result"]["result"]["check_id"] for e in events[:-1]}
            assert reported == set(started["accepted"])
            assert done["results"] == len(events) - 1
            # numeric tests have a history point from this run
            history = await console.result(
                "diagnostics/history", device_id=state.device_id, check_id="memory.usage"
            )
            assert len(history["points"]) == 1
            assert history["points"][0]["value"] is not None
            statuses = await console.result("diagnostics/statuses")
            assert [d["device_id"] for d in statuses["devices"]] == [state.device_id]
    finally:
        if console is not None:
            await console.close()
