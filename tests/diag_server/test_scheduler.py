"""Scheduled runs: per group interval, online devices only, one run per device, bounded concurrency, jitter."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from steun_protocol.diagnostics import DiagnosticsRun

from tests.support.server import RunningServer
from tests.support.waiting import scaled, wait_for

from .helpers import admin_console, diagnostics, online_device, result, serve_run

HOUR = 3600


@pytest.fixture
async def ticking_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A server whose scheduler looks every 0.1 s and runs never-run devices at once."""
    running = await RunningServer.create(
        tmp_path / "data",
        overrides={"diagnostics_schedule_tick": 0.1, "diagnostics_first_run_spread": 0.0},
    )
    try:
        yield running
    finally:
        await running.stop()


async def test_the_scheduler_runs_online_devices_of_scheduled_groups(ticking_server: RunningServer) -> None:
    server = ticking_server
    identity, agent = await online_device(server)
    console = await admin_console(server)
    try:
        await console.result("diagnostics/policy/set", group="default", policy={}, interval=HOUR)
        request = await serve_run(agent, [result("os.uptime", value=3)])
        assert isinstance(request, DiagnosticsRun)
        assert request.groups == [] and request.checks == []  # the whole catalogue
        service = diagnostics(server)
        await wait_for(lambda: not service.busy(identity.device_id or ""), what="the scheduled run to close")
        runs = await console.result("diagnostics/runs", device_id=identity.device_id)
        assert [(r["trigger"], r["requested_by"], r["state"]) for r in runs["runs"]] == [
            ("schedule", None, "done")
        ]
        # the next one is an interval (plus at most 10 % jitter) later
        due = service.scheduler.due(identity.device_id or "")
        assert due is not None
        started = runs["runs"][0]["started_at"]
        assert started + HOUR <= due <= started + 1.1 * HOUR + 1
    finally:
        await console.close()
        await agent.close()


async def test_due_runs_bounded_concurrency_and_offline_devices(server: RunningServer) -> None:
    service = diagnostics(server)
    service.settings = dataclasses.replace(service.settings, max_scheduled_runs=1, first_run_spread=60.0)
    scheduler = service.scheduler
    a, agent_a = await online_device(server, hostname="pc-a")
    b, agent_b = await online_device(server, hostname="pc-b")
    offline, offline_agent = await online_device(server, hostname="pc-off")
    await offline_agent.close()
    await wait_for(lambda: not service.fleet.presence.online(offline.device_id or ""), what="pc-off offline")
    console = await admin_console(server)
    try:
        assert await scheduler.tick() == 0  # no group has a schedule
        await console.result("diagnostics/policy/set", group="default", policy={}, interval=HOUR)
        now = time.time()
        assert await scheduler.tick(now=now - 1000) == 0  # nothing is due yet: first runs spread over 60 s
        assert {d for d in (a.device_id, b.device_id) if scheduler.due(d or "") is not None} == {
            a.device_id,
            b.device_id,
        }
        assert scheduler.due(offline.device_id or "") is None
        for device in (a, b):
            due = scheduler.due(device.device_id or "")
            assert due is not None and now - 1000 <= due <= now - 1000 + 60

        # both are due, but one scheduled run at a time on this node
        assert await scheduler.tick(now=now) == 1
        first = await _serve_whichever(agent_a, agent_b)
        await scheduler.wait_idle()
        assert await scheduler.tick(now=now) == 1
        second = await _serve_whichever(agent_a, agent_b)
        await scheduler.wait_idle()
        assert {first, second} == {"pc-a", "pc-b"}
        assert await scheduler.tick(now=now) == 0  # both ran; next time is an hour on

        # an interval change is taken at once, counted from the last run
        await console.result("diagnostics/policy/set", group="default", policy={}, interval=120)
        assert await scheduler.tick(now=now) == 0
        due_a = scheduler.due(a.device_id or "")
        assert due_a is not None and now + 120 <= due_a <= now + 120 + 12 + 5

        # a technician's run in progress: the scheduled one waits for the next tick
        busy = asyncio.create_task(serve_run(agent_a, [result("os.uptime")], done=False))
        started = await console.result("diagnostics/run", device_id=a.device_id)
        run = await busy
        later = now + 1000
        service.settings = dataclasses.replace(service.settings, max_scheduled_runs=5)
        assert await scheduler.tick(now=later) == 1  # pc-b only
        assert scheduler.skipped_busy == 1
        await _serve_whichever(agent_b)
        await scheduler.wait_idle()
        from steun_protocol.diagnostics import DiagnosticsDone

        await agent_a.request(
            DiagnosticsDone(run_id=run.run_id, counts={"pass": 1}, checks=1, results=1, wall_ms=1.0)
        )
        await console.events_until_done(started["_id"])
        # no schedule: nothing tracked any more
        await console.result("diagnostics/policy/set", group="default", policy={}, interval=None)
        assert await scheduler.tick(now=later + 10_000) == 0
        assert scheduler.statistics()["tracked"] == 0
    finally:
        await console.close()
        await agent_a.close()
        await agent_b.close()


async def _serve_whichever(*agents: object) -> str:
    """Serve the scheduled run that arrives at one of ``agents``; returns its hostname."""
    from tests.support.agent_client import AgentClient

    clients = [a for a in agents if isinstance(a, AgentClient)]
    waits = {asyncio.create_task(c.server_requests.get()): c for c in clients}
    done, pending = await asyncio.wait(waits, timeout=scaled(10), return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    assert done, "no scheduled run arrived"
    task = done.pop()
    client = waits[task]
    request = task.result()
    client.server_requests.put_nowait(request)  # serve_run reads it again
    await serve_run(client, [result("os.uptime", value=1)])
    return {c: n for c, n in zip(clients, ("pc-a", "pc-b"), strict=False)}[client]
