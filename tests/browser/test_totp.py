"""Two-step verification: enrolment on the account page, then sign-in with a code and with a recovery code."""

from __future__ import annotations

import base64

import pytest
from playwright.async_api import Page, expect

from tests.support.server import RunningServer

from .helpers import sign_in, sign_in_as_admin, totp_code, wrong_code

pytestmark = pytest.mark.browser


async def enrol_totp(page: Page) -> tuple[str, list[str]]:
    """Turns on TOTP from the account page as a technician would; returns the secret and the recovery codes."""
    await page.get_by_role("navigation").get_by_role("link", name="My account").click()
    await expect(page.get_by_role("heading", name="My account")).to_be_visible()
    await expect(page.locator(".status-line .badge")).to_have_text("Off")
    await page.get_by_role("button", name="Set up two-step verification").click()

    # the QR code is an <img> with a data: URL, never SVG markup inserted into the page
    qr = page.get_by_role("img", name="QR code to scan with your authenticator app")
    await expect(qr).to_be_visible()
    src = await qr.get_attribute("src")
    assert src is not None and src.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(src.split(",", 1)[1]).decode()
    assert svg.lstrip().startswith("<svg") or "<svg" in svg[:200]
    assert await page.locator("main svg").count() == 0
    assert await qr.evaluate("img => img.naturalWidth") > 0  # the browser did decode it

    secret = (await page.get_by_test_id("totp-secret").inner_text()).replace(" ", "")
    await page.get_by_text("Show the setup link").click()
    uri = await page.get_by_test_id("otpauth-uri").inner_text()
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri

    # a wrong code is refused and explained
    await page.get_by_label("Verification code").fill(wrong_code(secret))
    await page.get_by_role("button", name="Confirm and turn on").click()
    await expect(page.get_by_role("alert")).to_contain_text("That code is not valid")

    await page.get_by_label("Verification code").fill(totp_code(secret))
    await page.get_by_role("button", name="Confirm and turn on").click()
    codes_list = page.get_by_test_id("recovery-codes")
    await expect(codes_list.locator("li")).to_have_count(10)
    codes = [c.strip() for c in await codes_list.locator("li").all_inner_texts()]
    await expect(page.get_by_text("They are shown only once")).to_be_visible()
    await page.get_by_role("button", name="I have saved these codes").click()
    await expect(page.locator(".status-line .badge")).to_have_text("On")
    await expect(page.get_by_test_id("recovery-codes")).to_have_count(0)
    return secret, codes


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_totp_enrolment_then_sign_in_needs_the_code(page: Page, server: RunningServer) -> None:
    await sign_in_as_admin(page, server)
    secret, recovery_codes = await enrol_totp(page)
    await sign_out(page)

    # the password alone is not enough any more: the console asks for the code
    await sign_in(page, server.admin_username, server.admin_password)
    await expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    code_input = page.get_by_label("Verification code")
    await expect(code_input).to_be_focused()
    await code_input.fill(wrong_code(secret))
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("alert")).to_have_text("That code is not valid. Try again.")

    # the enrolment used this step's code; a code is never accepted twice, so use the next step's
    # (the server accepts one step of clock drift either way)
    await code_input.fill(totp_code(secret, steps_ahead=1))
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
    await sign_out(page)

    # a lost phone: a recovery code signs in, once
    await sign_in(page, server.admin_username, server.admin_password)
    await page.get_by_role("button", name="Use a recovery code instead").click()
    await page.get_by_label("Recovery code").fill(recovery_codes[0])
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
    await sign_out(page)

    await sign_in(page, server.admin_username, server.admin_password)
    await page.get_by_role("button", name="Use a recovery code instead").click()
    await page.get_by_label("Recovery code").fill(recovery_codes[0])
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("alert")).to_have_text("That code is not valid. Try again.")
