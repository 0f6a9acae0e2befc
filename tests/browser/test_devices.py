"""The device list and the device page, fed by real (protocol-level) agents through the real server."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from steun_protocol.inventory import Disk, Inventory, NetAddress, NetInterface, Package, UserSession

from tests.support.agent_client import (
    enroll_new,
    online_agent,
    sample_inventory,
    sample_metrics,
)
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

from .helpers import device_row, sign_in_as_admin

pytestmark = pytest.mark.browser


async def test_device_list_shows_presence_live_and_search_filters_it(
    page: Page, server: RunningServer
) -> None:
    await sign_in_as_admin(page, server)
    await expect(page.get_by_text("No devices enrolled yet.")).to_be_visible()

    laptop = await enroll_new(
        server.url, await server.create_enrollment_token(), hostname="laptop-anna", os="Windows"
    )
    kiosk = await enroll_new(
        server.url, await server.create_enrollment_token(), hostname="kiosk-lobby", os="Linux"
    )
    assert laptop.device_id and kiosk.device_id

    # enrolled devices appear without a reload, offline until their agent connects
    laptop_row, kiosk_row = device_row(page, "laptop-anna"), device_row(page, "kiosk-lobby")
    await expect(laptop_row).to_contain_text("Offline")
    await expect(kiosk_row).to_contain_text("Offline")
    await expect(laptop_row).to_contain_text("Windows")
    await expect(laptop_row).to_contain_text("default")

    agent = await online_agent(server.url, laptop)
    try:
        await expect(laptop_row).to_contain_text("Online")
        await expect(laptop_row.locator(".status-dot")).to_have_class("status-dot status-online")
        await expect(page.locator(".page-subtitle")).to_have_text("1 online · 2 devices")
        await expect(kiosk_row).to_contain_text("Offline")

        # search narrows the list as one types (hostname, OS, group or id)
        search = page.get_by_role("searchbox", name="Search devices")
        await search.fill("kiosk")
        await expect(page.locator("tr.device-row")).to_have_count(1)
        await expect(kiosk_row).to_be_visible()
        await search.fill("windows")
        await expect(page.locator("tr.device-row")).to_have_count(1)
        await expect(laptop_row).to_be_visible()
        await search.fill(laptop.device_id[:8])
        await expect(page.locator("tr.device-row")).to_have_count(1)
        await search.fill("no-such-device")
        await expect(page.get_by_text("No device matches your search.")).to_be_visible()
        await search.fill("")
        await expect(page.locator("tr.device-row")).to_have_count(2)

        # the status filter, and online devices first
        await page.get_by_label("Filter by status").select_option("online")
        await expect(page.locator("tr.device-row")).to_have_count(1)
        await page.get_by_label("Filter by status").select_option("all")
        await expect(page.locator("tr.device-row").first).to_contain_text("laptop-anna")
    finally:
        await agent.close()

    # the agent went away: the row turns offline by itself
    await expect(laptop_row).to_contain_text("Offline")
    await expect(page.locator(".page-subtitle")).to_have_text("0 online · 2 devices")


def rich_inventory(hostname: str, packages: int = 450) -> Inventory:
    return sample_inventory(
        hostname,
        os_pretty="Debian GNU/Linux 12 (bookworm)",
        cpu_model="Intel(R) Core(TM) i5-1145G7 @ 2.60GHz",
        manufacturer="LENOVO",
        model="ThinkPad T14 Gen 2",
        serial="PF3ABC12",
        machine_uuid="4c4c4544-0042-3510-8056-b4c04f4e3132",
        package_manager="dpkg",
        disks=[
            Disk(
                device="/dev/nvme0n1p2",
                mountpoint="/",
                fstype="ext4",
                total=500 * 2**30,
                used=120 * 2**30,
                free=380 * 2**30,
            ),
            Disk(
                device="/dev/nvme0n1p1",
                mountpoint="/boot/efi",
                fstype="vfat",
                total=2**29,
                used=2**25,
                free=2**29 - 2**25,
            ),
        ],
        interfaces=[
            NetInterface(
                name="enp0s31f6",
                is_up=True,
                speed_mbps=1000,
                mtu=1500,
                addresses=[
                    NetAddress(family="ipv4", address="192.0.2.15", netmask="255.255.255.0"),
                    NetAddress(family="ipv6", address="2001:db8::15"),
                    NetAddress(family="mac", address="8c:16:45:aa:bb:cc"),
                ],
            ),
            NetInterface(name="wlp0s20f3", is_up=False),
        ],
        users=[UserSession(name="anna", terminal="tty2", host=None, started=1_700_000_500.0)],
        packages=[Package(name=f"lib-example-{i:04d}", version=f"1.{i}.0") for i in range(packages)],
    )


async def test_device_page_shows_the_inventory_and_follows_it_live(page: Page, server: RunningServer) -> None:
    await sign_in_as_admin(page, server)
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname="ws-finance-07")
    agent = await online_agent(server.url, identity)
    try:
        await agent.send_inventory(rich_inventory("ws-finance-07"))
        await agent.heartbeat(sample_metrics(cpu=12.5))
        row = device_row(page, "ws-finance-07")
        await expect(row).to_contain_text("Online")
        await row.get_by_role("link").click()
        await expect(page).to_have_url(f"{server.url}/#/devices/{identity.device_id}")

        await expect(page.get_by_role("heading", level=1)).to_have_text("ws-finance-07")
        system = page.get_by_role("region", name="System")
        await expect(system).to_contain_text("Debian GNU/Linux 12 (bookworm)")
        await expect(system).to_contain_text("ThinkPad T14 Gen 2")
        await expect(system).to_contain_text("PF3ABC12")
        await expect(system).to_contain_text("4c4c4544-0042-3510-8056-b4c04f4e3132")
        hardware = page.get_by_role("region", name="Hardware")
        await expect(hardware).to_contain_text("Intel(R) Core(TM) i5-1145G7 @ 2.60GHz")
        await expect(hardware).to_contain_text("4 cores, 8 threads")
        await expect(hardware).to_contain_text("16 GB")

        disks = page.get_by_role("region", name="Disks")
        await expect(disks.locator("tbody tr")).to_have_count(2)
        await expect(disks.locator("tbody tr").first).to_contain_text("500 GB")
        await expect(disks.locator("tbody tr").first).to_contain_text("24%")

        network = page.get_by_role("region", name="Network interfaces")
        await expect(network).to_contain_text("enp0s31f6")
        await expect(network).to_contain_text("192.0.2.15")
        await expect(network).to_contain_text("2001:db8::15")
        await expect(network).to_contain_text("8c:16:45:aa:bb:cc")
        await expect(network).to_contain_text("1,000 Mbit/s")
        await expect(network.locator("tbody tr").nth(1)).to_contain_text("Down")

        await expect(page.get_by_role("region", name="Signed-in users")).to_contain_text("anna")
        live = page.get_by_role("region", name="Live")
        await expect(live).to_contain_text("20 minutes")  # uptime from the heartbeat
        await expect(live).to_contain_text("13%")

        # the package list is bounded on screen and filterable
        software = page.get_by_role("region", name="Installed software")
        await expect(software).to_contain_text("450 packages (dpkg)")
        await expect(software.locator("tbody tr")).to_have_count(200)
        await software.get_by_role("button", name="Show more").click()
        await expect(software.locator("tbody tr")).to_have_count(400)
        await software.get_by_role("searchbox", name="Filter software").fill("example-0042")
        await expect(software.locator("tbody tr")).to_have_count(1)
        await expect(software.locator("tbody tr")).to_contain_text("1.42.0")

        # live: a new heartbeat and a new inventory show up without a reload, keeping the filter
        await agent.heartbeat(sample_metrics(cpu=87.0))
        await expect(live).to_contain_text("87%")
        await agent.send_inventory(rich_inventory("ws-finance-07", packages=451))
        await expect(software).to_contain_text("451 packages (dpkg)")
        await expect(software.get_by_role("searchbox", name="Filter software")).to_have_value("example-0042")
    finally:
        await agent.close()

    # the agent went away: the page says so
    await expect(page.locator(".title-row .badge")).to_have_text("Offline")
    await expect(page.get_by_role("region", name="Live")).to_contain_text("The device is offline")


async def test_unknown_device_page(page: Page, server: RunningServer) -> None:
    await sign_in_as_admin(page, server)
    await page.goto(server.url + "/#/devices/doesNotExist42")
    await expect(page.get_by_role("alert")).to_have_text("This device does not exist or was removed.")
    await page.get_by_role("link", name="← All devices").click()
    await expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
    await wait_for(lambda: page.url.endswith("#/devices"), what="back on the list")
