"""Routine tests in real Chromium: a run started from the device page on a real agent, results streaming in,
the history chart after two runs; the device list's worst-status column and filter; the fleet view; the
administrator's policy editor."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect
from steun_agent.backends.linux import LinuxBackend
from steun_agent.capabilities.inventory import InventoryCapability
from steun_agent.config import AgentConfig
from steun_agent.diagnostics import DiagnosticsCapability
from steun_agent.diagnostics.backend import Volume
from steun_agent.diagnostics.fake import FakeDiagnostics
from steun_agent.enrollment import enroll, parse_token
from steun_agent.runtime import Runtime
from steun_agent.state import AgentState
from steun_protocol.diagnostics import Policy
from steun_server.diagnostics import DIAGNOSTICS, store

from tests.diag_server.helpers import admin_console, online_device, result, run_on
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

from .helpers import device_row, sign_in_as_admin

pytestmark = pytest.mark.browser


@contextlib.asynccontextmanager
async def real_agent(
    server: RunningServer, state_dir: Path, fake: FakeDiagnostics
) -> AsyncIterator[AgentState]:
    """The real agent runtime with its diagnostics capability on the faithful fake backend."""
    config = AgentConfig(
        state_dir=state_dir,
        backoff_base=0.05,
        backoff_cap=0.5,
        stable_after=1.0,
        inventory_interval=60.0,
        request_timeout=10.0,
        open_timeout=5.0,
        close_timeout=2.0,
    )
    state = await enroll(server.url, parse_token(await server.create_enrollment_token()), config)
    backend = await asyncio.to_thread(LinuxBackend)
    capability = DiagnosticsCapability(fake, sample_interval=None)
    runtime = Runtime(state, config, backend, [InventoryCapability(backend, 60.0), capability])
    task = asyncio.create_task(runtime.run())
    presence = server.app[DIAGNOSTICS].fleet.presence
    try:
        await wait_for(lambda: presence.online(state.device_id), timeout=15, what="the agent online")
        yield state
    finally:
        runtime.stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await task
        fake.release()
        await capability.close()


async def test_a_run_from_the_device_page_streams_results_and_draws_the_history(
    page: Page, server: RunningServer, tmp_path: Path
) -> None:
    service = server.app[DIAGNOSTICS]
    # a two-second limit per test, so the hung one below ends the run quickly
    await store.set_policy(
        service.db, "default", Policy(check_timeout=2.0), interval=None, now=time.time(), by="test"
    )
    fake = FakeDiagnostics()
    fake.hang.add("boot_time")  # os.uptime hangs, like a stuck /proc read
    async with real_agent(server, tmp_path / "agent", fake) as state:
        await sign_in_as_admin(page, server)
        await page.goto(f"{server.url}/#/devices/{state.device_id}")
        section = page.locator(".diagnostics")
        await expect(section.get_by_text("No results yet.")).to_be_visible()
        run_all = section.get_by_role("button", name="Run all tests")
        await expect(run_all).to_be_enabled()
        await run_all.click()

        # results stream in while the hung test is still going
        disk = section.locator('details.diag-check[data-check="disk.free"]')
        uptime = section.locator('details.diag-check[data-check="os.uptime"]')
        await expect(disk).to_have_attribute("data-status", "pass")
        await expect(uptime).to_have_attribute("data-status", "pending")
        await expect(section.locator(".diag-run-status")).to_contain_text("Running")
        await expect(run_all).to_be_disabled()
        # ... and the hung one times out without holding the others back
        await expect(uptime).to_have_attribute("data-status", "error")
        await expect(uptime.locator(".diag-check-sentence")).to_contain_text("did not finish within")
        await expect(section.locator(".diag-run-status")).to_contain_text("Last run")
        await expect(disk.locator(".diag-status-text")).to_have_text("Pass")
        await expect(disk.locator(".diag-check-title")).to_have_text("Free disk space")

        # a failing test shows its value, the fix and its knowledge-base key
        fake.data["volumes"] = [
            Volume("/", "/dev/sda1", "ext4", 100 * 1024**3, 5 * 1024**3, 1_000_000, 900_000)
        ]
        await expect(run_all).to_be_enabled()
        await run_all.click()
        await expect(disk).to_have_attribute("data-status", "fail")
        await expect(disk.locator(".diag-failing-since")).to_contain_text("failing since")
        await expect(section.locator(".diag-run-status")).to_contain_text("Last run")
        await disk.locator("summary").click()
        await expect(disk.locator(".diag-fix")).to_contain_text("Suggested fix")
        await expect(disk.locator(".diag-kb-key")).not_to_have_count(0)
        # two runs: the history chart has two points, the threshold lines and a label people can read
        chart = disk.locator(".diag-chart svg.chart")
        await expect(chart).to_have_attribute("data-points", "2")
        await expect(chart.locator("circle.chart-point")).to_have_count(2)
        await expect(chart.locator("circle.chart-point-fail")).to_have_count(1)
        await expect(chart.locator(".chart-threshold")).to_have_count(2)
        await expect(chart).to_have_attribute("aria-label", "History of Free disk space for /")

        # switching the language re-renders the results in place
        await page.locator("select.language-select").select_option("nl")
        await expect(disk.locator(".diag-check-title")).to_have_text("Vrije schijfruimte")
        await expect(disk.locator(".diag-status-text").first).to_have_text("Probleem")


async def test_worst_status_column_filter_and_fleet_view(page: Page, server: RunningServer) -> None:
    a, agent_a = await online_device(server, hostname="pc-a")
    b, agent_b = await online_device(server, hostname="pc-b")
    _never, agent_c = await online_device(server, hostname="pc-never")
    console = await admin_console(server)
    try:
        assert a.device_id and b.device_id
        await run_on(console, agent_a, a.device_id, [result("disk.free", "fail", value=3.0, subject="/")])
        await sign_in_as_admin(page, server)
        row_a, row_b, row_c = device_row(page, "pc-a"), device_row(page, "pc-b"), device_row(page, "pc-never")
        await expect(row_a.locator(".diag-cell")).to_have_attribute("data-diag-status", "fail")
        await expect(row_a.locator(".diag-cell")).to_contain_text("Fail")
        await expect(row_c.locator(".diag-cell")).to_contain_text("not tested")
        # a run that finishes while the list is open updates it live
        await run_on(console, agent_b, b.device_id, [result("disk.free", "warn", value=20.0, subject="/")])
        await expect(row_b.locator(".diag-cell")).to_have_attribute("data-diag-status", "warn")

        status_filter = page.get_by_label("Filter by test result")
        await status_filter.select_option("fail")
        await expect(page.locator("tr.device-row")).to_have_count(1)
        await expect(row_a).to_be_visible()
        await status_filter.select_option("problems")
        await expect(page.locator("tr.device-row")).to_have_count(2)
        await status_filter.select_option("none")
        await expect(page.locator("tr.device-row")).to_have_count(1)
        await expect(row_c).to_be_visible()
        await status_filter.select_option("all")

        await page.get_by_role("link", name="Tests", exact=True).click()
        await expect(page.get_by_role("heading", name="Routine tests across the fleet")).to_be_visible()
        top = page.locator(".diag-top-table tr.diag-top-row")
        await expect(top).to_have_count(1)
        await expect(top.first).to_contain_text("Free disk space")
        await expect(top.first.locator("td").nth(1)).to_have_text("2")
        await top.first.click()
        failing = page.locator(".diag-failing-table tbody tr")
        await expect(failing).to_have_count(2)
        await expect(failing.first).to_contain_text("pc-a")
        await expect(failing.first).to_contain_text("Fail")
        await page.get_by_label("Warning").uncheck()
        await expect(failing).to_have_count(1)
        await failing.first.get_by_role("link", name="pc-a").click()
        await expect(page.locator(".device-title")).to_have_text("pc-a")
    finally:
        await console.close()
        for agent in (agent_a, agent_b, agent_c):
            await agent.close()


async def test_administrators_edit_a_groups_policy(page: Page, server: RunningServer) -> None:
    await sign_in_as_admin(page, server)
    await page.goto(f"{server.url}/#/admin/diagnostics")
    await expect(page.get_by_role("heading", name="Routine-test policy")).to_be_visible()
    await expect(page.get_by_text("This group uses the catalogue's defaults.")).to_be_visible()
    await page.get_by_label("Run all tests automatically").select_option(label="Every 4 hours")
    await page.get_by_label("Required software").fill("firefox-esr >= 115\nlibreoffice")
    await page.get_by_label("Expected listening ports").fill("22, 443")
    disk_warn = page.locator('input[name="disk.free:warn_below"]')
    await expect(disk_warn).to_have_attribute("placeholder", "25")
    await disk_warn.fill("30")
    await page.locator('tr[data-check="battery.health"] input[type="checkbox"]').uncheck()
    await page.get_by_role("button", name="Save policy").click()
    await expect(page.get_by_text("The policy of default is saved.")).to_be_visible()

    record = await store.get_policy(server.app[DIAGNOSTICS].db, "default")
    assert record is not None
    assert record.interval == 4 * 3600
    assert record.policy.thresholds == {"disk.free": {"warn_below": 30.0}}
    assert [(s.name, s.min_version) for s in record.policy.required_software] == [
        ("firefox-esr", "115"),
        ("libreoffice", None),
    ]
    assert record.policy.expected_ports == [22, 443]
    assert record.policy.disabled == ["battery.health"]

    # the server refuses what does not fit the catalogue, and says why
    await disk_warn.fill("5")  # below fail_below 10
    await page.get_by_role("button", name="Save policy").click()
    await expect(page.get_by_role("alert")).to_contain_text("fail_below")
