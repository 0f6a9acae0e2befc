"""The connection indicator and the websocket's reconnect: the console survives a server restart."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.support.agent_client import enroll_new
from tests.support.server import RunningServer
from tests.support.waiting import scaled

from .helpers import device_row, sign_in_as_admin

pytestmark = pytest.mark.browser


async def test_console_reconnects_after_a_server_restart(page: Page, server: RunningServer) -> None:
    await sign_in_as_admin(page, server)
    indicator = page.locator(".connection")
    await expect(indicator).to_have_text("Live")

    await server.stop()
    await expect(indicator).to_have_attribute("data-state", "reconnecting")
    await expect(indicator).to_contain_text("Connection lost")

    await server.start()
    # backoff grows while the server is down; allow for a few rounds of it
    await expect(indicator).to_have_text("Live", timeout=scaled(40.0) * 1000)

    # the device subscription was re-sent on the new connection: new devices still appear live
    await enroll_new(server.url, await server.create_enrollment_token(), hostname="after-restart")
    await expect(device_row(page, "after-restart")).to_contain_text("Offline")
