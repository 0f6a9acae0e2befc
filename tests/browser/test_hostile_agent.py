"""An agent that reports markup and script in every text field: the console shows it as literal text."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from steun_protocol.inventory import Disk, NetAddress, NetInterface, Package, UserSession

from tests.support.agent_client import enroll_new, online_agent, sample_inventory, sample_metrics
from tests.support.server import RunningServer

from .helpers import sign_in_as_admin

pytestmark = pytest.mark.browser

IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"
SVG = '"><svg onload="window.__pwned=3">'
ENTITY = "&lt;b&gt;not bold&lt;/b&gt; & <b>bold?</b>"
JS_URL = "javascript:window.__pwned=4"

# Anything that could make the page parse markup or run script leaves a trace here.
TRACES = """() => ({
  pwned: window.__pwned,
  handlers: document.querySelectorAll('[onerror], [onload], [onclick], [onmouseover]').length,
  scripts: [...document.scripts].filter((s) => !s.src).length,
  images: [...document.images].map((i) => i.getAttribute('src')),
  bold: document.querySelectorAll('main b').length,
  javascriptLinks: [...document.links].filter((a) => a.href.startsWith('javascript:')).length,
})"""


def assert_no_trace(traces: dict[str, object]) -> None:
    assert traces["pwned"] is None, traces
    assert traces["handlers"] == 0, traces
    assert traces["scripts"] == 0, traces
    assert traces["bold"] == 0, traces
    assert traces["javascriptLinks"] == 0, traces
    assert all(str(src).startswith("data:image/svg+xml;base64,") for src in traces["images"]), traces  # type: ignore[attr-defined]


async def test_the_page_refuses_html_sinks(page: Page) -> None:
    """Defence in depth: the console's CSP requires Trusted Types, so an HTML sink throws instead of parsing."""
    outcome = await page.evaluate(
        """() => { try { document.createElement('div').innerHTML = '<b>x</b>'; return 'parsed'; }
                  catch (error) { return error.name; } }"""
    )
    assert outcome == "TypeError"


async def test_hostile_agent_data_is_shown_as_text(page: Page, server: RunningServer) -> None:
    await sign_in_as_admin(page, server)
    identity = await enroll_new(server.url, await server.create_enrollment_token(), hostname=IMG, os=SCRIPT)
    inventory = sample_inventory(
        IMG,
        os_pretty=SVG,
        kernel=ENTITY,
        cpu_model=SCRIPT,
        manufacturer=JS_URL,
        model=SVG,
        serial=IMG,
        disks=[Disk(device=SCRIPT, mountpoint=IMG, fstype=SVG, total=10, used=5, free=5)],
        interfaces=[
            NetInterface(
                name=IMG, is_up=True, addresses=[NetAddress(family="ipv4", address=SCRIPT, netmask=SVG)]
            )
        ],
        users=[UserSession(name=SVG, terminal=IMG, host=JS_URL)],
        package_manager=SCRIPT,
        packages=[Package(name=IMG, version=SCRIPT), Package(name=ENTITY, version=SVG)]
        + [Package(name=f"filler-{i:05d}", version="1") for i in range(20_000 - 2)],
    )
    agent = await online_agent(server.url, identity)
    try:
        await agent.send_inventory(inventory)
        await agent.heartbeat(sample_metrics())

        # the list: the hostname is the link's literal text
        link = page.get_by_role("link", name=IMG, exact=True)
        await expect(link).to_be_visible()
        await expect(page.locator("tr.device-row").first).to_contain_text(SCRIPT)
        assert_no_trace(await page.evaluate(TRACES))

        # the device page: every hostile field is there, verbatim
        await link.click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(IMG)
        system = page.get_by_role("region", name="System")
        await expect(system).to_contain_text(SVG)
        await expect(system).to_contain_text(ENTITY)
        await expect(system).to_contain_text(JS_URL)
        await expect(page.get_by_role("region", name="Hardware")).to_contain_text(SCRIPT)
        disks = page.get_by_role("region", name="Disks")
        await expect(disks).to_contain_text(IMG)
        await expect(disks).to_contain_text(SVG)
        network = page.get_by_role("region", name="Network interfaces")
        await expect(network.get_by_text(IMG, exact=True)).to_be_visible()
        await expect(network).to_contain_text(SCRIPT)
        users = page.get_by_role("region", name="Signed-in users")
        await expect(users.get_by_text(SVG, exact=True)).to_be_visible()
        await expect(users).to_contain_text(JS_URL)

        # 20,000 packages: counted, but only a page of them is put on screen
        software = page.get_by_role("region", name="Installed software")
        await expect(software).to_contain_text("20,000 packages")
        await expect(software.locator("tbody tr")).to_have_count(200)
        await expect(software.get_by_role("cell", name=IMG, exact=True)).to_be_visible()
        await expect(software.get_by_role("cell", name=ENTITY, exact=True)).to_be_visible()
        await software.get_by_role("searchbox", name="Filter software").fill("<script>")
        await expect(software.locator("tbody tr")).to_have_count(1)
        await expect(software.locator("tbody tr")).to_contain_text(IMG)

        assert_no_trace(await page.evaluate(TRACES))
        # switching language re-renders everything: still text
        await page.locator("header select.language-select").select_option("fr")
        await expect(page.get_by_role("region", name="Système")).to_contain_text(SVG)
        assert_no_trace(await page.evaluate(TRACES))
    finally:
        await agent.close()
