"""Administration: an enrollment command that really enrolls a device, groups, and user accounts."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.agent_client import enroll_new
from tests.support.server import RunningServer

from .conftest import PageErrors, new_context
from .helpers import device_row, sign_in, sign_in_as_admin

pytestmark = pytest.mark.browser


async def test_enrollment_command_enrolls_a_device(page: Page, server: RunningServer) -> None:
    await sign_in_as_admin(page, server)
    await page.get_by_role("navigation").get_by_role("link", name="Administration").click()
    enroll = page.get_by_role("region", name="Enroll a device")

    # a new group, offered for the token at once
    groups = page.get_by_role("region", name="Device groups")
    await groups.get_by_label("Name").fill("Accounting")
    await groups.get_by_label("Description").fill("Second floor")
    await groups.get_by_role("button", name="Add group").click()
    await expect(groups.get_by_role("listitem").filter(has_text="Accounting")).to_contain_text("Second floor")
    await enroll.get_by_label("Group").select_option("Accounting")
    await enroll.get_by_label("Valid for").select_option(label="24 hours")

    await enroll.get_by_role("button", name="Create enrollment command").click()
    command = await enroll.get_by_test_id("enrollment-command").inner_text()
    assert command.startswith("steun-agent enroll")
    assert f"--server {server.url}" in command
    match = re.search(r"(st1\.[A-Za-z0-9_.-]+)", command)
    assert match, command
    await expect(enroll).to_contain_text("It is not shown again.")

    # the command's token is real: an agent enrolls with it into that group
    await enroll_new(server.url, match.group(1), hostname="accounting-pc-1")
    await page.get_by_role("navigation").get_by_role("link", name="Devices").click()
    await expect(device_row(page, "accounting-pc-1")).to_contain_text("Accounting")


async def test_admin_creates_a_technician_who_can_sign_in(
    browser: Browser, page: Page, server: RunningServer, page_errors: PageErrors
) -> None:
    await sign_in_as_admin(page, server)
    await page.goto(server.url + "/#/admin")
    users = page.get_by_role("region", name="Users")
    await users.get_by_label("Username").fill("jan")
    await users.get_by_label("Display name").fill("Jan Peeters")
    await users.get_by_label("Role", exact=True).select_option("technician")
    await users.get_by_role("button", name="Create user").click()
    await expect(users).to_contain_text("User jan was created.")
    password = (await users.get_by_test_id("one-time-password").inner_text()).strip()
    assert len(password) >= 12
    jan_row = users.locator("tbody tr").filter(has_text="Jan Peeters")
    await expect(jan_row.get_by_role("combobox")).to_have_value("technician")

    # Jan signs in elsewhere with the one-time password: devices yes, administration no
    context = await new_context(browser)
    try:
        jan = page_errors.watch(await context.new_page())
        await jan.goto(server.url + "/")
        await sign_in(jan, "jan", password)
        await expect(jan.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
        await expect(jan.locator("header .user")).to_have_text("Jan Peeters")
        await expect(jan.get_by_role("navigation").get_by_role("link", name="Administration")).to_have_count(
            0
        )
        await jan.goto(server.url + "/#/admin")
        await expect(jan.get_by_text("You need the administrator role for this page.")).to_be_visible()
        await jan.get_by_role("button", name="Sign out").click()
        await expect(jan.get_by_role("heading", name="Sign in")).to_be_visible()

        # the admin promotes, then disables Jan
        await jan_row.get_by_role("combobox").select_option("specialist")
        await expect(jan_row.get_by_role("combobox")).to_have_value("specialist")
        await jan_row.get_by_role("button", name="Disable").click()
        await expect(jan_row).to_contain_text("Disabled")
        await sign_in(jan, "jan", password)
        await expect(jan.get_by_role("alert")).to_have_text("Wrong username or password.")
    finally:
        await context.close()
