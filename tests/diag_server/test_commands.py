"""Console commands beyond a single run: policy, the fleet view, worst statuses, catalogue, permissions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from steun_protocol.diagnostics import DiagnosticsRun
from steun_protocol.errors import ErrorCode
from steun_server.diagnostics import store
from steun_server.web import AUDIT

from tests.support.api import ApiClient, create_user
from tests.support.server import RunningServer

from .helpers import Console, admin_console, diagnostics, online_device, result, run_on, serve_run


async def test_group_policy_is_validated_merged_and_sent(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity, agent = await online_device(server)
    console = await admin_console(server)
    try:
        empty = await console.result("diagnostics/policy/get", group="default")
        assert empty["interval"] is None
        assert empty["policy"]["thresholds"] == {}
        assert empty["effective"]["thresholds"]["disk.free"] == {"warn_below": 25.0, "fail_below": 10.0}

        policy = {
            "thresholds": {"disk.free": {"warn_below": 30}},
            "required_software": [{"name": "firefox-esr", "min_version": "115"}],
            "expected_ports": [22, 443],
            "https_urls": ["https://intranet.example.org/"],
            "dns_names": ["intranet.example.org"],
            "disabled": ["battery.health"],
        }
        saved = await console.result("diagnostics/policy/set", group="default", policy=policy, interval=3600)
        assert saved["interval"] == 3600
        assert saved["updated_by"] == server.admin_username
        assert saved["policy"]["thresholds"] == {"disk.free": {"warn_below": 30.0}}
        assert saved["effective"]["thresholds"]["disk.free"] == {"warn_below": 30.0, "fail_below": 10.0}
        assert saved["effective"]["thresholds"]["memory.usage"]["warn_at"] == 70.0
        assert saved["effective"]["expected_ports"] == [22, 443]
        assert saved["effective"]["dns_names"] == ["intranet.example.org"]
        again = await console.result("diagnostics/policy/get", group="default")
        assert again["policy"] == saved["policy"]

        listed = await console.result("diagnostics/policy/list")
        default = next(g for g in listed["groups"] if g["group"] == "default")
        assert default == {
            "group": "default",
            "description": default["description"],
            "devices": 1,
            "interval": 3600,
            "customised": True,
        }

        # what a run sends is the merged policy
        serving = asyncio.create_task(serve_run(agent, [result("disk.free", value=40.0, subject="/")]))
        started = await console.result("diagnostics/run", device_id=identity.device_id, checks=["disk.free"])
        request = await serving
        assert isinstance(request, DiagnosticsRun)
        assert request.policy.thresholds["disk.free"] == {"warn_below": 30.0, "fail_below": 10.0}
        assert [s.name for s in request.policy.required_software] == ["firefox-esr"]
        assert request.policy.disabled == ["battery.health"]
        await console.events_until_done(started["_id"])
        # ... and it is stored with the run
        stored = await store.run_policy(diagnostics(server).db, started["run"]["id"])
        assert stored is not None
        assert stored.thresholds["disk.free"]["warn_below"] == 30.0

        bad = [
            ({"thresholds": {"disk.free": {"warn_at": 5}}}, None),  # disk.free has no warn_at
            ({"thresholds": {"no.such_test": {"warn_at": 5}}}, None),
            ({"disabled": ["no.such_test"]}, None),
            ({"thresholds": {"disk.free": {"fail_below": 40}}}, None),  # above warn_below 25
            ({}, 10),  # under a minute
            ({"expected_ports": [0]}, None),
            ({"https_urls": ["http://plain.example.org/"]}, None),
        ]
        for bad_policy, interval in bad:
            code = await console.error(
                "diagnostics/policy/set", group="default", policy=bad_policy, interval=interval
            )
            assert code == ErrorCode.INVALID_MESSAGE, bad_policy
        assert await console.error("diagnostics/policy/get", group="nope") == ErrorCode.NOT_FOUND
        assert await console.error("diagnostics/policy/set", group="nope", policy={}) == ErrorCode.NOT_FOUND
        # clearing the schedule
        cleared = await console.result("diagnostics/policy/set", group="default", policy={}, interval=None)
        assert cleared["interval"] is None
    finally:
        await console.close()
        await agent.close()


async def test_fleet_view_and_worst_statuses(server_any_db: RunningServer) -> None:
    server = server_any_db
    a, agent_a = await online_device(server, hostname="pc-a")
    b, agent_b = await online_device(server, hostname="pc-b")
    c, agent_c = await online_device(server, hostname="pc-c")
    console = await admin_console(server)
    try:
        statuses = await console.result("diagnostics/statuses")
        assert statuses["devices"] == []
        sub = statuses["_id"]

        assert a.device_id and b.device_id and c.device_id
        await run_on(
            console,
            agent_a,
            a.device_id,
            [result("disk.free", "fail", value=3.0, subject="/"), result("os.uptime", "warn", value=30)],
        )
        await run_on(
            console,
            agent_b,
            b.device_id,
            [result("disk.free", "warn", value=20.0, subject="/"), result("os.uptime")],
        )
        await run_on(
            console,
            agent_c,
            c.device_id,
            [result("disk.free", "pass", value=60.0, subject="/"), result("security.tpm", "not_applicable")],
        )

        changed = {}
        while len(changed) < 3:
            event = await console.next_event(sub)
            changed[event["device"]["device_id"]] = event["device"]
        assert changed[a.device_id]["worst"] == "fail"
        assert changed[a.device_id]["counts"] == {"fail": 1, "warn": 1}
        assert changed[b.device_id]["worst"] == "warn"
        assert changed[c.device_id]["worst"] == "pass"

        again = await console.result("diagnostics/statuses")
        assert {d["device_id"]: d["worst"] for d in again["devices"]} == {
            a.device_id: "fail",
            b.device_id: "warn",
            c.device_id: "pass",
        }

        fleet = await console.result("diagnostics/fleet", check_id="disk.free")
        assert [(d["hostname"], d["status"], d["subject"]) for d in fleet["failing"]] == [
            ("pc-a", "fail", "/"),
            ("pc-b", "warn", "/"),
        ]
        assert all(d["online"] for d in fleet["failing"])
        assert fleet["failing"][0]["result"]["value"] == 3.0
        only_fail = await console.result("diagnostics/fleet", check_id="disk.free", statuses=["fail"])
        assert [d["hostname"] for d in only_fail["failing"]] == ["pc-a"]
        top = {t["check_id"]: t for t in fleet["top"]}
        assert top["disk.free"] == {
            "check_id": "disk.free",
            "devices": 2,
            "results": 2,
            "fail": 1,
            "warn": 1,
            "kb_key": top["disk.free"]["kb_key"],
        }
        assert top["disk.free"]["kb_key"]
        assert top["os.uptime"]["devices"] == 1
        assert next(t["check_id"] for t in fleet["top"]) == "disk.free"  # on most devices first
        # a second failing run on one device counts results, not devices
        await run_on(console, agent_a, a.device_id, [result("os.uptime", "warn", value=31)])
        top = {t["check_id"]: t for t in (await console.result("diagnostics/fleet"))["top"]}
        assert top["os.uptime"]["devices"] == 1
        assert top["os.uptime"]["results"] == 2
        # older than the asked period: not counted
        old = await console.result("diagnostics/fleet", days=1)
        assert {t["check_id"] for t in old["top"]} == {"disk.free", "os.uptime"}
    finally:
        await console.close()
        for agent in (agent_a, agent_b, agent_c):
            await agent.close()


async def test_catalogue_in_every_language_or_one(server: RunningServer) -> None:
    console = await admin_console(server)
    try:
        full = await console.result("diagnostics/catalogue")
        assert full["local"] is None
        checks = {c["id"]: c for c in full["catalogue"]["checks"]}
        assert set(checks["disk.free"]["title"]) == {"en", "nl", "fr"}
        dutch = await console.result("diagnostics/catalogue", lang="nl")
        assert dutch["catalogue"] is None
        local = {c["id"]: c for c in dutch["local"]["checks"]}
        assert local["disk.free"]["title"] == checks["disk.free"]["title"]["nl"]
        assert local["disk.free"]["thresholds"] == {"warn_below": 25.0, "fail_below": 10.0}
        assert dutch["local"]["statuses"]["fail"] == full["catalogue"]["statuses"]["fail"]["nl"]
        assert await console.error("diagnostics/catalogue", lang="de") == ErrorCode.INVALID_MESSAGE
    finally:
        await console.close()


async def test_technicians_run_tests_but_only_admins_set_policy(server: RunningServer) -> None:
    identity, agent = await online_device(server)
    async with ApiClient(server.url) as admin:
        await admin.login_ok(server.admin_username, server.admin_password)
        password = await create_user(admin, "tech1", "technician")
        specialist_password = await create_user(admin, "spec1", "specialist")
    tech_client = ApiClient(server.url)
    await tech_client.login_ok("tech1", password)
    tech = await Console.open(tech_client)
    spec_client = ApiClient(server.url)
    await spec_client.login_ok("spec1", specialist_password)
    spec = await Console.open(spec_client)
    try:
        assert identity.device_id is not None
        started, events = await run_on(tech, agent, identity.device_id, [result("os.uptime")])
        assert started["run"]["requested_by"] == "tech1"
        assert events[-1]["run"]["state"] == "done"
        for command in ("diagnostics/latest", "diagnostics/runs"):
            await tech.result(command, device_id=identity.device_id)
        await tech.result("diagnostics/fleet", check_id="os.uptime")
        await tech.result("diagnostics/catalogue", lang="fr")
        await tech.result("diagnostics/history", device_id=identity.device_id, check_id="os.uptime")
        for console in (tech, spec):
            assert await console.error("diagnostics/policy/list") == ErrorCode.FORBIDDEN
            assert await console.error("diagnostics/policy/get", group="default") == ErrorCode.FORBIDDEN
            assert (
                await console.error("diagnostics/policy/set", group="default", policy={})
                == ErrorCode.FORBIDDEN
            )
        audit_log: Any = server.app[AUDIT]
        audit = [r.event for r in await audit_log.records(limit=1000)]
        assert "diagnostics.run_requested" in audit
    finally:
        await tech.close()
        await spec.close()
        await agent.close()


async def test_latest_of_unknown_device_and_retention(server_any_db: RunningServer) -> None:
    server = server_any_db
    identity, agent = await online_device(server)
    console = await admin_console(server)
    try:
        assert await console.error("diagnostics/latest", device_id="nope") == ErrorCode.NOT_FOUND
        assert identity.device_id is not None
        await run_on(
            console, agent, identity.device_id, [result("disk.free", "fail", value=2.0, subject="/")]
        )
        service = diagnostics(server)
        # nothing is old enough yet
        assert await service.maintain() == 0
        # a year later: results and runs go, the latest result of each test stays
        deleted = await service.maintain(now=time.time() + 365 * 86400)
        assert deleted == 2  # one result, one run
        runs = await console.result("diagnostics/runs", device_id=identity.device_id)
        assert runs["runs"] == []
        latest = await console.result("diagnostics/latest", device_id=identity.device_id)
        assert [r["check_id"] for r in latest["results"]] == ["disk.free"]
        history = await console.result(
            "diagnostics/history", device_id=identity.device_id, check_id="disk.free", subject="/"
        )
        assert history["points"] == []
    finally:
        await console.close()
        await agent.close()


@pytest.mark.parametrize("batch", [1, 1000])
async def test_purge_in_batches(server: RunningServer, batch: int) -> None:
    identity, agent = await online_device(server)
    console = await admin_console(server)
    try:
        assert identity.device_id is not None
        for _ in range(3):
            await run_on(
                console, agent, identity.device_id, [result("os.uptime"), result("memory.usage", value=10.0)]
            )
        deleted = await store.purge(diagnostics(server).db, before=time.time() + 1, batch=batch)
        assert deleted == 9  # six results, three runs
    finally:
        await console.close()
        await agent.close()
