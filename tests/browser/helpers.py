"""What the browser tests do the way a technician does it: sign in, find a device, read what is on screen."""

from __future__ import annotations

import time

import pyotp
from playwright.async_api import Locator, Page, expect

from tests.support.server import RunningServer


async def sign_in(page: Page, username: str, password: str) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def sign_in_as_admin(page: Page, server: RunningServer) -> None:
    await sign_in(page, server.admin_username, server.admin_password)
    await expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
    await expect(page.locator(".connection")).to_have_attribute("data-state", "open")


def totp_code(secret: str, *, steps_ahead: int = 0) -> str:
    """The RFC 6238 code an authenticator app shows, optionally for a later 30-second step."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def wrong_code(secret: str) -> str:
    """A well-formed code that no step near now accepts."""
    near = {totp_code(secret, steps_ahead=n) for n in range(-2, 3)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555") if c not in near)


def device_row(page: Page, hostname: str) -> Locator:
    return page.locator("tr.device-row").filter(has=page.get_by_role("link", name=hostname, exact=True))
