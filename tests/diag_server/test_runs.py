"""A run's life on the real server with a protocol-level agent: start, stream, store, close (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from steun_protocol.diagnostics import DiagnosticsAccepted, DiagnosticsDone, DiagnosticsResult, DiagnosticsRun
from steun_protocol.errors import ErrorCode

from tests.support.agent_client import AgentError
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

from .helpers import admin_console, diagnostics, online_device, result, run_on, serve_run


async def test_run_streams_results_then_done_and_stores_them(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity, agent = await online_device(server)
    console = await admin_console(server)
    try:
        results = [
            result(
                "disk.free", "warn", value=20.0, subject="/", thresholds={"warn_below": 25, "fail_below": 10}
            ),
            result("memory.usage", "pass", value=41.5),
        ]
        serving = asyncio.create_task(serve_run(agent, results))
        started = await console.result("diagnostics/run", device_id=identity.device_id, groups=["hardware"])
        request = await serving
        # what the agent was sent: the group's policy merged over the catalogue's defaults, and the server
        assert isinstance(request, DiagnosticsRun)
        assert request.groups == ["hardware"]
        assert request.policy.thresholds["disk.free"] == {"warn_below": 25.0, "fail_below": 10.0}
        assert request.policy.server_host == "127.0.0.1"
        assert request.policy.server_port == server.port
        assert request.policy.expected_ports == [22]
        assert started["run"]["state"] == "running"
        assert started["run"]["trigger"] == "console"
        assert started["run"]["requested_by"] == server.admin_username
        assert started["accepted"] == ["disk.free", "memory.usage"]

        events = await console.events_until_done(started["_id"])
        assert [e["kind"] for e in events] == ["result", "result", "done"]
        assert [e["result"]["result"]["check_id"] for e in events[:2]] == ["disk.free", "memory.usage"]
        done = events[-1]["run"]
        assert done["state"] == "done"
        assert done["results"] == 2
        assert done["checks"] == 2
        assert done["counts"]["warn"] == 1
        assert done["counts"]["pass"] == 1
        assert done["wall_ms"] == 12.5

        latest = await console.result("diagnostics/latest", device_id=identity.device_id)
        by_check = {r["check_id"]: r for r in latest["results"]}
        assert by_check["disk.free"]["subject"] == "/"
        assert by_check["disk.free"]["status"] == "warn"
        assert by_check["disk.free"]["failing_since"] == by_check["disk.free"]["time"]
        assert by_check["disk.free"]["result"]["kb_key"] == "kb.disk.free"
        assert by_check["memory.usage"]["failing_since"] is None
        assert latest["running"] is None
        assert latest["last_run"]["id"] == started["run"]["id"]

        runs = await console.result("diagnostics/runs", device_id=identity.device_id)
        assert [r["state"] for r in runs["runs"]] == ["done"]
        assert runs["runs"][0]["groups"] == ["hardware"]
        assert not diagnostics(server).busy(identity.device_id)
    finally:
        await console.close()
        await agent.close()


async def test_failing_since_survives_errors_and_ends_with_a_pass(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity, agent = await online_device(server)
    console = await admin_console(server)
    device_id = identity.device_id
    assert device_id is not None
    try:

        async def latest_disk() -> dict[str, object]:
            body = await console.result("diagnostics/latest", device_id=device_id)
            return next(r for r in body["results"] if r["check_id"] == "disk.free")

        await run_on(console, agent, device_id, [result("disk.free", "fail", value=8.0, subject="/")])
        first = await latest_disk()
        assert first["failing_since"] == first["time"]
        await run_on(console, agent, device_id, [result("disk.free", "warn", value=12.0, subject="/")])
        second = await latest_disk()
        assert second["failing_since"] == first["time"]
        # "could not tell" neither starts nor ends a streak
        await run_on(console, agent, device_id, [result("disk.free", "error", subject="/")])
        third = await latest_disk()
        assert third["status"] == "error"
        assert third["failing_since"] == first["time"]
        await run_on(console, agent, device_id, [result("disk.free", "pass", value=50.0, subject="/")])
        fourth = await latest_disk()
        assert fourth["status"] == "pass"
        assert fourth["failing_since"] is None

        history = await console.result(
            "diagnostics/history", device_id=device_id, check_id="disk.free", subject="/"
        )
        assert history["unit"] == "%"
        assert [p["value"] for p in history["points"]] == [8.0, 12.0, None, 50.0]
        assert [p["status"] for p in history["points"]] == ["fail", "warn", "error", "pass"]
        newest = await console.result(
            "diagnostics/history", device_id=device_id, check_id="disk.free", subject="/", limit=2
        )
        assert [p["value"] for p in newest["points"]] == [None, 50.0]
        other_item = await console.result(
            "diagnostics/history", device_id=device_id, check_id="disk.free", subject="/home"
        )
        assert other_item["points"] == []
    finally:
        await console.close()
        await agent.close()


async def test_items_that_stop_reporting_leave_the_latest_results(server: RunningServer) -> None:
    identity, agent = await online_device(server)
    console = await admin_console(server)
    assert identity.device_id is not None
    try:
        await run_on(
            console,
            agent,
            identity.device_id,
            [
                result("disk.free", "pass", value=50.0, subject="/"),
                result("disk.free", "fail", value=1.0, subject="/mnt/usb"),
            ],
        )
        await run_on(
            console, agent, identity.device_id, [result("disk.free", "pass", value=50.0, subject="/")]
        )
        latest = await console.result("diagnostics/latest", device_id=identity.device_id)
        assert [(r["check_id"], r["subject"]) for r in latest["results"]] == [("disk.free", "/")]
    finally:
        await console.close()
        await agent.close()


async def test_disconnect_closes_the_run(server: RunningServer) -> None:
    identity, agent = await online_device(server)
    console = await admin_console(server)
    try:
        serving = asyncio.create_task(serve_run(agent, [result("os.uptime", "pass", value=2)], done=False))
        started = await console.result("diagnostics/run", device_id=identity.device_id)
        await serving
        first = await console.next_event(started["_id"])
        assert first["kind"] == "result"
        await agent.close()
        done = await console.next_event(started["_id"])
        assert done["kind"] == "done"
        assert done["run"]["state"] == "disconnected"
        assert done["run"]["results"] == 1
        assert not diagnostics(server).busy(identity.device_id or "")
    finally:
        await console.close()


async def test_a_run_without_done_times_out(server: RunningServer) -> None:
    service = diagnostics(server)
    service.settings = dataclasses.replace(service.settings, run_margin=0.0)
    identity, agent = await online_device(server)
    console = await admin_console(server)
    try:
        await console.result(
            "diagnostics/policy/set", group="default", policy={"check_timeout": 0.2}, interval=None
        )
        serving = asyncio.create_task(serve_run(agent, [result("os.uptime", "pass", value=2)], done=False))
        started = await console.result("diagnostics/run", device_id=identity.device_id)
        request = await serving
        assert started["timeout"] == pytest.approx(0.7)
        events = await console.events_until_done(started["_id"])
        assert events[-1]["run"]["state"] == "timeout"
        # a late result for the closed run is refused: the agent stops sending
        with pytest.raises(AgentError) as refused:
            await agent.request(DiagnosticsResult(run_id=request.run_id, result=result("os.uptime")))
        assert refused.value.code == ErrorCode.NOT_FOUND
    finally:
        await console.close()
        await agent.close()


async def test_offline_busy_and_refused_runs(server: RunningServer) -> None:
    identity, agent = await online_device(server)
    other, other_agent = await online_device(server, hostname="pc-043")
    console = await admin_console(server)
    try:
        assert await console.error("diagnostics/run", device_id="no-such-device") == "offline"
        assert await console.error(
            "diagnostics/run", device_id=identity.device_id, checks=["no.such_test"]
        ) == (ErrorCode.INVALID_MESSAGE)

        serving = asyncio.create_task(serve_run(agent, [result("os.uptime")], done=False))
        started = await console.result("diagnostics/run", device_id=identity.device_id)
        request = await serving
        # one run per device at a time
        assert await console.error("diagnostics/run", device_id=identity.device_id) == "busy"
        # another device cannot post into this run, nor end it
        with pytest.raises(AgentError) as foreign:
            await other_agent.request(DiagnosticsResult(run_id=request.run_id, result=result("os.uptime")))
        assert foreign.value.code == ErrorCode.NOT_FOUND
        with pytest.raises(AgentError):
            await other_agent.request(
                DiagnosticsDone(run_id=request.run_id, counts={}, checks=0, results=0, wall_ms=1.0)
            )
        # a test the agent did not accept is refused
        with pytest.raises(AgentError) as unaccepted:
            await agent.request(DiagnosticsResult(run_id=request.run_id, result=result("disk.free")))
        assert unaccepted.value.code == ErrorCode.INVALID_MESSAGE
        await agent.request(
            DiagnosticsDone(run_id=request.run_id, counts={"pass": 1}, checks=1, results=1, wall_ms=3.0)
        )
        events = await console.events_until_done(started["_id"])
        assert events[-1]["run"]["state"] == "done"

        # the agent refuses (two runs of its own already): the console hears "busy"
        async def refuse() -> None:
            req = await agent.next_server_request()
            await agent.reply_error(req.id, ErrorCode.OVERLOADED, "2 diagnostics runs are in progress")

        refusing = asyncio.create_task(refuse())
        assert await console.error("diagnostics/run", device_id=identity.device_id) == "busy"
        await refusing
        runs = await console.result("diagnostics/runs", device_id=identity.device_id)
        assert runs["runs"][0]["state"] == "rejected"
        assert not diagnostics(server).busy(identity.device_id or "")
    finally:
        await console.close()
        await agent.close()
        await other_agent.close()
        del other


async def test_cancelled_run_and_results_before_the_accept(server: RunningServer) -> None:
    identity, agent = await online_device(server)
    console = await admin_console(server)
    try:

        async def eager() -> None:
            request = await agent.next_server_request()
            assert isinstance(request, DiagnosticsRun)
            # results may overtake the answer to diagnostics/run: the server takes them
            await agent.request(DiagnosticsResult(run_id=request.run_id, result=result("os.uptime", value=1)))
            await agent.reply(request.id, DiagnosticsAccepted(accepted=["os.uptime"]))
            await agent.request(
                DiagnosticsDone(
                    run_id=request.run_id,
                    counts={"pass": 1},
                    checks=1,
                    results=1,
                    wall_ms=1.0,
                    cancelled=True,
                )
            )

        task = asyncio.create_task(eager())
        started = await console.result("diagnostics/run", device_id=identity.device_id, checks=["os.uptime"])
        await task
        events = await console.events_until_done(started["_id"])
        assert [e["kind"] for e in events] == ["result", "done"]
        assert events[-1]["run"]["state"] == "cancelled"
    finally:
        await console.close()
        await agent.close()


async def test_unsubscribing_keeps_the_run_going(server: RunningServer) -> None:
    identity, agent = await online_device(server)
    console = await admin_console(server)
    try:
        serving = asyncio.create_task(serve_run(agent, [result("os.uptime")], done=False))
        started = await console.result("diagnostics/run", device_id=identity.device_id)
        request = await serving
        await console.result("unsubscribe", subscription=started["_id"])
        await agent.request(
            DiagnosticsDone(run_id=request.run_id, counts={"pass": 1}, checks=1, results=1, wall_ms=1.0)
        )
        service = diagnostics(server)
        await wait_for(lambda: not service.busy(identity.device_id or ""), what="the run to close")
        runs = await console.result("diagnostics/runs", device_id=identity.device_id)
        assert runs["runs"][0]["state"] == "done"
    finally:
        await console.close()
        await agent.close()
