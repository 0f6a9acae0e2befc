"""Fixtures for driving the console in real Chromium (Debian's /usr/bin/chromium) against the real server."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator

import pytest
import steun_console
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.support.server import RunningServer
from tests.support.waiting import scaled

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: How long a person-visible condition may take to appear (scaled by STEUN_TEST_TIMEOUT_FACTOR).
UI_TIMEOUT_MS = scaled(10.0) * 1000
expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not steun_console.is_built():
        pytest.fail("the console is not built: npm --prefix console ci && npm --prefix console run build")
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/bootstrap --tests does)")
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


async def new_context(browser: Browser, *, locale: str = "en-US") -> BrowserContext:
    context = await browser.new_context(
        ignore_https_errors=True,  # the test server's certificate is self-signed
        locale=locale,
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    return context


class PageErrors:
    """Uncaught exceptions in the page: any of them fails the test."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page


@pytest.fixture
async def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await new_context(browser)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(
    context: BrowserContext, server: RunningServer, page_errors: PageErrors
) -> AsyncIterator[Page]:
    """A page of a fresh browser profile, English, on the test server's console (signed out)."""
    tab = page_errors.watch(await context.new_page())
    await tab.goto(server.url + "/")
    yield tab
    # Close the console's websocket before the server stops, or the server waits for it to go away.
    await tab.close()
    assert page_errors.errors == [], f"uncaught errors in the page: {page_errors.errors}"
