"""Signing in: wrong password, success, sign-out, throttling, and the sign-in screen's language."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.support.server import RunningServer

from .conftest import PageErrors, new_context
from .helpers import sign_in, sign_in_as_admin

pytestmark = pytest.mark.browser


async def test_wrong_password_is_refused_then_the_right_one_signs_in(
    page: Page, server: RunningServer
) -> None:
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await sign_in(page, server.admin_username, "not-the-password")
    await expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    # still on the sign-in form, with the username kept
    await expect(page.get_by_label("Username")).to_have_value(server.admin_username)

    await page.get_by_label("Password").fill(server.admin_password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
    await expect(page.locator(".connection")).to_have_text("Live")
    await expect(page.get_by_role("navigation").get_by_role("link", name="Administration")).to_be_visible()

    # a reload keeps the session (cookie), and signing out ends it
    await page.reload()
    await expect(page.get_by_role("heading", name="Devices", exact=True)).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


async def test_sign_in_sends_the_csrf_token_from_the_cookie(page: Page, server: RunningServer) -> None:
    requests = []
    page.on("request", lambda request: requests.append(request))
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # the console asked GET /api/auth/me first, which handed out the CSRF cookie while signed out
    before = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert before.get("steun_csrf")
    await sign_in_as_admin(page, server)
    login = next(r for r in requests if r.url.endswith("/api/auth/login"))
    headers = await login.all_headers()
    assert headers["x-csrf-token"] == before["steun_csrf"]
    assert headers["origin"] == server.url

    # the session gets a fresh CSRF token, and later writes carry that one
    after = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert "steun_session" in after
    assert "steun_session" not in await page.evaluate("document.cookie")  # HttpOnly
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("You are signed out.")).to_be_visible()
    logout = next(r for r in requests if r.url.endswith("/api/auth/logout"))
    assert (await logout.all_headers())["x-csrf-token"] == after["steun_csrf"]


async def test_throttling_shows_how_long_to_wait(
    browser: Browser, tmp_path: Path, page_errors: PageErrors
) -> None:
    async with await RunningServer.create(
        tmp_path / "data",
        overrides={"throttle_free_failures": 1, "throttle_base_delay": 60.0, "throttle_max_delay": 60.0},
    ) as server:
        context = await new_context(browser)
        try:
            page = page_errors.watch(await context.new_page())
            await page.goto(server.url + "/")
            await sign_in(page, server.admin_username, "wrong-1")
            await expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
            await page.get_by_label("Password").fill("wrong-2")
            await page.get_by_role("button", name="Sign in").click()
            # the second failure imposes the delay; the next attempt, even with the right password, must wait
            # (fill waits until the form is enabled again, i.e. the second answer came)
            await page.get_by_label("Password").fill(server.admin_password)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("alert")).to_contain_text("Too many attempts. Try again in")
            await expect(page.get_by_role("button", name="Sign in")).to_be_disabled()
        finally:
            await context.close()
    assert page_errors.errors == []


async def test_the_sign_in_screen_follows_the_browser_language(
    browser: Browser, server: RunningServer, page_errors: PageErrors
) -> None:
    for locale, title, lang in (
        ("nl-BE", "Aanmelden", "nl"),
        ("fr-BE", "Connexion", "fr"),
        ("de-DE", "Sign in", "en"),
    ):
        context = await new_context(browser, locale=locale)
        try:
            page = page_errors.watch(await context.new_page())
            await page.goto(server.url + "/")
            await expect(page.get_by_role("heading", name=title)).to_be_visible()
            await expect(page.locator("html")).to_have_attribute("lang", lang)
        finally:
            await context.close()
    assert page_errors.errors == []
